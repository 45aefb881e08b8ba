"""Layer thumbnails sampled from a layer's tiles, cheap whatever the document size."""

from __future__ import annotations

import numpy as np

from sd_studio.document.geometry import Extent
from sd_studio.document.layer import Layer
from sd_studio.document.surface import TILE


def thumbnail(layer: Layer, doc_size: Extent, side: int = 48) -> np.ndarray:
    """An (h, w, 4) RGBA picture of the layer over the document's area, its longest side `side` px.

    Nearest-pixel sampling straight from the stored tiles: the cost follows the thumbnail's size,
    not the layer's.
    """
    w, h = doc_size
    step = max(w, h) / side
    tw, th = max(1, round(w / step)), max(1, round(h / step))
    xs = np.minimum((np.arange(tw) * step + step / 2).astype(np.int64), w - 1) - layer.offset.x
    ys = np.minimum((np.arange(th) * step + step / 2).astype(np.int64), h - 1) - layer.offset.y
    out = np.zeros((th, tw, 4), np.uint8)
    tx, ty = np.floor_divide(xs, TILE), np.floor_divide(ys, TILE)
    for (kx, ky), tile in layer.surface.snapshot().items():
        cols = np.flatnonzero(tx == kx)
        rows = np.flatnonzero(ty == ky)
        if cols.size and rows.size:
            out[np.ix_(rows, cols)] = tile[np.ix_(ys[rows] - ky * TILE, xs[cols] - kx * TILE)]
    return out
