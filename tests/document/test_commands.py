"""Commands: each change undoes to exactly what was there and redoes to exactly what it made."""

import numpy as np
import pytest

from sd_studio.document.commands import (
    AddLayer, Compound, MoveLayer, RemoveLayer, ReplaceLayerPixels, SetLayerProperty, StrokeRecorder,
    TilesCommand, clear_mask, duplicate_layer, flatten_image, merge_down, set_mask,
)
from sd_studio.document.document import Document
from sd_studio.document.geometry import Bounds, Point
from sd_studio.document.layer import BlendMode, Layer
from sd_studio.document.surface import TILE, Surface


def solid(value, h=8, w=8):
    return np.full((h, w, 4), value, np.uint8)


def three_layers():
    doc = Document.new(100, 80, (10, 20, 30, 255))
    a = doc.add_layer("A")
    b = doc.add_layer("B")
    return doc, doc.layers[0], a, b


def test_tiles_command_write_is_not_run_until_executed_and_undoes_exactly():
    doc = Document.new(100, 80, (10, 20, 30, 255))
    layer = doc.active
    before = layer.surface.snapshot()
    cmd = TilesCommand.write("Paste", layer, layer.surface, 60, 60, solid(200, 10, 10))
    assert layer.read(Bounds(60, 60, 1, 1))[0, 0, 0] == 10
    doc.execute(cmd)
    assert layer.read(Bounds(69, 69, 1, 1))[0, 0, 0] == 200
    assert set(cmd.after) == {(0, 0), (1, 0), (0, 1), (1, 1)} and not cmd.is_noop
    doc.undo()
    assert layer.surface.snapshot() == before


def test_tiles_command_announces_pixels_in_document_coordinates():
    doc = Document.new(200, 200, None)
    layer = doc.active
    layer.offset = Point(100, 0)
    seen = []
    doc.events.pixels_changed.connect(seen.append)
    doc.execute(TilesCommand.write("p", layer, layer.surface, 0, 0, solid(5)))
    assert seen == [Bounds(100, 0, 64, 64)]


def test_mask_tiles_command_announces_mask_changes():
    doc = Document.new(100, 80)
    seen = []
    doc.events.mask_changed.connect(seen.append)
    doc.execute(TilesCommand.write("m", None, doc.mask.surface, 70, 0, np.full((4, 4), 255, np.uint8)))
    assert seen == [Bounds(64, 0, 36, 64)]  # clipped to the document
    assert doc.mask.bounding_box() == Bounds(70, 0, 4, 4)


def test_stroke_recorder_remembers_first_touch_only():
    doc = Document.new(100, 80, (1, 1, 1, 255))
    layer = doc.active
    original = layer.surface.tile((0, 0))
    rec = StrokeRecorder("s", layer, layer.surface)
    rec.touch(Bounds(0, 0, 4, 4))
    layer.surface.write(0, 0, solid(50, 4, 4))
    rec.touch(Bounds(0, 0, 4, 4))
    layer.surface.write(0, 0, solid(60, 4, 4))
    cmd = rec.finish()
    assert cmd.before[(0, 0)] is original
    doc.push_done(cmd)
    doc.undo()
    assert layer.surface.tile((0, 0)) is original
    doc.redo()
    assert layer.read(Bounds(0, 0, 1, 1))[0, 0, 0] == 60


def test_add_and_remove_layer_restore_stack_and_active():
    doc, bg, a, b = three_layers()
    assert doc.layers == [bg, a, b] and doc.active is b
    doc.active = a
    doc.execute(RemoveLayer(a))
    assert doc.layers == [bg, b] and doc.active is bg
    doc.undo()
    assert doc.layers == [bg, a, b] and doc.active is a
    doc.execute(RemoveLayer(bg))
    assert doc.active is a  # the active layer was not the removed one
    doc.undo()
    doc.active = bg
    doc.execute(RemoveLayer(bg))
    assert doc.active is a  # the bottom layer's replacement is the one above
    doc.undo()
    assert doc.active is bg


