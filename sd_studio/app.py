"""Editor start-up: the QApplication, its settings, and the crash handler hooks."""

from __future__ import annotations

import sys


def _install_crash_handlers(window) -> None:
    """Unexpected exceptions anywhere become an incident-log entry and a dialog, never a silent exit;
    hard crashes are recorded by faulthandler and reported at the next start."""
    from PySide6.QtCore import QObject, QTimer, Signal

    from sd_studio.incidents import install_exception_hooks

    class _Relay(QObject):
        # exceptions arrive on any thread; a queued signal brings them to the GUI thread
        incident = Signal(str, str, object)

    relay = _Relay(window)
    relay.incident.connect(lambda summary, details, path: _show_incident(window, summary, details, path))
    window._incident_relay = relay  # keep it alive as long as the window
    previous = install_exception_hooks(lambda summary, details, path: relay.incident.emit(summary, details, path))
    if previous:
        from sd_studio.incidents import log_path

        QTimer.singleShot(0, lambda: _show_incident(
            window, "SD Studio stopped unexpectedly last time; the report is in the incident log.", previous, log_path()))


def _show_incident(window, summary: str, details: str, path) -> None:
    """A non-blocking dialog: the summary, the log's path, the details, and a "Copy details" button."""
    from PySide6.QtWidgets import QMessageBox

    from sd_studio.ui.errors import details_box

    box = details_box(window, QMessageBox.Icon.Critical, summary, details, path,
                      QMessageBox.StandardButton.Close, note="SD Studio keeps running.")
    box.setObjectName("incidentBox")
    box.setModal(False)
    box.show()


