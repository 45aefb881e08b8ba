"""Bringing a mask made at a working resolution back to the photo's full size, its edge following the photo's.

A plain bilinear upscale of a mask made at 1/8 of the size puts its edge within about 8 pixels of
the right place, in smooth curves that cut through hair and corners. The band where that edge can
lie is refined with a colour guided filter (He, Sun and Tang, "Guided Image Filtering", 2010) whose
guide is the full-resolution photo: inside the band the mask takes the photo's own edges. Only
tiles that hold some of the band are filtered, so the cost follows the length of the outline, not
the size of the photo.
"""

from __future__ import annotations

import math

import numpy as np

TILE = 512
EPSILON = 1e-3
"""The guided filter's regulariser, on colours in [0, 1]: smaller follows fainter edges (and more noise)."""


def upscale_mask(small: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """A (h, w) uint8 mask (255 inside) scaled up to the (H, W, 3) uint8 guide's size, its edge refined on the guide."""
    import cv2

    height, width = guide.shape[:2]
    if small.shape == (height, width):
        return np.where(small >= 128, np.uint8(255), np.uint8(0))
    soft = cv2.resize(small.astype(np.float32) * (1 / 255), (width, height), interpolation=cv2.INTER_LINEAR)
    factor = max(width / small.shape[1], height / small.shape[0])
    radius = max(2, math.ceil(factor))
    band = (soft > 0.02) & (soft < 0.98)
    band = cv2.dilate(band.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=radius) > 0
    out = np.where(soft >= 0.5, np.uint8(255), np.uint8(0))
    reach = 2 * radius + 1
    for y in range(0, height, TILE):
        for x in range(0, width, TILE):
            tile = band[y:y + TILE, x:x + TILE]
            rows, cols = np.flatnonzero(tile.any(axis=1)), np.flatnonzero(tile.any(axis=0))
            if rows.size == 0:
                continue
            # Only the band's own rectangle in this tile, and the reach of the filter's windows around it.
            ty0, ty1, tx0, tx1 = y + rows[0], y + rows[-1] + 1, x + cols[0], x + cols[-1] + 1
            y0, x0 = max(0, ty0 - reach), max(0, tx0 - reach)
            y1, x1 = min(height, ty1 + reach), min(width, tx1 + reach)
            filtered = guided_filter(guide[y0:y1, x0:x1], soft[y0:y1, x0:x1], radius, EPSILON)
            inner = filtered[ty0 - y0: ty1 - y0, tx0 - x0: tx1 - x0]
            where = band[ty0:ty1, tx0:tx1]
            out[ty0:ty1, tx0:tx1][where] = np.where(inner[where] >= 0.5, np.uint8(255), np.uint8(0))
    return out


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, epsilon: float) -> np.ndarray:
    """The colour guided filter of a float32 (h, w) source by an (h, w, 3) uint8 guide over (2r+1)^2 windows."""
    import cv2

    size = (2 * radius + 1, 2 * radius + 1)

    def mean(a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a, cv2.CV_32F, size, borderType=cv2.BORDER_REFLECT)

    image = guide.astype(np.float32) * (1 / 255)
    channels = [np.ascontiguousarray(image[..., c]) for c in range(3)]
    mean_i = [mean(c) for c in channels]
    mean_p = mean(source)
    cov_ip = [mean(c * source) - m * mean_p for c, m in zip(channels, mean_i)]
    var = {}
    for i in range(3):
        for j in range(i, 3):
            var[i, j] = mean(channels[i] * channels[j]) - mean_i[i] * mean_i[j] + (epsilon if i == j else 0.0)
    rr, rg, rb, gg, gb, bb = var[0, 0], var[0, 1], var[0, 2], var[1, 1], var[1, 2], var[2, 2]
    # The inverse of each pixel's symmetric 3 x 3 covariance, by cofactors.
    inv_rr = gg * bb - gb * gb
    inv_rg = gb * rb - rg * bb
    inv_rb = rg * gb - gg * rb
    inv_gg = rr * bb - rb * rb
    inv_gb = rb * rg - rr * gb
    inv_bb = rr * gg - rg * rg
    det = rr * inv_rr + rg * inv_rg + rb * inv_rb
    a_r = (inv_rr * cov_ip[0] + inv_rg * cov_ip[1] + inv_rb * cov_ip[2]) / det
    a_g = (inv_rg * cov_ip[0] + inv_gg * cov_ip[1] + inv_gb * cov_ip[2]) / det
    a_b = (inv_rb * cov_ip[0] + inv_gb * cov_ip[1] + inv_bb * cov_ip[2]) / det
    b = mean_p - a_r * mean_i[0] - a_g * mean_i[1] - a_b * mean_i[2]
    return mean(a_r) * channels[0] + mean(a_g) * channels[1] + mean(a_b) * channels[2] + mean(b)
