"""Tiles: cores cover the image exactly once, regions hold them with context, seams cross-fade, cancel between tiles."""

from __future__ import annotations

import numpy as np
import pytest

from sd_studio.document.geometry import Extent
from sd_studio.engine.restore.tiles import plan_tiles, run_tiled
from sd_studio.errors import Cancelled, GenerationError


@pytest.mark.parametrize("size", [(1, 1), (7, 300), (512, 512), (513, 200), (1000, 777), (2049, 65)])
@pytest.mark.parametrize(("tile", "padding"), [(64, 8), (128, 32), (512, 32)])
def test_cores_cover_the_image_exactly_once_and_regions_hold_their_core_with_context(size, tile, padding):
    width, height = size
    rows = plan_tiles(Extent(width, height), tile, padding)
    cover = np.zeros((height, width), np.int32)
    for row in rows:
        for t in row:
            cover[t.core.slices] += 1
            assert t.region.contains(t.core)
            assert t.region.width <= tile and t.region.height <= tile
            assert t.region.width == min(tile, width) and t.region.height == min(tile, height)
            for inner, outer, limit in ((t.core.x, t.region.x, 0), (t.core.y, t.region.y, 0)):
                assert inner == limit or inner - outer >= padding
            assert t.core.right == width or t.region.right - t.core.right >= padding
            assert t.core.bottom == height or t.region.bottom - t.core.bottom >= padding
    assert cover.min() == 1 and cover.max() == 1


def test_a_tile_too_small_for_its_padding_is_refused():
    with pytest.raises(GenerationError, match="cannot hold"):
        plan_tiles(Extent(100, 100), 64, 30)


def test_an_identity_process_gives_the_image_back_exactly_and_sees_regions_no_larger_than_a_tile():
    image = np.random.default_rng(1).integers(0, 256, (300, 517, 3), dtype=np.uint8)
    seen = []

    def process(region, tile):
        seen.append(region.shape)
        return region

    out = run_tiled(image, process, tile=128, padding=32)
    assert np.array_equal(out, image)
    assert max(s[0] for s in seen) <= 128 and max(s[1] for s in seen) <= 128


def test_a_scaling_process_fills_the_scaled_output():
    image = np.random.default_rng(2).integers(0, 256, (90, 130, 3), dtype=np.uint8)
    out = run_tiled(image, lambda r, t: r.repeat(3, 0).repeat(3, 1), tile=64, padding=8, scale=3)
    assert np.array_equal(out, image.repeat(3, 0).repeat(3, 1))


def test_seams_are_cross_faded_between_neighbours():
    image = np.zeros((64, 200, 3), np.uint8)
    # Each tile paints itself in one grey of its own: at a boundary the result must ramp between them.
    out = run_tiled(image, lambda r, t: np.full_like(r, 40 + 60 * t.column), tile=96, padding=16)
    row = out[32, :, 0].astype(int)
    assert {40, 100, 160} < set(np.unique(row))
    assert np.all(np.diff(row) >= 0)  # a monotone ramp, no hard step
    assert np.max(np.diff(row)) < 60


def test_cancel_is_checked_before_every_tile_and_progress_counts_tiles():
    image = np.zeros((200, 200, 3), np.uint8)
    reports, calls = [], []

    def process(region, tile):
        calls.append(tile)
        return region

    with pytest.raises(Cancelled):
        run_tiled(image, process, tile=64, padding=8, progress=reports.append, cancel=lambda: len(calls) >= 2)
    assert len(calls) == 2
    assert [r.step for r in reports] == [1, 2]
    total = sum(len(r) for r in plan_tiles(Extent(200, 200), 64, 8))
    assert reports[0].total == total


def test_a_process_returning_the_wrong_size_is_an_error():
    with pytest.raises(GenerationError, match="came back"):
        run_tiled(np.zeros((32, 32, 3), np.uint8), lambda r, t: r[:10], tile=32, padding=4)
