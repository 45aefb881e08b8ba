"""InpaintMask: the document's 8-bit channel marking what generation may repaint, and its operations."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

from sd_studio.document.commands import TilesCommand
from sd_studio.document.geometry import Bounds, Extent
from sd_studio.document.surface import Surface

if TYPE_CHECKING:
    from sd_studio.document.document import Document


class InpaintMask:
    """A sparse 8-bit mask the size of the document: 255 repaints, 0 keeps, between blends."""

    def __init__(self, size: Extent) -> None:
        self.size = Extent(*size)
        self.surface = Surface(channels=1)

    @property
    def is_empty(self) -> bool:
        """True when nothing is marked."""
        return self.surface.is_empty

    def to_array(self, bounds: Bounds | None = None) -> np.ndarray:
        """The mask over bounds (default: the whole document) as a (height, width) uint8 array."""
        return self.surface.read(bounds if bounds is not None else Bounds.from_extent(self.size))

    def bounding_box(self) -> Bounds:
        """The smallest rectangle, inside the document, holding every marked pixel (empty if none)."""
        return self.surface.content_bounds().intersect(Bounds.from_extent(self.size))


# -- pure array operations (the engine reuses them) --------------------------------------------
def _disk(px: int) -> np.ndarray:
    import cv2

    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))


def grow(mask: np.ndarray, px: int) -> np.ndarray:
    """The (h, w) uint8 mask dilated by a disk of radius px (a copy when px <= 0)."""
    import cv2

    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    if px <= 0 or mask.size == 0:
        return mask.copy()
    return cv2.dilate(mask, _disk(int(px)))


def shrink(mask: np.ndarray, px: int) -> np.ndarray:
    """The (h, w) uint8 mask eroded by a disk of radius px; the array's edge does not erode it."""
    import cv2

    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    if px <= 0 or mask.size == 0:
        return mask.copy()
    return cv2.erode(mask, _disk(int(px)))


def feather(mask: np.ndarray, px: float) -> np.ndarray:
    """The (h, w) uint8 mask blurred by a gaussian reaching px pixels (edges replicate outwards)."""
    import cv2

    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    if px <= 0 or mask.size == 0:
        return mask.copy()
    k = 2 * math.ceil(px) + 1
    return cv2.GaussianBlur(mask, (k, k), sigmaX=px / 2, sigmaY=px / 2, borderType=cv2.BORDER_REPLICATE)


# -- undoable operations on a document's mask ----------------------------------------------------
# Each returns a command for Document.execute, or None when it would change nothing.
def _region_command(doc: "Document", name: str, region: Bounds, pixels: np.ndarray) -> TilesCommand | None:
    """A command writing pixels over region of the mask, keeping only the tiles that change.

    None when no tile would change, so that callers add no empty entry to the history.
    """
    if region.is_empty:
        return None
    command = TilesCommand.write(name, None, doc.mask.surface, region.x, region.y, pixels)
    for key in list(command.before):
        old, new = command.before[key], command.after[key]
        if old is new or (old is not None and new is not None and np.array_equal(old, new)):
            del command.before[key], command.after[key]
    return None if not command.after else command


def _around_mask(doc: "Document", px: int) -> Bounds:
    return doc.mask.bounding_box().pad(max(0, int(px))).intersect(doc.bounds)


def grow_mask(doc: "Document", px: int) -> TilesCommand | None:
    """A command growing the mask by px pixels; None when that changes nothing (e.g. an empty mask)."""
    region = _around_mask(doc, px)
    return _region_command(doc, f"Grow mask by {px} px", region, grow(doc.mask.to_array(region), px))


def shrink_mask(doc: "Document", px: int) -> TilesCommand | None:
    """A command shrinking the mask by px pixels; the document's edge does not eat into it."""
    region = _around_mask(doc, px)
    return _region_command(doc, f"Shrink mask by {px} px", region, shrink(doc.mask.to_array(region), px))


def feather_mask(doc: "Document", px: float) -> TilesCommand | None:
    """A command softening the mask's edge over about px pixels."""
    region = _around_mask(doc, math.ceil(px))
    return _region_command(doc, f"Feather mask by {px:g} px", region, feather(doc.mask.to_array(region), px))


def invert_mask(doc: "Document") -> TilesCommand | None:
    """A command swapping marked and unmarked across the whole document."""
    region = doc.bounds
    return _region_command(doc, "Invert mask", region, 255 - doc.mask.to_array(region))


def fill_mask_rect(doc: "Document", bounds: Bounds) -> TilesCommand | None:
    """A command marking a rectangle (clipped to the document) fully, adding to the mask."""
    region = Bounds(*bounds).intersect(doc.bounds)
    return _region_command(doc, "Select rectangle", region, np.full((region.height, region.width), 255, np.uint8))


def fill_mask_polygon(doc: "Document", points: Sequence[tuple[float, float]]) -> TilesCommand | None:
    """A command marking the inside of a polygon (document coordinates), adding to the mask."""
    from PIL import Image, ImageDraw

    pts = [(float(x), float(y)) for x, y in points]
    if len(pts) < 3:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    region = Bounds.from_corners(
        math.floor(min(xs)), math.floor(min(ys)), math.ceil(max(xs)) + 1, math.ceil(max(ys)) + 1,
    ).intersect(doc.bounds)
    if region.is_empty:
        return None
    image = Image.new("L", (region.width, region.height), 0)
    ImageDraw.Draw(image).polygon([(x - region.x, y - region.y) for x, y in pts], fill=255)
    drawn = np.asarray(image, np.uint8)
    return _region_command(doc, "Lasso", region, np.maximum(doc.mask.to_array(region), drawn))
