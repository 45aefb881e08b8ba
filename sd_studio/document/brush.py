"""Brush strokes: round anti-aliased dabs laid along a path, painted live as one undoable edit."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sd_studio.document.commands import StrokeRecorder, TilesCommand
from sd_studio.document.document import Document
from sd_studio.document.geometry import Bounds
from sd_studio.document.layer import Layer
from sd_studio.document.surface import TILE, Surface, TileKey
from sd_studio.errors import SDStudioError


@dataclass(frozen=True)
class Brush:
    """The settings of a round brush; `opacity` caps what one stroke can lay down."""

    size: float = 20.0
    hardness: float = 0.8
    opacity: float = 1.0
    spacing: float = 0.15
    color: tuple[int, int, int] = (0, 0, 0)
    erase: bool = False

    def __post_init__(self) -> None:
        if not self.size > 0:
            raise ValueError("brush size must be positive")
        if not 0.0 <= self.hardness <= 1.0:
            raise ValueError("brush hardness must lie between 0 and 1")
        if not 0.0 <= self.opacity <= 1.0:
            raise ValueError("brush opacity must lie between 0 and 1")
        if not self.spacing > 0:
            raise ValueError("brush spacing must be positive")
        if len(self.color) != 3 or not all(0 <= int(c) <= 255 for c in self.color):
            raise ValueError("brush colour is three values from 0 to 255")


def dab(cx: float, cy: float, radius: float, hardness: float) -> tuple[Bounds, np.ndarray]:
    """The coverage (float32, 0..1) of a round dab centred at (cx, cy), and the rectangle it covers.

    Full coverage inside radius * hardness, a smooth falloff to zero at the radius; the falloff is
    at least one pixel wide so even a fully hard edge is anti-aliased.
    """
    radius = max(float(radius), 0.5)
    x0, y0 = math.floor(cx - radius), math.floor(cy - radius)
    x1, y1 = math.ceil(cx + radius), math.ceil(cy + radius)
    xs = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx) ** 2
    ys = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy) ** 2
    dist = np.sqrt(ys[:, None] + xs[None, :])
    ramp = max(radius * (1.0 - hardness), 1.0)
    t = np.clip((radius - dist) / ramp, 0.0, 1.0)
    return Bounds.from_corners(x0, y0, x1, y1), t * t * (3.0 - 2.0 * t)


class _Coverage:
    """A stroke-local plane of coverage (float32 tiles): the most any dab covered each pixel."""

    def __init__(self) -> None:
        self._tiles: dict[TileKey, np.ndarray] = {}

    def max_in(self, bounds: Bounds, values: np.ndarray) -> np.ndarray:
        """Raise the coverage over bounds to at least values; returns the coverage of bounds."""
        out = np.empty((bounds.height, bounds.width), np.float32)
        for key, rows, cols, trows, tcols in Surface._spans(bounds):
            tile = self._tiles.get(key)
            if tile is None:
                tile = self._tiles[key] = np.zeros((TILE, TILE), np.float32)
            np.maximum(tile[trows, tcols], values[rows, cols], out=tile[trows, tcols])
            out[rows, cols] = tile[trows, tcols]
        return out


def _paint(orig: np.ndarray, alpha: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """Straight-alpha src-over of a solid colour with coverage alpha onto orig (h, w, 4) uint8."""
    a_s = alpha[..., None]
    a_d = orig[..., 3:].astype(np.float32) / 255
    a_o = a_s + a_d * (1 - a_s)
    src = np.asarray(color, np.float32)[None, None, :]
    c = src * a_s + orig[..., :3].astype(np.float32) * a_d * (1 - a_s)
    rgb = np.divide(c, a_o, out=np.zeros_like(c), where=a_o > 0)
    out = np.empty_like(orig)
    out[..., :3] = np.clip(np.rint(rgb), 0, 255)
    out[..., 3] = np.clip(np.rint(a_o[..., 0] * 255), 0, 255)
    untouched = alpha <= 0
    out[untouched] = orig[untouched]  # keep pixels no dab reached bit-for-bit
    return out


def _erase(orig: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Reduce the alpha of orig (h, w, 4) uint8 by coverage alpha; colours stay (straight alpha)."""
    out = orig.copy()
    out[..., 3] = np.rint(orig[..., 3].astype(np.float32) * (1 - alpha))
    return out


