"""Single-file checkpoints: family detection from headers, refusing bad files, loading offline, shipped configs."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from original_layout import (  # noqa: E402
    SDXL_CLIP_PREFIX,
    SDXL_OPEN_CLIP_PREFIX,
    clip_to_original,
    open_clip_to_original,
    unet_to_original,
    vae_to_original,
)
from safetensors.torch import load_file, save_file  # noqa: E402

from sd_studio.engine.models import single_file  # noqa: E402
from sd_studio.engine.models.single_file import (  # noqa: E402
    CONFIGS_DIR,
    inspect_checkpoint,
    load_single_file,
    model_family_of_state_dict,
    read_header,
)
from sd_studio.errors import ModelError  # noqa: E402

SHIPPED = ["sd15", "sd15-inpainting", "sd2-base", "sd2-inpainting", "sd2-v", "sdxl-base", "sdxl-inpainting"]


# ---------------------------------------------------------------- tiny single-file checkpoints


def original_checkpoint(diffusers_dir: Path) -> dict:
    """A diffusers folder's weights as one original-layout state dict, like a Civitai single file."""
    unet_config = json.loads((diffusers_dir / "unet" / "config.json").read_text())
    vae_config = json.loads((diffusers_dir / "vae" / "config.json").read_text())
    state = {}
    state.update(unet_to_original(load_file(diffusers_dir / "unet" / "diffusion_pytorch_model.safetensors"), unet_config))
    state.update(vae_to_original(load_file(diffusers_dir / "vae" / "diffusion_pytorch_model.safetensors"), vae_config))
    state.update(clip_to_original(load_file(diffusers_dir / "text_encoder" / "model.safetensors")))
    return {k: v.contiguous() for k, v in state.items()}


def config_folder(diffusers_dir: Path, dest: Path) -> Path:
    """The diffusers folder without its weights: the tiny counterpart of resources/model_configs/<name>."""
    shutil.copytree(diffusers_dir, dest, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    return dest


@pytest.fixture(scope="module")
def tiny_single_file(tiny_sd_dir, tmp_path_factory):
    """(path of a tiny SD1-style single .safetensors file, its tiny config folder)."""
    root = tmp_path_factory.mktemp("single")
    path = root / "tiny-sd.safetensors"
    save_file(original_checkpoint(tiny_sd_dir), str(path), metadata={"format": "pt"})
    return path, config_folder(tiny_sd_dir, root / "config")


def write_fake(path: Path, shapes: dict[str, tuple[int, ...]], metadata: dict | None = None) -> Path:
    """A .safetensors file with tiny uint8 tensors of the given shapes under real checkpoint key names."""
    save_file({k: torch.zeros(s, dtype=torch.uint8) for k, s in shapes.items()}, str(path), metadata=metadata)
    return path


U = "model.diffusion_model."
UNET_4 = {U + "input_blocks.0.0.weight": (320, 4, 3, 3), U + "out.2.bias": (4,)}
UNET_9 = {U + "input_blocks.0.0.weight": (320, 9, 3, 3), U + "out.2.bias": (4,)}
VAE = {"first_stage_model.decoder.conv_out.bias": (3,)}
CLIP_L = {"cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": (77, 8)}
OPEN_CLIP_H = {"cond_stage_model.model.token_embedding.weight": (8, 8)}
SDXL_ENCODERS = {
    "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight": (77, 8),
    "conditioner.embedders.1.model.positional_embedding": (77, 8),
}
SD2_CROSS = {U + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 1024)}


# ---------------------------------------------------------------- the reverse conversion used by the tests


def test_original_layout_round_trips_through_diffusers_conversion(tiny_sd_dir):
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    for part, forward, backward in (
        ("unet", convert_ldm_unet_checkpoint, unet_to_original),
        ("vae", convert_ldm_vae_checkpoint, vae_to_original),
    ):
        config = json.loads((tiny_sd_dir / part / "config.json").read_text())
        state = load_file(tiny_sd_dir / part / "diffusion_pytorch_model.safetensors")
        back = forward(backward(state, config), config)
        assert back.keys() == state.keys()
        assert all(torch.equal(back[k], state[k]) for k in state)
    state = load_file(tiny_sd_dir / "text_encoder" / "model.safetensors")
    original = clip_to_original(state)
    assert all(k.startswith("cond_stage_model.transformer.text_model.") for k in original)
    back = {k.removeprefix("text_model."): v for k, v in convert_ldm_clip_checkpoint(original).items()}
    assert back.keys() == state.keys()


