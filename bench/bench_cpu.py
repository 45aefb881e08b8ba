"""The laptop path: one UNet step of an SD 1.5-size model on this CPU, ours against plain diffusers fp32.

The model is built from the shipped SD 1.5 configs with random weights (speed does not depend on the
weights). Side by side in one run:
- one UNet step at 512 x 512 (64 x 64 latents) with CFG (batch 2): plain diffusers fp32, ours with
  precision "auto" (torch; bf16 where the CPU has AMX or AVX512-BF16 and it measured faster), and the
  OpenVINO backend (when installed) at the same precision; ratios against plain fp32;
- a whole 512 x 512 inpaint with 4 LCM steps (guidance 1, so no CFG) through generate(), ours;
- OpenVINO: second load (import of the cached compiled model) / first load (convert + compile).
Each step is timed `STEPS` times after a warm-up; the best is printed.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CONFIGS = Path(__file__).resolve().parent.parent / "resources" / "model_configs" / "sd15"
STEPS = 2


def build_sd15():
    """An SD 1.5-size LoadedModel with random weights, on the CPU in fp32, as load_model would leave it."""
    import torch
    from diffusers import AutoencoderKL, LCMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from sd_studio.engine.models.loading import LoadedModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(CONFIGS / "unet")).eval()
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(CONFIGS / "vae")).eval()
    text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(CONFIGS / "text_encoder")).eval()
    tokenizer = CLIPTokenizer.from_pretrained(CONFIGS / "tokenizer")
    scheduler = LCMScheduler.from_config(LCMScheduler.load_config(CONFIGS / "scheduler"))
    components = {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer,
                  "scheduler": scheduler, "safety_checker": None, "feature_extractor": None, "image_encoder": None}
    return LoadedModel(spec="bench-sd15", name="sd15-random", hash="bench00000", family="sd1", native_resolution=512,
                       is_inpaint=False, device="cpu", dtype=torch.float32, components=components)


def step_inputs_for(call):
    """Random CFG inputs (batch 2, 64 x 64 latents) for a UNet or a callable carrying its .config."""
    import torch

    unet = getattr(call, "__self__", call)
    g = torch.Generator().manual_seed(0)
    return (torch.randn(2, 4, 64, 64, generator=g), torch.tensor(601.0),
            torch.randn(2, 77, unet.config.cross_attention_dim, generator=g))


def time_pair(plain, ours, repeats: int = STEPS) -> tuple[float, float]:
    """Best seconds of `repeats` calls of each of two UNet callables, alternated so load drift hits both."""
    import torch

    sample, t, text = step_inputs_for(plain)
    best = [float("inf"), float("inf")]
    with torch.inference_mode():
        plain(sample, t, encoder_hidden_states=text)  # warm-ups: kernels are built on the first call
        ours(sample, t, encoder_hidden_states=text)
        for _ in range(repeats):
            for i, call in enumerate((plain, ours)):
                start = time.perf_counter()
                call(sample, t, encoder_hidden_states=text)
                best[i] = min(best[i], time.perf_counter() - start)
    return best[0], best[1]


class OneModel:
    """A ModelCache stand-in that hands generate() the model built here."""

    def __init__(self, model) -> None:
        self.model = model

    def get(self, spec, device="auto", precision="auto", progress=None):
        return self.model


def main() -> int:
    """Print the CPU's figures: UNet step ratios, the LCM inpaint, OpenVINO load ratio."""
    import torch

    from sd_studio.engine.cpu import openvino as openvino_backend
    from sd_studio.engine.cpu.precision import PrecisionCache, apply_cpu_precision
    from sd_studio.engine.cpu.processor import configure_threads, cpu_info

    info = cpu_info()
    threads = configure_threads(for_editor=False)
    print(f"cpu: {info.name}, {info.physical_cores} cores, {threads} threads, AMX={info.has_amx}, "
          f"native bf16={info.has_native_bf16}, torch {torch.__version__}", flush=True)
    model = build_sd15()
    unet = model.components["unet"]

    def plain(*args, **kwargs):  # diffusers' own forward on the fp32 UNet, whatever is installed on it
        return type(unet).forward(unet, *args, **kwargs)

    plain.config = unet.config

    if openvino_backend.available():
        root = Path(tempfile.mkdtemp(prefix="sd-studio-ov-"))
        precision = "bf16" if info.has_native_bf16 else "fp32"
        try:
            start = time.perf_counter()
            first = openvino_backend.OpenVinoModel(model, precision, root=root)
            first.prepare(512, 512, 7.0)
            first_load = time.perf_counter() - start
            if first.failed:
                print(f"openvino: conversion failed: {first.failed}", flush=True)
            else:
                fp32, ov_step = time_pair(plain, unet)
                first.uninstall()
                start = time.perf_counter()
                second = openvino_backend.OpenVinoModel(model, precision, root=root)
                second.prepare(512, 512, 7.0)
                second_load = time.perf_counter() - start
                second.uninstall()
                del first, second
                print(f"unet step plain diffusers fp32 / ours openvino {precision} (512x512, CFG batch 2): "
                      f"{fp32:.2f} s / {ov_step:.2f} s = {ov_step / fp32:.2f} (target <= 0.3 with AMX, never > 1.0)",
                      flush=True)
                print(f"openvino first load (convert + compile, UNet + VAE decoder): {first_load:.1f} s", flush=True)
                print(f"openvino second load / first load: {second_load:.1f} s / {first_load:.1f} s = "
                      f"{second_load / first_load:.3f} (target <= 0.1)", flush=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
            gc.collect()
    else:
        print("openvino: not installed (pip install 'sd-studio[openvino]'); skipped", flush=True)

    ours_model = dataclasses.replace(model, components=dict(model.components, unet=copy.deepcopy(unet)))
    cache = PrecisionCache(Path(tempfile.mkdtemp(prefix="sd-studio-precision-")) / "cpu_precision.json")
    start = time.perf_counter()
    choice = apply_cpu_precision(ours_model, "auto", info=info, cache=cache)
    choosing = time.perf_counter() - start
    print(f"precision auto chose {choice} (timing both took {choosing:.1f} s, once per machine and model)", flush=True)
    fp32, ours = time_pair(plain, ours_model.components["unet"])
    print(f"unet step plain diffusers fp32 / ours auto ({choice}, torch) (512x512, CFG batch 2): "
          f"{fp32:.2f} s / {ours:.2f} s = {ours / fp32:.2f} (target <= 0.3 with AMX, never > 1.0)", flush=True)
    del unet, plain
    model.components.clear()
    gc.collect()
    model = ours_model

    from sd_studio.engine.generate import generate
    from sd_studio.engine.request import GenerationRequest

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (512, 512, 3), np.uint8)
    mask = np.zeros((512, 512), np.uint8)
    mask[128:384, 128:384] = 255
    request = GenerationRequest(mode="inpaint", image=image, mask=mask, prompt="a bench on a lawn", steps=4,
                                guidance=1.0, scheduler="LCM", seed=1, model="bench-sd15", device="cpu",
                                whole_image=True)
    start = time.perf_counter()
    generate(request, models=OneModel(model))
    inpaint = time.perf_counter() - start
    print(f"inpaint 512x512, 4 LCM steps, ours auto ({choice}, torch): {inpaint:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
