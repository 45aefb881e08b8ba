"""The `mask` subcommand: smart masks from the command line — points, a box, the subject or the background."""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sd_studio.errors import FileError, SDStudioError

if TYPE_CHECKING:
    import numpy as np

    from sd_studio.engine.segment.prompt import MaskPrompt
    from sd_studio.engine.segment.segmenter import Segmenter

MASK_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
"""Lossless formats a mask is written in (a JPEG's artefacts would blur its edge into grey)."""

DESCRIPTION = (
    "Make a mask (white: selected) of what a point, a box, the subject or the background picks out in PHOTO, "
    "for `sd-studio inpaint --mask`. With a Segment Anything model (--model, or one found in the models folder "
    "or the Hugging Face cache) points and boxes select objects; without one, GrabCut selects inside --box. "
    "Coordinates are pixels from the top-left corner, or percentages of the photo's width and height (50%%,50%%), "
    "so one command can mask the same place in a batch of photos of different sizes."
)


def register(subparsers) -> None:
    """Add the `mask` subcommand to the `sd-studio` parser."""
    parser = subparsers.add_parser("mask", help="make a mask by points, a box, the subject or the background",
                                   description=DESCRIPTION)
    parser.error = _parse_error  # type: ignore[method-assign]
    parser.add_argument("photos", nargs="+", metavar="PHOTO", help="the photo(s) to mask")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="the mask file (.png, .tif, .bmp) for one photo; a folder for several (PHOTO's name .png)")
    parser.add_argument("--point", action="append", default=[], type=_pair, metavar="X,Y",
                        help="a point on the object (repeatable)")
    parser.add_argument("--negative-point", action="append", default=[], type=_pair, metavar="X,Y",
                        help="a point that is not part of the object (repeatable)")
    parser.add_argument("--box", type=_box, metavar="X0,Y0,X1,Y1", help="a box around the object (its corners)")
    whole = parser.add_mutually_exclusive_group()
    whole.add_argument("--subject", action="store_true", help="select the photo's main object")
    whole.add_argument("--background", action="store_true", help="select everything but the photo's main object")
    parser.add_argument("--model", metavar="M", help="a Segment Anything model: folder, .safetensors file or hub id")
    parser.add_argument("--grabcut", action="store_true", help="use GrabCut even when a model is available")
    parser.add_argument("--grow", type=_pixels, default=0, metavar="PX", help="grow the mask by PX pixels")
    parser.add_argument("--feather", type=_pixels, default=0, metavar="PX", help="soften the mask's edge over PX pixels")
    parser.add_argument("--invert", action="store_true", help="write what is not selected instead")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument("--quiet", action="store_true", help="no progress, notes or file names on stderr")
    parser.set_defaults(func=run_mask)


@dataclass(frozen=True)
class Coordinate:
    """One coordinate of the command line: whole pixels from the top-left, or a percentage of the side."""

    value: float
    percent: bool

    def position(self, side: int, corner: bool) -> float:
        """The continuous image coordinate: a pixel's centre (or, for a box corner, its edge), or the share of side."""
        if self.percent:
            at = self.value / 100 * side
            return at if corner else min(at, side - 0.5)  # 100% of the width is the last pixel, not past it
        return self.value if corner else self.value + 0.5

    def fits(self, side: int) -> bool:
        """True when a point at this coordinate lies on a side of that many pixels."""
        return 0 <= self.value <= 100 if self.percent else 0 <= self.value < side

    def __str__(self) -> str:
        return f"{self.value:g}{'%' if self.percent else ''}"


def run_mask(args: argparse.Namespace) -> int:
    """Handler of `mask`: one mask per photo; errors for single photos are reported and the batch goes on."""
    whole = args.subject or args.background
    prompts = bool(args.point or args.negative_point or args.box)
    if whole and prompts:
        raise SDStudioError("--subject and --background select by themselves; leave out --point, --negative-point and --box.")
    if not whole and not prompts:
        raise SDStudioError("Say what to select: --point X,Y, --box X0,Y0,X1,Y1, --subject or --background.")
    photos = [Path(p) for p in args.photos]
    outputs = _outputs(photos, Path(args.output))
    segmenter = _segmenter(args, needs_model=prompts and not args.box)
    from sd_studio.cli import error

    status = 0
    for photo, output in zip(photos, outputs):
        try:
            mask = _mask_one(photo, args, segmenter)
            write_mask(output, mask)
        except SDStudioError as exc:
            status = error(f"{photo}: {exc}")
            continue
        if not args.quiet:
            print(output, file=sys.stderr)
    return status


def _segmenter(args: argparse.Namespace, needs_model: bool) -> Segmenter:
    from sd_studio.engine.segment.segmenter import Segmenter

    model = None if args.grabcut else args.model
    if model is None and not args.grabcut:
        from sd_studio.cli_generate import default_models_folder
        from sd_studio.engine.segment.sam_files import find_sam_models

        found = find_sam_models([default_models_folder()])
        if found:
            model = found[0].spec
            _note(args, f"using the Segment Anything model {found[0].name} ({model})")
    if model is None:
        if needs_model:
            raise SDStudioError(
                "Selecting by --point needs a Segment Anything model (--model FOLDER|FILE, e.g. SlimSAM from "
                "Get a model); without one, give --box X0,Y0,X1,Y1 and GrabCut selects inside it."
            )
        _note(args, "no Segment Anything model, so GrabCut selects "
                    + ("inside the box" if args.box else "what stands out from the photo's rim"))
    segmenter = Segmenter(model, device=args.device)
    if model is not None:
        segmenter.predictor(None if args.quiet else _progress_bar())  # load once, up front: a bad model fails here
    return segmenter


