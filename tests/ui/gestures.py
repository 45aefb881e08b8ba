"""Pointer gestures on the canvas in document coordinates, sent as real Qt mouse events."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest


def widget_point(canvas, x: float, y: float) -> QPoint:
    """The widget pixel over document point (x, y)."""
    return canvas.to_widget(QPointF(x, y)).toPoint()


def drag(canvas, points, button=Qt.MouseButton.LeftButton, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """Press at the first point, move through the others, release at the last."""
    first, *rest = [widget_point(canvas, x, y) for x, y in points]
    QTest.mousePress(canvas, button, modifiers, first)
    for p in rest:
        QTest.mouseMove(canvas, p)
    QTest.mouseRelease(canvas, button, modifiers, rest[-1] if rest else first)
