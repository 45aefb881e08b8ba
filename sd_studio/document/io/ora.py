"""OpenRaster (.ora) project files: a Document with its layers, inpaint mask and metadata, in a zip.

What a file we write holds (per the OpenRaster spec): `mimetype` first and stored, `stack.xml`, one
PNG per layer under `data/` cropped to the layer's content (x/y carry the position),
`mergedimage.png` and `Thumbnails/thumbnail.png`. Layer lock is Krita's and MyPaint's
`edit-locked="true"`, the active layer is `selected="true"`. Our own attributes live in the
namespace `NAMESPACE` (prefix `sd-studio`): the inpaint mask is the topmost layer, hidden, marked
`sd-studio:role="inpaint-mask"` (white, with the mask as alpha, so other programs show it as a
plain layer); a layer's metadata (the generation parameters) is JSON in `sd-studio:metadata`; the
layer's own offset is `sd-studio:offset-x/-y` so a round trip keeps it exactly.

Nested stacks (groups from Krita, MyPaint, GIMP) are read like this: a group that is visible,
fully opaque, `svg:src-over` and either pass-through (`isolation="auto"`) or holding only
`svg:src-over` content gives its children to the parent stack as ordinary layers, because that
changes nothing in the composite; any other group is flattened into one layer named after it and
composited with the group's own mode, opacity and visibility. Unknown composite ops (Krita's
`krita:*`...) read as normal (`svg:src-over`), each with a warning in the read's result.

Reading is bounded and never touches the disk beyond the archive itself: every layer and
flattened group is clipped to the document grown by its own size on every side (kept_area: a
layer moved partly off the canvas comes back whole; what lies farther is not kept, and a PNG is
streamed so only the part inside is held), each PNG's declared size is checked against the
per-image limit before decoding, and the pixels decoded in all are bounded by a multiple of the
document's area. Errors read "PATH: reason", PATH as the caller gave it.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import struct
import xml.etree.ElementTree as ET
import xml.parsers.expat
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator
from xml.sax.saxutils import quoteattr

import numpy as np

from sd_studio.document.geometry import Bounds, Point
from sd_studio.document.io.atomic import atomic_output, clean_stale_temps
from sd_studio.document.io.oserror import file_error
from sd_studio.document.layer import BlendMode, Layer
from sd_studio.document.surface import TILE, Surface
from sd_studio.errors import FileError

if TYPE_CHECKING:
    from sd_studio.document.document import Document

MIMETYPE = "image/openraster"
NAMESPACE = "urn:sd-studio:openraster"
"""The XML namespace of our private stack.xml attributes."""
MASK_ROLE = "inpaint-mask"
MASK_NAME = "Inpaint mask"

DEFAULT_MAX_PIXELS = 89_478_485
"""The largest image (document, or one layer PNG) read when Pillow's own limit is switched off;
normally the limit is Pillow's Image.MAX_IMAGE_PIXELS, the same as for flat images."""
MAX_TOTAL_FACTOR = 16
"""All layers of a file together (clipped to the document) may decode to this many times max_pixels..."""
MAX_DOCUMENT_AREAS = 64
"""...and to this many times the document's own area, so a tiny file cannot claim huge layers..."""
MIN_TOTAL_PIXELS = 1 << 26
"""...though a small document may always decode this many (256 MiB of RGBA)."""
MAX_WARNINGS = 10
"""Warnings beyond this many are summed up in one."""
MAX_LAYERS = 2000
MAX_DEPTH = 32
MAX_MEMBERS = 20000
MAX_XML_BYTES = 16 << 20
THUMBNAIL_SIDE = 256
PNG_COMPRESSION = 3
"""zlib level of the PNGs we write: with libvips, level 3 is about as small as Pillow's default
(level 6) and several times faster; level 1 is barely faster and much larger."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ALIASES = {"svg:add": BlendMode.PLUS, "color-dodge": BlendMode.COLOR_DODGE, "difference": BlendMode.DIFFERENCE}


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


# -- writing -------------------------------------------------------------------------------------
@dataclass
class _Entry:
    """One `<layer>` of the stack we write: its attributes and how to make its PNG."""

    src: str
    attrs: dict[str, str]
    pixels: Callable[[], np.ndarray]


def write_ora(path: str | os.PathLike, doc, workers: int | None = None) -> None:
    """Save doc as an OpenRaster file, atomically: the old file stays intact if anything fails.

    workers: how many threads encode layer PNGs (default: one per core, at most 8)."""
    try:
        with atomic_output(path) as f:
            write_ora_stream(f, doc, workers)
    except OSError as exc:
        raise file_error(path, exc, "save") from exc


def write_ora_stream(stream, doc, workers: int | None = None) -> None:
    """Write doc as an OpenRaster archive into a seekable binary stream (no atomicity of its own)."""
    entries = _entries(doc)
    composite = _composite_in_bands(doc)
    with zipfile.ZipFile(stream, "w", allowZip64=True) as zf:
        _put(zf, "mimetype", MIMETYPE.encode("ascii"))
        _put(zf, "stack.xml", _stack_xml(doc, entries).encode("utf-8"), zipfile.ZIP_DEFLATED)
        jobs: list[tuple[str, Callable[[], bytes]]] = [
            ("mergedimage.png", lambda: encode_png(composite)),
            ("Thumbnails/thumbnail.png", lambda: encode_png(_thumbnail(composite))),
        ]
        jobs += [(e.src, (lambda e=e: encode_png(e.pixels()))) for e in entries]
        for name, data in _in_order(jobs, workers or _workers()):
            _put(zf, name, data)


def _composite_in_bands(doc) -> np.ndarray:
    """The document's composite, computed a band of rows at a time where it is not cached, so
    that a save on a background thread never holds the GIL for long in one numpy call."""
    width, height = doc.size
    step = max(TILE, (1 << 20) // max(1, width) // TILE * TILE)
    for y in range(0, height, step):
        doc.composite(Bounds(0, y, width, min(step, height - y)))
    return doc.composite()


def _in_order(jobs: list[tuple[str, Callable[[], bytes]]], workers: int) -> Iterator[tuple[str, bytes]]:
    """Run jobs on worker threads (zlib and libvips release the GIL) and yield results in order,
    keeping only a few finished PNGs in memory at once."""
    window = workers + 1
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ora-encode") as pool:
        pending = []
        for name, job in jobs:
            pending.append((name, pool.submit(job)))
            if len(pending) > window:
                first, future = pending.pop(0)
                yield first, future.result()
        for name, future in pending:
            yield name, future.result()


def _put(zf: zipfile.ZipFile, name: str, data: bytes, compress: int = zipfile.ZIP_STORED) -> None:
    info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
    info.compress_type = compress
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def _entries(doc) -> list[_Entry]:
    """The stack top first: the mask (when set), then the layers from the top down."""
    entries: list[_Entry] = []
    mask = doc.mask.surface
    if not mask.is_empty:
        mb = content_bounds(mask)
        entries.append(_Entry(
            "data/inpaint-mask.png",
            {"name": MASK_NAME, "x": str(mb.x), "y": str(mb.y), "opacity": "1", "visibility": "hidden",
             "composite-op": BlendMode.SRC_OVER.value, "sd-studio:role": MASK_ROLE},
            lambda: _mask_rgba(mask.read(mb)),
        ))
    for index in range(len(doc.layers) - 1, -1, -1):
        layer = doc.layers[index]
        cb = content_bounds(layer.surface)
        if cb.is_empty:
            cb = Bounds(0, 0, 1, 1)  # other programs expect a PNG for every layer
        attrs = {
            "name": layer.name or "Layer",
            "x": str(cb.x + layer.offset.x), "y": str(cb.y + layer.offset.y),
            "opacity": f"{float(layer.opacity):.6g}",
            "visibility": "visible" if layer.visible else "hidden",
            "composite-op": layer.blend_mode.value,
            "sd-studio:offset-x": str(layer.offset.x), "sd-studio:offset-y": str(layer.offset.y),
        }
        if layer.locked:
            attrs["edit-locked"] = "true"
        if layer is doc.active:
            attrs["selected"] = "true"
        if layer.metadata:
            attrs["sd-studio:metadata"] = json.dumps(layer.metadata, sort_keys=True)
        entries.append(_Entry(f"data/layer{index:03d}.png", attrs, lambda s=layer.surface, b=cb: s.read(b)))
    return entries


def _stack_xml(doc, entries: list[_Entry]) -> str:
    image = {"version": "0.0.5", "w": str(doc.size.width), "h": str(doc.size.height), "xres": "72", "yres": "72",
             "xmlns:sd-studio": NAMESPACE}
    if getattr(doc, "metadata", None):
        image["sd-studio:metadata"] = json.dumps(doc.metadata, sort_keys=True)
    lines = ["<?xml version='1.0' encoding='UTF-8'?>", f"<image{_attrs(image)}>", '  <stack isolation="isolate">']
    for e in entries:
        lines.append(f"    <layer{_attrs({**e.attrs, 'src': e.src})}/>")
    lines += ["  </stack>", "</image>", ""]
    return "\n".join(lines)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 cannot hold at all (control characters, lone surrogates)."""


