"""What the incident log says of an error: the action the user triggered, the device and model the
engine runs on; and the error box's log path and "Copy details" button."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QShortcutEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox, QToolBar

from sd_studio.app import _install_crash_handlers
from sd_studio.engine.request import GenerationRequest
from sd_studio.errors import FileError
from sd_studio.incidents import context, log_path, set_context, uninstall_exception_hooks
from sd_studio.ui.actions import action_name
from sd_studio.ui.errors import show_error


@pytest.fixture(autouse=True)
def _fresh_context():
    set_context(device=None, action=None, model=None)
    yield
    uninstall_exception_hooks()
    set_context(device=None, action=None, model=None)


def _entry(message: str) -> str:
    """The incident-log entry of the exception whose message is message."""
    [entry] = [e for e in log_path().read_text("utf-8").split(" ERROR ") if message in e]
    return entry


def _fill_job(qtbot) -> None:
    """Run a classical fill on an engine thread of its own, as the editor's Generate does."""
    from sd_studio.ui.engine_thread import EngineThread

    engine = EngineThread()
    image = np.full((40, 48, 3), 90, np.uint8)
    mask = np.zeros((40, 48), np.uint8)
    mask[10:20, 10:20] = 255
    try:
        with qtbot.waitSignal(engine.finished, timeout=60000):
            engine.submit(GenerationRequest("inpaint", image=image, mask=mask, seed=1))
    finally:
        engine.shutdown()


class _BrokenFileDialog:
    """Stands in for QFileDialog: the Open action's handler raises through it."""

    message = "the file dialog fell over"

    @classmethod
    def getOpenFileName(cls, *args, **kwargs):  # noqa: N802 - Qt's name
        """Raise, as a bug in the handler would."""
        raise RuntimeError(cls.message)


def test_an_error_in_an_action_handler_names_that_action_and_the_device(window, qtbot, monkeypatch):
    _fill_job(qtbot)
    assert context()["device"] == "cpu (classical fill)" and context()["model"] == "classical"
    _install_crash_handlers(window)
    window.actions["zoom_in"].trigger()  # an earlier action: the log must not name it
    assert context()["action"] == "Zoom in"
    monkeypatch.setattr("sd_studio.ui.session.QFileDialog", _BrokenFileDialog)

    _BrokenFileDialog.message = "broken through the shortcut"
    open_action = window.actions["open"]
    QApplication.sendEvent(open_action, QShortcutEvent(open_action.shortcut(), 0))  # as Ctrl+O arrives
    entry = _entry("broken through the shortcut")
    assert "action: Open\n" in entry and "device: cpu (classical fill)" in entry and "model: classical" in entry

    window.actions["zoom_in"].trigger()
    _BrokenFileDialog.message = "broken through the tool bar"
    button = next(bar.widgetForAction(open_action) for bar in window.findChildren(QToolBar)
                  if bar.widgetForAction(open_action))
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)
    assert "action: Open\n" in _entry("broken through the tool bar")
    qtbot.waitUntil(lambda: window.findChild(QMessageBox, "incidentBox") is not None, timeout=10000)
    for box in window.findChildren(QMessageBox, "incidentBox"):
        box.close()


def test_action_names_drop_the_mnemonic_and_the_dots(window):
    assert action_name(window.actions["open"]) == "Open"
    assert action_name(window.actions["settings"]) == "Settings"


def test_a_loaded_model_names_its_device_and_model(tiny_sd_dir):
    from sd_studio.engine.models.loading import ModelCache
    from sd_studio.ui.engine_thread import _noting_cache

    model = _noting_cache(ModelCache)().get(str(tiny_sd_dir), device="cpu", precision="fp32")
    facts = context()
    assert facts["device"] == "cpu, float32"
    assert facts["model"] == f"{model.name} ({tiny_sd_dir})"
    model.release()


def test_engine_errors_show_the_log_path_and_copy_details(window, qtbot):
    try:
        raise ValueError("a bad tile")  # as the engine thread's failed signal brings it, traceback and all
    except ValueError as exc:
        box = show_error(window, exc, "generate")
    assert box.isVisible() and "a bad tile" in box.text()
    assert f"The details were written to {log_path()}" in box.informativeText()
    assert "ValueError: a bad tile" in _entry("a bad tile")
    copy = next(b for b in box.buttons() if b.text() == "Copy details")
    copy.click()
    copied = QGuiApplication.clipboard().text()
    assert "a bad tile" in copied and "action: generate" in copied and "Traceback" in copied
    assert box.isVisible()  # copying leaves the box open
    box.close()
    # an error the user can act on is not an incident: no log line, its sentence alone, no traceback
    box = show_error(window, FileError("The disk is full."), "save")
    assert box.text() == "The disk is full." and "written to" not in box.informativeText()
    assert not box.detailedText() and [b.text() for b in box.buttons()] == ["OK"]
    box.close()
