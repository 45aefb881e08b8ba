"""Tiles over a large image: cores that cover it exactly once, context padding around each, seams blended.

A photo is processed tile by tile so that memory follows the tile, not the photo. Each tile's core
is the part it is responsible for (the cores partition the image); the model sees the core plus
`padding` pixels of context on every side that has a neighbour (the region, `tile` pixels square
where the image allows, so a diffusion model always gets its native size). Neighbouring results
are cross-faded over a band of `padding` pixels centred on the core boundary: complementary linear
ramps, so the weights sum to exactly 1. Rows are assembled in a strip, then the strip is faded into
the output: the only buffers the size of the image are the input and the output themselves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sd_studio.document.geometry import Bounds, Extent
from sd_studio.engine.request import Progress
from sd_studio.errors import Cancelled, GenerationError


@dataclass(frozen=True)
class Tile:
    """One tile: `core` (cores partition the image) inside `region` (what the model sees)."""

    core: Bounds
    region: Bounds
    row: int
    column: int


def plan_tiles(size: Extent, tile: int, padding: int) -> list[list[Tile]]:
    """Rows of tiles covering an image of `size`: regions at most tile x tile, cores at most tile - 2 * padding."""
    if tile < 8 or padding < 0 or tile - 2 * padding < 8:
        raise GenerationError(f"A tile of {tile} px cannot hold {padding} px of padding on each side.")
    if size.width < 1 or size.height < 1:
        raise GenerationError("There is nothing to tile: the image is empty.")
    core = tile - 2 * padding
    xs = _split(size.width, core)
    ys = _split(size.height, core)
    image = Bounds.from_extent(size)
    rows = []
    for r, (y, h) in enumerate(ys):
        row = []
        for c, (x, w) in enumerate(xs):
            core_bounds = Bounds(x, y, w, h)
            side_w, side_h = min(tile, size.width), min(tile, size.height)
            region = Bounds(x - (side_w - w) // 2, y - (side_h - h) // 2, side_w, side_h).clamp(image)
            row.append(Tile(core_bounds, region, r, c))
        rows.append(row)
    return rows


def _split(length: int, most: int) -> list[tuple[int, int]]:
    """length split into the fewest nearly equal parts of at most `most`: (start, size) pairs."""
    count = max(1, math.ceil(length / most))
    edges = [round(i * length / count) for i in range(count + 1)]
    return [(edges[i], edges[i + 1] - edges[i]) for i in range(count)]


def run_tiled(
    image: np.ndarray,
    process: Callable[[np.ndarray, Tile], np.ndarray],
    *,
    tile: int,
    padding: int,
    scale: int = 1,
    progress: Callable[[Progress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    phase: str = "tiles",
) -> np.ndarray:
    """The (H*scale, W*scale, 3) uint8 result of `process(region_pixels, tile)` over every tile, seams cross-faded.

    `process` returns its region's pixels scaled by `scale`. `cancel()` is checked before every tile
    (Cancelled); `progress` hears after each one.
    """
    height, width = image.shape[:2]
    rows = plan_tiles(Extent(width, height), tile, padding)
    total = sum(len(r) for r in rows)
    band = padding // 2  # half the cross-fade on each side of a core boundary, inside the padding
    out = np.empty((height * scale, width * scale, 3), np.uint8)
    done = 0
    for row in rows:
        top = row[0].core.y
        bottom = row[0].core.bottom
        # rows of the image this strip writes: its cores plus the fade band below/above neighbours
        y0 = max(0, top - band) if top > 0 else 0
        y1 = min(height, bottom + band) if bottom < height else height
        strip = np.empty(((y1 - y0) * scale, width * scale, 3), np.uint8)
        for t in row:
            if cancel is not None and cancel():
                raise Cancelled("Cancelled; nothing was changed.")
            rows_, cols_ = t.region.slices
            result = process(np.ascontiguousarray(image[rows_, cols_, :3]), t)
            expected = (t.region.height * scale, t.region.width * scale)
            if result.shape[:2] != expected:
                raise GenerationError(f"A tile came back {result.shape[1]} x {result.shape[0]} instead of "
                                      f"{expected[1]} x {expected[0]} pixels.")
            x0 = max(0, t.core.x - band) if t.core.x > 0 else 0
            x1 = min(width, t.core.right + band) if t.core.right < width else width
            piece = result[(y0 - t.region.y) * scale:(y1 - t.region.y) * scale,
                           (x0 - t.region.x) * scale:(x1 - t.region.x) * scale, :3]
            target = strip[:, x0 * scale:x1 * scale]
            _fade(target, piece, 2 * band * scale if t.core.x > 0 else 0, axis=1)
            done += 1
            if progress is not None:
                progress(Progress(phase, done, total, message=f"tile {done} of {total}"))
        target = out[y0 * scale:y1 * scale]
        _fade(target, strip, 2 * band * scale if top > 0 else 0, axis=0)
    return out


def _fade(target: np.ndarray, piece: np.ndarray, fade: int, axis: int) -> None:
    """target <- piece, cross-faded over the first `fade` pixels along axis (0 rows, 1 columns) by a rising ramp."""
    fade = min(fade, target.shape[axis])
    if fade <= 0:
        target[...] = piece
        return
    w = (np.arange(fade, dtype=np.float32) + 0.5) / fade
    head = (slice(0, fade),) if axis == 0 else (slice(None), slice(0, fade))
    tail = (slice(fade, None),) if axis == 0 else (slice(None), slice(fade, None))
    w = w[:, None, None] if axis == 0 else w[None, :, None]
    old = target[head].astype(np.float32)
    target[head] = np.clip(np.rint(old * (1 - w) + piece[head].astype(np.float32) * w), 0, 255).astype(np.uint8)
    target[tail] = piece[tail]