def test_removing_the_last_layer_leaves_no_active_layer():
    doc = Document.new(10, 10)
    layer = doc.active
    doc.execute(RemoveLayer(layer))
    assert doc.layers == [] and doc.active is None
    doc.undo()
    assert doc.layers == [layer] and doc.active is layer


def test_add_layer_at_index():
    doc, bg, a, b = three_layers()
    new = Layer(name="N")
    doc.execute(AddLayer(new, 1))
    assert doc.layers == [bg, new, a, b] and doc.active is new
    doc.undo()
    assert doc.layers == [bg, a, b] and doc.active is b


def test_move_layer_and_back():
    doc, bg, a, b = three_layers()
    doc.execute(MoveLayer(b, 0))
    assert doc.layers == [b, bg, a]
    doc.execute(MoveLayer(bg, 99))
    assert doc.layers == [b, a, bg]
    doc.undo()
    doc.undo()
    assert doc.layers == [bg, a, b]


def test_duplicate_layer_goes_just_above_with_the_same_pixels():
    doc, bg, a, b = three_layers()
    doc.execute(duplicate_layer(bg, doc))
    dup = doc.layers[1]
    assert dup.name == "Background copy" and doc.active is dup
    assert np.array_equal(dup.read(doc.bounds), bg.read(doc.bounds))
    doc.undo()
    assert doc.layers == [bg, a, b]


@pytest.mark.parametrize("prop, value", [
    ("name", "Sky"), ("offset", (3, -4)), ("opacity", 0.25), ("visible", False), ("locked", True),
    ("blend_mode", BlendMode.MULTIPLY), ("blend_mode", "svg:screen"), ("metadata", {"parameters": "x"}),
])
def test_set_layer_property_and_undo(prop, value):
    doc, bg, a, b = three_layers()
    old = a.properties()
    seen = []
    doc.events.layer_property_changed.connect(lambda layer, name: seen.append((layer, name)))
    doc.execute(SetLayerProperty(a, prop, value))
    assert a.properties() != old and seen == [(a, prop)]
    if prop == "offset":
        assert a.offset == Point(3, -4)
    if prop == "blend_mode":
        assert isinstance(a.blend_mode, BlendMode)
    doc.undo()
    assert a.properties() == old


def test_set_layer_property_rejects_bad_values():
    layer = Layer()
    with pytest.raises(ValueError):
        SetLayerProperty(layer, "surface", Surface())
    with pytest.raises(ValueError):
        SetLayerProperty(layer, "opacity", 1.5)
    with pytest.raises(ValueError):
        SetLayerProperty(layer, "blend_mode", "svg:nope")


def test_property_changes_that_show_invalidate_the_composite():
    doc = Document.new(64, 64, None)
    layer = doc.active
    layer.surface.write(0, 0, solid(255, 64, 64))
    doc.notify_pixels(layer, None)
    assert doc.composite()[0, 0, 3] == 255
    doc.execute(SetLayerProperty(layer, "visible", False))
    assert doc.composite()[0, 0, 3] == 0
    doc.undo()
    doc.execute(SetLayerProperty(layer, "offset", (32, 0)))
    assert doc.composite()[0, 0, 3] == 0 and doc.composite()[0, 32, 3] == 255
    doc.undo()
    assert doc.composite()[0, 0, 3] == 255


def test_replace_layer_pixels_swaps_surface_and_offset():
    doc = Document.new(64, 64, (9, 9, 9, 255))
    layer = doc.active
    new = Surface()
    new.write(0, 0, solid(77, 2, 2))
    doc.execute(ReplaceLayerPixels("Replace", layer, new, Point(5, 5)))
    assert layer.offset == Point(5, 5) and layer.surface.content_bounds() == Bounds(0, 0, 2, 2)
    doc.undo()
    assert layer.offset == Point(0, 0) and layer.read(Bounds(0, 0, 64, 64))[..., 0].min() == 9


