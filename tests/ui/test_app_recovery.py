"""Autosave and crash recovery (ui/autosave.py, wired by sd_studio.app), and the incident dialog."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox

from sd_studio.app import _install_crash_handlers, start_editor
from sd_studio.document.commands import Compound, SetLayerProperty, TilesCommand
from sd_studio.document.document import Document
from sd_studio.document.io.recovery import RecoveryStore
from sd_studio.incidents import uninstall_exception_hooks
from sd_studio.ui.autosave import AutosaveController
from sd_studio.ui.dialogs import autosave_interval


def _paint(doc: Document) -> None:
    layer = doc.layers[0]
    doc.execute(TilesCommand.write("Paint", layer, layer.surface, 5, 5, np.full((20, 20, 4), 200, np.uint8)))


def test_autosave_keeps_a_copy_while_modified_and_removes_it_on_a_clean_exit(window, qtbot):
    autosave = AutosaveController(window.session, interval_s=0.01)
    store = RecoveryStore()
    _paint(window.doc)
    qtbot.waitUntil(lambda: len(store.entries()) == 1, timeout=20000)
    saved = store.restore(store.entries()[0])
    assert np.array_equal(saved.composite(), window.doc.composite())
    autosave.finish()
    assert store.entries() == []


def test_an_applied_generation_is_saved_at_once(qtbot, settings, photo):
    """The editor as started: a Fill result landing writes a copy at once (autosave every hour)."""
    from tests.ui.runs import fill_square

    settings.setValue("autosave/interval_s", 3600)
    window = start_editor(str(photo), settings=settings)
    try:
        qtbot.waitUntil(lambda: window.is_ready and window.autosave is not None, timeout=20000)
        store = window.autosave.store
        fill_square(window, qtbot)
        qtbot.waitUntil(lambda: len(store.entries()) == 1, timeout=20000)
        assert len(store.restore(store.entries()[0]).layers) == 2  # the copy has the result
    finally:
        window.doc.history.mark_clean()
        window.autosave.finish()
        window.close()
        window.engine.shutdown()
        window.deleteLater()


def test_a_new_document_gets_its_own_autosaver(window, qtbot):
    autosave = AutosaveController(window.session, interval_s=0.01)
    store = RecoveryStore()
    _paint(window.doc)
    qtbot.waitUntil(lambda: len(store.entries()) == 1, timeout=20000)
    first = store.entries()[0].doc_id
    window.doc.history.mark_clean()
    window.session.set_document(Document.new(64, 64), None)
    _paint(window.doc)
    qtbot.waitUntil(lambda: [e.doc_id for e in store.entries()] not in ([], [first]), timeout=20000)
    assert first not in [e.doc_id for e in store.entries()]
    autosave.finish()


class _CountingStore(RecoveryStore):
    """A real store that counts its saves and, when `slow`, waits for `release` before writing."""

    def __init__(self, slow: bool = False) -> None:
        super().__init__()
        self.slow, self.saved = slow, 0
        self.entered, self.release, self.written = threading.Event(), threading.Event(), threading.Event()

    def save(self, *args, **kwargs):
        """Count, wait for release when slow (30 s at most, so a regression fails, not hangs), save."""
        self.entered.set()
        if self.slow:
            self.release.wait(30)
        try:
            return super().save(*args, **kwargs)
        finally:
            self.saved += 1
            self.written.set()


def test_opening_another_document_does_not_wait_for_an_autosave(window, qtbot):
    store = _CountingStore(slow=True)
    autosave = AutosaveController(window.session, interval_s=3600, store=store)
    _paint(window.doc)
    autosave.request_save()
    assert store.entered.wait(30)
    window.doc.history.mark_clean()  # the user saved, then opens another file
    window.session.set_document(Document.new(64, 64), None)
    assert not store.written.is_set()  # set_document returned while the save was being written
    assert window.doc.size == (64, 64)
    store.release.set()
    autosave.finish()  # application exit: waits for the old autosaver, which removes its copy
    assert store.written.is_set() and store.entries() == []


def test_the_interval_comes_from_the_settings_and_zero_turns_autosave_off(window, qtbot):
    assert autosave_interval(window.settings) == 60
    window.settings.setValue("autosave/interval_s", 5)
    assert autosave_interval(window.settings) == 5
    window.settings.setValue("autosave/interval_s", "not a number")
    assert autosave_interval(window.settings) == 60
    window.settings.setValue("autosave/interval_s", 0)
    autosavers = lambda: {t for t in threading.enumerate() if t.name == "autosave"}  # noqa: E731
    before = autosavers()
    store = _CountingStore()
    autosave = AutosaveController(window.session, store=store)
    _paint(window.doc)
    autosave.request_save()
    layer = window.doc.layers[0]
    window.doc.execute(Compound("Opacity", [SetLayerProperty(layer, "opacity", 0.5)]))
    assert autosavers() == before  # off: no autosave thread for this document
    autosave.finish()
    assert store.saved == 0 and store.entries() == []
    window.settings.setValue("autosave/interval_s", 3600)
    store = _CountingStore()
    autosave = AutosaveController(window.session, store=store)
    assert autosavers() != before
    autosave.request_save()
    assert store.written.wait(30)
    autosave.finish()
    assert store.saved == 1 and store.entries() == []  # on again: saved, and removed at the clean exit


def test_a_crash_s_copy_is_offered_and_restored(window, qtbot):
    store = RecoveryStore()
    crashed = Document.new(90, 70, background=(10, 200, 30, 255))
    entry = store.save(crashed, "crashed", "/somewhere/picture.ora")
    record = json.loads(entry.info_path.read_text())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    record["pid"] = child.pid  # written by a process that is gone
    entry.info_path.write_text(json.dumps(record))

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox) and box.objectName() == "recoveryBox":
            assert "picture.ora" in box.text()
            box.button(QMessageBox.StandardButton.Yes).click()
        else:
            QTimer.singleShot(50, answer)

    QTimer.singleShot(50, answer)
    autosave = AutosaveController(window.session, interval_s=3600)
    autosave.offer_recovery()
    qtbot.waitUntil(lambda: window.doc.size == (90, 70), timeout=20000)
    assert window.path == "/somewhere/picture.ora" and window.doc.is_modified
    assert tuple(window.doc.composite()[5, 5]) == (10, 200, 30, 255)
    window.doc.history.mark_clean()
    autosave.finish()
    assert store.entries() == []


def test_an_exception_on_any_thread_shows_the_incident_dialog(window, qtbot):
    _install_crash_handlers(window)
    try:
        worker = threading.Thread(target=lambda: 1 / 0, name="engine")
        worker.start()
        worker.join()
        qtbot.waitUntil(lambda: window.findChild(QMessageBox, "incidentBox") is not None, timeout=10000)
        box = window.findChild(QMessageBox, "incidentBox")
        assert "ZeroDivisionError" in box.text() and "incidents.log" in box.informativeText()
        copy = next(b for b in box.buttons() if b.text() == "Copy details")
        copy.click()
        assert "thread: engine" in QGuiApplication.clipboard().text()
        assert box.isVisible()  # copying leaves the dialog open
        box.close()
    finally:
        uninstall_exception_hooks()


@pytest.fixture(autouse=True)
def _no_leftover_hooks():
    yield
    uninstall_exception_hooks()
