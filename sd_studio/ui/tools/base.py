"""Tool: the contract between the canvas and the ways of turning gestures into document commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, Qt

from sd_studio.ui.tools.options import ToolOptions

if TYPE_CHECKING:
    from PySide6.QtGui import QPainter

    from sd_studio.ui.canvas import Canvas


class Tool:
    """A tool receives press/move/release in document coordinates and changes the document only
    through commands; a gesture either ends in one undoable command or (cancel) in no change."""

    name = "tool"
    label = "Tool"
    icon = "mdi6.cursor-default"
    shortcut = ""
    edits_mask = False
    """True for the tools that change the inpaint mask: choosing one shows the mask."""

    def __init__(self, options: ToolOptions) -> None:
        self.options = options

    def press(self, canvas: Canvas, pos: QPointF, pressure: float, modifiers: Qt.KeyboardModifier) -> None:
        """The button went down at pos."""

    def move(self, canvas: Canvas, pos: QPointF, pressure: float, modifiers: Qt.KeyboardModifier) -> None:
        """The pointer moved with the button down."""

    def release(self, canvas: Canvas, pos: QPointF, modifiers: Qt.KeyboardModifier) -> None:
        """The button went up: finish the gesture as one command."""

    def cancel(self, canvas: Canvas) -> None:
        """Abandon the gesture, leaving the document as it was before it."""

    def paint_overlay(self, painter: QPainter, canvas: Canvas) -> None:
        """Draw the gesture in progress (widget coordinates)."""

    def cursor_radius(self) -> float | None:
        """The radius of the outline drawn around the pointer, in document pixels (None: none)."""
        return None