class Stroke:
    """One stroke on a layer or on the inpaint mask (target None): begin, add points, finish -> one command.

    Each pixel ends up as its colour before the stroke composited with the strongest coverage any
    dab of the stroke gave it, times the brush opacity, so overlapping dabs never build up past
    the opacity. The work per dab is proportional to the dab's area, whatever the document size.
    """

    def __init__(
        self, doc: Document, brush: Brush, target: Layer | None, name: str | None = None,
        pressure_size: bool = True, pressure_opacity: bool = False,
    ) -> None:
        if target is not None and target.locked:
            raise SDStudioError(f"Layer “{target.name}” is locked")
        self.doc = doc
        self.brush = brush
        self.target = target
        self.pressure_size = pressure_size
        self.pressure_opacity = pressure_opacity
        if name is None:
            what = "Erase" if brush.erase else "Paint"
            name = f"{what} mask" if target is None else f"{what} on “{target.name}”"
        self.name = name
        self._surface = doc.mask.surface if target is None else target.surface
        self._recorder = StrokeRecorder(name, target, self._surface)
        self._original = Surface(self._surface.channels)  # the touched tiles as they were
        self._coverage = _Coverage()
        self._last: tuple[float, float, float] | None = None
        self._travel = 0.0  # distance walked since the last dab
        self._done = False

    @property
    def _offset(self) -> tuple[int, int]:
        return (0, 0) if self.target is None else (self.target.offset.x, self.target.offset.y)

    def add_point(self, x: float, y: float, pressure: float = 1.0) -> Bounds:
        """Paint dabs from the last point to (x, y) (document coordinates); returns the dirty doc rect."""
        if self._done:
            raise RuntimeError("the stroke is already finished")
        if self.target is not None and self.target.locked:
            raise SDStudioError(f"Layer “{self.target.name}” is locked")
        pressure = min(max(float(pressure), 0.0), 1.0)
        dirty = Bounds(0, 0, 0, 0)
        if self._last is None:
            dirty = self._dab(x, y, pressure)
        else:
            lx, ly, lp = self._last
            length = math.hypot(x - lx, y - ly)
            walked = 0.0
            while length > 0:
                step = self._step(lp + (pressure - lp) * walked / length)
                need = max(step - self._travel, 0.0)
                if walked + need > length:
                    self._travel += length - walked
                    break
                walked += need
                self._travel = 0.0
                f = walked / length
                dirty = dirty.union(self._dab(lx + (x - lx) * f, ly + (y - ly) * f, lp + (pressure - lp) * f))
        self._last = (float(x), float(y), pressure)
        if not dirty.is_empty:
            self._notify(dirty)
        return dirty

    def finish(self) -> TilesCommand | None:
        """Record the stroke as one undo entry (already done); None when it changed nothing."""
        if self._done:
            return None
        self._done = True
        before = self._recorder.before
        after = self._surface.get_tiles(before)
        changed = {}
        for key, old in before.items():
            new = after[key]
            if old is new or (old is not None and new is not None and np.array_equal(old, new)):
                continue
            changed[key] = new
        if len(changed) < len(before):
            # Unchanged tiles go back to the very arrays they were, so memory stays shared.
            self._surface.set_tiles({k: v for k, v in before.items() if k not in changed})
        if not changed:
            return None
        command = TilesCommand(self.name, self.target, {k: before[k] for k in changed}, changed)
        self.doc.push_done(command)
        return command

    def cancel(self) -> None:
        """Put back every tile the stroke touched, as if it never happened."""
        if self._done:
            return
        self._done = True
        before = self._recorder.before
        if before:
            self._surface.set_tiles(before)
            area = Bounds(0, 0, 0, 0)
            for tx, ty in before:
                area = area.union(Bounds(tx * TILE, ty * TILE, TILE, TILE))
            ox, oy = self._offset
            self._notify(area.offset(ox, oy))

    # -- painting ----------------------------------------------------------------------------
    def _step(self, pressure: float) -> float:
        size = self.brush.size * (pressure if self.pressure_size else 1.0)
        return max(self.brush.spacing * size, 0.5)

    def _dab(self, x: float, y: float, pressure: float) -> Bounds:
        """Lay one dab at document (x, y); returns the document rectangle it changed."""
        size = self.brush.size * (pressure if self.pressure_size else 1.0)
        strength = pressure if self.pressure_opacity else 1.0
        if strength <= 0:
            return Bounds(0, 0, 0, 0)
        ox, oy = self._offset
        rect, values = dab(x - ox, y - oy, size / 2, self.brush.hardness)
        # Painting stops at the document's edge, so a stroke never costs more than what shows.
        clipped = rect.intersect(self.doc.bounds.offset(-ox, -oy))
        if clipped.is_empty:
            return clipped
        values = values[clipped.y - rect.y:clipped.bottom - rect.y, clipped.x - rect.x:clipped.right - rect.x]
        if strength < 1:
            values = values * strength
        fresh = [k for k in clipped.tiles(TILE) if k not in self._recorder.before]
        self._recorder.touch(clipped)
        self._original.set_tiles({k: self._recorder.before[k] for k in fresh})
        coverage = self._coverage.max_in(clipped, values) * self.brush.opacity
        orig = self._original.read(clipped)
        self._surface.write(clipped.x, clipped.y, self._compose(orig, coverage))
        return clipped.offset(ox, oy)

    def _compose(self, orig: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        if self.target is None:
            if self.brush.erase:
                return np.rint(orig.astype(np.float32) * (1 - alpha)).astype(np.uint8)
            return np.maximum(orig, np.rint(alpha * 255).astype(np.uint8))
        if self.brush.erase:
            return _erase(orig, alpha)
        return _paint(orig, alpha, self.brush.color)

    def _notify(self, doc_rect: Bounds) -> None:
        if self.target is None:
            self.doc.notify_mask(doc_rect)
        else:
            ox, oy = self._offset
            self.doc.notify_pixels(self.target, doc_rect.offset(-ox, -oy))
