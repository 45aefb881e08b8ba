"""Finding models on disk for listings: the models folder, extra folders, the Hugging Face cache, and the model
folders of AUTOMATIC1111 and ComfyUI installations (with ComfyUI's extra_model_paths.yaml)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from sd_studio.engine.models.hub import hf_cache_dir
from sd_studio.errors import ModelError

CHECKPOINT_PREFIX = "model.diffusion_model."  # what every single-file SD checkpoint holds (original layout)
MAX_DEPTH = 4  # sub-folders searched below a model folder (A1111 users sort checkpoints into folders)
MAX_ITEMS = 20_000  # files and folders looked at per model folder: a listing never walks a whole disk
MAX_YAML_BYTES = 256 * 1024  # an extra_model_paths.yaml is a few lines; more is not one
MAX_YAML_ENTRIES = 256  # groups, keys and paths read from one
A1111_KINDS = {"Stable-diffusion": "checkpoint", "Lora": "lora", "VAE": "vae", "ESRGAN": "upscaler"}
COMFY_KINDS = {"checkpoints": "checkpoint", "diffusers": "checkpoint", "loras": "lora", "vae": "vae",
               "upscale_models": "upscaler"}
KIND_WORDS = {"checkpoint": "checkpoints", "lora": "LoRAs", "vae": "VAEs", "upscaler": "upscalers"}
COMFY_MARKERS = ("main.py", "comfy", "custom_nodes", "extra_model_paths.yaml", "extra_model_paths.yaml.example")
A1111 = "AUTOMATIC1111"
COMFYUI = "ComfyUI"


@dataclass(frozen=True)
class ModelEntry:
    """A model found on disk, for listings: how to name it on the command line and what it is."""

    name: str
    spec: str  # what to pass as --model
    kind: str  # "file" | "folder" | "hub"
    size_bytes: int = 0


@dataclass(frozen=True)
class AppFolder:
    """A model folder of another program: which program (AUTOMATIC1111 or ComfyUI), what it holds, where."""

    app: str
    kind: str  # "checkpoint" | "lora" | "vae" | "upscaler"
    path: Path
    origin: Path  # the installation, or the extra_model_paths.yaml that named the folder

    @property
    def label(self) -> str:
        """How the dialog names it: "ComfyUI checkpoints", "AUTOMATIC1111 LoRAs"."""
        return f"{self.app} {KIND_WORDS.get(self.kind, self.kind)}"


class FoundFolders(NamedTuple):
    """Model folders of other programs, and a sentence for each configuration file that could not be read."""

    folders: tuple[AppFolder, ...]
    notes: tuple[str, ...] = ()


def default_models_folder() -> Path:
    """The user's own models folder (`models/` in sd-studio's data folder): downloads go here, listings start here."""
    from sd_studio.incidents import data_dir

    return data_dir() / "models"


def find_models(folders: list[Path], include_default: bool = True) -> list[ModelEntry]:
    """Models in the models folder (unless include_default is False), the given folders (and their sub-folders,
    a few levels deep) and the Hugging Face hub cache: single-file checkpoints and diffusers folders.

    A .safetensors file is listed only when it holds a Stable Diffusion UNet in the original layout, so LoRAs,
    VAEs, decoders and upscalers kept beside checkpoints are left out; pickles are left out (never loaded).
    """
    entries: list[ModelEntry] = []
    seen: set[str] = set()
    bases = ([default_models_folder()] if include_default else []) + [Path(f).expanduser() for f in folders]
    for base in bases:
        for entry in _models_in(base):
            if entry.spec not in seen:
                seen.add(entry.spec)
                entries.append(entry)
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


def is_checkpoint_file(path: Path) -> bool:
    """True when a .safetensors file's header declares a Stable Diffusion UNet in the original (single-file) layout."""
    from sd_studio.engine.models.files import read_safetensors_header

    try:
        stat = path.stat()
    except OSError:
        return False
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HEADER_VERDICTS:
        try:
            header = read_safetensors_header(path)
        except ModelError:
            verdict = False
        else:
            verdict = any(name.startswith(CHECKPOINT_PREFIX) for name in header)
        _HEADER_VERDICTS[key] = verdict
    return _HEADER_VERDICTS[key]


