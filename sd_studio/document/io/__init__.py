"""Files in and out of a Document: flat images and OpenRaster projects, chosen by content or name."""

from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sd_studio.document.document import MAX_SIDE, Document
from sd_studio.document.io.images import METADATA_KEYS, ImportedImage, detect_format, open_image, save_image
from sd_studio.errors import FileError

__all__ = [
    "ImportedImage", "open_image", "save_image", "load_document", "open_document", "OpenedDocument",
    "save_document", "is_openraster", "file_kind", "document_parameters", "document_text_chunks", "openraster",
]

ORA_MIMETYPE = b"image/openraster"


def is_openraster(path: str | os.PathLike) -> bool:
    """True when the file is a zip whose `mimetype` entry says image/openraster (whatever its name)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False  # opening a pipe would block
        with open(path, "rb") as fp:
            if fp.read(4) != b"PK\x03\x04":
                return False
            with zipfile.ZipFile(fp) as archive:
                info = archive.getinfo("mimetype")
                if info.file_size > 100:
                    return False
                return archive.read(info).strip() == ORA_MIMETYPE
    except (OSError, KeyError, zipfile.BadZipFile, ValueError, RuntimeError):
        return False


def file_kind(path: str | os.PathLike) -> str:
    """"openraster" or "image": how the file is read, by its content first, then by its name.

    A zip that says image/openraster, or any zip named .ora, is read as OpenRaster (so a broken
    one is refused with the reason); an image named .ora is still read as the image it is;
    anything else named .ora raises FileError saying it is not an OpenRaster archive."""
    name = os.fspath(path)
    if is_openraster(name):
        return "openraster"
    if Path(name).suffix.lower() != ".ora":
        return "image"
    try:
        if not stat.S_ISREG(os.stat(name).st_mode):
            return "image"  # open_image words the refusal of folders, pipes and missing files
        with open(name, "rb") as fp:
            if fp.read(4) == b"PK\x03\x04":
                return "openraster"
    except OSError:
        return "image"
    if detect_format(name) is not None:
        return "image"
    raise FileError(f"{name}: not an OpenRaster archive (it is not a zip file)")


@dataclass
class OpenedDocument:
    """A document as read from a file, with one sentence for each thing the file holds that SD
    Studio shows differently from the program that wrote it (e.g. an unknown blend mode)."""

    document: Document
    warnings: list[str] = field(default_factory=list)


def open_document(path: str | os.PathLike, max_pixels: int | None = None) -> OpenedDocument:
    """Open an OpenRaster project or a flat image (see load_document), with the read's warnings."""
    name = os.fspath(path)
    if file_kind(name) == "openraster":
        read = openraster().open_ora(name, max_pixels=max_pixels)
        return OpenedDocument(read.document, list(read.warnings))
    image = open_image(name, max_pixels=max_pixels, max_side=MAX_SIDE)
    doc = Document.from_pixels(image.pixels, name="Background")
    if "parameters" in image.parameters:
        doc.layers[0].metadata["parameters"] = image.parameters["parameters"]
    doc.metadata.update(image.parameters)
    return OpenedDocument(doc)


def load_document(path: str | os.PathLike, max_pixels: int | None = None) -> Document:
    """Open an OpenRaster project or a flat image as a Document, or raise FileError saying why not.

    A flat image becomes one layer named "Background"; its A1111 `parameters` text, if any, goes
    to that layer's metadata["parameters"], and all generation metadata found in the file
    (ComfyUI graphs too) to the document's metadata. The new document has no undo history.
    max_pixels bounds each image (default: Pillow's Image.MAX_IMAGE_PIXELS), .ora layers too.
    """
    return open_document(path, max_pixels).document


def save_document(path: str | os.PathLike, doc: Document, **opts: Any) -> None:
    """Save a document by the file's extension: `.ora` keeps the layers (write_ora); any image
    format save_image knows gets the flattened composite, `document_parameters(doc)` unless
    `parameters=` is given and `document_text_chunks(doc)` unless `text=` is given. Other keyword
    options go to save_image. Atomic either way."""
    name = os.fspath(path)
    if Path(name).suffix.lower() == ".ora":
        if opts:
            raise TypeError(f"OpenRaster files take no options ({', '.join(opts)})")
        openraster().write_ora(name, doc)
        return
    opts.setdefault("parameters", document_parameters(doc))
    opts.setdefault("text", document_text_chunks(doc))
    save_image(name, doc.composite(), **opts)


def document_parameters(doc: Document) -> str | None:
    """The generation parameters a flat export of the document carries: those of the topmost
    visible layer that has some (the latest generation on top), else the document's own."""
    for layer in reversed(doc.layers):
        if layer.visible and layer.metadata.get("parameters"):
            return layer.metadata["parameters"]
    return doc.metadata.get("parameters") or None


def document_text_chunks(doc: Document) -> dict[str, str]:
    """The other tools' generation metadata the document came with (ComfyUI `prompt`/`workflow`,
    InvokeAI, NovelAI...), by PNG chunk name, for a PNG export to carry on; `parameters` aside."""
    return {key: str(value) for key, value in doc.metadata.items()
            if key in METADATA_KEYS and key != "parameters" and value}


def openraster():
    """The OpenRaster module (open_ora, read_ora, write_ora, read_ora_info); FileError if this build lacks it."""
    try:
        from sd_studio.document.io import ora
    except ModuleNotFoundError as exc:
        if exc.name != "sd_studio.document.io.ora":
            raise
        raise FileError("OpenRaster (.ora) files are not supported in this build") from exc
    return ora
