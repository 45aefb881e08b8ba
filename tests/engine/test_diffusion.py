"""run_diffusion on tiny random models: modes, samplers, seeds, cancel, out-of-memory retry, LoRAs, long prompts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sd_studio.engine.diffusion import SCHEDULERS, pick_memory_mode, run_diffusion
from sd_studio.engine.models.loading import load_model
from sd_studio.engine.prompts.embeds import chunk_ids, encode_prompts
from sd_studio.errors import Cancelled, GenerationError, ModelError

SIZE = 64


@pytest.fixture(scope="session")
def sd_model(tiny_sd_dir):
    return load_model(str(tiny_sd_dir), device="cpu")


@pytest.fixture(scope="session")
def inpaint_model(tiny_inpaint_dir):
    return load_model(str(tiny_inpaint_dir), device="cpu")


@pytest.fixture
def fresh_model(tiny_sd_dir):
    """A model of its own, for tests that change its memory state."""
    return load_model(str(tiny_sd_dir), device="cpu")


def run(model, mode="txt2img", image=None, mask=None, **kwargs):
    args = dict(prompt="a red fox", negative_prompt="", steps=2, guidance=7.0, strength=0.8, seeds=[1],
                scheduler="Euler a", width=SIZE, height=SIZE)
    args.update(kwargs)
    return run_diffusion(model, mode, image=image, mask=mask, **args)


def _differ(a: np.ndarray, b: np.ndarray) -> bool:
    return np.abs(a.astype(int) - b.astype(int)).max() > 0


def test_three_modes_give_one_rgb_image_per_seed(sd_model, tiny_image, tiny_mask):
    for mode in ("txt2img", "img2img", "inpaint"):
        out = run(sd_model, mode, image=tiny_image, mask=tiny_mask, seeds=[3, 4])
        assert len(out) == 2
        assert all(o.shape == (SIZE, SIZE, 3) and o.dtype == np.uint8 for o in out)


def test_img2img_depends_on_the_source_image(sd_model, tiny_image):
    a = run(sd_model, "img2img", image=tiny_image, strength=0.5)[0]
    b = run(sd_model, "img2img", image=255 - tiny_image, strength=0.5)[0]
    assert _differ(a, b)


def test_low_strength_still_runs_a_step(sd_model, tiny_image):
    steps = []
    run(sd_model, "img2img", image=tiny_image, strength=0.05, steps=2, progress=lambda p: steps.append(p.phase))
    assert "denoising" in steps


def test_inpainting_model_runs_natively(inpaint_model, sd_model, tiny_image, tiny_mask):
    assert inpaint_model.is_inpaint
    a = run(inpaint_model, "inpaint", image=tiny_image, mask=tiny_mask, strength=1.0)[0]
    b = run(inpaint_model, "inpaint", image=tiny_image, mask=255 - tiny_mask, strength=1.0)[0]
    assert a.shape == (SIZE, SIZE, 3) and _differ(a, b)  # the 9-channel UNet sees the mask


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_sampler_runs_and_a_seed_reproduces(sd_model, scheduler):
    first = run(sd_model, seeds=[11], scheduler=scheduler)[0]
    again = run(sd_model, seeds=[11], scheduler=scheduler)[0]
    other = run(sd_model, seeds=[12], scheduler=scheduler)[0]
    assert np.array_equal(first, again)
    assert _differ(first, other)


def test_variants_differ_and_each_matches_its_own_seed(sd_model):
    a, b = run(sd_model, seeds=[21, 22], steps=3)
    assert _differ(a, b)
    assert np.array_equal(run(sd_model, seeds=[22], steps=3)[0], b)


def test_progress_reports_each_step_with_a_preview(sd_model):
    events = []
    run(sd_model, steps=3, progress=events.append)
    denoising = [e for e in events if e.phase == "denoising"]
    assert [e.step for e in denoising] == [1, 2, 3] and all(e.total == 3 for e in denoising)
    assert all(e.preview.shape == (SIZE // 8, SIZE // 8, 3) and e.preview.dtype == np.uint8 for e in denoising)
    assert events[-1].phase == "decoding"


def test_cancel_mid_run_raises_cancelled_and_leaves_the_model_usable(sd_model):
    events = []
    with pytest.raises(Cancelled):
        run(sd_model, steps=4, seeds=[5, 6], progress=events.append, cancel=lambda: len(events) >= 1)
    assert [e.step for e in events] == [1]  # stopped before the second step
    baseline = run(sd_model, steps=2, seeds=[5])[0]
    assert np.array_equal(run(sd_model, steps=2, seeds=[5])[0], baseline)


def test_cancel_before_start_runs_nothing(sd_model):
    events = []
    with pytest.raises(Cancelled):
        run(sd_model, progress=events.append, cancel=lambda: True)
    assert events == []


def test_out_of_memory_retries_once_in_the_next_lower_mode(fresh_model):
    baseline = run(fresh_model, seeds=[7], memory_mode="none")[0]
    attempts = []

    def out_of_memory_once(mode):
        attempts.append(mode)
        if len(attempts) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    events = []
    out = run(fresh_model, seeds=[7], memory_mode="none", before_attempt=out_of_memory_once, progress=events.append)
    assert attempts == ["none", "attention-slicing"]
    assert fresh_model.memory_mode == "attention-slicing" and fresh_model.memory_floor == "attention-slicing"
    assert any(e.phase == "retrying" for e in events)
    assert np.abs(out[0].astype(int) - baseline.astype(int)).max() <= 2  # slicing changes memory, not the picture
    assert pick_memory_mode(fresh_model, "auto") == "attention-slicing"  # later auto runs start lower


def test_out_of_memory_twice_gives_a_clear_error_and_no_images(fresh_model):
    attempts = []

    def always_out_of_memory(mode):
        attempts.append(mode)
        raise RuntimeError("MPS backend out of memory (MPS allocated: 8 GB)")

    with pytest.raises(GenerationError, match="Out of memory") as info:
        run(fresh_model, seeds=[1, 2], memory_mode="vae-tiling", before_attempt=always_out_of_memory)
    assert attempts == ["vae-tiling", "cpu-offload"]
    assert "\n" not in str(info.value)


def test_other_errors_are_not_retried(fresh_model):
    attempts = []

    def broken(mode):
        attempts.append(mode)
        raise ValueError("something else")

    with pytest.raises(ValueError):
        run(fresh_model, before_attempt=broken)
    assert attempts == ["none"]


def test_memory_modes_switch_the_shared_components(fresh_model):
    vae = fresh_model.components["vae"]
    run(fresh_model, memory_mode="vae-tiling")
    assert vae.use_tiling and vae.use_slicing and fresh_model.memory_mode == "vae-tiling"
    run(fresh_model, memory_mode="none")
    assert not vae.use_tiling and not vae.use_slicing and fresh_model.memory_mode == "none"
    assert pick_memory_mode(fresh_model, "auto") == "none"  # CPU: no savings needed


def test_chunk_ids_cut_at_75_and_break_after_a_late_comma():
    assert chunk_ids([]) == [[]]
    assert [len(c) for c in chunk_ids(list(range(160)))] == [75, 75, 10]
    comma = 999
    ids = [1] * 70 + [comma] + [2] * 10
    chunks = chunk_ids(ids, comma_id=comma)
    assert chunks[0][-1] == comma and len(chunks[0]) == 71 and chunks[1] == [2] * 10


def test_long_prompts_are_encoded_in_chunks_not_cut(sd_model):
    pipe = sd_model.pipeline("txt2img")
    short = encode_prompts(pipe, "sd1", "a fox", "", "cpu", torch.float32)
    long = encode_prompts(pipe, "sd1", "a fox " * 30, "", "cpu", torch.float32)  # 150 one-character tokens
    assert short["prompt_embeds"].shape == (1, 77, 32)
    assert long["prompt_embeds"].shape == (1, 154, 32)
    assert long["negative_prompt_embeds"].shape == (1, 154, 32)  # padded to match for CFG
    head = "x" * 75  # exactly one chunk with this one-token-per-character tokenizer
    a = run(sd_model, prompt=head + " red fox")[0]
    b = run(sd_model, prompt=head + " blue sky")[0]
    assert _differ(a, b)  # the words past token 75 still steer the image


def test_lora_changes_the_image_and_is_unloaded_afterwards(fresh_model, tiny_lora):
    lora = tiny_lora
    baseline = run(fresh_model, seeds=[9])[0]
    with_lora = run(fresh_model, seeds=[9], loras=((str(lora), 1.0),))[0]
    weaker = run(fresh_model, seeds=[9], loras=((str(lora), 0.3),))[0]
    assert _differ(with_lora, baseline) and _differ(with_lora, weaker)
    assert np.array_equal(run(fresh_model, seeds=[9])[0], baseline)  # shared components left clean


def test_bad_loras_are_refused(fresh_model, tiny_sd_dir, tmp_path):
    with pytest.raises(ModelError, match="no LoRA file"):
        run(fresh_model, loras=((str(tmp_path / "gone.safetensors"), 1.0),))
    ckpt = tmp_path / "style.ckpt"
    ckpt.write_bytes(b"not read")
    with pytest.raises(ModelError, match="arbitrary code"):
        run(fresh_model, loras=((str(ckpt), 1.0),))
    from safetensors.numpy import save_file

    unrelated = tmp_path / "unrelated.safetensors"
    save_file({"weights": np.zeros((3, 3), np.float32)}, str(unrelated))
    with pytest.raises(ModelError, match="not a LoRA"):
        run(fresh_model, loras=((str(unrelated), 1.0),))
    baseline = run(fresh_model, seeds=[4])[0]  # still usable after the failures
    assert baseline.shape == (SIZE, SIZE, 3)


def test_bad_inputs_raise_generation_errors(sd_model, tiny_image):
    with pytest.raises(GenerationError, match="multiples of 8"):
        run(sd_model, width=60)
    with pytest.raises(GenerationError, match="needs a"):
        run(sd_model, "img2img", image=None)
    with pytest.raises(GenerationError, match="mask"):
        run(sd_model, "inpaint", image=tiny_image, mask=None)
    with pytest.raises(GenerationError, match="Unknown sampler"):
        run(sd_model, scheduler="Karras 9000")
    with pytest.raises(GenerationError, match="seeds"):
        run(sd_model, seeds=[])


def test_sdxl_models_use_the_xl_pipelines_in_every_mode(tiny_sdxl_dir, tiny_image, tiny_mask):
    model = load_model(str(tiny_sdxl_dir), device="cpu")
    assert (model.family, model.native_resolution) == ("sdxl", SIZE)
    for mode, name in (("txt2img", "StableDiffusionXLPipeline"), ("img2img", "StableDiffusionXLImg2ImgPipeline"),
                       ("inpaint", "StableDiffusionXLInpaintPipeline")):
        out = run(model, mode, image=tiny_image, mask=tiny_mask, seeds=[2])
        assert type(model.pipeline(mode)).__name__ == name and out[0].shape == (SIZE, SIZE, 3)
    a = run(model, seeds=[5], prompt="x" * 75 + " red fox")[0]
    assert np.array_equal(run(model, seeds=[5], prompt="x" * 75 + " red fox")[0], a)
    assert _differ(run(model, seeds=[5], prompt="x" * 75 + " blue sky")[0], a)
    embeds = encode_prompts(model.pipeline("txt2img"), "sdxl", "a fox " * 30, "blurry", "cpu", torch.float32)
    assert embeds["prompt_embeds"].shape == embeds["negative_prompt_embeds"].shape == (1, 154, 64)
    assert embeds["pooled_prompt_embeds"].shape == (1, 32)
    empty_negative = encode_prompts(model.pipeline("txt2img"), "sdxl", "a fox", "", "cpu", torch.float32)
    assert not empty_negative["negative_prompt_embeds"].any()  # SDXL's zeros for an empty negative prompt


def test_inpainting_model_draws_txt2img_reproducibly_by_seed(inpaint_model):
    first = run(inpaint_model, "txt2img", seeds=[31], width=SIZE, height=2 * SIZE)[0]
    again = run(inpaint_model, "txt2img", seeds=[31], width=SIZE, height=2 * SIZE)[0]
    other = run(inpaint_model, "txt2img", seeds=[32], width=SIZE, height=2 * SIZE)[0]
    assert first.shape == (2 * SIZE, SIZE, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again) and _differ(first, other)
    assert type(inpaint_model.pipeline("txt2img")).__name__ == "StableDiffusionInpaintPipeline"
    assert inpaint_model.pipeline("txt2img").unet is inpaint_model.components["unet"]  # no second load


def test_inpainting_model_redraws_img2img_from_its_source_at_its_strength(inpaint_model, tiny_image):
    def img2img(image, strength, progress=None):
        return run(inpaint_model, "img2img", image=image, strength=strength, steps=4, seeds=[8], progress=progress)[0]

    totals = []
    first = img2img(tiny_image, 0.5, lambda p: totals.append(p.total) if p.phase == "denoising" else None)
    assert first.shape == (SIZE, SIZE, 3)
    assert totals and totals[-1] == 2  # strength 0.5 of 4 steps, as img2img runs them
    assert np.array_equal(img2img(tiny_image, 0.5), first)
    assert _differ(img2img(255 - tiny_image, 0.5), first)  # the source shapes the result
    assert _differ(img2img(tiny_image, 0.75), first)
