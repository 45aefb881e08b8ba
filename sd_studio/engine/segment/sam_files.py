"""Segment Anything weights on disk: folders, single .safetensors files (transformers' or the original layout), never pickles.

A model is read from its safetensors header first, so that the configuration of a bare file (no
config.json beside it) is worked out from the shapes of its tensors: SAM ViT-B/L/H, SlimSAM and any
other SamModel-shaped checkpoint load without a download.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from sd_studio.engine.models.files import HUB_ID, PICKLE_SUFFIXES, pickle_refusal, read_safetensors_header
from sd_studio.errors import ModelError

RECOMMENDED_REPOS = (
    "Zigeng/SlimSAM-uniform-77",  # 39 MB, Apache-2.0: the laptop choice (a click in well under a second)
    "Zigeng/SlimSAM-uniform-50",  # 112 MB, Apache-2.0: closer to SAM's quality
    "facebook/sam-vit-base",  # 375 MB, Apache-2.0: the original SAM ViT-B
)
"""Hub repos (config.json + model.safetensors) for the "Get a model" catalog's segmentation kind."""

HUB_FILES = ["config.json", "model.safetensors", "model-*.safetensors", "model.safetensors.index.json"]
"""What a Segment Anything repo needs from the hub: its configuration and safetensors weights."""

MAX_CONFIG_BYTES = 1 << 20

TRANSFORMERS_PROBE = "vision_encoder.patch_embed.projection.weight"
ORIGINAL_PROBE = "image_encoder.patch_embed.proj.weight"

# segment-anything's names -> transformers' names (transformers' convert_sam_to_hf.py, applied in order).
_ORIGINAL_RENAMES = (
    ("iou_prediction_head.layers.0", "iou_prediction_head.proj_in"),
    ("iou_prediction_head.layers.1", "iou_prediction_head.layers.0"),
    ("iou_prediction_head.layers.2", "iou_prediction_head.proj_out"),
    ("mask_decoder.output_upscaling.0", "mask_decoder.upscale_conv1"),
    ("mask_decoder.output_upscaling.1", "mask_decoder.upscale_layer_norm"),
    ("mask_decoder.output_upscaling.3", "mask_decoder.upscale_conv2"),
    ("mask_downscaling.0", "mask_embed.conv1"),
    ("mask_downscaling.1", "mask_embed.layer_norm1"),
    ("mask_downscaling.3", "mask_embed.conv2"),
    ("mask_downscaling.4", "mask_embed.layer_norm2"),
    ("mask_downscaling.6", "mask_embed.conv3"),
    ("point_embeddings", "point_embed"),
    ("pe_layer.positional_encoding_gaussian_matrix", "shared_embedding.positional_embedding"),
    ("image_encoder", "vision_encoder"),
    ("neck.0", "neck.conv1"),
    ("neck.1", "neck.layer_norm1"),
    ("neck.2", "neck.conv2"),
    ("neck.3", "neck.layer_norm2"),
    ("patch_embed.proj", "patch_embed.projection"),
    (".norm", ".layer_norm"),
    ("blocks", "layers"),
)
_HYPERNETWORK = re.compile(r"(.*output_hypernetworks_mlps\.\d+\.)layers\.(\d+)(\..*)")
_HYPERNETWORK_NAMES = {"0": "proj_in", "1": "layers.0", "2": "proj_out"}
TIED = ("shared_image_embedding.positional_embedding", "prompt_encoder.shared_embedding.positional_embedding")
"""Two names of one tensor; a file may hold either."""


@dataclass(frozen=True)
class SamSource:
    """A Segment Anything model found on disk: its name, its SamConfig as a dict, its weight files and their layout."""

    name: str
    spec: str
    config: dict
    files: tuple[Path, ...]
    layout: str  # "transformers" | "original"


def sam_source(spec: str) -> SamSource:
    """The model a --model argument names: a folder, a .safetensors file or a hub id in the local cache; else ModelError."""
    if not isinstance(spec, str) or not spec.strip():
        raise ModelError("No segmentation model given: pass a folder, a .safetensors file or a hub id.")
    spec = spec.strip()
    path = Path(spec).expanduser()
    if path.is_file():
        return _file_source(path)
    if path.is_dir():
        return _folder_source(path)
    if HUB_ID.match(spec) and not spec.startswith((".", "/", "~")) and path.suffix.lower() not in (".safetensors", *PICKLE_SUFFIXES):
        return _folder_source(_cached_snapshot(spec), name=spec.split("/")[-1], spec=spec)
    raise ModelError(f"There is no segmentation model file or folder at {spec}.")


