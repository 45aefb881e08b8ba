"""Finding scratches and dust on scanned photos, without weights: a proposed mask the user checks and heals.

How it tells damage from the photo:
1. The background is the photo's median over a small window (`WINDOW` px): a line up to about
   `WINDOW // 2` px wide or a speck smaller than half the window vanishes from it, while edges,
   gradients and larger shapes stay. The residual (photo minus background) is where thin bright
   or dark things are, of any direction, straight or curved.
2. The residual is measured against the photo's noise (a robust estimate over the whole image) and
   against local busyness (the mean residual nearby), so film grain and fine texture raise the bar
   where they are and nowhere else. Hysteresis keeps the faint ends of a scratch that is strong
   somewhere.
3. Each connected mark is then judged by shape and surroundings: long and thin (a scratch or a
   hair), or small and compact (a dust speck), and isolated — text, foliage and other busy detail
   have many marks close together, damage does not.
Sensitivity (0..1) moves every threshold together: higher finds fainter, shorter, busier damage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sd_studio.engine.request import Progress
from sd_studio.errors import Cancelled, GenerationError

WINDOW = 13
"""Side of the median window (px): lines up to about 6 px wide and specks up to about 9 px across are found."""

DEFAULT_SENSITIVITY = 0.5
"""The sensitivity the dialog and the command line start from."""

LINE_CROWD_WINDOW = 61
"""Side of the window (px) over which line pixels are counted to tell a lone scratch from a lattice."""

BUSY_WINDOW = 41
"""Side of the window (px) over which marks are counted to tell isolated damage from busy detail."""


@dataclass(frozen=True)
class DamageThresholds:
    """The thresholds one sensitivity stands for (see thresholds())."""

    contrast: float
    """A mark's residual must exceed this many noise sigmas (plus the local busyness)."""
    min_length: float
    """A line shorter than this (px) is not a scratch (it may still be a speck)."""
    max_width: float
    """A line thicker than this on average (px) is a photo feature, not a scratch."""
    max_speck: int
    """The largest speck (px²) taken for dust."""
    max_busy: float
    """The largest share of marked pixels around a speck (its own included) for it to count as dust."""
    line: float
    """How far (in noise sigmas) the residual along a line must exceed the average over all directions."""
    line_floor: float
    """... and at least this much (grey levels): a clean, noiseless scan still has faint detail."""
    max_line_crowd: float
    """The largest share of line pixels around a line pixel for it to count as a lone scratch."""


def thresholds(sensitivity: float) -> DamageThresholds:
    """The thresholds for a sensitivity from 0 (only obvious damage) to 1 (faint, short, busy)."""
    s = float(sensitivity)
    if not 0.0 <= s <= 1.0:
        raise GenerationError(f"The sensitivity must be from 0 to 1, not {sensitivity!r}.")

    def lerp(a, b):
        return a + (b - a) * s

    return DamageThresholds(contrast=lerp(9.0, 3.5), min_length=lerp(40.0, 14.0), max_width=lerp(6.0, 8.0),
                            max_speck=int(lerp(24, 90)), max_busy=lerp(0.04, 0.10), line=lerp(4.0, 1.5),
                            line_floor=lerp(38.0, 12.0), max_line_crowd=lerp(0.08, 0.16))


