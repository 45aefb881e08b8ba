"""What the processor offers Stable Diffusion: its name, native bf16 (AMX / AVX512-BF16), and its physical cores.

Everything reads /proc/cpuinfo text (or torch's view of the CPU where there is no /proc), so tests pass
the text of another machine instead of needing one.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
"""Linux cpuinfo flags of instructions that compute in bf16 natively (Intel AMX, AVX512-BF16 on Intel/AMD)."""

AMX_FLAGS = frozenset({"amx_bf16", "amx_tile"})


@dataclass(frozen=True)
class CpuInfo:
    """A processor as it matters here: its model name, instruction-set flags and core counts."""

    name: str
    flags: frozenset[str]
    physical_cores: int
    logical_cores: int

    @property
    def has_amx(self) -> bool:
        """True when the processor has Intel AMX tile matrix units (bf16 matrix multiplies in hardware)."""
        return bool(self.flags & AMX_FLAGS)

    @property
    def has_native_bf16(self) -> bool:
        """True when bf16 arithmetic runs natively (AMX or AVX512-BF16), so bf16 is worth trying."""
        return bool(self.flags & BF16_FLAGS)


def parse_cpuinfo(text: str, logical_cores: int | None = None) -> CpuInfo:
    """A CpuInfo from the text of /proc/cpuinfo; physical cores counted as distinct (physical id, core id) pairs."""
    name, flags = "", set()
    cores: set[tuple[str, str]] = set()
    processors = 0
    physical_id = core_id = None
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if "processor" not in fields:
            continue
        processors += 1
        name = name or fields.get("model name", "")
        flags.update(fields.get("flags", "").split())
        physical_id, core_id = fields.get("physical id"), fields.get("core id")
        if core_id is not None:
            cores.add((physical_id or "0", core_id))
    logical = logical_cores or processors or os.cpu_count() or 1
    physical = len(cores) or logical
    return CpuInfo(name or platform.processor() or "unknown CPU", frozenset(flags), physical, logical)


def _torch_flags() -> frozenset[str]:
    """bf16 capability as torch's oneDNN sees it, for systems without /proc/cpuinfo (Windows, macOS)."""
    try:
        import torch

        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return frozenset({"avx512_bf16"})
    except (ImportError, AttributeError, RuntimeError):
        pass
    return frozenset()


_cached: CpuInfo | None = None


def cpu_info() -> CpuInfo:
    """This machine's CpuInfo (read once per process)."""
    global _cached
    if _cached is None:
        path = Path("/proc/cpuinfo")
        try:
            info = parse_cpuinfo(path.read_text(encoding="utf-8", errors="replace"), os.cpu_count())
        except OSError:
            count = os.cpu_count() or 1
            # Without /proc the physical count is unknown; half the logical ones assumes 2-way SMT.
            info = CpuInfo(platform.processor() or "unknown CPU", frozenset(), max(1, count // 2), count)
        if not info.flags:
            info = CpuInfo(info.name, _torch_flags(), info.physical_cores, info.logical_cores)
        _cached = info
    return _cached


def thread_count(physical_cores: int, for_editor: bool) -> int:
    """Threads for inference: every physical core on the command line, one left for the UI in the editor."""
    if for_editor:
        return max(1, physical_cores - 1)
    return max(1, physical_cores)


def configure_threads(for_editor: bool, info: CpuInfo | None = None) -> int:
    """Set torch's thread count by `thread_count` (and remember it for OpenVINO's compile); returns it."""
    n = thread_count((info or cpu_info()).physical_cores, for_editor)
    os.environ["SD_STUDIO_THREADS"] = str(n)  # read by the OpenVINO backend when it compiles
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    return n


def inference_threads() -> int | None:
    """The thread count configure_threads chose in this process, or None when it was never called."""
    value = os.environ.get("SD_STUDIO_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None
