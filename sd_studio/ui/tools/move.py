"""Move tool: drag the active layer; the move is one SetLayerProperty("offset") command."""

from __future__ import annotations

from sd_studio.document.geometry import Point
from sd_studio.ui.tools.base import Tool


class MoveTool(Tool):
    """Drags the active layer by whole pixels, shown live, recorded once on release."""

    name = "move"
    label = "Move layer"
    icon = "mdi6.cursor-move"
    shortcut = "V"

    def __init__(self, options) -> None:
        super().__init__(options)
        self._layer = None
        self._start = None
        self._origin = Point(0, 0)

    def press(self, canvas, pos, pressure, modifiers) -> None:
        layer = canvas.document.active
        if layer is None:
            return
        if layer.locked:
            canvas.message.emit(f"The layer “{layer.name}” is locked.")
            return
        self._layer, self._start, self._origin = layer, pos, layer.offset

    def _place(self, canvas, offset: Point) -> None:
        # The live preview moves the layer directly; release turns the move into a command.
        layer, doc = self._layer, canvas.document
        before = layer.document_bounds()
        layer.offset = offset
        doc.notify_property(layer, "offset", before.union(layer.document_bounds()))

    def _offset(self, pos) -> Point:
        d = pos - self._start
        return Point(self._origin.x + round(d.x()), self._origin.y + round(d.y()))

    def move(self, canvas, pos, pressure, modifiers) -> None:
        if self._layer is not None:
            self._place(canvas, self._offset(pos))

    def release(self, canvas, pos, modifiers) -> None:
        if self._layer is None:
            return
        target = self._offset(pos)
        self._place(canvas, self._origin)
        layer, self._layer = self._layer, None
        if target != self._origin:
            from sd_studio.document.commands import SetLayerProperty  # numpy loads after the window shows

            canvas.document.execute(SetLayerProperty(layer, "offset", target))

    def cancel(self, canvas) -> None:
        if self._layer is not None:
            self._place(canvas, self._origin)
            self._layer = None
