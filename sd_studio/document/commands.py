"""Commands: every change to a document, each a reversible change to the document model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np

from sd_studio.document.geometry import Bounds, Point
from sd_studio.document.layer import LAYER_PROPERTIES, BlendMode, Layer
from sd_studio.document.surface import TILE, Surface, TileMap

if TYPE_CHECKING:
    from sd_studio.document.document import Document


class Command:
    """A reversible change to the document model: `redo` does the work, `undo` rolls it back.

    A command is created, then run once by `Document.execute` (or pushed as already done, like a
    brush stroke painted live); after that undo and redo alternate. Commands keep references to
    the layers and tiles they touch, never copies of whole layers.
    """

    name = "Change"

    def redo(self, doc: "Document") -> None:
        """Do (or re-do) the change."""
        raise NotImplementedError

    def undo(self, doc: "Document") -> None:
        """Roll the change back."""
        raise NotImplementedError

    def arrays(self) -> Iterable[np.ndarray]:
        """The pixel arrays this command keeps alive, for the history's memory budget."""
        return ()


def _surface_of(doc: "Document", target: Layer | None) -> Surface:
    return doc.mask.surface if target is None else target.surface


class TilesCommand(Command):
    """Replace some tiles of a layer (or of the inpaint mask when target is None).

    Built from the tiles before and after an edit; the same command serves brush strokes,
    erasing, mask painting, fills and pasted pixels.
    """

    def __init__(self, name: str, target: Layer | None, before: TileMap, after: TileMap) -> None:
        self.name = name
        self.target = target
        self.before = dict(before)
        self.after = dict(after)

    def _apply(self, doc: "Document", tiles: TileMap) -> None:
        _surface_of(doc, self.target).set_tiles(tiles)
        # Only tiles whose content differs need recompositing: a long diagonal stroke touches a
        # thin band of tiles, not its whole bounding box.
        changed = [k for k in tiles if self.before.get(k) is not self.after.get(k)]
        rects = [Bounds(tx * TILE, ty * TILE, TILE, TILE) for tx, ty in changed]
        bounds = Bounds(0, 0, 0, 0)
        for rect in rects:
            bounds = bounds.union(rect)
        if self.target is None:
            doc.notify_mask(bounds)
        else:
            doc.notify_pixels(self.target, bounds, rects=rects)

    def redo(self, doc: "Document") -> None:
        self._apply(doc, self.after)

    def undo(self, doc: "Document") -> None:
        self._apply(doc, self.before)

    def arrays(self) -> Iterator[np.ndarray]:
        for tile in (*self.before.values(), *self.after.values()):
            if tile is not None:
                yield tile

    @property
    def is_noop(self) -> bool:
        """True when nothing changed."""
        return all(self.before[k] is self.after.get(k) for k in self.before) and self.before.keys() == self.after.keys()

    @staticmethod
    def write(name: str, target: Layer | None, surface: Surface, x: int, y: int, pixels: np.ndarray) -> "TilesCommand":
        """A command that writes an array at (x, y) of surface (layer coordinates), not yet run."""
        bounds = Bounds(x, y, pixels.shape[1], pixels.shape[0])
        keys = surface.tile_keys_in(bounds)
        before = surface.get_tiles(keys)
        scratch = Surface(surface.channels)
        scratch.set_tiles({k: v for k, v in before.items() if v is not None})
        scratch.write(x, y, pixels)
        return TilesCommand(name, target, before, scratch.get_tiles(keys))


class StrokeRecorder:
    """Collects the tiles a live edit touches so the whole edit becomes one TilesCommand.

    Call `touch(bounds)` before changing a rectangle of the surface (layer coordinates); the first
    touch of each tile remembers its old content. `finish` returns the command, already done.
    """

    def __init__(self, name: str, target: Layer | None, surface: Surface) -> None:
        self.name = name
        self.target = target
        self.surface = surface
        self.before: TileMap = {}

    def touch(self, bounds: Bounds) -> None:
        """Remember the tiles of bounds that are not yet remembered."""
        for key in bounds.tiles(TILE):
            if key not in self.before:
                self.before[key] = self.surface.tile(key)

    def finish(self) -> TilesCommand:
        """The command for everything painted since the recorder started."""
        return TilesCommand(self.name, self.target, self.before, self.surface.get_tiles(self.before))