def _attrs(attrs: dict[str, str]) -> str:
    return "".join(
        f" {k}={quoteattr(_NOT_XML.sub(chr(0xFFFD), v), {chr(10): '&#10;', chr(13): '&#13;', chr(9): '&#9;'})}"
        for k, v in attrs.items()
    )


def _mask_rgba(mask: np.ndarray) -> np.ndarray:
    out = np.zeros(mask.shape + (4,), np.uint8)
    out[..., :3] = np.where(mask[..., None] > 0, 255, 0)
    out[..., 3] = mask
    return out


def _thumbnail(composite: np.ndarray) -> np.ndarray:
    import pyvips

    composite = np.ascontiguousarray(composite)
    h, w = composite.shape[:2]
    image = pyvips.Image.new_from_memory(composite, w, h, 4, "uchar")
    # libvips premultiplies alpha while it shrinks, so transparent edges do not darken
    small = image.thumbnail_image(THUMBNAIL_SIDE, height=THUMBNAIL_SIDE)
    return np.ndarray(buffer=small.write_to_memory(), dtype=np.uint8, shape=(small.height, small.width, 4))


def encode_png(pixels: np.ndarray) -> bytes:
    """An 8-bit RGBA (h, w, 4) array as PNG bytes, encoded fast (libvips, zlib level 3)."""
    import pyvips

    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    h, w = pixels.shape[:2]
    image = pyvips.Image.new_from_memory(pixels, w, h, pixels.shape[2] if pixels.ndim == 3 else 1, "uchar")
    # the "up" filter alone is the cheapest that keeps painted, gradient-rich layers small
    return image.pngsave_buffer(compression=PNG_COMPRESSION, filter="up", strip=True)