_HEADER_VERDICTS: dict[tuple[str, int, int], bool] = {}  # the model box is rescanned often; headers are read once


def _models_in(base: Path) -> list[ModelEntry]:
    found: list[ModelEntry] = []
    if not base.is_dir():
        return found
    visited: set[str] = set()
    budget = [MAX_ITEMS]

    def walk(folder: Path, depth: int) -> None:
        try:
            real = str(folder.resolve())
            items = sorted(folder.iterdir())
        except OSError:
            return
        if real in visited:  # a link back up the tree
            return
        visited.add(real)
        for item in items:
            budget[0] -= 1
            if budget[0] < 0 or item.name.startswith("."):  # hidden: partial downloads, caches
                if budget[0] < 0:
                    return
                continue
            try:
                is_file, is_dir = item.is_file(), item.is_dir()
            except OSError:
                continue
            if is_file and item.suffix.lower() == ".safetensors" and is_checkpoint_file(item):
                found.append(ModelEntry(item.stem, str(item.resolve()), "file", item.stat().st_size))
            elif is_dir and (item / "model_index.json").is_file():
                found.append(ModelEntry(item.name, str(item.resolve()), "folder", _folder_size(item)))
            elif is_dir and depth < MAX_DEPTH:
                walk(item, depth + 1)

    walk(base, 0)
    return found


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*.safetensors") if f.is_file())


# -- other programs' model folders ----------------------------------------------------------------


def search_places() -> list[Path]:
    """Where AUTOMATIC1111 and ComfyUI are usually installed: the home folder and its usual sub-folders
    (src, Documents, Desktop, Downloads, ...), and the system's program folders."""
    home = Path.home()
    places = [home] + [home / name for name in (
        "src", "Documents", "Desktop", "Downloads", "git", "github", "code", "Code", "projects", "Projects", "dev",
        "AI", "ai", "apps", "Applications", "opt", "tools", "stable-diffusion",
    )]
    if sys.platform == "win32":
        for drive in ("C:\\", "D:\\"):
            places += [Path(drive), Path(drive) / "AI", Path(drive) / "Programs"]
        if os.environ.get("LOCALAPPDATA"):
            places.append(Path(os.environ["LOCALAPPDATA"]) / "Programs")
    else:
        places += [Path("/opt"), Path("/srv"), Path("/usr/local")]
    return [p for p in dict.fromkeys(places) if p.is_dir()]


def find_app_folders(places: list[Path] | None = None) -> FoundFolders:
    """The model folders of every AUTOMATIC1111 (or Forge) and ComfyUI installation in places (search_places() by
    default) and their sub-folders, plus those the ComfyUI desktop app's and each ComfyUI's extra_model_paths.yaml
    name. Only folders that exist are listed."""
    installs: list[Path] = []
    for place in places if places is not None else search_places():
        installs.append(place)
        try:
            children = sorted(c for c in place.iterdir() if not c.name.startswith("."))[:MAX_YAML_ENTRIES * 4]
        except OSError:
            continue
        for child in children:
            installs.append(child)
            installs.append(child / "ComfyUI")  # the Windows portable build nests it
    folders: list[AppFolder] = []
    notes: list[str] = []
    for install in installs:
        found = app_folders_in(install, look_inside=False)
        folders += found.folders
        notes += found.notes
    for config in _desktop_configs():
        try:
            folders += read_extra_model_paths(config)
        except ModelError as exc:
            notes.append(str(exc))
    return FoundFolders(tuple(_unique(folders)), tuple(dict.fromkeys(notes)))


