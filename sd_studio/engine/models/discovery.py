"""Finding models on disk for listings: the models folder, extra folders and the Hugging Face cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sd_studio.engine.models.files import read_safetensors_header
from sd_studio.engine.models.hub import hf_cache_dir
from sd_studio.errors import ModelError


@dataclass(frozen=True)
class ModelEntry:
    """A model found on disk, for listings: how to name it on the command line and what it is."""

    name: str
    spec: str  # what to pass as --model
    kind: str  # "file" | "folder" | "hub"
    size_bytes: int = 0


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*.safetensors") if f.is_file())


def _is_lora_file(path: Path) -> bool:
    try:
        header = read_safetensors_header(path)
    except ModelError:
        return False
    return any("lora" in key.lower() for key in list(header)[:200])


def find_models(folders: list[Path]) -> list[ModelEntry]:
    """Models in the given folders (.safetensors checkpoints, diffusers folders) and in the Hugging Face hub cache.

    LoRA files are left out (they are not models on their own); pickles are left out (never loaded).
    """
    entries: list[ModelEntry] = []
    seen: set[str] = set()
    for base in folders:
        base = Path(base).expanduser()
        if not base.is_dir():
            continue
        for item in sorted(base.iterdir()):
            if item.is_file() and item.suffix.lower() == ".safetensors" and not _is_lora_file(item):
                spec = str(item.resolve())
                if spec not in seen:
                    seen.add(spec)
                    entries.append(ModelEntry(item.stem, spec, "file", item.stat().st_size))
            elif item.is_dir() and (item / "model_index.json").is_file():
                spec = str(item.resolve())
                if spec not in seen:
                    seen.add(spec)
                    entries.append(ModelEntry(item.name, spec, "folder", _folder_size(item)))
    cache = hf_cache_dir()
    if cache.is_dir():
        for repo in sorted(cache.glob("models--*--*")):
            parts = repo.name.split("--", 2)
            if len(parts) != 3:
                continue
            repo_id = f"{parts[1]}/{parts[2]}"
            snapshots = [s for s in (repo / "snapshots").glob("*") if (s / "model_index.json").is_file()]
            if snapshots and repo_id not in seen:
                seen.add(repo_id)
                entries.append(ModelEntry(repo_id, repo_id, "hub", _folder_size(snapshots[0])))
    return entries
