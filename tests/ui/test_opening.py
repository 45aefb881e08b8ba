"""Opening a file off the main thread: the window keeps painting, ignores input, and can cancel."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QProgressDialog, QPushButton

import sd_studio.ui.opening as opening


@pytest.fixture
def slow_loader(monkeypatch):
    """open_document made to wait for the test's word, so the test sees the window mid-load."""
    from sd_studio.document.io import open_document

    gate = threading.Event()

    def loader(path):
        gate.wait(30)
        return open_document(path)

    monkeypatch.setattr("sd_studio.document.io.open_document", loader)
    monkeypatch.setattr(opening, "SHOW_PROGRESS_AFTER_MS", 50)
    return gate


def test_a_slow_open_keeps_the_event_loop_running_and_swallows_input(window, photo, slow_loader, qtbot):
    ticks, seen = [], {}

    def tick():  # a timer of the window's event loop; midway runs from it once the progress box shows
        ticks.append(1)
        box = window.findChild(QProgressDialog, "openingBox")
        if len(ticks) >= 5 and box is not None and box.isVisible() and not seen:
            midway()

    ticker = QTimer(interval=10)
    ticker.timeout.connect(tick)
    ticker.start()

    def midway():
        seen["title"] = window.windowTitle()
        seen["ticks"] = len(ticks)
        QTest.keyClick(window.canvas, Qt.Key.Key_E)  # the eraser's key: must not reach the window
        QTest.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        seen["box"] = window.findChild(QProgressDialog, "openingBox")
        seen["shown"] = seen["box"].isVisible()
        seen["eraser"] = window.actions["tool_eraser"].isChecked()
        slow_loader.set()

    assert window.open_path(str(photo))  # the loader waits (30 s at most) for midway, run by the ticker
    ticker.stop()
    assert seen, "the event loop did not run while the file was read"
    assert seen["title"] == "Untitled — SD Studio"  # still the old document while it loads
    assert seen["shown"] and seen["box"].labelText() == "Opening photo.png…"
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
    opened = opening.load_in_background(window, str(photo))
    assert opened is not None and window.findChild(QProgressDialog, "openingBox") is None
    assert opened.warnings == [] and opened.document.composite()[0, 0, 3] == 255


def test_what_a_file_holds_that_we_show_differently_is_said(window, tmp_path, qtbot):
    import zipfile

    from sd_studio.document.document import Document
    from sd_studio.document.io.ora import write_ora

    doc = Document.new(32, 32)
    write_ora(tmp_path / "k.ora", doc)
    with zipfile.ZipFile(tmp_path / "k.ora") as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    members["stack.xml"] = members["stack.xml"].replace(b'composite-op="svg:src-over"', b'composite-op="krita:dissolve"')
    with zipfile.ZipFile(tmp_path / "krita.ora", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data, zipfile.ZIP_STORED if name == "mimetype" else zipfile.ZIP_DEFLATED)
    assert window.open_path(str(tmp_path / "krita.ora"))
    qtbot.waitUntil(lambda: "krita:dissolve" in window.statusBar().currentMessage())
