"""Setting up a model loaded on the CPU: its UNet precision, and the OpenVINO backend when the user chose it.

The backend is a setting: SD_STUDIO_CPU_BACKEND = torch (default) | openvino | auto (OpenVINO when
installed); the CLI's --cpu-backend and the editor's setting write it. OpenVINO compiles per input
shape, so with it the region's model input snaps to a few fixed sizes (`fixed_sizes`) to reuse them.
"""

from __future__ import annotations

import math
import os

from sd_studio.document.geometry import Extent
from sd_studio.engine.cpu.precision import apply_cpu_precision, native_precision, run_unet_in_bf16
from sd_studio.engine.cpu.processor import cpu_info

CPU_BACKENDS = ("torch", "openvino", "auto")

ASPECTS = (1.0, 4 / 3, 3 / 4, 3 / 2, 2 / 3, 16 / 9, 9 / 16, 2.0, 0.5)
"""Width/height ratios of the fixed model input sizes."""


def cpu_backend_setting() -> str:
    """The chosen CPU backend from SD_STUDIO_CPU_BACKEND (torch when unset or unknown)."""
    value = os.environ.get("SD_STUDIO_CPU_BACKEND", "torch").strip().lower()
    return value if value in CPU_BACKENDS else "torch"


def fixed_sizes(resolution: int, multiple: int = 64) -> tuple[Extent, ...]:
    """The few model input sizes used with a shape-compiled backend: each aspect in ASPECTS at about resolution² pixels."""
    sizes = []
    for aspect in ASPECTS:
        w = max(multiple, round(resolution * math.sqrt(aspect) / multiple) * multiple)
        h = max(multiple, round(resolution / math.sqrt(aspect) / multiple) * multiple)
        if Extent(w, h) not in sizes:
            sizes.append(Extent(w, h))
    return tuple(sizes)


def nearest_size(target: Extent, sizes: tuple[Extent, ...]) -> Extent:
    """The size in `sizes` closest in aspect (log ratio) to `target`."""
    aspect = math.log(max(1, target.width) / max(1, target.height))
    return min(sizes, key=lambda s: abs(math.log(s.width / s.height) - aspect))


def prepare_cpu_model(model, requested: str = "auto", progress=None) -> str:
    """Make a CPU-loaded fp32 model ready: the UNet precision (see precision.py), then OpenVINO if chosen; the precision."""
    backend = cpu_backend_setting()
    if backend != "torch":
        from sd_studio.engine.cpu import openvino as openvino_backend

        if openvino_backend.available() and model.family != "sdxl":
            precision = requested if requested in ("fp32", "bf16") else native_precision(cpu_info())

            def fall_back(message: str) -> None:
                model.openvino = None
                model.fixed_sizes = None
                if precision == "bf16":
                    run_unet_in_bf16(model.components["unet"])

            model.openvino = openvino_backend.OpenVinoModel(model, precision, on_fallback=fall_back)
            model.fixed_sizes = fixed_sizes(model.native_resolution)
            model.unet_precision = precision
            return precision
        if backend == "openvino" and progress is not None:
            from sd_studio.engine.request import Progress

            why = ("OpenVINO is not installed (pip install \"sd-studio[openvino]\")" if not openvino_backend.available()
                   else "the OpenVINO backend does not run SDXL models yet")
            progress(Progress("loading", 0, 1, message=f"{why}; running with torch."))
    return apply_cpu_precision(model, requested, progress)
