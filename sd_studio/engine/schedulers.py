"""Sampler presets by their AUTOMATIC1111 names, read from resources/schedulers.json."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from sd_studio.bundled import resource_path
from sd_studio.errors import GenerationError

PRESETS_FILE = resource_path("schedulers.json")


@lru_cache(maxsize=1)
def scheduler_presets() -> dict[str, dict]:
    """A1111 sampler name -> {"class": diffusers scheduler class name, "config": overrides, ...}, in file order."""
    data = json.loads(PRESETS_FILE.read_text(encoding="utf-8"))
    return {name: preset for name, preset in data.items() if not name.startswith("_")}


def scheduler_names() -> tuple[str, ...]:
    """The sampler names a request may use."""
    return tuple(scheduler_presets())


def make_scheduler(name: str, base_config, seed: int | None = None):
    """A fresh diffusers scheduler for the A1111 sampler `name`, keeping the model's own noise schedule.

    Schedulers are stateful, so every generation gets its own. `seed` seeds samplers whose noise does
    not come from the pipeline's generator (DPM++ SDE's Brownian tree), so seeds still reproduce.
    """
    import diffusers

    presets = scheduler_presets()
    if name not in presets:
        raise GenerationError(f"Unknown sampler {name!r}; choose one of: {', '.join(presets)}.")
    preset = presets[name]
    cls = getattr(diffusers, preset["class"])
    overrides = dict(preset.get("config", {}))
    if preset.get("seeded_noise") and seed is not None:
        overrides[preset["seeded_noise"]] = seed
    return cls.from_config(base_config, **overrides)
