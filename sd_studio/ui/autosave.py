"""AutosaveController: the window's recovery copies: an Autosaver per document, the offer to restore what a
crash left behind, and their removal on a clean exit."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QMessageBox

from sd_studio.document.io.recovery import Autosaver, RecoveryStore
from sd_studio.ui.dialogs import autosave_interval
from sd_studio.ui.session import DocumentSession


class AutosaveController(QObject):
    """Keeps a recovery copy of the session's document, every interval_s while it is modified and whenever
    request_save is called (after a generation lands). It follows the session's document_changed signal:
    each document gets its own Autosaver. interval_s None reads the setting (autosave_interval) for each new
    document; 0 or less turns autosave off (copies a crash left are still offered). Nothing here waits for a
    save except finish(), called once the event loop has ended."""

    def __init__(self, session: DocumentSession, interval_s: float | None = None,
                 store: RecoveryStore | None = None) -> None:
        super().__init__(session)
        self.session = session
        self.store = store if store is not None else RecoveryStore()
        self.interval_s = interval_s
        self.saver: Autosaver | None = None
        self._retired: list[Autosaver] = []  # savers of replaced documents, removing their copies
        self._restored_ids: list[str] = []  # copies restored while autosave is off: removed at a clean exit
        self._next_id: str | None = None  # the recovery copy the next document continues
        session.document_changed.connect(self._on_document)
        if session.doc is not None:
            self._on_document(session.doc)
        self._timer = QTimer(self, interval=1000, timeout=self._tick)
        self._timer.start()

    def request_save(self) -> None:
        """Write a copy of the current document soon (on the saver's thread)."""
        if self.saver is not None:
            self.saver.request_save()

    def offer_recovery(self) -> None:
        """Ask about each copy a crash left behind: restore it (one per window), discard it, or keep it for later."""
        window = self.session.window
        for entry in self.store.pending():
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.saved_at))
            box = QMessageBox(QMessageBox.Icon.Question, "SD Studio",
                              f"SD Studio closed unexpectedly while \"{entry.title}\" had unsaved changes "
                              f"(recovery copy of {when}). Restore it?",
                              QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard
                              | QMessageBox.StandardButton.Ignore, window)
            box.setObjectName("recoveryBox")
            answer = box.exec()
            if answer == QMessageBox.StandardButton.Yes and self.session.maybe_save():
                try:
                    doc = self.store.restore(entry)
                except Exception as exc:  # noqa: BLE001 - a damaged copy is reported, not fatal
                    from sd_studio.ui.errors import show_error

                    show_error(window, exc, "restore a recovery copy")
                    continue
                self._next_id = entry.doc_id  # keep writing the same copy until a clean exit
                self.session.set_document(doc, str(entry.source_path) if entry.source_path else None)
                break  # one window, one document: the rest stay for the next start
            if answer == QMessageBox.StandardButton.Discard:
                self.store.discard(entry)

    def finish(self, timeout_s: float = 60.0) -> None:
        """Application exit: remove the copies and wait (timeout_s at most) for the autosave threads."""
        self._timer.stop()
        self.session.document_changed.disconnect(self._on_document)
        self._retire()
        savers, self._retired = self._retired, []
        for saver in savers:  # the only wait on the main thread: the event loop has ended
            saver.join(timeout=timeout_s)
        for doc_id in self._restored_ids:
            self.store.remove(doc_id)

    def _interval(self) -> float:
        return self.interval_s if self.interval_s is not None else autosave_interval(self.session.settings)

    def _retire(self) -> None:
        old, self.saver = self.saver, None
        if old is not None:
            # the session asked about unsaved changes before replacing the document; the old saver
            # removes its copy on its own thread once any save it is writing is done
            old.close(discard=True)
            self._retired = [s for s in self._retired if not s.join(timeout=0)] + [old]

    def _on_document(self, doc) -> None:
        self._retire()
        doc_id, self._next_id = self._next_id, None
        seconds = self._interval()
        if seconds <= 0:
            if doc_id is not None:
                self._restored_ids.append(doc_id)  # autosave is off: that copy goes at a clean exit
            return
        self.saver = Autosaver(doc, self.store, doc_id=doc_id, source_path=self.session.path,
                               interval_s=seconds).start()

    def _tick(self) -> None:
        if self.saver is not None:
            self.saver.source_path = self.session.path
            self.saver.tick()
