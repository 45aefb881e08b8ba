"""Restoration model files (spandrel): which kinds there are, where they go, and loading one safely.

A model file is a `.safetensors` file, or a `.pth`/`.pt` state dict read with torch's weights-only
loader (which builds tensors and plain containers and runs no code); anything else — other
pickles, TorchScript archives — is refused with one sentence. spandrel recognises the architecture
from the state dict's keys and shapes.
"""

from __future__ import annotations

import pickle
import threading
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sd_studio.errors import ModelError

MODEL_SUFFIXES = (".safetensors", ".pth", ".pt")
"""The model files a restoration model may come in; .pth/.pt only as weights (never code)."""


@dataclass(frozen=True)
class ModelKind:
    """A kind of restoration model: its folder, the spandrel purposes it accepts and a file to suggest."""

    key: str
    label: str
    purposes: tuple[str, ...]
    suggestion: str
    """The file to get, named as its authors publish it, and where from."""


KINDS = {
    "upscale": ModelKind("upscale", "upscaler", ("SR",),
                         "RealESRGAN_x4plus.pth (Real-ESRGAN's GitHub releases; or any ESRGAN, SwinIR, HAT or DAT model)"),
    "faces": ModelKind("faces", "face restoration model", ("FaceSR",),
                       "GFPGANv1.4.pth (GFPGAN's GitHub releases; or RestoreFormer.pth, or codeformer.pth)"),
    "erase": ModelKind("erase", "eraser (inpainting) model", ("Inpainting",),
                       "big-lama.safetensors (LaMa's big-lama weights converted to .safetensors, see README; "
                       "or MAT's Places_512_FullData_G.pth)"),
    "colorize": ModelKind("colorize", "colourisation model", ("Restoration",),
                          "ddcolor_modelscope.pth (DDColor's models on Hugging Face, piddnad/DDColor-models)"),
}
"""Every kind by its key (also the sub-folder of the models folder its files go in)."""

_ARCHITECTURES = {"colorize": ("DDColor",)}
"""Kinds whose spandrel purpose is too broad, narrowed to these architectures."""


def models_folder(kind: str) -> Path:
    """The folder where files of a kind go: <data folder>/models/<kind> (e.g. ~/.local/share/sd-studio/models/upscale)."""
    from sd_studio.incidents import data_dir

    return data_dir() / "models" / KINDS[kind].key


def find_model_files(kind: str, folders: tuple[Path, ...] = ()) -> list[Path]:
    """The model files of a kind in its models folder and the given folders, sorted by name."""
    found: list[Path] = []
    for folder in (models_folder(kind), *folders):
        if folder.is_dir():
            found.extend(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES)
    return sorted(set(found), key=lambda p: p.name.lower())


def missing_model_message(kind: str) -> str:
    """One sentence: which file to get for a kind and where to put it."""
    k = KINDS[kind]
    return (f"No {k.label} found: get {k.suggestion} and put it in {models_folder(kind)}, "
            f"or pass its path with --model.")


@dataclass
class RestoreModel:
    """A loaded restoration model: the spandrel descriptor with its name, file hash, architecture and device."""

    path: Path
    name: str
    hash: str
    architecture: str
    purpose: str
    scale: int
    descriptor: object
    device: str

    @property
    def is_masked(self) -> bool:
        """True for erasers, which take an image and a mask."""
        return self.purpose == "Inpainting"


def resolve_model(kind: str, spec: str | None) -> Path:
    """The file to load for a kind: spec when given (ModelError if it is not there), else the first file in its folder."""
    if spec:
        path = Path(spec).expanduser()
        if not path.exists():
            raise ModelError(f"There is no model file at {spec}.")
        if not path.is_file():
            raise ModelError(f"{spec} is a folder; pass a model file ({', '.join(MODEL_SUFFIXES)}).")
        return path
    files = find_model_files(kind)
    if not files:
        raise ModelError(missing_model_message(kind))
    return files[0]


