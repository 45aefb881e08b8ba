"""generate(): the one call that turns a GenerationRequest into a GenerationResult.

The editor's engine thread and the command line both call it. It validates the request, plans the
region, runs the classical fill or diffusion for every variant, scales each result back, pastes it
through the feathered mask and records the parameters that made it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sd_studio.document.geometry import Bounds, Extent
from sd_studio.engine.region import RegionPlan, crop_for_model, mask_bounds, paste_back, plan_region
from sd_studio.engine.request import (
    CancelCallback,
    GenerationRequest,
    GenerationResult,
    Progress,
    ProgressCallback,
)
from sd_studio.errors import Cancelled, GenerationError

CLASSICAL_SAMPLERS = {"Telea": "telea", "Navier-Stokes": "ns"}
"""Sampler names that choose a classical fill method; any other name uses Telea."""

CLASSICAL_RESOLUTION = 512
"""The resolution a classical plan is made with; the fill itself runs at the region's own size."""

_default_models = None


def generate(
    request: GenerationRequest,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
    models=None,
    backend=None,
) -> GenerationResult:
    """Run a request (classical fill or diffusion) and return its GenerationResult; raises GenerationError/Cancelled.

    Diffusion runs on `backend` (engine/backends: a ComfyUI server, Bedrock, SageMaker), or on this computer.
    """
    classical_sampler = request.scheduler if request.scheduler in CLASSICAL_SAMPLERS else None
    if classical_sampler is not None:
        # The request's validation knows the diffusion samplers only.
        request = dataclasses.replace(request, scheduler="Euler a")
    request = request.validated()
    _check_cancel(cancel)
    seeds = request.seeds
    if request.engine == "classical":
        method = CLASSICAL_SAMPLERS.get(classical_sampler or "", "telea")
        return _run_classical(request, seeds, method, progress, cancel)
    if classical_sampler is not None:
        raise GenerationError(f"The sampler {classical_sampler!r} belongs to the classical engine, not to diffusion.")
    return _run_diffusion(request, seeds, progress, cancel, _backend(models, backend))


def _run_classical(request, seeds: list[int], method: str, progress, cancel):
    from sd_studio.engine.classical import fill, method_label

    image, mask = request.image, _selection(request.mask)
    plan = _plan(request, mask, CLASSICAL_RESOLUTION).unscaled()
    _report(progress, Progress("filling", 0, 1, message=f"{method_label(method)} fill"))
    rgb, region_mask = crop_for_model(image, mask, plan)
    filled = fill(rgb, region_mask, method=method)
    _check_cancel(cancel)
    rgba = paste_back(image, filled, mask, plan, feather=request.feather, match_color=request.match_color)
    _report(progress, Progress("filling", 1, 1, message="done"))
    # The fill is deterministic: every variant is the same picture under its own seed.
    images = [rgba] + [rgba.copy() for _ in seeds[1:]]
    unused = dataclasses.replace(request, loras=())  # a fill applies no LoRA, so none is recorded
    params = [
        _parameters(unused, seed, plan, mask, sampler=method_label(method), model="classical", model_hash=None)
        for seed in seeds
    ]
    return GenerationResult(images=images, region=plan.bounds, seeds=list(seeds), parameters=params)


def _run_diffusion(request, seeds: list[int], progress, cancel, backend):
    from sd_studio.engine.backends.base import BackendJob

    _report(progress, Progress("loading", 0, 1, message=f"loading {request.model}"))
    model = backend.prepare(request.model, device=request.device, precision=request.precision, progress=progress)
    _check_cancel(cancel)
    resolution = request.resolution or model.native_resolution
    mask = _selection(request.mask) if request.mode != "inpaint" else request.mask
    if request.mode == "txt2img" and request.image is None:
        target = Extent(request.width, request.height)
        plan = RegionPlan(Bounds.from_extent(target), target)
        source = np.zeros((target.height, target.width, 3), np.uint8)
        model_image, model_mask, mask = None, None, None
    else:
        source = request.image
        plan = _plan(request, mask, resolution, getattr(model, "fixed_sizes", None))
        model_image, model_mask = crop_for_model(source, mask, plan)
        if request.mode == "txt2img":
            model_image = None
        if request.mode != "inpaint":
            model_mask = None
    job = BackendJob(
        request.mode,
        image=model_image,
        mask=model_mask,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        steps=request.steps,
        guidance=request.guidance,
        strength=request.strength,
        seeds=tuple(seeds),
        scheduler=request.scheduler,
        width=plan.target.width,
        height=plan.target.height,
        memory_mode=request.memory_mode,
        loras=request.loras,
    )
    outputs = backend.run(model, job, progress=progress, cancel=cancel)
    _check_cancel(cancel)
    images = []
    for i, generated in enumerate(outputs):
        _report(progress, Progress("pasting", i + 1, len(outputs)))
        images.append(paste_back(source, generated, mask, plan, feather=request.feather, match_color=request.match_color))
    setup = backend.record(model)
    params = [
        _parameters(request, seed, plan, mask, sampler=request.scheduler, model=model.name, model_hash=model.hash,
                    setup=setup)
        for seed in seeds
    ]
    return GenerationResult(images=images, region=plan.bounds, seeds=list(seeds), parameters=params)


