"""Which engine runs diffusion and how to reach it, as typed values: the CLI's --backend, QSettings, the engine box.

`BackendKind` and the settings classes are the vocabulary (they belong in engine/options.py once the
engines join it); `parse_backend` reads the command line's spec and `open_backend` makes the Backend.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum

from sd_studio.engine.backends.base import Backend, BackendError

COMFYUI_TOKEN_ENV = "SD_STUDIO_COMFYUI_TOKEN"
"""The environment variable the command line reads a ComfyUI bearer token from (not an argument: ps shows those)."""


class BackendKind(str, Enum):
    """Where diffusion runs; the value is what QSettings and --backend store, `label` what the engine box shows."""

    label: str

    def __new__(cls, value: str, label: str) -> BackendKind:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    LOCAL = "local", "This computer"
    COMFYUI = "comfyui", "ComfyUI server"
    BEDROCK = "bedrock", "Amazon Bedrock"
    SAGEMAKER = "sagemaker", "Amazon SageMaker endpoint"


@dataclass(frozen=True)
class ComfyServerSettings:
    """One ComfyUI server: its address, an optional bearer token and how to check its TLS certificate."""

    url: str
    token: str = field(default="", repr=False)
    ca_file: str = ""
    """A PEM file of the CA that signed the server's certificate (a private CA); empty: the system's."""
    verify_tls: bool = True


@dataclass(frozen=True)
class ComfySettings:
    """One ComfyUI server, or several used as one pool."""

    servers: tuple[ComfyServerSettings, ...]
    kind: BackendKind = field(default=BackendKind.COMFYUI, init=False)


@dataclass(frozen=True)
class BedrockSettings:
    """An Amazon Bedrock model; credentials come from the standard AWS chain (env, ~/.aws, SSO, instance role)."""

    model_id: str
    region: str = ""
    """Empty: the region the AWS configuration names."""
    profile: str = ""
    """A named profile of ~/.aws/config; empty: the default chain."""
    search_prompt: str = ""
    """What Search and Replace looks for (the prompt says what replaces it)."""
    kind: BackendKind = field(default=BackendKind.BEDROCK, init=False)


@dataclass(frozen=True)
class SageMakerSettings:
    """A SageMaker endpoint serving a JumpStart Stable Diffusion model."""

    endpoint: str
    region: str = ""
    profile: str = ""
    kind: BackendKind = field(default=BackendKind.SAGEMAKER, init=False)


EngineSettings = ComfySettings | BedrockSettings | SageMakerSettings


def parse_backend(spec: str, *, region: str = "", token: str | None = None) -> EngineSettings | None:
    """The settings a --backend spec names: "comfyui=URL[,URL...]", "bedrock:MODEL_ID", "sagemaker:ENDPOINT",
    or "local" (None: this computer). BackendError for anything else.

    A ComfyUI token comes from `token`, else the SD_STUDIO_COMFYUI_TOKEN environment variable, else what
    Settings > Engines saved for that server (engine/backends/tokens.py).
    """
    text = (spec or "").strip()
    if text in ("", "local"):
        return None
    name, sep, rest = _split(text)
    rest = rest.strip()
    if name == "comfyui" and sep == "=":
        token = os.environ.get(COMFYUI_TOKEN_ENV, "") if token is None else token
        urls = [url.strip() for url in rest.split(",") if url.strip()]
        if not urls:
            raise BackendError("--backend comfyui=URL needs the server's address, such as comfyui=http://127.0.0.1:8188.")
        return ComfySettings(tuple(ComfyServerSettings(url, token or _saved_token(url)) for url in urls))
    if name == "bedrock" and sep == ":" and rest:
        return BedrockSettings(rest, region=region)
    if name == "sagemaker" and sep == ":" and rest:
        return SageMakerSettings(rest, region=region)
    raise BackendError(f"Unknown backend {text!r}; use comfyui=URL, bedrock:MODEL_ID, sagemaker:ENDPOINT or local.")


def _saved_token(url: str) -> str:
    """The token Settings > Engines saved for a server, or ""."""
    from sd_studio.engine.backends.comfyui.protocol import ServerAddress
    from sd_studio.engine.backends.tokens import TokenStore

    return TokenStore().get(ServerAddress.parse(url).http)


def _split(text: str) -> tuple[str, str, str]:
    """("comfyui", "=", "http://...") or ("bedrock", ":", "stability.sd3-5-large-v1:0"): the first = or : splits."""
    cut = min((i for i in (text.find("="), text.find(":")) if i >= 0), default=-1)
    if cut < 0:
        return text.casefold(), "", ""
    return text[:cut].strip().casefold(), text[cut], text[cut + 1 :]


def open_backend(settings: EngineSettings | None, models=None, **options) -> Backend:
    """The Backend for settings (None: this computer, with `models` as its ModelCache); `options` reach its constructor."""
    if settings is None:
        from sd_studio.engine.backends.local import LocalBackend

        return LocalBackend(models)
    if isinstance(settings, ComfySettings):
        from sd_studio.engine.backends.comfyui.backend import ComfyBackend

        return ComfyBackend(settings.servers, **options)
    if isinstance(settings, BedrockSettings):
        from sd_studio.engine.backends.bedrock.backend import BedrockBackend

        return BedrockBackend(settings, **options)
    if isinstance(settings, SageMakerSettings):
        from sd_studio.engine.backends.sagemaker import SageMakerBackend

        return SageMakerBackend(settings, **options)
    raise BackendError(f"Unknown engine settings {type(settings).__name__}.")
