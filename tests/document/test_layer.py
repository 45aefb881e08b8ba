"""Layer: offset, properties, duplicates, blend mode names."""

import numpy as np
import pytest

from sd_studio.document.geometry import Bounds, Point
from sd_studio.document.layer import BlendMode, Layer


def test_read_uses_the_offset():
    layer = Layer(offset=Point(10, 20))
    layer.surface.write(0, 0, np.full((2, 2, 4), 99, np.uint8))
    px = layer.read(Bounds(9, 19, 4, 4))
    assert px[1, 1, 0] == 99 and px[0, 0, 3] == 0 and px[3, 3, 3] == 0
    assert layer.document_bounds() == Bounds(10, 20, 64, 64)
    assert layer.to_layer(Bounds(10, 20, 1, 1)) == Bounds(0, 0, 1, 1)


def test_empty_layer_has_empty_bounds():
    assert Layer(offset=Point(5, 5)).document_bounds().is_empty


def test_duplicate_shares_pixels_until_written_and_gets_a_new_id():
    layer = Layer(name="Sky", opacity=0.5, blend_mode=BlendMode.SCREEN, metadata={"parameters": "p"})
    layer.surface.write(0, 0, np.full((3, 3, 4), 7, np.uint8))
    dup = layer.duplicate()
    assert dup.name == "Sky copy" and dup.id != layer.id
    assert dup.properties() | {"name": "Sky"} == layer.properties()
    dup.surface.write(0, 0, np.full((1, 1, 4), 1, np.uint8))
    dup.metadata["parameters"] = "q"
    assert layer.read(Bounds(0, 0, 1, 1))[0, 0, 0] == 7 and layer.metadata["parameters"] == "p"


def test_blend_mode_labels_and_ops():
    assert BlendMode.SRC_OVER.label == "Normal"
    assert BlendMode.COLOR_DODGE.label == "Color dodge"
    assert BlendMode.from_op("svg:multiply") is BlendMode.MULTIPLY
    with pytest.raises(ValueError):
        BlendMode.from_op("svg:nope")
