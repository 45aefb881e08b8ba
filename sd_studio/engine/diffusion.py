"""Running txt2img / img2img / inpaint on a loaded model: samplers, seeds, LoRAs, memory modes, progress and cancel."""

from __future__ import annotations

import gc
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from sd_studio.engine.request import Progress
from sd_studio.engine.schedulers import make_scheduler, scheduler_names
from sd_studio.errors import Cancelled, GenerationError, ModelError, SDStudioError

SCHEDULERS: tuple[str, ...] = scheduler_names()
# From most memory to least; each mode keeps the savings of the ones before it.
MEMORY_LADDER = ("none", "attention-slicing", "vae-tiling", "cpu-offload")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's CUDA out-of-memory error or any RuntimeError whose text says out of memory (MPS, CPU)."""
    from sd_studio.engine.models.devices import is_out_of_memory_error

    return is_out_of_memory_error(exc)


def lower_memory_mode(mode: str) -> str | None:
    """The next mode down the ladder that saves more memory, or None at the bottom."""
    i = MEMORY_LADDER.index(mode)
    return MEMORY_LADDER[i + 1] if i + 1 < len(MEMORY_LADDER) else None


def pick_memory_mode(model, requested: str = "auto") -> str:
    """The memory mode to run in: the requested one, or for "auto" one chosen by device and free VRAM.

    CPU: none (RAM is the limit, slicing only slows it). MPS: attention slicing (Apple's advice below 64 GB).
    CUDA: by free memory against what the family needs at its native size; never above a mode an
    earlier out-of-memory on this model forced.
    """
    if requested != "auto":
        if requested not in MEMORY_LADDER:
            raise GenerationError(f"Unknown memory mode {requested!r}; use auto, {', '.join(MEMORY_LADDER)}.")
        return requested
    if model.device == "cuda":
        import torch

        free_gib = torch.cuda.mem_get_info()[0] / 2**30
        full, tiled = (12.0, 8.0) if model.family == "sdxl" else (6.0, 4.0)
        if str(model.dtype).endswith("float32"):
            full, tiled = full * 2, tiled * 2
        mode = "none" if free_gib >= full else "vae-tiling" if free_gib >= tiled else "cpu-offload"
    elif model.device == "mps":
        mode = "attention-slicing"
    else:
        mode = "none"
    return max(mode, model.memory_floor, key=MEMORY_LADDER.index)


def apply_memory_mode(model, pipe, mode: str) -> None:
    """Switch the model's shared components to `mode` (undoing the previous one) for a run through `pipe`."""
    if model.memory_mode == mode and getattr(pipe, "_sd_studio_memory_mode", None) == mode:
        return
    level = MEMORY_LADDER.index(mode)
    offload = level >= 3 and model.device == "cuda"  # offload needs an accelerator to offload from
    if model.memory_mode == "cpu-offload":
        pipe.remove_all_hooks()  # the hooks sit on the shared modules, whichever pipeline placed them
        if not offload:  # back on the device; when offloading again they stay on the CPU (no VRAM spike)
            for component in model.components.values():
                if hasattr(component, "to") and hasattr(component, "parameters"):
                    component.to(model.device)
    if level >= 1:
        pipe.enable_attention_slicing()
    else:
        pipe.disable_attention_slicing()
    vae = model.components.get("vae")
    if vae is not None:
        if level >= 2:
            vae.enable_slicing()
            vae.enable_tiling()
        else:
            vae.disable_slicing()
            vae.disable_tiling()
    if offload:
        pipe.enable_model_cpu_offload(device=model.device)
    model.memory_mode = mode
    pipe._sd_studio_memory_mode = mode


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


@contextmanager
def loras_applied(pipe, loras, model_name: str = "the model"):
    """LoRA .safetensors files fused in at their weights for the duration of the block, then unloaded.

    Unloading afterwards keeps the model's shared components clean for the next request.
    """
    loras = tuple(loras or ())
    if not loras:
        yield
        return
    from sd_studio.engine.models.files import PICKLE_SUFFIXES, pickle_refusal, read_safetensors_header

    names: list[str] = []
    try:
        for i, (path, weight) in enumerate(loras):
            file = Path(path).expanduser()
            if file.suffix.lower() in PICKLE_SUFFIXES:
                raise ModelError(pickle_refusal(file))
            if not file.is_file():
                raise ModelError(f"There is no LoRA file at {path}.")
            read_safetensors_header(file)
            name = f"sd_studio_lora_{i}"
            try:
                pipe.load_lora_weights(str(file), adapter_name=name)
            except ImportError:
                raise ModelError("LoRAs need the peft package: pip install peft.") from None
            except Exception as exc:
                raise ModelError(f"{file.name} is not a LoRA that fits {model_name} ({type(exc).__name__}).") from None
            names.append(name)
        pipe.set_adapters(names, adapter_weights=[float(w) for _, w in loras])
        yield
    finally:
        try:
            pipe.unload_lora_weights()
        except Exception:  # nothing was loaded, or peft is missing; either way nothing to undo
            pass


