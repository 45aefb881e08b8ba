"""Where a model runs: the torch device and dtype for a request, and telling and recovering from out of memory."""

from __future__ import annotations

import gc

from sd_studio.errors import ModelError


def choose_device(requested: str = "auto", precision: str = "auto") -> tuple[str, object]:
    """The torch device and dtype for a request: CUDA fp16, else Apple MPS fp16, else CPU fp32; both overridable."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    elif requested == "cuda":
        if not torch.cuda.is_available():
            raise ModelError("CUDA was requested but torch sees no CUDA GPU; use --device cpu or auto.")
        device = "cuda"
    elif requested == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ModelError("Apple MPS was requested but it is not available here; use --device cpu or auto.")
        device = "mps"
    elif requested == "cpu":
        device = "cpu"
    else:
        raise ModelError(f"Unknown device {requested!r}; use auto, cpu, cuda or mps.")
    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision == "auto":
        dtype = torch.float32 if device == "cpu" else torch.float16
    elif precision in dtypes:
        dtype = dtypes[precision]
    else:
        raise ModelError(f"Unknown precision {precision!r}; use auto, fp32, fp16 or bf16.")
    if device == "cpu" and dtype == torch.float16:
        raise ModelError("fp16 is not supported on the CPU; use fp32 or bf16 there.")
    return device, dtype


def is_out_of_memory_error(exc: BaseException) -> bool:
    """True for an out-of-memory error (torch's CUDA one, or a RuntimeError saying out of memory)."""
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_device_memory() -> None:
    """Collect garbage and hand cached GPU memory back to the driver (after a failed load or an unload)."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
