"""Painting tools: brush, eraser, mask brush and mask eraser, all one stroke engine with a target."""

from __future__ import annotations

from PySide6.QtCore import QPointF

from sd_studio.ui.tools.base import Tool


class PaintTool(Tool):
    """Dabs along the pointer's path onto the active layer (or the inpaint mask); one stroke, one command."""

    name = "brush"
    label = "Brush"
    icon = "mdi6.brush"
    shortcut = "B"
    erase = False

    def __init__(self, options) -> None:
        super().__init__(options)
        self._stroke = None

    def _brush(self):
        from sd_studio.document.brush import Brush

        o = self.options
        color = (255, 255, 255) if self.edits_mask else o.rgba()[:3]
        return Brush(size=float(o.size), hardness=float(o.hardness), opacity=float(o.opacity), color=color, erase=self.erase)

    def press(self, canvas, pos: QPointF, pressure: float, modifiers) -> None:
        from sd_studio.document.brush import Stroke

        doc = canvas.document
        target = None
        if not self.edits_mask:
            target = doc.active
            if target is None:
                canvas.message.emit("There is no layer to paint on.")
                return
            if target.locked:
                canvas.message.emit(f"The layer “{target.name}” is locked.")
                return
        o = self.options
        self._stroke = Stroke(doc, self._brush(), target, pressure_size=o.pressure_size, pressure_opacity=o.pressure_opacity)
        self._stroke.add_point(pos.x(), pos.y(), pressure)

    def move(self, canvas, pos: QPointF, pressure: float, modifiers) -> None:
        if self._stroke is not None:
            self._stroke.add_point(pos.x(), pos.y(), pressure)

    def release(self, canvas, pos: QPointF, modifiers) -> None:
        stroke, self._stroke = self._stroke, None
        if stroke is None:
            return
        stroke.finish()  # records itself in the history

    def cancel(self, canvas) -> None:
        stroke, self._stroke = self._stroke, None
        if stroke is not None:
            stroke.cancel()

    def cursor_radius(self) -> float | None:
        return self.options.size / 2


class EraserTool(PaintTool):
    """Erases the active layer's pixels to transparency."""

    name = "eraser"
    label = "Eraser"
    icon = "mdi6.eraser"
    shortcut = "E"
    erase = True


class MaskBrushTool(PaintTool):
    """Marks what a generation repaints, on the inpaint mask; it looks like an eraser because, to the
    user, it erases what the generation is to replace."""

    name = "mask_brush"
    label = "Mask brush"
    icon = "mdi6.eraser-variant"
    shortcut = "M"
    edits_mask = True


class MaskEraserTool(PaintTool):
    """Unmarks parts of the inpaint mask."""

    name = "mask_eraser"
    label = "Mask eraser"
    icon = "mdi6.checkerboard-remove"
    shortcut = "Shift+M"
    edits_mask = True
    erase = True