def content_bounds(surface: Surface) -> Bounds:
    """The exact rectangle of the surface's non-zero pixels, looking only at its edge tiles.

    Every stored tile holds at least one non-zero pixel, so each extreme of the content lies in
    the outermost row or column of stored tiles; the tiles inside need no scan.
    """
    keys = surface.tile_keys()
    if not keys:
        return Bounds(0, 0, 0, 0)
    x0 = min(k[0] for k in keys)
    x1 = max(k[0] for k in keys)
    y0 = min(k[1] for k in keys)
    y1 = max(k[1] for k in keys)

    def nonzero(tile: np.ndarray) -> np.ndarray:
        return tile.any(axis=2) if tile.ndim == 3 else tile != 0

    left = min(int(np.flatnonzero(nonzero(surface.tile(k)).any(axis=0))[0]) for k in keys if k[0] == x0)
    right = max(int(np.flatnonzero(nonzero(surface.tile(k)).any(axis=0))[-1]) for k in keys if k[0] == x1)
    top = min(int(np.flatnonzero(nonzero(surface.tile(k)).any(axis=1))[0]) for k in keys if k[1] == y0)
    bottom = max(int(np.flatnonzero(nonzero(surface.tile(k)).any(axis=1))[-1]) for k in keys if k[1] == y1)
    return Bounds.from_corners(x0 * TILE + left, y0 * TILE + top, x1 * TILE + right + 1, y1 * TILE + bottom + 1)


# -- reading -------------------------------------------------------------------------------------
@dataclass
class _LayerSpec:
    """A `<layer>` element as read from stack.xml, before its pixels are decoded."""

    name: str
    src: str
    x: int
    y: int
    opacity: float
    visible: bool
    locked: bool
    blend_mode: BlendMode
    selected: bool
    role: str
    metadata: dict[str, str]
    origin: Point | None


@dataclass
class _StackSpec:
    """A nested `<stack>` element: its own properties and its children, top first."""

    name: str
    x: int
    y: int
    opacity: float
    visible: bool
    locked: bool
    blend_mode: BlendMode
    isolated: bool
    children: list = field(default_factory=list)


@dataclass
class _Stack:
    """A parsed stack.xml."""

    width: int
    height: int
    children: list
    metadata: dict[str, str]
    warnings: list[str]


@dataclass
class OraRead:
    """An OpenRaster file as read: the document, and one sentence for each thing in the file that
    SD Studio shows differently from the program that wrote it (an unknown composite op...)."""

    document: "Document"
    warnings: list[str] = field(default_factory=list)