class AddLayer(Command):
    """Insert a layer at an index of the stack (bottom is 0) and make it active."""

    def __init__(self, layer: Layer, index: int | None = None, name: str | None = None) -> None:
        self.layer = layer
        self.index = index
        self.name = name or f"Add layer “{layer.name}”"
        self._active_before: Layer | None = None

    def redo(self, doc: "Document") -> None:
        self._active_before = doc.active
        index = len(doc.layers) if self.index is None else self.index
        doc.layers.insert(index, self.layer)
        doc.active = self.layer
        doc.notify_stack(self.layer.document_bounds())

    def undo(self, doc: "Document") -> None:
        doc.layers.remove(self.layer)
        doc.active = self._active_before
        doc.notify_stack(self.layer.document_bounds())

    def arrays(self) -> Iterable[np.ndarray]:
        return self.layer.surface.snapshot().values()


class RemoveLayer(Command):
    """Take a layer out of the stack; the layer below (or above) becomes active."""

    def __init__(self, layer: Layer) -> None:
        self.layer = layer
        self.name = f"Delete layer “{layer.name}”"
        self._index = 0
        self._active_before: Layer | None = None

    def redo(self, doc: "Document") -> None:
        self._index = doc.layers.index(self.layer)
        self._active_before = doc.active
        doc.layers.remove(self.layer)
        if doc.active is self.layer:
            doc.active = doc.layers[max(0, self._index - 1)] if doc.layers else None
        doc.notify_stack(self.layer.document_bounds())

    def undo(self, doc: "Document") -> None:
        doc.layers.insert(self._index, self.layer)
        doc.active = self._active_before
        doc.notify_stack(self.layer.document_bounds())

    def arrays(self) -> Iterable[np.ndarray]:
        return self.layer.surface.snapshot().values()


class MoveLayer(Command):
    """Move a layer to another position in the stack."""

    def __init__(self, layer: Layer, index: int) -> None:
        self.layer = layer
        self.index = index
        self.name = f"Reorder layer “{layer.name}”"
        self._old = 0

    def redo(self, doc: "Document") -> None:
        self._old = doc.layers.index(self.layer)
        doc.layers.remove(self.layer)
        doc.layers.insert(max(0, min(self.index, len(doc.layers))), self.layer)
        doc.notify_stack(self.layer.document_bounds())

    def undo(self, doc: "Document") -> None:
        doc.layers.remove(self.layer)
        doc.layers.insert(self._old, self.layer)
        doc.notify_stack(self.layer.document_bounds())


def duplicate_layer(layer: Layer, doc: "Document") -> AddLayer:
    """A command that puts a copy of layer just above it."""
    return AddLayer(layer.duplicate(), doc.layers.index(layer) + 1, name=f"Duplicate layer “{layer.name}”")


class SetLayerProperty(Command):
    """Change one property of a layer: name, offset, opacity, visible, locked, blend_mode, metadata."""

    def __init__(self, layer: Layer, prop: str, value: Any) -> None:
        if prop not in LAYER_PROPERTIES:
            raise ValueError(f"unknown layer property: {prop}")
        if prop == "opacity" and not 0.0 <= float(value) <= 1.0:
            raise ValueError("opacity must lie between 0 and 1")
        if prop == "blend_mode" and not isinstance(value, BlendMode):
            value = BlendMode(value)
        if prop == "offset":
            value = Point(int(value[0]), int(value[1]))
        if prop == "metadata":
            value = dict(value)
        self.layer = layer
        self.prop = prop
        self.value = value
        self._old: Any = getattr(layer, prop)
        label = {"blend_mode": "blend mode", "visible": "visibility", "locked": "lock", "offset": "position"}.get(prop, prop)
        self.name = f"Change {label} of “{layer.name}”" if prop != "offset" else f"Move layer “{layer.name}”"

    def _set(self, doc: "Document", value: Any) -> None:
        before = self.layer.document_bounds()
        setattr(self.layer, self.prop, value)
        doc.notify_property(self.layer, self.prop, before.union(self.layer.document_bounds()))

    def redo(self, doc: "Document") -> None:
        self._set(doc, self.value)

    def undo(self, doc: "Document") -> None:
        self._set(doc, self._old)


