"""The OpenVINO backend on a tiny model: matches torch, reuses its converted IR, falls back to torch on a conversion error."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino")

from sd_studio.engine.cpu.openvino import OpenVinoModel  # noqa: E402
from sd_studio.engine.models.loading import ModelCache


def unet_inputs(unet, batch=2, h=8, w=8, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, unet.config.in_channels, h, w, generator=g),
        torch.tensor(601.0),
        torch.randn(batch, 77, unet.config.cross_attention_dim, generator=g),
    )


def fresh_model(folder):
    return ModelCache().get(str(folder), device="cpu", precision="fp32")


class CountingConvert:
    """openvino.convert_model, counting its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, *args, **kwargs):
        import openvino

        self.calls += 1
        return openvino.convert_model(*args, **kwargs)


@pytest.fixture(scope="module")
def ov_root(tmp_path_factory):
    return tmp_path_factory.mktemp("openvino")


def test_openvino_matches_torch_then_second_load_reuses_the_cache(tiny_sd_dir, ov_root):
    import torch

    model = fresh_model(tiny_sd_dir)
    unet, vae = model.components["unet"], model.components["vae"]
    sample, t, text = unet_inputs(unet)
    latents = torch.randn(1, 4, 8, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = unet(sample, t, encoder_hidden_states=text).sample
        want_wide = unet(*unet_inputs(unet, h=8, w=16)).sample
        want_image = vae.decode(latents).sample
    convert = CountingConvert()
    backend = OpenVinoModel(model, "fp32", root=ov_root, convert=convert)
    with torch.no_grad():
        got = unet(sample, t, encoder_hidden_states=text).sample
        got_tuple = unet(sample, t, encoder_hidden_states=text, return_dict=False)[0]
        got_wide = unet(*unet_inputs(unet, h=8, w=16)).sample  # another shape: compiled, not converted again
        got_image = vae.decode(latents).sample
    assert convert.calls == 2 and backend.conversions == 2  # the UNet and the VAE decoder, once each
    assert len(backend.unet_part._compiled) == 2
    scale = want.abs().max().item()
    assert (got - want).abs().max().item() < 1e-4 * max(1.0, scale)
    assert torch.equal(got, got_tuple)
    assert (got_wide - want_wide).abs().max().item() < 1e-4 * max(1.0, scale)
    assert (got_image - want_image).abs().max().item() < 1e-3
    assert (ov_root / backend.key / "unet.xml").is_file() and (ov_root / backend.key / "unet.bin").is_file()
    assert len(list((ov_root / backend.key).glob("unet-*-f32.blob"))) == 2  # one compiled model per shape

    # A second load of the same model: read from the cache, nothing converted.
    again = fresh_model(tiny_sd_dir)
    convert_again = CountingConvert()
    second = OpenVinoModel(again, "fp32", root=ov_root, convert=convert_again)
    with torch.no_grad():
        got_again = again.components["unet"](sample, t, encoder_hidden_states=text).sample
    assert convert_again.calls == 0 and second.conversions == 0
    assert (got_again - want).abs().max().item() < 1e-4 * max(1.0, scale)


def test_bf16_hint_stays_close(tiny_sd_dir, ov_root):
    import torch

    from sd_studio.engine.cpu.processor import cpu_info

    if not cpu_info().has_native_bf16:
        pytest.skip("this processor has no native bf16")
    model = fresh_model(tiny_sd_dir)
    unet = model.components["unet"]
    sample, t, text = unet_inputs(unet)
    with torch.no_grad():
        want = unet(sample, t, encoder_hidden_states=text).sample
    OpenVinoModel(model, "bf16", root=ov_root)
    with torch.no_grad():
        got = unet(sample, t, encoder_hidden_states=text).sample
    rel = ((got - want).norm() / want.norm()).item()
    assert 0 < rel < 0.05


def test_conversion_error_falls_back_to_torch(tiny_sd_dir, tmp_path):
    import torch

    model = fresh_model(tiny_sd_dir)
    unet = model.components["unet"]
    sample, t, text = unet_inputs(unet)
    with torch.no_grad():
        want = unet(sample, t, encoder_hidden_states=text).sample

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operation aten::frobnicate")

    messages: list[str] = []
    backend = OpenVinoModel(model, "fp32", root=tmp_path, convert=broken, on_fallback=messages.append)
    with torch.no_grad():
        got = unet(sample, t, encoder_hidden_states=text).sample
    assert torch.equal(got, want)
    assert backend.failed and "frobnicate" in backend.failed
    assert messages and "running it with torch" in messages[0]
    assert "forward" not in unet.__dict__  # the torch forward is back for good
    assert not (tmp_path / backend.key / "unet.xml").exists()


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_generate_with_the_openvino_backend(tiny_inpaint_dir, tiny_image, tiny_mask, tmp_path, monkeypatch):
    from sd_studio.engine.generate import generate
    from sd_studio.engine.request import GenerationRequest

    monkeypatch.setenv("SD_STUDIO_OPENVINO_CACHE", str(tmp_path / "ov"))
    request = GenerationRequest(mode="inpaint", image=tiny_image, mask=tiny_mask, prompt="a cat", steps=3, seed=3,
                                model=str(tiny_inpaint_dir), device="cpu", precision="fp32")
    monkeypatch.setenv("SD_STUDIO_CPU_BACKEND", "torch")
    want = generate(request, models=ModelCache()).images[0]
    monkeypatch.setenv("SD_STUDIO_CPU_BACKEND", "openvino")
    events = []
    models = ModelCache()
    got = generate(request, progress=events.append, models=models).images[0]
    model = models.get(str(tiny_inpaint_dir), device="cpu", precision="fp32")
    # The UNet, the VAE encoder (an inpaint encodes its image) and decoder, and the text encoder, each converted once.
    assert model.openvino is not None and model.openvino.conversions == 4 and not model.openvino.failed
    assert model.openvino.text_failed is None and model.openvino.encoder_failed is None
    assert any("Converting the unet to OpenVINO" in e.message for e in events)
    assert psnr(want, got) > 40


def test_generate_falls_back_when_conversion_fails(tiny_sd_dir, tiny_image, tiny_mask, tmp_path, monkeypatch):
    import openvino

    from sd_studio.engine.generate import generate
    from sd_studio.engine.request import GenerationRequest

    def broken(*args, **kwargs):
        raise RuntimeError("conversion exploded")

    monkeypatch.setattr(openvino, "convert_model", broken)
    monkeypatch.setenv("SD_STUDIO_OPENVINO_CACHE", str(tmp_path / "ov"))
    monkeypatch.setenv("SD_STUDIO_CPU_BACKEND", "openvino")
    request = GenerationRequest(mode="img2img", image=tiny_image, prompt="a cat", steps=2, seed=3,
                                model=str(tiny_sd_dir), device="cpu", precision="fp32")
    events = []
    models = ModelCache()
    result = generate(request, progress=events.append, models=models)
    assert result.images[0].shape == (64, 64, 4)
    assert any("conversion exploded" in e.message and "torch" in e.message for e in events)
    model = models.get(str(tiny_sd_dir), device="cpu", precision="fp32")
    assert model.openvino is None and model.fixed_sizes is None


def test_text_encoder_matches_torch(tiny_sd_dir, tmp_path):
    import torch

    model = fresh_model(tiny_sd_dir)
    encoder = model.components["text_encoder"]
    ids = torch.randint(2, 100, (2, 77), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = encoder(ids)
    backend = OpenVinoModel(model, "bf16", root=tmp_path)
    with torch.no_grad():
        got = encoder(ids)
        as_tuple = encoder(ids, return_dict=False)
        with_states = encoder(ids, output_hidden_states=True)  # not what the IR gives: torch serves it
    assert backend.conversions == 1 and backend.text_failed is None
    assert (got[0] - want[0]).abs().max().item() < 1e-4  # f32 always, whatever the UNet's precision
    assert (got.pooler_output - want.pooler_output).abs().max().item() < 1e-4
    assert torch.equal(as_tuple[0], got[0])
    assert len(with_states.hidden_states) == encoder.config.num_hidden_layers + 1


def test_a_run_on_torch_keeps_the_chosen_bf16_and_leaves_the_weights_alone(tiny_sd_dir, tmp_path):
    # a run with LoRAs goes to torch (the IR holds the weights without them); it must not drop to fp32
    import torch

    model = fresh_model(tiny_sd_dir)
    unet = model.components["unet"]
    sample, t, text = unet_inputs(unet)
    with torch.no_grad():
        want = unet(sample, t, encoder_hidden_states=text).sample
    convert = CountingConvert()
    backend = OpenVinoModel(model, "bf16", root=tmp_path, convert=convert)
    backend.torch_only = True
    seen = []
    hook = unet.conv_in.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    with torch.no_grad():
        got = unet(sample, t, encoder_hidden_states=text).sample
    hook.remove()
    assert convert.calls == 0
    assert seen == [torch.bfloat16]  # the convolutions ran in bf16
    assert got.dtype == torch.float32 and unet.conv_in.weight.dtype == torch.float32
    assert torch.allclose(got, want, atol=0.1, rtol=0.05)
    # the VAE holds no LoRA weights: it stays on OpenVINO
    with torch.no_grad():
        model.components["vae"].decode(torch.randn(1, 4, 8, 8))
    assert backend.decoder_part._compiled and convert.calls == 1


def test_the_vae_encoder_runs_on_openvino_too(tiny_sd_dir, tmp_path):
    # img2img and inpaint encode their image: on a CPU that fp32 encode is much of a short run's time
    import torch

    model = fresh_model(tiny_sd_dir)
    vae = model.components["vae"]
    image = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        want = vae.encode(image).latent_dist.mean
    convert = CountingConvert()
    backend = OpenVinoModel(model, "fp32", root=tmp_path, convert=convert)
    with torch.no_grad():
        got = vae.encode(image).latent_dist.mean
    assert convert.calls == 1 and (tmp_path / backend.key / "vae_encoder.xml").is_file()
    assert (got - want).abs().max().item() < 1e-3
    # a second load reads it from the cache
    again = fresh_model(tiny_sd_dir)
    convert_again = CountingConvert()
    OpenVinoModel(again, "fp32", root=tmp_path, convert=convert_again)
    with torch.no_grad():
        got_again = again.components["vae"].encode(image).latent_dist.mean
    assert convert_again.calls == 0 and (got_again - want).abs().max().item() < 1e-3


def test_a_vae_encoder_that_fails_to_convert_stays_on_torch_alone(tiny_sd_dir, tmp_path):
    import torch

    from sd_studio.engine.cpu.openvino import ConversionError

    model = fresh_model(tiny_sd_dir)
    vae, unet = model.components["vae"], model.components["unet"]
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.no_grad():
        want = vae.encode(image).latent_dist.mean

    def convert(module, *args, **kwargs):
        if "VaeHalfCore" in type(module).__name__ and module.part is vae.encoder:
            raise ConversionError("no encoder today")
        return CountingConvert()(module, *args, **kwargs)

    messages = []
    backend = OpenVinoModel(model, "fp32", root=tmp_path, convert=convert)
    backend.progress = lambda p: messages.append(p.message)
    with torch.no_grad():
        got = vae.encode(image).latent_dist.mean
        unet(*unet_inputs(unet))  # the UNet still runs on OpenVINO
    assert torch.allclose(got, want)
    assert backend.encoder_failed and not backend.failed
    assert any("VAE encoder stays on torch" in (m or "") for m in messages)
