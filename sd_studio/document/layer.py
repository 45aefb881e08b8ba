"""Layer: a surface of pixels with a name, an offset, opacity, blend mode, visibility and lock."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import Enum

from sd_studio.document.geometry import Bounds, Point
from sd_studio.document.surface import Surface


class BlendMode(Enum):
    """How a layer mixes with what lies below it; values are OpenRaster's `composite-op` names."""

    SRC_OVER = "svg:src-over"
    MULTIPLY = "svg:multiply"
    SCREEN = "svg:screen"
    OVERLAY = "svg:overlay"
    DARKEN = "svg:darken"
    LIGHTEN = "svg:lighten"
    COLOR_DODGE = "svg:color-dodge"
    COLOR_BURN = "svg:color-burn"
    HARD_LIGHT = "svg:hard-light"
    SOFT_LIGHT = "svg:soft-light"
    DIFFERENCE = "svg:difference"
    PLUS = "svg:plus"
    COLOR = "svg:color"
    LUMINOSITY = "svg:luminosity"
    HUE = "svg:hue"
    SATURATION = "svg:saturation"

    @property
    def label(self) -> str:
        """The name shown to users: 'Color dodge', 'Normal', ..."""
        if self is BlendMode.SRC_OVER:
            return "Normal"
        return self.value[4:].replace("-", " ").capitalize()

    @staticmethod
    def from_op(op: str) -> "BlendMode":
        """The mode for an OpenRaster composite-op; unknown ops raise ValueError."""
        return BlendMode(op)


_ids = itertools.count(1)

LAYER_PROPERTIES = ("name", "offset", "opacity", "visible", "locked", "blend_mode", "metadata")
"""The properties a SetLayerProperty command may change."""


@dataclass(eq=False)
class Layer:
    """One layer of a document. Its pixels live in `surface`, in layer coordinates; the layer's
    top-left pixel lands at `offset` in the document. `metadata` holds text such as the
    generation parameters of a generated layer (key "parameters", A1111's format)."""

    name: str = "Layer"
    surface: Surface = field(default_factory=Surface)
    offset: Point = Point(0, 0)
    opacity: float = 1.0
    visible: bool = True
    locked: bool = False
    blend_mode: BlendMode = BlendMode.SRC_OVER
    metadata: dict[str, str] = field(default_factory=dict)
    id: int = field(default_factory=lambda: next(_ids))

    def document_bounds(self) -> Bounds:
        """Where the layer's stored tiles lie in document coordinates."""
        b = self.surface.bounds()
        return b.offset(self.offset.x, self.offset.y) if not b.is_empty else b

    def to_layer(self, bounds: Bounds) -> Bounds:
        """A document-space rectangle expressed in this layer's own coordinates."""
        return bounds.offset(-self.offset.x, -self.offset.y)

    def read(self, bounds: Bounds):
        """The layer's RGBA pixels covering a document-space rectangle."""
        return self.surface.read(self.to_layer(bounds))

    def properties(self) -> dict:
        """The layer's properties (not its pixels) as a plain dict, for comparison and undo."""
        return {
            "name": self.name, "offset": tuple(self.offset), "opacity": self.opacity,
            "visible": self.visible, "locked": self.locked, "blend_mode": self.blend_mode,
            "metadata": dict(self.metadata),
        }

    def duplicate(self, name: str | None = None) -> "Layer":
        """A new layer with the same pixels and properties (tiles shared until written)."""
        return Layer(
            name=name if name is not None else f"{self.name} copy",
            surface=self.surface.copy(), offset=self.offset, opacity=self.opacity,
            visible=self.visible, locked=self.locked, blend_mode=self.blend_mode,
            metadata=dict(self.metadata),
        )
