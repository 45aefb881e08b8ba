"""Brush speed: the same 200-dab stroke on an 8192x8192 document and on a 1024x1024 one.

A dab must cost what it covers, never what the document holds, so the ratio should stay near 1.
Prints `name: value unit (target ...)` lines.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sd_studio.document.brush import Brush, Stroke  # noqa: E402
from sd_studio.document.document import Document  # noqa: E402

REPEATS = 9
BRUSH = Brush(size=40, hardness=0.7, opacity=0.8, spacing=0.15, color=(200, 30, 30))


def path() -> list[tuple[float, float, float]]:
    """A circle's arc inside the first 1024 x 1024 pixels, sampled every 2 px, long enough for 200 dabs."""
    step = BRUSH.size * BRUSH.spacing
    length = 199 * step + 1.0
    radius = 400.0
    points = []
    for i in range(int(length / 2) + 2):
        a = min(i * 2, length) / radius
        points.append((512 + radius * math.cos(a), 512 + radius * math.sin(a), 1.0))
    return points


def one_stroke(doc: Document, points) -> tuple[float, int]:
    """Seconds for a whole stroke (dabs, notifications, finish), and how many dabs it laid."""
    stroke = Stroke(doc, BRUSH, doc.active)
    dabs = 0
    original = stroke._dab

    def counted(x, y, p):
        nonlocal dabs
        dabs += 1
        return original(x, y, p)

    stroke._dab = counted
    start = time.perf_counter()
    for x, y, p in points:
        stroke.add_point(x, y, p)
    stroke.finish()
    return time.perf_counter() - start, dabs


def main() -> None:
    """Time both sizes alternately and print the best of each and their ratio."""
    points = path()
    big = Document.new(8192, 8192, (255, 255, 255, 255))
    small = Document.new(1024, 1024, (255, 255, 255, 255))
    best = {"big": math.inf, "small": math.inf}
    dabs = 0
    for _ in range(REPEATS):
        for name, doc in (("small", small), ("big", big)):
            seconds, dabs = one_stroke(doc, points)
            best[name] = min(best[name], seconds)
            doc.undo()
    ratio = best["big"] / best["small"]
    print(f"stroke_{dabs}_dabs_8192: {best['big'] * 1000:.1f} ms (best of {REPEATS})")
    print(f"stroke_{dabs}_dabs_1024: {best['small'] * 1000:.1f} ms (best of {REPEATS})")
    print(f"stroke_200_dabs_8192_vs_1024: {ratio:.2f} ratio (target <= 1.3; {dabs} dabs of {BRUSH.size:g} px)")


if __name__ == "__main__":
    main()
