"""Document: the size, the layer stack, the active layer, the inpaint mask and their events."""

from __future__ import annotations

import numpy as np

from sd_studio.document.commands import AddLayer, Command
from sd_studio.document.geometry import Bounds, Extent
from sd_studio.document.history import DEFAULT_BUDGET, History
from sd_studio.document.layer import Layer
from sd_studio.document.mask import InpaintMask
from sd_studio.document.signals import Signal
from sd_studio.document.surface import Surface

MAX_SIDE = 32768
"""The largest width or height a document may have."""


class DocumentEvents:
    """What a document announces, so views repaint only what changed.

    - `pixels_changed(bounds)`: the composite changed inside bounds (document coordinates).
    - `layer_pixels_changed(layer, bounds)`: a layer's own pixels changed (layer thumbnails).
    - `mask_changed(bounds)`: the inpaint mask changed inside bounds.
    - `layers_changed()`: layers were added, removed or reordered.
    - `layer_property_changed(layer, name)`: a layer property (opacity, name, ...) changed.
    - `active_changed(layer)`: another layer became the active one.
    - `history_changed()`: an entry was pushed, undone or redone; modified state may differ.
    """

    pixels_changed = Signal(object)
    layer_pixels_changed = Signal(object, object)
    mask_changed = Signal(object)
    layers_changed = Signal()
    layer_property_changed = Signal(object, str)
    active_changed = Signal(object)
    history_changed = Signal()


class Document:
    """An image being edited: a stack of layers (index 0 is the bottom), one of them active,
    an inpaint mask, and the history of commands that changed them. Change it only through
    `execute` (or `push_done` for edits painted live), so that undo covers everything."""

    def __init__(self, width: int, height: int, history_budget: int = DEFAULT_BUDGET) -> None:
        if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
            raise ValueError(f"a document is 1 to {MAX_SIDE} pixels on each side, not {width}x{height}")
        from sd_studio.document.flattened import FlattenedCache

        self.size = Extent(int(width), int(height))
        self.layers: list[Layer] = []
        self._active: Layer | None = None
        self.mask = InpaintMask(self.size)
        self.history = History(history_budget)
        self.history.on_change = lambda: self.events.history_changed.emit()
        self.events = DocumentEvents()
        self.metadata: dict[str, str] = {}
        self._cache = FlattenedCache(lambda: self.layers, self.size)

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def new(cls, width: int, height: int, background: tuple[int, int, int, int] | None = (255, 255, 255, 255)) -> "Document":
        """A new document with one layer filled with background (or transparent when None)."""
        doc = cls(width, height)
        layer = Layer(name="Background")
        if background is not None and background[3] > 0:
            layer.surface.write(0, 0, np.broadcast_to(np.array(background, np.uint8), (height, width, 4)).copy())
        doc.layers.append(layer)
        doc._active = layer
        return doc

    @classmethod
    def from_pixels(cls, rgba: np.ndarray, name: str = "Background") -> "Document":
        """A document holding one layer with these (height, width, 4) uint8 pixels."""
        h, w = rgba.shape[:2]
        doc = cls(w, h)
        layer = Layer(name=name)
        layer.surface.write(0, 0, np.ascontiguousarray(rgba, dtype=np.uint8))
        doc.layers.append(layer)
        doc._active = layer
        return doc

    # -- state -------------------------------------------------------------------------------
    @property
    def bounds(self) -> Bounds:
        """The document's rectangle, at the origin."""
        return Bounds.from_extent(self.size)

    @property
    def active(self) -> Layer | None:
        """The layer tools paint on."""
        return self._active

    @active.setter
    def active(self, layer: Layer | None) -> None:
        if layer is not None and layer not in self.layers:
            raise ValueError("the active layer must be in the document")
        if layer is not self._active:
            self._active = layer
            self.events.active_changed.emit(layer)

    @property
    def is_modified(self) -> bool:
        """True when there are changes since the document was opened or last saved."""
        return not self.history.is_clean

    def index_of(self, layer: Layer) -> int:
        """The layer's position in the stack (0 is the bottom)."""
        return self.layers.index(layer)

    def layer_by_id(self, layer_id: int) -> Layer:
        """The layer with that id."""
        for layer in self.layers:
            if layer.id == layer_id:
                return layer
        raise KeyError(layer_id)

    # -- changing ----------------------------------------------------------------------------
    def execute(self, command: Command) -> Command:
        """Run a command and record it for undo."""
        self.history.push(command, self, done=False)
        return command

    def push_done(self, command: Command) -> Command:
        """Record a command whose change is already made (a stroke painted live)."""
        self.history.push(command, self, done=True)
        return command

    def undo(self) -> Command | None:
        """Undo the newest change."""
        return self.history.undo(self)

    def redo(self) -> Command | None:
        """Redo the newest undone change."""
        return self.history.redo(self)

    def add_layer(self, name: str = "Layer", index: int | None = None) -> Layer:
        """Add an empty layer above the active one (undoable) and return it."""
        if index is None:
            index = self.layers.index(self._active) + 1 if self._active is not None else len(self.layers)
        layer = Layer(name=name, surface=Surface(4))
        self.execute(AddLayer(layer, index))
        return layer

    # -- pixels ------------------------------------------------------------------------------
    def composite(self, bounds: Bounds | None = None) -> np.ndarray:
        """The visible layers flattened over bounds (default: the whole document), RGBA uint8.

        The flattened image is cached; only tiles changed since the last call are recomputed.
        """
        area = self.bounds if bounds is None else bounds.intersect(self.bounds)
        return self._cache.get(area)

    # -- notifications from commands ---------------------------------------------------------
    def notify_pixels(
        self, layer: Layer, bounds: Bounds | None, extra: Bounds | None = None,
        rects: list[Bounds] | None = None,
    ) -> None:
        """A layer's pixels changed in bounds (layer coordinates; None: anywhere); when rects (layer
        coordinates) are given, only they are recomposited and bounds is just their union."""
        if bounds is None:
            area = layer.document_bounds()
        else:
            area = bounds.offset(layer.offset.x, layer.offset.y)
        if extra is not None:
            area = area.union(extra)
        if rects is not None and extra is None:
            for rect in rects:
                self._cache.invalidate(rect.offset(layer.offset.x, layer.offset.y))
        else:
            self._cache.invalidate(area)
        self.events.layer_pixels_changed.emit(layer, area)
        self.events.pixels_changed.emit(area.intersect(self.bounds))

    def notify_mask(self, bounds: Bounds) -> None:
        """The inpaint mask changed in bounds."""
        self.events.mask_changed.emit(bounds.intersect(self.bounds))

    def notify_stack(self, area: Bounds) -> None:
        """Layers were added, removed or reordered; area is where the composite may differ."""
        self._cache.invalidate(area)
        if self._active is not None and self._active not in self.layers:
            self._active = self.layers[-1] if self.layers else None
        self.events.layers_changed.emit()
        self.events.active_changed.emit(self._active)
        self.events.pixels_changed.emit(area.intersect(self.bounds))

    def notify_property(self, layer: Layer, prop: str, area: Bounds) -> None:
        """A layer property changed; area is where the composite may differ."""
        if prop in ("opacity", "visible", "blend_mode", "offset"):
            self._cache.invalidate(area)
            self.events.pixels_changed.emit(area.intersect(self.bounds))
        self.events.layer_property_changed.emit(layer, prop)
