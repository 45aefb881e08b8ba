"""The UNet's precision on a CPU: bf16 where the processor computes it natively and it measures faster, else fp32.

Rule: fp32 or bf16 when asked; for "auto", fp32 unless the processor has AMX or AVX512-BF16. With
native bf16, the first use of a model on a machine times one UNet step in each precision and keeps the
faster; the choice is cached per machine (CPU model name + torch version) and model hash in
`cpu_precision.json` in the user's data folder, so later loads skip the timing. Only the UNet runs in
bf16: the text encoder, the VAE (bf16 decodes band smooth gradients) and the sampler's arithmetic stay
fp32; hooks cast the UNet's inputs to bf16 and its output back to fp32.
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Callable

from sd_studio.engine.cpu.processor import CpuInfo, cpu_info
from sd_studio.errors import ModelError

CPU_PRECISIONS = ("auto", "fp32", "bf16")

MIN_TIMED_PARAMETERS = 100_000_000
"""UNets smaller than this (test models, toys) stay fp32 without timing: a step costs milliseconds either
way, bf16's rounding would buy nothing, and timing noise would make the choice random."""

# Inputs to the UNet that feed sinusoidal embeddings, computed in fp32 inside; bf16 would round 999 to 1000.
_UNCAST_INPUTS = frozenset({"timestep", "time_ids"})


def native_precision(info: CpuInfo) -> str:
    """"bf16" when the processor computes bf16 natively (AMX, AVX512-BF16), else "fp32"."""
    return "bf16" if info.has_native_bf16 else "fp32"


def candidates(info: CpuInfo) -> tuple[str, ...]:
    """The precisions worth timing on this processor (emulated bf16 is always slower, so it is not a candidate)."""
    return ("bf16", "fp32") if info.has_native_bf16 else ("fp32",)


def machine_key(info: CpuInfo, torch_version: str | None = None) -> str:
    """What a timing depends on besides the model: the CPU's name, its bf16 ability and the torch build."""
    if torch_version is None:
        import torch

        torch_version = torch.__version__
    return f"{info.name} | bf16={int(info.has_native_bf16)} | torch {torch_version}"


