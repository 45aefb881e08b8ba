"""The Hugging Face hub: its cache folder and address, offline mode, its errors in one sentence, and fetching a
diffusers repo's safetensors into the cache with progress (a hub id typed in the Model box)."""

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
LOGIN_HINT = "`hf auth login`"  # the installed huggingface_hub's command line (there is no huggingface-cli any more)


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


def hub_endpoint() -> str:
    """The hub's address as huggingface_hub holds it now (HF_ENDPOINT, or https://huggingface.co).

    Passed explicitly to every call: huggingface_hub builds some of its URLs from a template made at import.
    """
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def hub_file_url(repo_id: str, filename: str, revision: str = "main") -> str:
    """The hub's address of one file of a repo at a revision (/{repo}/resolve/{revision}/{file}), on hub_endpoint()."""
    from urllib.parse import quote

    return f"{hub_endpoint()}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(filename)}"


def offline_sentence(repo_id: str) -> str:
    """Why nothing can be downloaded while offline mode is on, and what to do instead."""
    return (
        f"{repo_id} cannot be downloaded because the Hugging Face hub is switched off here (HF_HUB_OFFLINE is set); "
        f"unset it, or download it elsewhere with `hf download {repo_id}`, or pass a folder or .safetensors file."
    )


def hub_error_sentence(exc: BaseException, repo_id: str, filename: str = "") -> str:
    """One sentence for a failed hub request: no network, offline mode, no such repo or file, gated, server errors."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    status = getattr(getattr(exc, "response", None), "status_code", None)
    what = f"{filename} of {repo_id}" if filename else repo_id
    if "OfflineModeIsEnabled" in names:
        return offline_sentence(repo_id)
    if "GatedRepoError" in names:
        return (
            f"{repo_id} is gated: accept its licence on https://huggingface.co/{repo_id} and log in with {LOGIN_HINT}, "
            "then try again."
        )
    if "RepositoryNotFoundError" in names:
        return f"There is no model {repo_id!r} on the Hugging Face hub (a private one needs {LOGIN_HINT} first)."
    if "RevisionNotFoundError" in names:
        return f"{repo_id} on the Hugging Face hub has no such revision; the catalog or the model id is out of date."
    if "EntryNotFoundError" in names and "LocalEntryNotFoundError" not in names:
        return f"{repo_id} on the Hugging Face hub has no file {filename or 'of that name'} any more."
    unreachable = names & {"ConnectError", "ConnectTimeout", "TimeoutException", "NetworkError", "TransportError",
                           "RemoteProtocolError", "ProxyError", "LocalEntryNotFoundError", "ConnectionError"}
    if unreachable:
        return (
            f"{what} could not be downloaded because the Hugging Face hub could not be reached; check the network "
            f"and try again, or download it elsewhere with `hf download {repo_id}`."
        )
    if status == 429:
        return "The Hugging Face hub is limiting downloads for now (HTTP 429); wait a few minutes and try again."
    if isinstance(status, int) and status >= 500:
        return f"The Hugging Face hub answered with a server error (HTTP {status}) for {what}; try again later."
    if status in (401, 403):
        return f"The Hugging Face hub refused {what} (HTTP {status}); log in with {LOGIN_HINT} if it needs an account."
    if isinstance(status, int):
        return f"The Hugging Face hub answered HTTP {status} for {what}."
    return f"{what} could not be downloaded ({type(exc).__name__}); check the network and try again."


def fetch_hub_model(repo_id: str, progress: ProgressCallback | None = None) -> Path:
    """The local snapshot folder of a hub model: from the cache, else downloaded with progress (safetensors only)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hf_cache_dir()
    try:
        return Path(snapshot_download(repo_id, cache_dir=cache, local_files_only=True, allow_patterns=HUB_PATTERNS))
    except LocalEntryNotFoundError:
        pass
    except Exception as exc:  # noqa: BLE001 - a malformed cache entry: a download or the offline message follows
        if hub_offline():
            raise ModelError(f"The cached copy of {repo_id} could not be read ({exc}).") from None
    if hub_offline():
        raise ModelError(
            f"{repo_id} is not in the local Hugging Face cache ({cache}) and there is no network; download it once "
            f"with `hf download {repo_id}` or pass a folder or .safetensors file."
        )
    try:
        folder = snapshot_download(
            repo_id, cache_dir=cache, allow_patterns=HUB_PATTERNS, ignore_patterns=HUB_IGNORE,
            tqdm_class=_download_tqdm(repo_id, progress), endpoint=hub_endpoint(),
        )
    except Exception as exc:  # noqa: BLE001 - every hub failure becomes one sentence
        raise ModelError(hub_error_sentence(exc, repo_id)) from None
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
