"""The recommended-model catalog (resources/models.json): what each model is, its files, size, licence and checksums.

The catalog is data, read and checked here once: every file is a .safetensors weight or a small config
(never a pickle), every place it is saved to stays inside the models folder, and a checksum is a sha256.
Where a catalog entry lands in the models folder depends on its kind, so the model listings find
checkpoints at the top and never mistake a LoRA or a decoder for a model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sd_studio.bundled import resource_path
from sd_studio.errors import ModelError

CATALOG_FILE = "models.json"
MAX_CATALOG_BYTES = 1 << 20  # a catalog is a few kilobytes; anything larger is not ours
KIND_FOLDERS = {
    "checkpoint": "",  # the top of the models folder, where the Model box and `sd-studio models` look
    "lora": "loras",
    "decoder": "decoders",
    "segmentation": "segmentation",  # SAM / SlimSAM (issue 15)
    "restoration": "restoration",  # face and scratch restorers (issue 14)
    "upscaler": "upscalers",
}
KIND_LABELS = {
    "checkpoint": "Model",
    "lora": "LoRA",
    "decoder": "Decoder",
    "segmentation": "Segmentation",
    "restoration": "Restoration",
    "upscaler": "Upscaler",
}
WEIGHT_SUFFIXES = (".safetensors",)
CONFIG_SUFFIXES = (".json", ".txt")  # tokenizer vocabularies and component configs
SHA256 = re.compile(r"^[0-9a-f]{64}$")
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
ENTRY_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Licence:
    """A licence's name and where to read it."""

    name: str
    url: str


@dataclass(frozen=True)
class CatalogFile:
    """One file of a catalog entry: its path in the hub repo, where it is saved (relative to the kind's folder),
    its size in bytes and sha256 when known."""

    path: str
    save_as: str
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class CatalogEntry:
    """A recommended model: how to show it (name, kind, size, licence, what it is good for) and how to fetch it."""

    id: str
    name: str
    kind: str
    repo: str
    revision: str
    files: tuple[CatalogFile, ...]
    licence: Licence
    good_for: str
    family: str | None = None
    recommended: bool = False
    source: str = ""
    unchecked: str = ""

    @property
    def size(self) -> int:
        """The bytes to download, as far as the catalog knows them (files without a listed size count 0)."""
        return sum(f.size or 0 for f in self.files)

    @property
    def size_label(self) -> str:
        """The size as the dialog and `get-model` show it: "4.27 GB", or "about 9.8 MB" when a file's is not listed."""
        unknown = any(f.size is None for f in self.files)
        return ("about " if unknown else "") + format_size(self.size)

    @property
    def kind_label(self) -> str:
        """The kind in the user's words: Model, LoRA, Decoder, ..."""
        return KIND_LABELS[self.kind]

    def destination(self, models_folder: Path) -> Path:
        """Where the entry is installed: its one file, or the folder that holds its files."""
        base = Path(models_folder) / KIND_FOLDERS[self.kind]
        if len(self.files) == 1:
            return base / self.files[0].save_as
        return base / PurePosixPath(self.files[0].save_as).parts[0]  # load_catalog checked they share it

    def file_destination(self, models_folder: Path, file: CatalogFile) -> Path:
        """Where one of the entry's files is saved."""
        return Path(models_folder) / KIND_FOLDERS[self.kind] / file.save_as

    def installed(self, models_folder: Path) -> bool:
        """True when every file of the entry is in place (a file appears only once it passed its checksum)."""
        return all(self.file_destination(models_folder, f).is_file() for f in self.files)


def format_size(n: float) -> str:
    """A byte count as download pages show it: 9.8 MB, 135 MB, 4.27 GB (powers of 1000, like the hub)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            value = n / scale
            digits = 2 if value < 10 and unit == "GB" else 1 if value < 100 else 0
            return f"{value:.{digits}f} {unit}"
    return f"{int(n)} bytes"


def load_catalog(path: Path | None = None) -> tuple[CatalogEntry, ...]:
    """The catalog's entries, recommended first; ModelError naming the problem when the file is not a valid catalog."""
    path = Path(path) if path is not None else resource_path(CATALOG_FILE)
    try:
        if path.stat().st_size > MAX_CATALOG_BYTES:
            raise ModelError(f"The model catalog {path.name} is too large to be a catalog.")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"The model catalog {path} could not be read ({exc.strerror or exc}).") from None
    except ValueError:
        raise ModelError(f"The model catalog {path.name} is not valid JSON.") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise ModelError(f"The model catalog {path.name} has no list of models.")
    entries = [_entry(item, path.name) for item in models]
    ids = [e.id for e in entries]
    if len(set(ids)) != len(ids):
        raise ModelError(f"The model catalog {path.name} lists a model id twice.")
    return tuple(sorted(entries, key=lambda e: not e.recommended))


