"""Brush strokes: dab shape, per-stroke opacity, one undo entry, erase, mask, locks, offsets."""

import numpy as np
import pytest

from sd_studio.document.brush import Brush, Stroke, dab
from sd_studio.document.document import Document
from sd_studio.document.geometry import Bounds, Point
from sd_studio.errors import SDStudioError


def alpha(doc, layer=None):
    return (layer or doc.active).read(doc.bounds)[..., 3]


def stroke(doc, brush, target, points, **kw):
    s = Stroke(doc, brush, target, **kw)
    for p in points:
        s.add_point(*p)
    return s.finish()


def test_dab_is_full_inside_zero_outside_and_antialiased_at_the_edge():
    rect, cov = dab(10.0, 10.0, 5.0, 1.0)
    assert rect == Bounds(5, 5, 10, 10) and cov.shape == (10, 10)
    assert cov[5, 5] == 1.0 and cov[0, 0] == 0.0
    edge = cov[(cov > 0) & (cov < 1)]
    assert edge.size > 0  # a hard brush still gets a soft one-pixel rim
    soft = dab(10.0, 10.0, 5.0, 0.0)[1]
    # From the centre outwards the soft dab falls steadily, with no flat full-strength core.
    assert (np.diff(soft[5, 5:]) < 0).all() and soft[5, 5] < 1.0 and soft[5, 9] < 0.1


def test_tiny_dab_still_covers_a_pixel():
    rect, cov = dab(3.5, 3.5, 0.1, 1.0)
    assert cov.max() > 0 and not rect.is_empty


def test_click_paints_a_round_dab_of_the_brush_size():
    doc = Document.new(64, 64, None)
    stroke(doc, Brush(size=10, hardness=1.0, color=(255, 0, 0)), doc.active, [(20, 20)])
    a = alpha(doc)
    assert tuple(doc.active.read(Bounds(20, 20, 1, 1))[0, 0]) == (255, 0, 0, 255)
    assert doc.active.surface.content_bounds() == Bounds(15, 15, 10, 10)
    assert a[20, 15] > 0 and a[20, 14] == 0 and a[15, 15] == 0  # round, not square


def test_a_stroke_is_one_undo_entry_and_undo_restores_the_very_tiles():
    doc = Document.new(300, 100, (255, 255, 255, 255))
    before = doc.active.surface.snapshot()
    cmd = stroke(doc, Brush(size=8), doc.active, [(5, 50), (150, 40), (290, 60)])
    assert len(doc.history) == 1 and doc.history.names == [cmd.name] == ["Paint on “Background”"]
    after = doc.active.read(doc.bounds)
    assert (after[50, 5:290, 0] < 255).any()
    doc.undo()
    snap = doc.active.surface.snapshot()
    assert snap.keys() == before.keys() and all(snap[k] is before[k] for k in snap)
    doc.redo()
    assert np.array_equal(doc.active.read(doc.bounds), after)


def test_per_stroke_opacity_never_builds_up():
    doc = Document.new(100, 40, (255, 255, 255, 255))
    points = [(10, 20), (90, 20)] * 5  # scrub back and forth over the same pixels
    stroke(doc, Brush(size=12, hardness=1.0, opacity=0.5, spacing=0.05), doc.active, points)
    red = doc.active.read(doc.bounds)[..., 0]
    assert red.min() == 128 and (red[20, 10:90] == 128).all()


def test_a_second_stroke_does_build_on_the_first():
    doc = Document.new(40, 40, (255, 255, 255, 255))
    brush = Brush(size=10, hardness=1.0, opacity=0.5)
    stroke(doc, brush, doc.active, [(20, 20)])
    stroke(doc, brush, doc.active, [(20, 20)])
    assert doc.active.read(Bounds(20, 20, 1, 1))[0, 0, 0] == 64
    assert len(doc.history) == 2


def test_dabs_follow_the_spacing_and_leave_no_gaps():
    doc = Document.new(200, 40, None)
    stroke(doc, Brush(size=6, hardness=1.0), doc.active, [(10, 20), (190, 20)])
    assert (alpha(doc)[20, 10:190] == 255).all()


def test_many_short_segments_paint_like_one_long_one():
    one = Document.new(200, 40, None)
    many = Document.new(200, 40, None)
    brush = Brush(size=9, hardness=0.5, spacing=0.3)
    stroke(one, brush, one.active, [(10, 20), (190, 20)])
    stroke(many, brush, many.active, [(10 + i * 0.5, 20) for i in range(361)])
    diff = np.abs(alpha(one).astype(int) - alpha(many).astype(int))
    assert diff.max() <= 1


def test_wide_spacing_leaves_separate_dabs():
    doc = Document.new(200, 40, None)
    stroke(doc, Brush(size=6, hardness=1.0, spacing=3.0), doc.active, [(10, 20), (100, 20)])
    row = alpha(doc)[20]
    assert row[10] == 255 and row[28] == 255 and row[19] == 0  # dabs every 18 px


def test_erase_reduces_alpha_and_keeps_colour():
    doc = Document.new(64, 64, (10, 200, 30, 255))
    stroke(doc, Brush(size=10, hardness=1.0, opacity=0.5, erase=True), doc.active, [(30, 30), (31, 30)])
    assert tuple(doc.active.read(Bounds(30, 30, 1, 1))[0, 0]) == (10, 200, 30, 128)
    stroke(doc, Brush(size=10, hardness=1.0, erase=True), doc.active, [(30, 30)])
    assert tuple(doc.active.read(Bounds(30, 30, 1, 1))[0, 0]) == (0, 0, 0, 0)
    assert doc.history.names[-1] == "Erase on “Background”"


