"""Keys as a user types them: each goes to the widget that really has the keyboard focus."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication


def focused(window=None):
    """The widget that has the keyboard: the application's focus widget (which must lie in window, if given)."""
    widget = QApplication.focusWidget()
    assert widget is not None, "no widget has the keyboard focus"
    assert window is None or widget is window or window.isAncestorOf(widget), f"the focus is in {widget.window()!r}"
    return widget


def press(window, key, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """Press and release key (a Qt.Key) where the focus is, as the keyboard would deliver it."""
    QTest.keyClick(focused(window), key, modifiers)


def type_text(window, text: str) -> None:
    """Type text where the focus is."""
    QTest.keyClicks(focused(window), text)


def when_dialog(match, then, tries: int = 1500) -> list:
    """Once a modal dialog for which match(dialog) holds has the keyboard focus, call then(dialog) (which types
    into it like a user); returns a list that gets True once then ran. Used before the call that opens the
    dialog and waits in its event loop. A dialog that never gets the focus is rejected after tries polls,
    and one whose then() fails is rejected too, so a failing test never hangs."""
    done: list = []

    def poll(left: int) -> None:
        dialog, focus = QApplication.activeModalWidget(), QApplication.focusWidget()
        has_keys = focus is not None and (focus is dialog or dialog is not None and dialog.isAncestorOf(focus))
        if dialog is not None and match(dialog) and has_keys:
            try:
                then(dialog)
                done.append(True)
            finally:
                if dialog.isVisible() and not done:
                    dialog.reject()
        elif left:
            QTimer.singleShot(10, lambda: poll(left - 1))
        elif dialog is not None:
            dialog.reject()

    QTimer.singleShot(0, lambda: poll(tries))
    return done


def reactivate(window, qtbot) -> None:
    """What a window manager does when a dialog closes (the offscreen platform does not): activate its window."""
    qtbot.wait(10)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
