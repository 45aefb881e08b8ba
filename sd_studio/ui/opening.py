"""Opening a file without freezing the window: the decode runs on a thread while the window keeps painting."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QEvent, QEventLoop, QObject, Qt, QTimer
from PySide6.QtWidgets import QApplication, QProgressDialog, QWidget

SHOW_PROGRESS_AFTER_MS = 500
"""A file that takes longer than this to open gets a progress box with Cancel."""

_INPUT = {
    QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease, QEvent.Type.MouseButtonDblClick,
    QEvent.Type.MouseMove, QEvent.Type.Wheel, QEvent.Type.KeyPress, QEvent.Type.KeyRelease,
    QEvent.Type.Shortcut, QEvent.Type.ShortcutOverride, QEvent.Type.ContextMenu, QEvent.Type.DragEnter,
    QEvent.Type.DragMove, QEvent.Type.Drop, QEvent.Type.TabletPress, QEvent.Type.TabletRelease,
    QEvent.Type.TabletMove,
}


def load_in_background(parent: QWidget, path: str, loader=None):
    """The file at path as an io.OpenedDocument (the document and the read's warnings), read by loader
    (default: io.open_document) on a worker thread while the window keeps painting and ignores input;
    a progress box with Cancel appears if it takes a while.

    Returns None when the user cancels (the worker's result is then dropped); raises what loading raised.
    The flattened image is computed on the worker too, so showing the document costs only a copy.
    """
    if loader is None:
        from sd_studio.document.io import open_document as loader
    outcome: dict = {}
    done = threading.Event()

    def work() -> None:
        try:
            opened = loader(path)
            opened.document.composite()
            outcome["doc"] = opened
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, raised there
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="sd-studio open", daemon=True).start()
    if not done.wait(0.03):  # small files open within a frame: no box, no nested loop
        if not _wait_painting(parent, path, done):
            return None
    if "error" in outcome:
        raise outcome["error"]
    return outcome["doc"]


def _wait_painting(parent: QWidget, path: str, done: threading.Event) -> bool:
    """Run the event loop (paint, resize, timers; no input) until done is set; False if the user cancelled."""
    dialog = QProgressDialog(f"Opening {Path(path).name}…", "Cancel", 0, 0, parent)
    dialog.setObjectName("openingBox")
    dialog.setWindowTitle("Opening")
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setAutoClose(False)
    dialog.setAutoReset(False)
    dialog.setMinimumDuration(24 * 3600 * 1000)  # shown by the timer below: a busy box gets no values to time
    dialog.reset()
    QTimer.singleShot(SHOW_PROGRESS_AFTER_MS, dialog, lambda: done.is_set() or dialog.show())
    blocker = _InputBlocker(dialog)
    app = QApplication.instance()
    app.installEventFilter(blocker)
    QApplication.setOverrideCursor(Qt.CursorShape.BusyCursor)
    loop = QEventLoop()
    cancelled = []
    poll = QTimer(interval=15)
    poll.timeout.connect(lambda: done.is_set() and loop.quit())
    for signal in (dialog.canceled, dialog.rejected):  # the Cancel button, Esc, the box's close button
        signal.connect(lambda: (cancelled.append(True), loop.quit()))
    poll.start()
    try:
        loop.exec()
    finally:
        poll.stop()
        app.removeEventFilter(blocker)
        QApplication.restoreOverrideCursor()
        dialog.hide()
        dialog.deleteLater()
    return not (cancelled and not done.is_set())


class _InputBlocker(QObject):
    """While a file opens, swallows every input event except those for the progress box."""

    def __init__(self, dialog: QProgressDialog) -> None:
        super().__init__(dialog)
        self.dialog = dialog

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        """True (consumed) for input outside the progress box; paint, resize and timers go through."""
        kind = event.type()
        if kind not in _INPUT:
            return False
        inside = isinstance(obj, QWidget) and (obj is self.dialog or self.dialog.isAncestorOf(obj))
        if kind == QEvent.Type.ShortcutOverride:
            event.accept()  # "the focused widget takes the key": no window shortcut (Esc is Cancel there) fires
            return not inside
        if inside:
            return False
        # the window system's own objects (QWindow) pass events on to the widgets, filtered there
        return isinstance(obj, QWidget) or kind == QEvent.Type.Shortcut
