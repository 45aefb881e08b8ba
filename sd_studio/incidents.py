"""Incident log: unexpected exceptions written with context to a rotating log file."""

from __future__ import annotations

import logging
import logging.handlers
import platform
import sys
import traceback
from pathlib import Path

from sd_studio import __version__

_LOGGER_NAME = "sd_studio.incidents"


def data_dir() -> Path:
    """The user's data folder for sd_studio (recovery copies, logs, caches), created on demand."""
    from platformdirs import user_data_path

    path = user_data_path("sd-studio", appauthor=False)
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_path() -> Path:
    """Where the incident log is written."""
    return data_dir() / "incidents.log"


def _logger() -> logging.Logger:
    logger = logging.getLogger(_LOGGER_NAME)
    if not logger.handlers:
        handler = logging.handlers.RotatingFileHandler(log_path(), maxBytes=1 << 20, backupCount=3, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def describe_exception(exc: BaseException, action: str = "") -> str:
    """The details of an exception with the context a bug report needs."""
    lines = [
        f"sd-studio {__version__} on Python {sys.version.split()[0]}, {platform.platform()}",
        f"action: {action or 'unknown'}",
        "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip(),
    ]
    return "\n".join(lines)


def log_exception(exc: BaseException, action: str = "") -> Path:
    """Write an exception with its context to the incident log; returns the log's path."""
    try:
        _logger().error(describe_exception(exc, action))
        return log_path()
    except OSError:
        return Path("(the incident log could not be written)")
