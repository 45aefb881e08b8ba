"""Finding and loading Stable Diffusion models (hub ids, diffusers folders, single .safetensors files), never unpickling."""

from __future__ import annotations

import gc
import hashlib
import io
import json
import os
import re
import struct
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sd_studio.errors import GenerationError, ModelError

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Only what a diffusers pipeline needs from a hub repo: configs, tokenizers and safetensors weights
# (no .ckpt/.bin pickles, no fp16/ema variants, no single-file duplicates at the top level).
HUB_PATTERNS = [
    "model_index.json",
    "*/*.json",
    "*/*.txt",
    "*/*.model",
    "*/diffusion_pytorch_model.safetensors",
    "*/diffusion_pytorch_model-*.safetensors",
    "*/model.safetensors",
    "*/model-*.safetensors",
]
HUB_IGNORE = ["safety_checker/*"]  # never loaded (the editor shows the user's own pixels), over 1 GB
FAMILY_PIPELINES = {
    "sdxl": {
        "txt2img": "StableDiffusionXLPipeline",
        "img2img": "StableDiffusionXLImg2ImgPipeline",
        "inpaint": "StableDiffusionXLInpaintPipeline",
    },
    "sd": {
        "txt2img": "StableDiffusionPipeline",
        "img2img": "StableDiffusionImg2ImgPipeline",
        "inpaint": "StableDiffusionInpaintPipeline",
    },
}

ProgressFn = Callable[[object], None] | None


def pickle_refusal(path: str | Path) -> str:
    """The one-sentence refusal for a pickled checkpoint: why it is not loaded and how to convert it."""
    return (
        f"{Path(path).name} is a pickle-based checkpoint, which is not loaded because unpickling can run "
        "arbitrary code; convert it to .safetensors first (for example with diffusers' "
        "convert_original_stable_diffusion_to_diffusers.py --to_safetensors, or download the .safetensors release)."
    )


def choose_device(requested: str = "auto", precision: str = "auto") -> tuple[str, "torch.dtype"]:
    """The torch device and dtype for a request: CUDA fp16, else Apple MPS fp16, else CPU fp32; both overridable."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    elif requested == "cuda":
        if not torch.cuda.is_available():
            raise ModelError("CUDA was requested but torch sees no CUDA GPU; use --device cpu or auto.")
        device = "cuda"
    elif requested == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ModelError("Apple MPS was requested but it is not available here; use --device cpu or auto.")
        device = "mps"
    elif requested == "cpu":
        device = "cpu"
    else:
        raise ModelError(f"Unknown device {requested!r}; use auto, cpu, cuda or mps.")
    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision == "auto":
        dtype = torch.float32 if device == "cpu" else torch.float16
    elif precision in dtypes:
        dtype = dtypes[precision]
    else:
        raise ModelError(f"Unknown precision {precision!r}; use auto, fp32, fp16 or bf16.")
    if device == "cpu" and dtype == torch.float16:
        raise ModelError("fp16 is not supported on the CPU; use fp32 or bf16 there.")
    return device, dtype


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


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder, read from the environment now (HF_HUB_CACHE, HF_HOME, or the default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (HF_HUB_OFFLINE set)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return value in ("1", "true", "yes", "on") or bool(constants.HF_HUB_OFFLINE)


def fetch_hub_model(repo_id: str, progress: ProgressFn = None) -> Path:
    """The local snapshot folder of a hub model: from the cache, else downloaded with progress (safetensors only)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hf_cache_dir()
    try:
        return Path(snapshot_download(repo_id, cache_dir=cache, local_files_only=True, allow_patterns=HUB_PATTERNS))
    except LocalEntryNotFoundError:
        pass
    except Exception as exc:  # a malformed cache entry; fall through to a download or the offline message
        if hub_offline():
            raise ModelError(f"The cached copy of {repo_id} could not be read ({exc}).") from None
    if hub_offline():
        raise ModelError(
            f"{repo_id} is not in the local Hugging Face cache ({cache}) and there is no network; download it once "
            f"with `huggingface-cli download {repo_id}` or pass a folder or .safetensors file."
        )
    try:
        folder = snapshot_download(
            repo_id, cache_dir=cache, allow_patterns=HUB_PATTERNS, ignore_patterns=HUB_IGNORE,
            tqdm_class=_download_tqdm(repo_id, progress),
        )
    except Exception as exc:
        name = type(exc).__name__
        if "RepositoryNotFound" in name or "RevisionNotFound" in name:
            raise ModelError(f"There is no model {repo_id!r} on the Hugging Face hub.") from None
        if "LocalEntryNotFound" in name:  # the hub could not be reached and nothing is cached
            raise ModelError(
                f"{repo_id} could not be downloaded because the Hugging Face hub could not be reached; check the "
                f"network, or download it elsewhere with `huggingface-cli download {repo_id}`, or pass a folder or "
                ".safetensors file."
            ) from None
        if "GatedRepo" in name:
            raise ModelError(f"{repo_id} is gated: accept its licence on huggingface.co and log in with `huggingface-cli login`.") from None
        raise ModelError(
            f"{repo_id} could not be downloaded ({name}); check the network, or pass a local folder or .safetensors file."
        ) from None
    return Path(folder)