def load_model(path: str | Path, kind: str, device: str = "auto") -> RestoreModel:
    """Load a restoration model file of a kind (see KINDS); ModelError with one sentence for anything unusable."""
    from sd_studio.engine.models.hashes import file_hash
    from sd_studio.engine.restore.spandrel_import import import_spandrel

    path = Path(path).expanduser()
    if kind not in KINDS:
        raise ModelError(f"Unknown kind of model {kind!r}; use one of: {', '.join(KINDS)}.")
    state = read_state_dict(path)
    spandrel = import_spandrel()
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(spandrel.canonicalize_state_dict(state))
    except spandrel.UnsupportedModelError:
        hint = _extra_arches_hint()
        raise ModelError(f"{path.name} is not a model architecture SD Studio can load (spandrel does not "
                         f"recognise it){hint}.") from None
    except Exception as exc:  # noqa: BLE001 - a state dict that matches keys but not shapes
        raise ModelError(f"{path.name} could not be loaded as a model ({type(exc).__name__}: {exc}).") from None
    architecture = descriptor.architecture.id
    k = KINDS[kind]
    wanted = _ARCHITECTURES.get(kind)
    if descriptor.purpose not in k.purposes or (wanted and architecture not in wanted):
        raise ModelError(f"{path.name} is a {architecture} model ({descriptor.purpose}), not a {k.label}.")
    chosen = _device(device)
    descriptor.to(chosen)
    descriptor.eval()
    if chosen == "cuda" and descriptor.supports_half:
        descriptor.half()
    return RestoreModel(path=path, name=path.stem, hash=file_hash(path), architecture=architecture,
                        purpose=descriptor.purpose, scale=int(getattr(descriptor, "scale", 1) or 1),
                        descriptor=descriptor, device=chosen)


def read_state_dict(path: Path) -> dict:
    """The tensors of a model file: safetensors, or a weights-only .pth/.pt; ModelError for anything else."""
    from sd_studio.engine.models.files import read_safetensors_header

    if not path.exists():
        raise ModelError(f"There is no model file at {path}.")
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise ModelError(f"{path.name} is not a model file SD Studio loads; use .safetensors (or a weights-only "
                         ".pth/.pt).")
    if path.stat().st_size == 0:
        raise ModelError(f"{path.name} is empty (0 bytes); the download or copy may have failed.")
    if suffix == ".safetensors":
        read_safetensors_header(path)
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception:  # noqa: BLE001 - a header that parses over a broken body
            raise ModelError(f"{path.name} is not a readable .safetensors file; it may be truncated or corrupt.") from None
    return _read_weights_only(path)


def _read_weights_only(path: Path) -> dict:
    import torch

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(name.split("/")[1:2] == ["code"] for name in archive.namelist()):
                raise ModelError(f"{path.name} is a TorchScript program, not plain weights; it is refused because "
                                 "loading it runs its code — convert it to .safetensors (see README, Model files).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's advice to retry without weights_only is not for us
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):
            raise ModelError(f"{path.name} holds Python objects besides weights, which could run code when loaded, "
                             "so it is refused; use a .safetensors file.") from None
        raise ModelError(f"{path.name} is not a readable weights file, so it is refused; use a .safetensors file "
                         "or a plain .pth state dict.") from None
    except Exception as exc:  # noqa: BLE001 - truncated zip, not a torch file at all
        raise ModelError(f"{path.name} is not a readable weights file ({type(exc).__name__}).") from None
    if not isinstance(state, dict):
        raise ModelError(f"{path.name} does not hold a state dict of weights.")
    return state


def _extra_arches_hint() -> str:
    from sd_studio.engine.restore.spandrel_import import extra_arches_installed

    if extra_arches_installed():
        return ""
    return "; CodeFormer, MAT and DDColor need the spandrel-extra-arches package (see README)"


def _device(requested: str) -> str:
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class ModelSlot:
    """Keeps the last restoration model loaded per kind, so a batch or a session loads each file once."""

    def __init__(self) -> None:
        self._models: dict[str, RestoreModel] = {}
        self._lock = threading.Lock()

    def get(self, kind: str, spec: str | None, device: str = "auto") -> RestoreModel:
        """The model for a kind and spec (see resolve_model), loaded unless the same file is already in."""
        path = resolve_model(kind, spec).resolve()
        with self._lock:
            model = self._models.get(kind)
            if model is None or model.path.resolve() != path:
                self._models.pop(kind, None)  # drop the old one before loading the next: one in memory
                model = load_model(path, kind, device)
                self._models[kind] = model
            return model
