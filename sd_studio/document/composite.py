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


BAND_PIXELS = 1 << 21
"""flatten works in horizontal bands of about this many pixels, to bound memory and reuse it."""

try:
    import pyvips  # noqa: F401  (imported here only to learn whether libvips is there)

    _HAVE_VIPS = True
except (ImportError, OSError):  # pragma: no cover - pyvips-binary ships libvips on our platforms
    _HAVE_VIPS = False

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
    # Where the source is transparent the backdrop stays bit for bit, so skipping a layer with
    # no pixels somewhere gives exactly what blending it there would.
    keep = as_ > 0
    np.divide(co, ao, out=cb, where=keep & (ao > 0))
    np.copyto(cb, 0, where=keep & (ao <= 0))
    np.copyto(ab, ao, where=keep)


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


def _runs(layers: Sequence[Layer], use_vips: bool) -> list[tuple[bool, list[Layer]]]:
    """Split the visible stack into (by_vips, layers) runs: src-over layers (ending with at most
    one plus layer, since libvips leaves a plus sum unclamped for the layers after it) for libvips,
    and single layers for numpy.

    The runs depend on the stack only, never on the area being flattened, so a pixel takes the
    same arithmetic path whether it is flattened alone, in a tile or in the whole image. (One
    exception: libvips passes regions no layer of a run covers straight through, skipping its
    premultiply round trip; that is float32 noise, far below the final rounding, except for a
    value within that noise of a half level.)
    """
    runs: list[tuple[bool, list[Layer]]] = []
    for layer in layers:
        if not layer.visible or layer.opacity <= 0:
            continue
        if use_vips and layer.blend_mode in _VIPS_MODES:
            if runs and runs[-1][0] and runs[-1][1][-1].blend_mode is BlendMode.SRC_OVER:
                runs[-1][1].append(layer)
            else:
                runs.append((True, [layer]))
        else:
            runs.append((False, [layer]))
    return runs


# -- flatten --------------------------------------------------------------------------------------
def flatten(layers: Sequence[Layer], bounds: Bounds, *, out: np.ndarray | None = None) -> np.ndarray:
    """The visible layers (bottom first) composited over a transparent backdrop inside bounds.

    Returns a new (h, w, 4) uint8 array, or fills and returns `out` (such as a view into a cache).
    """
    return _flatten(layers, bounds, use_vips=_HAVE_VIPS, out=out)


