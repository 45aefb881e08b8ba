"""Who has the keys: the canvas (tool keys, space to pan), except while a text field is being edited."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QDialog, QLineEdit, QPlainTextEdit, QTextEdit, QWidget


def edits_text(widget: QWidget | None) -> bool:
    """True for a widget that takes typed characters (a line or text edit, a spin box): tool keys are text there."""
    if isinstance(widget, (QLineEdit, QAbstractSpinBox)):
        return widget.isEnabled() and not (isinstance(widget, QLineEdit) and widget.isReadOnly())
    if isinstance(widget, (QPlainTextEdit, QTextEdit)):
        return not widget.isReadOnly()
    return False


class KeyboardHome(QObject):
    """Gives the keys back to the canvas whenever a dialog of the window (a file, colour or settings dialog,
    a message box, the progress of a file) closes and the window's widgets have the focus again, so the next
    M or Space reaches the canvas and not the widget that happened to have the focus before."""

    def __init__(self, window: QWidget, canvas: QWidget) -> None:
        super().__init__(window)
        self.window, self.canvas = window, canvas
        self._in_dialog = False
        QApplication.instance().focusChanged.connect(self._on_focus)

    def _on_focus(self, _old: QWidget | None, new: QWidget | None) -> None:
        if new is None:
            # a dialog closed (the window system activates the window again next) or the user switched to
            # another application: which one is known once this turn of the event loop is over
            if self._in_dialog:
                QTimer.singleShot(0, self, self._after_dialog)
            return
        window = new.window()
        if isinstance(window, QDialog):
            self._in_dialog = True
        elif window is self.window and self._in_dialog:
            self._in_dialog = False
            QTimer.singleShot(0, self, self.give_back)  # after Qt has finished restoring the focus itself

    def _after_dialog(self) -> None:
        if self._in_dialog and QApplication.activeModalWidget() is None and not self._dialog_has_focus():
            self._in_dialog = False
            self.give_back()  # the window's focus widget: the keys are the canvas's when it is active again

    @staticmethod
    def _dialog_has_focus() -> bool:
        focus = QApplication.focusWidget()
        return focus is not None and isinstance(focus.window(), QDialog)

    def give_back(self) -> None:
        """The canvas takes the focus, unless another dialog or a popup is open meanwhile."""
        if QApplication.activeModalWidget() is None and QApplication.activePopupWidget() is None:
            self.canvas.setFocus(Qt.FocusReason.OtherFocusReason)
