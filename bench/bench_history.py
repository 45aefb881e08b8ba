"""History memory: 100 strokes on an 8192x8192 layer, each covering about 1% of its pixels.

Undo keeps only the tiles a stroke touched (before and after, shared between entries), so the
history's bytes should stay a small multiple of the touched tiles' bytes; keeping a full copy of
the layer per stroke would need 25 GiB. Prints `name: value unit (target ...)` lines.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sd_studio.document.brush import Brush, Stroke  # noqa: E402
from sd_studio.document.document import Document  # noqa: E402
from sd_studio.document.surface import TILE  # noqa: E402

SIDE = 8192
STROKES = 100
BRUSH = Brush(size=96, hardness=0.8, opacity=1.0, spacing=0.25, color=(20, 90, 200))
LENGTH = 7000  # 96 px x 7000 px is about 1% of 8192 x 8192


def main() -> None:
    """Paint the strokes, then compare the history's bytes with the bytes of the tiles touched."""
    doc = Document(SIDE, SIDE, history_budget=8 << 30)
    doc.layers.append(Document.new(SIDE, SIDE, (250, 250, 250, 255)).layers[0])
    doc.active = doc.layers[0]
    tile_bytes = TILE * TILE * 4
    rng = random.Random(1)
    touched_tiles = 0
    covered = 0
    start = time.perf_counter()
    for _ in range(STROKES):
        y = rng.uniform(100, SIDE - 100)
        x0 = rng.uniform(50, SIDE - LENGTH - 50)
        stroke = Stroke(doc, BRUSH, doc.active)
        stroke.add_point(x0, y)
        stroke.add_point(x0 + LENGTH, y + rng.uniform(-50, 50))
        command = stroke.finish()
        touched_tiles += len(command.after)
        covered += BRUSH.size * LENGTH
    seconds = time.perf_counter() - start
    history = doc.history.nbytes
    touched = touched_tiles * tile_bytes
    full_copy = STROKES * SIDE * SIDE * 4
    print(f"history_strokes: {STROKES} strokes in {seconds:.1f} s, each ~{covered / STROKES / SIDE**2:.1%} of the layer's pixels")
    print(f"history_bytes: {history / 2**20:.0f} MiB (touched tiles {touched / 2**20:.0f} MiB; a full copy per stroke {full_copy / 2**30:.1f} GiB)")
    print(f"history_bytes_vs_touched_tiles: {history / touched:.2f} ratio (target <= 3)")
    print(f"history_bytes_vs_full_copies: {history / full_copy:.4f} ratio (lower is better)")


if __name__ == "__main__":
    main()