def _progress_bar():
    from sd_studio.cli_generate import ProgressBar

    bar = ProgressBar(sys.stderr)

    def show(progress) -> None:
        bar(progress)
        if progress.step >= progress.total:
            bar.close()

    return show


def _mask_one(photo: Path, args: argparse.Namespace, segmenter: Segmenter) -> np.ndarray:
    """The finished mask of one photo: selected, then grown, feathered and inverted as asked."""
    import numpy as np

    from sd_studio.document.io.images import open_image
    from sd_studio.document.mask import feather, grow

    if not photo.exists():
        raise FileError("there is no such file.")
    image = np.asarray(open_image(photo).pixels)
    progress = None if args.quiet or segmenter.model is None else _progress_bar()
    if args.subject:
        selection = segmenter.select_subject(image, progress=progress)
    elif args.background:
        selection = segmenter.select_background(image, progress=progress)
    else:
        selection = segmenter.select(image, _prompt(args, image.shape[1], image.shape[0]), progress=progress)
    mask = selection.to_array()
    if args.grow:
        mask = grow(mask, args.grow)
    if args.feather:
        mask = feather(mask, args.feather)
    return 255 - mask if args.invert else mask


def _prompt(args: argparse.Namespace, width: int, height: int) -> MaskPrompt:
    """The command line's points and box in this photo's coordinates."""
    from sd_studio.document.geometry import Bounds
    from sd_studio.engine.segment.prompt import MaskPrompt, PromptPoint

    for x, y in (*args.point, *args.negative_point):
        if not (x.fits(width) and y.fits(height)):
            raise SDStudioError(f"the point {x},{y} lies outside the {width} x {height} photo.")
    points = [PromptPoint(x.position(width, False), y.position(height, False), positive)
              for positive, pairs in ((True, args.point), (False, args.negative_point)) for x, y in pairs]
    box = None
    if args.box:
        x0, y0, x1, y1 = args.box
        left, right = sorted((x0.position(width, True), x1.position(width, True)))
        top, bottom = sorted((y0.position(height, True), y1.position(height, True)))
        box = Bounds.from_corners(math.floor(left), math.floor(top), math.ceil(right), math.ceil(bottom))
    return MaskPrompt(tuple(points), box)


def _outputs(photos: list[Path], output: Path) -> list[Path]:
    """Where each photo's mask goes: OUT itself for one photo (unless OUT is a folder), OUT/NAME.png for several."""
    if len(photos) == 1 and not output.is_dir():
        if output.suffix.lower() not in MASK_FORMATS:
            raise FileError(f"{output}: write the mask as .png, .tif or .bmp (lossless), not {output.suffix or 'no extension'}.")
        if not output.parent.is_dir():
            raise FileError(f"{output}: the folder {output.parent} does not exist.")
        return [output]
    if output.exists() and not output.is_dir():
        raise FileError(f"{output} is a file; for several photos -o names a folder to write their masks in.")
    if not output.exists():
        if not output.parent.is_dir():
            raise FileError(f"{output}: the folder {output.parent} does not exist.")
        output.mkdir()
    paths = [output / f"{photo.stem}.png" for photo in photos]
    seen: dict[Path, Path] = {}
    for photo, path in zip(photos, paths):
        if path in seen:
            raise FileError(f"{seen[path]} and {photo} would both write {path}; give them different names.")
        seen[path] = photo
    return paths


def write_mask(path: Path, mask: np.ndarray) -> None:
    """Write a (h, w) uint8 mask as a greyscale image, atomically (a failed write leaves any old file whole)."""
    from PIL import Image

    from sd_studio.document.io.atomic import atomic_output

    fmt = MASK_FORMATS.get(path.suffix.lower(), "PNG")
    with atomic_output(path) as out:
        try:
            Image.fromarray(mask, "L").save(out, format=fmt)
        except OSError as exc:
            raise FileError(f"{path}: cannot write the mask ({exc.strerror or exc}).") from exc


def _note(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(f"sd-studio: note: {text}", file=sys.stderr)


def _coordinate(text: str) -> Coordinate:
    text = text.strip()
    percent = text.endswith("%")
    try:
        value = float(text[:-1] if percent else text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels or a percentage, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return Coordinate(value, percent)


def _pair(text: str) -> tuple[Coordinate, Coordinate]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected X,Y, got {text!r}")
    return _coordinate(parts[0]), _coordinate(parts[1])


def _box(text: str) -> tuple[Coordinate, Coordinate, Coordinate, Coordinate]:
    parts = text.split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"expected X0,Y0,X1,Y1, got {text!r}")
    x0, y0, x1, y1 = (_coordinate(p) for p in parts)
    return x0, y0, x1, y1


def _pixels(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, got {text!r}") from None
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"expected 0 to 1000 pixels, got {value}")
    return value


def _parse_error(message: str) -> None:
    print(f"sd-studio: error: {message}", file=sys.stderr)
    raise SystemExit(2)