def test_open_clip_layout_round_trips():
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(0)
    config = CLIPTextConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                            vocab_size=64, projection_dim=32, hidden_act="gelu", bos_token_id=0, eos_token_id=2)
    model = CLIPTextModelWithProjection(config)
    state = model.state_dict()
    original = open_clip_to_original(state, SDXL_OPEN_CLIP_PREFIX)
    assert SDXL_OPEN_CLIP_PREFIX + "transformer.resblocks.1.attn.in_proj_weight" in original
    back = convert_open_clip_checkpoint(model, original, prefix=SDXL_OPEN_CLIP_PREFIX)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


# ---------------------------------------------------------------- family detection from headers


def test_family_from_key_names():
    assert model_family_of_state_dict(list(UNET_4) + list(CLIP_L)) == "sd1"
    assert model_family_of_state_dict(list(UNET_4) + list(OPEN_CLIP_H)) == "sd2"
    assert model_family_of_state_dict(list(UNET_4) + list(SDXL_ENCODERS)) == "sdxl"
    assert model_family_of_state_dict({**UNET_4, **SD2_CROSS}) == "sd2"  # text encoder stripped: width tells
    assert model_family_of_state_dict(list(UNET_4)) == "sd1"
    with pytest.raises(ModelError, match="no UNet"):
        model_family_of_state_dict(list(VAE) + list(CLIP_L))
    with pytest.raises(ModelError, match="SD3, Flux and others are not supported"):
        model_family_of_state_dict([U + "joint_blocks.0.x_block.attn.qkv.weight", U + "x_embedder.proj.weight"])
    with pytest.raises(ModelError, match="SD3, Flux and others are not supported"):
        model_family_of_state_dict(["double_blocks.0.img_attn.qkv.weight", "img_in.weight"])
    with pytest.raises(ModelError, match="refiner"):
        model_family_of_state_dict(list(UNET_4) + ["conditioner.embedders.0.model.text_projection"])


@pytest.mark.parametrize(
    ("shapes", "expected"),
    [
        ({**UNET_4, **VAE, **CLIP_L}, ("sd1", False, "sd15")),
        ({**UNET_9, **VAE, **CLIP_L}, ("sd1", True, "sd15-inpainting")),
        ({**UNET_4, **VAE, **OPEN_CLIP_H}, ("sd2", False, "sd2-v")),
        ({**UNET_9, **VAE, **OPEN_CLIP_H}, ("sd2", True, "sd2-inpainting")),
        ({**UNET_4, **SD2_CROSS, **VAE}, ("sd2", False, "sd2-v")),
        ({**UNET_4, **VAE, **SDXL_ENCODERS}, ("sdxl", False, "sdxl-base")),
        ({**UNET_9, **VAE, **SDXL_ENCODERS}, ("sdxl", True, "sdxl-inpainting")),
    ],
)
def test_inspect_checkpoint_from_fake_headers(tmp_path, shapes, expected):
    info = inspect_checkpoint(write_fake(tmp_path / "model.safetensors", shapes))
    assert (info.family, info.is_inpaint, info.config_name) == expected


