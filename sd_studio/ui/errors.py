"""Error dialogs: one clear sentence for the user; for an unexpected error, the details one click away."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from sd_studio.errors import SDStudioError


def error_text(exc: BaseException) -> str:
    """The sentence shown for an exception: the message of an SDStudioError, a generic one otherwise."""
    if isinstance(exc, SDStudioError):
        return str(exc)
    return f"Something went wrong ({exc.__class__.__name__}: {exc}). Nothing was changed."


def details_box(parent: QWidget | None, icon: QMessageBox.Icon, summary: str, details: str,
                log: Path | str | None, button: QMessageBox.StandardButton, note: str = "") -> QMessageBox:
    """A message box (not yet shown) with summary, the log's path when the details were logged, the
    details behind "Show Details..." and a "Copy details" button that leaves the box open."""
    from PySide6.QtGui import QGuiApplication

    box = QMessageBox(icon, "SD Studio", summary, button, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)  # a message quoting a file name is never markup
    where = f"The details were written to {log}." if log is not None else ""
    box.setInformativeText(" ".join(part for part in (where, note) if part))
    box.setDetailedText(details)
    copy = box.addButton("Copy details", QMessageBox.ButtonRole.ActionRole)
    copy.clicked.disconnect()  # copying must not close the box
    copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(f"{summary}\n\n{details}"))
    return box


def show_error(parent: QWidget | None, exc: BaseException, action: str = "") -> QMessageBox:
    """Show an error box for exc (window-modal, it does not block). An error the user can act on
    (SDStudioError) is its sentence alone; an unexpected one is written to the incident log, and the box
    says where and holds the details (traceback, context) behind "Show Details..." and "Copy details"."""
    if isinstance(exc, SDStudioError):
        box = QMessageBox(QMessageBox.Icon.Warning, "SD Studio", error_text(exc), QMessageBox.StandardButton.Ok, parent)
        box.setTextFormat(Qt.TextFormat.PlainText)
    else:
        from sd_studio.incidents import describe_exception, log_exception

        box = details_box(parent, QMessageBox.Icon.Warning, error_text(exc), describe_exception(exc, action),
                          log_exception(exc, action), QMessageBox.StandardButton.Ok)
    box.setObjectName("errorBox")
    box.setModal(True)
    box.open()
    return box
