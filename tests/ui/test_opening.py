"""Opening a file off the main thread: the window keeps painting, ignores input, and can cancel."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QProgressDialog, QPushButton

import sd_studio.ui.opening as opening


@pytest.fixture
def slow_loader(monkeypatch):
    """load_document made to wait for the test's word, so the test sees the window mid-load."""
    from sd_studio.document.io import load_document

    gate = threading.Event()
    started = threading.Event()

    def loader(path):
        started.set()
        gate.wait(30)
        return load_document(path)

    monkeypatch.setattr("sd_studio.document.io.load_document", loader)
    monkeypatch.setattr(opening, "SHOW_PROGRESS_AFTER_MS", 50)
    return gate


def test_a_slow_open_keeps_the_event_loop_running_and_swallows_input(window, photo, slow_loader, qtbot):
    ticks, seen = [], {}
    ticker = QTimer(interval=10)
    ticker.timeout.connect(lambda: ticks.append(1))
    ticker.start()

    def midway():
        seen["title"] = window.windowTitle()
        seen["ticks"] = len(ticks)
        QTest.keyClick(window.canvas, Qt.Key.Key_E)  # the eraser's key: must not reach the window
        QTest.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        seen["box"] = window.findChild(QProgressDialog, "openingBox")
        seen["eraser"] = window.actions["tool_eraser"].isChecked()
        slow_loader.set()

    QTimer.singleShot(300, midway)
    assert window.open_path(str(photo))
    ticker.stop()
    assert seen["title"] == "Untitled — SD Studio"  # still the old document while it loads
    assert seen["ticks"] >= 5  # timers (and paints) ran during the load
    assert seen["box"] is not None and seen["box"].labelText() == "Opening photo.png…"
    assert not seen["eraser"]
    assert window.windowTitle() == "photo.png — SD Studio" and tuple(window.doc.size) == (96, 80)
    assert QApplication.overrideCursor() is None


def test_cancelling_a_slow_open_keeps_the_document(window, photo, slow_loader, qtbot):
    before = window.doc

    def cancel():
        box = window.findChild(QProgressDialog, "openingBox")
        button = next(b for b in box.findChildren(QPushButton) if b.text() == "Cancel")
        QTest.mouseClick(button, Qt.MouseButton.LeftButton)  # the box's own input goes through

    QTimer.singleShot(300, cancel)
    assert not window.open_path(str(photo))
    slow_loader.set()
    assert window.doc is before and window.windowTitle() == "Untitled — SD Studio"


def test_escape_in_the_box_cancels_too(window, photo, slow_loader, qtbot):
    QTimer.singleShot(300, lambda: QTest.keyClick(window.findChild(QProgressDialog, "openingBox"), Qt.Key.Key_Escape))
    assert not window.open_path(str(photo))
    slow_loader.set()
    assert window.windowTitle() == "Untitled — SD Studio"


def test_an_error_on_the_worker_is_raised_to_the_caller(window, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    from sd_studio.errors import SDStudioError

    with pytest.raises(SDStudioError):
        opening.load_in_background(window, str(bad))


def test_a_small_file_opens_without_a_box(window, photo):
    doc = opening.load_in_background(window, str(photo))
    assert doc is not None and window.findChild(QProgressDialog, "openingBox") is None
    np.testing.assert_array_equal(doc.composite()[0, 0, 3], 255)
