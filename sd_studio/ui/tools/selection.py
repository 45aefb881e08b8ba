"""Selection tools: a rectangle or a lasso polygon added to the inpaint mask as one command."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPen, QPolygonF

from sd_studio.document.geometry import Bounds
from sd_studio.ui.tools.base import Tool


class RectangleSelectTool(Tool):
    """Drag a rectangle; on release it is added to the inpaint mask."""

    name = "rect_select"
    label = "Rectangle selection"
    icon = "mdi6.selection"
    shortcut = "R"
    edits_mask = True

    def __init__(self, options) -> None:
        super().__init__(options)
        self._start: QPointF | None = None
        self._end: QPointF | None = None

    def press(self, canvas, pos, pressure, modifiers) -> None:
        self._start = self._end = pos
        canvas.update()

    def move(self, canvas, pos, pressure, modifiers) -> None:
        if self._start is not None:
            self._end = pos
            canvas.update()

    def _bounds(self) -> Bounds:
        a, b = self._start, self._end
        return Bounds.from_corners(
            round(min(a.x(), b.x())), round(min(a.y(), b.y())), round(max(a.x(), b.x())), round(max(a.y(), b.y()))
        )

    def release(self, canvas, pos, modifiers) -> None:
        if self._start is None:
            return
        self._end = pos
        bounds = self._bounds().intersect(canvas.document.bounds)
        self._start = self._end = None
        canvas.update()
        if not bounds.is_empty:
            from sd_studio.document.mask import fill_mask_rect  # numpy loads after the window shows

            command = fill_mask_rect(canvas.document, bounds)
            if command is not None:
                canvas.document.execute(command)

    def cancel(self, canvas) -> None:
        self._start = self._end = None
        canvas.update()

    def paint_overlay(self, painter, canvas) -> None:
        if self._start is None:
            return
        r = canvas.widget_rect(self._bounds())
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(QColor(0, 0, 0), 1))
        painter.drawRect(r)
        painter.setPen(QPen(QColor(255, 255, 255), 1, Qt.PenStyle.DashLine))
        painter.drawRect(r)


class LassoSelectTool(Tool):
    """Draw a free-hand outline; on release the enclosed polygon is added to the inpaint mask."""

    name = "lasso_select"
    label = "Lasso selection"
    icon = "mdi6.lasso"
    shortcut = "L"
    edits_mask = True

    def __init__(self, options) -> None:
        super().__init__(options)
        self._points: list[QPointF] = []

    def press(self, canvas, pos, pressure, modifiers) -> None:
        self._points = [pos]

    def move(self, canvas, pos, pressure, modifiers) -> None:
        if self._points:
            self._points.append(pos)
            canvas.update()

    def release(self, canvas, pos, modifiers) -> None:
        points = [(p.x(), p.y()) for p in self._points]
        self._points = []
        canvas.update()
        if len(points) >= 3:
            from sd_studio.document.mask import fill_mask_polygon

            command = fill_mask_polygon(canvas.document, points)
            if command is not None:
                canvas.document.execute(command)

    def cancel(self, canvas) -> None:
        self._points = []
        canvas.update()

    def paint_overlay(self, painter, canvas) -> None:
        if len(self._points) < 2:
            return
        poly = QPolygonF([canvas.to_widget(p) for p in self._points])
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(QColor(0, 0, 0), 1))
        painter.drawPolygon(poly)
        painter.setPen(QPen(QColor(255, 255, 255), 1, Qt.PenStyle.DashLine))
        painter.drawPolygon(poly)

