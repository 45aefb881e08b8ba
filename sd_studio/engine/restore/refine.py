"""Diffusion refinement in tiles: img2img at low strength over a large image, tile by tile, seams cross-faded.

Used by Upscale with detail and by large regions: a tile (512, or the model's native size) plus
padding goes to the model at its own size, so a 40-megapixel scan never needs a 40-megapixel latent
and memory follows the tile. Progress is per tile; cancel is checked between tiles (and between
denoising steps inside each).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sd_studio.document.geometry import Extent
from sd_studio.engine.request import Progress
from sd_studio.errors import GenerationError

MIN_STRENGTH, MAX_STRENGTH = 0.2, 0.5
"""The refinement strengths offered: enough to add detail, too little to change what the photo shows."""

DEFAULT_PADDING = 32
"""Context around each tile's core, and the band its seams are cross-faded over."""


@dataclass(frozen=True)
class RefineSettings:
    """How to refine: the diffusion model, prompt, strength (0.2–0.5), steps, seed and tile size (None = native)."""

    model: str
    prompt: str = ""
    negative_prompt: str = ""
    strength: float = 0.3
    steps: int = 20
    guidance: float = 7.0
    seed: int = 0
    scheduler: str = "Euler a"
    tile: int | None = None
    padding: int = DEFAULT_PADDING
    device: str = "auto"
    precision: str = "auto"

    def checked(self) -> RefineSettings:
        """Itself when every setting is in range; GenerationError naming the first that is not."""
        if not MIN_STRENGTH <= float(self.strength) <= MAX_STRENGTH:
            raise GenerationError(f"Detail strength must be from {MIN_STRENGTH} to {MAX_STRENGTH}, not {self.strength!r}.")
        if not 1 <= int(self.steps) <= 150:
            raise GenerationError(f"Steps must be from 1 to 150, not {self.steps!r}.")
        if self.tile is not None and (self.tile < 64 or self.tile % 8):
            raise GenerationError(f"The tile size must be a multiple of 8 of at least 64, not {self.tile!r}.")
        if self.padding < 0 or (self.tile is not None and self.tile - 2 * self.padding < 8):
            raise GenerationError(f"Padding {self.padding} does not fit in a tile of {self.tile}.")
        return self


def refine_in_tiles(image: np.ndarray, settings: RefineSettings, *, progress=None, cancel=None,
                    models=None) -> tuple[np.ndarray, dict]:
    """The (H, W, 3) image refined tile by tile with img2img, and the parameters to record."""
    from sd_studio.engine.diffusion import run_diffusion
    from sd_studio.engine.generate import default_models
    from sd_studio.engine.restore.tiles import run_tiled

    settings = settings.checked()
    cache = models if models is not None else default_models()
    if progress is not None:
        progress(Progress("loading", 0, 1, message=f"loading {settings.model}"))
    model = cache.get(settings.model, device=settings.device, precision=settings.precision, progress=progress)
    tile = settings.tile or model.native_resolution
    padding = min(settings.padding, tile // 4)  # a small native size (tiny test models) keeps a usable core

    def one(region: np.ndarray, _tile) -> np.ndarray:
        h, w = region.shape[:2]
        size = Extent(w, h).multiple_of(8)
        pixels = region if (w, h) == tuple(size) else _resize(region, size)
        out = run_diffusion(model, "img2img", image=pixels, mask=None, prompt=settings.prompt,
                            negative_prompt=settings.negative_prompt, steps=settings.steps,
                            guidance=settings.guidance, strength=settings.strength, seeds=[settings.seed],
                            scheduler=settings.scheduler, width=size.width, height=size.height, cancel=cancel)[0]
        return out if (w, h) == tuple(size) else _resize(out, Extent(w, h))

    refined = run_tiled(image[..., :3], one, tile=tile, padding=padding, progress=progress, cancel=cancel,
                        phase="refining")
    params = {
        "prompt": settings.prompt, "negative_prompt": settings.negative_prompt, "steps": settings.steps,
        "sampler": settings.scheduler, "cfg_scale": settings.guidance, "seed": settings.seed,
        "denoising_strength": settings.strength, "Refine model": model.name, "Refine model hash": model.hash,
        "Tile size": tile, "Tile padding": padding,
    }
    return refined, params


def _resize(pixels: np.ndarray, size: Extent) -> np.ndarray:
    import cv2

    return cv2.resize(pixels, (size.width, size.height), interpolation=cv2.INTER_LANCZOS4)
