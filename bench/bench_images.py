"""Image file speed: open_image and save_image against plain Pillow doing the same decode/encode,
so the ratio is the cost of our checks and conversions. Prints `name: value unit (target ...)`."""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sd_studio.document.io.images import open_image, save_image  # noqa: E402

WIDTH, HEIGHT = (int(v) for v in os.environ.get("BENCH_IMAGES_SIZE", "3000x2000").split("x"))
REPEATS = 3


def best_pair(ours, base, repeats: int = REPEATS) -> tuple[float, float]:
    """The fastest of `repeats` runs of each, in seconds, run alternately so that load from other
    processes on the machine falls on both sides alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((ours, times[0]), (base, times[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def photo_like() -> np.ndarray:
    """Smooth gradients with mild noise: compresses like a photo, not like random bytes."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    rgb = np.stack([xx / WIDTH * 255, yy / HEIGHT * 255, (xx + yy) / (WIDTH + HEIGHT) * 255], axis=-1)
    rgb += np.random.default_rng(0).normal(0, 6, rgb.shape).astype(np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def pillow_rgba(path: Path) -> np.ndarray:
    """The baseline: Pillow's decode and RGBA conversion, nothing else."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"))


def main() -> None:
    """Time reading and writing a photo-sized image in each common format."""
    rgb = photo_like()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    mp = WIDTH * HEIGHT / 1e6
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        cases = {
            "jpeg": lambda p: Image.fromarray(rgb).save(p, "JPEG", quality=92),
            "png": lambda p: Image.fromarray(rgb).save(p, "PNG", compress_level=1),
            "jpeg_srgb_icc": lambda p: Image.fromarray(rgb).save(p, "JPEG", quality=92, icc_profile=srgb),
        }
        for name, write in cases.items():
            path = folder / f"{name}.{'png' if name == 'png' else 'jpg'}"
            write(path)
            ours, base = best_pair(lambda: open_image(path), lambda: pillow_rgba(path))
            print(f"open_{name}_{mp:.0f}mp: {ours * 1000:.0f} ms, {ours / base:.2f}x Pillow's decode "
                  f"({base * 1000:.0f} ms) (target <= 1.5x)", flush=True)

        def pillow_save_png() -> None:
            buffer = io.BytesIO()
            Image.fromarray(rgba).save(buffer, "PNG")
            (folder / "base.png").write_bytes(buffer.getvalue())

        # PNG at Pillow's default compression is slow on photos; one run each keeps this short
        ours, base = best_pair(
            lambda: save_image(folder / "ours.png", rgba, parameters="a prompt\nSteps: 20, Sampler: Euler, Seed: 1"),
            pillow_save_png, 1)
        print(f"save_png_{mp:.0f}mp: {ours * 1000:.0f} ms, {ours / base:.2f}x Pillow's save ({base * 1000:.0f} ms) "
              "(target <= 1.2x; atomic write and fsync included)", flush=True)
        ours, base = best_pair(
            lambda: save_image(folder / "ours.jpg", rgba, quality=92),
            lambda: Image.fromarray(rgb).save(folder / "base.jpg", "JPEG", quality=92, subsampling=0), 5)
        print(f"save_jpeg_{mp:.0f}mp: {ours * 1000:.0f} ms, {ours / base:.2f}x Pillow's save ({base * 1000:.0f} ms) "
              "(target <= 1.3x; atomic write and fsync included)", flush=True)


if __name__ == "__main__":
    main()
