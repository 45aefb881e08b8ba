"""Tools: each turns pointer gestures on the canvas into one document command."""

from sd_studio.ui.tools.base import Tool
from sd_studio.ui.tools.move import MoveTool
from sd_studio.ui.tools.options import ToolOptions
from sd_studio.ui.tools.paint import EraserTool, MaskBrushTool, MaskEraserTool, PaintTool
from sd_studio.ui.tools.picker import ColorPickerTool
from sd_studio.ui.tools.selection import LassoSelectTool, RectangleSelectTool

TOOL_CLASSES = (PaintTool, EraserTool, MaskBrushTool, MaskEraserTool, RectangleSelectTool, LassoSelectTool, MoveTool, ColorPickerTool)
"""Every tool, in toolbar order."""

__all__ = ["TOOL_CLASSES", "Tool", "ToolOptions"]
