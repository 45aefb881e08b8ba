"""Compositing: layers flattened per rectangle with the W3C Compositing and Blending blend modes.

Every OpenRaster `svg:*` op is computed per "Compositing and Blending Level 1": the blend function
B(Cb, Cs) mixes straight colours, the source becomes Cs' = (1 - ab) * Cs + ab * B(Cb, Cs), and Cs'
is composited source-over. `svg:plus` is the Porter-Duff plus ("lighter") operator: premultiplied
sum, clamped. Layer opacity multiplies the source alpha. Pixels are straight-alpha uint8 RGBA.

Runs of src-over layers (optionally ending with one plus layer) go through one libvips `composite`
call, which is multithreaded and lazy. libvips's other blend modes are not used: it applies
B() to premultiplied colours and weights the result by ab * as again, which departs from the W3C
formula wherever either alpha is below 1 (measured: up to 240 levels off for colour-burn).
Those modes, and the non-separable ones libvips lacks, run in vectorised numpy (float32).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from sd_studio.document.geometry import Bounds
from sd_studio.document.layer import BlendMode, Layer
from sd_studio.document.surface import TILE

VIPS_MIN_PIXELS = 256 * 256
"""Areas smaller than this are composited in numpy: libvips's set-up cost outweighs its speed there."""

STRIP_ROWS = 256
"""The numpy path works in horizontal strips this tall, so temporaries stay in cache and small."""

Blend = Callable[[np.ndarray, np.ndarray], np.ndarray]


