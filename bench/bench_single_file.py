"""Single-file checkpoint loading against the same model as a diffusers folder, at full SD 1.5 size, and the
header-only inspection against safetensors' own safe_open. Prints `name: value unit (target ...)` lines.

The weights are random (no network here) but the sizes and key names are the real ones: the model is
built from the shipped sd15 config, written once in the original single-file layout and once with
save_pretrained, then both are loaded the way the engine loads them. Needs ~6 GB of RAM and ~4 GB of disk.
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "engine"))

CONFIG = os.environ.get("BENCH_SINGLE_FILE_CONFIG", "sd15")
REPEATS = 2


def build(folder: Path, single: Path) -> None:
    """Write a random full-size model of CONFIG both as a diffusers folder and as one original-layout file."""
    import torch
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from original_layout import clip_to_original, unet_to_original, vae_to_original
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    from sd_studio.engine.models.single_file import CONFIGS_DIR, load_tokenizer

    config = CONFIGS_DIR / CONFIG
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(config / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(config / "vae"))
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(config / "text_encoder"))
    generator = torch.Generator().manual_seed(0)
    for model in (unet, vae, text):
        model.to_empty(device="cpu")
        model.to(torch.float16)
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.02, generator=generator)
    state = {**unet_to_original(unet.state_dict(), dict(unet.config)),
             **vae_to_original(vae.state_dict(), dict(vae.config)), **clip_to_original(text.state_dict())}
    save_file({k: v.contiguous() for k, v in state.items()}, str(single))
    del state
    from diffusers import PNDMScheduler

    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=load_tokenizer(config / "tokenizer"),
                                   scheduler=PNDMScheduler.from_pretrained(config, subfolder="scheduler"),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)


def best_of(fn, repeats: int = REPEATS) -> float:
    """The fastest of repeats runs of fn, in seconds (garbage collected between runs)."""
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        del result
    return min(times)


def main() -> int:
    """Build the model once, then time each way of loading it."""
    import torch
    from diffusers import StableDiffusionPipeline
    from safetensors import safe_open

    from sd_studio.engine.models.single_file import inspect_checkpoint, load_single_file

    with tempfile.TemporaryDirectory() as tmp:
        folder, single = Path(tmp) / "folder", Path(tmp) / f"{CONFIG}.safetensors"
        start = time.perf_counter()
        build(folder, single)
        print(f"# built a random {CONFIG} model in {time.perf_counter() - start:.0f} s "
              f"({single.stat().st_size / 2**30:.1f} GiB single file)", flush=True)

        def folder_load():
            return StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float16, local_files_only=True)

        def single_load():
            return load_single_file(single, "cpu", torch.float16)

        folder_s, single_s = best_of(folder_load), best_of(single_load)
        print(f"load_{CONFIG}_single_file: {single_s:.2f} s, diffusers folder {folder_s:.2f} s, "
              f"ratio {single_s / folder_s:.2f}x (target <= 3x the folder)")

        def safe_open_shapes():
            with safe_open(str(single), "pt") as f:
                return {k: f.get_slice(k).get_shape() for k in f.keys()}

        ours, theirs = best_of(lambda: inspect_checkpoint(single), 5), best_of(safe_open_shapes, 5)
        print(f"inspect_{CONFIG}_header: {ours * 1000:.1f} ms, safe_open shapes {theirs * 1000:.1f} ms, "
              f"ratio {ours / theirs:.2f}x (target < 50 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
