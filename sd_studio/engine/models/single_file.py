"""Single-file Stable Diffusion checkpoints (.safetensors, original layout) loaded offline with shipped configs.

Civitai/HF single files hold only weights in the original LDM key layout; diffusers needs a
config per component to build the models around them and would normally fetch it from the Hub.
We detect the model family from the file's header (no weights read, nothing unpickled), pick the
matching config folder from `resources/model_configs/`, and hand it to diffusers' `from_single_file`
with `local_files_only=True`, so loading never touches the network.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from sd_studio.bundled import resource_path
from sd_studio.engine.prompts.tokens import TOKENIZER_DIR
from sd_studio.errors import ModelError

CONFIGS_DIR = resource_path("model_configs")

UNET_PREFIX = "model.diffusion_model."
FIRST_CONV = UNET_PREFIX + "input_blocks.0.0.weight"
SD1_CROSS_ATTENTION = UNET_PREFIX + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
SDXL_SECOND_ENCODER = "conditioner.embedders.1."
SDXL_REFINER_ENCODER = "conditioner.embedders.0.model."
OPEN_CLIP_ENCODER = "cond_stage_model.model."
OTHER_DIFFUSION_MODELS = ("joint_blocks.", "double_blocks.", "single_blocks.", "transformer_blocks.")  # SD3, Flux, ...
# what an unrelated .safetensors file most likely is, from its key names, so the message can say so
NOT_A_CHECKPOINT_HINTS = (
    ("lora_", "a LoRA"),
    (".lora_down.", "a LoRA"),
    (".lora_A.", "a LoRA"),
    ("emb_params", "a textual-inversion embedding"),
    ("clip_l", "a textual-inversion embedding"),
    ("encoder.down.", "a VAE"),
    ("encoder.down_blocks.", "a VAE"),
)

# family, inpainting -> shipped config folder; SD 2.x text-to-image defaults to the 768 px v-prediction one
CONFIG_NAMES = {
    ("sd1", False): "sd15",
    ("sd1", True): "sd15-inpainting",
    ("sd2", False): "sd2-v",
    ("sd2", True): "sd2-inpainting",
    ("sdxl", False): "sdxl-base",
    ("sdxl", True): "sdxl-inpainting",
}
SD2_EPSILON_CONFIG = "sd2-base"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit
PREDICTION_TYPES = ("epsilon", "v_prediction")
V_PRED_KEY = "v_pred"  # empty marker tensors some v-prediction checkpoints carry (ComfyUI convention)
ZERO_SNR_KEY = "ztsnr"


@dataclass(frozen=True)
class CheckpointHeader:
    """What a .safetensors file declares: tensor name -> shape, and its string metadata."""

    shapes: dict[str, tuple[int, ...]]
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointInfo:
    """What a single-file checkpoint is: family ("sd1"|"sd2"|"sdxl"), inpainting or not, config folder to use.

    prediction_type is what the file says the scheduler must be told ("epsilon" | "v_prediction"), None
    when it says nothing (the config folder's default then holds); zero_snr says the model was trained
    with zero terminal SNR (NoobAI-style v-prediction SDXL files mark both with marker keys).
    """

    family: str
    is_inpaint: bool
    config_name: str
    prediction_type: str | None = None
    zero_snr: bool = False


def read_header(path: Path) -> CheckpointHeader:
    """The tensor shapes and metadata of a .safetensors file, read from its header only.

    Raises ModelError with one sentence for a missing, empty, truncated or corrupt file. Reads no
    tensor data and never unpickles: a .safetensors header is 8 bytes of length then JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Model file {path} does not exist.")
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            start = f.read(8)
            if len(start) < 8:
                raise ModelError(f"{path.name} is not a valid .safetensors file (it is empty or too short).")
            (length,) = struct.unpack("<Q", start)
            if length < 2 or length > MAX_HEADER_BYTES:
                raise ModelError(f"{path.name} is not a valid .safetensors file (its header is corrupt).")
            if 8 + length > size:
                raise ModelError(f"{path.name} is truncated (the download may be incomplete).")
            raw = f.read(length)
    except OSError as e:
        raise ModelError(f"Could not read {path.name}: {e.strerror or e}.") from e
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
        metadata = header.pop("__metadata__", None) or {}
        shapes: dict[str, tuple[int, ...]] = {}
        data_end = 0
        for name, entry in header.items():
            shapes[name] = tuple(int(n) for n in entry["shape"])
            begin, end = entry["data_offsets"]
            data_end = max(data_end, int(end))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path.name} is not a valid .safetensors file (its header is corrupt).") from e
    if 8 + length + data_end > size:
        raise ModelError(f"{path.name} is truncated (the download may be incomplete).")
    return CheckpointHeader(shapes, {str(k): str(v) for k, v in metadata.items()})


