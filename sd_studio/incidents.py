"""Incident log: unexpected exceptions and hard crashes written with context to the user's data folder.

Unexpected exceptions go to a rotating `incidents.log`; `install_exception_hooks` routes every
unhandled exception (main thread and other threads) there and to a dialog callback, and makes
`faulthandler` write hard crashes (segfaults, aborts) of this process to `crashes/<pid>.log`. The
next start moves a crash file left by a dead process into the incident log. Context the log
should carry is set with `set_context(**values)`: in the editor, `action` (the menu action last
triggered, set by ui/main_window.py before its handler runs) and `device` and `model` (what the engine thread runs on,
ui/engine_thread.py).
"""

from __future__ import annotations

import atexit
import faulthandler
import logging
import logging.handlers
import os
import platform
import sys
import threading
import traceback
from pathlib import Path
from typing import Callable

from sd_studio import __version__

_LOGGER_NAME = "sd_studio.incidents"

ShowDialog = Callable[[str, str, Path], None]
"""show_dialog(summary, details, log_path): summary is one sentence, details the full report."""

_context: dict[str, str] = {}
_context_lock = threading.Lock()
_installed: dict[str, object] = {}


def data_dir() -> Path:
    """The user's data folder for sd_studio (recovery copies, logs, caches), created on demand."""
    from platformdirs import user_data_path

    path = user_data_path("sd-studio", appauthor=False)
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_path() -> Path:
    """Where the incident log is written."""
    return data_dir() / "incidents.log"


def crash_dir() -> Path:
    """Where faulthandler writes hard crashes, one file per process."""
    path = data_dir() / "crashes"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _logger() -> logging.Logger:
    logger = logging.getLogger(_LOGGER_NAME)
    wanted = str(log_path())
    for handler in list(logger.handlers):
        if getattr(handler, "baseFilename", None) != wanted:
            # the data folder moved (tests, a changed XDG_DATA_HOME): log where it is now
            logger.removeHandler(handler)
            handler.close()
    if not logger.handlers:
        handler = logging.handlers.RotatingFileHandler(wanted, maxBytes=1 << 20, backupCount=3, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def set_context(**values: object) -> None:
    """Remember facts to write with every incident (device="cuda:0", action="Generate"...);
    a value of None forgets that key."""
    with _context_lock:
        for key, value in values.items():
            if value is None:
                _context.pop(key, None)
            else:
                _context[key] = str(value)


def context() -> dict[str, str]:
    """The facts set with set_context, as a copy."""
    with _context_lock:
        return dict(_context)


def describe_exception(exc: BaseException, action: str = "", thread: str | None = None) -> str:
    """The details of an exception with the context a bug report needs."""
    facts = context()
    action = action or facts.pop("action", "")
    facts.pop("action", None)
    lines = [
        f"sd-studio {__version__} on Python {sys.version.split()[0]}, {platform.platform()}",
        f"action: {action or 'unknown'}",
        f"thread: {thread or threading.current_thread().name}",
    ]
    lines += [f"{key}: {value}" for key, value in sorted(facts.items())]
    lines.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())
    return "\n".join(lines)


def log_exception(exc: BaseException, action: str = "", thread: str | None = None) -> Path:
    """Write an exception with its context to the incident log; returns the log's path."""
    return _write(describe_exception(exc, action, thread))


def _write(text: str) -> Path:
    try:
        _logger().error(text)
        for handler in _logger().handlers:
            handler.flush()
        return log_path()
    except OSError:
        return Path("(the incident log could not be written)")


def summary_of(exc: BaseException) -> str:
    """One sentence for the dialog's headline."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = exc.__class__.__name__
    return f"An unexpected error occurred: {name}: {message}" if message else f"An unexpected error occurred ({name})."


def install_exception_hooks(show_dialog: ShowDialog | None = None) -> str | None:
    """Send unhandled exceptions of every thread to the incident log and then to show_dialog,
    and record hard crashes with faulthandler; returns the report of a hard crash that a
    previous session left, if any (it is also moved into the incident log).

    show_dialog may be called from any thread (a worker's exception arrives on that worker),
    so a GUI must hand it to its main thread. The program keeps running after the hook.
    """
    previous = collect_crash_reports()
    uninstall_exception_hooks()

    def report(exc: BaseException, thread: str | None) -> None:
        details = describe_exception(exc, thread=thread)
        path = _write(details)
        if show_dialog is None:
            sys.stderr.write(f"sd-studio: {summary_of(exc)} (details in {path})\n")
            return
        try:
            show_dialog(summary_of(exc), details, path)
        except Exception as failure:  # noqa: BLE001 - a broken dialog must not hide the first error
            log_exception(failure, action="showing the error dialog")

    def excepthook(exc_type, exc, tb) -> None:
        if issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            sys.__excepthook__(exc_type, exc, tb)
            return
        exc = exc if exc is not None else exc_type()
        if exc.__traceback__ is None:
            exc.__traceback__ = tb
        report(exc, threading.current_thread().name)

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        exc = args.exc_value if args.exc_value is not None else args.exc_type()
        if exc.__traceback__ is None:
            exc.__traceback__ = args.exc_traceback
        report(exc, args.thread.name if args.thread is not None else None)

    _installed["sys"] = sys.excepthook
    _installed["threading"] = threading.excepthook
    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook
    _enable_faulthandler()
    return previous


def uninstall_exception_hooks() -> None:
    """Put back the hooks install_exception_hooks replaced and stop recording hard crashes."""
    if "sys" in _installed:
        sys.excepthook = _installed.pop("sys")  # type: ignore[assignment]
    if "threading" in _installed:
        threading.excepthook = _installed.pop("threading")  # type: ignore[assignment]
    _disable_faulthandler()


def crash_file() -> Path:
    """This process's hard-crash file."""
    return crash_dir() / f"{os.getpid()}.log"


def _enable_faulthandler() -> None:
    try:
        stream = open(crash_file(), "w", encoding="utf-8")  # noqa: SIM115 - faulthandler keeps it open
    except OSError:
        return
    faulthandler.enable(file=stream, all_threads=True)
    _installed["crash_stream"] = stream
    if not _installed.get("atexit"):
        atexit.register(_disable_faulthandler)
        _installed["atexit"] = True


def _disable_faulthandler() -> None:
    stream = _installed.pop("crash_stream", None)
    if stream is None:
        return
    faulthandler.disable()
    name = Path(stream.name)  # type: ignore[attr-defined]
    stream.close()  # type: ignore[attr-defined]
    try:
        if name.stat().st_size == 0:
            name.unlink()  # a clean exit: nothing to report next time
    except OSError:
        pass


def collect_crash_reports() -> str | None:
    """Move hard-crash files of processes that are gone into the incident log; returns their text."""
    from sd_studio.processes import process_alive

    reports = []
    try:
        files = sorted(crash_dir().glob("*.log"))
    except OSError:
        return None
    for path in files:
        try:
            pid = int(path.stem)
        except ValueError:
            continue
        if pid == os.getpid() or process_alive(pid):
            continue
        try:
            text = path.read_text("utf-8", errors="replace").strip()
            path.unlink()
        except OSError:
            continue
        if text:
            report = f"hard crash of sd-studio process {pid} in a previous session:\n{text}"
            _write(report)
            reports.append(report)
    return "\n\n".join(reports) or None
