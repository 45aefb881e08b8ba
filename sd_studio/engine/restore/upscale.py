"""Upscale: x2 / x4 with an upscaler model in tiles (ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT) or Lanczos, then
optionally diffusion refinement in tiles ("Upscale with detail").

The upscaler runs on input tiles of `tile` pixels with `padding` of context, cross-faded, so its
memory follows the tile; a model whose own factor differs from the one asked for is followed by a
Lanczos (or area) resize to the exact size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sd_studio.document.geometry import Bounds, Extent
from sd_studio.engine.request import Progress
from sd_studio.engine.restore.refine import RefineSettings
from sd_studio.engine.restore.result import RestoreResult, full_patch, model_parameters
from sd_studio.errors import GenerationError

FACTORS = (2, 3, 4)
"""The enlargements offered."""

MAX_OUTPUT_SIDE = 32768
"""The largest side an upscaled image may have (the document's limit)."""


@dataclass(frozen=True)
class UpscaleSettings:
    """An upscale: the factor, the upscaler file (None = Lanczos), its tiles, and optional refinement."""

    factor: int = 2
    model: str | None = None
    tile: int = 256
    padding: int = 16
    refine: RefineSettings | None = None

    def checked(self, size: Extent) -> UpscaleSettings:
        """Itself when it fits an image of `size`; GenerationError naming the first problem."""
        if self.factor not in FACTORS:
            raise GenerationError(f"The upscale factor must be one of {', '.join(map(str, FACTORS))}, not {self.factor!r}.")
        if max(size) * self.factor > MAX_OUTPUT_SIDE:
            raise GenerationError(f"x{self.factor} would make the image wider or taller than {MAX_OUTPUT_SIDE} pixels.")
        if self.refine is not None:
            self.refine.checked()
        return self


def upscale(image: np.ndarray, settings: UpscaleSettings, *, model=None, progress=None, cancel=None,
            diffusion_models=None) -> RestoreResult:
    """The image enlarged by settings.factor (with `model`, a loaded upscaler, or Lanczos) as a RestoreResult."""
    h, w = image.shape[:2]
    settings = settings.checked(Extent(w, h))
    target = Extent(w * settings.factor, h * settings.factor)
    rgb = np.ascontiguousarray(image[..., :3])
    if model is None:
        if progress is not None:
            progress(Progress("upscaling", 0, 1, message="Lanczos"))
        enlarged = _resize(rgb, target)
        upscaler = "Lanczos"
    else:
        enlarged = upscale_with_model(rgb, model, settings.tile, settings.padding, progress, cancel)
        if enlarged.shape[:2] != (target.height, target.width):
            enlarged = _resize(enlarged, target)
        upscaler = model.name
    params = model_parameters("Upscale", model, **{"Postprocess upscale by": settings.factor,
                                                    "Postprocess upscaler": upscaler,
                                                    "Tile size": settings.tile if model is not None else None})
    if settings.refine is not None:
        enlarged, refine_params = _refine(enlarged, settings.refine, progress, cancel, diffusion_models)
        params.update(refine_params)
    params["width"], params["height"] = target
    return RestoreResult(image=full_patch(enlarged), region=Bounds.from_extent(target), canvas=target,
                         parameters=params, scale=settings.factor)


def upscale_with_model(rgb: np.ndarray, model, tile: int, padding: int, progress=None, cancel=None) -> np.ndarray:
    """The image through an upscaler model, tile by tile (its own factor, model.scale)."""
    from sd_studio.engine.restore.inference import run_image_model
    from sd_studio.engine.restore.tiles import run_tiled

    if model.purpose != "SR":
        raise GenerationError(f"{model.name} is not an upscaler.")
    return run_tiled(rgb, lambda region, _t: run_image_model(model, region), tile=tile, padding=padding,
                     scale=model.scale, progress=progress, cancel=cancel, phase="upscaling")


def _refine(image, settings, progress, cancel, models):
    from sd_studio.engine.restore.refine import refine_in_tiles

    return refine_in_tiles(image, settings, progress=progress, cancel=cancel, models=models)


def _resize(pixels: np.ndarray, size: Extent) -> np.ndarray:
    import cv2

    shrinking = size.pixel_count < pixels.shape[0] * pixels.shape[1]
    return cv2.resize(pixels, tuple(size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4)