def _download_tqdm(repo_id: str, progress: ProgressFn):
    """A tqdm class for snapshot_download that forwards the bytes written to progress as Progress("downloading").

    snapshot_download makes three bars from it: files fetched, network bytes (an estimate that grows) and
    bytes written; only the last is reported, so the step count rises steadily. Nothing is drawn.
    """
    from tqdm.auto import tqdm

    from sd_studio.engine.request import Progress

    class ProgressTqdm(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("file", io.StringIO())  # the caller shows progress its own way
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            result = super().update(n)
            reported = self.unit == "B" and not str(self.desc or "").startswith("Downloading bytes")
            if progress is not None and reported and self.total:
                mib = f"{self.n / 2**20:.0f} of {self.total / 2**20:.0f} MiB"
                progress(Progress("downloading", int(self.n), int(self.total), message=f"Downloading {repo_id}: {mib}"))
            return result

    return ProgressTqdm


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


@dataclass
class LoadedModel:
    """A model in memory: its identity (name, hash, family), where it runs, and diffusers components shared by every mode."""

    spec: str
    name: str
    hash: str
    family: str  # "sd1" | "sd2" | "sdxl"
    native_resolution: int
    is_inpaint: bool  # 9-channel inpainting UNet
    device: str
    dtype: object
    components: dict
    memory_mode: str = "none"  # what is applied to the shared components now (see diffusion.apply_memory_mode)
    memory_floor: str = "none"  # the least-saving mode "auto" may pick, raised after an out-of-memory retry
    _pipelines: dict = field(default_factory=dict, repr=False)

    def pipeline(self, mode: str):
        """A diffusers pipeline for mode ("txt2img" | "img2img" | "inpaint") sharing this model's components (no reload).

        An inpainting model (9-channel UNet) fits only the inpaint pipeline, so every mode gets that one;
        run_diffusion gives txt2img and img2img an all-white mask, as A1111 does.
        """
        names = FAMILY_PIPELINES["sdxl" if self.family == "sdxl" else "sd"]
        if mode not in names:
            raise GenerationError(f"Unknown mode {mode!r}; use txt2img, img2img or inpaint.")
        if self.is_inpaint:
            mode = "inpaint"
        if mode in self._pipelines:
            return self._pipelines[mode]
        import diffusers

        cls = getattr(diffusers, names[mode])
        wanted = set(cls._get_signature_keys(cls)[0]) | set(cls._get_signature_keys(cls)[1])
        kwargs = {k: v for k, v in self.components.items() if k in wanted}
        for optional in cls._optional_components:
            if optional in wanted:
                kwargs.setdefault(optional, None)
        if "requires_safety_checker" in wanted:
            kwargs["requires_safety_checker"] = False
        pipe = cls(**kwargs)
        pipe.set_progress_bar_config(disable=True)
        self._pipelines[mode] = pipe
        return pipe

    def release(self) -> None:
        """Drop the weights so their memory can be reused (the object is unusable afterwards)."""
        self._pipelines.clear()
        self.components.clear()


def _family_of_folder(folder: Path) -> str:
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    if "text_encoder_2" in index or "XL" in str(index.get("_class_name", "")):
        return "sdxl"
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "sd1"
    return "sd2" if unet.get("cross_attention_dim") == 1024 else "sd1"


def load_folder(folder: Path, device: str, dtype, progress: ProgressFn = None) -> tuple[dict, str, bool]:
    """(components, family, is_inpaint) from a diffusers folder, loading safetensors weights only."""
    import diffusers

    family = _family_of_folder(folder)
    cls = getattr(diffusers, FAMILY_PIPELINES["sdxl" if family == "sdxl" else "sd"]["txt2img"])
    # torch_dtype works on every diffusers we support (>= 0.30); newer ones call it dtype and warn.
    kwargs = {"torch_dtype": dtype, "use_safetensors": True, "local_files_only": True}
    if family != "sdxl":
        kwargs.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    try:
        with warnings.catch_warnings(), _quiet_loading_bars():
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            pipe = cls.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError, EnvironmentError) as exc:
        if is_out_of_memory_error(exc):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"The model folder {folder.name} could not be loaded: {first}") from None
    components = dict(pipe.components)
    is_inpaint = getattr(components["unet"].config, "in_channels", 4) == 9
    return components, family, is_inpaint


@contextmanager
def _quiet_loading_bars():
    """No diffusers/transformers tqdm bars on stderr while loading: progress goes to our callback."""
    from diffusers.utils import logging as diffusers_logging

    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:  # pragma: no cover - transformers is a dependency
        transformers_logging = None
    diffusers_on = diffusers_logging.is_progress_bar_enabled()
    transformers_on = transformers_logging is not None and transformers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()
    if transformers_on:
        transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if diffusers_on:
            diffusers_logging.enable_progress_bar()
        if transformers_on:
            transformers_logging.enable_progress_bar()


