"""GrabCut (OpenCV): a smart mask without any model, from a box and seed points, at a bounded working size.

GrabCut models the colours inside and outside the box and cuts along the edges between them. Its cost
grows with the pixels it sees (a 12-megapixel photo takes minutes), so it runs on the box and a margin
around it scaled down to WORK_PIXELS, and the mask is then scaled back up with its edge refined on the
full-resolution photo (refine.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from sd_studio.document.geometry import Bounds, Extent
from sd_studio.engine.segment.frame import rgb_of
from sd_studio.engine.segment.prompt import PromptPoint
from sd_studio.engine.segment.refine import upscale_mask
from sd_studio.engine.segment.selection import Selection
from sd_studio.engine.segment.tidy import tidy_mask
from sd_studio.errors import Cancelled

if TYPE_CHECKING:
    from sd_studio.engine.request import CancelCallback

WORK_PIXELS = 300_000
"""The most pixels GrabCut itself sees (about 630 x 470); larger areas are scaled down to this."""

ITERATIONS = 5
MARGIN_SHARE = 0.1
"""The background GrabCut learns from: this share of the box's longer side around it."""

SUBJECT_BORDER = 0.06
"""Select subject without a model: the picture's outer ring this wide is taken as probably background."""


def grabcut_select(image: np.ndarray, box: Bounds, points: Sequence[PromptPoint] = (),
                   cancel: CancelCallback | None = None, work_pixels: int = WORK_PIXELS,
                   iterations: int = ITERATIONS) -> Selection:
    """What lies inside box (image coordinates) and stands out from around it; positive points are sure object, negative sure background."""
    import cv2

    height, width = image.shape[:2]
    extent = Extent(width, height)
    box = Bounds(*box).intersect(Bounds.from_extent(extent))
    margin = max(8, round(MARGIN_SHARE * max(box.width, box.height)))
    region = box.pad(margin).intersect(Bounds.from_extent(extent))
    scale = min(1.0, math.sqrt(work_pixels / max(1, region.width * region.height)))
    crop = rgb_of(image[region.slices])
    small = _scaled(crop, scale)
    sh, sw = small.shape[:2]
    init = np.full((sh, sw), cv2.GC_BGD, np.uint8)
    bx0, by0 = _to_small(box.x - region.x, box.y - region.y, scale)
    bx1, by1 = _to_small(box.right - region.x, box.bottom - region.y, scale)
    bx1, by1 = max(bx1, bx0 + 1), max(by1, by0 + 1)
    init[by0:by1, bx0:bx1] = cv2.GC_PR_FGD
    if not (init != cv2.GC_PR_FGD).any():
        # A box over the whole picture leaves nothing to learn the background from: its rim becomes "probably".
        ring = max(1, round(SUBJECT_BORDER * min(sh, sw) / 2))
        init[:ring, :], init[-ring:, :], init[:, :ring], init[:, -ring:] = (cv2.GC_PR_BGD,) * 4
    keep, drop = _seed(init, points, region, scale)
    fg = _run(small, init, iterations, cancel)
    # A "not this" point on an object of its own removes that object, however much it resembles the other.
    fg = tidy_mask(fg, keep, drop=drop, reach=_seed_radius(init) + 2)
    pixels = upscale_mask(np.where(fg, np.uint8(255), np.uint8(0)), crop)
    return Selection.from_array(pixels, "grabcut", origin=(region.x, region.y), extent=extent)


def grabcut_subject(image: np.ndarray, cancel: CancelCallback | None = None, work_pixels: int = WORK_PIXELS,
                    iterations: int = ITERATIONS) -> Selection:
    """The picture's main object without a model: what stands out from the picture's rim, around its centre."""
    import cv2

    height, width = image.shape[:2]
    scale = min(1.0, math.sqrt(work_pixels / max(1, width * height)))
    crop = rgb_of(image)
    small = _scaled(crop, scale)
    sh, sw = small.shape[:2]
    init = np.full((sh, sw), cv2.GC_PR_FGD, np.uint8)
    ring = max(2, round(SUBJECT_BORDER * min(sh, sw)))
    init[:ring, :], init[-ring:, :], init[:, :ring], init[:, -ring:] = (cv2.GC_PR_BGD,) * 4
    fg = _run(small, init, iterations, cancel)
    centre = (sw // 2, sh // 2)
    fg = tidy_mask(fg, [centre], speck_share=0.25)
    pixels = upscale_mask(np.where(fg, np.uint8(255), np.uint8(0)), crop)
    return Selection.from_array(pixels, "grabcut")


def _scaled(rgb: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    if scale >= 1.0:
        return np.ascontiguousarray(rgb)
    size = (max(1, math.floor(rgb.shape[1] * scale)), max(1, math.floor(rgb.shape[0] * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _to_small(x: float, y: float, scale: float) -> tuple[int, int]:
    return round(x * scale), round(y * scale)


def _seed(init: np.ndarray, points: Sequence[PromptPoint], region: Bounds,
          scale: float) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Mark discs around the points as sure object / sure background; their working positions (positive, negative)."""
    import cv2

    radius = _seed_radius(init)
    keep, drop = [], []
    for p in points:
        at = (int((p.x - region.x) * scale), int((p.y - region.y) * scale))
        cv2.circle(init, at, radius, int(cv2.GC_FGD if p.positive else cv2.GC_BGD), -1)
        (keep if p.positive else drop).append(at)
    return keep, drop


def _seed_radius(init: np.ndarray) -> int:
    """How far around a point GrabCut is told for sure (working pixels)."""
    return max(2, round(0.02 * min(init.shape)))


def _run(small: np.ndarray, init: np.ndarray, iterations: int, cancel) -> np.ndarray:
    """GrabCut's iterations one at a time (so cancel is heard between them); the object as a bool mask."""
    import cv2

    mask = init.copy()
    fg_values = (cv2.GC_FGD, cv2.GC_PR_FGD)
    if not np.isin(mask, fg_values).any():
        return np.zeros(mask.shape, bool)
    if np.isin(mask, fg_values).all():
        return np.ones(mask.shape, bool)
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    for i in range(max(1, iterations)):
        if cancel is not None and cancel():
            raise Cancelled("Cancelled; the mask was not changed.")
        mode = cv2.GC_INIT_WITH_MASK if i == 0 else cv2.GC_EVAL
        cv2.grabCut(small, mask, None, background, foreground, 1, mode)
    return np.isin(mask, fg_values)
