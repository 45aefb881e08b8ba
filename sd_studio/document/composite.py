"""Compositing: layers flattened per rectangle with the W3C Compositing and Blending blend modes.

Every OpenRaster `svg:*` op is computed per "Compositing and Blending Level 1": the blend function
B(Cb, Cs) mixes straight colours, the source becomes Cs' = (1 - ab) * Cs + ab * B(Cb, Cs), and Cs'
is composited source-over. `svg:plus` is the Porter-Duff plus ("lighter") operator: premultiplied
sum, clamped. Layer opacity multiplies the source alpha. Pixels are straight-alpha uint8 RGBA.

The image is flattened in horizontal bands, on a thread pool (numpy releases the GIL). A band's
backdrop is premultiplied float32 held plane by plane, so src-over and plus, the modes of almost
every layer, are a few long vectorised passes per layer, and nothing is rounded until the end.
Layer pixels are deinterleaved into those planes by cv2.split. Other modes convert the backdrop
under the layer to straight colour and back. Layers under one that is opaque over a whole band
at full opacity are not read there.

Why not 8-bit integers or libvips: an alpha_composite chain (Pillow) rounds to 8 bits after
every layer, and layer opacity must be rounded into the alpha channel first; on stacks of faint
layers that was measured up to 60 levels off the formula. libvips's float composite took more
CPU than that chain, and its other blend modes depart from the W3C formula where alpha < 1.
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import cv2
import numpy as np

from sd_studio.document.geometry import Bounds
from sd_studio.document.layer import BlendMode, Layer
from sd_studio.document.surface import TILE


BAND_PIXELS = 1 << 18
"""flatten works in horizontal bands of about this many pixels (whole rows of tiles where wider)."""

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


_PREMULTIPLIED_MODES = frozenset({BlendMode.SRC_OVER, BlendMode.PLUS})


# -- one layer onto a straight backdrop, in numpy -------------------------------------------------
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


# -- one layer onto a premultiplied planar backdrop -----------------------------------------------
# The band backdrop is `planes`, float32 (4, h, w): planes[:3] is colour (0-255) times alpha,
# planes[3] is alpha (0-1). A layer with alpha 0 somewhere adds exactly 0 there, so skipping a
# layer where it has no tiles is an exact identity, as it is in blend_onto.
class _Scratch:
    """One worker's reusable buffers for bands of up to `pixels` pixels."""

    def __init__(self, pixels: int) -> None:
        self.planes = np.empty(4 * pixels, np.float32)
        self.work = np.empty(4 * pixels, np.float32)
        self.alpha = np.empty(pixels, np.float32)
        self.rest = np.empty(pixels, np.float32)
        self.pixels = np.empty(4 * pixels, np.uint8)
        self.channels = np.empty(4 * pixels, np.uint8)

    def view(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The first prod(shape) items of a buffer, shaped."""
        return getattr(self, name)[:math.prod(shape)].reshape(shape)


def _read_channels(layer: Layer, rect: Bounds, scratch: _Scratch) -> np.ndarray:
    """The layer's pixels over rect (document space) as uint8 channel planes (4, h, w), in scratch."""
    shape = (rect.height, rect.width)
    pixels = layer.surface.read(layer.to_layer(rect), out=scratch.view("pixels", (*shape, 4)))
    channels = scratch.view("channels", (4, *shape))
    # cv2.split deinterleaves about ten times faster than a strided numpy copy.
    planes = list(channels)
    for plane, got in zip(planes, cv2.split(pixels, planes)):
        if got is not plane:  # cv2 made its own array after all
            np.copyto(plane, got)
    return channels


def _over_premultiplied(planes: np.ndarray, source: np.ndarray, opacity: float, mode: BlendMode,
                        scratch: _Scratch) -> None:
    """Composite uint8 source planes (4, h, w) onto premultiplied planes (4, h, w) in place, src-over or plus."""
    h, w = source.shape[1:]
    alpha = scratch.view("alpha", (h, w))
    np.multiply(source[3], np.float32(opacity / 255), out=alpha)
    work = scratch.view("work", (3, h, w))
    np.copyto(work, source[:3])  # then a float product: faster than one mixed-type multiply
    work *= alpha
    if mode is BlendMode.PLUS:
        planes[:3] += work
        np.minimum(planes[:3], 255, out=planes[:3])
        planes[3] += alpha
        np.minimum(planes[3], 1, out=planes[3])
        return
    # c * (1 - a) + s * a rather than c + a * (s - c), which measured no faster: this form is
    # exact where a is 0 or 1, so an opaque layer gives the same bits whether what lies below it
    # was composited (here) or skipped (_top_cover, then _start_premultiplied).
    rest = scratch.view("rest", (h, w))
    np.subtract(1, alpha, out=rest)
    planes *= rest
    planes[:3] += work
    planes[3] += alpha


def _start_premultiplied(planes: np.ndarray, source: np.ndarray, opacity: float) -> None:
    """Fill planes (4, h, w) with uint8 source planes over a transparent backdrop (src-over or plus).

    Bit for bit what _over_premultiplied gives over zeros, one layer's work cheaper.
    """
    np.multiply(source[3], np.float32(opacity / 255), out=planes[3])
    np.multiply(source[:3], planes[3], out=planes[:3])


def _blend_straight(planes: np.ndarray, source: np.ndarray, opacity: float, mode: BlendMode) -> None:
    """Composite uint8 source planes (4, h, w) onto premultiplied planes (4, h, w) with any mode, via blend_onto."""
    h, w = source.shape[1:]
    backdrop = np.empty((h, w, 4), np.float32)
    backdrop[..., 3] = planes[3]
    colour = backdrop[..., :3].transpose(2, 0, 1)
    np.divide(planes[:3], np.maximum(planes[3], np.float32(1e-30)) * np.float32(255), out=colour)
    blend_onto(backdrop, source.transpose(1, 2, 0).astype(np.float32) * np.float32(1 / 255), opacity, mode)
    planes[3] = backdrop[..., 3]
    np.multiply(colour, backdrop[..., 3] * np.float32(255), out=planes[:3])


def _store(planes: np.ndarray, out: np.ndarray, scratch: _Scratch) -> None:
    """Round premultiplied planes (4, h, w) half up to straight uint8 into out (h, w, 4).

    Pixels whose alpha rounds to 0 become (0, 0, 0, 0).
    """
    h, w = planes.shape[1:]
    work = scratch.view("work", planes.shape)
    # Alpha 0 comes with colour 0 (every layer adds alpha wherever it adds colour): 0 / tiny = 0.
    np.divide(planes[:3], np.maximum(planes[3], np.float32(1e-30)), out=work[:3])
    np.multiply(planes[3], np.float32(255), out=work[3])
    np.clip(work, 0, 255, out=work)
    work += np.float32(0.5)
    channels = scratch.view("channels", (4, h, w))
    np.copyto(channels, work, casting="unsafe")  # truncates: floor(v + 0.5)
    transparent = channels[3] == 0
    if transparent.any():
        np.copyto(channels, 0, where=transparent)
    out[...] = cv2.merge(list(channels), scratch.view("pixels", (h, w, 4)))


# -- flatten --------------------------------------------------------------------------------------
def flatten(layers: Sequence[Layer], bounds: Bounds, *, out: np.ndarray | None = None) -> np.ndarray:
    """The visible layers (bottom first) composited over a transparent backdrop inside bounds.

    Returns a new (h, w, 4) uint8 array, or fills and returns `out` (such as a view into a cache).
    """
    return _flatten(layers, bounds, premultiplied=True, out=out)


def _flatten(layers: Sequence[Layer], bounds: Bounds, premultiplied: bool, out: np.ndarray | None = None) -> np.ndarray:
    """flatten; premultiplied=False sends src-over and plus through blend_onto too (tests compare)."""
    h, w = max(0, bounds.height), max(0, bounds.width)
    if out is None:
        out = np.zeros((h, w, 4), np.uint8)
    elif out.shape != (h, w, 4) or out.dtype != np.uint8:
        raise ValueError(f"out must be a ({h}, {w}, 4) uint8 array")
    stack = [layer for layer in layers if layer.visible and layer.opacity > 0] if h and w else []
    rects = [(layer, _layer_rect(layer, bounds)) for layer in stack]
    rects = [(layer, rect) for layer, rect in rects if not rect.is_empty]
    if not rects:
        out.fill(0)
        return out
    bands = _bands(bounds)
    rows = max(band.height for band in bands)
    fast = _PREMULTIPLIED_MODES if premultiplied else frozenset()

    def work(share: list[Bounds]) -> None:
        scratch = _Scratch(rows * w)
        for band in share:
            target = out[band.y - bounds.y:band.bottom - bounds.y]
            _flatten_band(rects, band, target, fast, scratch)  # writes every pixel of the band

    workers = min(len(bands), _pool_size())
    if workers < 2:
        work(bands)
    else:
        # Interleaved shares: neighbouring bands cost alike, so each worker gets a fair mix.
        for future in [_pool().submit(work, bands[i::workers]) for i in range(workers)]:
            future.result()
    return out


def _bands(bounds: Bounds) -> list[Bounds]:
    """bounds cut into horizontal bands of about BAND_PIXELS, on a grid of whole tile rows if they fit."""
    rows = max(1, BAND_PIXELS // bounds.width)
    if rows >= TILE:
        # A band of whole tile rows reads each tile in one piece: far fewer, larger copies.
        rows -= rows % TILE
    cuts = range((bounds.y // rows + 1) * rows, bounds.bottom, rows)
    tops = [bounds.y, *cuts]
    bottoms = [*cuts, bounds.bottom]
    return [Bounds(bounds.x, top, bounds.width, bottom - top) for top, bottom in zip(tops, bottoms)]


def _flatten_band(rects: list[tuple[Layer, Bounds]], band: Bounds, out: np.ndarray,
                  fast: frozenset[BlendMode], scratch: _Scratch) -> None:
    """Flatten the layers into out (uint8) over band; each layer comes with where it has tiles."""
    h, w = band.height, band.width
    planes = scratch.view("planes", (4, h, w))
    blank = True  # planes not yet written: the backdrop is transparent
    for layer, rect in rects[_top_cover(rects, band):]:
        rect = rect.intersect(band)
        if rect.is_empty:
            continue  # over the backdrop, a layer without pixels here is an exact identity
        source = _read_channels(layer, rect, scratch)
        mode = layer.blend_mode
        if blank and rect == band and mode in fast:
            _start_premultiplied(planes, source, layer.opacity)
            blank = False
            continue
        if blank:
            planes.fill(0)
            blank = False
        under = planes[:, rect.y - band.y:rect.bottom - band.y, rect.x - band.x:rect.right - band.x]
        if mode in fast:
            _over_premultiplied(under, source, layer.opacity, mode, scratch)
        else:
            _blend_straight(under, source, layer.opacity, mode)
    if blank:
        out.fill(0)
    else:
        _store(planes, out, scratch)


def _top_cover(rects: list[tuple[Layer, Bounds]], band: Bounds) -> int:
    """The index of the topmost layer that hides every layer below it in band (0 when none does).

    That is a src-over layer at full opacity, opaque all over the band: over any backdrop it
    gives its own pixels, bit for bit (see _over_premultiplied), so what lies below is not read.
    """
    for index in range(len(rects) - 1, 0, -1):
        layer, rect = rects[index]
        if layer.blend_mode is BlendMode.SRC_OVER and layer.opacity == 1 and rect.contains(band):
            if _opaque(layer, band):
                return index
    return 0


def _opaque(layer: Layer, bounds: Bounds) -> bool:
    """Whether every pixel of the layer inside bounds (document space) has alpha 255."""
    local = layer.to_layer(bounds)
    for tx, ty in local.tiles(TILE):
        tile = layer.surface.tile((tx, ty))
        if tile is None:
            return False
        part = local.intersect(Bounds(tx * TILE, ty * TILE, TILE, TILE)).offset(-tx * TILE, -ty * TILE)
        # The remembered rectangle settles most tiles; a part it overlaps is looked at.
        if not _translucent(tile).intersect(part).is_empty and tile[part.slices][..., 3].min() < 255:
            return False
    return True


_TRANSLUCENT: dict[int, tuple[weakref.ref, Bounds]] = {}


def _translucent(tile: np.ndarray) -> Bounds:
    """The tile-local rectangle holding its pixels with alpha below 255; remembered while it lives.

    Stored tiles are never written in place (Surface's contract), so the answer cannot go stale.
    """
    key = id(tile)
    known = _TRANSLUCENT.get(key)
    if known is not None and known[0]() is tile:
        return known[1]
    rows, cols = np.nonzero(tile[..., 3] < 255)
    found = (Bounds.from_corners(int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
             if rows.size else Bounds(0, 0, 0, 0))
    _TRANSLUCENT[key] = (weakref.ref(tile, lambda _, key=key: _TRANSLUCENT.pop(key, None)), found)
    return found


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


# -- threads --------------------------------------------------------------------------------------
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool_size() -> int:
    """How many bands flatten works on at once: one per CPU."""
    return os.cpu_count() or 1


def _pool() -> ThreadPoolExecutor:
    """The shared pool flatten's bands run on, made on first use."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(_pool_size(), thread_name_prefix="flatten")
        return _POOL