def is_out_of_memory_error(exc: BaseException) -> bool:
    """True for an out-of-memory error (torch's CUDA one, or a RuntimeError saying out of memory)."""
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def native_resolution_of(components: dict, family: str) -> int:
    """The image size the model was trained at: the UNet's latent sample size times the VAE's downscale."""
    unet, vae = components.get("unet"), components.get("vae")
    try:
        sample = unet.config.sample_size
        sample = sample[0] if isinstance(sample, (list, tuple)) else sample
        return int(sample) * 2 ** (len(vae.config.block_out_channels) - 1)
    except (AttributeError, TypeError):
        return {"sdxl": 1024, "sd2": 768}.get(family, 512)


def load_model(spec: str, device: str = "auto", precision: str = "auto", progress: ProgressFn = None) -> LoadedModel:
    """Load a model from a hub id, a diffusers folder or a single .safetensors file onto the chosen device.

    Running out of memory while loading gives a ModelError saying so, with what was loaded freed.
    """
    kind, where = resolve_model_spec(spec)
    dev, dtype = choose_device(device, precision)
    try:
        return _load_model(kind, where, dev, dtype, precision, progress)
    except Exception as exc:
        if not is_out_of_memory_error(exc):
            raise
        _free_device_memory()
        raise ModelError(
            f"There is not enough {dev} memory to load {Path(where).name}; close other programs using it, "
            "or choose a smaller model or another device."
        ) from None


def _free_device_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def _load_model(kind: str, where: str, dev: str, dtype, precision: str, progress: ProgressFn) -> LoadedModel:
    from sd_studio.engine.request import Progress

    if dev == "cpu":  # loaded fp32; engine/precision.py then picks the UNet's precision (the VAE stays fp32)
        dtype = choose_device("cpu", "fp32")[1]
    if progress is not None:
        progress(Progress("loading", 0, 1, message=f"Loading {Path(where).name if kind != 'hub' else where}"))
    if kind == "hub":
        folder = fetch_hub_model(where, progress)
        folder = check_diffusers_folder(folder)
        components, family, is_inpaint = load_folder(folder, dev, dtype, progress)
        name, digest = where.split("/")[-1], folder_hash(folder)
    elif kind == "folder":
        folder = Path(where)
        components, family, is_inpaint = load_folder(folder, dev, dtype, progress)
        name, digest = folder.name, folder_hash(folder)
    else:
        path = Path(where)
        read_safetensors_header(path)
        try:
            from sd_studio.engine.single_file import load_single_file
        except ImportError:
            raise ModelError("Loading single .safetensors checkpoints is not available in this build.") from None
        try:
            components, family, is_inpaint = load_single_file(path, dev, dtype, progress=progress)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"{path.name} could not be loaded as a Stable Diffusion checkpoint ({type(exc).__name__}).") from None
        name, digest = path.stem, file_hash(path)
    for component in components.values():
        if hasattr(component, "to") and hasattr(component, "parameters"):
            component.to(dev)
    model = LoadedModel(
        spec=where,
        name=name,
        hash=digest,
        family=family,
        native_resolution=native_resolution_of(components, family),
        is_inpaint=is_inpaint,
        device=dev,
        dtype=dtype,
        components=components,
    )
    if dev == "cpu":
        from sd_studio.engine.cpu_backend import prepare_cpu_model

        prepare_cpu_model(model, precision, progress)
    if progress is not None:
        progress(Progress("loading", 1, 1, message=f"Loaded {name}"))
    return model


class ModelCache:
    """Keeps the last loaded model, so repeated generations with the same model load it once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._model: LoadedModel | None = None

    def get(self, spec: str, device: str = "auto", precision: str = "auto", progress: ProgressFn = None) -> LoadedModel:
        """The model for spec on device/precision: the cached one when it matches, else loaded (freeing the old one first)."""
        kind, where = resolve_model_spec(spec)
        dev, dtype = choose_device(device, precision)
        # On a CPU, "auto" may pick bf16 and the backend may be OpenVINO: both are part of what was loaded.
        cpu_setup = (precision, os.environ.get("SD_STUDIO_CPU_BACKEND", "")) if dev == "cpu" else ()
        key = (kind, where, dev, str(dtype), *cpu_setup)
        with self._lock:
            if self._key == key and self._model is not None:
                return self._model
            self.clear()
            self._model = load_model(spec, device, precision, progress)
            self._key = key
            return self._model

    def clear(self) -> None:
        """Forget the cached model and give its memory back."""
        if self._model is None:
            return  # nothing to give back; a full gc.collect() would hold the GIL for ~0.5 s for nothing
        self._model.release()
        self._model, self._key = None, None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


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