def max_pixels_or_default(max_pixels: int | None) -> int:
    """The per-image pixel limit to apply: max_pixels, else Pillow's Image.MAX_IMAGE_PIXELS (the
    limit flat images get), else DEFAULT_MAX_PIXELS where Pillow's check is switched off."""
    if max_pixels is not None:
        return int(max_pixels)
    from PIL import Image

    return int(Image.MAX_IMAGE_PIXELS or DEFAULT_MAX_PIXELS)


def total_pixel_limit(width: int, height: int, max_pixels: int) -> int:
    """The most pixels all layers (and flattened groups) of a width x height file may decode to."""
    return min(max_pixels * MAX_TOTAL_FACTOR, max(width * height * MAX_DOCUMENT_AREAS, MIN_TOTAL_PIXELS))


def read_ora_info(path: str | os.PathLike, max_pixels: int | None = None) -> dict:
    """Size, layers (name, position and size, opacity, visibility, lock, mode, metadata), whether
    there is an inpaint mask, the document's metadata and the warnings a read would give, reading
    only stack.xml and each PNG's header; images over max_pixels are refused as read_ora does."""
    shown = os.fspath(path)
    limit = max_pixels_or_default(max_pixels)
    with _open_zip(shown) as zf:
        stack = _read_stack(zf, shown, limit)
        layers = []
        mask = False
        for spec, depth in _walk(stack.children):
            if isinstance(spec, _StackSpec):
                layers.append({"name": spec.name, "group": True, "depth": depth, "opacity": spec.opacity,
                               "visible": spec.visible, "locked": spec.locked, "blend_mode": spec.blend_mode.value})
                continue
            w, h, _, _ = _layer_header(zf, shown, spec.src, limit)
            if spec.role == MASK_ROLE:
                mask = True
                continue
            layers.append({"name": spec.name, "group": False, "depth": depth, "x": spec.x, "y": spec.y,
                           "width": w, "height": h, "opacity": spec.opacity, "visible": spec.visible,
                           "locked": spec.locked, "blend_mode": spec.blend_mode.value,
                           "metadata": dict(spec.metadata)})
    return {"format": "OpenRaster", "width": stack.width, "height": stack.height, "layers": layers,
            "has_mask": mask, "metadata": stack.metadata, "warnings": list(stack.warnings)}


def read_ora(path: str | os.PathLike, max_pixels: int | None = None):
    """Open an OpenRaster file as a Document; a damaged or hostile file raises FileError (see open_ora)."""
    return open_ora(path, max_pixels).document


def open_ora(path: str | os.PathLike, max_pixels: int | None = None) -> OraRead:
    """Open an OpenRaster file as a Document with its warnings; a damaged or hostile file raises FileError.

    max_pixels bounds the document and each layer PNG's declared size (default: Pillow's
    Image.MAX_IMAGE_PIXELS, as for flat images), checked from the headers before anything is
    decoded. Every layer and flattened group is clipped to kept_area(): only the part of a PNG
    inside it is kept, and a layer wholly outside it holds nothing. All of them together may
    decode to total_pixel_limit() pixels.
    """
    from sd_studio.document.document import Document

    shown = os.fspath(path)
    limit = max_pixels_or_default(max_pixels)
    with _open_zip(shown) as zf:
        stack = _read_stack(zf, shown, limit)
        budget = _Budget(shown, stack.width, stack.height, total_pixel_limit(stack.width, stack.height, limit))
        specs = [s for s, _ in _walk(stack.children) if isinstance(s, _LayerSpec)]
        pixels = _decode_all(zf, shown, specs, kept_area(stack.width, stack.height), limit, budget)
    try:
        doc = Document(stack.width, stack.height)
    except ValueError as exc:
        raise FileError(f"{shown}: its image size cannot be opened ({exc})") from exc
    doc.metadata.update(stack.metadata)
    layers, selected = _build(stack.children, pixels, doc, budget)
    layers.reverse()  # stack.xml lists the top first; a document keeps the bottom first
    if not layers:
        layers = [Layer(name="Background")]
    doc.layers[:] = layers
    doc.active = selected if selected in layers else layers[-1]
    return OraRead(doc, list(stack.warnings))


