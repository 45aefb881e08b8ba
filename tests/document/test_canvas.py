"""Canvas commands: resizing (moving the content) and scaling the whole image, both undoable."""

from __future__ import annotations

import numpy as np
import pytest

from sd_studio.document.canvas import ResizeCanvas, ScaleImage
from sd_studio.document.document import Document
from sd_studio.document.geometry import Bounds, Extent, Point


def _doc() -> Document:
    rng = np.random.default_rng(0)
    doc = Document.from_pixels(rng.integers(0, 256, (70, 90, 4), dtype=np.uint8).astype(np.uint8) | np.uint8(1))
    layer = doc.add_layer("top")
    layer.surface.write(10, 5, np.full((8, 12, 4), 200, np.uint8))
    mask = np.zeros((70, 90), np.uint8)
    mask[20:30, 40:60] = 255
    from sd_studio.document.commands import set_mask

    doc.execute(set_mask(doc, mask))
    doc.history.mark_clean()
    return doc


def test_resize_canvas_moves_the_content_and_the_mask_and_undo_puts_everything_back():
    doc = _doc()
    before = np.array(doc.composite(), copy=True)
    mask_before = doc.mask.to_array()
    events = []
    doc.events.layers_changed.connect(lambda: events.append("layers"))
    doc.execute(ResizeCanvas(doc, Extent(130, 100), Point(25, 10)))
    assert doc.size == (130, 100) and doc.mask.size == (130, 100)
    after = doc.composite()
    assert after.shape == (100, 130, 4)
    assert np.array_equal(after[10:80, 25:115], before)
    assert (after[:10] == 0).all() and (after[:, :25] == 0).all()
    assert np.array_equal(doc.mask.to_array()[10:80, 25:115], mask_before)
    assert doc.mask.bounding_box() == Bounds(65, 30, 20, 10)
    assert events
    doc.undo()
    assert doc.size == (90, 70)
    assert np.array_equal(doc.composite(), before)
    assert np.array_equal(doc.mask.to_array(), mask_before)
    doc.redo()
    assert doc.size == (130, 100) and np.array_equal(doc.composite()[10:80, 25:115], before)


def test_shrinking_the_canvas_crops_the_mask_but_keeps_layer_pixels_for_undo():
    doc = _doc()
    before = np.array(doc.composite(), copy=True)
    doc.execute(ResizeCanvas(doc, Extent(50, 40), Point(-45, -15)))
    assert np.array_equal(doc.composite()[:, :45], before[15:55, 45:90])
    assert (doc.composite()[:, 45:] == 0).all()  # beyond the old right edge: nothing
    assert doc.mask.bounding_box() == Bounds(0, 5, 15, 10)
    doc.undo()
    assert np.array_equal(doc.composite(), before)


def test_scale_image_scales_layers_mask_and_canvas():
    doc = _doc()
    doc.execute(ScaleImage(doc, 2))
    assert doc.size == (180, 140)
    top = doc.layers[-1]
    assert top.surface.content_bounds().offset(*top.offset) == Bounds(20, 10, 24, 16)
    assert doc.mask.bounding_box() == Bounds(80, 40, 40, 20)
    doc.undo()
    assert doc.size == (90, 70) and doc.layers[-1].surface.content_bounds() == Bounds(10, 5, 12, 8)


def test_impossible_sizes_are_refused():
    doc = _doc()
    with pytest.raises(ValueError):
        ResizeCanvas(doc, Extent(0, 10))
    with pytest.raises(ValueError):
        ScaleImage(doc, 1000)