def _install_autosave(window, interval_s: float | None = None, store=None):
    """Keep a recovery copy of the window's document (every interval_s while modified, and after
    each applied generation), offer what a crash left behind, and remove the copy on a clean exit.
    interval_s None reads the setting (autosave_interval), read again for each new document; 0 or
    less turns autosave off (copies a crash left are still offered). Nothing here waits for a
    save except the function it returns, to call once the event loop has ended."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    from sd_studio.document.io.recovery import Autosaver, RecoveryStore

    store = store if store is not None else RecoveryStore()
    state: dict = {"saver": None, "doc_id": None, "retired": [], "restored": []}
    original_set_document = window.set_document

    def interval() -> float:
        from sd_studio.ui.dialogs import autosave_interval

        return interval_s if interval_s is not None else autosave_interval(window.settings)

    def after_history() -> None:
        history = window.doc.history
        # the editor applies a generation as one command named "Add N generated layers"
        if history.index and "generated" in history.names[history.index - 1]:
            state["saver"].request_save()

    def set_document(doc, path) -> None:
        old = state["saver"]
        if old is not None:
            old.doc.events.history_changed.disconnect(after_history)
            # the editor asked about unsaved changes before replacing it; the old saver removes its
            # copy on its own thread once any save it is writing is done
            old.close(discard=True)
            state["retired"] = [s for s in state["retired"] if not s.join(timeout=0)] + [old]
        original_set_document(doc, path)
        doc_id, state["doc_id"] = state["doc_id"], None
        seconds = interval()
        if seconds <= 0:
            state["saver"] = None
            if doc_id is not None:
                state["restored"].append(doc_id)  # autosave is off: that copy goes at a clean exit
            return
        state["saver"] = Autosaver(doc, store, doc_id=doc_id, source_path=path, interval_s=seconds).start()
        doc.events.history_changed.connect(after_history)

    window.set_document = set_document  # every later document gets its own autosaver
    window.request_autosave = lambda: state["saver"] and state["saver"].request_save()
    set_document(window.doc, window.path)

    def tick() -> None:
        saver = state["saver"]
        if saver is not None:
            saver.source_path = window.path
            saver.tick()

    timer = QTimer(window)
    timer.timeout.connect(tick)
    timer.start(1000)

    def offer() -> None:
        import time

        for entry in store.pending():
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.saved_at))
            box = QMessageBox(QMessageBox.Icon.Question, "SD Studio",
                              f"SD Studio closed unexpectedly while \"{entry.title}\" had unsaved changes "
                              f"(recovery copy of {when}). Restore it?",
                              QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard
                              | QMessageBox.StandardButton.Ignore, window)
            box.setObjectName("recoveryBox")
            answer = box.exec()
            if answer == QMessageBox.StandardButton.Yes and window.maybe_save():
                try:
                    doc = store.restore(entry)
                except Exception as exc:  # noqa: BLE001 - a damaged copy is reported, not fatal
                    from sd_studio.ui.errors import show_error

                    show_error(window, exc, "restore a recovery copy")
                    continue
                state["doc_id"] = entry.doc_id  # keep writing the same copy until a clean exit
                window.set_document(doc, str(entry.source_path) if entry.source_path else None)
                break  # one window, one document: the rest stay for the next start
            if answer == QMessageBox.StandardButton.Discard:
                store.discard(entry)

    QTimer.singleShot(0, offer)

    def finish(timeout_s: float = 60.0) -> None:
        """Application exit: remove the copies and wait (timeout_s at most) for the autosave threads."""
        timer.stop()
        if state["saver"] is not None:
            state["saver"].doc.events.history_changed.disconnect(after_history)
            state["saver"].close(discard=True)
            state["retired"].append(state["saver"])
        savers, state["saver"], state["retired"] = state["retired"], None, []
        for saver in savers:  # the only wait on the main thread: the event loop has ended
            saver.join(timeout=timeout_s)
        for doc_id in state["restored"]:
            store.remove(doc_id)

    return finish


def create_app(argv: list[str] | None = None):
    """The QApplication (created once), named so that QSettings and the desktop entry find it."""
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            __import__("PySide6.QtCore", fromlist=["Qt"]).Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("sd-studio")
    app.setOrganizationName("sd-studio")
    app.setApplicationDisplayName("SD Studio")
    QGuiApplication.setDesktopFileName("sd-studio")
    return app


def start_editor(path: str | None = None, settings=None):
    """Show the editor window at once and return it: its frame paints first, then (MainWindow.
    finish_startup) numpy, the document, the panels and the file load, then autosave starts."""
    create_app()
    from PySide6.QtCore import Qt

    from sd_studio.ui.main_window import MainWindow

    window = MainWindow(settings=settings, defer=True, initial_path=path)
    # the incident log's imports wait for the first frame too; they are in place before the rest loads
    window.building.connect(lambda: _install_crash_handlers(window))
    if window.first_start:
        window.setWindowState(window.windowState() | Qt.WindowState.WindowMaximized)

    def ready() -> None:
        window.finish_autosave = _install_autosave(window)
        _warm_up_engine(window)

    window.ready.connect(ready)
    window.show()
    return window


WARM_UP_DELAY_MS = 2000
"""How long after the editor is ready the engine starts importing torch, when a model is chosen."""


def _warm_up_engine(window, delay_ms: int | None = None) -> None:
    """Have the engine thread import torch and diffusers once a diffusion model is chosen (at start, a
    moment after the document is on screen, or when the user picks one), not when Generate is pressed:
    the first generation then starts seconds sooner, and the import's one unavoidable hold on the
    interpreter (torch's C extension initialising, ~0.2 s) falls outside the generation."""
    from PySide6.QtCore import QTimer

    panel, engine = window.generate_panel, window.engine
    if not hasattr(engine, "warm_up"):
        return

    def maybe(*_) -> None:
        if panel.model_spec() and panel.settings().get("mode") != "fill":
            engine.warm_up()

    panel.model_chosen.connect(maybe)
    panel.model.activated.connect(maybe)
    QTimer.singleShot(WARM_UP_DELAY_MS if delay_ms is None else delay_ms, panel, maybe)  # not after it is gone


def run_editor(path: str | None) -> int:
    """Open the editor window (on path when given) and run until it closes; returns the exit status."""
    app = create_app()
    window = start_editor(path)
    status = app.exec()
    finish = getattr(window, "finish_autosave", None)
    if finish is not None:
        finish()  # a clean exit: the recovery copy goes
    return status