def test_mask_brush_takes_the_max_and_mask_eraser_reduces():
    doc = Document.new(64, 64)
    stroke(doc, Brush(size=10, hardness=1.0, opacity=0.5), None, [(30, 30)])
    assert doc.mask.to_array()[30, 30] == 128
    assert stroke(doc, Brush(size=10, hardness=1.0, opacity=0.25), None, [(30, 30)]) is None
    assert doc.mask.to_array()[30, 30] == 128  # weaker paint does not lower the mask
    stroke(doc, Brush(size=10, hardness=1.0), None, [(30, 30)])
    assert doc.mask.to_array()[30, 30] == 255 and doc.mask.bounding_box() == Bounds(25, 25, 10, 10)
    stroke(doc, Brush(size=4, hardness=1.0, opacity=0.5, erase=True), None, [(30, 30)])
    assert doc.mask.to_array()[30, 30] == 128
    assert doc.history.names == ["Paint mask"] * 2 + ["Erase mask"]
    doc.history.jump_to(0, doc)
    assert doc.mask.is_empty
    assert all(layer.surface.content_bounds() == Bounds(0, 0, 64, 64) for layer in doc.layers)


def test_locked_layer_refuses_paint():
    doc = Document.new(64, 64)
    doc.active.locked = True
    with pytest.raises(SDStudioError, match="Layer “Background” is locked"):
        Stroke(doc, Brush(), doc.active)
    doc.active.locked = False
    s = Stroke(doc, Brush(), doc.active)
    doc.active.locked = True
    with pytest.raises(SDStudioError):
        s.add_point(5, 5)


def test_layer_offset_maps_document_to_layer_coordinates():
    doc = Document.new(128, 128, None)
    layer = doc.active
    layer.offset = Point(40, -20)
    s = Stroke(doc, Brush(size=4, hardness=1.0), layer)
    dirty = s.add_point(50, 50)
    s.finish()
    assert dirty == Bounds(48, 48, 4, 4)
    assert layer.surface.content_bounds() == Bounds(8, 68, 4, 4)
    assert doc.composite()[50, 50, 3] == 255


def test_painting_stops_at_the_document_edge():
    doc = Document.new(64, 64, None)
    assert stroke(doc, Brush(size=10), doc.active, [(-50, -50), (-20, -50)]) is None
    assert len(doc.history) == 0
    stroke(doc, Brush(size=10, hardness=1.0), doc.active, [(0, 0)])
    assert doc.active.surface.content_bounds() == Bounds(0, 0, 5, 5)


def test_zero_opacity_stroke_records_nothing():
    doc = Document.new(64, 64)
    assert stroke(doc, Brush(opacity=0.0), doc.active, [(10, 10), (50, 50)]) is None
    assert len(doc.history) == 0


def test_cancel_puts_every_tile_back_and_records_nothing():
    doc = Document.new(200, 200, (1, 2, 3, 255))
    before = doc.active.surface.snapshot()
    s = Stroke(doc, Brush(size=30), doc.active)
    s.add_point(10, 10)
    s.add_point(190, 190)
    s.cancel()
    snap = doc.active.surface.snapshot()
    assert all(snap[k] is before[k] for k in before) and snap.keys() == before.keys()
    assert s.finish() is None and len(doc.history) == 0


def test_pressure_scales_size_or_opacity():
    small = Document.new(64, 64, None)
    stroke(small, Brush(size=20, hardness=1.0), small.active, [(32, 32, 0.5)])
    assert small.active.surface.content_bounds() == Bounds(27, 27, 10, 10)
    faint = Document.new(64, 64, None)
    stroke(faint, Brush(size=20, hardness=1.0), faint.active, [(32, 32, 0.5)],
           pressure_size=False, pressure_opacity=True)
    assert faint.active.surface.content_bounds() == Bounds(22, 22, 20, 20)
    assert alpha(faint).max() == 128


def test_add_point_announces_the_dirty_rectangle():
    doc = Document.new(100, 100, None)
    seen, masks = [], []
    doc.events.pixels_changed.connect(seen.append)
    doc.events.mask_changed.connect(masks.append)
    s = Stroke(doc, Brush(size=10), doc.active)
    dirty = s.add_point(50, 50)
    assert seen == [dirty] and dirty == Bounds(45, 45, 10, 10)
    m = Stroke(doc, Brush(size=10), None)
    assert masks == [m.add_point(20, 20)]


def test_a_stroke_on_a_huge_document_touches_only_tiles_near_the_dabs():
    doc = Document.new(8192, 8192, None)
    cmd = stroke(doc, Brush(size=20), doc.active, [(4000, 4000), (4040, 4000)])
    assert len(cmd.after) <= 4 and doc.active.surface.nbytes() <= 4 * 64 * 64 * 4


def test_finishing_twice_or_painting_after_finish():
    doc = Document.new(64, 64)
    s = Stroke(doc, Brush(), doc.active)
    s.add_point(10, 10)
    assert s.finish() is not None and s.finish() is None
    with pytest.raises(RuntimeError):
        s.add_point(20, 20)


@pytest.mark.parametrize("kwargs", [
    {"size": 0}, {"hardness": 1.5}, {"opacity": -0.1}, {"spacing": 0}, {"color": (0, 0, 300)},
])
def test_brush_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        Brush(**kwargs)
