"""GenerationRequest validation and GenerationResult composition."""

from __future__ import annotations

import numpy as np
import pytest

from sd_studio.document.geometry import Bounds
from sd_studio.engine.request import GenerationRequest, GenerationResult, MAX_SEED
from sd_studio.engine.schedulers import scheduler_names
from sd_studio.errors import GenerationError


def _image(h=32, w=48, c=3):
    return np.full((h, w, c), 100, np.uint8)


def _mask(h=32, w=48):
    m = np.zeros((h, w), np.uint8)
    m[8:16, 8:24] = 255
    return m


def test_validated_fills_defaults():
    r = GenerationRequest("inpaint", image=_image(), mask=_mask(), model="some/model").validated()
    assert r.strength == 1.0 and r.engine == "diffusion"
    assert isinstance(r.seed, int) and 0 <= r.seed <= MAX_SEED
    i2i = GenerationRequest("img2img", image=_image(), model="x/y").validated()
    assert i2i.strength == 0.75
    classical = GenerationRequest("inpaint", image=_image(), mask=_mask()).validated()
    assert classical.engine == "classical"


def test_validated_keeps_given_values_and_seeds_count_up():
    r = GenerationRequest("txt2img", model="a/b", seed=41, variants=3, strength=0.5, guidance=5).validated()
    assert r.seed == 41 and r.strength == 0.5 and r.guidance == 5.0
    assert r.seeds == [41, 42, 43]


def test_seed_near_the_top_still_gives_valid_variant_seeds():
    r = GenerationRequest("txt2img", model="a/b", seed=MAX_SEED, variants=4).validated()
    assert max(r.seeds) <= MAX_SEED and len(set(r.seeds)) == 4


def test_random_seeds_differ_between_validations():
    seeds = {GenerationRequest("txt2img", model="a/b").validated().seed for _ in range(8)}
    assert len(seeds) > 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mode="paint"), "Unknown mode"),
        (dict(mode="img2img", model="a/b"), "needs a source image"),
        (dict(mode="inpaint", image=_image(), model="a/b"), "needs a mask"),
        (dict(mode="inpaint", image=_image(), mask=np.zeros((32, 48), np.uint8)), "mask is empty"),
        (dict(mode="inpaint", image=_image(), mask=_mask(16, 16)), "mask is 16x16 but the image is 48x32"),
        (dict(mode="inpaint", image=_image().astype(np.float32), mask=_mask()), "uint8"),
        (dict(mode="inpaint", image=_image(c=2), mask=_mask()), "3 or 4"),
        (dict(mode="txt2img", model="a/b", steps=0), "Steps"),
        (dict(mode="txt2img", model="a/b", steps=151), "Steps"),
        (dict(mode="txt2img", model="a/b", steps=2.5), "Steps"),
        (dict(mode="txt2img", model="a/b", guidance=-1), "Guidance"),
        (dict(mode="img2img", image=_image(), model="a/b", strength=0), "strength"),
        (dict(mode="img2img", image=_image(), model="a/b", strength=1.5), "strength"),
        (dict(mode="txt2img", model="a/b", seed=-1), "seed"),
        (dict(mode="txt2img", model="a/b", scheduler="Heun++"), "Unknown sampler"),
        (dict(mode="txt2img", model="a/b", width=100), "Width"),
        (dict(mode="txt2img", model="a/b", height=8), "Height"),
        (dict(mode="txt2img", model="a/b", variants=0), "Variants"),
        (dict(mode="txt2img"), "needs a diffusion model"),
        (dict(mode="txt2img", engine="diffusion"), "needs a model"),
        (dict(mode="txt2img", model="a/b", engine="magic"), "Unknown engine"),
        (dict(mode="txt2img", model="a/b", loras=(("style.ckpt", 0.8),)), "only .safetensors"),
        (dict(mode="txt2img", model="a/b", loras=(("style.safetensors",),)), "(path, weight)"),
        (dict(mode="txt2img", model="a/b", padding=-1), "Padding"),
        (dict(mode="txt2img", model="a/b", feather=-2), "Feather"),
        (dict(mode="txt2img", model="a/b", resolution=500), "Resolution"),
        (dict(mode="txt2img", model="a/b", device="tpu"), "Unknown device"),
        (dict(mode="txt2img", model="a/b", memory_mode="low"), "Unknown memory mode"),
        (dict(mode="txt2img", model="a/b", precision="int8"), "Unknown precision"),
    ],
)
def test_bad_settings_raise_one_clear_sentence(kwargs, message):
    with pytest.raises(GenerationError, match=message) as info:
        GenerationRequest(**kwargs).validated()
    text = str(info.value)
    assert text.endswith(".") and "\n" not in text


