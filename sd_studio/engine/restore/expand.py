"""Expand (outpaint): the canvas grows, the new area is pre-filled from the photo's edge, then optionally
painted by diffusion; the original pixels stay bit-for-bit in place.

The mask handed to diffusion is the new area plus a blend band reaching `band` px into the photo (so
the model sees across the seam); the pasted result covers the new area fully and fades out across
the band, so the photo is untouched farther than `band` px from its old edge — and everywhere when
band is 0, or when no model is used (the pre-fill alone never covers an original pixel).
Pre-fills: "stretch" (the edge pixels extended outwards, then softened with distance), "blur" (the
same, blurred strongly) and "navier-stokes" (OpenCV's Navier-Stokes fill, run on a reduced copy so
it stays fast on a large canvas).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sd_studio.document.geometry import Bounds, Extent, Point
from sd_studio.engine.request import Progress
from sd_studio.engine.restore.result import RestoreResult, compose_in_bands
from sd_studio.errors import GenerationError

PREFILLS = ("stretch", "blur", "navier-stokes")
"""How the new area is pre-filled before diffusion (or instead of it)."""

MAX_SIDE = 32768
"""The largest canvas side Expand makes (the document's limit)."""

NS_SIDE = 512
"""Navier-Stokes pre-fill runs on a copy at most this long."""


@dataclass(frozen=True)
class Margins:
    """Pixels added on each side of the canvas."""

    left: int = 0
    top: int = 0
    right: int = 0
    bottom: int = 0

    def canvas(self, size: Extent) -> Extent:
        """The grown canvas size for an image of `size`."""
        return Extent(size.width + self.left + self.right, size.height + self.top + self.bottom)

    @property
    def is_empty(self) -> bool:
        """True when no side grows."""
        return not (self.left or self.top or self.right or self.bottom)


@dataclass(frozen=True)
class ExpandSettings:
    """An expansion: margins, pre-fill, blend band and, optionally, a diffusion model and prompt."""

    margins: Margins
    prefill: str = "stretch"
    band: int = 16
    model: str | None = None
    prompt: str = ""
    negative_prompt: str = ""
    steps: int = 20
    seed: int | None = None
    device: str = "auto"

    def checked(self, size: Extent) -> ExpandSettings:
        """Itself when it fits an image of `size`; GenerationError naming the first problem."""
        m = self.margins
        if min(m.left, m.top, m.right, m.bottom) < 0:
            raise GenerationError("Expand adds pixels; a margin cannot be negative (crop instead).")
        if m.is_empty:
            raise GenerationError("Nothing to expand: every margin is 0.")
        if max(m.canvas(size)) > MAX_SIDE:
            raise GenerationError(f"The expanded canvas would be larger than {MAX_SIDE} pixels on a side.")
        if self.prefill not in PREFILLS:
            raise GenerationError(f"Unknown pre-fill {self.prefill!r}; use one of: {', '.join(PREFILLS)}.")
        if self.band < 0:
            raise GenerationError(f"The blend band must be 0 or more pixels, not {self.band!r}.")
        return self


def expand(image: np.ndarray, settings: ExpandSettings, *, progress=None, cancel=None, models=None) -> RestoreResult:
    """The canvas grown by the margins: a patch over the whole new canvas (alpha 0 over the untouched photo)."""
    h, w = image.shape[:2]
    settings = settings.checked(Extent(w, h))
    m = settings.margins
    canvas = m.canvas(Extent(w, h))
    photo = Bounds(m.left, m.top, w, h)
    if progress is not None:
        progress(Progress("expanding", 0, 1, message=f"{settings.prefill} pre-fill"))
    filled = prefill(image[..., :3], m, settings.prefill)
    new_area = np.full((canvas.height, canvas.width), 255, np.uint8)
    new_area[photo.slices] = 0
    params: dict = {"Postprocessing": "Expand", "Expand": f"{m.left},{m.top},{m.right},{m.bottom}",
                    "Prefill": settings.prefill}
    patch = np.empty((canvas.height, canvas.width, 4), np.uint8)
    if settings.model:
        from sd_studio.engine.request import GenerationRequest
        from sd_studio.engine.restore.large import generate_large

        mask = blend_mask(new_area, photo, settings.band)
        request = GenerationRequest(mode="inpaint", image=filled, mask=mask, prompt=settings.prompt,
                                    negative_prompt=settings.negative_prompt, steps=settings.steps,
                                    seed=settings.seed, model=settings.model, engine="diffusion", feather=0,
                                    device=settings.device)
        result = generate_large(request, progress=progress, cancel=cancel, models=models)
        patch[..., :3] = filled
        compose_in_bands(patch[..., :3][result.region.slices], result.images[0])
        patch[..., 3] = mask
        params.update({k: v for k, v in result.parameters[0].items() if k not in ("width", "height")})
        params["Blend band"] = settings.band
    else:
        patch[..., :3] = filled
        patch[..., 3] = new_area
    patch[patch[..., 3] == 0] = 0
    if progress is not None:
        progress(Progress("expanding", 1, 1, message="done"))
    params["width"], params["height"] = canvas
    return RestoreResult(image=patch, region=Bounds.from_extent(canvas), canvas=canvas, parameters=params,
                         shift=Point(m.left, m.top), mask=new_area)


def blend_mask(new_area: np.ndarray, photo: Bounds, band: int) -> np.ndarray:
    """The new area (255) plus a band reaching `band` px into the photo, fading from 255 at its edge to 0."""
    mask = new_area.copy()
    if band <= 0:
        return mask
    rows, cols = photo.slices
    y, x = np.ogrid[rows, cols]
    # distance (px) inwards from the photo's edge, counting only the sides that have a new area beyond them
    h, w = new_area.shape
    far = np.full((photo.height, photo.width), float(band), np.float32)
    if photo.x > 0:
        far = np.minimum(far, (x - photo.x).astype(np.float32))
    if photo.y > 0:
        far = np.minimum(far, (y - photo.y).astype(np.float32))
    if photo.right < w:
        far = np.minimum(far, (photo.right - 1 - x).astype(np.float32))
    if photo.bottom < h:
        far = np.minimum(far, (photo.bottom - 1 - y).astype(np.float32))
    ramp = np.clip(np.rint(255.0 * (1.0 - (far + 1.0) / (band + 1.0))), 0, 255).astype(np.uint8)
    mask[rows, cols] = ramp
    return mask


def prefill(rgb: np.ndarray, margins: Margins, method: str = "stretch") -> np.ndarray:
    """The canvas with the photo in place and the new area pre-filled from it (RGB; photo pixels exact)."""
    import cv2

    h, w = rgb.shape[:2]
    m = margins
    stretched = cv2.copyMakeBorder(np.ascontiguousarray(rgb), m.top, m.bottom, m.left, m.right, cv2.BORDER_REPLICATE)
    if method == "navier-stokes":
        filled = _navier_stokes(stretched, Bounds(m.left, m.top, w, h))
    else:
        # Soften with distance: streaks from the edge become a calm continuation of its colours.
        sigma = max(4.0, max(m.left, m.top, m.right, m.bottom) / (4.0 if method == "stretch" else 1.5))
        small_side = max(stretched.shape[:2])
        factor = max(1, int(small_side // 512))
        small = cv2.resize(stretched, (stretched.shape[1] // factor, stretched.shape[0] // factor),
                           interpolation=cv2.INTER_AREA) if factor > 1 else stretched
        blurred = cv2.GaussianBlur(small, (0, 0), sigma / factor)
        blurred = cv2.resize(blurred, (stretched.shape[1], stretched.shape[0]), interpolation=cv2.INTER_LINEAR)
        distance = _distance_from_photo(stretched.shape[:2], Bounds(m.left, m.top, w, h))
        weight = np.clip(distance / np.float32(max(8.0, 2.0 * sigma)), 0.0, 1.0, out=distance)
        filled = cv2.blendLinear(stretched, blurred, 1.0 - weight, weight)
    filled[m.top:m.top + h, m.left:m.left + w] = rgb
    return filled


def _distance_from_photo(shape, photo: Bounds) -> np.ndarray:
    h, w = shape
    y, x = np.ogrid[0:h, 0:w]
    dx = np.maximum(np.maximum(photo.x - x, x - (photo.right - 1)), 0).astype(np.float32)
    dy = np.maximum(np.maximum(photo.y - y, y - (photo.bottom - 1)), 0).astype(np.float32)
    return np.hypot(dx, dy)


def _navier_stokes(stretched: np.ndarray, photo: Bounds) -> np.ndarray:
    import cv2

    h, w = stretched.shape[:2]
    factor = max(1.0, max(h, w) / NS_SIDE)
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    small = cv2.resize(stretched, size, interpolation=cv2.INTER_AREA)
    holes = np.full((size[1], size[0]), 255, np.uint8)
    inner = Bounds(round(photo.x / factor), round(photo.y / factor), round(photo.width / factor),
                   round(photo.height / factor)).pad(-1)
    holes[inner.slices] = 0
    small = cv2.inpaint(small, holes, 5, cv2.INPAINT_NS)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