class PrecisionCache:
    """The per-machine, per-model precision choices and timings, kept in a small JSON file."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            from sd_studio.incidents import data_dir

            path = data_dir() / "cpu_precision.json"
        self.path = Path(path)

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, machine: str, model_hash: str) -> dict | None:
        """The stored entry {"choice": ..., "seconds": {precision: s}} for this machine and model, or None."""
        entry = self._read().get(machine, {}).get(model_hash)
        if isinstance(entry, dict) and entry.get("choice") in ("fp32", "bf16"):
            return entry
        return None

    def put(self, machine: str, model_hash: str, choice: str, seconds: dict[str, float]) -> None:
        """Store a choice and its timings (atomically; a failure to write only costs a re-timing later)."""
        data = self._read()
        data.setdefault(machine, {})[model_hash] = {"choice": choice, "seconds": seconds}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass


def choose_cpu_precision(
    requested: str,
    model_hash: str,
    *,
    info: CpuInfo,
    time_step: Callable[[str], float],
    cache: PrecisionCache,
    parameters: int | None = None,
    machine: str | None = None,
) -> str:
    """ "fp32" or "bf16" for a model's UNet on this CPU, by the module's rule; `time_step(precision)` -> seconds."""
    if requested in ("fp32", "bf16"):
        return requested
    if requested != "auto":
        raise ModelError(f"Unknown CPU precision {requested!r}; use auto, fp32 or bf16.")
    options = candidates(info)
    if len(options) == 1:
        return options[0]
    if parameters is not None and parameters < MIN_TIMED_PARAMETERS:
        return "fp32"
    machine = machine or machine_key(info)
    if model_hash:
        entry = cache.get(machine, model_hash)
        if entry is not None:
            return entry["choice"]
    seconds = {p: float(time_step(p)) for p in options}
    choice = min(options, key=lambda p: (seconds[p], p != native_precision(info)))
    if model_hash:
        cache.put(machine, model_hash, choice, seconds)
    return choice


def _dummy_unet_inputs(unet, batch: int = 2, latent_side: int | None = None) -> dict:
    """Random inputs for one CFG step of `unet` (batch 2: conditional + unconditional) at its latent size."""
    import torch

    config = unet.config
    side = latent_side or config.sample_size
    side = side[0] if isinstance(side, (list, tuple)) else int(side)
    generator = torch.Generator().manual_seed(0)
    inputs = {
        "sample": torch.randn(batch, config.in_channels, side, side, generator=generator),
        "timestep": torch.tensor(500.0),
        "encoder_hidden_states": torch.randn(batch, 77, config.cross_attention_dim, generator=generator),
    }
    if getattr(config, "addition_embed_type", None) == "text_time":
        time_dim = config.addition_time_embed_dim
        text_dim = config.projection_class_embeddings_input_dim - 6 * time_dim
        inputs["added_cond_kwargs"] = {
            "text_embeds": torch.randn(batch, text_dim, generator=generator),
            "time_ids": torch.tensor([[1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0]] * batch),
        }
    if getattr(config, "time_cond_proj_dim", None):
        inputs["timestep_cond"] = torch.randn(batch, config.time_cond_proj_dim, generator=generator)
    return inputs


def unet_step_seconds(unet, *, batch: int = 2, latent_side: int | None = None, repeats: int = 1) -> float:
    """Seconds for one UNet call at its latent size after one warm-up call (the best of `repeats`)."""
    import torch

    inputs = _dummy_unet_inputs(unet, batch, latent_side)
    best = float("inf")
    with torch.inference_mode():
        unet(**inputs)  # oneDNN builds its kernels for the shape on the first call
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            unet(**inputs)
            best = min(best, time.perf_counter() - start)
    return best


def _cast_floats(value, dtype):
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() and value.dtype != dtype else value
    if isinstance(value, dict):
        return {k: (v if k in _UNCAST_INPUTS else _cast_floats(v, dtype)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast_floats(v, dtype) for v in value)
    return value


def run_unet_in_bf16(unet) -> None:
    """Cast `unet` to bf16 in place, with hooks so callers keep passing and receiving fp32 tensors."""
    import torch

    if getattr(unet, "_sd_studio_bf16_hooks", None):
        return
    unet.to(torch.bfloat16)

    def before(module, args, kwargs):
        args = tuple(a if i == 1 else _cast_floats(a, torch.bfloat16) for i, a in enumerate(args))
        kwargs = {k: (v if k in _UNCAST_INPUTS else _cast_floats(v, torch.bfloat16)) for k, v in kwargs.items()}
        return args, kwargs

    def after(module, args, kwargs, output):
        if isinstance(output, tuple):
            return _cast_floats(output, torch.float32)
        if hasattr(output, "sample"):
            output.sample = output.sample.float()
        return output

    unet._sd_studio_bf16_hooks = (
        unet.register_forward_pre_hook(before, with_kwargs=True),
        unet.register_forward_hook(after, with_kwargs=True),
    )


def run_unet_in_fp32(unet) -> None:
    """Undo run_unet_in_bf16: remove the casting hooks and cast the weights back to fp32 (rounded as bf16 left them)."""
    import torch

    for handle in getattr(unet, "_sd_studio_bf16_hooks", None) or ():
        handle.remove()
    unet._sd_studio_bf16_hooks = None
    unet.to(torch.float32)


def time_precisions(unet, latent_side: int | None = None) -> Callable[[str], float]:
    """A `time_step` for choose_cpu_precision that times `unet` (fp32) and a bf16 copy of it, never altering `unet`."""

    def time_step(precision: str) -> float:
        if precision == "fp32":
            return unet_step_seconds(unet, latent_side=latent_side)
        trial = copy.deepcopy(unet)
        run_unet_in_bf16(trial)
        try:
            return unet_step_seconds(trial, latent_side=latent_side)
        finally:
            del trial

    return time_step


def timing_latent_side(unet) -> int:
    """The latent side timed: half the native one (a quarter of the work; relative speed is what matters)."""
    side = unet.config.sample_size
    side = side[0] if isinstance(side, (list, tuple)) else int(side)
    return max(8, side // 2)


def parameter_count(module) -> int:
    """The number of weights in a torch module."""
    return sum(p.numel() for p in module.parameters())


def apply_cpu_precision(model, requested: str = "auto", progress=None, *, info: CpuInfo | None = None,
                        cache: PrecisionCache | None = None) -> str:
    """Choose and apply the UNet precision of a CPU-loaded fp32 model; records it as `model.unet_precision`."""
    from sd_studio.engine.request import Progress

    info = info or cpu_info()
    unet = model.components["unet"]
    requested = requested if requested in CPU_PRECISIONS else "auto"
    needs_timing = (
        requested == "auto"
        and len(candidates(info)) > 1
        and parameter_count(unet) >= MIN_TIMED_PARAMETERS
    )
    cache = cache or PrecisionCache()
    if needs_timing and progress is not None and not (model.hash and cache.get(machine_key(info), model.hash)):
        progress(Progress("loading", 0, 1, message="Timing bf16 and fp32 on this processor (once per model)"))
    choice = choose_cpu_precision(
        requested,
        model.hash,
        info=info,
        time_step=time_precisions(unet, timing_latent_side(unet)),
        cache=cache,
        parameters=parameter_count(unet),
    )
    if choice == "bf16":
        run_unet_in_bf16(unet)
    model.unet_precision = choice
    return choice