def test_sd2_prediction_type_from_metadata_sidecar_or_override(tmp_path):
    shapes = {**UNET_4, **VAE, **OPEN_CLIP_H}
    eps = write_fake(tmp_path / "eps.safetensors", shapes, {"modelspec.prediction_type": "epsilon"})
    assert inspect_checkpoint(eps).config_name == "sd2-base"
    v = write_fake(tmp_path / "v.safetensors", shapes, {"modelspec.prediction_type": "v"})
    assert inspect_checkpoint(v).config_name == "sd2-v"
    side_eps = write_fake(tmp_path / "side-eps.safetensors", shapes)
    (tmp_path / "side-eps.yaml").write_text("model:\n  params:\n    linear_start: 0.00085\n")
    assert inspect_checkpoint(side_eps).config_name == "sd2-base"
    side_v = write_fake(tmp_path / "side-v.safetensors", shapes)
    (tmp_path / "side-v.yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    assert inspect_checkpoint(side_v).config_name == "sd2-v"
    assert inspect_checkpoint(side_v, config_name="sd2-base").config_name == "sd2-base"
    with pytest.raises(ModelError, match="Unknown model config 'sd9'"):
        inspect_checkpoint(side_v, config_name="sd9")


def test_prediction_type_markers_and_overrides(tmp_path):
    noob = write_fake(tmp_path / "noob.safetensors", {**UNET_4, **VAE, **SDXL_ENCODERS, "v_pred": (0,), "ztsnr": (0,)})
    info = inspect_checkpoint(noob)
    assert (info.config_name, info.prediction_type, info.zero_snr) == ("sdxl-base", "v_prediction", True)
    plain = write_fake(tmp_path / "plain.safetensors", {**UNET_4, **VAE, **CLIP_L})
    assert (inspect_checkpoint(plain).prediction_type, inspect_checkpoint(plain).zero_snr) == (None, False)
    assert inspect_checkpoint(plain, prediction_type="v_prediction").prediction_type == "v_prediction"
    with pytest.raises(ModelError, match="Unknown prediction type 'x'"):
        inspect_checkpoint(plain, prediction_type="x")
    sd1_v = write_fake(tmp_path / "sd1-v.safetensors", {**UNET_4, **VAE, **CLIP_L})
    (tmp_path / "sd1-v.yaml").write_text("model:\n  params:\n    parameterization: v\n")
    info = inspect_checkpoint(sd1_v)
    assert (info.config_name, info.prediction_type) == ("sd15", "v_prediction")
    sd2_override = write_fake(tmp_path / "sd2.safetensors", {**UNET_4, **VAE, **OPEN_CLIP_H})
    assert inspect_checkpoint(sd2_override, prediction_type="epsilon").config_name == "sd2-base"


def test_unsupported_channel_count(tmp_path):
    pix2pix = {U + "input_blocks.0.0.weight": (320, 8, 3, 3), **CLIP_L}
    with pytest.raises(ModelError, match="8-channel UNet"):
        inspect_checkpoint(write_fake(tmp_path / "ip2p.safetensors", pix2pix))


def test_header_shapes_and_metadata(tmp_path):
    path = write_fake(tmp_path / "m.safetensors", {**UNET_9, **VAE}, {"modelspec.title": "x"})
    header = read_header(path)
    assert header.shapes == {**UNET_9, **VAE}
    assert header.metadata == {"modelspec.title": "x"}


# ---------------------------------------------------------------- files that are not checkpoints


@pytest.mark.parametrize(
    ("keys", "hint"),
    [
        (["weight", "bias"], ""),
        (["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", "lora_te_text_model.alpha"], "; it looks like a LoRA"),
        (["unet.down_blocks.0.attn.to_q.lora_A.weight"], "; it looks like a LoRA"),
        (["emb_params"], "; it looks like a textual-inversion embedding"),
        (["encoder.down.0.block.0.conv1.weight", "decoder.conv_out.bias"], "; it looks like a VAE"),
    ],
)
def test_unrelated_safetensors_file(tmp_path, keys, hint):
    path = tmp_path / "other.safetensors"
    save_file({k: torch.zeros(2) for k in keys}, str(path))
    expected = f"other.safetensors is a .safetensors file but not a Stable Diffusion checkpoint (no UNet weights found{hint})."
    with pytest.raises(ModelError) as info:
        load_single_file(path, "cpu", torch.float32)
    assert str(info.value) == expected


def test_other_architectures_are_named_unsupported(tmp_path):
    path = write_fake(tmp_path / "flux.safetensors", {"double_blocks.0.img_attn.qkv.weight": (4,), "img_in.weight": (4,)})
    with pytest.raises(ModelError, match=r"^flux.safetensors: This diffusion model is not Stable Diffusion 1.x, 2.x or SDXL"):
        load_single_file(path, "cpu", torch.float32)
    refiner = write_fake(tmp_path / "refiner.safetensors", {**UNET_4, "conditioner.embedders.0.model.text_projection": (4,)})
    with pytest.raises(ModelError, match=r"^refiner.safetensors: SDXL refiner checkpoints are not supported"):
        inspect_checkpoint(refiner)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty or too short"),
        (b"\x05\x00", "empty or too short"),
        (b"PK\x03\x04 this is a zip, not safetensors at all", "header is corrupt"),
        ((20).to_bytes(8, "little") + b"{not json at all!!}!", "header is corrupt"),
        ((5000).to_bytes(8, "little") + b'{"a": 1}', "truncated"),
    ],
)
def test_corrupt_files_give_one_sentence(tmp_path, content, reason):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelError) as info:
        load_single_file(path, "cpu", torch.float32)
    message = str(info.value)
    assert reason in message and message.startswith("bad.safetensors") and "\n" not in message