class _Budget:
    """The pixels left to decode; taking more than is left refuses the file."""

    def __init__(self, shown: str, width: int, height: int, total: int) -> None:
        self.shown, self.size, self.total, self.left = shown, (width, height), total, total

    def take(self, pixels: int) -> None:
        """Count pixels about to be allocated; FileError once the total passes the limit."""
        self.left -= pixels
        if self.left < 0:
            w, h = self.size
            raise FileError(f"{self.shown}: its layers hold more than {self.total:,} pixels inside its "
                            f"{w} x {h} image, the most sd-studio decodes for a file of that size")


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError, zlib.error)


@contextmanager
def _open_zip(shown: str) -> Iterator[zipfile.ZipFile]:
    try:
        if not stat.S_ISREG(os.stat(shown).st_mode):
            raise FileError(f"{shown}: cannot open: it is not a regular file")
        zf = zipfile.ZipFile(shown)
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise FileError(f"{shown}: not an OpenRaster archive (it is not a zip file)") from exc
    except OSError as exc:
        raise file_error(shown, exc, "open") from exc
    try:
        if len(zf.infolist()) > MAX_MEMBERS:
            raise FileError(f"{shown}: it holds more than {MAX_MEMBERS} files, too many for an OpenRaster archive")
        yield zf
    except _ZIP_ERRORS as exc:
        raise FileError(f"{shown}: the archive is damaged or uses a zip feature sd-studio cannot read "
                        f"({_detail(exc)})") from exc
    except OSError as exc:
        raise file_error(shown, exc, "read") from exc
    finally:
        zf.close()


