"""Server tokens kept out of QSettings: in the system keyring when the `keyring` package is there, else in a
file only the user can read (a 0700 folder of the config directory), written atomically.

Tokens are looked up by server address; nothing here logs or prints them.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

KEYRING_SERVICE = "sd-studio ComfyUI"


def tokens_dir() -> Path:
    """The private folder of the token file, created 0700 (and made so) on demand."""
    from platformdirs import user_config_path

    folder = user_config_path("sd-studio", appauthor=False) / "secrets"
    folder.mkdir(parents=True, exist_ok=True)
    if os.name == "posix" and stat.S_IMODE(folder.stat().st_mode) != 0o700:
        folder.chmod(0o700)
    return folder


class TokenStore:
    """Bearer tokens by server address: get, set (an empty token forgets), and where they live."""

    def __init__(self, path: Path | None = None, use_keyring: bool | None = None) -> None:
        self._path = path
        self._keyring = _keyring() if use_keyring is not False else None

    @property
    def path(self) -> Path:
        """The token file (used when there is no keyring)."""
        return self._path if self._path is not None else tokens_dir() / "comfyui-tokens.json"

    @property
    def where(self) -> str:
        """Where tokens are kept, in words for the settings page."""
        return "the system keyring" if self._keyring is not None else f"{self.path} (readable by you only)"

    def get(self, server: str) -> str:
        """The token for a server address, or ""."""
        if self._keyring is not None:
            try:
                return self._keyring.get_password(KEYRING_SERVICE, server) or ""
            except Exception:  # noqa: BLE001 - a locked or broken keyring: as if none were stored
                return ""
        return str(self._read().get(server, ""))

    def set(self, server: str, token: str) -> None:
        """Keep a server's token (an empty one removes it)."""
        if self._keyring is not None:
            try:
                if token:
                    self._keyring.set_password(KEYRING_SERVICE, server, token)
                else:
                    self._keyring.delete_password(KEYRING_SERVICE, server)
                return
            except Exception:  # noqa: BLE001 - fall back to the private file
                self._keyring = None
        tokens = self._read()
        if token:
            tokens[server] = token
        else:
            tokens.pop(server, None)
        self._write(tokens)

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _write(self, tokens: dict) -> None:
        from sd_studio.document.io.atomic import atomic_write

        payload = json.dumps(tokens, indent=1).encode("utf-8")
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(self.path, lambda out: out.write(payload))
        if os.name == "posix":
            self.path.chmod(0o600)


def _keyring():
    """The keyring module when it is installed and has a usable backend, else None."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        if isinstance(keyring.get_keyring(), fail.Keyring):
            return None
    except Exception:  # noqa: BLE001 - a misconfigured keyring is no keyring
        return None
    return keyring