def find_damage(image: np.ndarray, sensitivity: float = DEFAULT_SENSITIVITY, *, progress=None,
                cancel=None) -> np.ndarray:
    """The proposed damage mask of an (H, W, 3|4) uint8 photo: (H, W) uint8, 255 = scratch or dust."""
    import cv2

    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise GenerationError("The photo must be an (H, W, 3 or 4) uint8 array.")
    limits = thresholds(sensitivity)
    height, width = image.shape[:2]
    if min(height, width) < WINDOW:
        return np.zeros((height, width), np.uint8)

    def step(i: int, message: str) -> None:
        if cancel is not None and cancel():
            raise Cancelled("Finding damage cancelled; nothing was changed.")
        if progress is not None:
            progress(Progress("finding damage", i, 4, message=message))

    step(0, "residual")
    gray = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
    background = cv2.medianBlur(gray, WINDOW)
    residual = cv2.absdiff(gray, background)
    del gray
    sigma = _noise_sigma(residual)
    # A scratch lies on one background: the photo's own thin details sit on its edges, where the
    # background changes across them. Marks weaker than the background's local range are left alone.
    kernel = np.ones((7, 7), np.uint8)
    edges = cv2.subtract(cv2.dilate(background, kernel), cv2.erode(background, kernel))
    del background
    step(1, "lines")
    bar = max(limits.contrast * sigma, limits.line_floor)
    lines = _line_response(residual, sigma, max(limits.line, limits.line_floor / sigma))
    # The response peaks on a line's centre; its full width (and the half-resolution step) lies within 2 px.
    lines = cv2.dilate(lines, np.ones((5, 5), np.uint8))
    step(2, "marks")
    # 0/1 uint8 masks throughout, combined with OpenCV's (threaded) operations
    plain = cv2.compare(residual, edges, cv2.CMP_GT) // 255
    del edges
    weak = cv2.threshold(residual, min(255.0, round(0.5 * bar)), 1, cv2.THRESH_BINARY)[1]
    strong = cv2.bitwise_and(cv2.threshold(residual, min(255.0, round(bar)), 1, cv2.THRESH_BINARY)[1], plain)
    line_pixels = cv2.bitwise_and(cv2.bitwise_and(lines, weak), plain)
    del lines, plain
    # A scratch runs alone; a lattice, fence or hatching is many lines close together.
    # (box filters of 0/255 masks give the share x 255 in uint8: a quarter of the work of float32)
    crowd = cv2.blur(cv2.multiply(line_pixels, 255), (LINE_CROWD_WINDOW, LINE_CROWD_WINDOW))
    line_pixels[crowd > 255 * limits.max_line_crowd] = 0
    del crowd
    line_pixels = _long_and_thin(line_pixels, limits)
    # Specks: small strong marks with little else marked around them.
    _, labels, stats, centroids = cv2.connectedComponentsWithStats(strong, connectivity=8, ltype=cv2.CV_32S)
    del strong
    # Texture shows as many faint marks around a strong one; dust sits on a quiet background.
    density = cv2.blur(cv2.multiply(weak, 255), (BUSY_WINDOW, BUSY_WINDOW))
    del weak
    step(3, "shapes")
    area = stats[:, cv2.CC_STAT_AREA]
    side = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    speck = (area <= limits.max_speck) & (side <= 2 * np.sqrt(limits.max_speck))
    speck[0] = False
    candidates = np.flatnonzero(speck)
    cy = np.clip(np.rint(centroids[candidates, 1]).astype(np.intp), 0, height - 1)
    cx = np.clip(np.rint(centroids[candidates, 0]).astype(np.intp), 0, width - 1)
    speck[candidates] = density[cy, cx] <= 255 * limits.max_busy
    del density
    mask = speck.view(np.uint8)[labels]
    del labels
    cv2.max(mask, line_pixels, dst=mask)
    del line_pixels
    mask = _drop_short(mask, limits.min_length)
    # The soft fringe of a mark (anti-aliased scan edges) is damage too where it stands out of the noise.
    fringe = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    fringe[residual <= 0.25 * bar] = 0
    cv2.max(mask, fringe, dst=mask)
    step(4, "done")
    return cv2.multiply(mask, 255)


ANGLES = 24
"""Orientations the line detector tries (every 7.5 degrees: a 1 px line between two still lies under every tap)."""

LINE_LENGTH = 15
"""Length (px, at half resolution) over which a line must run straight enough to count as one."""


