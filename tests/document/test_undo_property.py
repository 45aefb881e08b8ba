"""The document never loses an edit: any sequence of commands undoes to the start, bit for bit,
and redoes to the same end."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sd_studio.document.brush import Brush, Stroke
from sd_studio.document.commands import (
    AddLayer, MoveLayer, RemoveLayer, SetLayerProperty, clear_mask, duplicate_layer, flatten_image,
    merge_down,
)
from sd_studio.document.document import Document
from sd_studio.document.geometry import Bounds
from sd_studio.document.layer import BlendMode, Layer
from sd_studio.document.mask import (
    feather_mask, fill_mask_polygon, fill_mask_rect, grow_mask, invert_mask, shrink_mask,
)
from sd_studio.errors import SDStudioError

W, H = 96, 80

coord_x = st.floats(-12, W + 12, allow_nan=False)
coord_y = st.floats(-12, H + 12, allow_nan=False)
brushes = st.builds(
    Brush,
    size=st.floats(1, 40),
    hardness=st.floats(0, 1),
    opacity=st.floats(0, 1),
    spacing=st.floats(0.05, 1.5),
    color=st.tuples(*[st.integers(0, 255)] * 3),
)
points = st.lists(st.tuples(coord_x, coord_y, st.floats(0, 1)), min_size=1, max_size=5)
property_values = {
    "name": st.text(max_size=8),
    "offset": st.tuples(st.integers(-40, 40), st.integers(-40, 40)),
    "opacity": st.floats(0, 1),
    "visible": st.booleans(),
    "locked": st.booleans(),
    "blend_mode": st.sampled_from(list(BlendMode)),
    "metadata": st.dictionaries(st.sampled_from(["parameters", "seed"]), st.text(max_size=5), max_size=2),
}

KINDS = [
    "paint", "erase", "mask_paint", "mask_erase", "add", "remove", "move", "duplicate", "property",
    "merge", "flatten", "grow", "shrink", "feather", "clear_mask", "rect", "lasso", "invert",
    "undo", "redo", "look",
]


def tiles(surface):
    return {k: t.tobytes() for k, t in surface.snapshot().items()}


def state(doc):
    """Everything undo must restore: layer identity and order, properties, pixels, mask, active."""
    return (
        [id(layer) for layer in doc.layers],
        [layer.properties() for layer in doc.layers],
        [tiles(layer.surface) for layer in doc.layers],
        tiles(doc.mask.surface),
        id(doc.active) if doc.active is not None else None,
        doc.composite().tobytes(),
    )


def stroke(doc, data, target, erase):
    brush = data.draw(brushes)
    brush = Brush(brush.size, brush.hardness, brush.opacity, brush.spacing, brush.color, erase)
    if target is not None and target.locked:
        with pytest.raises(SDStudioError):
            Stroke(doc, brush, target)
        return
    s = Stroke(doc, brush, target, pressure_opacity=data.draw(st.booleans()))
    for x, y, p in data.draw(points):
        s.add_point(x, y, p)
    if data.draw(st.integers(0, 9)) == 0:
        s.cancel()
    else:
        s.finish()


def run(doc, command):
    """Execute a mask command; the operations give None when they would change nothing."""
    if command is not None:
        doc.execute(command)


def step(doc, data, kind):
    """Run one command of that kind, or nothing when it makes no sense in this state."""
    layers = doc.layers
    pick = (lambda: data.draw(st.sampled_from(layers))) if layers else None
    if kind in ("paint", "erase") and pick:
        stroke(doc, data, pick(), kind == "erase")
    elif kind in ("mask_paint", "mask_erase"):
        stroke(doc, data, None, kind == "mask_erase")
    elif kind == "add":
        doc.execute(AddLayer(Layer(name="New"), data.draw(st.integers(0, len(layers)))))
    elif kind == "remove" and pick:
        doc.execute(RemoveLayer(pick()))
    elif kind == "move" and pick:
        doc.execute(MoveLayer(pick(), data.draw(st.integers(0, len(layers)))))
    elif kind == "duplicate" and pick:
        doc.execute(duplicate_layer(pick(), doc))
    elif kind == "property" and pick:
        prop = data.draw(st.sampled_from(sorted(property_values)))
        doc.execute(SetLayerProperty(pick(), prop, data.draw(property_values[prop])))
    elif kind == "merge" and len(layers) > 1:
        doc.execute(merge_down(data.draw(st.sampled_from(layers[1:])), doc))
    elif kind == "flatten" and layers:
        doc.execute(flatten_image(doc))
    elif kind == "grow":
        run(doc, grow_mask(doc, data.draw(st.integers(1, 6))))
    elif kind == "shrink":
        run(doc, shrink_mask(doc, data.draw(st.integers(1, 6))))
    elif kind == "feather":
        run(doc, feather_mask(doc, data.draw(st.floats(0.5, 6))))
    elif kind == "clear_mask":
        doc.execute(clear_mask(doc))
    elif kind == "rect":
        x, y = data.draw(st.integers(-10, W)), data.draw(st.integers(-10, H))
        run(doc, fill_mask_rect(doc, Bounds(x, y, data.draw(st.integers(0, 40)), data.draw(st.integers(0, 40)))))
    elif kind == "lasso":
        run(doc, fill_mask_polygon(doc, data.draw(st.lists(st.tuples(coord_x, coord_y), max_size=6))))
    elif kind == "invert":
        run(doc, invert_mask(doc))
    elif kind == "undo":
        doc.undo()
    elif kind == "redo":
        doc.redo()
    elif kind == "look":
        doc.composite()  # fills the composite cache mid-sequence, so stale tiles would show


def start_document(data):
    doc = Document.new(W, H, (200, 180, 160, 255))
    for i in range(data.draw(st.integers(0, 2))):
        layer = Layer(name=f"L{i}")
        layer.surface.write(5 * i, 7 * i, np.full((30, 40, 4), 60 * (i + 1), np.uint8))
        doc.layers.append(layer)
    doc.active = doc.layers[-1]
    return doc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_any_sequence_undoes_to_the_start_and_redoes_to_the_end(data):
    doc = start_document(data)
    start = state(doc)
    for _ in range(data.draw(st.integers(0, 200), label="commands")):
        step(doc, data, data.draw(st.sampled_from(KINDS)))
    end = state(doc)
    done = doc.history.index
    doc.history.jump_to(0, doc)
    assert state(doc) == start
    doc.history.jump_to(done, doc)
    assert state(doc) == end
