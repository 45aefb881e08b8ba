"""Splitting a scattered mask (hundreds of scratches over a scan) into regions a model can take one at a time."""

from __future__ import annotations

import numpy as np

from sd_studio.document.geometry import Bounds


def mask_regions(mask: np.ndarray, *, gap: int = 32, max_side: int = 1024) -> list[Bounds]:
    """Rectangles covering every marked pixel: marks closer than `gap` px share one; none longer than max_side."""
    import cv2

    from sd_studio.engine.region import mask_bounds

    box = mask_bounds(mask)
    if box.is_empty:
        return []
    # Grouping is judged on a copy shrunk so that `gap` becomes a few pixels: cheap on a 24 MP scan.
    factor = max(1, gap // 4)
    h, w = mask.shape
    small = cv2.resize((mask > 0).view(np.uint8) if mask.dtype == np.bool_ else (mask > 0).astype(np.uint8),
                       ((w + factor - 1) // factor, (h + factor - 1) // factor), interpolation=cv2.INTER_AREA)
    small = (small > 0).astype(np.uint8)
    reach = max(1, gap // factor)
    small = cv2.dilate(small, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(small, connectivity=8)
    image = Bounds(0, 0, w, h)
    regions: list[Bounds] = []
    for i in range(1, count):
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        grown = Bounds(x * factor, y * factor, bw * factor, bh * factor).intersect(image)
        tight = mask_bounds(mask[grown.slices])
        if tight.is_empty:
            continue
        region = tight.offset(grown.x, grown.y)
        regions.extend(_split(region, max_side))
    return regions


def _split(region: Bounds, max_side: int) -> list[Bounds]:
    import math

    nx, ny = math.ceil(region.width / max_side), math.ceil(region.height / max_side)
    if nx == 1 and ny == 1:
        return [region]
    out = []
    for j in range(ny):
        for i in range(nx):
            x0 = region.x + region.width * i // nx
            x1 = region.x + region.width * (i + 1) // nx
            y0 = region.y + region.height * j // ny
            y1 = region.y + region.height * (j + 1) // ny
            out.append(Bounds.from_corners(x0, y0, x1, y1))
    return out
