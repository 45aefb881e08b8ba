"""Inpaint mask: bounding box, grow/shrink/feather (arrays and commands), invert, rect and lasso."""

import numpy as np
import pytest

from sd_studio.document.commands import set_mask
from sd_studio.document.document import Document
from sd_studio.document.geometry import Bounds
from sd_studio.document.mask import (
    feather, feather_mask, fill_mask_polygon, fill_mask_rect, grow, grow_mask, invert_mask, shrink,
    shrink_mask,
)


def square(h=40, w=40, at=(15, 15), side=10):
    m = np.zeros((h, w), np.uint8)
    m[at[1]:at[1] + side, at[0]:at[0] + side] = 255
    return m


def box(m):
    ys, xs = np.nonzero(m)
    return Bounds.from_corners(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def doc_with(mask):
    doc = Document.new(mask.shape[1], mask.shape[0])
    doc.execute(set_mask(doc, mask))
    return doc


def test_bounding_box():
    doc = Document.new(300, 200)
    assert doc.mask.bounding_box().is_empty
    doc.execute(set_mask(doc, square(200, 300, (130, 70), 7)))
    assert doc.mask.bounding_box() == Bounds(130, 70, 7, 7)


def test_grow_and_shrink_arrays_move_the_edge_by_the_radius():
    m = square()
    assert box(grow(m, 3)) == Bounds(12, 12, 16, 16)
    assert box(shrink(m, 3)) == Bounds(18, 18, 4, 4)
    assert not shrink(m, 5).any()
    grown = grow(m, 3)
    assert grown[12, 20] == 255 and grown[12, 12] == 0  # a round disk, corners stay round
    assert np.array_equal(grow(m, 0), m) and grow(m, 0) is not m


def test_shrink_array_does_not_erode_from_the_array_edge():
    m = np.full((10, 10), 255, np.uint8)
    assert (shrink(m, 3) == 255).all()


def test_feather_array_softens_only_near_the_edge():
    m = square(60, 60, (20, 20), 20)
    f = feather(m, 4)
    assert f[30, 30] == 255 and f[5, 5] == 0
    edge = f[30, 16:24]
    assert (np.diff(edge.astype(int)) >= 0).all() and 0 < f[30, 20] < 255
    assert not f[:, :15].any()  # reaches about px, never further than the kernel radius
    assert np.array_equal(feather(m, 0), m)


@pytest.mark.parametrize("op, array_op, px", [(grow_mask, grow, 4), (shrink_mask, shrink, 2), (feather_mask, feather, 3)])
def test_mask_commands_match_the_array_operations_and_undo(op, array_op, px):
    m = square(100, 120, (50, 40), 20)
    doc = doc_with(m)
    doc.execute(op(doc, px))
    assert np.array_equal(doc.mask.to_array(), array_op(m, px))
    doc.undo()
    assert np.array_equal(doc.mask.to_array(), m)


def test_mask_commands_touch_only_tiles_near_the_mask():
    doc = Document(4096, 4096)
    doc.execute(fill_mask_rect(doc, Bounds(1000, 1000, 10, 10)))
    cmd = grow_mask(doc, 8)
    assert set(cmd.after) <= {(15, 15), (16, 15), (15, 16), (16, 16)}
    doc.execute(cmd)
    assert doc.mask.bounding_box() == Bounds(992, 992, 26, 26)


def test_shrink_keeps_a_mask_that_touches_the_document_edge():
    m = np.zeros((50, 50), np.uint8)
    m[:, :10] = 255
    doc = doc_with(m)
    doc.execute(shrink_mask(doc, 3))
    assert doc.mask.bounding_box() == Bounds(0, 0, 7, 50)


def test_operations_that_change_nothing_give_no_command():
    doc = Document.new(64, 64)
    assert grow_mask(doc, 5) is None and shrink_mask(doc, 5) is None and feather_mask(doc, 5) is None
    doc.execute(fill_mask_rect(doc, Bounds(0, 0, 64, 64)))
    assert fill_mask_rect(doc, Bounds(3, 3, 5, 5)) is None and grow_mask(doc, 3) is None
    assert invert_mask(doc) is not None


def test_invert_mask():
    m = square(30, 50)
    doc = doc_with(m)
    doc.execute(invert_mask(doc))
    assert np.array_equal(doc.mask.to_array(), 255 - m)
    doc.undo()
    assert np.array_equal(doc.mask.to_array(), m)


def test_fill_mask_rect_adds_and_clips():
    doc = doc_with(square(40, 40, (0, 0), 5))
    doc.execute(fill_mask_rect(doc, Bounds(30, 30, 100, 100)))
    out = doc.mask.to_array()
    assert out[0, 0] == 255 and out[39, 39] == 255 and out[29, 29] == 0
    assert doc.mask.bounding_box() == Bounds(0, 0, 40, 40)
    assert doc.history.names[-1] == "Select rectangle"


def test_fill_mask_polygon_adds_a_triangle():
    doc = doc_with(square(50, 50, (40, 40), 5))
    doc.execute(fill_mask_polygon(doc, [(0, 0), (20, 0), (0, 20)]))
    out = doc.mask.to_array()
    assert out[2, 2] == 255 and out[18, 18] == 0 and out[42, 42] == 255
    assert box(out[:30, :30]) == Bounds(0, 0, 21, 21)
    doc.undo()
    assert not doc.mask.to_array()[:30, :30].any()


def test_fill_mask_polygon_with_too_few_points_or_outside_gives_no_command():
    doc = Document.new(50, 50)
    assert fill_mask_polygon(doc, [(0, 0), (10, 10)]) is None
    assert fill_mask_polygon(doc, [(-30, -30), (-10, -30), (-10, -10)]) is None


def test_mask_edits_leave_layers_alone():
    doc = doc_with(square())
    before = doc.active.surface.snapshot()
    doc.execute(grow_mask(doc, 2))
    assert doc.active.surface.snapshot() == before
