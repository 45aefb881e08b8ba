"""Synthetic scratches and dust drawn on clean photos, with the truth of where they are (tests and benchmarks).

A scratch or a speck changes the photo's density locally: the photo is lightened or darkened by a
contrast of 60-120 grey levels under an anti-aliased stroke mask (1-3 px straight lines, curved
hairs, round specks of 1-3 px radius). Damaged pixels are those under at least a quarter of a stroke that
visibly changed (by 15 levels or more); clean pixels are those under none.
"""

from __future__ import annotations

import numpy as np


def scan_of(name: str, scale: int = 3) -> np.ndarray:
    """A scikit-image sample photo (public domain) enlarged like a scan, whose detail is softer than its pixels."""
    import cv2
    import skimage.data

    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.dstack([image] * 3)
    image = np.ascontiguousarray(image[..., :3])
    if scale != 1:
        image = cv2.resize(image, (image.shape[1] * scale, image.shape[0] * scale), interpolation=cv2.INTER_CUBIC)
    return image


def damage(image: np.ndarray, seed: int = 0, lines: int = 10, curves: int = 4, dust: int = 200,
           widths: tuple[int, ...] = (1, 2, 3)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(damaged photo, damaged-pixel truth, clean-pixel truth) for an (H, W, 3) uint8 photo."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    bright = np.zeros((h, w), np.float32)
    dark = np.zeros((h, w), np.float32)
    for i in range(lines):
        target = bright if i % 2 else dark
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        angle, length = rng.uniform(0, np.pi), rng.uniform(0.2, 0.8) * min(h, w)
        p1 = (int(p0[0] + length * np.cos(angle)), int(p0[1] + length * np.sin(angle)))
        cv2.line(target, p0, p1, 1.0, int(rng.choice(widths)), cv2.LINE_AA)
    for i in range(curves):
        target = bright if i % 2 else dark
        t = np.linspace(0, 1, 80)
        x0, y0 = rng.uniform(0.05, 0.6) * w, rng.uniform(0.1, 0.9) * h
        points = np.stack([x0 + 0.35 * w * t, y0 + 0.08 * h * np.sin(6 * t + i)], 1).astype(np.int32)
        cv2.polylines(target, [points], False, 1.0, int(rng.choice(widths[:2])), cv2.LINE_AA)
    for i in range(dust):
        target = bright if i % 2 else dark
        cv2.circle(target, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(1, 4)), 1.0, -1,
                   cv2.LINE_AA)
    np.clip(bright, 0, 1, out=bright)
    np.clip(dark, 0, 1, out=dark)
    contrast = float(rng.uniform(60, 120))
    out = image.astype(np.float32) + contrast * (bright - dark)[..., None]
    damaged = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    strength = np.maximum(bright, dark)
    # A dark scratch on black (or a bright one on white) changes nothing, so it is no damage to find.
    changed = np.abs(damaged.astype(np.int16) - image.astype(np.int16)).max(axis=2) >= 15
    return damaged, (strength >= 0.25) & changed, strength == 0


def scores(found: np.ndarray, damaged: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """(recall of damaged pixels, false alarms as a share of clean pixels) of a found mask."""
    marked = found > 0
    return float(marked[damaged].mean()), float(marked[clean].mean())