# -- blend functions B(Cb, Cs) on straight colours in [0, 1], arrays (..., 3) float32 -------------
def _multiply(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return cb * cs


def _screen(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return cb + cs - cb * cs


def _hard_light(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return np.where(cs <= 0.5, _multiply(cb, 2 * cs), _screen(cb, 2 * cs - 1))


def _overlay(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return _hard_light(cs, cb)


def _color_dodge(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        dodged = np.minimum(1, cb / (1 - cs))
    return np.where(cb == 0, 0, np.where(cs >= 1, 1, dodged)).astype(np.float32)


def _color_burn(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        burnt = 1 - np.minimum(1, (1 - cb) / cs)
    return np.where(cb >= 1, 1, np.where(cs <= 0, 0, burnt)).astype(np.float32)


def _soft_light(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    d = np.where(cb <= 0.25, ((16 * cb - 12) * cb + 4) * cb, np.sqrt(cb))
    return np.where(cs <= 0.5, cb - (1 - 2 * cs) * cb * (1 - cb), cb + (2 * cs - 1) * (d - cb))


def _lum(c: np.ndarray) -> np.ndarray:
    return (0.3 * c[..., 0] + 0.59 * c[..., 1] + 0.11 * c[..., 2])[..., None]


def _clip_color(c: np.ndarray) -> np.ndarray:
    # The spec's two corrections apply one after the other; the guards keep 0/0 out where the
    # branch is not taken.
    lum = _lum(c)
    low = c.min(axis=-1, keepdims=True)
    c = np.where(low < 0, lum + (c - lum) * lum / np.where(low < 0, lum - low, 1), c)
    high = c.max(axis=-1, keepdims=True)
    return np.where(high > 1, lum + (c - lum) * (1 - lum) / np.where(high > 1, high - lum, 1), c)


def _set_lum(c: np.ndarray, lum: np.ndarray) -> np.ndarray:
    return _clip_color(c + (lum - _lum(c)))


def _sat(c: np.ndarray) -> np.ndarray:
    return c.max(axis=-1, keepdims=True) - c.min(axis=-1, keepdims=True)


def _set_sat(c: np.ndarray, s: np.ndarray) -> np.ndarray:
    # (c - min) * s / (max - min) is the spec's per-channel rule for min, mid and max at once.
    low = c.min(axis=-1, keepdims=True)
    span = c.max(axis=-1, keepdims=True) - low
    return np.where(span > 0, (c - low) * s / np.where(span > 0, span, 1), 0).astype(np.float32)


def _hue(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return _set_lum(_set_sat(cs, _sat(cb)), _lum(cb))


def _saturation(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return _set_lum(_set_sat(cb, _sat(cs)), _lum(cb))


def _color(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return _set_lum(cs, _lum(cb))


def _luminosity(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return _set_lum(cb, _lum(cs))


BLEND_FUNCTIONS: dict[BlendMode, Blend] = {
    BlendMode.SRC_OVER: lambda cb, cs: cs,
    BlendMode.MULTIPLY: _multiply,
    BlendMode.SCREEN: _screen,
    BlendMode.OVERLAY: _overlay,
    BlendMode.DARKEN: np.minimum,
    BlendMode.LIGHTEN: np.maximum,
    BlendMode.COLOR_DODGE: _color_dodge,
    BlendMode.COLOR_BURN: _color_burn,
    BlendMode.HARD_LIGHT: _hard_light,
    BlendMode.SOFT_LIGHT: _soft_light,
    BlendMode.DIFFERENCE: lambda cb, cs: np.abs(cb - cs),
    BlendMode.COLOR: _color,
    BlendMode.LUMINOSITY: _luminosity,
    BlendMode.HUE: _hue,
    BlendMode.SATURATION: _saturation,
}
"""B(Cb, Cs) for every mode but plus, on straight float colours (..., 3) in [0, 1]."""

_VIPS_MODES = {BlendMode.SRC_OVER: "over", BlendMode.PLUS: "add"}


# -- one layer onto the backdrop, in numpy --------------------------------------------------------
def blend_onto(backdrop: np.ndarray, source: np.ndarray, opacity: float, mode: BlendMode) -> None:
    """Composite straight-alpha float32 source (h, w, 4, in [0, 1]) onto backdrop in place."""
    cb, ab = backdrop[..., :3], backdrop[..., 3:]
    cs, as_ = source[..., :3], source[..., 3:] * np.float32(opacity)
    if mode is BlendMode.PLUS:
        co = np.minimum(cs * as_ + cb * ab, 1)
        ao = np.minimum(as_ + ab, 1)
    else:
        mixed = BLEND_FUNCTIONS[mode](cb, cs)
        co = as_ * ((1 - ab) * cs + ab * mixed) + (ab * (1 - as_)) * cb
        ao = as_ + ab * (1 - as_)
    backdrop[..., :3] = np.divide(co, ao, out=np.zeros_like(co), where=ao > 0)
    backdrop[..., 3:] = ao


def _layer_rect(layer: Layer, bounds: Bounds) -> Bounds:
    """Where in bounds the layer has stored tiles (empty when it has none there)."""
    rect = layer.document_bounds().intersect(bounds)
    if rect.is_empty:
        return rect
    local = layer.to_layer(rect)
    surface = layer.surface
    if any(surface.tile(key) is not None for key in local.tiles(TILE)):
        return rect
    return Bounds(0, 0, 0, 0)


def _contributing(layers: Sequence[Layer], bounds: Bounds) -> list[tuple[Layer, Bounds]]:
    """The visible layers with pixels in bounds, each with the rectangle it covers there."""
    out = []
    for layer in layers:
        if not layer.visible or layer.opacity <= 0:
            continue
        rect = _layer_rect(layer, bounds)
        if not rect.is_empty:
            out.append((layer, rect))
    return out


def _runs(parts: list[tuple[Layer, Bounds]], use_vips: bool) -> list[tuple[bool, list[tuple[Layer, Bounds]]]]:
    """Split the stack into (by_vips, layers) runs: src-over layers (ending with at most one plus
    layer, since libvips leaves a plus sum unclamped for the layers after it) or single layers."""
    runs: list[tuple[bool, list[tuple[Layer, Bounds]]]] = []
    for part in parts:
        mode = part[0].blend_mode
        if use_vips and mode in _VIPS_MODES:
            if runs and runs[-1][0] and runs[-1][1][-1][0].blend_mode is BlendMode.SRC_OVER:
                runs[-1][1].append(part)
            else:
                runs.append((True, [part]))
        else:
            runs.append((False, [part]))
    return runs


# -- flatten --------------------------------------------------------------------------------------
def flatten(layers: Sequence[Layer], bounds: Bounds) -> np.ndarray:
    """The visible layers (bottom first) composited over a transparent backdrop inside bounds."""
    return _flatten(layers, bounds, use_vips=bounds.width * bounds.height >= VIPS_MIN_PIXELS)


def _flatten(layers: Sequence[Layer], bounds: Bounds, use_vips: bool) -> np.ndarray:
    """flatten, with the choice of libvips for src-over/plus runs made by the caller (tests use it)."""
    h, w = max(0, bounds.height), max(0, bounds.width)
    parts = _contributing(layers, bounds) if h and w else []
    if not parts:
        return np.zeros((h, w, 4), np.uint8)
    backdrop: object = None  # None (transparent), a float32 array in [0, 255], or a vips image
    for by_vips, run in _runs(parts, use_vips):
        if by_vips:
            backdrop = _vips_run(backdrop, run, bounds)
            if run[-1][0].blend_mode is BlendMode.PLUS:
                # libvips leaves the premultiplied sum unclamped; later layers must see it clamped.
                backdrop = (backdrop > 255).ifthenelse(255, backdrop)
        else:
            backdrop = _as_array(backdrop, bounds)
            _numpy_layer(backdrop, *run[0], bounds)
    return _to_uint8(backdrop)


def _numpy_layer(backdrop: np.ndarray, layer: Layer, rect: Bounds, bounds: Bounds) -> None:
    """Blend one layer onto the float backdrop (scaled 0-255) over rect, strip by strip."""
    inv = np.float32(1 / 255)
    x0 = rect.x - bounds.x
    for top in range(rect.y, rect.bottom, STRIP_ROWS):
        strip = Bounds.from_corners(rect.x, top, rect.right, min(rect.bottom, top + STRIP_ROWS))
        y0 = top - bounds.y
        target = backdrop[y0:y0 + strip.height, x0:x0 + strip.width]
        work = target * inv
        blend_onto(work, layer.read(strip).astype(np.float32) * inv, layer.opacity, layer.blend_mode)
        np.multiply(work, 255, out=target)


# -- libvips --------------------------------------------------------------------------------------
def _vips_image(pixels: np.ndarray):
    """A vips image sharing the memory of a contiguous (h, w, 4) array, tagged sRGB."""
    import pyvips

    h, w = pixels.shape[:2]
    fmt = "uchar" if pixels.dtype == np.uint8 else "float"
    return pyvips.Image.new_from_memory(pixels.data, w, h, 4, fmt).copy(interpretation="srgb")


def _vips_layer(layer: Layer, rect: Bounds):
    image = _vips_image(layer.read(rect))
    if layer.opacity < 1:
        # Lazy: the scaled alpha is computed region by region inside composite, never stored.
        image = image * [1, 1, 1, float(layer.opacity)]
    return image


def _vips_run(backdrop: object, run: list[tuple[Layer, Bounds]], bounds: Bounds):
    """Composite a run of src-over (and a last plus) layers onto the backdrop with one vips call."""
    import pyvips

    h, w = bounds.height, bounds.width
    if backdrop is None:
        first, rect = run[0]
        if rect == bounds:
            # Over a transparent backdrop a layer is itself: it becomes the base, one image less.
            base, run = _vips_layer(first, rect), run[1:]
        else:
            base = pyvips.Image.black(w, h, bands=4).copy(interpretation="srgb")
    elif isinstance(backdrop, np.ndarray):
        base = _vips_image(backdrop)
    else:
        base = backdrop
    # A float base makes composite write float: libvips truncates when it writes uchar, and
    # flatten rounds to nearest.
    base = base.cast("float")
    if not run:
        return base
    images = [_vips_layer(layer, rect) for layer, rect in run]
    return base.composite(
        images, [_VIPS_MODES[layer.blend_mode] for layer, _ in run],
        x=[r.x - bounds.x for _, r in run], y=[r.y - bounds.y for _, r in run],
        compositing_space="srgb",
    )


def _as_array(backdrop: object, bounds: Bounds) -> np.ndarray:
    """The backdrop as a writable float32 (h, w, 4) array scaled 0-255."""
    if backdrop is None:
        return np.zeros((bounds.height, bounds.width, 4), np.float32)
    if isinstance(backdrop, np.ndarray):
        return backdrop
    return np.array(backdrop.numpy(), np.float32, copy=True).reshape(bounds.height, bounds.width, 4)


def _to_uint8(backdrop: object) -> np.ndarray:
    """Round to nearest uint8; pixels whose alpha rounds to 0 become (0, 0, 0, 0)."""
    if isinstance(backdrop, np.ndarray):
        out = np.rint(np.clip(backdrop, 0, 255)).astype(np.uint8)
    else:
        # numpy() wraps vips's read-only buffer; callers get an array they may write to.
        out = np.array((backdrop + 0.5).cast("uchar").numpy(), copy=True)
    transparent = out[..., 3] == 0
    if transparent.any():
        out[transparent] = 0
    return out
