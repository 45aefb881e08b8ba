"""generate(): classical and diffusion runs end to end on real (tiny) inputs and models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sd_studio.document.geometry import Bounds
from sd_studio.engine.generate import generate
from sd_studio.engine.request import GenerationRequest, Progress
from sd_studio.errors import Cancelled, GenerationError


def _scratched(h: int = 120, w: int = 160):
    yy, xx = np.mgrid[0:h, 0:w]
    clean = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 90)], axis=-1).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[50:54, 20:140] = 255
    scratched = clean.copy()
    scratched[mask > 0] = (255, 255, 255)
    return clean, scratched, mask


def _far_from(mask: np.ndarray, distance: int) -> np.ndarray:
    import cv2

    size = 2 * distance + 1
    return cv2.dilate(mask, np.ones((size, size), np.uint8)) == 0


def test_classical_inpaint_removes_the_scratch_and_keeps_the_rest():
    clean, scratched, mask = _scratched()
    events: list[Progress] = []
    result = generate(GenerationRequest("inpaint", image=scratched, mask=mask, seed=7, feather=3), progress=events.append)
    assert result.region.width % 8 == 0 and Bounds(0, 0, 160, 120).contains(result.region)
    assert result.seeds == [7]
    out = result.composite_onto(scratched)
    assert out.shape == (120, 160, 4)
    hole = mask > 0
    assert np.abs(out[..., :3][hole].astype(int) - clean[hole]).mean() < 10
    far = _far_from(mask, 3)
    assert np.array_equal(out[..., :3][far], scratched[far])
    p = result.parameters[0]
    assert p["sampler"] == "Telea" and p["model"] == "classical" and p["seed"] == 7
    assert "Sampler: Telea" in result.parameters_text(0)
    assert events and events[-1].step == events[-1].total


def test_classical_navier_stokes_and_variants_get_consecutive_seeds():
    _, scratched, mask = _scratched()
    result = generate(GenerationRequest("inpaint", image=scratched, mask=mask, seed=100, variants=3, scheduler="Navier-Stokes"))
    assert result.seeds == [100, 101, 102]
    assert [p["seed"] for p in result.parameters] == [100, 101, 102]
    assert all(p["sampler"] == "Navier-Stokes" for p in result.parameters)
    assert len(result.images) == 3


def test_classical_refuses_img2img_and_an_empty_mask():
    _, scratched, mask = _scratched()
    with pytest.raises(GenerationError, match="needs a diffusion model"):
        generate(GenerationRequest("img2img", image=scratched))
    with pytest.raises(GenerationError, match="empty"):
        generate(GenerationRequest("inpaint", image=scratched, mask=np.zeros_like(mask)))


def test_a_classical_sampler_with_a_model_is_refused_before_loading():
    _, scratched, mask = _scratched()
    with pytest.raises(GenerationError, match="classical engine"):
        generate(GenerationRequest("inpaint", image=scratched, mask=mask, scheduler="Telea", model="/nowhere/model"))


def test_a_tiny_image_is_refused():
    with pytest.raises(GenerationError, match="at least 8 x 8"):
        generate(GenerationRequest("inpaint", image=np.zeros((5, 40, 3), np.uint8), mask=np.full((5, 40), 255, np.uint8)))


def test_cancel_before_work_raises_and_returns_nothing():
    _, scratched, mask = _scratched()
    with pytest.raises(Cancelled):
        generate(GenerationRequest("inpaint", image=scratched, mask=mask), cancel=lambda: True)


# -- diffusion on tiny random models ------------------------------------------------------------
@pytest.fixture(scope="module")
def models():
    """One cache for the module, so each tiny model loads once."""
    from sd_studio.engine.models.loading import ModelCache

    return ModelCache()


def _photo(h: int = 96, w: int = 128) -> np.ndarray:
    rng = np.random.default_rng(4)
    return rng.integers(0, 256, (h, w, 3), np.uint8)


def test_diffusion_inpaint_repaints_only_near_the_mask(tiny_inpaint_dir, models):
    image = _photo()
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[30:50, 40:70] = 255
    events: list[Progress] = []
    request = GenerationRequest(
        "inpaint", image=image, mask=mask, prompt="a red square", steps=2, seed=3, variants=2,
        model=str(tiny_inpaint_dir), feather=4, device="cpu",
    )
    result = generate(request, progress=events.append, models=models)
    assert result.seeds == [3, 4]
    assert len(result.images) == 2
    assert Bounds(0, 0, 128, 96).contains(result.region)
    for i in range(2):
        out = result.composite_onto(image, i)
        far = _far_from(mask, 4)
        assert np.array_equal(out[..., :3][far], image[far])
        assert not np.array_equal(out[..., :3][mask > 0], image[mask > 0])
    p = result.parameters[0]
    assert p["model"] == tiny_inpaint_dir.name and p["model_hash"] and p["sampler"] == "Euler a"
    assert (p["width"], p["height"]) == tuple(_target(result))
    assert {e.phase for e in events} >= {"loading", "denoising", "decoding"}
    assert not np.array_equal(result.images[0], result.images[1])


def _target(result) -> tuple[int, int]:
    p = result.parameters[0]
    return p["width"], p["height"]


def test_diffusion_inpaint_with_a_plain_model(tiny_sd_dir, models):
    image = _photo(64, 64)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 255
    result = generate(
        GenerationRequest("inpaint", image=image, mask=mask, steps=2, seed=1, model=str(tiny_sd_dir), device="cpu"),
        models=models,
    )
    out = result.composite_onto(image)
    assert np.array_equal(out[..., :3][_far_from(mask, 4)], image[_far_from(mask, 4)])


def test_diffusion_img2img_covers_the_whole_image(tiny_sd_dir, models):
    image = _photo(72, 96)
    result = generate(
        GenerationRequest("img2img", image=image, prompt="x", steps=2, seed=9, strength=0.5, model=str(tiny_sd_dir), device="cpu"),
        models=models,
    )
    assert result.region == Bounds(0, 0, 96, 72)
    assert result.images[0].shape == (72, 96, 4)
    assert (result.images[0][..., 3] == 255).all()
    assert result.parameters[0]["denoising_strength"] == 0.5


def test_diffusion_img2img_with_a_selection_keeps_the_rest(tiny_sd_dir, models):
    image = _photo(96, 128)
    selection = np.zeros((96, 128), np.uint8)
    selection[10:30, 10:30] = 255
    result = generate(
        GenerationRequest("img2img", image=image, mask=selection, prompt="x", steps=2, seed=9, model=str(tiny_sd_dir), device="cpu"),
        models=models,
    )
    out = result.composite_onto(image)
    far = _far_from(selection, 4)
    assert np.array_equal(out[..., :3][far], image[far])


def test_diffusion_txt2img_without_an_image(tiny_sd_dir, models):
    result = generate(
        GenerationRequest("txt2img", prompt="x", steps=2, seed=11, width=64, height=128, model=str(tiny_sd_dir), device="cpu"),
        models=models,
    )
    assert result.region == Bounds(0, 0, 64, 128)
    assert result.images[0].shape == (128, 64, 4)
    assert (result.images[0][..., 3] == 255).all()


def test_diffusion_txt2img_into_a_selection(tiny_sd_dir, models):
    image = _photo(96, 128)
    selection = np.zeros((96, 128), np.uint8)
    selection[50:80, 60:100] = 255
    result = generate(
        GenerationRequest("txt2img", image=image, mask=selection, prompt="x", steps=2, seed=2, model=str(tiny_sd_dir), device="cpu"),
        models=models,
    )
    assert result.region.contains(Bounds(60, 50, 40, 30)) and result.region != Bounds(0, 0, 128, 96)
    out = result.composite_onto(image)
    far = _far_from(selection, 4)
    assert np.array_equal(out[..., :3][far], image[far])
    assert not np.array_equal(out[..., :3][selection > 0], image[selection > 0])


def test_diffusion_same_seed_reproduces(tiny_sd_dir, models):
    request = GenerationRequest("txt2img", prompt="x", steps=2, seed=5, width=64, height=64, model=str(tiny_sd_dir), device="cpu")
    a = generate(request, models=models).images[0]
    b = generate(request, models=models).images[0]
    assert np.array_equal(a, b)


def test_diffusion_cancel_during_denoising_raises(tiny_sd_dir, models):
    seen: list[Progress] = []

    def cancel() -> bool:
        return any(e.phase == "denoising" for e in seen)

    request = GenerationRequest("txt2img", prompt="x", steps=5, seed=5, width=64, height=64, model=str(tiny_sd_dir), device="cpu")
    with pytest.raises(Cancelled):
        generate(request, progress=seen.append, cancel=cancel, models=models)
    denoising = [e for e in seen if e.phase == "denoising"]
    assert denoising and max(e.step for e in denoising) < 5


def test_an_inpainting_model_runs_txt2img_and_img2img_by_seed(tiny_inpaint_dir, models):
    """A1111 runs both through the inpaint pipeline with an all-white mask; so do we (no tensor-size crash)."""
    def txt2img(seed):
        request = GenerationRequest("txt2img", prompt="x", steps=2, seed=seed, width=64, height=128,
                                    model=str(tiny_inpaint_dir), device="cpu")
        return generate(request, models=models)

    first = txt2img(5)
    assert first.region == Bounds(0, 0, 64, 128) and first.images[0].shape == (128, 64, 4)
    assert np.array_equal(txt2img(5).images[0], first.images[0])
    assert not np.array_equal(txt2img(6).images[0], first.images[0])
    assert first.parameters[0]["mode"] == "txt2img"
    image = _photo(72, 96)

    def img2img(seed):
        request = GenerationRequest("img2img", image=image, prompt="x", steps=4, seed=seed, strength=0.5,
                                    model=str(tiny_inpaint_dir), device="cpu")
        return generate(request, models=models)

    redrawn = img2img(9)
    assert redrawn.region == Bounds(0, 0, 96, 72) and redrawn.images[0].shape == (72, 96, 4)
    assert np.array_equal(img2img(9).images[0], redrawn.images[0])
    assert not np.array_equal(img2img(10).images[0], redrawn.images[0])
    assert redrawn.parameters[0]["denoising_strength"] == 0.5


def test_cli_inpaint_with_a_model_writes_parameters(tiny_inpaint_dir, tmp_path):
    from PIL import Image

    from sd_studio.cli import main
    from sd_studio.document.io.parameters import parse_parameters

    image = _photo(64, 80)
    mask = np.zeros((64, 80), np.uint8)
    mask[20:40, 20:50] = 255
    Image.fromarray(image).save(tmp_path / "in.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out.png"
    status = main(["inpaint", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"), "-o", str(out),
                   "--model", str(tiny_inpaint_dir), "--steps", "2", "--seed", "77", "--prompt", "cat, sitting",
                   "--device", "cpu", "--quiet"])
    assert status == 0
    written = Image.open(out)
    assert written.size == (80, 64)
    params = parse_parameters(written.info["parameters"])
    assert params["prompt"] == "cat, sitting" and params["seed"] == 77 and params["steps"] == 2
    assert params["model"] == tiny_inpaint_dir.name


def test_cli_applies_loras_with_their_weights(tiny_sd_dir, tiny_lora, tmp_path):
    from PIL import Image

    from sd_studio.cli import main
    from sd_studio.document.io.parameters import parse_parameters

    Image.fromarray(_photo(64, 64)).save(tmp_path / "in.png")
    common = ["img2img", str(tmp_path / "in.png"), "--model", str(tiny_sd_dir), "--steps", "2", "--seed", "5",
              "--prompt", "a cat", "--device", "cpu", "--quiet", "--memory-mode", "attention-slicing"]
    outputs = {}
    for name, extra in {"plain": [], "full": ["--lora", str(tiny_lora)], "weak": ["--lora", f"{tiny_lora}:0.3"]}.items():
        out = tmp_path / f"{name}.png"
        assert main(common + ["-o", str(out)] + extra) == 0
        outputs[name] = np.asarray(Image.open(out))
    assert not np.array_equal(outputs["plain"], outputs["full"])
    assert not np.array_equal(outputs["full"], outputs["weak"])
    params = parse_parameters(Image.open(tmp_path / "plain.png").info["parameters"])
    assert params["seed"] == 5


def test_cli_refuses_a_missing_lora(tiny_sd_dir, tmp_path, capsys):
    from PIL import Image

    from sd_studio.cli import main

    Image.fromarray(_photo(64, 64)).save(tmp_path / "in.png")
    status = main(["img2img", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model", str(tiny_sd_dir),
                   "--prompt", "a cat", "--steps", "1", "--quiet", "--lora", str(tmp_path / "gone.safetensors:0.5")])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sd-studio: error:") and "LoRA" in err[0]


def test_the_recorded_parameters_reproduce_a_run_with_a_lora(tiny_sd_dir, tiny_lora, models):
    import hashlib
    import struct

    from PIL import Image
    from sd_parsers import ParserManager

    from sd_studio.document.io.parameters import parse_parameters

    image = _photo(64, 64)
    request = GenerationRequest("img2img", image=image, prompt="a cat", steps=2, seed=4, model=str(tiny_sd_dir),
                                device="cpu", precision="fp32", loras=((str(tiny_lora), 0.5),))
    result = generate(request, models=models)
    text = result.parameters_text(0)
    p = parse_parameters(text)
    assert p["prompt"] == "a cat <lora:style:0.5>"  # where A1111 keeps LoRAs, and re-applies them from
    raw = tiny_lora.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    assert p["Lora hashes"] == f"style: {hashlib.sha256(raw[8 + length:]).hexdigest()[:12]}"
    assert p["Precision"] == "fp32" and "CPU backend" not in p and "Match color" not in p
    assert text.splitlines()[-1].startswith("Steps: 2, Sampler: Euler a, CFG scale: 7, Seed: 4, Size: 64x64, ")
    # Re-running from the record (its prompt keeps the tag) gives the same picture and the same record.
    again = generate(dataclasses.replace(request, prompt=p["prompt"]), models=models)
    assert np.array_equal(again.images[0], result.images[0])
    assert again.parameters_text(0) == text
    # The tag is a name, not text: without the LoRA it changes nothing, and it is not recorded.
    plain = generate(dataclasses.replace(request, loras=()), models=models)
    tagged = generate(dataclasses.replace(request, loras=(), prompt=p["prompt"]), models=models)
    assert np.array_equal(plain.images[0], tagged.images[0])
    assert not np.array_equal(plain.images[0], result.images[0])
    assert "Lora hashes" not in tagged.parameters[0]
    # sd-parsers (what image viewers use) reads the prompt with its tag and the sampler settings.
    from sd_studio.document.io.images import save_image

    path = tiny_lora.parent / "reproduced.png"
    save_image(path, result.composite_onto(image), parameters=text)
    info = ParserManager().parse(Image.open(path))
    assert info.full_prompt == "a cat <lora:style:0.5>"
    assert info.samplers[0].parameters["seed"] == "4"


def test_the_record_says_the_precision_used_the_inpaint_area_and_colour_matching(tiny_inpaint_dir, models):
    image = _photo(64, 80)
    mask = np.zeros((64, 80), np.uint8)
    mask[20:40, 20:50] = 255
    base = GenerationRequest("inpaint", image=image, mask=mask, steps=1, seed=2, model=str(tiny_inpaint_dir),
                             device="cpu")
    bf16 = generate(dataclasses.replace(base, precision="bf16", match_color=True), models=models).parameters[0]
    assert bf16["Precision"] == "bf16" and bf16["Match color"] is True
    assert bf16["Inpaint area"] == "Only masked" and bf16["Masked area padding"] == 32
    whole = generate(dataclasses.replace(base, precision="fp32", whole_image=True), models=models)
    p = whole.parameters[0]
    assert p["Precision"] == "fp32" and "Match color" not in p and "Masked area padding" not in p
    assert p["Inpaint area"] == "Whole picture"
    assert ", Mask blur: 4, Inpaint area: Whole picture, Precision: fp32" in whole.parameters_text(0)


def test_the_record_names_the_openvino_backend_only_when_it_ran(tiny_sd_dir, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    import openvino

    from sd_studio.engine.models.loading import ModelCache

    monkeypatch.setenv("SD_STUDIO_OPENVINO_CACHE", str(tmp_path / "ov"))
    monkeypatch.setenv("SD_STUDIO_CPU_BACKEND", "openvino")
    request = GenerationRequest("txt2img", prompt="a cat", steps=1, seed=3, width=64, height=64,
                                model=str(tiny_sd_dir), device="cpu", precision="fp32")
    p = generate(request, models=ModelCache()).parameters[0]
    assert p["CPU backend"] == "OpenVINO" and p["Precision"] == "fp32"

    def broken(*args, **kwargs):
        raise RuntimeError("conversion exploded")

    monkeypatch.setenv("SD_STUDIO_OPENVINO_CACHE", str(tmp_path / "ov-broken"))
    monkeypatch.setattr(openvino, "convert_model", broken)
    p = generate(request, models=ModelCache()).parameters[0]
    assert "CPU backend" not in p and p["Precision"] == "fp32"  # it fell back to torch