def find_entry(entries: tuple[CatalogEntry, ...], entry_id: str) -> CatalogEntry:
    """The entry with this id; ModelError listing the ids there are otherwise."""
    for entry in entries:
        if entry.id == entry_id:
            return entry
    ids = ", ".join(e.id for e in entries)
    raise ModelError(f"There is no model {entry_id!r} in the catalog; choose one of: {ids}.")


def _entry(item, where: str) -> CatalogEntry:
    if not isinstance(item, dict):
        raise ModelError(f"The model catalog {where} has an entry that is not an object.")
    entry_id = item.get("id")
    if not isinstance(entry_id, str) or not ENTRY_ID.match(entry_id):
        raise ModelError(f"The model catalog {where} has an entry without a valid id.")

    def bad(what: str) -> ModelError:
        return ModelError(f"The model catalog {where}: {entry_id} {what}.")

    text = {}
    for key in ("name", "kind", "repo", "revision", "good_for"):
        value = item.get(key)
        if not isinstance(value, str) or not value.strip():
            raise bad(f"has no {key}")
        text[key] = value.strip()
    if text["kind"] not in KIND_FOLDERS:
        raise bad(f"has the unknown kind {text['kind']!r}")
    if not REPO_ID.match(text["repo"]):
        raise bad(f"names {text['repo']!r}, which is not a hub repo id")
    licence = item.get("licence")
    named = isinstance(licence, dict) and all(isinstance(licence.get(k), str) and licence[k] for k in ("name", "url"))
    if not named:
        raise bad("has no licence name and URL")
    if not licence["url"].startswith("https://"):
        raise bad("has a licence URL that is not https")
    files = item.get("files")
    if not isinstance(files, list) or not files:
        raise bad("lists no files")
    parsed = tuple(_file(f, bad) for f in files)
    if len({f.save_as for f in parsed}) != len(parsed):
        raise bad("saves two files to the same place")
    if len(parsed) > 1:  # a multi-file model is one folder, so it is installed, listed and removed as one
        parts = [PurePosixPath(f.save_as).parts for f in parsed]
        if any(len(p) < 2 for p in parts) or len({p[0] for p in parts}) != 1:
            raise bad("has several files that are not saved in one folder of their own")
    family = item.get("family")
    return CatalogEntry(
        id=entry_id, name=text["name"], kind=text["kind"], repo=text["repo"], revision=text["revision"],
        files=parsed, licence=Licence(licence["name"], licence["url"]), good_for=text["good_for"],
        family=family if isinstance(family, str) else None, recommended=item.get("recommended") is True,
        source=str(item.get("source") or ""), unchecked=str(item.get("unchecked") or ""),
    )


def _file(item, bad) -> CatalogFile:
    if not isinstance(item, dict) or not isinstance(item.get("path"), str):
        raise bad("has a file without a path")
    path = item["path"]
    save_as = item.get("save_as", PurePosixPath(path).name)
    if not isinstance(save_as, str) or not _inside(save_as) or not _inside(path):
        raise bad(f"saves {path!r} outside its folder")
    suffix = PurePosixPath(path).suffix.lower()
    if suffix not in WEIGHT_SUFFIXES + CONFIG_SUFFIXES or PurePosixPath(save_as).suffix.lower() != suffix:
        raise bad(f"lists {path!r}; only .safetensors weights and small config files are downloaded")
    size, sha256 = item.get("size"), item.get("sha256")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        raise bad(f"gives {path!r} a size that is not a positive number of bytes")
    if sha256 is not None and (not isinstance(sha256, str) or not SHA256.match(sha256)):
        raise bad(f"gives {path!r} a checksum that is not a lower-case sha256")
    if suffix in WEIGHT_SUFFIXES and (size is None or sha256 is None):
        raise bad(f"lists the weights {path!r} without their size and sha256")
    return CatalogFile(path=path, save_as=save_as, size=size, sha256=sha256)


def _inside(relative: str) -> bool:
    """True for a relative POSIX path that stays inside its folder (no '..', no root, no drive, no backslash)."""
    if not relative or "\\" in relative or ":" in relative:
        return False
    parts = PurePosixPath(relative).parts
    return not PurePosixPath(relative).is_absolute() and all(p not in ("..", ".", "") for p in parts)