def test_truncated_download(tiny_single_file, tmp_path):
    path, _ = tiny_single_file
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"cut.safetensors is truncated \(the download may be incomplete\)\."):
        load_single_file(cut, "cpu", torch.float32)


def test_missing_file_and_other_formats(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_single_file(tmp_path / "nothing.safetensors", "cpu", torch.float32)
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"whatever")
    with pytest.raises(ModelError, match="refused"):
        load_single_file(ckpt, "cpu", torch.float32)


class _Marker:
    """Unpickling this creates a file: proof that something unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_pickle_disguised_as_safetensors_is_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"state_dict": _Marker(marker)}))
    pickle.loads(pickle.dumps(_Marker(tmp_path / "control")))  # the payload does work when unpickled
    assert (tmp_path / "control").exists()
    with pytest.raises(ModelError):
        load_single_file(path, "cpu", torch.float32)
    assert not marker.exists()


# ---------------------------------------------------------------- loading a tiny checkpoint offline


def test_tiny_checkpoint_loads_offline_and_matches_the_original(tiny_single_file, tiny_sd_dir, monkeypatch, capfd):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path, config = tiny_single_file
    reports = []
    components, family, is_inpaint = load_single_file(path, "cpu", torch.float32, progress=reports.append, config_dir=config)
    assert (family, is_inpaint) == ("sd1", False)
    assert [r.phase for r in reports] == ["loading"] * len(reports) and reports[-1].step == reports[-1].total
    assert [r.step for r in reports] == sorted(r.step for r in reports)
    assert "Loading pipeline components" not in capfd.readouterr().err  # progress goes to the callback only
    assert {"unet", "vae", "text_encoder", "tokenizer", "scheduler"} <= components.keys()

    unet = UNet2DConditionModel.from_pretrained(tiny_sd_dir / "unet")
    vae = AutoencoderKL.from_pretrained(tiny_sd_dir / "vae")
    text_encoder = CLIPTextModel.from_pretrained(tiny_sd_dir / "text_encoder")
    for name, reference in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder)):
        loaded = components[name].state_dict()
        expected = reference.state_dict()
        assert loaded.keys() == expected.keys(), name
        assert all(torch.equal(loaded[k], expected[k]) for k in expected), name

    torch.manual_seed(1)
    latents, t, context = torch.randn(1, 4, 8, 8), torch.tensor([500]), torch.randn(1, 77, 32)
    with torch.no_grad():
        torch.testing.assert_close(components["unet"](latents, t, context).sample, unet(latents, t, context).sample)
        torch.testing.assert_close(components["vae"].decode(latents).sample, vae.decode(latents).sample)
        ids = components["tokenizer"]("a cat", padding="max_length", max_length=77, return_tensors="pt").input_ids
        torch.testing.assert_close(components["text_encoder"](ids)[0], text_encoder(ids)[0])


def test_tiny_inpainting_checkpoint(tiny_inpaint_dir, tmp_path):
    path = tmp_path / "tiny-inpaint.safetensors"
    save_file(original_checkpoint(tiny_inpaint_dir), str(path))
    components, family, is_inpaint = load_single_file(
        path, "cpu", torch.float32, config_dir=config_folder(tiny_inpaint_dir, tmp_path / "config")
    )
    assert (family, is_inpaint) == ("sd1", True)
    assert components["unet"].config.in_channels == 9


def test_config_that_does_not_fit_the_weights_is_one_sentence(tiny_single_file, tmp_path):
    path, config = tiny_single_file
    wrong = config_folder(config, tmp_path / "wrong")
    unet_config = json.loads((wrong / "unet" / "config.json").read_text())
    unet_config["block_out_channels"] = [64, 64]
    (wrong / "unet" / "config.json").write_text(json.dumps(unet_config))
    with pytest.raises(ModelError, match=r"^Could not load tiny-sd.safetensors with the wrong config: ") as info:
        load_single_file(path, "cpu", torch.float32, config_dir=wrong)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- the shipped configs, at full size on "meta"


# published parameter counts of the real models: (UNet, VAE, text encoder, second text encoder)
REAL_SIZES = {
    "sd15": (859_520_964, 83_653_863, 123_060_480, None),
    "sd15-inpainting": (859_535_364, 83_653_863, 123_060_480, None),
    "sd2-v": (865_910_724, 83_653_863, 340_387_840, None),
    "sd2-base": (865_910_724, 83_653_863, 340_387_840, None),
    "sd2-inpainting": (865_925_124, 83_653_863, 340_387_840, None),
    "sdxl-base": (2_567_463_684, 83_653_863, 123_060_480, 694_659_840),
    "sdxl-inpainting": (2_567_478_084, 83_653_863, 123_060_480, 694_659_840),
}


def test_every_config_folder_is_tested():
    assert sorted(p.name for p in CONFIGS_DIR.iterdir() if p.is_dir()) == sorted(SHIPPED) == sorted(REAL_SIZES)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_builds_the_real_model_sizes(name):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = CONFIGS_DIR / name
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae"))
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder"))
        text_2 = None
        if (folder / "text_encoder_2").is_dir():
            text_2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(folder / "text_encoder_2"))
    assert next(unet.parameters()).device.type == "meta"

    def count(model):
        return None if model is None else sum(p.numel() for p in model.parameters())

    assert (count(unet), count(vae), count(text), count(text_2)) == REAL_SIZES[name]

    # the real checkpoint's key layout, derived from this config, is recognised as this config
    shapes = {k: tuple(v.shape) for k, v in unet_to_original(unet.state_dict(), dict(unet.config)).items()}
    shapes.update({k: tuple(v.shape) for k, v in vae_to_original(vae.state_dict(), dict(vae.config)).items()})
    if name.startswith("sd2"):
        shapes.update({k: tuple(v.shape) for k, v in open_clip_to_original(text.state_dict()).items()})
    elif text_2 is not None:
        shapes.update({k: tuple(v.shape) for k, v in clip_to_original(text.state_dict(), SDXL_CLIP_PREFIX).items()})
        shapes.update(
            {k: tuple(v.shape) for k, v in open_clip_to_original(text_2.state_dict(), SDXL_OPEN_CLIP_PREFIX).items()}
        )
    else:
        shapes.update({k: tuple(v.shape) for k, v in clip_to_original(text.state_dict()).items()})
    family = model_family_of_state_dict(shapes)
    channels = shapes[single_file.FIRST_CONV][1]
    expected = single_file.CONFIG_NAMES[(family, channels == 9)]
    assert expected == name or (name == "sd2-base" and expected == "sd2-v")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_loads_its_scheduler_tokenizers_and_pipeline_index(name):
    import diffusers
    from diffusers import DiffusionPipeline, SchedulerMixin
    from diffusers.schedulers import KarrasDiffusionSchedulers  # noqa: F401  (schedulers import fine)

    folder = CONFIGS_DIR / name
    index = json.loads((folder / "model_index.json").read_text())
    scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    scheduler = getattr(diffusers, scheduler_config["_class_name"]).from_pretrained(folder, subfolder="scheduler")
    assert isinstance(scheduler, SchedulerMixin)
    assert scheduler.config.prediction_type == ("v_prediction" if name == "sd2-v" else "epsilon")
    pads = {"tokenizer": "!" if name.startswith("sd2") else "<|endoftext|>", "tokenizer_2": "!"}
    for sub in ("tokenizer", "tokenizer_2"):
        if sub in index:
            tokenizer = single_file.load_tokenizer(folder / sub)
            assert tokenizer.pad_token == pads[sub] and tokenizer.model_max_length == 77 and len(tokenizer) == 49408
    assert DiffusionPipeline.load_config(folder)["_class_name"] in ("StableDiffusionPipeline", "StableDiffusionXLPipeline")
    native = json.loads((folder / "unet" / "config.json").read_text())["sample_size"] * 8
    assert native == {"sd2-v": 768, "sdxl-base": 1024, "sdxl-inpainting": 1024}.get(name, 512)


# ---------------------------------------------------------------- tiny SD 2.x and SDXL, with the bundled tokenizer


def tiny_family_pipeline(family: str, folder: Path):
    """Save a tiny random SD 2.x- or SDXL-style pipeline (49408-token encoders, bundled tokenizer) as a folder.

    Shapes follow diffusers' own SD2/SDXL `get_dummy_components`; the tokenizer files are then removed
    so the config folder, like the shipped ones, keeps only tokenizer_config.json.
    """
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from sd_studio.engine.prompts.tokens import clip_tokenizer

    torch.manual_seed(0)
    text_config = CLIPTextConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=32, intermediate_size=37,
                                 layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2, vocab_size=49408,
                                 hidden_act="gelu", projection_dim=32)
    common = dict(block_out_channels=(32, 64), layers_per_block=2, sample_size=8, in_channels=4, out_channels=4,
                  down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), use_linear_projection=True)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)
    if family == "sd2":
        unet = UNet2DConditionModel(**common, attention_head_dim=(2, 4), cross_attention_dim=32)
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=CLIPTextModel(text_config), tokenizer=clip_tokenizer("!"),
                                       unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    else:
        # the two encoders must differ in width, as CLIP-L (768) and OpenCLIP-G (1280) do: diffusers tells them apart so
        text_config_2 = CLIPTextConfig(**{**text_config.to_dict(), "hidden_size": 48, "intermediate_size": 53})
        unet = UNet2DConditionModel(**common, attention_head_dim=(2, 4), cross_attention_dim=32 + 48,
                                    addition_embed_type="text_time", addition_time_embed_dim=8,
                                    transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=6 * 8 + 32)
        pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=CLIPTextModel(text_config),
                                         text_encoder_2=CLIPTextModelWithProjection(text_config_2),
                                         tokenizer=clip_tokenizer(), tokenizer_2=clip_tokenizer("!"), unet=unet,
                                         scheduler=scheduler)
    pipe.save_pretrained(folder, safe_serialization=True)
    return pipe


@pytest.mark.parametrize("family", ["sd2", "sdxl"])
def test_tiny_sd2_and_sdxl_checkpoints_load_with_the_bundled_tokenizer(family, tmp_path):
    pipe = tiny_family_pipeline(family, tmp_path / "diffusers")
    state = {}
    state.update(unet_to_original(pipe.unet.state_dict(), dict(pipe.unet.config)))
    state.update(vae_to_original(pipe.vae.state_dict(), dict(pipe.vae.config)))
    if family == "sd2":
        state.update(open_clip_to_original(pipe.text_encoder.state_dict()))
    else:
        state.update(clip_to_original(pipe.text_encoder.state_dict(), SDXL_CLIP_PREFIX))
        state.update(open_clip_to_original(pipe.text_encoder_2.state_dict(), SDXL_OPEN_CLIP_PREFIX))
    path = tmp_path / f"tiny-{family}.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    config = config_folder(tmp_path / "diffusers", tmp_path / "config")
    for tokenizer_file in ("tokenizer.json", "vocab.json", "merges.txt"):
        for found in config.glob(f"tokenizer*/{tokenizer_file}"):
            found.unlink()

    components, loaded_family, is_inpaint = load_single_file(path, "cpu", torch.float32, config_dir=config)
    assert (loaded_family, is_inpaint) == (family, False)
    assert components["tokenizer"].pad_token == ("!" if family == "sd2" else "<|endoftext|>")
    assert len(components["tokenizer"]) == 49408
    ids = components["tokenizer"]("a photo of a cat", padding="max_length", max_length=77, return_tensors="pt").input_ids
    torch.manual_seed(2)
    latents, t = torch.randn(1, 4, 8, 8), torch.tensor([500])
    with torch.no_grad():
        torch.testing.assert_close(components["text_encoder"](ids)[0], pipe.text_encoder(ids)[0])
        if family == "sd2":
            context = torch.randn(1, 77, 32)
            torch.testing.assert_close(components["unet"](latents, t, context).sample,
                                       pipe.unet(latents, t, context).sample)
        else:
            assert components["tokenizer_2"].pad_token == "!"
            loaded, expected = components["text_encoder_2"](ids), pipe.text_encoder_2(ids)
            torch.testing.assert_close(loaded.text_embeds, expected.text_embeds)  # the projection, transposed back
            context = torch.randn(1, 77, 80)
            cond = {"text_embeds": torch.randn(1, 32), "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])}
            torch.testing.assert_close(components["unet"](latents, t, context, added_cond_kwargs=cond).sample,
                                       pipe.unet(latents, t, context, added_cond_kwargs=cond).sample)


def test_checkpoint_without_text_encoder_is_one_sentence(tiny_sd_dir, tiny_single_file, tmp_path):
    _, config = tiny_single_file
    state = {k: v for k, v in original_checkpoint(tiny_sd_dir).items() if not k.startswith("cond_stage_model.")}
    path = tmp_path / "unet-vae-only.safetensors"
    save_file(state, str(path))
    with pytest.raises(ModelError) as info:
        load_single_file(path, "cpu", torch.float32, config_dir=config)
    assert str(info.value) == (
        "unet-vae-only.safetensors has no weights for its CLIPTextModel; "
        "a single file must hold the UNet, VAE and text encoder."
    )


def test_checkpoint_missing_some_weights_is_refused(tiny_sd_dir, tiny_single_file, tmp_path):
    _, config = tiny_single_file
    state = original_checkpoint(tiny_sd_dir)
    del state["model.diffusion_model.out.2.weight"]
    path = tmp_path / "partial.safetensors"
    save_file(state, str(path))
    with pytest.raises(ModelError, match=r"^partial.safetensors lacks some weights of a config model \(the file may be incomplete"):
        load_single_file(path, "cpu", torch.float32, config_dir=config)


def test_v_prediction_reaches_the_scheduler(tiny_sd_dir, tiny_single_file, tmp_path):
    path, config = tiny_single_file
    components, _, _ = load_single_file(path, "cpu", torch.float32, config_dir=config)
    assert components["scheduler"].config.prediction_type == "epsilon"
    components, _, _ = load_single_file(path, "cpu", torch.float32, config_dir=config, prediction_type="v_prediction")
    assert components["scheduler"].config.prediction_type == "v_prediction"
    marked = tmp_path / "vpred.safetensors"
    save_file({**original_checkpoint(tiny_sd_dir), "v_pred": torch.zeros(0), "ztsnr": torch.zeros(0)}, str(marked))
    components, _, _ = load_single_file(marked, "cpu", torch.float32, config_dir=config)
    scheduler = components["scheduler"]
    assert type(scheduler).__name__ == "EulerAncestralDiscreteScheduler"  # the folder's scheduler, retuned
    assert scheduler.config.prediction_type == "v_prediction" and scheduler.config.rescale_betas_zero_snr


def test_loaded_components_build_every_pipeline(tiny_single_file):
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline, StableDiffusionPipeline

    path, config = tiny_single_file
    components, _, _ = load_single_file(path, "cpu", torch.float32, config_dir=config)
    image = torch.rand(1, 3, 64, 64)
    for cls, extra in (
        (StableDiffusionPipeline, {"height": 64, "width": 64}),
        (StableDiffusionImg2ImgPipeline, {"image": image, "strength": 1.0}),
        (StableDiffusionInpaintPipeline, {"image": image, "mask_image": torch.ones(1, 1, 64, 64), "height": 64, "width": 64}),
    ):
        pipe = cls(**components, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        out = pipe("a cat", num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0), **extra)
        assert out.images.shape == (1, 64, 64, 3)
