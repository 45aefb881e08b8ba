"""History: undo/redo order, the redo tail, the clean mark and the memory budget."""

import numpy as np

from sd_studio.document.commands import AddLayer, TilesCommand
from sd_studio.document.document import Document
from sd_studio.document.geometry import Bounds
from sd_studio.document.history import History
from sd_studio.document.layer import Layer
from sd_studio.document.surface import TILE


def fill(doc, x, value, size=TILE):
    """A command writing a size x size block of the active layer (not yet run)."""
    return TilesCommand.write(f"fill {value}", doc.active, doc.active.surface, x, 0, np.full((size, size, 4), value, np.uint8))


def pixel(doc, x=0):
    return int(doc.active.read(Bounds(x, 0, 1, 1))[0, 0, 0])


def test_undo_redo_walk_the_stack_in_order():
    doc = Document.new(128, 64, None)
    for v in (10, 20, 30):
        doc.execute(fill(doc, 0, v))
    assert pixel(doc) == 30 and doc.history.names == ["fill 10", "fill 20", "fill 30"]
    assert doc.undo().name == "fill 30" and pixel(doc) == 20
    assert doc.undo().name == "fill 20" and pixel(doc) == 10
    assert doc.redo().name == "fill 20" and pixel(doc) == 20
    doc.history.jump_to(0, doc)
    assert doc.active.surface.is_empty and doc.undo() is None
    doc.history.jump_to(99, doc)
    assert pixel(doc) == 30 and doc.redo() is None


def test_pushing_drops_the_redo_tail():
    doc = Document.new(128, 64, None)
    doc.execute(fill(doc, 0, 10))
    doc.execute(fill(doc, 0, 20))
    doc.undo()
    doc.execute(fill(doc, 0, 99))
    assert doc.history.names == ["fill 10", "fill 99"] and not doc.history.can_redo


def test_clean_mark_follows_undo_and_is_lost_with_the_redo_tail():
    doc = Document.new(128, 64, None)
    assert not doc.is_modified
    doc.execute(fill(doc, 0, 10))
    assert doc.is_modified
    doc.history.mark_clean()
    doc.execute(fill(doc, 0, 20))
    doc.undo()
    assert not doc.is_modified
    doc.undo()
    doc.execute(fill(doc, 0, 30))  # the saved state can no longer be reached
    assert doc.is_modified
    doc.undo()
    assert doc.is_modified


def test_history_changed_is_announced():
    doc = Document.new(64, 64, None)
    seen = []
    doc.events.history_changed.connect(lambda: seen.append(1))
    doc.execute(fill(doc, 0, 1))
    doc.undo()
    doc.redo()
    assert len(seen) == 3


def test_budget_drops_oldest_entries_and_keeps_the_newest():
    tile_bytes = TILE * TILE * 4
    doc = Document(4 * TILE, TILE, history_budget=5 * tile_bytes)
    doc.layers.append(Layer())
    doc.active = doc.layers[0]
    for i in range(4):  # each entry holds one new tile (the before tile is empty)
        doc.execute(fill(doc, i * TILE, i + 1))
    assert len(doc.history) == 4 and doc.history.nbytes == 4 * tile_bytes
    doc.execute(fill(doc, 0, 50))  # holds the "1" tile (shared with entry 0) and a new one
    assert doc.history.nbytes == 5 * tile_bytes and len(doc.history) == 5
    doc.execute(fill(doc, TILE, 60))
    assert doc.history.nbytes <= 5 * tile_bytes
    assert doc.history.names[-1] == "fill 60" and "fill 1" not in doc.history.names
    # Undo everything that is left: the oldest surviving edit is still undoable, nothing breaks.
    doc.history.jump_to(0, doc)
    assert not doc.history.can_undo


def test_newest_entry_is_kept_even_when_larger_than_the_budget():
    doc = Document(256, 256, history_budget=1000)
    doc.layers.append(Layer())
    doc.active = doc.layers[0]
    doc.execute(fill(doc, 0, 1, size=200))
    doc.execute(fill(doc, 0, 2, size=200))
    assert doc.history.names == ["fill 2"] and doc.history.nbytes > 1000
    doc.undo()
    assert pixel(doc) == 1


def test_clean_mark_survives_or_is_lost_with_budget_entries():
    tile_bytes = TILE * TILE * 4
    h = History(budget_bytes=tile_bytes)
    doc = Document(4 * TILE, TILE)
    doc.layers.append(Layer())
    doc.active = doc.layers[0]
    h.push(fill(doc, 0, 1), doc)
    h.mark_clean()
    h.push(fill(doc, TILE, 2), doc)  # drops "fill 1", but its result is still the saved state
    assert len(h) == 1 and not h.is_clean
    h.undo(doc)
    assert h.is_clean
    h.redo(doc)
    h.push(fill(doc, 2 * TILE, 3), doc)  # drops "fill 2": the saved state is gone for good
    h.undo(doc)
    assert not h.is_clean and not h.can_undo


def test_shared_tiles_are_counted_once():
    tile_bytes = TILE * TILE * 4
    doc = Document.new(TILE, TILE, (1, 2, 3, 255))
    layer = doc.active.duplicate()
    doc.execute(AddLayer(layer))
    assert doc.history.nbytes == tile_bytes  # the duplicate's one tile, shared with the original
    doc.execute(TilesCommand.write("p", layer, layer.surface, 0, 0, np.full((TILE, TILE, 4), 9, np.uint8)))
    assert doc.history.nbytes == 2 * tile_bytes  # the shared "before" tile is not counted twice
    doc.history.clear()
    assert doc.history.nbytes == 0


def test_dropping_an_entry_releases_what_it_retained_even_if_its_layer_changed_since():
    doc = Document(TILE, TILE)
    layer = Layer()
    layer.surface.write(0, 0, np.full((TILE, TILE, 4), 1, np.uint8))
    other = Layer()
    h = History()
    h.push(AddLayer(layer), doc)
    layer.surface.write(0, 0, np.full((TILE, TILE, 4), 2, np.uint8))  # AddLayer.arrays() now differs
    h.budget_bytes = 0
    fill_other = TilesCommand.write("o", other, other.surface, 0, 0, np.full((TILE, TILE, 4), 3, np.uint8))
    h.push(fill_other, doc)
    assert h.names == ["o"]
    assert h.nbytes == TILE * TILE * 4  # only the "o" tile; the added layer's old tile is released
