"""Model files on disk: what a --model argument names, diffusers folders and safetensors headers; pickles refused."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from sd_studio.errors import ModelError

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def pickle_refusal(path: str | Path) -> str:
    """The one-sentence refusal for a pickled checkpoint: why it is not loaded and how to convert it."""
    return (
        f"{Path(path).name} is a pickle-based checkpoint, which is not loaded because unpickling can run "
        "arbitrary code; convert it to .safetensors first (for example with diffusers' "
        "convert_original_stable_diffusion_to_diffusers.py --to_safetensors, or download the .safetensors release)."
    )


def resolve_model_spec(spec: str) -> tuple[str, str]:
    """("file" | "folder" | "hub", normalised spec) for a model argument; ModelError for anything unloadable.

    Checks only what is cheap (paths, suffixes, the folder layout); a file's header is read later.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ModelError("No model given: pass a hub id, a diffusers folder or a .safetensors file.")
    spec = spec.strip()
    path = Path(spec).expanduser()
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            raise ModelError(pickle_refusal(path))
        if suffix != ".safetensors":
            raise ModelError(f"{path.name} is not a model file; pass a .safetensors file, a diffusers folder or a hub id.")
        if path.stat().st_size == 0:
            raise ModelError(f"{path.name} is empty (0 bytes); the download or copy may have failed.")
        return "file", str(path.resolve())
    if path.is_dir():
        return "folder", str(check_diffusers_folder(path))
    if path.exists():
        raise ModelError(f"{spec} is neither a file nor a folder.")
    looks_like_path = (
        spec.startswith((".", "/", "~", "\\"))
        or "\\" in spec
        or spec.count("/") > 1
        or path.suffix.lower() in (".safetensors", *PICKLE_SUFFIXES)
    )
    if looks_like_path:
        raise ModelError(f"There is no model file or folder at {spec}.")
    if not HUB_ID.match(spec):
        raise ModelError(f"{spec!r} is not an existing file or folder, nor a Hugging Face repo id like org/name.")
    return "hub", spec


def check_diffusers_folder(path: Path) -> Path:
    """The resolved folder when it holds a diffusers model with safetensors weights; else ModelError saying what is wrong."""
    path = path.resolve()
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise ModelError(f"The model folder {path} is empty.")
    index = path / "model_index.json"
    if not index.is_file():
        if any(p.suffix.lower() == ".safetensors" for p in entries):
            raise ModelError(
                f"{path} is not a diffusers model folder (no model_index.json); pass one of its .safetensors files instead."
            )
        raise ModelError(f"{path} is not a diffusers model folder (it has no model_index.json).")
    try:
        components = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ModelError(f"{index} is not readable JSON, so {path.name} cannot be loaded.") from None
    weighted = [
        name
        for name in ("unet", "vae", "text_encoder", "text_encoder_2")
        if isinstance(components.get(name), list) and components[name] and components[name][0] is not None
    ]
    if "unet" not in weighted:
        raise ModelError(f"{path} is a diffusers folder but not a Stable Diffusion model (it has no UNet).")
    for name in weighted:
        sub = path / name
        files = list(sub.glob("*")) if sub.is_dir() else []
        if any(f.suffix == ".safetensors" for f in files):
            continue
        if any(f.suffix.lower() in PICKLE_SUFFIXES for f in files):
            raise ModelError(
                f"{path.name}/{name} has only pickle weights (.bin), which are not loaded because unpickling can run "
                "arbitrary code; convert the model to .safetensors first (diffusers: pipe.save_pretrained(folder, "
                "safe_serialization=True) in a trusted environment)."
            )
        raise ModelError(f"{path.name}/{name} has no weights; the model folder is incomplete.")
    return path


def read_safetensors_header(path: Path) -> dict:
    """The JSON header of a .safetensors file (tensor names -> dtype/shape/offsets) without reading the tensors."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise ValueError("too short")
            (length,) = struct.unpack("<Q", raw)
            if length <= 1 or length > min(size - 8, 100 << 20):
                raise ValueError("bad header length")
            header = json.loads(f.read(length))
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + length + end > size:
            raise ValueError("truncated")
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error):
        raise ModelError(f"{path.name} is not a readable .safetensors file; it may be truncated or corrupt.") from None
    return header
