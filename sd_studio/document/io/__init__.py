"""Files in and out of a Document: flat images and OpenRaster projects, chosen by content or name."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path
from typing import Any

from sd_studio.document.document import MAX_SIDE, Document
from sd_studio.document.io.images import ImportedImage, open_image, save_image
from sd_studio.errors import FileError

__all__ = [
    "ImportedImage", "open_image", "save_image", "load_document", "save_document",
    "is_openraster", "document_parameters", "openraster",
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


def load_document(path: str | os.PathLike, max_pixels: int | None = None) -> Document:
    """Open an OpenRaster project or a flat image as a Document, or raise FileError saying why not.

    A flat image becomes one layer named "Background"; its A1111 `parameters` text, if any, goes
    to that layer's metadata["parameters"], and all generation metadata found in the file
    (ComfyUI graphs too) to the document's metadata. The new document has no undo history.
    """
    name = os.fspath(path)
    if is_openraster(name):
        return openraster().read_ora(name, max_pixels=max_pixels)
    image = open_image(name, max_pixels=max_pixels, max_side=MAX_SIDE)
    doc = Document.from_pixels(image.pixels, name="Background")
    if "parameters" in image.parameters:
        doc.layers[0].metadata["parameters"] = image.parameters["parameters"]
    doc.metadata.update(image.parameters)
    return doc


def save_document(path: str | os.PathLike, doc: Document, **opts: Any) -> None:
    """Save a document by the file's extension: `.ora` keeps the layers (write_ora); any image
    format save_image knows gets the flattened composite and `document_parameters(doc)` unless
    `parameters=` is given. Other keyword options go to save_image. Atomic either way."""
    name = os.fspath(path)
    if Path(name).suffix.lower() == ".ora":
        if opts:
            raise TypeError(f"OpenRaster files take no options ({', '.join(opts)})")
        openraster().write_ora(name, doc)
        return
    opts.setdefault("parameters", document_parameters(doc))
    save_image(name, doc.composite(), **opts)


def document_parameters(doc: Document) -> str | None:
    """The generation parameters a flat export of the document carries: those of the topmost
    visible layer that has some (the latest generation on top), else the document's own."""
    for layer in reversed(doc.layers):
        if layer.visible and layer.metadata.get("parameters"):
            return layer.metadata["parameters"]
    return doc.metadata.get("parameters") or None


def openraster():
    """The OpenRaster module (read_ora, write_ora, read_ora_info); FileError if this build lacks it."""
    try:
        from sd_studio.document.io import ora
    except ModuleNotFoundError as exc:
        if exc.name != "sd_studio.document.io.ora":
            raise
        raise FileError("OpenRaster (.ora) files are not supported in this build") from exc
    return ora
