"""The Hugging Face hub: its cache folder, offline mode, and downloading a model's safetensors with progress."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sd_studio.errors import ModelError

if TYPE_CHECKING:
    from sd_studio.engine.request import ProgressCallback

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


def fetch_hub_model(repo_id: str, progress: ProgressCallback | None = None) -> Path:
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


def _download_tqdm(repo_id: str, progress: ProgressCallback | None):
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