def app_folders_in(folder: Path, look_inside: bool = True) -> FoundFolders:
    """The model folders of the AUTOMATIC1111 or ComfyUI installation at folder (or, with look_inside, of one
    inside it, or the installation's own `models` folder picked directly)."""
    folder = Path(folder).expanduser()
    candidates = [folder]
    if look_inside:
        if folder.name == "models":
            candidates.append(folder.parent)
        try:
            candidates += sorted(c for c in folder.iterdir() if c.is_dir() and not c.name.startswith("."))[:200]
        except OSError:
            pass
        candidates.append(folder / "ComfyUI")
    folders: list[AppFolder] = []
    notes: list[str] = []
    for root in candidates:
        models = root / "models"
        try:
            if not models.is_dir():
                continue
            if (models / "Stable-diffusion").is_dir():
                folders += [AppFolder(A1111, kind, models / name, root)
                            for name, kind in A1111_KINDS.items() if (models / name).is_dir()]
            elif (models / "checkpoints").is_dir() and any((root / m).exists() for m in COMFY_MARKERS):
                folders += [AppFolder(COMFYUI, kind, models / name, root)
                            for name, kind in COMFY_KINDS.items() if (models / name).is_dir()]
                if (root / "extra_model_paths.yaml").is_file():
                    try:
                        folders += read_extra_model_paths(root / "extra_model_paths.yaml")
                    except ModelError as exc:
                        notes.append(str(exc))
        except OSError:
            continue
    return FoundFolders(tuple(_unique(folders)), tuple(notes))


def read_extra_model_paths(path: Path) -> list[AppFolder]:
    """The existing model folders a ComfyUI extra_model_paths.yaml names (checkpoints, diffusers, loras, vae,
    upscale_models), resolved as ComfyUI does: environment variables and ~ expanded, a relative base_path taken
    from the file's folder, each path relative to its group's base_path. The file is read safely and bounded
    (plain YAML types only, no anchors or aliases); ModelError with one sentence when it cannot be used."""
    import yaml

    path = Path(path)
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise ModelError(f"{path} is too large to be an extra_model_paths.yaml; it was not read.")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} could not be read ({getattr(exc, 'strerror', None) or exc}).") from None
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ModelError(f"{path} uses YAML anchors or aliases, which SD Studio does not follow; "
                                 "it was not read.")
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ModelError(f"{path} is not valid YAML{where}; its model folders were not read.") from None
    if not isinstance(data, dict):
        return []
    folders: list[AppFolder] = []
    here = path.parent
    for group, conf in list(data.items())[:MAX_YAML_ENTRIES]:
        if not isinstance(conf, dict):
            continue
        base = conf.get("base_path")
        base_path = None
        if isinstance(base, str) and base.strip():
            base_path = Path(os.path.expanduser(os.path.expandvars(base.strip())))
            if not base_path.is_absolute():
                base_path = here / base_path
        for key, value in list(conf.items())[:MAX_YAML_ENTRIES]:
            kind = COMFY_KINDS.get(str(key))
            if kind is None or not isinstance(value, str):
                continue
            for line in value.splitlines()[:MAX_YAML_ENTRIES]:
                line = line.strip()
                if not line:
                    continue
                folder = Path(os.path.expanduser(os.path.expandvars(line)))
                if not folder.is_absolute():
                    folder = (base_path or here) / folder
                if folder.is_dir():
                    folders.append(AppFolder(COMFYUI, kind, folder, path))
    return folders


def _desktop_configs() -> list[Path]:
    """The ComfyUI desktop app's own extra_models_config.yaml, where the platform keeps it."""
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", home / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    config = base / "ComfyUI" / "extra_models_config.yaml"
    return [config] if config.is_file() else []


def _unique(folders: list[AppFolder]) -> list[AppFolder]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for f in folders:
        try:
            key = (f.kind, str(f.path.resolve()))
        except OSError:
            continue
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique
