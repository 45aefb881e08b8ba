"""FlattenedCache: recomputes only the dirty tiles, and always equals a fresh full flatten."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sd_studio.document.commands import SetLayerProperty, StrokeRecorder
from sd_studio.document.composite import flatten
from sd_studio.document.document import Document
from sd_studio.document.flattened import FlattenedCache, _rectangles
from sd_studio.document.geometry import Bounds, Extent, Point
from sd_studio.document.layer import BlendMode, Layer
from sd_studio.document.surface import TILE, Surface

SIZE = Extent(5 * TILE + 17, 3 * TILE + 9)  # edge tiles are partial on purpose
FULL = Bounds.from_extent(SIZE)


def random_layer(rng, mode=BlendMode.SRC_OVER, opacity=1.0, offset=(0, 0)):
    px = rng.integers(0, 256, (SIZE.height, SIZE.width, 4), dtype=np.uint8)
    px[px[..., 3] == 0] = 0
    surface = Surface(4)
    surface.write(0, 0, px)
    return Layer(surface=surface, blend_mode=mode, opacity=opacity, offset=Point(*offset))


def make_stack(seed=0):
    rng = np.random.default_rng(seed)
    return [
        random_layer(rng),
        random_layer(rng, BlendMode.MULTIPLY, 0.7, offset=(-20, 13)),
        random_layer(rng, BlendMode.HUE, 0.5, offset=(31, -7)),
        random_layer(rng, BlendMode.SRC_OVER, 0.4),
    ]


def paint(layer, bounds, rgba):
    layer.surface.write(bounds.x, bounds.y, np.broadcast_to(np.array(rgba, np.uint8), (bounds.height, bounds.width, 4)).copy())


def test_first_get_computes_everything_once():
    layers = make_stack()
    cache = FlattenedCache(lambda: layers, SIZE)
    first = cache.get(FULL).copy()
    assert cache.recomputed_pixels == SIZE.pixel_count
    assert np.array_equal(first, flatten(layers, FULL))
    again = cache.get(FULL)
    assert cache.recomputed_pixels == SIZE.pixel_count  # nothing dirty, nothing redone
    assert np.array_equal(again, first)


def test_a_change_inside_one_tile_recomputes_only_that_tile():
    layers = make_stack(1)
    cache = FlattenedCache(lambda: layers, SIZE)
    cache.get(FULL)
    done = cache.recomputed_pixels
    dab = Bounds(TILE + 5, TILE + 9, 20, 30)
    paint(layers[2], dab.offset(-31, 7), (250, 10, 10, 200))  # layer 2 sits at (31, -7)
    cache.invalidate(dab)
    result = cache.get(FULL)
    assert cache.recomputed_pixels - done == TILE * TILE
    assert np.array_equal(result, flatten(layers, FULL))


def test_partial_edge_tiles_and_two_far_apart_changes():
    layers = make_stack(2)
    cache = FlattenedCache(lambda: layers, SIZE)
    cache.get(FULL)
    done = cache.recomputed_pixels
    corner = Bounds(SIZE.width - 3, SIZE.height - 2, 3, 2)  # the bottom-right, partial tile
    origin = Bounds(0, 0, 4, 4)
    paint(layers[0], corner, (0, 0, 255, 255))
    paint(layers[0], origin, (0, 255, 0, 255))
    cache.invalidate(corner)
    cache.invalidate(origin)
    result = cache.get(FULL)
    assert cache.recomputed_pixels - done == TILE * TILE + 17 * 9
    assert np.array_equal(result, flatten(layers, FULL))


def test_get_of_an_area_leaves_other_dirty_tiles_for_later():
    layers = make_stack(3)
    cache = FlattenedCache(lambda: layers, SIZE)
    cache.get(FULL)
    layers[1].opacity = 0.2
    cache.invalidate()  # everything dirty
    done = cache.recomputed_pixels
    area = Bounds(TILE, 0, TILE, TILE)
    part = cache.get(area)
    assert cache.recomputed_pixels - done == TILE * TILE
    assert np.array_equal(part, flatten(layers, area))
    assert np.array_equal(cache.get(FULL), flatten(layers, FULL))
    assert cache.recomputed_pixels - done == SIZE.pixel_count


def test_returned_view_is_read_only():
    layers = make_stack(4)
    view = FlattenedCache(lambda: layers, SIZE).get(Bounds(0, 0, 10, 10))
    assert not view.flags.writeable


def test_document_composite_follows_strokes_properties_and_undo():
    rng = np.random.default_rng(5)
    doc = Document(SIZE.width, SIZE.height)
    for layer in make_stack(6):
        doc.layers.append(layer)
    doc.active = doc.layers[1]
    before = doc.composite().copy()
    layer = doc.active
    recorder = StrokeRecorder("Paint", layer, layer.surface)
    dab = Bounds(70, 40, 25, 25)
    recorder.touch(dab)
    layer.surface.write(dab.x, dab.y, rng.integers(1, 256, (25, 25, 4), dtype=np.uint8))
    doc.notify_pixels(layer, dab)  # what a brush does as it paints live
    doc.push_done(recorder.finish())
    assert np.array_equal(doc.composite(), flatten(doc.layers, FULL))
    doc.execute(SetLayerProperty(doc.layers[2], "blend_mode", BlendMode.DIFFERENCE))
    assert np.array_equal(doc.composite(), flatten(doc.layers, FULL))
    doc.undo()
    doc.undo()
    assert np.array_equal(doc.composite(), before)


keys = st.sets(st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(keys)
def test_rectangles_cover_exactly_the_dirty_tiles(tile_keys):
    rects = _rectangles(list(tile_keys))
    covered = [k for r in rects for k in r.tiles(TILE)]
    assert len(covered) == len(set(covered))  # no tile twice
    assert set(covered) == tile_keys
    assert all(r.x % TILE == 0 and r.y % TILE == 0 for r in rects)


def test_undoing_a_diagonal_stroke_recomposites_only_the_tiles_it_touched():
    from sd_studio.document.brush import Brush, Stroke

    doc = Document.new(16 * TILE, 16 * TILE)
    layer = doc.add_layer("ink")
    doc.composite()
    stroke = Stroke(doc, Brush(size=8, color=(200, 0, 0)), layer)
    for i in range(0, 16 * TILE, 8):
        stroke.add_point(i, i)
    stroke.finish()
    doc.composite()
    before = doc._cache.recomputed_pixels
    doc.undo()
    undone = doc.composite().copy()
    recomputed = doc._cache.recomputed_pixels - before
    # The diagonal crosses about 3 tiles per row of tiles: far less than the 256-tile bounding box.
    assert recomputed <= 16 * 4 * TILE * TILE
    assert np.array_equal(undone, flatten(doc.layers, doc.bounds))