def model_family_of_state_dict(keys) -> str:
    """"sd1", "sd2" or "sdxl" for the original-layout key names of a checkpoint.

    `keys` is any iterable of names; a mapping of name -> shape also lets an SD 2.x UNet whose text
    encoder was stripped be told from SD 1.x by its cross-attention width. Raises ModelError when
    there is no UNet, or for an SDXL refiner (not supported).
    """
    names = list(keys)
    if FIRST_CONV not in names:
        if any(k.startswith(UNET_PREFIX) or k.startswith(OTHER_DIFFUSION_MODELS) for k in names):
            raise ModelError(
                "This diffusion model is not Stable Diffusion 1.x, 2.x or SDXL (SD3, Flux and others are not supported)."
            )
        raise ModelError("This is not a Stable Diffusion checkpoint (no UNet weights found).")
    if any(k.startswith(SDXL_SECOND_ENCODER) for k in names):
        return "sdxl"
    if any(k.startswith(SDXL_REFINER_ENCODER) for k in names):
        raise ModelError("SDXL refiner checkpoints are not supported; use an SDXL base or inpainting model.")
    if any(k.startswith(OPEN_CLIP_ENCODER) for k in names):
        return "sd2"
    shape = keys.get(SD1_CROSS_ATTENTION) if hasattr(keys, "get") else None
    if shape is not None and len(shape) == 2 and shape[1] == 1024:
        return "sd2"
    return "sd1"


def inspect_checkpoint(
    path: Path, config_name: str | None = None, prediction_type: str | None = None
) -> CheckpointInfo:
    """Family, inpainting, config folder and prediction type of a single-file checkpoint, from its header alone.

    v-prediction cannot be seen in the weights, so it is taken, in order, from `prediction_type`, a
    `v_pred` marker key (as ComfyUI reads it), the safetensors metadata `modelspec.prediction_type`, an
    A1111-style `<name>.yaml` beside the file (`parameterization: "v"` or not), else None (the config
    folder's default). SD 2.x text-to-image files get the 768 px v-prediction config unless that says epsilon.
    config_name forces a shipped folder (e.g. "sd2-base" for a 512 px SD 2.x model).
    """
    path = Path(path)
    header = read_header(path)
    try:
        family = model_family_of_state_dict(header.shapes)
    except ModelError as e:
        if "no UNet" in str(e):
            hint = next((what for part, what in NOT_A_CHECKPOINT_HINTS if any(part in k for k in header.shapes)), None)
            raise ModelError(
                f"{path.name} is a .safetensors file but not a Stable Diffusion checkpoint "
                f"(no UNet weights found{'; it looks like ' + hint if hint else ''})."
            ) from e
        raise ModelError(f"{path.name}: {e}") from e
    channels = header.shapes.get(FIRST_CONV, (0, 4))[1]
    if channels not in (4, 9):
        raise ModelError(
            f"{path.name} has a {channels}-channel UNet; only text-to-image (4) and inpainting (9) models are supported."
        )
    is_inpaint = channels == 9
    if prediction_type is not None and prediction_type not in PREDICTION_TYPES:
        raise ModelError(f"Unknown prediction type {prediction_type!r}; use epsilon or v_prediction.")
    declared = prediction_type or _declared_prediction(path, header)
    if config_name is None:
        config_name = CONFIG_NAMES[(family, is_inpaint)]
        if config_name == "sd2-v" and declared == "epsilon":
            config_name = SD2_EPSILON_CONFIG
    elif not (CONFIGS_DIR / config_name).is_dir():
        known = ", ".join(sorted(p.name for p in CONFIGS_DIR.iterdir() if p.is_dir()))
        raise ModelError(f"Unknown model config {config_name!r}; choose one of: {known}.")
    return CheckpointInfo(family, is_inpaint, config_name, declared, ZERO_SNR_KEY in header.shapes)


def _declared_prediction(path: Path, header: CheckpointHeader) -> str | None:
    """"v_prediction" or "epsilon" when the file, its metadata or its A1111 sidecar .yaml says which; else None."""
    if V_PRED_KEY in header.shapes:
        return "v_prediction"
    declared = header.metadata.get("modelspec.prediction_type", "").strip().lower()
    if declared in ("v", "v_prediction", "v-prediction"):
        return "v_prediction"
    if declared in ("epsilon", "eps"):
        return "epsilon"
    sidecar = path.with_suffix(".yaml")
    if sidecar.is_file():
        try:
            text = sidecar.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        v = re.search(r"parameterization:\s*[\"']?v[\"']?\s*$", text, re.MULTILINE)
        return "v_prediction" if v else "epsilon"
    return None


