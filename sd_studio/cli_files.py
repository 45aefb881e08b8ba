"""Subcommands about files: `info FILE` describes an image or project, `convert IN OUT` rewrites it."""

from __future__ import annotations

import argparse
import os
import sys

from sd_studio.errors import FileError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `info` and `convert` subcommands."""
    info = subparsers.add_parser(
        "info", help="describe an image or .ora project: size, colour mode, layers, generation parameters",
        description="Describe an image or OpenRaster project: size, colour mode, layers and the "
        "generation parameters stored in it.",
    )
    info.add_argument("file", metavar="FILE")
    _add_max_pixels(info)
    info.set_defaults(func=run_info)

    convert = subparsers.add_parser(
        "convert", help="convert an image or .ora project to another format (by OUT's extension)",
        description="Read an image or OpenRaster project and write it in the format OUT's extension "
        "names (.png, .jpg, .webp, .tif, .bmp get the flattened image; .ora keeps the layers). "
        "Generation parameters travel along.",
    )
    convert.add_argument("input", metavar="IN")
    convert.add_argument("output", metavar="OUT")
    convert.add_argument("--quality", type=_quality, default=None, metavar="Q",
                         help="JPEG/WebP quality 1-100 (default 95; WebP 100 is lossless)")
    _add_max_pixels(convert)
    convert.set_defaults(func=run_convert)


def run_info(args: argparse.Namespace) -> int:
    """Print what FILE holds; FileError when it cannot be read."""
    from sd_studio.document.io import file_kind

    path = args.file
    _check_readable(path)
    warnings: list[str] = []
    if file_kind(path) == "openraster":
        lines = _ora_info(path, args.max_pixels, warnings)
    else:
        lines = _image_info(path, args.max_pixels)
    print("\n".join(lines))
    _warn(path, warnings)
    return 0


def run_convert(args: argparse.Namespace) -> int:
    """Read IN (image or .ora) and write OUT in the format of its extension."""
    from sd_studio.document.io import open_document, save_document

    _check_readable(args.input)
    opened = open_document(args.input, max_pixels=args.max_pixels)
    _warn(args.input, opened.warnings)
    doc = opened.document
    opts = {}
    if args.quality is not None:
        if os.path.splitext(args.output)[1].lower() == ".ora":
            raise FileError(f"{args.output}: --quality applies to JPEG and WebP, not OpenRaster")
        opts["quality"] = args.quality
    save_document(args.output, doc, **opts)
    return 0


def _image_info(path: str, max_pixels: int | None) -> list[str]:
    from sd_studio.document.io import open_image
    from sd_studio.document.io.parameters import describe_metadata

    image = open_image(path, max_pixels=max_pixels)
    mode = image.mode + (" (ICC profile converted to sRGB)" if image.icc_converted else "")
    lines = [
        path,
        f"  size: {image.width}x{image.height}",
        f"  format: {image.format}" + (f", {image.frames} frames (the first is used)" if image.frames > 1 else ""),
        f"  colour mode: {mode}",
        "  layers: 1",
        "    Background",
    ]
    lines += _parameters_block(describe_metadata(image.parameters))
    return lines


def _warn(path: str, warnings: list[str]) -> None:
    """Print each warning of a read as one line `sd-studio: warning: PATH: warning` on stderr."""
    from sd_studio.cli import PROG

    for warning in warnings:
        print(f"{PROG}: warning: {path}: {warning}", file=sys.stderr)


def _ora_info(path: str, max_pixels: int | None, warnings: list[str]) -> list[str]:
    from sd_studio.document.io import openraster
    from sd_studio.document.io.parameters import describe_metadata

    info = openraster().read_ora_info(path, max_pixels=max_pixels)  # stack.xml and PNG headers, no pixels
    warnings += info.get("warnings", [])
    layers = info.get("layers", [])
    lines = [path, f"  size: {info['width']}x{info['height']}", "  format: OpenRaster",
             "  colour mode: RGBA", f"  layers: {sum(not layer.get('group') for layer in layers)} (top first)"]
    described = []
    seen = set()
    for layer in layers:
        indent = "  " * int(layer.get("depth", 0))
        notes = [note for flag, note in (("group", "group"), ("locked", "locked")) if layer.get(flag)]
        if not layer.get("visible", True):
            notes.append("hidden")
        lines.append(f"    {indent}{layer.get('name', '')}" + (f" ({', '.join(notes)})" if notes else ""))
        parameters = (layer.get("metadata") or {}).get("parameters")
        if parameters:
            seen.add(parameters)
            described.append(f"layer {layer.get('name', '')!r}:")
            described += ["  " + line for line in describe_metadata({"parameters": parameters})]
    # the document's own metadata (a source image's ComfyUI graph, a title...); an imported
    # image's `parameters` are on its layer too and are not shown twice
    own = {k: v for k, v in (info.get("metadata") or {}).items() if v and not (k == "parameters" and v in seen)}
    if own:
        described.append("document:")
        described += ["  " + line for line in describe_metadata(own)]
    if info.get("has_mask"):
        lines.append("  inpaint mask: yes")
    lines += _parameters_block(described)
    return lines


def _parameters_block(described: list[str]) -> list[str]:
    if not described:
        return ["  generation parameters: none"]
    return ["  generation parameters:"] + ["    " + line for line in described]


def _check_readable(path: str) -> None:
    # Named here so a missing input reads "IN: no such file" rather than an ORA/zip message.
    if not os.path.exists(path):
        raise FileError(f"{path}: cannot open: no such file or folder")
    if os.path.isdir(path):
        raise FileError(f"{path}: cannot open: it is a folder, not a file")


def _quality(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"quality is a whole number from 1 to 100, not {text!r}") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"quality is 1 to 100, not {value}")
    return value


def _add_max_pixels(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-pixels", type=_positive, default=None, metavar="N",
                        help="refuse images (and .ora layer images) declaring more than N pixels "
                        "(default: Pillow's limit, about 89 million)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, not {value}")
    return value
