"""Generation in the editor: panel settings -> GenerationRequest, and a result -> one undoable command."""

from __future__ import annotations

import numpy as np

from sd_studio.document.commands import AddLayer, Command, Compound
from sd_studio.document.document import Document
from sd_studio.document.layer import Layer
from sd_studio.document.surface import Surface

MODE_LABELS = {"inpaint": "Inpaint", "img2img": "Image to image", "txt2img": "Text to image", "fill": "Fill"}
"""The editor's modes and their labels; "fill" is the classical, no-weights inpaint."""


def build_request(doc: Document, settings: dict):
    """The GenerationRequest for the document's composite and mask with the panel's settings.

    Inpaint and Fill repaint the mask; Image to image and Text to image work inside the mask when
    there is one and on the whole image otherwise.
    """
    from sd_studio.engine.request import GenerationRequest

    mode = settings.get("mode", "inpaint")
    mask = None if doc.mask.is_empty else doc.mask.to_array()
    image = np.array(doc.composite(), copy=True)
    fields = {k: settings[k] for k in (
        "prompt", "negative_prompt", "steps", "guidance", "strength", "seed", "scheduler", "variants", "model",
        "padding", "feather", "resolution", "whole_image", "match_color", "device", "memory_mode", "precision",
    ) if k in settings}
    if mode == "fill":
        return GenerationRequest(mode="inpaint", image=image, mask=mask, engine="classical",
                                 padding=fields.get("padding", 32), feather=fields.get("feather", 4),
                                 whole_image=False, seed=fields.get("seed"))
    if mode == "inpaint":
        fields["whole_image"] = fields.get("whole_image", False)
    return GenerationRequest(mode=mode, image=image, mask=mask, engine="diffusion", **fields)


def layer_name(parameters: dict, mode: str) -> str:
    """A result layer's name: the start of its prompt (or the mode), like "a red barn on a hill"."""
    prompt = " ".join(str(parameters.get("prompt") or "").split())
    if not prompt:
        return MODE_LABELS.get(mode, "Generated")
    return prompt if len(prompt) <= 40 else prompt[:39].rstrip() + "…"


def result_layer(result, i: int, mode: str) -> Layer:
    """Variant i of a GenerationResult as a layer placed at the result's region, carrying its parameters."""
    params = result.parameters[i] if i < len(result.parameters) else {}
    surface = Surface(4)
    surface.write(0, 0, np.ascontiguousarray(result.images[i], dtype=np.uint8))
    name = layer_name(params, mode)
    if len(result.images) > 1:
        name = f"{name} (seed {result.seeds[i]})"
    metadata = {"parameters": result.parameters_text(i)} if i < len(result.parameters) else {}
    return Layer(name=name, surface=surface, offset=result.region.origin, metadata=metadata)


def apply_result(doc: Document, result, variants: list[int], source: Layer | None, mode: str) -> Command:
    """The one command that adds the chosen variants as layers just above the source layer."""
    index = doc.layers.index(source) + 1 if source is not None and source in doc.layers else len(doc.layers)
    layers = [result_layer(result, i, mode) for i in variants]
    commands = [AddLayer(layer, index + n) for n, layer in enumerate(layers)]
    if len(commands) == 1:
        commands[0].name = f"Add generated layer “{layers[0].name}”"
        return commands[0]
    return Compound(f"Add {len(commands)} generated layers", commands)