def _backend(models, backend):
    """The backend a diffusion job runs on: the one given, else this computer with `models` (or the default cache)."""
    if backend is not None:
        return backend
    from sd_studio.engine.backends.local import LocalBackend

    return LocalBackend(models if models is not None else default_models())


def default_models():
    """The process-wide ModelCache used when the caller passes none (keeps the last model loaded)."""
    global _default_models
    if _default_models is None:
        from sd_studio.engine.models.loading import ModelCache

        _default_models = ModelCache()
    return _default_models


def _plan(request, mask: np.ndarray | None, resolution: int, fixed_sizes=None) -> RegionPlan:
    height, width = request.image.shape[:2]
    # The soft edge must fit inside the region, or it would be cut off square at the region's border.
    padding = max(request.padding, request.feather + 1)
    return plan_region(Extent(width, height), mask, padding=padding, resolution=resolution,
                       whole_image=request.whole_image, fixed_sizes=fixed_sizes)


def _selection(mask: np.ndarray | None) -> np.ndarray | None:
    """An optional selection mask; an empty one selects nothing in particular, i.e. the whole image."""
    if mask is None or mask_bounds(mask).is_empty:
        return None
    return mask


def _parameters(request, seed: int, plan: RegionPlan, mask, *, sampler: str, model: str, model_hash: str | None,
                setup: dict | None = None) -> dict:
    """One variant's parameters, in A1111's order: our keys for its fields, its own names for its extras.

    LoRAs go where A1111 keeps them, as <lora:NAME:WEIGHT> tags in the prompt (what A1111 re-applies
    and sd-parsers shows), plus its "Lora hashes"; then how the run was set up (precision, a CPU
    backend other than torch, the inpaint area, colour matching), so the record reproduces the result.
    """
    from sd_studio.engine.prompts.weights import strip_extra_networks

    prompt = request.prompt
    if request.loras:
        # Tags already in the prompt were not applied (only request.loras are), so only those are recorded.
        tags = " ".join(f"<lora:{_lora_name(path)}:{weight:g}>" for path, weight in request.loras)
        prompt = " ".join(part for part in (strip_extra_networks(prompt).strip(), tags) if part)
    params = {
        "prompt": prompt,
        "negative_prompt": request.negative_prompt,
        "steps": request.steps,
        "sampler": sampler,
        "cfg_scale": request.guidance,
        "seed": seed,
        "width": plan.target.width,
        "height": plan.target.height,
        "model_hash": model_hash,
        "model": model,
        "denoising_strength": request.strength,
        "mode": request.mode,
    }
    if mask is not None:
        params["Mask blur"] = request.feather
        params["Inpaint area"] = "Whole picture" if request.whole_image else "Only masked"
        if not request.whole_image:
            params["Masked area padding"] = request.padding
    if request.loras:
        from sd_studio.engine.models.hashes import lora_hash

        params["Lora hashes"] = ", ".join(f"{_lora_name(path)}: {lora_hash(path)}" for path, _ in request.loras)
    params.update(setup or {})
    if request.match_color:
        params["Match color"] = True
    return params


def _lora_name(path: str) -> str:
    """A LoRA's name as A1111 writes it in <lora:NAME:W>: the file name without its extension."""
    from pathlib import PurePath

    return PurePath(str(path)).stem


def _report(progress, event) -> None:
    if progress is not None:
        progress(event)


def _check_cancel(cancel) -> None:
    if cancel is not None and cancel():
        raise Cancelled("Generation cancelled; nothing was changed.")
