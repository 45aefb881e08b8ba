"""What the frozen app carries beyond PyInstaller's import scan (used by sd-studio.spec): lazily imported
diffusers/transformers modules, and the data files of dependencies that no PyInstaller hook collects.

diffusers and transformers import their submodules by name on first attribute access, so PyInstaller's
import scan sees almost none of them. The spec collects them with `collect_submodules(..., filter=...)`
using the two predicates here, which keep what Stable Diffusion 1/2/XL can touch and leave out the dozens
of other model families each library ships. tests/test_packaging.py checks them against the modules a
real generation imports, and checks that every runtime dependency shipping data files is either bundled
(DATA_PACKAGES, or by a hook) or listed with the reason it is not needed.
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


DATA_PACKAGES = {
    "kernels": "transformers imports kernels when it is installed, and kernels reads "
               "_internals/python_depends.json as it is imported (without it every diffusion run fails)",
}
"""Packages whose data files the spec collects itself because no PyInstaller hook does, and why they are needed."""

DATA_COLLECTED_ELSEWHERE = frozenset({
    "diffusers", "transformers", "qtawesome",  # by the spec itself, beside the DATA_PACKAGES loop
    # by PyInstaller's own hooks (PyInstaller/hooks, _pyinstaller_hooks_contrib/stdhooks)
    "torch", "certifi", "boto3", "botocore", "cv2", "skimage", "scipy", "numpy", "PySide6", "av", "pycparser",
    "urllib3",
})
"""Packages with data files that reach the bundle without DATA_PACKAGES."""

DATA_NOT_NEEDED = {
    "torchgen": "torch's code-generation templates, used only to build torch",
    "shiboken6": "C++ headers for building bindings",
    "setuptools": "Windows launcher stubs for installing scripts",
    "sympy": "parser grammars and examples (torch uses sympy's code only)",
    "networkx": "the graphs of its own tests",
    "markupsafe": "the C source of its speed-ups",
    "huggingface_hub": "model-card templates, used only when uploading to the hub",
    "tqdm": "a shell completion script and a man page",
    "tokenizers": "the stylesheet of a notebook visualiser",
    "typer": "notes for AI agents and a licence text",
    "markdown_it": "its porting notes",
    "peft": "CUDA sources, compiled only for BOFT adapters on a GPU",
    "qtpy": "the .ui files of its own tests",
    "cffi": "C headers for building extensions",
    "dateutil": "the zoneinfo tarball (botocore's dates are UTC and local time)",
    "websockets": "the C source of its speed-ups",
    "aiohttp": "Cython declarations of its speed-ups",
    "frozenlist": "the Cython source of its speed-ups",
    "multidict": "C headers of its speed-ups",
    "propcache": "the Cython source of its speed-ups",
    "yarl": "the Cython source of its speed-ups",
}
"""Packages whose data files stay out, and why the app never reads them (tests/test_packaging.py asks every
runtime dependency that ships data files to be in one of the three lists)."""
