"""The backends a long-lived process keeps open: one per engine setting, reused job after job.

Opening a ComfyUI pool costs a connection, a websocket and an /object_info per server; a Bedrock or
SageMaker backend its boto3 client. The editor's engine thread keeps an `OpenBackends` and asks it for
the backend of the engine box's choice before each job; a changed setting closes the old one.
"""

from __future__ import annotations

import threading

from sd_studio.engine.backends.base import Backend
from sd_studio.engine.backends.settings import EngineSettings, open_backend


class OpenBackends:
    """Open backends by their settings (frozen values compare equal when nothing changed)."""

    def __init__(self, models=None) -> None:
        self._models = models
        self._open: dict[EngineSettings | None, Backend] = {}
        self._lock = threading.Lock()

    def get(self, settings: EngineSettings | None) -> Backend:
        """The backend for these settings (None: this computer), opened on first use; others of its kind closed."""
        with self._lock:
            backend = self._open.get(settings)
            if backend is not None:
                return backend
            kind = getattr(settings, "kind", None)
            for old in [key for key in self._open if getattr(key, "kind", None) == kind and key != settings]:
                self._open.pop(old).close()
            backend = self._open[settings] = open_backend(settings, self._models)
            return backend

    def close(self) -> None:
        """Close every open backend."""
        with self._lock:
            backends, self._open = list(self._open.values()), {}
        for backend in backends:
            backend.close()
