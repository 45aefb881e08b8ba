"""Editor start-up: the QApplication, its settings, and the crash handler hooks."""

from __future__ import annotations

import sys
import threading


def _install_crash_handlers(window) -> None:
    """Unexpected exceptions anywhere become an incident-log entry and a dialog, never a silent exit."""
    from PySide6.QtCore import QTimer

    from sd_studio.incidents import log_exception

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        exc = exc if exc is not None else exc_type()
        exc.__traceback__ = tb
        log_exception(exc, "editor")
        from sd_studio.ui.errors import show_error

        QTimer.singleShot(0, lambda: show_error(window, exc, "editor"))

    def thread_hook(args):
        if args.exc_value is not None:
            log_exception(args.exc_value, f"thread {args.thread.name if args.thread else '?'}")

    sys.excepthook = hook
    threading.excepthook = thread_hook


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


def run_editor(path: str | None) -> int:
    """Open the editor window (on path when given) and run until it closes; returns the exit status."""
    app = create_app()
    from sd_studio.ui.main_window import MainWindow

    window = MainWindow()
    _install_crash_handlers(window)
    window.show()
    if path:
        from PySide6.QtCore import QTimer

        # Load after the window is on screen so it appears at once, whatever the file's size.
        QTimer.singleShot(0, lambda: window.open_path(path))
    return app.exec()
