"""Commands that change the canvas's size: Canvas Size / Expand (grow or shrink, moving the content) and
Scale Image (every layer and the mask scaled by a whole factor, for Upscale).

The document keeps its layers' pixels in layer coordinates, so moving the content is a change of
offsets; the inpaint mask has none, so its pixels are rewritten (only its marked area is read).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from sd_studio.document.commands import Command
from sd_studio.document.geometry import Bounds, Extent, Point
from sd_studio.document.surface import Surface

if TYPE_CHECKING:
    from sd_studio.document.document import Document

MAX_SIDE = 32768
"""The largest side a canvas may get (the document's own limit)."""

ORIGIN = Point(0, 0)


def _set_size(doc: Document, size: Extent) -> None:
    """Give the document a new size: its mask's extent and its composite cache follow."""
    from sd_studio.document.flattened import FlattenedCache

    old = doc.bounds
    doc.size = Extent(*size)
    doc.mask.size = doc.size
    doc._cache = FlattenedCache(lambda: doc.layers, doc.size)  # the cached composite has the old size
    doc.notify_stack(old.union(doc.bounds))
    doc.notify_mask(doc.bounds)


class ResizeCanvas(Command):
    """Give the canvas a new size with its content moved by `shift` (Canvas Size, Expand); layers keep their pixels."""

    def __init__(self, doc: Document, size: Extent, shift: Point = ORIGIN, name: str | None = None) -> None:
        size = Extent(int(size[0]), int(size[1]))
        if not (1 <= size.width <= MAX_SIDE and 1 <= size.height <= MAX_SIDE):
            raise ValueError(f"a canvas is 1 to {MAX_SIDE} pixels on each side, not {size.width}x{size.height}")
        self.size = size
        self.shift = Point(int(shift[0]), int(shift[1]))
        self.name = name or f"Canvas size {size.width} x {size.height}"
        self._old_size = doc.size
        self._layers = list(doc.layers)
        self._mask_before = doc.mask.surface.snapshot()
        self._mask_after = _moved_mask(doc, self.shift, size)

    def redo(self, doc: Document) -> None:
        for layer in self._layers:
            layer.offset = Point(layer.offset.x + self.shift.x, layer.offset.y + self.shift.y)
        doc.mask.surface.restore(self._mask_after)
        _set_size(doc, self.size)

    def undo(self, doc: Document) -> None:
        for layer in self._layers:
            layer.offset = Point(layer.offset.x - self.shift.x, layer.offset.y - self.shift.y)
        doc.mask.surface.restore(self._mask_before)
        _set_size(doc, self._old_size)

    def arrays(self) -> Iterator[np.ndarray]:
        yield from self._mask_before.values()
        yield from self._mask_after.values()


def _moved_mask(doc: Document, shift: Point, size: Extent) -> dict:
    """The mask's tiles after moving its content by shift and cutting it to the new canvas."""
    box = doc.mask.bounding_box()
    moved = Surface(1)
    if not box.is_empty:
        target = box.offset(shift.x, shift.y).intersect(Bounds.from_extent(size))
        if not target.is_empty:
            moved.write(target.x, target.y, doc.mask.to_array(target.offset(-shift.x, -shift.y)))
    return moved.snapshot()


class ScaleImage(Command):
    """Scale the whole image by a whole factor: every layer's pixels and position, the mask and the canvas."""

    def __init__(self, doc: Document, factor: int, name: str | None = None) -> None:
        factor = int(factor)
        if factor < 1 or max(doc.size) * factor > MAX_SIDE:
            raise ValueError(f"cannot scale a {doc.size.width}x{doc.size.height} canvas by {factor}")
        self.factor = factor
        self.name = name or f"Scale image x{factor}"
        self._old_size = doc.size
        self._before = [(layer, layer.surface.snapshot(), layer.offset) for layer in doc.layers]
        self._after = [(layer, *_scaled_layer(layer.surface, layer.offset, factor, smooth=True))
                       for layer in doc.layers]
        self._mask_before = doc.mask.surface.snapshot()
        self._mask_after = _scaled_layer(doc.mask.surface, Point(0, 0), factor, smooth=False)[0]

    def _apply(self, doc: Document, states, mask, size: Extent) -> None:
        for layer, tiles, offset in states:
            layer.surface.restore(tiles)
            layer.offset = offset
        doc.mask.surface.restore(mask)
        _set_size(doc, size)

    def redo(self, doc: Document) -> None:
        self._apply(doc, self._after, self._mask_after, Extent(self._old_size.width * self.factor,
                                                             self._old_size.height * self.factor))

    def undo(self, doc: Document) -> None:
        self._apply(doc, self._before, self._mask_before, self._old_size)

    def arrays(self) -> Iterator[np.ndarray]:
        for _, tiles, _ in (*self._before, *self._after):
            yield from tiles.values()
        yield from self._mask_before.values()
        yield from self._mask_after.values()


def _scaled_layer(surface: Surface, offset: Point, factor: int, smooth: bool) -> tuple[dict, Point]:
    """A surface's tiles scaled by factor (Lanczos for pixels, bilinear for a mask) and its scaled offset."""
    import cv2

    box = surface.content_bounds()
    scaled = Surface(surface.channels)
    if not box.is_empty:
        pixels = surface.read(box)
        size = (box.width * factor, box.height * factor)
        out = cv2.resize(pixels, size, interpolation=cv2.INTER_LANCZOS4 if smooth else cv2.INTER_LINEAR)
        if out.ndim == 2 and surface.channels == 4:
            out = out[..., None]
        if surface.channels == 4:
            out[out[..., 3] == 0] = 0  # the surface's rule: transparent pixels are stored as zeros
        scaled.write(box.x * factor, box.y * factor, np.ascontiguousarray(out))
    return scaled.snapshot(), Point(offset.x * factor, offset.y * factor)