def test_compound_undoes_in_reverse():
    doc, bg, a, b = three_layers()
    doc.execute(Compound("two", [MoveLayer(b, 0), SetLayerProperty(b, "name", "Z")]))
    assert doc.layers[0] is b and b.name == "Z" and doc.history.names[-1] == "two"
    doc.undo()
    assert doc.layers == [bg, a, b] and b.name == "B"


def test_merge_down_composites_into_lower_and_keeps_its_properties():
    doc, bg, a, b = three_layers()
    a.surface.write(0, 0, np.tile(np.array([200, 0, 0, 255], np.uint8), (4, 4, 1)))
    b.offset = Point(2, 0)
    b.surface.write(0, 0, np.tile(np.array([0, 0, 200, 255], np.uint8), (4, 4, 1)))
    doc.execute(SetLayerProperty(a, "name", "Lower"))
    doc.execute(merge_down(b, doc))
    assert doc.layers == [bg, a] and a.name == "Lower" and doc.active is a
    row = a.read(Bounds(0, 0, 7, 1))[0]
    assert [tuple(p) for p in row] == [(200, 0, 0, 255)] * 2 + [(0, 0, 200, 255)] * 4 + [(0, 0, 0, 0)]
    doc.undo()
    assert doc.layers == [bg, a, b] and a.read(Bounds(2, 0, 1, 1))[0, 0, 0] == 200


def test_merge_down_applies_upper_opacity():
    doc, bg, a, b = three_layers()
    a.surface.write(0, 0, np.tile(np.array([0, 0, 0, 255], np.uint8), (1, 1, 1)))
    b.surface.write(0, 0, np.tile(np.array([255, 255, 255, 255], np.uint8), (1, 1, 1)))
    b.opacity = 0.5
    doc.execute(merge_down(b, doc))
    assert abs(int(a.read(Bounds(0, 0, 1, 1))[0, 0, 0]) - 128) <= 1


def test_merge_down_refuses_the_bottom_layer():
    doc, bg, a, b = three_layers()
    with pytest.raises(ValueError):
        merge_down(bg, doc)


def test_flatten_image_and_undo():
    doc, bg, a, b = three_layers()
    b.surface.write(0, 0, solid(255, 4, 4))
    expected = doc.composite().copy()
    doc.execute(flatten_image(doc))
    assert len(doc.layers) == 1 and doc.active is doc.layers[0]
    assert np.array_equal(doc.layers[0].read(doc.bounds), expected)
    doc.undo()
    assert doc.layers == [bg, a, b] and doc.active is b


def test_clear_and_set_mask():
    doc = Document.new(100, 80)
    mask = np.zeros((80, 100), np.uint8)
    mask[10:20, 70:90] = 255
    doc.execute(set_mask(doc, mask))
    assert np.array_equal(doc.mask.to_array(), mask)
    doc.execute(clear_mask(doc))
    assert doc.mask.is_empty
    doc.undo()
    assert np.array_equal(doc.mask.to_array(), mask)
    doc.undo()
    assert doc.mask.is_empty


def test_tiles_command_reports_its_arrays():
    doc = Document.new(TILE, TILE)
    cmd = TilesCommand.write("p", doc.active, doc.active.surface, 0, 0, solid(1))
    assert len(list(cmd.arrays())) == 2


def test_a_compound_that_fails_part_way_leaves_the_document_as_it_was():
    doc, bg, a, b = three_layers()
    stranger = Layer(name="Not in the document")
    before = [l.properties() for l in doc.layers]
    with pytest.raises(ValueError):
        doc.execute(Compound("broken", [SetLayerProperty(a, "name", "Renamed"), MoveLayer(b, 0), RemoveLayer(stranger)]))
    assert doc.layers == [bg, a, b] and [l.properties() for l in doc.layers] == before
    assert doc.history.names == ["Add layer “A”", "Add layer “B”"]  # the failed one is not recorded
