"""flatten against an independent per-pixel reference of the W3C Compositing and Blending formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sd_studio.document import composite
from sd_studio.document.composite import _flatten, flatten
from sd_studio.document.geometry import Bounds, Point
from sd_studio.document.layer import BlendMode, Layer
from sd_studio.document.surface import Surface

# -- the reference: plain Python floats, one pixel at a time, straight from the spec text ---------
# https://www.w3.org/TR/compositing-1/ sections 5.3 (general formula), 9.1.4 (source-over),
# 10.2 (separable modes), 10.3 (non-separable modes), and Porter-Duff "lighter" for svg:plus.


def ref_multiply(b, s):
    return b * s


def ref_screen(b, s):
    return b + s - (b * s)


def ref_hard_light(b, s):
    if s <= 0.5:
        return ref_multiply(b, 2 * s)
    return ref_screen(b, 2 * s - 1)


def ref_overlay(b, s):
    return ref_hard_light(s, b)


def ref_color_dodge(b, s):
    if b == 0:
        return 0.0
    if s == 1:
        return 1.0
    return min(1.0, b / (1 - s))


def ref_color_burn(b, s):
    if b == 1:
        return 1.0
    if s == 0:
        return 0.0
    return 1 - min(1.0, (1 - b) / s)


def ref_soft_light(b, s):
    if s <= 0.5:
        return b - (1 - 2 * s) * b * (1 - b)
    d = ((16 * b - 12) * b + 4) * b if b <= 0.25 else math.sqrt(b)
    return b + (2 * s - 1) * (d - b)


SEPARABLE = {
    BlendMode.SRC_OVER: lambda b, s: s,
    BlendMode.MULTIPLY: ref_multiply,
    BlendMode.SCREEN: ref_screen,
    BlendMode.OVERLAY: ref_overlay,
    BlendMode.DARKEN: min,
    BlendMode.LIGHTEN: max,
    BlendMode.COLOR_DODGE: ref_color_dodge,
    BlendMode.COLOR_BURN: ref_color_burn,
    BlendMode.HARD_LIGHT: ref_hard_light,
    BlendMode.SOFT_LIGHT: ref_soft_light,
    BlendMode.DIFFERENCE: lambda b, s: abs(b - s),
}


def lum(c):
    return 0.3 * c[0] + 0.59 * c[1] + 0.11 * c[2]


def clip_color(c):
    l = lum(c)
    n = min(c)
    x = max(c)
    if n < 0:
        c = [l + (v - l) * l / (l - n) for v in c]
    if x > 1:
        c = [l + (v - l) * (1 - l) / (x - l) for v in c]
    return c


def set_lum(c, l):
    d = l - lum(c)
    return clip_color([v + d for v in c])


def sat(c):
    return max(c) - min(c)


def set_sat(c, s):
    cmin, cmid, cmax = sorted(range(3), key=lambda i: c[i])
    out = [0.0, 0.0, 0.0]
    if c[cmax] > c[cmin]:
        out[cmid] = ((c[cmid] - c[cmin]) * s) / (c[cmax] - c[cmin])
        out[cmax] = s
    return out


NON_SEPARABLE = {
    BlendMode.HUE: lambda cb, cs: set_lum(set_sat(cs, sat(cb)), lum(cb)),
    BlendMode.SATURATION: lambda cb, cs: set_lum(set_sat(cb, sat(cs)), lum(cb)),
    BlendMode.COLOR: lambda cb, cs: set_lum(cs, lum(cb)),
    BlendMode.LUMINOSITY: lambda cb, cs: set_lum(cb, lum(cs)),
}


def ref_pixel(mode, backdrop, source, opacity):
    """One straight-alpha pixel (floats in [0, 1]) of source composited onto backdrop."""
    cb, ab = backdrop[:3], backdrop[3]
    cs, as_ = source[:3], source[3] * opacity
    if mode is BlendMode.PLUS:
        co = [min(1.0, s * as_ + b * ab) for s, b in zip(cs, cb)]
        ao = min(1.0, as_ + ab)
    else:
        if mode in NON_SEPARABLE:
            mixed = NON_SEPARABLE[mode](cb, cs)
        else:
            mixed = [SEPARABLE[mode](b, s) for b, s in zip(cb, cs)]
        cs = [(1 - ab) * s + ab * m for s, m in zip(cs, mixed)]
        co = [as_ * s + ab * b * (1 - as_) for s, b in zip(cs, cb)]
        ao = as_ + ab * (1 - as_)
    if ao == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [c / ao for c in co] + [ao]


def ref_flatten(layers, bounds):
    """The reference flatten: every pixel through every visible layer, rounded once at the end."""
    out = np.zeros((bounds.height, bounds.width, 4), np.uint8)
    planes = [(layer, layer.read(bounds)) for layer in layers if layer.visible]
    for y in range(bounds.height):
        for x in range(bounds.width):
            px = [0.0, 0.0, 0.0, 0.0]
            for layer, pixels in planes:
                px = ref_pixel(layer.blend_mode, px, [v / 255 for v in pixels[y, x].tolist()], layer.opacity)
            rounded = [math.floor(min(1.0, max(0.0, v)) * 255 + 0.5) for v in px]
            out[y, x] = rounded if rounded[3] else [0, 0, 0, 0]
    return out


# -- fixtures -----------------------------------------------------------------------------------
EDGE_VALUES = np.array([0, 0, 1, 63, 64, 127, 128, 191, 254, 255, 255], np.uint8)


def random_pixels(rng, h, w):
    """Random straight RGBA with many edge values (0, 255, near 0.25 and 0.5) where modes branch."""
    px = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    edges = rng.random((h, w, 4)) < 0.35
    px[edges] = rng.choice(EDGE_VALUES, int(edges.sum()))
    px[px[..., 3] == 0] = 0
    return px


def make_layer(pixels, offset=(0, 0), mode=BlendMode.SRC_OVER, opacity=1.0, visible=True):
    surface = Surface(4)
    surface.write(0, 0, pixels)
    return Layer(surface=surface, offset=Point(*offset), blend_mode=mode, opacity=opacity, visible=visible)


def assert_close(got, want):
    # Tolerance 1 level: the implementation works in float32 (plain and premultiplied),
    # the reference in float64; both round to nearest once at the end, so a value lying within
    # float32's error of a .5 boundary may land one level apart, never more.
    assert got.shape == want.shape and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - want.astype(int))
    worst = np.unravel_index(np.argmax(diff), diff.shape)
    assert diff.max() <= 1, f"off by {diff.max()} at {worst[:2]}: got {got[worst[:2]]}, want {want[worst[:2]]}"


ALL_MODES = list(BlendMode)


# -- tests --------------------------------------------------------------------------------------
@pytest.mark.parametrize("premultiplied", [False, True], ids=["straight", "premultiplied"])
@pytest.mark.parametrize("mode", ALL_MODES, ids=[m.value for m in ALL_MODES])
def test_each_mode_matches_the_reference(mode, premultiplied):
    rng = np.random.default_rng(list(BlendMode).index(mode))
    bounds = Bounds(-3, -2, 23, 19)
    below = make_layer(random_pixels(rng, 16, 20), offset=(-3, -2), opacity=float(rng.uniform(0.5, 1)))
    above = make_layer(random_pixels(rng, 18, 15), offset=(2, -1), mode=mode, opacity=float(rng.uniform(0.3, 1)))
    layers = [below, above]
    assert_close(_flatten(layers, bounds, premultiplied=premultiplied), ref_flatten(layers, bounds))


@pytest.mark.parametrize("mode", ALL_MODES, ids=[m.value for m in ALL_MODES])
def test_each_mode_at_full_opacity_over_opaque_and_transparent(mode):
    rng = np.random.default_rng(100 + list(BlendMode).index(mode))
    bounds = Bounds(0, 0, 12, 12)
    below = random_pixels(rng, 12, 12)
    below[:6, :, 3] = 255  # half opaque backdrop, half random alpha including 0
    layers = [make_layer(below), make_layer(random_pixels(rng, 12, 12), mode=mode)]
    assert_close(_flatten(layers, bounds, premultiplied=False), ref_flatten(layers, bounds))


@pytest.mark.parametrize("premultiplied", [False, True], ids=["straight", "premultiplied"])
def test_a_mixed_stack_with_hidden_empty_and_offset_layers(premultiplied):
    rng = np.random.default_rng(7)
    modes = [BlendMode.SRC_OVER, BlendMode.MULTIPLY, BlendMode.SRC_OVER, BlendMode.HUE, BlendMode.PLUS,
             BlendMode.SRC_OVER, BlendMode.SOFT_LIGHT, BlendMode.SRC_OVER, BlendMode.LUMINOSITY, BlendMode.SCREEN]
    layers = []
    for i, mode in enumerate(modes):
        h, w = rng.integers(5, 22, 2)
        offset = tuple(int(v) for v in rng.integers(-8, 10, 2))
        layers.append(make_layer(random_pixels(rng, h, w), offset, mode, float(rng.uniform(0.2, 1))))
    layers[3].visible = False
    layers.insert(5, Layer(surface=Surface(4)))  # empty
    far = make_layer(random_pixels(rng, 4, 4), offset=(500, 500), mode=BlendMode.DIFFERENCE)
    layers.insert(2, far)  # has tiles, but none inside bounds
    bounds = Bounds(-6, -5, 30, 27)
    assert_close(_flatten(layers, bounds, premultiplied=premultiplied), ref_flatten(layers, bounds))


@pytest.mark.parametrize("top", [BlendMode.SRC_OVER, BlendMode.MULTIPLY])
def test_the_layer_above_plus_sees_the_clamped_sum(top):
    # The premultiplied planes must hold the clamped plus sum for the layer above.
    white = np.full((2, 2, 4), 255, np.uint8)
    grey = np.full((2, 2, 4), 101, np.uint8)
    grey[..., 3] = 255
    layers = [make_layer(white), make_layer(white, mode=BlendMode.PLUS), make_layer(grey, mode=top, opacity=0.5)]
    bounds = Bounds(0, 0, 2, 2)
    want = ref_flatten(layers, bounds)
    # 0.5 * 255 + 0.5 * 101, as B(1, Cs) = Cs in both modes; an unclamped sum (2) would give 255
    assert want[0, 0].tolist() == [178, 178, 178, 255]
    for premultiplied in (False, True):
        assert_close(_flatten(layers, bounds, premultiplied=premultiplied), want)


def test_a_deep_stack_of_faint_src_over_layers_matches_the_reference():
    # Twenty layers, many nearly transparent: rounding to 8 bits after each layer, or rounding
    # opacity into alpha, drifts past 1 level (an alpha_composite chain is 2 off here, and up to
    # 60 on other such stacks); flatten rounds once, at the end.
    rng = np.random.default_rng(21)
    layers = []
    for i in range(20):
        pixels = random_pixels(rng, 12, 12)
        if i % 2:
            pixels[..., 3] = rng.integers(0, 6, (12, 12))
            pixels[pixels[..., 3] == 0] = 0
        layers.append(make_layer(pixels, opacity=float(rng.uniform(0.05, 1))))
    bounds = Bounds(0, 0, 12, 12)
    assert_close(flatten(layers, bounds), ref_flatten(layers, bounds))


def test_known_values_from_the_spec():
    def one(rgba):
        return np.array([[rgba]], np.uint8)

    bounds = Bounds(0, 0, 1, 1)
    grey = one([128, 128, 128, 255])
    white = one([255, 255, 255, 255])
    black = one([0, 0, 0, 255])
    red = one([255, 0, 0, 255])
    green = one([0, 255, 0, 255])
    cases = [
        (white, grey, BlendMode.MULTIPLY, [128, 128, 128, 255]),
        (black, white, BlendMode.COLOR_DODGE, [0, 0, 0, 255]),  # Cb = 0 wins over Cs = 1
        (white, black, BlendMode.COLOR_BURN, [255, 255, 255, 255]),  # Cb = 1 wins over Cs = 0
        (grey, white, BlendMode.DIFFERENCE, [127, 127, 127, 255]),
        (grey, green, BlendMode.LUMINOSITY, [150, 150, 150, 255]),  # lum(green) = 0.59
        (green, grey, BlendMode.SATURATION, [150, 150, 150, 255]),  # grey has no saturation
        (green, red, BlendMode.HUE, [255, 106, 106, 255]),  # red hue at lum 0.59: clipped to 0.414
        (red, red, BlendMode.PLUS, [255, 0, 0, 255]),
    ]
    for below, above, mode, want in cases:
        got = flatten([make_layer(below), make_layer(above, mode=mode)], bounds)
        assert got[0, 0].tolist() == want, mode
        assert ref_flatten([make_layer(below), make_layer(above, mode=mode)], bounds)[0, 0].tolist() == want


def test_hidden_and_zero_opacity_layers_change_nothing():
    rng = np.random.default_rng(3)
    base = make_layer(random_pixels(rng, 10, 10))
    hidden = make_layer(random_pixels(rng, 10, 10), mode=BlendMode.DIFFERENCE, visible=False)
    clear = make_layer(random_pixels(rng, 10, 10), mode=BlendMode.COLOR, opacity=0.0)
    bounds = Bounds(0, 0, 10, 10)
    expected = base.surface.read(bounds)
    assert np.array_equal(flatten([base, hidden, clear], bounds), expected)


def test_transparent_result_is_stored_as_zeros():
    px = np.array([[[200, 100, 50, 1]]], np.uint8)
    out = flatten([make_layer(px, opacity=0.2)], Bounds(0, 0, 1, 1))
    assert out.tolist() == [[[0, 0, 0, 0]]]


def test_empty_stack_and_empty_bounds():
    assert flatten([], Bounds(0, 0, 3, 2)).shape == (2, 3, 4)
    assert not flatten([], Bounds(0, 0, 3, 2)).any()
    layer = make_layer(np.full((4, 4, 4), 9, np.uint8))
    assert flatten([layer], Bounds(0, 0, 0, 5)).shape == (5, 0, 4)


def test_premultiplied_and_straight_paths_agree_on_a_larger_stack():
    rng = np.random.default_rng(11)
    side = 300
    layers = [
        make_layer(random_pixels(rng, side, side), opacity=0.9),
        make_layer(random_pixels(rng, 120, 200), offset=(-40, 77), opacity=0.6),
        make_layer(random_pixels(rng, side, 90), offset=(250, 0), mode=BlendMode.PLUS, opacity=0.7),
        make_layer(random_pixels(rng, 50, 50), offset=(10, 10), mode=BlendMode.OVERLAY),
        make_layer(random_pixels(rng, side, side), opacity=0.3),
    ]
    bounds = Bounds(0, 0, side, side)
    assert_close(_flatten(layers, bounds, premultiplied=True), _flatten(layers, bounds, premultiplied=False))


def test_any_piece_of_the_image_equals_the_same_piece_of_the_whole(monkeypatch):
    # The dirty-tile cache stitches pieces computed at different times: they must match exactly.
    monkeypatch.setattr(composite, "BAND_PIXELS", 5000)  # several bands even for this small image
    rng = np.random.default_rng(12)
    modes = [BlendMode.SRC_OVER, BlendMode.SRC_OVER, BlendMode.MULTIPLY, BlendMode.PLUS, BlendMode.SRC_OVER,
             BlendMode.COLOR, BlendMode.SRC_OVER, BlendMode.COLOR_DODGE]
    layers = []
    for mode in modes:
        h, w = (int(v) for v in rng.integers(30, 160, 2))
        offset = tuple(int(v) for v in rng.integers(-40, 120, 2))
        layers.append(make_layer(random_pixels(rng, h, w), offset, mode, float(rng.uniform(0.3, 1))))
    whole_bounds = Bounds(0, 0, 192, 160)
    whole = flatten(layers, whole_bounds)
    for piece in [Bounds(0, 0, 64, 64), Bounds(128, 64, 64, 64), Bounds(64, 128, 128, 32), Bounds(5, 7, 1, 1),
                  Bounds(100, 3, 50, 90)]:
        assert np.array_equal(flatten(layers, piece), whole[piece.slices]), piece


def test_layers_without_tiles_in_bounds_are_not_read(monkeypatch):
    inside = make_layer(np.full((8, 8, 4), 200, np.uint8))
    outside = make_layer(np.full((8, 8, 4), 50, np.uint8), offset=(1000, 0))
    reads = []
    original = Surface.read
    monkeypatch.setattr(Surface, "read", lambda self, b, out=None: reads.append(self) or original(self, b, out))
    flatten([inside, outside], Bounds(0, 0, 8, 8))
    assert outside.surface not in reads and inside.surface in reads


def test_flatten_fills_a_given_array_view(monkeypatch):
    monkeypatch.setattr(composite, "BAND_PIXELS", 60)  # bands of 2 rows; the lower ones are empty
    rng = np.random.default_rng(13)
    layers = [make_layer(random_pixels(rng, 7, 30)), make_layer(random_pixels(rng, 9, 9), (4, 3), BlendMode.SCREEN)]
    canvas = np.full((40, 50, 4), 77, np.uint8)
    view = canvas[5:25, 10:40]
    returned = flatten(layers, Bounds(0, 0, 30, 20), out=view)
    assert returned is view
    assert np.array_equal(canvas[5:25, 10:40], flatten(layers, Bounds(0, 0, 30, 20)))
    assert (canvas[:5] == 77).all() and (canvas[:, :10] == 77).all()
    empty_view = canvas[30:32, 0:3]
    flatten(layers, Bounds(100, 100, 3, 2), out=empty_view)
    assert not canvas[30:32, 0:3].any()
    with pytest.raises(ValueError):
        flatten(layers, Bounds(0, 0, 3, 3), out=np.zeros((3, 3, 3), np.uint8))


def test_layers_under_an_opaque_full_opacity_layer_are_not_read(monkeypatch):
    rng = np.random.default_rng(14)
    below = [make_layer(random_pixels(rng, 70, 70), mode=mode, opacity=0.8)
             for mode in (BlendMode.SRC_OVER, BlendMode.SCREEN)]
    cover = random_pixels(rng, 70, 70)
    cover[..., 3] = 255
    above = make_layer(random_pixels(rng, 70, 70), mode=BlendMode.MULTIPLY, opacity=0.6)
    layers = [*below, make_layer(cover), above]
    bounds = Bounds(0, 0, 70, 70)
    reads = []
    original = Surface.read
    monkeypatch.setattr(Surface, "read", lambda self, b, out=None: reads.append(self) or original(self, b, out))
    below_ids = {id(layer.surface) for layer in below}
    got = flatten(layers, bounds)
    assert not below_ids & {id(surface) for surface in reads}
    assert_close(got, ref_flatten(layers, bounds))
    # Translucent somewhere, or below full opacity: everything below counts again.
    for change in ("pixel", "opacity"):
        reads.clear()
        if change == "pixel":
            cover[40, 3, 3] = 254
            layers[2] = make_layer(cover)
        else:
            layers[2].opacity = 0.99
        got = flatten(layers, bounds)
        assert below_ids <= {id(surface) for surface in reads}, change
        assert_close(got, ref_flatten(layers, bounds))


def test_pieces_match_the_whole_where_an_opaque_layer_covers_part_of_the_image(monkeypatch):
    # Bands inside the opaque layer skip what lies below it, bands across its edge do not: a pixel
    # must come out the same either way, since the cache stitches pieces flattened separately.
    monkeypatch.setattr(composite, "BAND_PIXELS", 64 * 64)
    rng = np.random.default_rng(15)
    cover = random_pixels(rng, 128, 128)
    cover[..., 3] = 255
    cover[100, 70, 3] = 128  # one translucent pixel, at (134, 100)
    layers = [make_layer(random_pixels(rng, 192, 192), opacity=0.7),
              make_layer(random_pixels(rng, 192, 192), mode=BlendMode.OVERLAY, opacity=0.9),
              make_layer(cover, offset=(64, 0)),
              make_layer(random_pixels(rng, 192, 192), opacity=0.4)]
    whole_bounds = Bounds(0, 0, 192, 192)
    whole = flatten(layers, whole_bounds)
    for piece in [Bounds(64, 0, 64, 64), Bounds(128, 64, 64, 64), Bounds(60, 10, 80, 70), Bounds(134, 100, 1, 1),
                  Bounds(130, 96, 8, 8)]:
        assert np.array_equal(flatten(layers, piece), whole[piece.slices]), piece
    small = Bounds(56, 56, 24, 24)  # across the cover's corner: the reference is slow
    assert_close(flatten(layers, small), ref_flatten(layers, small))
