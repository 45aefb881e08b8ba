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
    mask = None if doc.mask.is_empty else doc.mask.to_array()
    return _request(np.array(doc.composite(), copy=True), mask, settings)


def prepare_request(doc: Document, settings: dict):
    """A function that builds and validates the GenerationRequest (build_request) when called on the
    engine thread, from a snapshot of the document taken now; every setting is checked here, at once.

    The snapshot costs a dict copy per layer (tiles are shared, read-only); flattening it and copying
    the mask, hundreds of milliseconds on a large document, happen when the function runs, so pressing
    Generate never stalls the window.
    """
    from sd_studio.document.io.recovery import snapshot_document

    # the same request over stand-ins of the right shape that cost nothing: a bad setting fails now
    width, height = doc.size
    image = np.broadcast_to(np.zeros(4, np.uint8), (height, width, 4))
    mask = None if doc.mask.is_empty else np.broadcast_to(np.uint8(255), (height, width))
    _request(image, mask, settings).validated()
    snapshot, settings = snapshot_document(doc), dict(settings)
    return lambda: build_request(snapshot, settings).validated()


def _request(image: np.ndarray, mask: np.ndarray | None, settings: dict):
    from sd_studio.engine.request import GenerationRequest

    mode = settings.get("mode", "inpaint")
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
