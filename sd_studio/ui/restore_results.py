"""A restoration's result -> one undoable document command: the canvas change it needs, then its new layer."""

from __future__ import annotations

import numpy as np

from sd_studio.document.canvas import ResizeCanvas, ScaleImage
from sd_studio.document.commands import AddLayer, Command, Compound
from sd_studio.document.document import Document
from sd_studio.document.layer import Layer
from sd_studio.document.surface import Surface

LABELS = {"Upscale": "Upscaled", "Expand": "Expanded", "Restore": "Restored", "Face restoration": "Faces restored",
          "Colorize": "Coloured"}
"""Layer names by the operation recorded in a result's parameters (Postprocessing)."""


def result_layer(result, name: str | None = None) -> Layer:
    """The result's patch as a layer at its region, carrying its parameters."""
    surface = Surface(4)
    if result.image.size:
        surface.write(0, 0, np.ascontiguousarray(result.image, dtype=np.uint8))
    operation = str(result.parameters.get("Postprocessing", ""))
    label = name or LABELS.get(operation, operation or "Restored")
    model = result.parameters.get("model")
    if model and not name:
        label = f"{label} ({model})"
    return Layer(name=label, surface=surface, offset=result.region.origin,
                 metadata={"parameters": result.parameters_text()})


def apply_restore_result(doc: Document, result, source: Layer | None = None, name: str | None = None) -> Command:
    """One command: scale or resize the canvas as the result needs, then add its layer above `source` (or on top)."""
    commands: list[Command] = []
    if result.scale != 1:
        commands.append(ScaleImage(doc, result.scale))
    elif tuple(result.canvas) != tuple(doc.size) or tuple(result.shift) != (0, 0):
        commands.append(ResizeCanvas(doc, result.canvas, result.shift))
    layer = result_layer(result, name)
    index = doc.layers.index(source) + 1 if source is not None and source in doc.layers else len(doc.layers)
    commands.append(AddLayer(layer, index, name=f"Add layer “{layer.name}”"))
    if len(commands) == 1:
        return commands[0]
    return Compound(layer.name, commands)
