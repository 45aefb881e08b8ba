"""A small hole must cost the same in a 12-megapixel photo as in a 512 x 512 image.

Times plan + crop + fill + paste-back + compose (into the image's region, in place, as the editor's
layer write does) for a 100 x 80 hole in a 4000 x 3000 and in a 512 x 512 image, twice: with the
classical fill at the region's own size, and with a pass-through "model" that scales the crop to
512 and back (the region handling a diffusion run pays, minus the network). A third line times the
whole classical generate() call (validation included), without the final full-image composite.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sd_studio.document.geometry import Extent  # noqa: E402
from sd_studio.engine.classical import fill  # noqa: E402
from sd_studio.engine.region import compose, crop_for_model, paste_back, plan_region  # noqa: E402

HOLE = (100, 80)


def make_case(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGBA photo-like gradient with noise, and a mask with one 100 x 80 hole near the middle."""
    rng = np.random.default_rng(0)
    image = np.empty((height, width, 4), np.uint8)
    image[..., 0] = (np.arange(width, dtype=np.uint32) * 255 // width).astype(np.uint8)[None, :]
    image[..., 1] = (np.arange(height, dtype=np.uint32) * 255 // height).astype(np.uint8)[:, None]
    image[..., 2] = rng.integers(0, 256, (height, width), np.uint8)
    image[..., 3] = 255
    mask = np.zeros((height, width), np.uint8)
    x, y = width // 2 - HOLE[0] // 2, height // 2 - HOLE[1] // 2
    mask[y:y + HOLE[1], x:x + HOLE[0]] = 255
    return image, mask


def one_pass(image: np.ndarray, mask: np.ndarray, classical: bool) -> None:
    """Plan, crop, fill (or pass through), paste back and compose in place."""
    plan = plan_region(Extent(image.shape[1], image.shape[0]), mask, padding=32, resolution=512)
    if classical:
        plan = plan.unscaled()
    rgb, small_mask = crop_for_model(image, mask, plan)
    generated = fill(rgb, small_mask) if classical else rgb
    rgba = paste_back(image, generated, mask, plan, feather=4)
    compose(image[plan.bounds.slices], rgba)


def through_generate(image: np.ndarray, mask: np.ndarray, _classical: bool = True) -> None:
    """The classical inpaint request through generate(), its patch composed in place."""
    from sd_studio.engine.generate import generate
    from sd_studio.engine.request import GenerationRequest

    result = generate(GenerationRequest("inpaint", image=image, mask=mask, seed=1))
    compose(image[result.region.slices], result.images[0])


def best_times(big, small, classical: bool, run=one_pass, repeats: int = 40) -> tuple[float, float]:
    """The fastest of `repeats` passes for each case, in seconds, alternating the two so load drift hits both alike."""
    run(*big, classical)
    run(*small, classical)
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for i, case in enumerate((big, small)):
            start = time.perf_counter()
            run(*case, classical)
            best[i] = min(best[i], time.perf_counter() - start)
    return best[0], best[1]


def main() -> None:
    """Print the large/small time ratios for the classical, pass-through and generate() paths."""
    big = make_case(4000, 3000)
    small = make_case(512, 512)
    runs = (("", True, one_pass), ("_passthrough_512", False, one_pass), ("_generate", True, through_generate))
    for label, classical, run in runs:
        t_big, t_small = best_times(big, small, classical, run)
        print(
            f"hole_100x80_in_4000x3000_vs_512x512{label}: {t_big / t_small:.2f} ratio (target <= 1.3) "
            f"[{t_big * 1000:.1f} ms vs {t_small * 1000:.1f} ms]",
            flush=True,
        )


if __name__ == "__main__":
    main()
