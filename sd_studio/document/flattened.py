"""FlattenedCache: the document's composite, kept between calls and recomputed by dirty tile."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from sd_studio.document.geometry import Bounds, Extent
from sd_studio.document.layer import Layer
from sd_studio.document.surface import TILE


class FlattenedCache:
    """The flattened image of a layer stack, recomputed only where it was invalidated.

    Invalidation marks TILE x TILE cells of the document grid; `get` recomputes the dirty cells
    inside the requested area, grouped into as few rectangles as it can, then returns a read-only
    view of the cached pixels (copy it to keep it past the next change).
    """

    def __init__(self, layers: Callable[[], Sequence[Layer]], size: Extent) -> None:
        self._layers = layers
        self.size = Extent(*size)
        self._image: np.ndarray | None = None
        self._dirty: set[tuple[int, int]] = set()
        self.recomputed_pixels = 0
        """Pixels recomputed so far (tests use it to check that only dirty tiles are redone)."""

    def invalidate(self, bounds: Bounds | None = None) -> None:
        """Mark an area (default: everything) as needing recomputation."""
        area = Bounds.from_extent(self.size) if bounds is None else bounds.intersect(Bounds.from_extent(self.size))
        self._dirty.update(area.tiles(TILE))

    def get(self, area: Bounds) -> np.ndarray:
        """The composite over area (inside the document), as a read-only (h, w, 4) uint8 view."""
        from sd_studio.document.composite import flatten

        full = Bounds.from_extent(self.size)
        area = area.intersect(full)
        if self._image is None:
            self._image = np.zeros((self.size.height, self.size.width, 4), np.uint8)
            self._dirty = set(full.tiles(TILE))
        wanted = self._dirty_in(area)
        if wanted:
            layers = list(self._layers())
            for rect in _rectangles(wanted):
                rect = rect.intersect(full)
                flatten(layers, rect, out=self._image[rect.slices])
                self.recomputed_pixels += rect.width * rect.height
            self._dirty.difference_update(wanted)
        view = self._image[area.slices]
        view.flags.writeable = False
        return view

    def _dirty_in(self, area: Bounds) -> list[tuple[int, int]]:
        """The dirty tile keys that area touches, walking whichever of the two sets is smaller."""
        if area.is_empty or not self._dirty:
            return []
        tx0, ty0 = area.x // TILE, area.y // TILE
        tx1, ty1 = (area.right - 1) // TILE, (area.bottom - 1) // TILE
        if len(self._dirty) < (tx1 - tx0 + 1) * (ty1 - ty0 + 1):
            return [(tx, ty) for tx, ty in self._dirty if tx0 <= tx <= tx1 and ty0 <= ty <= ty1]
        return [k for k in area.tiles(TILE) if k in self._dirty]


def _rectangles(keys: list[tuple[int, int]]) -> list[Bounds]:
    """Cover a set of tile keys with few pixel rectangles: runs along rows, merged down columns."""
    rows: dict[int, list[int]] = {}
    for tx, ty in keys:
        rows.setdefault(ty, []).append(tx)
    runs_by_row: dict[int, list[tuple[int, int]]] = {}
    for ty, xs in rows.items():
        xs.sort()
        runs: list[tuple[int, int]] = []
        start = prev = xs[0]
        for x in xs[1:]:
            if x != prev + 1:
                runs.append((start, prev + 1))
                start = x
            prev = x
        runs.append((start, prev + 1))
        runs_by_row[ty] = runs
    out: list[Bounds] = []
    open_runs: dict[tuple[int, int], int] = {}  # run -> first row
    last_row = None
    for ty in sorted(runs_by_row):
        current = set(runs_by_row[ty])
        for run, first in list(open_runs.items()):
            if run not in current or (last_row is not None and ty != last_row + 1):
                out.append(Bounds.from_corners(run[0] * TILE, first * TILE, run[1] * TILE, (last_row + 1) * TILE))
                del open_runs[run]
        for run in current:
            open_runs.setdefault(run, ty)
        last_row = ty
    for run, first in open_runs.items():
        out.append(Bounds.from_corners(run[0] * TILE, first * TILE, run[1] * TILE, (last_row + 1) * TILE))
    return out
