"""Point, Extent and Bounds: the rules their methods name."""

from sd_studio.document.geometry import Bounds, Extent, Point


def test_point_arithmetic_with_tuples():
    assert Point(3, 4) + (1, -2) == Point(4, 2)
    assert Point(3, 4) - Point(1, 1) == Point(2, 3)
    assert isinstance(Point(0, 0) + (1, 1), Point)


def test_extent_rounding_and_scaling():
    assert Extent(513, 500).multiple_of(8) == Extent(520, 504)
    assert Extent(100, 700).at_least(512) == Extent(512, 700)
    assert Extent(2000, 1000).scale_longest_side(1000) == Extent(1000, 500)
    scaled = Extent(1024, 512).scale_keep_aspect(512)
    assert abs(scaled.pixel_count - 512 * 512) < 1024 and scaled.width == 2 * scaled.height
    assert Extent(0, 5).is_empty and not Extent(1, 1).is_empty


def test_bounds_edges_and_slices():
    b = Bounds(2, 3, 10, 5)
    assert (b.right, b.bottom) == (12, 8)
    assert b.extent == Extent(10, 5) and b.origin == Point(2, 3)
    assert b.slices == (slice(3, 8), slice(2, 12))
    assert Bounds.from_corners(5, 5, 2, 9) == Bounds(5, 5, 0, 4) and Bounds.from_corners(5, 5, 2, 9).is_empty
    assert Bounds.from_extent((7, 9)) == Bounds(0, 0, 7, 9)


def test_intersect_union_contains():
    a, b = Bounds(0, 0, 10, 10), Bounds(5, 6, 10, 10)
    assert a.intersect(b) == Bounds(5, 6, 5, 4)
    assert a.intersect(Bounds(20, 20, 5, 5)).is_empty
    assert a.union(b) == Bounds(0, 0, 15, 16)
    assert a.union(Bounds(100, 100, 0, 0)) == a and Bounds(100, 100, 0, 0).union(a) == a
    assert a.contains(Bounds(1, 1, 9, 9)) and not a.contains(b)
    assert a.contains_point(9.5, 0) and not a.contains_point(10, 0)


def test_pad_offset_clamp():
    b = Bounds(10, 10, 4, 4)
    assert b.pad(2) == Bounds(8, 8, 8, 8)
    assert b.pad(-3).is_empty
    assert b.offset(-10, 5) == Bounds(0, 15, 4, 4)
    outer = Bounds(0, 0, 100, 50)
    assert Bounds(90, -5, 20, 20).clamp(outer) == Bounds(80, 0, 20, 20)
    assert Bounds(-5, 0, 200, 10).clamp(outer) == Bounds(0, 0, 100, 10)


def test_snap_out_and_tiles_with_negative_coordinates():
    assert Bounds(-1, 65, 2, 1).snap_out(64) == Bounds(-64, 64, 128, 64)
    assert Bounds(0, 0, 64, 64).snap_out(64) == Bounds(0, 0, 64, 64)
    assert Bounds(5, 5, 0, 0).snap_out(64).is_empty
    assert list(Bounds(-1, 0, 2, 64).tiles(64)) == [(-1, 0), (0, 0)]
    assert list(Bounds(63, 63, 2, 2).tiles(64)) == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert list(Bounds(0, 0, 0, 10).tiles(64)) == []
