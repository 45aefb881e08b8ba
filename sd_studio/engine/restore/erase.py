"""Erasers: LaMa or MAT repaint masked areas from their surroundings, region by region.

A LaMa crop is the marks plus as much context again (LaMa works at any size; crops over
LAMA_MAX_SIDE are scaled down for it and back); MAT works on 512 px squares, so its crops are scaled
to 512. The result is pasted through the mask (feathered by `feather`), so pixels away from it stay
bit-for-bit unchanged.
"""

from __future__ import annotations

import numpy as np

from sd_studio.document.geometry import Bounds, Extent
from sd_studio.engine.region import RegionPlan, paste_back
from sd_studio.engine.request import Progress
from sd_studio.errors import Cancelled, GenerationError

LAMA_MAX_SIDE = 1024
"""Crops longer than this are scaled down for LaMa (its cost grows with the area)."""

MAT_SIDE = 512
"""MAT's working size."""


def erase(image: np.ndarray, mask: np.ndarray, model, *, feather: int = 0, progress=None,
          cancel=None) -> tuple[np.ndarray, Bounds]:
    """(RGBA patch, its bounds): every masked area refilled by the eraser model, alpha = the (feathered) mask."""
    import cv2

    from sd_studio.engine.region import mask_bounds
    from sd_studio.engine.restore.inference import run_masked_model
    from sd_studio.engine.restore.regions import mask_regions

    if not model.is_masked:
        raise GenerationError(f"{model.name} is not an eraser (inpainting) model.")
    h, w = mask.shape
    image_bounds = Bounds(0, 0, w, h)
    side = MAT_SIDE if model.architecture == "MAT" else LAMA_MAX_SIDE
    regions = mask_regions(mask, gap=32, max_side=side // 2)
    area = mask_bounds(mask).pad(feather + 1).intersect(image_bounds)
    patch = np.zeros((area.height, area.width, 4), np.uint8)
    for i, region in enumerate(regions):
        if cancel is not None and cancel():
            raise Cancelled("Cancelled; nothing was changed.")
        if progress is not None:
            progress(Progress("erasing", i, len(regions), message=f"area {i + 1} of {len(regions)}"))
        context = max(region.width, region.height) // 2 + 16
        crop = region.pad(context).intersect(image_bounds)
        crop_mask = _only(mask, region, crop)
        target = _target(crop.extent, model.architecture)
        rgb = np.ascontiguousarray(image[crop.slices][..., :3])
        holes = crop_mask
        if tuple(target) != tuple(crop.extent):
            rgb = cv2.resize(rgb, tuple(target), interpolation=cv2.INTER_AREA)
            holes = cv2.resize(crop_mask, tuple(target), interpolation=cv2.INTER_LINEAR)
        filled = run_masked_model(model, rgb, holes)
        # paste_back reads the mask at the plan's bounds: here the crop's own arrays, so the plan starts at 0, 0.
        rgba = paste_back(image[crop.slices], filled, crop_mask, RegionPlan(Bounds(0, 0, crop.width, crop.height),
                                                                           target), feather=feather)
        dst = patch[crop.y - area.y:crop.bottom - area.y, crop.x - area.x:crop.right - area.x]
        marked = rgba[..., 3] > dst[..., 3]
        dst[marked] = rgba[marked]
    if progress is not None:
        progress(Progress("erasing", len(regions), len(regions), message="done"))
    return patch, area


def _only(mask: np.ndarray, region: Bounds, crop: Bounds) -> np.ndarray:
    """The crop's mask keeping only the marks inside region (other regions are someone else's)."""
    out = np.zeros((crop.height, crop.width), np.uint8)
    rx, ry = region.x - crop.x, region.y - crop.y
    out[ry:ry + region.height, rx:rx + region.width] = mask[region.slices]
    return out


def _target(size: Extent, architecture: str) -> Extent:
    if architecture == "MAT":
        return Extent(MAT_SIDE, MAT_SIDE)
    scale = min(1.0, LAMA_MAX_SIDE / max(size))
    return Extent(max(16, round(size.width * scale)), max(16, round(size.height * scale)))