def load_single_file(
    path: Path,
    device: str,
    dtype,
    progress=None,
    config_dir: Path | None = None,
    *,
    config_name: str | None = None,
    prediction_type: str | None = None,
) -> tuple[dict, str, bool]:
    """Load a single-file checkpoint offline -> (diffusers components dict, family, is_inpaint).

    The components (unet, vae, text_encoder[_2], tokenizer[_2], scheduler, and None for the safety
    checker, feature extractor and image encoder) are on `device` in `dtype`; the scheduler carries the
    model's prediction type (see inspect_checkpoint). config_dir replaces the shipped config folder
    (tests use a tiny one); config_name picks another shipped one; prediction_type overrides detection.
    The native resolution is `components["unet"].config.sample_size * 8`. Raises ModelError with one sentence.
    """
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise ModelError(f"{path.name} is not a .safetensors file; other checkpoint formats can run code and are refused.")
    info = inspect_checkpoint(path, config_name, prediction_type)
    folder = Path(config_dir) if config_dir is not None else CONFIGS_DIR / info.config_name
    _report(progress, 0, 3, f"Reading {path.name} ({folder.name})")

    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from diffusers.utils import logging as diffusers_logging

    pipeline_class = StableDiffusionXLPipeline if info.family == "sdxl" else StableDiffusionPipeline
    tokenizers = {name: load_tokenizer(folder / name) for name in ("tokenizer", "tokenizer_2") if (folder / name).is_dir()}
    bar_was_on = diffusers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()  # progress goes to our callback, not to a tqdm bar on stderr
    try:
        pipe = pipeline_class.from_single_file(
            str(path),
            config=str(folder),
            local_files_only=True,
            torch_dtype=dtype,
            **tokenizers,
        )
    except torch.cuda.OutOfMemoryError:
        raise
    except MemoryError as e:
        raise ModelError(f"Not enough memory to load {path.name}.") from e
    except Exception as e:  # diffusers raises many kinds; the user needs one sentence
        missing = re.search(r"Failed to load (\w+)\. Weights for this component appear to be missing", str(e))
        if missing:
            raise ModelError(
                f"{path.name} has no weights for its {missing.group(1)}; a single file must hold the UNet, VAE and text encoder."
            ) from e
        if "meta tensor" in str(e):
            raise ModelError(_lacks_weights(path, folder)) from e
        raise ModelError(f"Could not load {path.name} with the {folder.name} config: {_first_sentence(e)}") from e
    finally:
        if bar_was_on:
            diffusers_logging.enable_progress_bar()
    _report(progress, 1, 3, f"Checking {path.name}")
    components = dict(pipe.components)
    for module in components.values():
        # diffusers leaves weights the file lacks on the "meta" device instead of failing
        if isinstance(module, torch.nn.Module) and any(p.device.type == "meta" for p in module.parameters()):
            raise ModelError(_lacks_weights(path, folder))
    scheduler = components.get("scheduler")
    wanted = {"prediction_type": info.prediction_type} if info.prediction_type else {}
    if info.zero_snr:
        wanted.update(rescale_betas_zero_snr=True, timestep_spacing="trailing")
    if scheduler is not None and any(scheduler.config.get(k) != v for k, v in wanted.items()):
        components["scheduler"] = type(scheduler).from_config(scheduler.config, **wanted)
    _report(progress, 2, 3, f"Moving {path.name} to {device}")
    for name, module in components.items():
        if isinstance(module, torch.nn.Module):
            components[name] = module.to(device)
    _report(progress, 3, 3, f"Loaded {path.name}")
    return components, info.family, info.is_inpaint


def load_tokenizer(folder: Path):
    """A CLIPTokenizer for a config's tokenizer folder: its own vocab files if it has them, else the bundled ones.

    The shipped configs hold only tokenizer_config.json (pad token, max length) so one copy of the
    49408-token vocabulary serves every model.
    """
    from transformers import CLIPTokenizer

    folder = Path(folder)
    if (folder / "vocab.json").is_file() or (folder / "tokenizer.json").is_file():
        return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    overrides = {k: config[k] for k in ("pad_token", "model_max_length") if k in config}
    return CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR), local_files_only=True, **overrides)


def _lacks_weights(path: Path, folder: Path) -> str:
    """The sentence for a file that holds fewer weights than its config's model needs."""
    return f"{path.name} lacks some weights of a {folder.name} model (the file may be incomplete or another kind of model)."


def _report(progress, step: int, total: int, message: str) -> None:
    """Send a "loading" Progress to the callback, when there is one."""
    if progress is None:
        return
    from sd_studio.engine.request import Progress

    progress(Progress(phase="loading", step=step, total=total, message=message))


def _first_sentence(error: Exception) -> str:
    """The first sentence of an exception's message (diffusers' run on with advice), ending with a full stop."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0].strip()
    text = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].strip() or type(error).__name__
    return text if text.endswith((".", "!", "?")) else text + "."
