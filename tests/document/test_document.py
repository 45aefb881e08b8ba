"""Document: building, the active layer, events, and the cached composite."""

import numpy as np
import pytest

from sd_studio.document.commands import TilesCommand
from sd_studio.document.document import MAX_SIDE, Document
from sd_studio.document.geometry import Bounds, Extent, Point
from sd_studio.document.layer import Layer


def test_new_document_has_one_filled_background():
    doc = Document.new(70, 50, (1, 2, 3, 255))
    assert doc.size == Extent(70, 50) and doc.bounds == Bounds(0, 0, 70, 50)
    assert len(doc.layers) == 1 and doc.active is doc.layers[0] and doc.active.name == "Background"
    assert (doc.composite() == (1, 2, 3, 255)).all()
    assert doc.mask.is_empty and not doc.is_modified and len(doc.history) == 0


def test_transparent_new_document_stores_nothing():
    doc = Document.new(70, 50, None)
    assert doc.active.surface.is_empty


def test_from_pixels_round_trips():
    px = np.random.default_rng(0).integers(0, 256, (33, 47, 4), dtype=np.uint8)
    px[..., 3] = 255
    doc = Document.from_pixels(px, name="Photo")
    assert doc.size == Extent(47, 33) and doc.active.name == "Photo"
    assert np.array_equal(doc.composite(), px)


@pytest.mark.parametrize("w, h", [(0, 10), (10, 0), (MAX_SIDE + 1, 1)])
def test_size_limits(w, h):
    with pytest.raises(ValueError):
        Document(w, h)


def test_add_layer_goes_above_the_active_one_and_undoes():
    doc = Document.new(10, 10)
    bg = doc.active
    top = doc.add_layer("Top")
    doc.active = bg
    mid = doc.add_layer("Mid")
    assert doc.layers == [bg, mid, top] and doc.active is mid
    assert doc.index_of(mid) == 1 and doc.layer_by_id(top.id) is top
    with pytest.raises(KeyError):
        doc.layer_by_id(-1)
    doc.undo()
    assert doc.layers == [bg, top] and doc.active is bg


def test_active_must_be_in_the_document_and_changes_are_announced():
    doc = Document.new(10, 10)
    seen = []
    doc.events.active_changed.connect(seen.append)
    with pytest.raises(ValueError):
        doc.active = Layer()
    layer = doc.add_layer()
    assert seen[-1] is layer
    seen.clear()
    doc.active = layer  # already active: no event
    assert seen == []
    doc.active = doc.layers[0]
    assert seen == [doc.layers[0]]


def test_layer_events_carry_the_layer_and_its_document_rectangle():
    doc = Document.new(200, 100, None)
    layer = doc.active
    layer.offset = Point(-10, 5)
    layers_seen, composite_seen = [], []
    doc.events.layer_pixels_changed.connect(lambda l, b: layers_seen.append((l, b)))
    doc.events.pixels_changed.connect(composite_seen.append)
    doc.execute(TilesCommand.write("p", layer, layer.surface, 0, 0, np.full((2, 2, 4), 9, np.uint8)))
    assert layers_seen == [(layer, Bounds(-10, 5, 64, 64))]
    assert composite_seen == [Bounds(0, 5, 54, 64)]


def test_layers_changed_on_stack_edits():
    doc = Document.new(10, 10)
    count = []
    doc.events.layers_changed.connect(lambda: count.append(1))
    doc.add_layer()
    doc.undo()
    doc.redo()
    assert len(count) == 3


def test_composite_recomputes_only_dirty_tiles():
    doc = Document.new(256, 256, (0, 0, 0, 255))
    doc.composite()
    cache = doc._cache
    start = cache.recomputed_pixels
    layer = doc.active
    doc.execute(TilesCommand.write("p", layer, layer.surface, 70, 70, np.full((4, 4, 4), 255, np.uint8)))
    part = doc.composite(Bounds(0, 0, 256, 256))
    assert part[70, 70, 0] == 255 and part[69, 69, 0] == 0
    assert cache.recomputed_pixels - start == 64 * 64
    doc.composite()
    assert cache.recomputed_pixels - start == 64 * 64


def test_composite_of_a_rectangle_is_clipped_and_read_only():
    doc = Document.new(50, 40, (5, 5, 5, 255))
    part = doc.composite(Bounds(40, 30, 20, 20))
    assert part.shape == (10, 10, 4)
    with pytest.raises(ValueError):
        part[0, 0, 0] = 1


def test_undo_and_redo_with_empty_history_are_harmless():
    doc = Document.new(10, 10)
    assert doc.undo() is None and doc.redo() is None
