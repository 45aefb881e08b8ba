"""Selection: a smart mask's answer, 8-bit mask pixels over the part of the image that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sd_studio.document.geometry import Bounds, Extent


@dataclass(frozen=True)
class Selection:
    """A mask for an image of `extent`: `pixels` (uint8, 255 selected) cover `bounds`; 0 everywhere else.

    `method` says what made it ("sam" or "grabcut"), `score` is the model's own estimate of its quality
    (Segment Anything's predicted IoU; None for GrabCut), and `low_res` keeps Segment Anything's
    low-resolution logits so the next click on the same object refines this answer.
    """

    extent: Extent
    bounds: Bounds
    pixels: np.ndarray = field(repr=False)
    method: str
    score: float | None = None
    low_res: np.ndarray | None = field(default=None, repr=False, compare=False)

    @staticmethod
    def from_array(mask: np.ndarray, method: str, origin: tuple[int, int] = (0, 0), extent: Extent | None = None,
                   score: float | None = None, low_res: np.ndarray | None = None) -> Selection:
        """The selection of a (h, w) uint8 mask placed at origin of an image of extent (default: the mask's own size),
        cropped to the rectangle that holds its marked pixels."""
        mask = np.asarray(mask, np.uint8)
        extent = Extent(mask.shape[1], mask.shape[0]) if extent is None else Extent(*extent)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            return Selection(extent, Bounds(0, 0, 0, 0), np.zeros((0, 0), np.uint8), method, score, low_res)
        inner = Bounds.from_corners(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        bounds = inner.offset(*origin).intersect(Bounds.from_extent(extent))
        local = bounds.offset(-origin[0], -origin[1])
        return Selection(extent, bounds, np.ascontiguousarray(mask[local.slices]), method, score, low_res)

    @property
    def is_empty(self) -> bool:
        """True when nothing is selected."""
        return self.bounds.is_empty or not self.pixels.any()

    @property
    def area(self) -> int:
        """How many pixels are selected (at least half)."""
        return int(np.count_nonzero(self.pixels >= 128))

    def to_array(self) -> np.ndarray:
        """The whole mask, (height, width) uint8."""
        out = np.zeros((self.extent.height, self.extent.width), np.uint8)
        if not self.bounds.is_empty:
            out[self.bounds.slices] = self.pixels
        return out

    def inverted(self) -> Selection:
        """Everything this selection leaves out (what "select background" answers)."""
        return Selection.from_array(255 - self.to_array(), self.method, score=self.score)