def _file_source(path: Path) -> SamSource:
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise ModelError(pickle_refusal(path))
    if suffix != ".safetensors":
        raise ModelError(f"{path.name} is not a model file; pass a .safetensors file or a model folder.")
    shapes = _shapes(read_safetensors_header(path))
    layout = _layout(shapes, path.name)
    if layout == "original":
        shapes = {original_to_transformers(k): v for k, v in shapes.items()}
    config = _config_beside(path) or infer_config(shapes, path.name)
    return SamSource(path.stem, str(path.resolve()), config, (path.resolve(),), layout)


def _folder_source(folder: Path, name: str | None = None, spec: str | None = None) -> SamSource:
    folder = folder.resolve()
    weights = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
    if not weights:
        if any(p.suffix.lower() in PICKLE_SUFFIXES for p in folder.iterdir()):
            raise ModelError(
                f"{folder.name} has only pickle weights, which are not loaded because unpickling can run arbitrary "
                "code; download its model.safetensors instead."
            )
        raise ModelError(f"{folder} holds no .safetensors weights, so it is not a model SD Studio can load.")
    config = _read_config(folder / "config.json") if (folder / "config.json").is_file() else None
    if config is None and len(weights) == 1:
        return _file_source(weights[0])
    if config is None:
        raise ModelError(f"{folder} has several .safetensors files but no config.json to say how they fit together.")
    shapes: dict[str, list[int]] = {}
    for file in weights:
        shapes.update(_shapes(read_safetensors_header(file)))
    layout = _layout(shapes, folder.name)
    return SamSource(name or folder.name, spec or str(folder), config, tuple(weights), layout)


def _cached_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    from sd_studio.engine.models.hub import hf_cache_dir

    try:
        return Path(snapshot_download(repo_id, cache_dir=hf_cache_dir(), local_files_only=True, allow_patterns=HUB_FILES))
    except Exception:  # noqa: BLE001 - any failure here means: not downloaded (usable) yet
        raise ModelError(
            f"{repo_id} is not downloaded yet; get it with Get a model, or `huggingface-cli download {repo_id}`, "
            "or pass its folder or .safetensors file."
        ) from None


def _read_config(path: Path) -> dict:
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ValueError("too large")
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        raise ModelError(f"{path} is not a readable configuration file.") from None
    if not isinstance(config, dict) or config.get("model_type") != "sam":
        kind = config.get("model_type") if isinstance(config, dict) else None
        raise ModelError(f"{path.parent.name} is not a Segment Anything model (its config says {kind!r}, not 'sam').")
    return config


def _config_beside(path: Path) -> dict | None:
    beside = path.parent / "config.json"
    if not beside.is_file():
        return None
    try:
        return _read_config(beside)
    except ModelError:
        return None  # a neighbour's config (another model in the same folder): infer this file's own


def _shapes(header: dict) -> dict[str, list[int]]:
    return {k: list(v.get("shape", [])) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}


def _layout(shapes: dict, name: str) -> str:
    if TRANSFORMERS_PROBE in shapes:
        return "transformers"
    if ORIGINAL_PROBE in shapes:
        return "original"
    raise ModelError(f"{name} is not a Segment Anything model (it has no SAM image encoder).")


def original_to_transformers(key: str) -> str:
    """A tensor name of segment-anything's checkpoints in transformers' SamModel naming."""
    for old, new in _ORIGINAL_RENAMES:
        if old in key:
            key = key.replace(old, new)
    match = _HYPERNETWORK.match(key)
    if match:
        key = f"{match.group(1)}{_HYPERNETWORK_NAMES.get(match.group(2), 'layers.' + match.group(2))}{match.group(3)}"
    return key


def _layers(shapes: dict, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in shapes for m in [pattern.match(k)] if m}
    return max(found) + 1 if found else 0