def _line_response(residual: np.ndarray, sigma: float, threshold: float) -> np.ndarray:
    """0/1 uint8: where more residual lies along the best direction than on average over all directions,
    by more than `threshold` noise sigmas.

    Along a scratch the mean residual is its contrast whichever way it runs; across it, or over texture,
    specks and text, every direction sees about the same. Computed at half resolution (a 1 px line
    survives area averaging at half its contrast) as sums of shifted copies along each direction.
    """
    import cv2

    h, w = residual.shape
    # 2 x 2 maximum, not mean: a 1 px line keeps its full contrast whichever way it crosses the blocks.
    small = np.ascontiguousarray(cv2.dilate(residual, np.ones((2, 2), np.uint8), anchor=(0, 0))[::2, ::2])
    sh, sw = small.shape
    r = LINE_LENGTH // 2
    padded = cv2.copyMakeBorder(small, r, r, r, r, cv2.BORDER_REFLECT).astype(np.uint16)
    best = np.zeros((sh, sw), np.uint16)
    total = np.zeros((sh, sw), np.float32)
    along = np.empty((sh, sw), np.uint16)
    for offsets in _line_offsets():
        along.fill(0)
        for dy, dx in offsets:
            cv2.add(along, padded[r + dy:r + dy + sh, r + dx:r + dx + sw], dst=along)
        cv2.max(best, along, dst=best)
        cv2.add(total, along, dst=total, dtype=cv2.CV_32F)
    # best - mean > threshold * sigma, with both sums over LINE_LENGTH taps
    score = cv2.addWeighted(best, 1.0, total, -1.0 / ANGLES, 0.0, dtype=cv2.CV_32F)
    found = cv2.threshold(score, threshold * sigma * LINE_LENGTH, 1, cv2.THRESH_BINARY)[1].astype(np.uint8)
    return cv2.resize(found, (w, h), interpolation=cv2.INTER_NEAREST)


_offsets: list[list[tuple[int, int]]] = []


def _line_offsets() -> list[list[tuple[int, int]]]:
    """For each of ANGLES orientations, the LINE_LENGTH (dy, dx) steps of a 1-px line through the centre."""
    if not _offsets:
        r = LINE_LENGTH // 2
        for i in range(ANGLES):
            angle = np.pi * i / ANGLES
            steps = [(round(t * np.sin(angle)), round(t * np.cos(angle))) for t in range(-r, r + 1)]
            _offsets.append(steps)
    return _offsets


def _long_and_thin(marks: np.ndarray, limits: DamageThresholds) -> np.ndarray:
    """The 0/1 marks that run long and thin (scratches, hairs); letters, blobs and short strokes are dropped."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(marks, connectivity=8, ltype=cv2.CV_32S)
    if count <= 1:
        return marks
    w = stats[:, cv2.CC_STAT_WIDTH].astype(np.float64)
    h = stats[:, cv2.CC_STAT_HEIGHT].astype(np.float64)
    length = np.hypot(w, h)
    keep = (length >= limits.min_length) & (stats[:, cv2.CC_STAT_AREA] / np.maximum(length, 1.0) <= limits.max_width)
    keep[0] = False
    return keep.view(np.uint8)[labels]


def _drop_short(mask: np.ndarray, min_length: float) -> np.ndarray:
    """The 0/1 mask without marks whose extent is under a third of min_length (stray bits of texture)."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
    if count <= 1:
        return mask
    side = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    area = stats[:, cv2.CC_STAT_AREA]
    keep = (side >= min_length / 3) | (area >= 3)
    keep[0] = False
    return keep.view(np.uint8)[labels] if not keep[1:].all() else mask


def _noise_sigma(residual: np.ndarray) -> float:
    """A robust noise level of the residual (1.4826 x its median absolute value, on a sample), at least 1."""
    sample = residual[::3, ::3]
    median = float(np.median(sample))
    if median == 0.0:
        # Clean synthetic images: fall back to the mean, so flat areas still have some noise floor.
        median = float(sample.mean())
    return max(1.0, 1.4826 * median)


def heal_mask(mask: np.ndarray, grow: int = 1) -> np.ndarray:
    """The proposed mask grown by `grow` px: a scratch's soft edges are healed along with it."""
    from sd_studio.document.mask import grow as grow_mask

    return grow_mask(mask, grow)