def _detail(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return (text if len(text) <= 160 else text[:159] + "…").rstrip(".")


def _read_member(zf: zipfile.ZipFile, shown: str, name: str, limit: int) -> bytes:
    """A member's bytes, refusing it when its declared or its actual size passes limit."""
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise FileError(f"{shown}: {name} would inflate to {info.file_size:,} bytes, more than the {limit:,} it may hold")
    with zf.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FileError(f"{shown}: {name} inflates past the {limit:,} bytes it may hold")
    return data


def _member(zf: zipfile.ZipFile, shown: str, src: str) -> str:
    """The archive member a layer's src names; anything outside the archive is refused."""
    parts = src.replace("\\", "/").split("/")
    if not src or src.startswith(("/", "\\")) or ".." in parts or ":" in src or "\x00" in src:
        raise FileError(f"{shown}: a layer points outside the archive ({src[:200]!r})")
    try:
        zf.getinfo(src)
    except KeyError:
        raise FileError(f"{shown}: the file is damaged: the layer image {src[:200]!r} is missing") from None
    return src


def _read_stack(zf: zipfile.ZipFile, shown: str, max_pixels: int) -> _Stack:
    names = set(zf.namelist())
    if "mimetype" in names:
        mimetype = _read_member(zf, shown, "mimetype", 256).strip()
        if mimetype != MIMETYPE.encode():
            raise FileError(f"{shown}: not an OpenRaster archive (its mimetype is {mimetype[:40]!r})")
    if "stack.xml" not in names:
        raise FileError(f"{shown}: not an OpenRaster archive (it has no stack.xml)")
    root = parse_xml(_read_member(zf, shown, "stack.xml", MAX_XML_BYTES), f"{shown}: stack.xml")
    if _local(root.tag) != "image":
        raise FileError(f"{shown}: the file is damaged: stack.xml does not describe an image")
    width = _int(root.get("w"), shown, "w")
    height = _int(root.get("h"), shown, "h")
    if width < 1 or height < 1:
        raise FileError(f"{shown}: the file is damaged: its size is {width} x {height}")
    if width * height > max_pixels:
        raise FileError(f"{shown}: declares {width} x {height} pixels, more than the limit of {max_pixels:,}")
    top = next((c for c in root if _local(c.tag) == "stack"), None)
    if top is None:
        raise FileError(f"{shown}: the file is damaged: stack.xml has no stack")
    count = [0]
    warnings: list[str] = []
    children = _parse_children(top, shown, 1, count, warnings)
    if len(warnings) > MAX_WARNINGS:
        rest = len(warnings) - MAX_WARNINGS
        warnings[MAX_WARNINGS:] = [f"{rest} more layers use composite ops which SD Studio shows as Normal"]
    return _Stack(width, height, children, _metadata(root, shown), warnings)


def parse_xml(data: bytes, what: str) -> ET.Element:
    """Parse untrusted XML, refusing DTDs and entity declarations (billion laughs, external
    entities); a malformed document raises FileError reading "WHAT is not valid XML (...)"."""
    guard = xml.parsers.expat.ParserCreate()

    def refuse(*_args) -> None:
        raise FileError(f"{what} declares a DTD or entities, which are refused")

    guard.StartDoctypeDeclHandler = refuse
    guard.EntityDeclHandler = refuse
    guard.ExternalEntityRefHandler = refuse
    try:
        guard.Parse(data, True)
        return ET.fromstring(data)
    except (xml.parsers.expat.ExpatError, ET.ParseError) as exc:
        raise FileError(f"{what} is not valid XML ({exc})") from exc


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _ns(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def _int(value: str | None, shown: str, what: str, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FileError(f"{shown}: the file is damaged: {what}={str(value)[:40]!r} is not a number") from None
    if not math.isfinite(number) or abs(number) > 1 << 30:
        raise FileError(f"{shown}: the file is damaged: {what}={str(value)[:40]!r} is out of range")
    return int(round(number))


def _opacity(value: str | None) -> float:
    try:
        number = float(value) if value is not None else 1.0
    except ValueError:
        return 1.0
    return min(1.0, max(0.0, number)) if math.isfinite(number) else 1.0


def _blend_mode(op: str | None) -> BlendMode | None:
    """The mode for a composite-op; None for an op SD Studio does not know."""
    if not op:
        return BlendMode.SRC_OVER
    try:
        return BlendMode.from_op(op)
    except ValueError:
        return _ALIASES.get(op)


def _one_line(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _metadata(element: ET.Element, shown: str) -> dict[str, str]:
    raw = element.get(_ns("metadata"))
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise FileError(f"{shown}: the file is damaged: a layer's metadata is not valid JSON") from None
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _parse_children(stack: ET.Element, shown: str, depth: int, count: list[int], warnings: list[str]) -> list:
    if depth > MAX_DEPTH:
        raise FileError(f"{shown}: its groups nest deeper than {MAX_DEPTH}, the most sd-studio opens")
    out: list = []
    for el in stack:
        kind = _local(el.tag)
        if kind not in ("layer", "stack"):
            continue  # text and filter elements carry no pixels we can show
        count[0] += 1
        if count[0] > MAX_LAYERS:
            raise FileError(f"{shown}: it has more than {MAX_LAYERS} layers, the most sd-studio opens")
        name = el.get("name", "Layer" if kind == "layer" else "Group")
        op = el.get("composite-op")
        mode = _blend_mode(op)
        if mode is None:
            mode = BlendMode.SRC_OVER
            what = "layer" if kind == "layer" else "group"
            warnings.append(f'{what} "{_one_line(name)}" uses {_one_line(op or "", 60)} which SD Studio shows as Normal')
        common = dict(
            name=name,
            x=_int(el.get("x"), shown, "x", 0), y=_int(el.get("y"), shown, "y", 0),
            opacity=_opacity(el.get("opacity")),
            visible=el.get("visibility", "visible") != "hidden",
            locked=el.get("edit-locked", "false") == "true",
            blend_mode=mode,
        )
        if kind == "stack":
            out.append(_StackSpec(isolated=el.get("isolation", "auto") == "isolate",
                                  children=_parse_children(el, shown, depth + 1, count, warnings), **common))
            continue
        src = el.get("src")
        if src is None:
            raise FileError(f"{shown}: the file is damaged: a layer has no image (src)")
        origin = None
        if el.get(_ns("offset-x")) is not None:
            origin = Point(_int(el.get(_ns("offset-x")), shown, "offset-x"),
                           _int(el.get(_ns("offset-y")), shown, "offset-y", 0))
        out.append(_LayerSpec(src=src, selected=el.get("selected") == "true", role=el.get(_ns("role"), ""),
                              metadata=_metadata(el, shown), origin=origin, **common))
    return out


def _walk(children: list, depth: int = 0) -> Iterator[tuple[object, int]]:
    for child in children:
        yield child, depth
        if isinstance(child, _StackSpec):
            yield from _walk(child.children, depth + 1)


def _png_header(head: bytes, shown: str, name: str) -> tuple[int, int, int, int]:
    """(width, height, bit depth, channels) from a PNG's first 33 bytes."""
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise FileError(f"{shown}: the file is damaged: {name} is not a PNG image")
    width, height, depth, color = struct.unpack(">IIBB", head[16:26])
    if color not in _CHANNELS or depth not in (1, 2, 4, 8, 16) or width < 1 or height < 1:
        raise FileError(f"{shown}: the file is damaged: {name} has an invalid PNG header")
    return width, height, depth, _CHANNELS[color]


def _layer_header(zf: zipfile.ZipFile, shown: str, src: str, max_pixels: int) -> tuple[int, int, int, int]:
    """A layer PNG's header, refused when its declared size passes max_pixels."""
    name = _member(zf, shown, src)
    with zf.open(name) as f:
        head = f.read(33)
    w, h, depth, channels = _png_header(head, shown, name)
    if w * h > max_pixels:
        raise FileError(f"{shown}: {name} declares {w} x {h} pixels, more than the limit of {max_pixels:,}")
    return w, h, depth, channels


def kept_area(width: int, height: int) -> Bounds:
    """What reading keeps of a width x height project's layers: the canvas and one canvas size around
    it on every side, so pixels moved past the edge survive a save and a reopen, while a tiny file
    still cannot claim layers of any size."""
    return Bounds(-width, -height, 3 * width, 3 * height)


_Key = tuple  # (src, x, y): one layer image placed at one position
_Piece = tuple  # (clip in document coordinates, RGBA pixels of exactly that rectangle)


def _decode_all(zf: zipfile.ZipFile, shown: str, specs: list[_LayerSpec], area: Bounds, max_pixels: int,
                budget: _Budget) -> dict[_Key, _Piece | None]:
    """The part inside area of every distinct (image, position), decoded on worker threads after
    checking each PNG's declared size and the total against budget; None where nothing lies inside."""
    headers: dict[str, tuple[int, int, int, int]] = {}
    jobs: dict[_Key, tuple[Bounds, int]] = {}
    out: dict[_Key, _Piece | None] = {}
    for spec in specs:
        if spec.src not in headers:
            headers[spec.src] = _layer_header(zf, shown, spec.src, max_pixels)
        w, h, depth, channels = headers[spec.src]
        clip = Bounds(spec.x, spec.y, w, h).intersect(area)
        key = (spec.src, spec.x, spec.y)
        if clip.is_empty:
            out[key] = None
            continue
        raw = h * (1 + (w * channels * depth + 7) // 8)
        byte_limit = raw + raw // 64 + 12 * h + (16 << 20)  # stored zlib blocks, chunks, text
        size = zf.getinfo(spec.src).file_size
        if size > byte_limit:
            raise FileError(f"{shown}: {spec.src} would inflate to {size:,} bytes, more than a "
                            f"{w} x {h} PNG can hold")
        budget.take(clip.width * clip.height)  # every layer gets its own copy of the pixels
        jobs[key] = (clip, byte_limit)
    with ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="ora-decode") as pool:
        futures = {
            key: pool.submit(_decode_member, zf, shown, key[0], clip.offset(-key[1], -key[2]), limit)
            for key, (clip, limit) in jobs.items()
        }
        for key, future in futures.items():
            out[key] = (jobs[key][0], future.result())
    return out


def _decode_member(zf: zipfile.ZipFile, shown: str, name: str, crop: Bounds, byte_limit: int) -> np.ndarray:
    """The crop rectangle of a layer PNG, streamed from the archive: only the rows up to the
    crop's bottom are inflated, and only the crop is kept in memory."""
    import pyvips

    what = f"{shown}: {name}"
    failure: list[BaseException] = []
    fed = [0]
    with zf.open(name) as f:

        def read(size: int) -> bytes:
            if failure:
                return b""
            try:
                chunk = f.read(max(0, min(size, byte_limit + 1 - fed[0])))
            except BaseException as exc:  # noqa: BLE001 - raised again below, not in libvips' callback
                failure.append(exc)
                return b""
            fed[0] += len(chunk)
            if fed[0] > byte_limit:
                failure.append(FileError(f"{shown}: {name} inflates past the {byte_limit:,} bytes a PNG of its size may hold"))
                return b""
            return chunk

        source = pyvips.SourceCustom()
        source.on_read(read)
        try:
            image = pyvips.Image.new_from_source(source, "", access="sequential", fail=True)
            image = image.crop(crop.x, crop.y, crop.width, crop.height)
            array = _to_rgba(image, what)
        except pyvips.Error as exc:
            if failure:
                raise failure[0] from exc
            raise FileError(f"{what} is not a readable PNG image") from exc
    if failure:
        raise failure[0]
    return array


def decode_png(blob: bytes, what: str) -> np.ndarray:
    """PNG bytes as an 8-bit straight RGBA (h, w, 4) array; a broken image raises FileError naming what."""
    import pyvips

    try:
        image = pyvips.Image.new_from_buffer(blob, "", access="sequential", fail=True)
        return _to_rgba(image, what)
    except pyvips.Error as exc:
        raise FileError(f"{what} is not a readable PNG image") from exc


def _to_rgba(image, what: str) -> np.ndarray:
    """A libvips image as 8-bit straight RGBA; pyvips.Error when its pixels cannot be decoded."""
    if image.interpretation in ("cmyk", "lab", "labs", "xyz") or image.bands > 4:
        raise FileError(f"{what} has an unsupported colour format")
    if image.format == "ushort":
        image = image.cast("uchar", shift=True)
    elif image.format != "uchar":
        image = image.cast("uchar")
    array = np.ndarray(buffer=image.write_to_memory(), dtype=np.uint8, shape=(image.height, image.width, image.bands))
    bands = array.shape[2]
    if bands == 4:
        return array
    out = np.empty(array.shape[:2] + (4,), np.uint8)
    if bands in (1, 2):
        out[..., :3] = array[..., :1]
    else:
        out[..., :3] = array[..., :3]
    out[..., 3] = array[..., 1] if bands == 2 else 255
    return out


def _build(children: list, pixels: dict[_Key, _Piece | None], doc, budget: _Budget) -> tuple[list[Layer], Layer | None]:
    """Layers (top first) for a list of stack children, with nested stacks hoisted or flattened
    as the module docstring says; also the layer marked selected, if any."""
    layers: list[Layer] = []
    selected: Layer | None = None
    for spec in children:
        if isinstance(spec, _LayerSpec):
            piece = pixels[(spec.src, spec.x, spec.y)]
            if spec.role == MASK_ROLE:
                if piece is not None:
                    clip, rgba = piece
                    doc.mask.surface.write(clip.x, clip.y, np.ascontiguousarray(rgba[..., 3]))
                continue
            layer = _layer(spec, piece)
            layers.append(layer)
            if spec.selected:
                selected = layer
            continue
        inner, inner_selected = _build(spec.children, pixels, doc, budget)
        if _can_hoist(spec, inner):
            layers += inner
            selected = inner_selected or selected
        else:
            layers.append(_flatten_group(spec, inner, kept_area(*doc.size), budget))
    return layers, selected


def _can_hoist(spec: _StackSpec, inner: list[Layer]) -> bool:
    """True when putting a group's children in its parent leaves the composite unchanged."""
    if not spec.visible or spec.opacity < 1.0 or spec.blend_mode is not BlendMode.SRC_OVER:
        return False
    return not spec.isolated or all(layer.blend_mode is BlendMode.SRC_OVER for layer in inner)


def _flatten_group(spec: _StackSpec, inner: list[Layer], document: Bounds, budget: _Budget) -> Layer:
    """One layer holding a group's composite, clipped to the kept area around the document."""
    from sd_studio.document.composite import flatten

    area = Bounds(0, 0, 0, 0)
    for layer in inner:
        area = area.union(layer.document_bounds()) if not area.is_empty else layer.document_bounds()
    area = area.intersect(document) if not area.is_empty else area
    group = Layer(name=spec.name, opacity=spec.opacity, visible=spec.visible, locked=spec.locked,
                  blend_mode=spec.blend_mode, surface=Surface(4))
    if area.is_empty:
        return group
    budget.take(area.width * area.height)
    group.offset = Point(area.x, area.y)
    group.surface.write(0, 0, flatten(list(reversed(inner)), area))
    return group


def _layer(spec: _LayerSpec, piece: _Piece | None) -> Layer:
    offset = spec.origin if spec.origin is not None else Point(spec.x, spec.y)
    layer = Layer(name=spec.name, offset=offset, opacity=spec.opacity, visible=spec.visible, locked=spec.locked,
                  blend_mode=spec.blend_mode, metadata=dict(spec.metadata), surface=Surface(4))
    if piece is not None:
        clip, rgba = piece
        if rgba.shape[:2] != (1, 1) or rgba[0, 0, 3]:
            layer.surface.write(clip.x - offset.x, clip.y - offset.y, rgba)
    return layer


__all__ = ["write_ora", "write_ora_stream", "read_ora", "open_ora", "OraRead", "read_ora_info", "encode_png",
           "decode_png", "content_bounds", "parse_xml", "clean_stale_temps", "max_pixels_or_default",
           "total_pixel_limit", "NAMESPACE", "DEFAULT_MAX_PIXELS", "MAX_LAYERS"]
