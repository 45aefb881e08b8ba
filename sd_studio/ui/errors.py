"""Error dialogs: one clear sentence for the user, the details one click away."""

from __future__ import annotations

from pathlib import Path

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
    where = f"The details were written to {log}." if log is not None else ""
    box.setInformativeText(" ".join(part for part in (where, note) if part))
    box.setDetailedText(details)
    copy = box.addButton("Copy details", QMessageBox.ButtonRole.ActionRole)
    copy.clicked.disconnect()  # copying must not close the box
    copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(f"{summary}\n\n{details}"))
    return box


def show_error(parent: QWidget | None, exc: BaseException, action: str = "") -> QMessageBox:
    """Show an error box for exc (window-modal, it does not block); unexpected errors are written
    to the incident log and the box says where."""
    from sd_studio.incidents import describe_exception, log_exception

    details = describe_exception(exc, action)
    log = None if isinstance(exc, SDStudioError) else log_exception(exc, action)
    box = details_box(parent, QMessageBox.Icon.Warning, error_text(exc), details, log, QMessageBox.StandardButton.Ok)
    box.setObjectName("errorBox")
    box.setModal(True)
    box.open()
    return box