def _flatten(layers: Sequence[Layer], bounds: Bounds, use_vips: bool, out: np.ndarray | None = None) -> np.ndarray:
    """flatten, with the choice of libvips for src-over/plus runs made by the caller (tests use it)."""
    h, w = max(0, bounds.height), max(0, bounds.width)
    if out is None:
        out = np.zeros((h, w, 4), np.uint8)
    elif out.shape != (h, w, 4) or out.dtype != np.uint8:
        raise ValueError(f"out must be a ({h}, {w}, 4) uint8 array")
    runs = _runs(layers, use_vips) if h and w else []
    rects = {id(layer): _layer_rect(layer, bounds) for _, run in runs for layer in run}
    if all(rect.is_empty for rect in rects.values()):
        out.fill(0)
        return out
    # Band by band, so each layer's pixels are read into a few MiB that stay hot and get reused,
    # instead of every layer of the stack being copied out whole before compositing starts.
    rows = max(1, BAND_PIXELS // w)
    for top in range(bounds.y, bounds.bottom, rows):
        band = Bounds(bounds.x, top, w, min(rows, bounds.bottom - top))
        band_rects = {key: rect.intersect(band) for key, rect in rects.items()}
        target = out[top - bounds.y:band.bottom - bounds.y]
        if any(not rect.is_empty for rect in band_rects.values()):
            _flatten_band(runs, band_rects, band, target)  # writes every pixel of the band
        else:
            target.fill(0)
    return out


def _flatten_band(runs: list[tuple[bool, list[Layer]]], rects: dict[int, Bounds], bounds: Bounds, out: np.ndarray) -> None:
    """Flatten the runs into out (uint8) over bounds; rects[id(layer)] is where a layer has tiles."""
    backdrop: object = None  # None (transparent), a float32 array in [0, 1], or a vips image
    for by_vips, run in runs:
        # Layers with no tiles here are left out: over the backdrop they are exact identities.
        present = [(layer, rects[id(layer)]) for layer in run if not rects[id(layer)].is_empty]
        if by_vips:
            if present or backdrop is not None:
                backdrop = _vips_run(backdrop, present, bounds)
            if run[-1].blend_mode is BlendMode.PLUS and backdrop is not None:
                # libvips leaves the premultiplied sum unclamped; later layers must see it clamped.
                backdrop = (backdrop > 255).ifthenelse(255, backdrop)
        else:
            backdrop = _as_array(backdrop, bounds)
            if present:
                _numpy_layer(backdrop, *present[0], bounds)
    if backdrop is not None:
        _store_uint8(backdrop, out)


def _numpy_layer(backdrop: np.ndarray, layer: Layer, rect: Bounds, bounds: Bounds) -> None:
    """Blend one layer onto the float backdrop (in [0, 1]) over rect."""
    target = backdrop[rect.y - bounds.y:rect.bottom - bounds.y, rect.x - bounds.x:rect.right - bounds.x]
    blend_onto(target, layer.read(rect).astype(np.float32) * np.float32(1 / 255), layer.opacity, layer.blend_mode)


# -- libvips --------------------------------------------------------------------------------------
def _vips_image(pixels: np.ndarray):
    """A vips image sharing the memory of a contiguous (h, w, 4) array, tagged sRGB."""
    import pyvips

    h, w = pixels.shape[:2]
    fmt = "uchar" if pixels.dtype == np.uint8 else "float"
    return pyvips.Image.new_from_memory(pixels.data, w, h, 4, fmt).copy(interpretation="srgb")


def _vips_layer(layer: Layer, rect: Bounds):
    """The layer's pixels over rect as a vips image, its alpha scaled by the layer's opacity."""
    image = _vips_image(layer.read(rect))
    if layer.opacity < 1:
        # Multiplying by a constant image (one pixel, extended lazily) scales alpha in float32.
        # Measured inside a 20-layer composite: less CPU than a lookup table (maplut) or linear
        # (`image * [1, 1, 1, o]`), and about a third of linear's wall time.
        scale = np.array([[[1, 1, 1, layer.opacity]]], np.float32)
        const = _vips_image(scale).embed(0, 0, rect.width, rect.height, extend="copy")
        image = (image * const).copy(interpretation="srgb")
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
        base = _vips_image(backdrop * np.float32(255))  # libvips's float sRGB runs 0-255
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
    """The backdrop as a writable float32 (h, w, 4) array in [0, 1]."""
    if backdrop is None:
        return np.zeros((bounds.height, bounds.width, 4), np.float32)
    if isinstance(backdrop, np.ndarray):
        return backdrop
    pixels = np.frombuffer(backdrop.write_to_memory(), np.float32).reshape(bounds.height, bounds.width, 4)
    return pixels * np.float32(1 / 255)


def _store_uint8(backdrop: object, out: np.ndarray) -> None:
    """Round to nearest uint8 into out; pixels whose alpha rounds to 0 become (0, 0, 0, 0)."""
    if isinstance(backdrop, np.ndarray):
        scaled = np.clip(backdrop * np.float32(255), 0, 255)
        out[...] = np.rint(scaled, out=scaled)
    else:
        rounded = (backdrop + 0.5).cast("uchar")
        out[...] = np.frombuffer(rounded.write_to_memory(), np.uint8).reshape(out.shape)
    transparent = out[..., 3] == 0
    if transparent.any():
        out[transparent] = 0
