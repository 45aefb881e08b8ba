"""Surface: sparse tiles, read-only stored tiles, exact snapshots."""

import numpy as np
import pytest

from sd_studio.document.geometry import Bounds
from sd_studio.document.surface import TILE, Surface


def rgba(h, w, value):
    return np.full((h, w, 4), value, np.uint8)


def test_empty_surface_reads_zeros_and_costs_nothing():
    s = Surface()
    assert s.is_empty and s.nbytes() == 0 and s.bounds().is_empty
    assert not s.read(Bounds(-10, -10, 30, 20)).any()
    assert s.read(Bounds(0, 0, 3, 2)).shape == (2, 3, 4)
    assert Surface(1).read(Bounds(0, 0, 3, 2)).shape == (2, 3)


def test_write_then_read_across_tile_borders_and_negative_coordinates():
    s = Surface()
    pixels = np.random.default_rng(1).integers(1, 256, (100, 90, 4), dtype=np.uint8)
    s.write(-30, 40, pixels)
    assert np.array_equal(s.read(Bounds(-30, 40, 90, 100)), pixels)
    assert set(s.tile_keys()) == set(Bounds(-30, 40, 90, 100).tiles(TILE))
    around = s.read(Bounds(-31, 39, 92, 102))
    assert not around[0].any() and not around[:, 0].any()
    assert s.content_bounds() == Bounds(-30, 40, 90, 100)
    assert s.bounds() == Bounds(-64, 0, 128, 192)


def test_stored_tiles_are_read_only_and_writes_replace_them():
    s = Surface()
    s.write(0, 0, rgba(TILE, TILE, 9))
    tile = s.tile((0, 0))
    with pytest.raises(ValueError):
        tile[0, 0, 0] = 1
    s.write(1, 1, rgba(2, 2, 200))
    assert s.tile((0, 0)) is not tile and tile[1, 1, 0] == 9


def test_snapshot_is_exact_after_later_edits():
    s = Surface()
    s.write(0, 0, rgba(70, 70, 50))
    snap = s.snapshot()
    before = s.read(Bounds(0, 0, 128, 128))
    s.write(10, 10, rgba(100, 100, 255))
    s.restore(snap)
    assert np.array_equal(s.read(Bounds(0, 0, 128, 128)), before)


def test_copy_is_independent():
    s = Surface()
    s.write(0, 0, rgba(5, 5, 7))
    c = s.copy()
    c.write(0, 0, rgba(5, 5, 8))
    assert s.read(Bounds(0, 0, 1, 1))[0, 0, 0] == 7 and s.equals(s.copy()) and not s.equals(c)


def test_transparent_pixels_are_stored_as_zero_and_empty_tiles_dropped():
    s = Surface()
    px = rgba(4, 4, 0)
    px[..., :3] = 200  # colour under zero alpha must not survive
    s.write(0, 0, px)
    assert s.is_empty
    s.write(0, 0, rgba(4, 4, 255))
    s.write(0, 0, px)
    assert s.is_empty


def test_mask_surface_drops_zero_tiles():
    s = Surface(1)
    s.write(60, 0, np.full((3, 10), 255, np.uint8))
    assert sorted(s.tile_keys()) == [(0, 0), (1, 0)]
    s.write(60, 0, np.zeros((3, 4), np.uint8))
    assert s.tile_keys() == [(1, 0)]


def test_modify_edits_tile_copies_in_place():
    s = Surface(1)
    s.write(0, 0, np.full((TILE, TILE), 10, np.uint8))
    old = s.tile((0, 0))

    def add(tile, trows, tcols, rows, cols):
        tile[trows, tcols] += 5

    s.modify(Bounds(60, 60, 8, 8), add)
    assert old[63, 63] == 10
    assert s.read(Bounds(60, 60, 8, 8))[0, 0] == 15 and s.read(Bounds(67, 67, 1, 1))[0, 0] == 5


def test_get_and_set_tiles_round_trip():
    s = Surface()
    s.write(0, 0, rgba(10, 10, 3))
    keys = [(0, 0), (5, 5)]
    taken = s.get_tiles(keys)
    assert taken[(5, 5)] is None
    s.write(0, 0, rgba(10, 10, 4))
    s.write(5 * TILE, 5 * TILE, rgba(1, 1, 4))
    s.set_tiles(taken)
    assert s.tile_keys() == [(0, 0)] and s.read(Bounds(0, 0, 1, 1))[0, 0, 0] == 3


def test_write_rejects_wrong_arrays():
    with pytest.raises(TypeError):
        Surface().write(0, 0, np.zeros((2, 2, 4), np.float32))
    with pytest.raises(ValueError):
        Surface().write(0, 0, np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError):
        Surface(1).write(0, 0, np.zeros((2, 2, 4), np.uint8))
    with pytest.raises(ValueError):
        Surface(3)


def test_bounds_follow_every_way_tiles_come_and_go():
    s = Surface(4)
    assert s.bounds().is_empty
    s.write(70, 10, np.full((4, 4, 4), 255, np.uint8))
    assert s.bounds() == Bounds(64, 0, 64, 64)
    s.write(200, 130, np.full((2, 2, 4), 255, np.uint8))
    assert s.bounds() == Bounds.from_corners(64, 0, 256, 192)
    taken = s.get_tiles([(3, 2)])
    s.set_tiles({(3, 2): None})
    assert s.bounds() == Bounds(64, 0, 64, 64)
    s.set_tiles(taken)
    assert s.bounds() == Bounds.from_corners(64, 0, 256, 192)
    snap = s.snapshot()
    copy = s.copy()
    s.write(200, 130, np.zeros((2, 2, 4), np.uint8))  # erased to nothing: the tile goes
    assert s.bounds() == Bounds(64, 0, 64, 64) and copy.bounds() == Bounds.from_corners(64, 0, 256, 192)
    s.restore(snap)
    assert s.bounds() == Bounds.from_corners(64, 0, 256, 192)
    s.clear()
    assert s.bounds().is_empty
