"""Restore: find the damage and heal it in one go — classical fill, LaMa/MAT, or diffusion region by region.

The healed pixels come back as one RGBA patch whose alpha is the (grown) damage mask with no feather,
so every pixel outside the mask stays bit-for-bit as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sd_studio.document.geometry import Bounds, Extent
from sd_studio.engine.damage import DEFAULT_SENSITIVITY, find_damage, heal_mask
from sd_studio.engine.request import Progress
from sd_studio.engine.restore.result import RestoreResult
from sd_studio.errors import Cancelled, GenerationError

ENGINES = ("classical", "lama", "diffusion")
"""How damage can be healed: OpenCV's fill, an eraser model file, or a Stable Diffusion model."""


@dataclass(frozen=True)
class HealSettings:
    """How to heal: the engine, its model (an eraser file for lama, a diffusion model), and for diffusion a prompt."""

    engine: str = "classical"
    model: str | None = None
    prompt: str = "clean photo, no scratches"
    negative_prompt: str = ""
    steps: int = 20
    seed: int | None = None
    grow: int = 0
    device: str = "auto"


DEFAULT_HEAL = HealSettings()
"""The classical fill of the found mask: no model, offline."""


def restore_photo(image: np.ndarray, sensitivity: float = DEFAULT_SENSITIVITY, settings: HealSettings = DEFAULT_HEAL,
                  *, eraser=None, progress=None, cancel=None, models=None) -> RestoreResult:
    """Find the scratches and dust of a photo and heal them (see heal)."""
    mask = find_damage(image, sensitivity, progress=progress, cancel=cancel)
    result = heal(image, heal_mask(mask, settings.grow) if settings.grow else mask, settings, eraser=eraser,
                  progress=progress, cancel=cancel, models=models)
    result.parameters["Damage sensitivity"] = float(sensitivity)
    return result


def heal(image: np.ndarray, mask: np.ndarray, settings: HealSettings = DEFAULT_HEAL, *, eraser=None,
         progress=None, cancel=None, models=None) -> RestoreResult:
    """Every marked pixel of mask refilled by the engine; an RGBA patch over the mask's bounds (alpha = mask)."""
    from sd_studio.engine.region import mask_bounds

    if settings.engine not in ENGINES:
        raise GenerationError(f"Unknown engine {settings.engine!r}; use one of: {', '.join(ENGINES)}.")
    h, w = image.shape[:2]
    canvas = Extent(w, h)
    box = mask_bounds(mask)
    params: dict = {"Postprocessing": "Restore", "Heal engine": settings.engine}
    if box.is_empty:
        params["Damage"] = "none found"
        return RestoreResult(image=np.zeros((0, 0, 4), np.uint8), region=Bounds(0, 0, 0, 0), canvas=canvas,
                             parameters=params, mask=mask)
    params["Damage pixels"] = int(np.count_nonzero(mask))
    if settings.engine == "classical":
        patch, region = _classical(image, mask, progress, cancel)
        params["sampler"] = "Telea"
    elif settings.engine == "lama":
        from sd_studio.engine.restore.erase import erase

        if eraser is None:
            raise GenerationError("The lama engine needs an eraser model (LaMa or MAT).")
        patch, region = erase(image, mask, eraser, feather=0, progress=progress, cancel=cancel)
        params.update(model=eraser.name, model_hash=eraser.hash, Architecture=eraser.architecture)
    else:
        patch, region, extra = _diffusion(image, mask, settings, progress, cancel, models)
        params.update(extra)
    return RestoreResult(image=patch, region=region, canvas=canvas, parameters=params, mask=mask)


def _classical(image, mask, progress, cancel):
    from sd_studio.engine.classical import fill
    from sd_studio.engine.region import RegionPlan, mask_bounds, paste_back

    h, w = mask.shape
    region = mask_bounds(mask).pad(8).intersect(Bounds(0, 0, w, h))
    if progress is not None:
        progress(Progress("healing", 0, 1, message="Telea fill"))
    rgb = np.ascontiguousarray(image[region.slices][..., :3])
    local_mask = np.ascontiguousarray(mask[region.slices])
    filled = fill(rgb, local_mask)
    if cancel is not None and cancel():
        raise Cancelled("Cancelled; nothing was changed.")
    local = RegionPlan(Bounds(0, 0, region.width, region.height), region.extent)
    patch = paste_back(rgb, filled, local_mask, local, feather=0)
    if progress is not None:
        progress(Progress("healing", 1, 1, message="done"))
    return patch, region


def _diffusion(image, mask, settings, progress, cancel, models):
    from sd_studio.engine.region import mask_bounds
    from sd_studio.engine.request import GenerationRequest
    from sd_studio.engine.restore.large import generate_large
    from sd_studio.engine.restore.regions import mask_regions

    if not settings.model:
        raise GenerationError("The diffusion engine needs a model: pass a hub id, a diffusers folder or a "
                              ".safetensors file.")
    area = mask_bounds(mask)
    patch = np.zeros((area.height, area.width, 4), np.uint8)
    regions = mask_regions(mask, gap=64, max_side=2048)
    last = {}
    for i, region in enumerate(regions):
        only = np.zeros_like(mask)
        only[region.slices] = mask[region.slices]
        request = GenerationRequest(mode="inpaint", image=image, mask=only, prompt=settings.prompt,
                                    negative_prompt=settings.negative_prompt, steps=settings.steps,
                                    seed=settings.seed, model=settings.model, engine="diffusion", feather=0,
                                    device=settings.device)
        if progress is not None:
            progress(Progress("healing", i, len(regions), message=f"area {i + 1} of {len(regions)}"))
        result = generate_large(request, progress=progress, cancel=cancel, models=models)
        rgba, at = result.images[0], result.region
        # The generated region reaches past the mask's bounds (its padding); only their overlap can be marked.
        inter = at.intersect(area)
        dst = patch[inter.offset(-area.x, -area.y).slices]
        src = rgba[inter.offset(-at.x, -at.y).slices]
        marked = src[..., 3] > dst[..., 3]
        dst[marked] = src[marked]
        last = {k: v for k, v in result.parameters[0].items() if k not in ("width", "height")}
    return patch, area, last