class ReplaceLayerPixels(Command):
    """Give a layer a whole new set of pixels (used by merge and flatten)."""

    def __init__(self, name: str, layer: Layer, surface: Surface, offset: Point | None = None) -> None:
        self.name = name
        self.layer = layer
        self._after = (surface.snapshot(), offset if offset is not None else layer.offset)
        self._before = (layer.surface.snapshot(), layer.offset)

    def _set(self, doc: "Document", state) -> None:
        old = self.layer.document_bounds()
        self.layer.surface.restore(state[0])
        self.layer.offset = state[1]
        doc.notify_pixels(self.layer, None, extra=old)

    def redo(self, doc: "Document") -> None:
        self._set(doc, self._after)

    def undo(self, doc: "Document") -> None:
        self._set(doc, self._before)

    def arrays(self) -> Iterator[np.ndarray]:
        yield from self._before[0].values()
        yield from self._after[0].values()


class Compound(Command):
    """Several commands that undo and redo as one entry."""

    def __init__(self, name: str, commands: list[Command]) -> None:
        self.name = name
        self.commands = list(commands)

    def redo(self, doc: "Document") -> None:
        done: list[Command] = []
        try:
            for c in self.commands:
                c.redo(doc)
                done.append(c)
        except BaseException:
            # A failure part-way must leave the document as it was, not half-changed.
            for c in reversed(done):
                c.undo(doc)
            raise

    def undo(self, doc: "Document") -> None:
        for c in reversed(self.commands):
            c.undo(doc)

    def arrays(self) -> Iterator[np.ndarray]:
        for c in self.commands:
            yield from c.arrays()


def _surface_from_pixels(pixels: np.ndarray, x: int, y: int) -> Surface:
    surface = Surface(4)
    surface.write(x, y, pixels)
    return surface


def merge_down(layer: Layer, doc: "Document") -> Compound:
    """A command that merges a layer into the one below it.

    The result keeps the lower layer's properties; its pixels are the lower layer's pixels
    (at full opacity, normal mode) with the upper layer composited onto them with the upper
    layer's mode and opacity, as GIMP and Krita do.
    """
    from sd_studio.document.composite import flatten

    index = doc.layers.index(layer)
    if index == 0:
        raise ValueError("the bottom layer has no layer below to merge into")
    lower = doc.layers[index - 1]
    area = lower.document_bounds().union(layer.document_bounds() if layer.visible else Bounds(0, 0, 0, 0))
    base = Layer(name=lower.name, surface=lower.surface, offset=lower.offset)
    pixels = flatten([base, layer], area) if not area.is_empty else np.zeros((0, 0, 4), np.uint8)
    merged = _surface_from_pixels(pixels, area.x - lower.offset.x, area.y - lower.offset.y) if not area.is_empty else Surface(4)
    return Compound(
        f"Merge “{layer.name}” down",
        [ReplaceLayerPixels("Merge", lower, merged), RemoveLayer(layer)],
    )


def flatten_image(doc: "Document") -> Compound:
    """A command that replaces every layer with one layer holding the visible composite."""
    from sd_studio.document.composite import flatten

    area = Bounds.from_extent(doc.size)
    pixels = flatten(doc.layers, area)
    layer = Layer(name="Background", surface=_surface_from_pixels(pixels, 0, 0))
    commands: list[Command] = [RemoveLayer(l) for l in reversed(doc.layers)]
    commands.append(AddLayer(layer, 0))
    return Compound("Flatten image", commands)


def clear_mask(doc: "Document") -> TilesCommand:
    """A command that empties the inpaint mask."""
    keys = doc.mask.surface.tile_keys()
    return TilesCommand("Clear mask", None, doc.mask.surface.get_tiles(keys), {k: None for k in keys})


def set_mask(doc: "Document", mask: np.ndarray, name: str = "Set mask") -> TilesCommand:
    """A command that replaces the whole inpaint mask with a (height, width) uint8 array."""
    surface = doc.mask.surface
    keys = set(surface.tile_keys()) | set(Bounds.from_extent(doc.size).tiles(TILE))
    scratch = Surface(1)
    scratch.write(0, 0, np.ascontiguousarray(mask, dtype=np.uint8))
    return TilesCommand(name, None, surface.get_tiles(keys), scratch.get_tiles(keys))
