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
        if new is None:  # the application lost the focus for a moment (window switches): not an answer yet
            return
        window = new.window()
        if isinstance(window, QDialog):
            self._in_dialog = True
        elif window is self.window and self._in_dialog:
            self._in_dialog = False
            QTimer.singleShot(0, self.give_back)  # after Qt has finished restoring the focus itself

    def give_back(self) -> None:
        """The canvas takes the focus, unless another dialog or a popup is open meanwhile."""
        if QApplication.activeModalWidget() is None and QApplication.activePopupWidget() is None:
            self.canvas.setFocus(Qt.FocusReason.OtherFocusReason)
