"""InpaintMask: the document's one 8-bit channel that marks what generation may repaint."""

from __future__ import annotations

import numpy as np

from sd_studio.document.geometry import Bounds, Extent
from sd_studio.document.surface import Surface


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
