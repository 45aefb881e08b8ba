"""Compositing speed: flatten against Pillow's alpha_composite chain, and a dab's re-composite
against a full one. Prints `name: value unit (target ...)` lines."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sd_studio.document.composite import flatten  # noqa: E402
from sd_studio.document.document import Document  # noqa: E402
from sd_studio.document.geometry import Bounds, Point  # noqa: E402
from sd_studio.document.layer import Layer  # noqa: E402
from sd_studio.document.surface import Surface  # noqa: E402

SIDE = int(os.environ.get("BENCH_COMPOSITE_SIDE", 4096))
LAYERS = int(os.environ.get("BENCH_COMPOSITE_LAYERS", 20))
REPEATS = 3


def make_pixels(rng: np.random.Generator, side: int, count: int) -> list[np.ndarray]:
    """count different straight-RGBA images with varied alpha, cheaply derived from one random one."""
    seed = rng.integers(0, 256, (side, side, 4), dtype=np.uint8)
    out = []
    for i in range(count):
        px = np.roll(seed, 97 * i, axis=1) ^ np.uint8(37 * i % 256)
        px[px[..., 3] == 0] = 0
        out.append(px)
    return out


def pillow_chain(arrays: list[np.ndarray], opacities: list[float]) -> np.ndarray:
    """The baseline: apply each layer's opacity to its alpha, then Image.alpha_composite in turn."""
    from PIL import Image

    result = None
    for pixels, opacity in zip(arrays, opacities):
        image = Image.fromarray(pixels, "RGBA")
        if opacity < 1:
            alpha = image.getchannel("A").point(lambda v, o=opacity: int(v * o + 0.5))
            image = image.copy()
            image.putalpha(alpha)
        result = image if result is None else Image.alpha_composite(result, image)
    return np.asarray(result)


def best_of(fn, repeats: int = REPEATS) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def best_of_pair(ours, theirs, repeats: int = REPEATS) -> tuple[tuple[float, float], tuple[float, float]]:
    """Best (wall, CPU) seconds of each, taken in alternation so both see the same machine load."""
    best = [[float("inf"), float("inf")], [float("inf"), float("inf")]]
    for _ in range(repeats):
        for i, fn in enumerate((ours, theirs)):
            start, cpu = time.perf_counter(), time.process_time()
            fn()
            best[i][0] = min(best[i][0], time.perf_counter() - start)
            best[i][1] = min(best[i][1], time.process_time() - cpu)
    return (best[0][0], best[0][1]), (best[1][0], best[1][1])


def bench_flatten(arrays: list[np.ndarray], opacities: list[float]) -> list[Layer]:
    layers = []
    for pixels, opacity in zip(arrays, opacities):
        surface = Surface(4)
        surface.write(0, 0, pixels)
        layers.append(Layer(surface=surface, opacity=opacity))
    bounds = Bounds(0, 0, SIDE, SIDE)
    (ours_s, ours_cpu), (pil_s, pil_cpu) = best_of_pair(
        lambda: flatten(layers, bounds), lambda: pillow_chain(arrays, opacities)
    )
    size = f"{LAYERS}x{SIDE}"
    load = os.getloadavg()[0]
    print(
        f"flatten_{size}_vs_pillow: {ours_s / pil_s:.3f} ratio (target <= 1.0; "
        f"flatten {ours_s:.3f} s, Pillow alpha_composite chain {pil_s:.3f} s, load average {load:.1f} "
        f"on {os.cpu_count()} CPUs)",
        flush=True,
    )
    print(
        f"flatten_{size}_cpu_vs_pillow: {ours_cpu / pil_cpu:.3f} ratio (no target; CPU seconds summed over "
        f"threads: flatten {ours_cpu:.3f}, Pillow {pil_cpu:.3f})",
        flush=True,
    )
    return layers


def bench_dab(layers: list[Layer]) -> None:
    doc = Document(SIDE, SIDE)
    doc.layers.extend(layers)
    doc.active = layers[len(layers) // 2]

    def full() -> np.ndarray:
        doc._cache.invalidate()
        return doc.composite()

    full_s, _ = best_of(full)
    rng = np.random.default_rng(1)
    radius = 40

    def dab() -> np.ndarray:
        # A round dab 80 px across, painted where tiles meet, as a brush stroke's dab would land.
        cx, cy = (int(v) for v in rng.integers(radius, SIDE - radius, 2))
        area = Bounds(cx - radius, cy - radius, 2 * radius, 2 * radius)
        layer = doc.active

        def paint(tile, trows, tcols, rows, cols):
            yy, xx = np.mgrid[rows, cols]
            inside = (yy - radius) ** 2 + (xx - radius) ** 2 < radius * radius
            tile[trows, tcols][inside] = (255, 40, 40, 255)

        layer.surface.modify(area, paint)
        doc.notify_pixels(layer, area)
        start = time.perf_counter()
        doc.composite()
        return time.perf_counter() - start

    dab_s = min(dab() for _ in range(5))
    print(
        f"recomposite_after_dab_vs_full: {dab_s / full_s:.4f} ratio (target <= 0.02; "
        f"dab {dab_s * 1000:.1f} ms, full {full_s:.3f} s, {LAYERS} layers {SIDE}x{SIDE})",
        flush=True,
    )


def main() -> None:
    rng = np.random.default_rng(0)
    arrays = make_pixels(rng, SIDE, LAYERS)
    opacities = [float(v) for v in rng.uniform(0.3, 0.95, LAYERS)]
    opacities[0] = 1.0
    layers = bench_flatten(arrays, opacities)
    del arrays
    bench_dab(layers)


if __name__ == "__main__":
    main()