def run_diffusion(
    model,
    mode: str,
    *,
    image: np.ndarray | None,
    mask: np.ndarray | None,
    prompt: str,
    negative_prompt: str,
    steps: int,
    guidance: float,
    strength: float,
    seeds: list[int],
    scheduler: str,
    width: int,
    height: int,
    memory_mode: str = "auto",
    loras: tuple[tuple[str, float], ...] = (),
    progress: Callable[[Progress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    before_attempt: Callable[[str], None] | None = None,
) -> list[np.ndarray]:
    """One (height, width, 3) uint8 RGB image per seed from `model` in `mode`; all or nothing.

    `image` is (height, width, 3) uint8 at the model input size (multiples of 8); `mask` (height, width)
    uint8, 255 repaints. A 9-channel inpainting model inpaints natively (and runs txt2img and img2img
    through its inpaint pipeline with an all-white mask); an ordinary model inpaints by blending masked
    latents each step. Prompts longer than 75 tokens are encoded in 75-token chunks
    (not cut), with A1111 emphasis such as "(word:1.3)". `loras` are (.safetensors path, weight) pairs
    applied for this call only. Each seed has its own torch.Generator, so a seed reproduces its image on the same device.
    `progress` gets Progress("denoising", step, total, preview) after every step; when `cancel()`
    returns True the run stops before the next step and raises Cancelled. Out of memory retries once in
    the next lower memory mode, then raises GenerationError. `before_attempt(memory_mode)` is called
    inside each attempt (tests inject out-of-memory errors through it).
    """
    if mode not in ("txt2img", "img2img", "inpaint"):
        raise GenerationError(f"Unknown mode {mode!r}; use txt2img, img2img or inpaint.")
    if width % 8 or height % 8 or width < 8 or height < 8:
        raise GenerationError(f"The model input size must be multiples of 8, not {width}x{height}.")
    if mode != "txt2img":
        if image is None or image.shape[:2] != (height, width) or image.ndim != 3 or image.shape[2] != 3:
            raise GenerationError(f"{mode} needs a ({height}, {width}, 3) RGB image at the model input size.")
    if mode == "inpaint" and (mask is None or mask.shape != (height, width)):
        raise GenerationError(f"inpaint needs a ({height}, {width}) mask at the model input size.")
    if not seeds:
        raise GenerationError("No seeds given; at least one variant is needed.")
    if scheduler not in SCHEDULERS:
        raise GenerationError(f"Unknown sampler {scheduler!r}; choose one of: {', '.join(SCHEDULERS)}.")

    if getattr(model, "is_inpaint", False) and mode != "inpaint":
        mode, image, mask, strength = _as_inpaint(mode, image, strength, width, height)
    pipe = model.pipeline(mode)
    openvino = getattr(model, "openvino", None)
    if openvino is not None:  # engine/cpu/openvino.py: convert/compile for this shape first, with messages
        openvino.prepare(width, height, guidance, loras, progress)
    current = pick_memory_mode(model, memory_mode)
    retried = False
    results: list[np.ndarray] = []
    with loras_applied(pipe, loras, model.name):
        for index, seed in enumerate(seeds):
            while True:
                if cancel is not None and cancel():
                    raise Cancelled("Generation cancelled.")
                try:
                    apply_memory_mode(model, pipe, current)
                    if before_attempt is not None:
                        before_attempt(current)
                    results.append(
                        _generate_one(
                            model, pipe, mode, image, mask, prompt, negative_prompt, steps, guidance, strength,
                            seed, scheduler, width, height, progress, cancel, index, len(seeds),
                        )
                    )
                    break
                except SDStudioError:  # cancelled, bad LoRA, ...: the user's to act on, not memory
                    raise
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    _free_memory()
                    lower = lower_memory_mode(current)
                    if retried or lower is None:
                        raise GenerationError(
                            f"Out of memory on {model.device} even in memory mode {current!r}; try a smaller "
                            "resolution, fewer variants, or another device."
                        ) from None
                    retried = True
                    current = lower
                    model.memory_floor = lower  # later runs on this model start where this one succeeded
                    if progress is not None:
                        progress(Progress("retrying", 0, 0, message=f"Out of memory; retrying with {lower}"))
    return results


def precision_used(model) -> str:
    """The precision the UNet last ran in ("fp16" | "bf16" | "fp32"), as recorded in "Precision"; never "auto"."""
    openvino = getattr(model, "openvino", None)
    if openvino is not None and not openvino.failed and not openvino.torch_only:
        return openvino.precision
    unet = model.components.get("unet")
    if getattr(unet, "_sd_studio_bf16_hooks", None):
        return "bf16"
    dtype = str(getattr(unet, "dtype", model.dtype))
    return {"torch.float16": "fp16", "torch.bfloat16": "bf16", "torch.float32": "fp32"}.get(dtype, dtype)


def backend_used(model) -> str:
    """What ran the model's UNet last: "OpenVINO" when the OpenVINO backend served it, else "torch"."""
    openvino = getattr(model, "openvino", None)
    if openvino is not None and not openvino.failed and not openvino.torch_only:
        return "OpenVINO"
    return "torch"


def _as_inpaint(mode: str, image, strength: float, width: int, height: int):
    """(mode, image, mask, strength) that run txt2img/img2img through an inpainting model, as A1111 does.

    The mask is all white, so the UNet's masked-image input is blank (what A1111 feeds it); img2img keeps
    its image and strength, txt2img starts from pure noise (strength 1) over a grey image.
    """
    mask = np.full((height, width), 255, np.uint8)
    if mode == "txt2img":
        return "inpaint", np.full((height, width, 3), 128, np.uint8), mask, 1.0
    return "inpaint", image, mask, strength


def _inference_steps(steps: int, strength: float, mode: str) -> int:
    """Steps to ask the pipeline for so that img2img/inpaint runs at least one denoising step at low strength."""
    if mode == "txt2img":
        return steps
    n = steps
    while int(n * strength) < 1:
        n = max(n + 1, math.ceil(1 / strength))
    return n


def _generate_one(model, pipe, mode, image, mask, prompt, negative_prompt, steps, guidance, strength,
                  seed, scheduler, width, height, progress, cancel, index, count) -> np.ndarray:
    import torch
    from PIL import Image

    from sd_studio.engine.preview import latents_to_rgb
    from sd_studio.engine.prompts.embeds import encode_prompts

    generator_device = "cuda" if model.device == "cuda" else "cpu"  # MPS generators are not reproducible
    generator = torch.Generator(generator_device).manual_seed(int(seed))
    pipe.scheduler = make_scheduler(scheduler, model.components["scheduler"].config, seed)
    execution_device = pipe._execution_device
    embeds = encode_prompts(pipe, model.family, prompt, negative_prompt, execution_device, model.dtype)
    family = "sdxl" if model.family == "sdxl" else "sd1"
    n = _inference_steps(steps, strength, mode)
    label = f"variant {index + 1} of {count}" if count > 1 else ""

    def on_step_end(p, step, timestep, tensors):
        if cancel is not None and cancel():
            raise Cancelled("Generation cancelled.")
        if progress is not None:
            total = getattr(p, "_num_timesteps", None) or n
            preview = latents_to_rgb(tensors["latents"], family)
            progress(Progress("denoising", step + 1, total, preview, label))
            if step + 1 >= total:
                progress(Progress("decoding", total, total, None, label))
        return tensors

    kwargs = dict(
        num_inference_steps=n,
        guidance_scale=float(guidance),
        generator=generator,
        output_type="np",
        callback_on_step_end=on_step_end,
        callback_on_step_end_tensor_inputs=["latents"],
        **embeds,
    )
    if mode != "img2img":
        kwargs.update(height=height, width=width)
    if mode != "txt2img":
        kwargs.update(image=Image.fromarray(np.ascontiguousarray(image[..., :3])), strength=float(strength))
    if mode == "inpaint":
        kwargs["mask_image"] = Image.fromarray(np.ascontiguousarray(mask))
    with torch.inference_mode():
        out = pipe(**kwargs).images[0]
    return np.clip(np.rint(np.asarray(out, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
