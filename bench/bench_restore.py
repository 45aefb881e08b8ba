"""Old photos restored: damage detection quality and speed, restore quality and cost, and peak memory of
upscale and expand as the photo grows.

- Detection: five public-domain photos (scikit-image) enlarged 3x like scans, with synthetic scratches
  (1-3 px, straight and curved, bright and dark) and dust drawn on them (tests/engine/damage_synth.py):
  recall of damaged pixels and false alarms as a share of clean pixels (targets >= 0.9 and <= 1%).
- Speed: find-damage on a 24-megapixel scan, beside OpenCV's 13 x 13 median of the same scan (the
  detector's first step) as the baseline (target <= 3 s).
- Restore (classical): PSNR against the clean photo, restored minus damaged (target >= 6 dB); and the
  whole `sd-studio restore` process / `sd-studio find-damage` + `sd-studio inpaint` (classical) on
  the same mask, whole processes (target <= 1.5).
- Peak resident memory (each job in its own child process): upscale x4 of a 1024^2 photo / of a 512^2
  photo with a tiny random upscaler (Real-ESRGAN Compact architecture, random weights; target <= 2), and
  expand by 256 px on each side of a 2048^2 / a 512^2 photo, pre-fill only and with diffusion (a tiny
  random SD model of the real 8x VAE and 512 px native size, 2 steps; target <= 1.5).
Random weights of small shapes give honest memory ratios (the tile bounds them) but not model speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "engine"))

from damage_synth import damage, scan_of, scores

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")


def detection() -> None:
    """Recall and false alarms over the five photos at the default sensitivity."""
    from sd_studio.engine.damage import DEFAULT_SENSITIVITY, find_damage

    recalls, alarms = [], []
    for i, name in enumerate(PHOTOS):
        damaged, bad, clean = damage(scan_of(name), seed=i)
        recall, false_alarms = scores(find_damage(damaged, DEFAULT_SENSITIVITY), bad, clean)
        recalls.append(recall)
        alarms.append(false_alarms)
        print(f"damage recall {name}: {recall:.3f} (false alarms {false_alarms:.2%})", flush=True)
    print(f"damage recall: {np.mean(recalls):.3f} mean, {min(recalls):.3f} worst (target >= 0.9)")
    print(f"damage false alarms: {np.mean(alarms):.2%} mean, {max(alarms):.2%} worst of clean pixels (target <= 1%)")


def speed() -> None:
    """find-damage on a 24-megapixel scan, beside a median blur of it."""
    import cv2

    from sd_studio.engine.damage import WINDOW, find_damage

    photo = cv2.resize(scan_of("chelsea", scale=1), (6000, 4000), interpolation=cv2.INTER_CUBIC)
    damaged, _, _ = damage(photo, seed=7, lines=30, curves=10, dust=2000)
    find_damage(damaged[:512, :512])  # warm-up: imports and OpenCV's thread pool
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        find_damage(damaged)
        runs.append(time.perf_counter() - start)
    gray = cv2.cvtColor(damaged, cv2.COLOR_RGB2GRAY)
    start = time.perf_counter()
    cv2.medianBlur(gray, WINDOW)
    median = time.perf_counter() - start
    print(f"find-damage 24 MP: {min(runs):.2f} s (target <= 3 s; baseline cv2.medianBlur {WINDOW}x{WINDOW} of it: "
          f"{median:.2f} s, ratio {min(runs) / median:.1f})")


def restore_quality_and_cost(folder: Path) -> None:
    """PSNR gain of a classical restore, and its whole process against find-damage + inpaint."""
    import cv2

    from sd_studio.document.io import save_image
    from sd_studio.engine.restore.heal import heal, restore_photo

    gains, bounds = [], []
    for i, name in enumerate(PHOTOS):
        clean = scan_of(name)
        damaged, bad, _ = damage(clean, seed=i)
        restored = restore_photo(damaged).composite_onto(damaged)[..., :3]
        gain = _psnr(restored, clean) - _psnr(damaged, clean)
        gains.append(gain)
        # The same fill given the true damage (grown by 1 px): what a perfect detector would reach.
        truth = cv2.dilate(bad.astype(np.uint8) * 255, np.ones((3, 3), np.uint8))
        ideal = heal(damaged, truth).composite_onto(damaged)[..., :3]
        bounds.append(_psnr(ideal, clean) - _psnr(damaged, clean))
        print(f"restore PSNR gain {name}: {gain:.1f} dB ({_psnr(damaged, clean):.1f} -> {_psnr(restored, clean):.1f}; "
              f"with the true mask {bounds[-1]:.1f} dB)", flush=True)
    print(f"restore PSNR gain: {np.mean(gains):.1f} dB mean, {min(gains):.1f} dB worst (target >= 6 dB; "
          f"the same fill on the true mask: {np.mean(bounds):.1f} dB mean)")

    photo = cv2.resize(scan_of("chelsea", scale=1), (3000, 2000), interpolation=cv2.INTER_CUBIC)
    damaged, _, _ = damage(photo, seed=3, lines=20, curves=6, dust=600)
    source = folder / "scan.png"
    save_image(source, np.dstack([damaged, np.full(damaged.shape[:2], 255, np.uint8)]))
    cli = [sys.executable, "-m", "sd_studio"]
    restore = _timed(cli + ["restore", str(source), "-o", str(folder / "restored.png"), "--quiet"])
    find = _timed(cli + ["find-damage", str(source), "-o", str(folder / "mask.png"), "--quiet"])
    fill = _timed(cli + ["inpaint", str(source), "--mask", str(folder / "mask.png"), "-o", str(folder / "filled.png"),
                         "--engine", "classical", "--feather", "0", "--quiet"])
    print(f"restore process / find-damage + inpaint processes (3000 x 2000): {restore / (find + fill):.2f} "
          f"({restore:.1f} s vs {find:.1f} s + {fill:.1f} s; target <= 1.5)")


def memory(folder: Path) -> None:
    """Peak RSS of upscale and expand jobs as the photo grows, each in a child process."""
    import restore_models

    upscaler = restore_models.save("compact", folder)
    _report("upscale x4", "1024^2 / 512^2", _peak("upscale", 1024, str(upscaler)), _peak("upscale", 512, str(upscaler)),
            2.0)
    _report("expand 256 px each side, pre-fill,", "2048^2 / 512^2", _peak("expand", 2048, ""), _peak("expand", 512, ""),
            1.5)
    model = _tiny_sd(folder / "tiny-sd")
    _report("expand 256 px each side with diffusion,", "2048^2 / 512^2", _peak("expand", 2048, str(model)),
            _peak("expand", 512, str(model)), 1.5)


def _report(what: str, sizes: str, large: tuple[float, float], small: tuple[float, float], target: float) -> None:
    """One line: the ratio of peak RSS, with each peak and what the job itself added over the loaded libraries."""
    print(f"{what} peak RSS {sizes}: {large[0] / small[0]:.2f} ({large[0]:.0f} MiB vs {small[0]:.0f} MiB; the job's "
          f"own growth over its libraries {large[1]:.0f} MiB vs {small[1]:.0f} MiB; target <= {target:g})")


_CHILD = r"""
import json, resource, sys
import numpy as np
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
from damage_synth import scan_of
import cv2
job, side, model = sys.argv[1], int(sys.argv[2]), sys.argv[3]
photo = cv2.resize(scan_of("coffee", scale=1), (side, side), interpolation=cv2.INTER_CUBIC)
import torch  # both jobs of a pair import the same libraries, so the ratio is about the photo
import sd_studio.engine.restore.upscale, sd_studio.engine.restore.expand, sd_studio.engine.restore.models
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
before = rss("VmRSS:")
if job == "upscale":
    from sd_studio.engine.restore.models import load_model
    from sd_studio.engine.restore.upscale import UpscaleSettings, upscale
    result = upscale(photo, UpscaleSettings(factor=4, tile=256), model=load_model(model, "upscale"))
    out = result.composite_onto(photo)
