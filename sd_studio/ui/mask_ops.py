"""Mask commands the editor needs, taken from document.mask when it offers them.

An adapter: until (or unless) `sd_studio.document.mask` provides `fill_mask_rect` and
`fill_mask_polygon`, the same commands are built here from the core's TilesCommand.
"""

from __future__ import annotations

import numpy as np

from sd_studio.document import mask as _mask
from sd_studio.document.commands import Command, TilesCommand
from sd_studio.document.geometry import Bounds


def fill_mask_rect(doc, bounds: Bounds) -> Command:
    """A command that marks a rectangle of the inpaint mask (255)."""
    if hasattr(_mask, "fill_mask_rect"):
        return _mask.fill_mask_rect(doc, bounds)
    bounds = bounds.intersect(doc.bounds)
    pixels = np.full((bounds.height, bounds.width), 255, np.uint8)
    return TilesCommand.write("Select rectangle", None, doc.mask.surface, bounds.x, bounds.y, pixels)


def fill_mask_polygon(doc, points: list[tuple[float, float]]) -> Command | None:
    """A command that marks a polygon (document coordinates) on the inpaint mask; None if it is empty."""
    if hasattr(_mask, "fill_mask_polygon"):
        return _mask.fill_mask_polygon(doc, points)
    import cv2

    pts = np.asarray(points, np.float64)
    box = Bounds.from_corners(
        int(np.floor(pts[:, 0].min())), int(np.floor(pts[:, 1].min())),
        int(np.ceil(pts[:, 0].max())) + 1, int(np.ceil(pts[:, 1].max())) + 1,
    ).intersect(doc.bounds)
    if box.is_empty:
        return None
    shape = np.zeros((box.height, box.width), np.uint8)
    local = np.round((pts - (box.x, box.y)) * 16).astype(np.int32)
    cv2.fillPoly(shape, [local], 255, lineType=cv2.LINE_AA, shift=4)
    pixels = np.maximum(doc.mask.to_array(box), shape)
    return TilesCommand.write("Select lasso", None, doc.mask.surface, box.x, box.y, pixels)
