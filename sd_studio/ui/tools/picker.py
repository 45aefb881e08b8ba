"""Colour picker: takes the brush colour from the visible composite under the pointer."""

from __future__ import annotations

from PySide6.QtGui import QColor

from sd_studio.document.geometry import Bounds
from sd_studio.ui.tools.base import Tool


class ColorPickerTool(Tool):
    """Sets the brush colour to the composite's pixel under the pointer (opaque pixels only)."""

    name = "picker"
    label = "Colour picker"
    icon = "mdi6.eyedropper"
    shortcut = "I"

    def _pick(self, canvas, pos) -> None:
        x, y = int(pos.x()), int(pos.y())
        doc = canvas.document
        if not doc.bounds.contains_point(x, y):
            return
        r, g, b, a = (int(v) for v in doc.composite(Bounds(x, y, 1, 1))[0, 0])
        if a:
            self.options.set(color=QColor(r, g, b))

    def press(self, canvas, pos, pressure, modifiers) -> None:
        self._pick(canvas, pos)

    def move(self, canvas, pos, pressure, modifiers) -> None:
        self._pick(canvas, pos)