else:
    from sd_studio.engine.restore.expand import ExpandSettings, Margins, expand
    settings = ExpandSettings(Margins(256, 256, 256, 256), model=model or None, steps=2, seed=1, device="cpu")
    out = expand(photo, settings).composite_onto(photo)
print(json.dumps({{"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "before_mib": before,
                  "shape": out.shape}}))
"""


def _peak(job: str, side: int, model: str) -> float:
    code = _CHILD.format(root=str(ROOT), tests=str(ROOT / "tests" / "engine"))
    out = subprocess.run([sys.executable, "-c", code, job, str(side), model], capture_output=True, text=True, check=False,
                         cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        raise SystemExit(f"{job} {side}: child failed:\n{out.stderr[-3000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    return figures["peak_mib"], figures["peak_mib"] - figures["before_mib"]


def _tiny_sd(folder: Path) -> Path:
    """A tiny random SD1-style diffusers folder whose native size is 512 px (64 x 64 latents)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("engine_conftest", ROOT / "tests" / "engine" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    conftest.save_tiny_model(folder)
    config = folder / "unet" / "config.json"
    data = json.loads(config.read_text())
    data["sample_size"] = 64
    config.write_text(json.dumps(data))
    return folder


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.stderr[-2000:]}")
    return time.perf_counter() - start


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-9)))


def main() -> None:
    """Print every figure."""
    detection()
    speed()
    with tempfile.TemporaryDirectory() as tmp:
        restore_quality_and_cost(Path(tmp))
        memory(Path(tmp))


if __name__ == "__main__":
    main()
