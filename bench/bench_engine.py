"""Engine overheads: the live preview's cost per denoising step, and `sd-studio inpaint` against a plain
diffusers script doing the same 512 x 512 job, as whole processes. Prints `name: value unit (target ...)` lines.

The model is random-weight and small (built from config like the test models, at 512 x 512 so a
step costs real work) because this machine has two CPU cores and no network; the overheads measured here
(previews, region planning, paste-back, start-up) do not depend on the weights.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "engine"))

SIDE = int(os.environ.get("BENCH_ENGINE_SIDE", 512))
STEPS = int(os.environ.get("BENCH_ENGINE_STEPS", 3))
REPEATS = 2

PLAIN_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    from PIL import Image
    from diffusers import StableDiffusionInpaintPipeline

    folder, image_path, mask_path, out, steps = sys.argv[1:6]
    pipe = StableDiffusionInpaintPipeline.from_pretrained(folder, use_safetensors=True, safety_checker=None,
                                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    image = Image.open(image_path).convert("RGB")
    mask = Image.open(mask_path).convert("L")
    result = pipe("a red fox", image=image, mask_image=mask, num_inference_steps=int(steps), guidance_scale=7.0,
                  strength=1.0, height=image.height, width=image.width,
                  generator=torch.Generator("cpu").manual_seed(1)).images[0]
    result.save(out)
    """
)


def build_model(folder: Path) -> Path:
    """A random SD1-style model (the test models' 32/64-channel UNet) at native size SIDE, saved as a diffusers folder."""
    from conftest import tiny_components  # the test models' builder
    from diffusers import StableDiffusionPipeline

    components = tiny_components()
    components["unet"].register_to_config(sample_size=SIDE // 8)
    StableDiffusionPipeline(**components, requires_safety_checker=False).save_pretrained(folder, safe_serialization=True)
    return folder


def bench_preview(folder: Path) -> None:
    """Preview cost per step against the step itself, measured inside one real run."""
    from sd_studio.engine.diffusion import run_diffusion
    from sd_studio.engine.models.loading import load_model
    from sd_studio.engine.preview import latents_to_rgb

    model = load_model(str(folder), device="cpu")
    stamps: list[float] = []
    latents_seen = []

    def progress(p):
        if p.phase == "denoising":
            stamps.append(time.perf_counter())

    run_args = dict(image=None, mask=None, prompt="a red fox", negative_prompt="", steps=STEPS, guidance=7.0,
                    strength=1.0, seeds=[1], scheduler="Euler a", width=SIDE, height=SIDE)
    run_diffusion(model, "txt2img", **{**run_args, "steps": 1})  # warm-up
    run_diffusion(model, "txt2img", progress=progress, **run_args)
    step_s = float(np.median(np.diff(stamps))) if len(stamps) > 1 else float("nan")

    import torch

    latents = torch.randn((1, 4, SIDE // 8, SIDE // 8))
    latents_seen.append(latents)
    reps = 50
    start = time.perf_counter()
    for _ in range(reps):
        latents_to_rgb(latents, "sd1")
    preview_s = (time.perf_counter() - start) / reps
    print(
        f"preview_per_step_vs_step: {preview_s / step_s:.4f} ratio (target <= 0.02; preview {preview_s * 1000:.2f} ms, "
        f"step {step_s * 1000:.0f} ms, {SIDE}x{SIDE} on CPU, random 32/64-channel UNet)",
        flush=True,
    )


def _timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one whole process; CPU time is what a loaded shared machine distorts least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"bench_engine: {' '.join(cmd[:4])} failed:\n{result.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def bench_cli_vs_plain(folder: Path, work: Path) -> None:
    """`sd-studio inpaint` against a plain diffusers script: both start, load, inpaint 512 x 512 and save a PNG."""
    from PIL import Image

    y, x = np.mgrid[0:SIDE, 0:SIDE]
    image = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    mask = np.zeros((SIDE, SIDE), np.uint8)
    mask[SIDE // 8 : SIDE - SIDE // 8, SIDE // 8 : SIDE - SIDE // 8] = 255  # bbox + padding = the whole image
    Image.fromarray(image).save(work / "image.png")
    Image.fromarray(mask).save(work / "mask.png")
    (work / "plain.py").write_text(PLAIN_SCRIPT)
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), XDG_DATA_HOME=str(work / "data"))
    ours_cmd = [sys.executable, "-m", "sd_studio", "inpaint", str(work / "image.png"), "--mask", str(work / "mask.png"),
                "--model", str(folder), "--prompt", "a red fox", "--steps", str(STEPS), "--seed", "1",
                "--strength", "1", "--padding", "64", "--resolution", str(SIDE), "--device", "cpu", "--quiet",
                "-o", str(work / "ours.png")]
    plain_cmd = [sys.executable, str(work / "plain.py"), str(folder), str(work / "image.png"), str(work / "mask.png"),
                 str(work / "plain.png"), str(STEPS)]
    ours, plain = [], []
    for _ in range(REPEATS):  # interleaved, so load on the shared machine hits both alike
        plain.append(_timed(plain_cmd, env))
        ours.append(_timed(ours_cmd, env))
    ours_cpu, plain_cpu = min(c for _, c in ours), min(c for _, c in plain)
    ours_wall, plain_wall = min(w for w, _ in ours), min(w for w, _ in plain)
    print(
        f"cli_inpaint_vs_plain_diffusers: {ours_cpu / plain_cpu:.3f} ratio (target <= 1.05; CPU time of whole "
        f"processes, best of {REPEATS}: sd-studio {ours_cpu:.2f} s, plain script {plain_cpu:.2f} s; wall "
        f"{ours_wall:.2f} s vs {plain_wall:.2f} s; {SIDE}x{SIDE}, {STEPS} steps, CPU)",
        flush=True,
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = build_model(work / "bench-model")
        bench_preview(folder)
        bench_cli_vs_plain(folder, work)


if __name__ == "__main__":
    main()
