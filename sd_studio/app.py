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
    finish_startup) numpy, the document, the panels and the file load, then autosave starts
    (window.autosave, an AutosaveController) and offers what a crash left behind."""
    create_app()
    from PySide6.QtCore import Qt, QTimer

    from sd_studio.ui.main_window import MainWindow

    window = MainWindow(settings=settings, defer=True, initial_path=path)
    # the incident log's imports wait for the first frame too; they are in place before the rest loads
    window.building.connect(lambda: _install_crash_handlers(window))
    if window.first_start:
        window.setWindowState(window.windowState() | Qt.WindowState.WindowMaximized)

    def ready() -> None:
        from sd_studio.ui.autosave import AutosaveController

        window.autosave = AutosaveController(window.session)
        window.generation.result_applied.connect(window.autosave.request_save)  # a result is worth a copy at once
        QTimer.singleShot(0, window.autosave.offer_recovery)
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

    def maybe(*_) -> None:
        if panel.model_spec() and panel.mode.currentData() != "fill":
            engine.warm_up()

    panel.model_chosen.connect(maybe)
    panel.model.activated.connect(maybe)
    QTimer.singleShot(WARM_UP_DELAY_MS if delay_ms is None else delay_ms, panel, maybe)  # not after it is gone


def run_editor(path: str | None) -> int:
    """Open the editor window (on path when given) and run until it closes; returns the exit status."""
    app = create_app()
    window = start_editor(path)
    status = app.exec()
    if window.is_ready:
        window.autosave.finish()  # a clean exit: the recovery copy goes
    return status