def infer_config(shapes: dict[str, list[int]], name: str = "the file") -> dict:
    """A SamConfig dict for weights in transformers' naming, from their shapes alone; ModelError when they do not fit."""
    try:
        hidden, channels, patch, _ = shapes[TRANSFORMERS_PROBE]
        grid = shapes["vision_encoder.pos_embed"][1] if "vision_encoder.pos_embed" in shapes else 64
        layers = _layers(shapes, "vision_encoder.layers.")
        mlp_dim = shapes["vision_encoder.layers.0.mlp.lin1.weight"][0]
        windows, head_dim, global_layers = [], None, []
        for i in range(layers):
            rel = shapes.get(f"vision_encoder.layers.{i}.attn.rel_pos_h")
            if rel is None:
                continue
            head_dim = rel[1]
            if rel[0] == 2 * grid - 1:
                global_layers.append(i)
            else:
                windows.append((rel[0] + 1) // 2)
        output_channels = shapes["vision_encoder.neck.conv1.weight"][0]
        pos_feats = shapes.get(TIED[0], shapes.get(TIED[1]))[1]
        decoder_hidden = shapes["mask_decoder.iou_token.weight"][1]
        decoder_layers = _layers(shapes, "mask_decoder.transformer.layers.")
        decoder_mlp = shapes["mask_decoder.transformer.layers.0.mlp.lin1.weight"][0]
        iou_hidden = shapes["mask_decoder.iou_prediction_head.proj_in.weight"][0]
        iou_depth = _layers(shapes, "mask_decoder.iou_prediction_head.layers.") + 2
        outputs = shapes["mask_decoder.mask_tokens.weight"][0] - 1
        mask_channels = shapes["prompt_encoder.mask_embed.conv2.weight"][0]
    except (KeyError, IndexError, TypeError, ValueError):
        raise ModelError(f"{name} does not have the tensors of a Segment Anything model, so it cannot be loaded.") from None
    vision = {
        "hidden_size": hidden, "num_channels": channels, "patch_size": patch, "image_size": grid * patch,
        "num_hidden_layers": layers, "mlp_dim": mlp_dim, "output_channels": output_channels,
        "num_pos_feats": pos_feats, "global_attn_indexes": global_layers,
        "use_rel_pos": head_dim is not None,
    }
    if head_dim:
        vision["num_attention_heads"] = hidden // head_dim
    if windows:
        vision["window_size"] = windows[0]
    decoder = {
        "hidden_size": decoder_hidden, "num_hidden_layers": decoder_layers, "mlp_dim": decoder_mlp,
        "iou_head_hidden_dim": iou_hidden, "iou_head_depth": iou_depth, "num_multimask_outputs": outputs,
        # Every released SAM uses 8 heads here; the shapes cannot tell (they split one projection).
        "num_attention_heads": 8 if decoder_hidden % 8 == 0 else 1,
    }
    prompt = {"hidden_size": output_channels, "image_size": grid * patch, "patch_size": patch,
              "mask_input_channels": mask_channels}
    return {"model_type": "sam", "vision_config": vision, "mask_decoder_config": decoder, "prompt_encoder_config": prompt}


def is_sam_file(path: Path) -> bool:
    """True when a .safetensors file holds a Segment Anything model (its header says so; nothing else is read)."""
    try:
        shapes = read_safetensors_header(path)
    except ModelError:
        return False
    return TRANSFORMERS_PROBE in shapes or ORIGINAL_PROBE in shapes


def find_sam_models(folders: list[Path]) -> list[SamSource]:
    """The Segment Anything models in these folders (files and model folders) and in the Hugging Face cache, in order."""
    from sd_studio.engine.models.hub import hf_cache_dir

    found: list[SamSource] = []
    seen: set[str] = set()

    def add(candidate, *args) -> None:
        try:
            source = candidate(*args)
        except ModelError:
            return
        if source.spec not in seen:
            seen.add(source.spec)
            found.append(source)

    for base in folders:
        base = Path(base).expanduser()
        if not base.is_dir():
            continue
        for item in sorted(base.iterdir()):
            if item.is_file() and item.suffix.lower() == ".safetensors" and is_sam_file(item):
                add(_file_source, item)
            elif item.is_dir() and _folder_says_sam(item):
                add(_folder_source, item)
    cache = hf_cache_dir()
    if cache.is_dir():
        for repo in sorted(cache.glob("models--*--*")):
            parts = repo.name.split("--", 2)
            snapshots = sorted(s for s in (repo / "snapshots").glob("*") if _folder_says_sam(s))
            if len(parts) == 3 and snapshots:
                add(_folder_source, snapshots[-1], parts[2], f"{parts[1]}/{parts[2]}")
    return found


def _folder_says_sam(folder: Path) -> bool:
    config = folder / "config.json"
    try:
        return config.is_file() and config.stat().st_size < MAX_CONFIG_BYTES and json.loads(
            config.read_text(encoding="utf-8")).get("model_type") == "sam"
    except (OSError, ValueError, AttributeError):
        return False
