"""Reading and writing files without freezing the window: the work runs on a thread while the window keeps painting."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import QEvent, QEventLoop, QObject, Qt, QTimer
from PySide6.QtWidgets import QApplication, QProgressDialog, QWidget

SHOW_PROGRESS_AFTER_MS = 500
"""A file that takes longer than this to open or save gets a progress box."""
T = TypeVar("T")

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

    def work():
        opened = loader(path)
        opened.document.composite()
        return opened

    return run_in_background(parent, f"Opening {Path(path).name}…", work, title="Opening")


def run_in_background(parent: QWidget, text: str, work: Callable[[], T], *, title: str = "Working",
                      cancellable: bool = True) -> T | None:
    """What work() returns, run on a worker thread while the window keeps painting and ignores input; after
    SHOW_PROGRESS_AFTER_MS a busy box says text (with Cancel when cancellable). None when the user cancelled
    (the worker's result is then dropped); raises what work raised."""
    outcome: dict = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, raised there
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name=f"sd-studio {title.lower()}", daemon=True).start()
    # small files are done within a frame: no box, no nested loop
    if not done.wait(0.03) and not _wait_painting(parent, text, title, done, cancellable):
        return None
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _wait_painting(parent: QWidget, text: str, title: str, done: threading.Event, cancellable: bool) -> bool:
    """Run the event loop (paint, resize, timers; no input) until done is set; False if the user cancelled."""
    dialog = QProgressDialog(text, "Cancel", 0, 0, parent)
    dialog.setObjectName(f"{title.lower()}Box")  # openingBox, savingBox
    dialog.setWindowTitle(title)
    if not cancellable:
        dialog.setCancelButton(None)
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
    if cancellable:
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
    """While a file is read or written, swallows every input event except those for the progress box."""

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
