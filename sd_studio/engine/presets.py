"""Few-step presets for slow machines, and the expected time per image measured from the last run's steps.

Qt-free: the Generate panel feeds progress reports to a StepTimer and asks `suggest_preset` whether the
chosen model allows a fast preset (an LCM model or LCM-LoRA: the LCM sampler, 4 steps, guidance 1;
a Turbo or Lightning model: 4 steps at guidance 0).
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Preset:
    """Sampler settings that make a model fast: what to call it and the values to put in the panel."""

    label: str
    scheduler: str
    steps: int
    guidance: float


LCM_PRESET = Preset("LCM: 4 steps, guidance 1", "LCM", 4, 1.0)
TURBO_PRESET = Preset("Turbo: 4 steps, guidance 0", "Euler a", 4, 0.0)


# whole words only: "lcm" in "sdxl_lcm-lora" or "LCM_Dreamshaper", not in "malcolm"
_LCM_WORDS = re.compile(r"(?<![a-z])lcm(?![a-z])")
_TURBO_WORDS = re.compile(r"(?<![a-z])(turbo|lightning|hyper-?sd)(?![a-z])")
_FEW_STEP_SCHEDULERS = {"LCMScheduler": "lcm"}


def _signature(spec: str | None) -> str:
    """Everything that can tell a few-step model by name or content, lower-cased: the whole id or path
    (a cached hub download keeps its repo id in the path: models--latent-consistency--lcm-lora-sdv1-5/...),
    the scheduler a diffusers folder ships with, and a .safetensors file's own metadata."""
    if not spec:
        return ""
    path = Path(spec).expanduser()
    # the name, and a hub cache folder's repo id; not the folders above (a user called Malcolm)
    words = [path.name, *(part for part in path.parts if part.startswith("models--"))]
    try:
        if path.is_dir():
            words.append(_scheduler_kind(path / "scheduler" / "scheduler_config.json"))
        elif path.suffix.lower() == ".safetensors" and path.is_file():
            words.append(_metadata_text(path))
    except OSError:
        pass  # a path being typed, or unreadable: the name alone decides
    return " ".join(words).lower()


def _scheduler_kind(config: Path) -> str:
    import json

    try:
        name = json.loads(config.read_text(encoding="utf-8")).get("_class_name", "")
    except (OSError, ValueError, AttributeError):
        return ""
    return _FEW_STEP_SCHEDULERS.get(name, "")


_METADATA_CACHE: dict[tuple[str, int, int], str] = {}


def _metadata_text(path: Path) -> str:
    # the header is read once per file version: the panel asks on every keystroke in the model box
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _METADATA_CACHE:
        from sd_studio.engine.models.files import read_safetensors_header
        from sd_studio.errors import ModelError

        try:
            metadata = read_safetensors_header(path).get("__metadata__") or {}
        except ModelError:
            metadata = {}
        _METADATA_CACHE[key] = " ".join(f"{k} {v}" for k, v in metadata.items() if isinstance(v, str))[:100_000]
    return _METADATA_CACHE[key]


def suggest_preset(model: str | None, loras=()) -> Preset | None:
    """The few-step preset the model allows, judged by its id or path, its scheduler or file metadata, and
    those of its LoRAs, or None."""
    model_text = _signature(model)
    lora_texts = [_signature(str(path)) for path, *_ in (loras or ())]
    if any(_LCM_WORDS.search(text) for text in (model_text, *lora_texts)):
        return LCM_PRESET
    if _TURBO_WORDS.search(model_text):
        return TURBO_PRESET
    return None


def runs_on_cpu(device_setting: str) -> bool:
    """True when generations with this device setting run on the processor (for "auto": no GPU seen by torch).

    torch is only asked once something else imported it, so the editor never waits for the import; until
    then the answer comes from the operating system: an NVIDIA or ROCm driver, or Apple silicon, means a GPU.
    """
    if device_setting == "cpu":
        return True
    if device_setting != "auto":
        return False
    torch = sys.modules.get("torch")
    if torch is None:
        return not _gpu_driver_present()
    mps = getattr(torch.backends, "mps", None)
    return not torch.cuda.is_available() and not (mps is not None and mps.is_available())


def _gpu_driver_present() -> bool:
    import os
    import platform

    if sys.platform == "darwin":
        return platform.machine() == "arm64"  # MPS
    if sys.platform == "win32":
        return (Path(os.environ.get("SystemRoot", r"C:\Windows")) / "System32" / "nvcuda.dll").exists()
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/kfd").exists()


def effective_steps(steps: int, strength: float | None, mode: str) -> int:
    """Denoising steps a run really makes: all for txt2img, steps x strength (at least 1) otherwise."""
    if mode == "txt2img" or strength is None:
        return max(1, steps)
    return max(1, int(steps * strength))


@dataclass
class StepTimer:
    """Measures a run from its progress reports: seconds per denoising step and the time after the last step."""

    clock: object = time.monotonic
    step_seconds: list[float] = field(default_factory=list)
    tail_seconds: float = 0.0
    _last: float | None = None
    _current: list[float] = field(default_factory=list)
    _last_step_at: float | None = None

    def start(self) -> None:
        """A new run begins; the last run's measurement is kept until this one finishes."""
        self._current, self._last, self._last_step_at = [], None, None

    def report(self, phase: str, step: int, total: int) -> None:
        """Feed one progress report."""
        now = self.clock()
        if phase != "denoising":
            return
        if self._last is not None and step > 1:  # step 1 of a variant follows loading or the previous decode
            self._current.append(now - self._last)
        self._last = now
        self._last_step_at = now

    def finish(self) -> None:
        """The run ended successfully: its step times become the measurement."""
        if self._current:
            self.step_seconds = list(self._current)
            self.tail_seconds = max(0.0, self.clock() - self._last_step_at) if self._last_step_at else 0.0
        self.start()

    @property
    def seconds_per_step(self) -> float | None:
        """The median step time of the last finished run, or None before one was measured."""
        return statistics.median(self.step_seconds) if self.step_seconds else None

    def expected_seconds(self, steps: int) -> float | None:
        """Expected seconds for one image of `steps` denoising steps, from the last run; None if unmeasured."""
        per_step = self.seconds_per_step
        if per_step is None:
            return None
        return per_step * steps + self.tail_seconds


def expected_time_text(seconds: float | None, steps: int) -> str:
    """A short line for the panel, like "About 14 s per image (4 steps)"; empty before any measurement."""
    if seconds is None:
        return ""
    shown = f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
    return f"About {shown} per image ({steps} step{'s' if steps != 1 else ''}, measured on the last run)"
