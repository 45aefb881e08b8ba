"""The incident log: exception hooks with context, dialogs, and hard crashes recorded by faulthandler."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sd_studio import incidents
from sd_studio.incidents import (
    collect_crash_reports,
    crash_dir,
    install_exception_hooks,
    log_exception,
    log_path,
    set_context,
    uninstall_exception_hooks,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dialogs():
    shown: list[tuple[str, str, Path]] = []
    old_sys, old_thread = sys.excepthook, threading.excepthook
    install_exception_hooks(lambda summary, details, path: shown.append((summary, details, path)))
    yield shown
    uninstall_exception_hooks()
    set_context(device=None, action=None, model=None)
    assert (sys.excepthook, threading.excepthook) == (old_sys, old_thread)


def _raise(exc: BaseException):
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001
        return caught


def test_main_thread_exception_is_logged_with_context_and_shown(dialogs):
    set_context(device="cuda:0 (NVIDIA test)", action="Generate", model="tiny-sd")
    exc = _raise(ValueError("the seed was a banana"))
    sys.excepthook(type(exc), exc, exc.__traceback__)
    log = log_path().read_text("utf-8")
    assert "ValueError: the seed was a banana" in log and "_raise" in log  # the traceback
    assert "action: Generate" in log and "device: cuda:0 (NVIDIA test)" in log and "model: tiny-sd" in log
    assert "sd-studio 0.1.0" in log and "thread: MainThread" in log
    [(summary, details, path)] = dialogs
    assert summary == "An unexpected error occurred: ValueError: the seed was a banana"
    assert "Traceback" in details and "device: cuda:0" in details
    assert path == log_path()


def test_worker_thread_exception_is_logged_and_shown(dialogs):
    def work():
        raise RuntimeError("engine fell over")

    worker = threading.Thread(target=work, name="engine")
    worker.start()
    worker.join()
    assert "RuntimeError: engine fell over" in log_path().read_text("utf-8")
    [(summary, details, _)] = dialogs
    assert "engine fell over" in summary and "thread: engine" in details


def test_a_failing_dialog_does_not_hide_the_error():
    def broken(summary, details, path):
        raise OSError("no display")

    install_exception_hooks(broken)
    try:
        exc = _raise(KeyError("k"))
        sys.excepthook(type(exc), exc, exc.__traceback__)  # must not raise
    finally:
        uninstall_exception_hooks()
    log = log_path().read_text("utf-8")
    assert "KeyError: 'k'" in log and "OSError: no display" in log and "showing the error dialog" in log


def test_keyboard_interrupt_is_not_an_incident(dialogs, capsys):
    exc = _raise(KeyboardInterrupt())
    sys.excepthook(type(exc), exc, exc.__traceback__)
    assert dialogs == []
    assert "KeyboardInterrupt" in capsys.readouterr().err
    assert not log_path().exists() or "KeyboardInterrupt" not in log_path().read_text("utf-8")


def test_context_keys_can_be_forgotten():
    set_context(device="cpu", action="Paint")
    set_context(device=None)
    assert incidents.context() == {"action": "Paint"}
    set_context(action=None)
    path = log_exception(_raise(TypeError("t")), action="Save")
    text = path.read_text("utf-8")
    assert "action: Save" in text and "device:" not in text


def test_the_log_follows_the_data_folder(tmp_path, monkeypatch):
    first = log_exception(_raise(ValueError("one")))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "elsewhere"))
    second = log_exception(_raise(ValueError("two")))
    assert first != second and "two" in second.read_text("utf-8") and "two" not in first.read_text("utf-8")


def test_a_hard_crash_is_recorded_and_reported_by_the_next_start(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = (
        "import faulthandler\n"
        "from sd_studio.incidents import install_exception_hooks\n"
        "install_exception_hooks(None)\n"
        "def paint_stroke():\n"
        "    faulthandler._sigsegv()\n"
        "paint_stroke()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.DEVNULL)
    assert child.wait(timeout=120) != 0
    crash = crash_dir() / f"{child.pid}.log"
    assert "Segmentation fault" in crash.read_text() and "paint_stroke" in crash.read_text()
    report = collect_crash_reports()
    assert report is not None and "paint_stroke" in report and str(child.pid) in report
    assert not crash.exists()
    assert "hard crash of sd-studio process" in log_path().read_text("utf-8")
    assert collect_crash_reports() is None


def test_a_clean_exit_leaves_no_crash_file():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = "from sd_studio.incidents import install_exception_hooks\ninstall_exception_hooks(None)\n"
    child = subprocess.Popen([sys.executable, "-c", script], env=env)
    assert child.wait(timeout=120) == 0
    assert not (crash_dir() / f"{child.pid}.log").exists()