def test_every_sampler_name_validates():
    for name in scheduler_names():
        assert GenerationRequest("txt2img", model="a/b", scheduler=name).validated().scheduler == name
    assert {"Euler a", "Euler", "DPM++ 2M", "DPM++ 2M Karras", "DPM++ SDE Karras", "DDIM", "UniPC", "LCM"} <= set(
        scheduler_names()
    )


def test_seeds_need_validation_first():
    with pytest.raises(GenerationError, match="validate"):
        GenerationRequest("txt2img", model="a/b").seeds


def test_composite_onto_pastes_through_alpha():
    source = np.zeros((10, 12, 3), np.uint8)
    source[...] = (10, 20, 30)
    patch = np.zeros((4, 6, 4), np.uint8)
    patch[..., :3] = (200, 100, 50)
    patch[..., 3] = 255
    patch[0, 0, 3] = 0
    patch[0, 0, :3] = 0
    patch[1, 1, 3] = 128
    result = GenerationResult(images=[patch], region=Bounds(3, 2, 6, 4), seeds=[1])
    out = result.composite_onto(source)
    assert out.shape == (10, 12, 4) and (out[..., 3] == 255).all()
    assert tuple(out[0, 0, :3]) == (10, 20, 30)  # outside the region: untouched
    assert tuple(out[2, 3, :3]) == (10, 20, 30)  # alpha 0 inside the region: untouched
    assert tuple(out[2, 4, :3]) == (200, 100, 50)
    mid = out[3, 4, :3].astype(int)  # half alpha: about halfway between
    assert np.all(np.abs(mid - (np.array([200, 100, 50]) + np.array([10, 20, 30])) / 2) <= 1)


def test_composite_onto_transparent_source_keeps_straight_alpha():
    source = np.zeros((4, 4, 4), np.uint8)
    patch = np.zeros((4, 4, 4), np.uint8)
    patch[..., :3] = 90
    patch[..., 3] = 64
    out = GenerationResult(images=[patch], region=Bounds(0, 0, 4, 4), seeds=[0]).composite_onto(source)
    assert (out[..., :3] == 90).all() and (out[..., 3] == 64).all()


def test_composite_onto_rejects_a_region_outside_the_image():
    patch = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(GenerationError):
        GenerationResult(images=[patch], region=Bounds(8, 8, 4, 4), seeds=[0]).composite_onto(_image(10, 10))


def test_parameters_text_is_a1111_infotext():
    params = dict(prompt="a red fox", negative_prompt="blurry", steps=3, sampler="Euler a", cfg_scale=7.0, seed=5,
                  width=64, height=64, model_hash="abcdef0123", model="tiny", denoising_strength=0.75)
    result = GenerationResult(images=[np.zeros((1, 1, 4), np.uint8)], region=Bounds(0, 0, 1, 1), seeds=[5],
                              parameters=[params])
    text = result.parameters_text(0)
    assert text.startswith("a red fox\nNegative prompt: blurry\n")
    assert "Steps: 3, Sampler: Euler a" in text and "Seed: 5" in text and "Size: 64x64" in text
