"""Where the files in `resources/` (configs, tokenizer, sample photo, icons) are found at run time."""

from __future__ import annotations

import sys
from pathlib import Path


def resources_dir() -> Path:
    """The `resources/` folder: beside the package in a checkout or editable install (`make run`),
    or inside a frozen app built from `packaging/` (PyInstaller puts it under sys._MEIPASS)."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[1] / "resources"


def resource_path(*parts: str) -> Path:
    """A path inside the resources folder."""
    return resources_dir().joinpath(*parts)
