"""Surface: sparse, copy-on-write tiled pixel storage of 8-bit channels."""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping

import numpy as np

from sd_studio.document.geometry import Bounds

TILE = 64
"""Side of a square tile, in pixels."""

TileKey = tuple[int, int]
TileMap = dict[TileKey, "np.ndarray | None"]


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


class Surface:
    """An unbounded plane of pixels stored as TILE x TILE tiles.

    The contract: an absent tile reads as zeros and costs nothing; a stored tile is never modified
    in place (it is read-only), so a snapshot of the tile map is a cheap, exact copy of the surface
    that undo can keep. For RGBA surfaces every fully transparent pixel is stored as (0, 0, 0, 0),
    so a tile that becomes transparent is dropped.
    """

    def __init__(self, channels: int = 4) -> None:
        if channels not in (1, 4):
            raise ValueError("a surface has 1 or 4 channels")
        self.channels = channels
        self._tiles: dict[TileKey, np.ndarray] = {}
        self._bounds: Bounds | None = None  # bounds() remembered until a tile is added or removed

    # -- tiles -------------------------------------------------------------------------------
    def tile(self, key: TileKey) -> np.ndarray | None:
        """The read-only tile at key, or None where the surface is empty."""
        return self._tiles.get(key)

    def tile_keys(self) -> list[TileKey]:
        """The keys of every stored (non-empty) tile."""
        return list(self._tiles)

    def get_tiles(self, keys: Iterable[TileKey]) -> TileMap:
        """The tiles at keys (None for empty ones), as a map that stays valid after later edits."""
        return {k: self._tiles.get(k) for k in keys}

    def set_tiles(self, tiles: Mapping[TileKey, np.ndarray | None]) -> None:
        """Put back tiles taken by get_tiles (None removes a tile)."""
        for key, tile in tiles.items():
            if tile is None:
                self._remove(key)
            else:
                self._put(key, tile)

    def snapshot(self) -> dict[TileKey, np.ndarray]:
        """Every stored tile; sharing the read-only arrays makes this cheap and exact."""
        return dict(self._tiles)

    def restore(self, snapshot: Mapping[TileKey, np.ndarray]) -> None:
        """Make the surface equal to a snapshot."""
        self._tiles = dict(snapshot)
        self._bounds = None

    def copy(self) -> "Surface":
        """An independent surface with the same pixels (tiles are shared until written)."""
        other = Surface(self.channels)
        other._tiles = dict(self._tiles)
        other._bounds = self._bounds
        return other

    @property
    def is_empty(self) -> bool:
        """True when no pixel is set."""
        return not self._tiles

    def nbytes(self) -> int:
        """Bytes held by the stored tiles."""
        return sum(t.nbytes for t in self._tiles.values())

    def bounds(self) -> Bounds:
        """The tile-aligned rectangle that holds every stored tile (empty for an empty surface)."""
        if self._bounds is None:
            if not self._tiles:
                self._bounds = Bounds(0, 0, 0, 0)
            else:
                # a full 8192 x 8192 layer has 16384 tiles: worth not scanning at every dab
                xs = [k[0] for k in self._tiles]
                ys = [k[1] for k in self._tiles]
                self._bounds = Bounds.from_corners(min(xs) * TILE, min(ys) * TILE, (max(xs) + 1) * TILE, (max(ys) + 1) * TILE)
        return self._bounds

    def content_bounds(self) -> Bounds:
        """The exact rectangle of the pixels that are not zero (empty for an empty surface)."""
        result = Bounds(0, 0, 0, 0)
        for (tx, ty), tile in self._tiles.items():
            nz = tile.any(axis=2) if tile.ndim == 3 else tile != 0
            rows = np.flatnonzero(nz.any(axis=1))
            cols = np.flatnonzero(nz.any(axis=0))
            if rows.size:
                b = Bounds.from_corners(
                    tx * TILE + int(cols[0]), ty * TILE + int(rows[0]),
                    tx * TILE + int(cols[-1]) + 1, ty * TILE + int(rows[-1]) + 1,
                )
                result = result.union(b)
        return result

    # -- pixels ------------------------------------------------------------------------------
    def _shape(self, h: int, w: int) -> tuple[int, ...]:
        return (h, w, self.channels) if self.channels > 1 else (h, w)

    def read(self, bounds: Bounds, out: np.ndarray | None = None) -> np.ndarray:
        """A new array (height, width[, channels]) holding the pixels of bounds; zeros where empty.

        Given `out` (a uint8 array of that shape), fills and returns it instead, so a caller reading
        many areas in turn can reuse one buffer.
        """
        shape = self._shape(max(0, bounds.height), max(0, bounds.width))
        if out is None:
            out = np.empty(shape, np.uint8)
        elif out.shape != shape or out.dtype != np.uint8:
            raise ValueError(f"out must be a {shape} uint8 array")
        if bounds.is_empty:
            out.fill(0)
            return out
        # One np.concatenate per row of tiles instead of one slice assignment per tile: reading a
        # 4096 x 4096 layer goes from 4096 Python-level copies to 64 (about twice as fast).
        zero = np.zeros(self._shape(TILE, TILE), np.uint8)
        tx0, tx1 = bounds.x // TILE, (bounds.right - 1) // TILE
        left, right = bounds.x - tx0 * TILE, bounds.right - tx1 * TILE
        get = self._tiles.get
        for ty in range(bounds.y // TILE, (bounds.bottom - 1) // TILE + 1):
            y0, y1 = max(bounds.y, ty * TILE), min(bounds.bottom, (ty + 1) * TILE)
            target = out[y0 - bounds.y:y1 - bounds.y]
            tiles = [get((tx, ty)) for tx in range(tx0, tx1 + 1)]
            if all(tile is None for tile in tiles):
                target.fill(0)
                continue
            trows = slice(y0 - ty * TILE, y1 - ty * TILE)
            pieces = [(zero if tile is None else tile)[trows] for tile in tiles]
            pieces[-1] = pieces[-1][:, :right]
            pieces[0] = pieces[0][:, left:]
            np.concatenate(pieces, axis=1, out=target)
        return out

    def write(self, x: int, y: int, pixels: np.ndarray) -> Bounds:
        """Replace the pixels at (x, y) with an array; returns the rectangle written."""
        pixels = self._check(pixels)
        h, w = pixels.shape[:2]
        bounds = Bounds(x, y, w, h)
        for key, rows, cols, trows, tcols in self._spans(bounds):
            old = self._tiles.get(key)
            full = trows == slice(0, TILE) and tcols == slice(0, TILE)
            if full:
                tile = np.array(pixels[rows, cols], copy=True)
            else:
                tile = np.zeros(self._shape(TILE, TILE), np.uint8) if old is None else old.copy()
                tile[trows, tcols] = pixels[rows, cols]
            self._store(key, tile)
        return bounds

    def modify(self, bounds: Bounds, fn) -> None:
        """Apply fn(tile_pixels, tile_rows, tile_cols, region_rows, region_cols) tile by tile.

        fn receives a writable copy of each touched tile (zeros for an empty one) and edits it in
        place; the edited copy replaces the tile. This is how brushes paint without copying the
        whole rectangle.
        """
        for key, rows, cols, trows, tcols in self._spans(bounds):
            old = self._tiles.get(key)
            tile = np.zeros(self._shape(TILE, TILE), np.uint8) if old is None else old.copy()
            fn(tile, trows, tcols, rows, cols)
            self._store(key, tile)

    def clear(self) -> None:
        """Remove every pixel."""
        self._tiles = {}
        self._bounds = None

    def _store(self, key: TileKey, tile: np.ndarray) -> None:
        if self.channels == 4:
            transparent = tile[..., 3] == 0
            if transparent.any():
                tile[transparent] = 0
        if tile.any():
            self._put(key, _frozen(tile))
        else:
            self._remove(key)

    def _put(self, key: TileKey, tile: np.ndarray) -> None:
        if key not in self._tiles:
            self._bounds = None
        self._tiles[key] = tile

    def _remove(self, key: TileKey) -> None:
        if self._tiles.pop(key, None) is not None:
            self._bounds = None

    def _check(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8:
            raise TypeError("surface pixels are uint8")
        expected = 3 if self.channels > 1 else 2
        if pixels.ndim != expected or (self.channels > 1 and pixels.shape[2] != self.channels):
            raise ValueError(f"expected an array of shape (h, w{', %d' % self.channels if self.channels > 1 else ''})")
        return pixels

    @staticmethod
    def _spans(bounds: Bounds) -> Iterator[tuple[TileKey, slice, slice, slice, slice]]:
        """For each tile touched: its key, the rows/cols in bounds-local and tile-local space."""
        for tx, ty in bounds.tiles(TILE):
            x0 = max(bounds.x, tx * TILE)
            y0 = max(bounds.y, ty * TILE)
            x1 = min(bounds.right, (tx + 1) * TILE)
            y1 = min(bounds.bottom, (ty + 1) * TILE)
            yield (
                (tx, ty),
                slice(y0 - bounds.y, y1 - bounds.y),
                slice(x0 - bounds.x, x1 - bounds.x),
                slice(y0 - ty * TILE, y1 - ty * TILE),
                slice(x0 - tx * TILE, x1 - tx * TILE),
            )

    def tile_keys_in(self, bounds: Bounds) -> list[TileKey]:
        """The keys of every tile (stored or not) that bounds touches."""
        return list(bounds.tiles(TILE))

    def equals(self, other: "Surface") -> bool:
        """True when both surfaces hold the same pixels."""
        if self.channels != other.channels or self._tiles.keys() != other._tiles.keys():
            return False
        return all(
            a is other._tiles[k] or np.array_equal(a, other._tiles[k]) for k, a in self._tiles.items()
        )
