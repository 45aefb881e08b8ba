"""Loading a Stable Diffusion model (hub id, diffusers folder or single .safetensors file) and keeping the last one."""

from __future__ import annotations

import json
import os
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sd_studio.engine.models.devices import (
    choose_device,
    free_device_memory,
    is_out_of_memory_error,
)
from sd_studio.engine.models.files import (
    check_diffusers_folder,
    read_safetensors_header,
    resolve_model_spec,
)
from sd_studio.engine.models.hashes import file_hash, folder_hash
from sd_studio.engine.models.hub import fetch_hub_model
from sd_studio.errors import GenerationError, ModelError

if TYPE_CHECKING:
    from sd_studio.engine.request import ProgressCallback

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


def load_folder(folder: Path, device: str, dtype, progress: ProgressCallback | None = None) -> tuple[dict, str, bool]:
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


def native_resolution_of(components: dict, family: str) -> int:
    """The image size the model was trained at: the UNet's latent sample size times the VAE's downscale."""
    unet, vae = components.get("unet"), components.get("vae")
    try:
        sample = unet.config.sample_size
        sample = sample[0] if isinstance(sample, (list, tuple)) else sample
        return int(sample) * 2 ** (len(vae.config.block_out_channels) - 1)
    except (AttributeError, TypeError):
        return {"sdxl": 1024, "sd2": 768}.get(family, 512)


def load_model(spec: str, device: str = "auto", precision: str = "auto", progress: ProgressCallback | None = None) -> LoadedModel:
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
        free_device_memory()
        raise ModelError(
            f"There is not enough {dev} memory to load {Path(where).name}; close other programs using it, "
            "or choose a smaller model or another device."
        ) from None


def _load_model(kind: str, where: str, dev: str, dtype, precision: str, progress: ProgressCallback | None) -> LoadedModel:
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
        from sd_studio.engine.models.single_file import load_single_file

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
        from sd_studio.engine.cpu.backend import prepare_cpu_model

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

    def get(self, spec: str, device: str = "auto", precision: str = "auto", progress: ProgressCallback | None = None) -> LoadedModel:
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
        free_device_memory()
