"""ToolOptions: the brush settings every painting tool shares, announced when they change."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QColor

MIN_SIZE = 1
MAX_SIZE = 1000


class ToolOptions(QObject):
    """Size (px), hardness and opacity (0..1), colour, and whether pen pressure scales size/opacity."""

    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.size = 40.0
        self.hardness = 0.8
        self.opacity = 1.0
        self.color = QColor(30, 30, 30)
        self.pressure_size = True
        self.pressure_opacity = False

    def set(self, **values) -> None:
        """Change some options and announce it."""
        for name, value in values.items():
            if not hasattr(self, name):
                raise AttributeError(name)
            if name == "size":
                value = float(max(MIN_SIZE, min(MAX_SIZE, value)))
            setattr(self, name, value)
        self.changed.emit()

    def bigger(self) -> None:
        """The next brush size up (`]`)."""
        self.set(size=max(self.size + 1, round(self.size * 1.2)))

    def smaller(self) -> None:
        """The next brush size down (`[`)."""
        self.set(size=min(self.size - 1, round(self.size / 1.2)))

    def rgba(self) -> tuple[int, int, int, int]:
        """The colour as an (r, g, b, 255) tuple."""
        return (self.color.red(), self.color.green(), self.color.blue(), 255)
