"""Short model hashes as AUTOMATIC1111 writes them (checkpoints, folders, LoRAs), cached in the data folder."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path


def file_hash(path: Path) -> str:
    """The A1111 short hash of a file: the first 10 hex digits of its sha256, cached by path, size and mtime."""
    from sd_studio.incidents import data_dir

    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = data_dir() / "model_hashes.json"
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    short = digest.hexdigest()[:10]
    cache[key] = short
    try:
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=0), encoding="utf-8")
        os.replace(tmp, cache_file)
    except OSError:
        pass  # a hash cache is an optimisation; failing to write it must not fail a load
    return short


_lora_hashes: dict[str, str] = {}


def lora_hash(path: str | Path) -> str:
    """A LoRA's short hash as A1111 writes it in "Lora hashes": 12 hex digits of the sha256 of its tensor data.

    That is the "addnet" hash (the bytes after the safetensors header), so editing the metadata
    does not change it; cached by path, size and mtime for this process.
    """
    path = Path(path).expanduser()
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    if key not in _lora_hashes:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            f.seek(8 + length)
            for block in iter(lambda: f.read(1 << 24), b""):
                digest.update(block)
        _lora_hashes[key] = digest.hexdigest()[:12]
    return _lora_hashes[key]


def folder_hash(folder: Path) -> str:
    """A short hash for a diffusers folder: that of its UNet weights (the part that makes the model what it is)."""
    files = sorted((folder / "unet").glob("*.safetensors"))
    if not files:
        return ""
    if len(files) == 1:
        return file_hash(files[0])
    return hashlib.sha256("".join(file_hash(f) for f in files).encode()).hexdigest()[:10]
