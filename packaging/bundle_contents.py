"""Which lazily imported diffusers/transformers modules the frozen app carries (used by sd-studio.spec).

diffusers and transformers import their submodules by name on first attribute access, so PyInstaller's
import scan sees almost none of them. The spec collects them with `collect_submodules(..., filter=...)`
using the two predicates here, which keep what Stable Diffusion 1/2/XL can touch and leave out the dozens
of other model families each library ships. tests/test_packaging.py checks them against the modules a
real generation imports.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

DIFFUSERS_FAMILIES = frozenset({"stable_diffusion", "stable_diffusion_xl"})
"""Subpackages of diffusers.pipelines / diffusers.modular_pipelines to keep (the SD 1/2 and SDXL pipelines)."""

TRANSFORMERS_MODELS = frozenset({
    "auto", "clip",  # the CLIP text encoders and tokenizers SD 1/2/XL use
    # imported by name while diffusers and peft load (type checks, image-processor fallbacks)
    "bloom", "siglip", "dinov2_with_registers", "vit_mae", "encoder_decoder",
})
"""Subpackages of transformers.models to keep."""


def keep_diffusers(name: str) -> bool:
    """True when the diffusers module `name` belongs in the bundle."""
    parts = name.split(".")
    if len(parts) >= 3 and parts[1] in ("pipelines", "modular_pipelines"):
        # model families are subpackages; the plain modules at this level are shared by all of them
        return parts[2] in DIFFUSERS_FAMILIES or not _is_package(".".join(parts[:3]))
    return parts[1:2] != ["commands"]


def keep_transformers(name: str) -> bool:
    """True when the transformers module `name` belongs in the bundle."""
    parts = name.split(".")
    if len(parts) >= 3 and parts[1] == "models":
        return parts[2] in TRANSFORMERS_MODELS
    # transformers' own task pipelines and command line are never used by diffusers
    return parts[1:2] not in (["pipelines"], ["commands"], ["cli"])


@lru_cache(maxsize=None)
def _is_package(module: str) -> bool:
    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None:
        return False
    return Path(spec.origin).parent.joinpath(*rest).is_dir()
