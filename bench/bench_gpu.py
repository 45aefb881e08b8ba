"""The GPU path: seconds per denoising step of an SD 1.5-size model, ours against a plain diffusers pipeline.

The model is built from the shipped SD 1.5 configs with random weights (speed does not depend on the
weights), in fp16 on CUDA. Both sides share the same components and run txt2img at 512 x 512, 20 steps
of Euler a with CFG (guidance 7): ours through generate() (prompt chunking, live previews, cancel
checks), the plain one through diffusers' StableDiffusionPipeline. Runs are alternated so clock and
thermal drift hit both; a step is the median time between step-end callbacks (the plain side waits for
the GPU in its callback, as ours does when it makes a preview), and the best run is printed.
Without CUDA it prints one line and exits 0, without importing torch when no NVIDIA driver is present.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SIDE = 512
STEPS = 20
GUIDANCE = 7.0
ROUNDS = 3
PROMPT = "a bench on a lawn in the morning light, photograph"


def cuda_unavailable() -> str | None:
    """Why this machine cannot run the benchmark, or None; cheap checks first so a skip takes no time."""
    if not (shutil.which("nvidia-smi") or os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidia0")):
        return "no NVIDIA driver"
    import torch

    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA GPU"
    return None


def build_models():
    """(our LoadedModel, a plain StableDiffusionPipeline) sharing one SD 1.5-size random model on CUDA in fp16."""
    import dataclasses

    import torch
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline

    from bench_cpu import build_sd15

    model = build_sd15()
    for component in model.components.values():
        if hasattr(component, "to") and hasattr(component, "parameters"):
            component.to("cuda", torch.float16)
    c = model.components
    scheduler = EulerAncestralDiscreteScheduler.from_config(c["scheduler"].config)
    ours = dataclasses.replace(model, device="cuda", dtype=torch.float16, components=dict(c, scheduler=scheduler))
    plain = StableDiffusionPipeline(
        vae=c["vae"], text_encoder=c["text_encoder"], tokenizer=c["tokenizer"], unet=c["unet"],
        scheduler=EulerAncestralDiscreteScheduler.from_config(c["scheduler"].config),
        safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False,
    )
    plain.set_progress_bar_config(disable=True)
    return ours, plain


class OneModel:
    """A ModelCache stand-in that hands generate() the model built here."""

    def __init__(self, model) -> None:
        self.model = model

    def get(self, spec, device="auto", precision="auto", progress=None):
        """The model built here, whatever is asked."""
        return self.model


def run_plain(pipe, seed: int) -> tuple[float, float]:
    """(median seconds per step, whole-image seconds) of one plain diffusers txt2img."""
    import torch

    stamps: list[float] = []

    def on_step_end(p, step, timestep, tensors):
        torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        return tensors

    torch.cuda.synchronize()
    start = time.perf_counter()
    pipe(PROMPT, height=SIDE, width=SIDE, num_inference_steps=STEPS, guidance_scale=GUIDANCE, output_type="np",
         generator=torch.Generator("cuda").manual_seed(seed), callback_on_step_end=on_step_end)
    torch.cuda.synchronize()
    whole = time.perf_counter() - start
    return statistics.median(b - a for a, b in zip(stamps, stamps[1:])), whole


def run_ours(model, seed: int) -> tuple[float, float]:
    """(median seconds per step, whole-image seconds) of one txt2img through our generate()."""
    import torch

    from sd_studio.engine.generate import generate
    from sd_studio.engine.request import GenerationRequest

    stamps: list[float] = []

    def progress(event) -> None:
        if event.phase == "denoising":
            stamps.append(time.perf_counter())  # the preview made just before has waited for the GPU

    request = GenerationRequest(mode="txt2img", prompt=PROMPT, steps=STEPS, guidance=GUIDANCE, scheduler="Euler a",
                                seed=seed, width=SIDE, height=SIDE, model="bench-sd15", device="cuda",
                                precision="fp16", memory_mode="none")
    torch.cuda.synchronize()
    start = time.perf_counter()
    generate(request, progress=progress, models=OneModel(model))
    torch.cuda.synchronize()
    whole = time.perf_counter() - start
    return statistics.median(b - a for a, b in zip(stamps, stamps[1:])), whole


def main() -> int:
    """Print ours against plain diffusers, seconds per step and per image, or one line saying why it was skipped."""
    why = cuda_unavailable()
    if why:
        print(f"gpu: skipped ({why})", flush=True)
        return 0
    import diffusers
    import torch

    print(f"gpu: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, diffusers {diffusers.__version__}",
          flush=True)
    ours_model, plain = build_models()
    run_plain(plain, 0)  # warm-ups: cuDNN/cuBLAS pick their kernels on the first call
    run_ours(ours_model, 0)
    plain_runs, our_runs = [], []
    for i in range(ROUNDS):
        plain_runs.append(run_plain(plain, i + 1))
        our_runs.append(run_ours(ours_model, i + 1))
    plain_step, plain_whole = min(r[0] for r in plain_runs), min(r[1] for r in plain_runs)
    our_step, our_whole = min(r[0] for r in our_runs), min(r[1] for r in our_runs)
    setup = f"{SIDE}x{SIDE}, {STEPS} steps Euler a, CFG {GUIDANCE:g}, fp16, SD 1.5-size random UNet"
    print(f"step plain diffusers: {plain_step * 1000:.1f} ms ({setup})", flush=True)
    print(f"step ours: {our_step * 1000:.1f} ms ({setup})", flush=True)
    print(f"step ours / plain diffusers: {our_step / plain_step:.3f} ratio (target <= 1.05)", flush=True)
    print(f"image ours / plain diffusers: {our_whole:.2f} s / {plain_whole:.2f} s = {our_whole / plain_whole:.3f} "
          "ratio (target <= 1.10; text encoding, previews and VAE decode included)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
