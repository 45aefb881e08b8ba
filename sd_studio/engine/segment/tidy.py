"""Tidying a segmentation: specks dropped and pinholes filled, so the mask is what a person would have painted."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPECK_SHARE = 0.02
"""Pieces smaller than this share of the largest piece are dropped (unless a point asked for them)."""

HOLE_SHARE = 0.01
"""Holes smaller than this share of the selection are filled."""


def tidy_mask(mask: np.ndarray, keep: Sequence[tuple[int, int]] = (), speck_share: float = SPECK_SHARE,
              hole_share: float = HOLE_SHARE, drop: Sequence[tuple[int, int]] = (), reach: int = 0) -> np.ndarray:
    """A (h, w) bool mask without its specks and small holes; pieces holding a keep point (x, y) always stay,
    pieces within `reach` pixels of a drop point (and holding no keep point) go."""
    import cv2

    mask = np.asarray(mask, bool)
    if not mask.any():
        return mask.copy()
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    wanted = np.zeros(count, bool)
    wanted[1:] = areas >= speck_share * areas.max()
    height, width = mask.shape
    kept = {labels[y, x] for x, y in keep if 0 <= x < width and 0 <= y < height and labels[y, x] > 0}
    for x, y in drop:
        # The point itself may sit in the hole its own "background" seed made: look around it.
        near = labels[max(0, y - reach): y + reach + 1, max(0, x - reach): x + reach + 1]
        for label in np.unique(near):
            if label > 0 and label not in kept:
                wanted[label] = False
    wanted[list(kept)] = True
    out = wanted[labels]
    holes, hole_labels, hole_stats, _ = cv2.connectedComponentsWithStats((~out).astype(np.uint8), connectivity=4)
    limit = hole_share * max(1, int(out.sum()))
    fill = np.zeros(holes, bool)
    for i in range(1, holes):
        x, y, w, h, area = hole_stats[i]
        touches_edge = x == 0 or y == 0 or x + w == width or y + h == height
        fill[i] = not touches_edge and area < limit
    return out | fill[hole_labels]
