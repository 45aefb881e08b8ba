"""Error dialogs: one clear sentence for the user, the details one click away."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from sd_studio.errors import SDStudioError


def error_text(exc: BaseException) -> str:
    """The sentence shown for an exception: the message of an SDStudioError, a generic one otherwise."""
    if isinstance(exc, SDStudioError):
        return str(exc)
    return f"Something went wrong ({exc.__class__.__name__}: {exc}). Nothing was changed."


def show_error(parent: QWidget | None, exc: BaseException, action: str = "") -> QMessageBox:
    """Show a non-blocking error box for exc; unexpected errors are written to the incident log."""
    from sd_studio.incidents import describe_exception, log_exception

    details = describe_exception(exc, action)
    if not isinstance(exc, SDStudioError):
        details += f"\n\nThis report was also written to {log_exception(exc, action)}"
    box = QMessageBox(QMessageBox.Icon.Warning, "SD Studio", error_text(exc), QMessageBox.StandardButton.Ok, parent)
    box.setDetailedText(details)
    box.setObjectName("errorBox")
    box.setModal(True)
    box.open()
    return box
