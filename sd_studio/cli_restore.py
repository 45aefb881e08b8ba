"""The restoration subcommands: find-damage, restore, upscale, expand, faces, colorize — one photo or a whole album.

Each takes photos or folders of photos. With more than one photo (or a folder) `-o` names a folder,
made if missing, and each result keeps its photo's name. The model loads once for the batch; one
progress bar runs over the batch; a photo that fails is reported and skipped, the rest go on; a
result already there is skipped (results are written atomically, so one that exists is complete),
so an interrupted batch resumes where it stopped (`--overwrite` redoes everything).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sd_studio.errors import FileError, SDStudioError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")
"""Files a folder given as input contributes (by name; content is checked when read)."""


def register(subparsers) -> None:
    """Add the restoration subcommands to the `sd-studio` parser."""
    from sd_studio.cli_generate import _add

    find = _add(subparsers, "find-damage", "Write the scratch and dust mask of photos (white = damage).")
    _batch(find, "the mask (.png)")
    _sensitivity(find)
    find.set_defaults(func=run_find_damage)

    restore = _add(subparsers, "restore", "Find scratches and dust and heal them; every other pixel stays exact.")
    _batch(restore, "the restored photo")
    _sensitivity(restore)
    restore.add_argument("--engine", choices=("classical", "lama", "diffusion"), default="classical",
                         help="classical: OpenCV's fill (no model); lama: an eraser model file; diffusion: --model")
    restore.add_argument("--model", metavar="M", help="lama: an eraser file (LaMa/MAT); diffusion: an SD model")
    restore.add_argument("--prompt", default="clean photo, no scratches", metavar="P", help="for --engine diffusion")
    restore.add_argument("--grow", type=_integer, default=0, metavar="PX",
                         help="grow the found mask before healing (default 0: it already takes the soft edges)")
    restore.set_defaults(func=run_restore)

    upscale = _add(subparsers, "upscale", "Enlarge photos x2/x3/x4 with an upscaler model (or Lanczos), optionally adding detail.")
    _batch(upscale, "the enlarged photo")
    upscale.add_argument("--factor", type=_integer, choices=(2, 3, 4), default=2)
    upscale.add_argument("--model", metavar="FILE", help="upscaler model file (default: the first in the models folder; "
                         "none there: Lanczos)")
    upscale.add_argument("--lanczos", action="store_true", help="Lanczos even when an upscaler model is there")
    upscale.add_argument("--tile", type=_integer, default=256, metavar="PX", help="upscaler tile size (default 256)")
    upscale.add_argument("--detail", metavar="SD_MODEL", help="refine in tiles with this Stable Diffusion model")
    upscale.add_argument("--strength", type=_number, default=0.3, metavar="S", help="refinement strength 0.2-0.5")
    upscale.add_argument("--prompt", default="", metavar="P", help="what the refinement should see")
    upscale.add_argument("--steps", type=_integer, default=20, metavar="N")
    upscale.add_argument("--seed", type=_integer, default=0, metavar="N")
    upscale.set_defaults(func=run_upscale)

    expand = _add(subparsers, "expand", "Grow the canvas and fill the new area (outpaint); the photo stays exact.")
    _batch(expand, "the expanded photo")
    expand.add_argument("--all", type=_integer, default=0, metavar="PX", help="add PX on every side")
    for side in ("left", "top", "right", "bottom"):
        expand.add_argument(f"--{side}", type=_integer, default=None, metavar="PX")
    expand.add_argument("--prefill", choices=("stretch", "blur", "navier-stokes"), default="stretch")
    expand.add_argument("--band", type=_integer, default=16, metavar="PX", help="blend band into the photo (diffusion only)")
    expand.add_argument("--model", metavar="M", help="a Stable Diffusion model to paint the new area")
    expand.add_argument("--prompt", default="", metavar="P")
    expand.add_argument("--seed", type=_integer, default=None, metavar="N")
    expand.set_defaults(func=run_expand)

    faces = _add(subparsers, "faces", "Restore the faces in photos (GFPGAN, RestoreFormer or CodeFormer).")
    _batch(faces, "the photo with its faces restored")
    faces.add_argument("--model", metavar="FILE", help="face model file (default: the first in the models folder)")
    faces.add_argument("--strength", type=_number, default=1.0, metavar="S", help="0 to 1 (default 1)")
    faces.set_defaults(func=run_faces)

    colorize = _add(subparsers, "colorize", "Colour black-and-white photos (DDColor).")
    _batch(colorize, "the coloured photo")
    colorize.add_argument("--model", metavar="FILE", help="DDColor model file (default: the first in the models folder)")
    colorize.set_defaults(func=run_colorize)


def _batch(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("photos", nargs="+", metavar="PHOTO", help="photos, or folders of photos")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help=f"{what}; a folder when there are several photos")
    parser.add_argument("--overwrite", action="store_true", help="redo results that already exist")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _sensitivity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sensitivity", type=_number, default=0.5, metavar="S",
                        help="0 (only obvious damage) to 1 (faint, short marks too); default 0.5")


@dataclass(frozen=True)
class Job:
    """One photo of a batch and where its result goes."""

    source: Path
    output: Path


def plan_batch(photos: list[str], output: str, *, suffix: str | None = None) -> list[Job]:
    """The (photo, result) pairs for the inputs; FileError for a missing input or an unusable output."""
    from sd_studio.document.io.images import WRITE_FORMATS

    sources: list[Path] = []
    folder_given = False
    for text in photos:
        path = Path(text)
        if path.is_dir():
            folder_given = True
            sources.extend(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            sources.append(path)
        else:
            raise FileError(f"{text} does not exist.")
    if not sources:
        raise FileError("No photos to work on: the folders given hold no images.")
    out = Path(output)
    if len(sources) == 1 and not folder_given and not out.is_dir():
        if out.suffix.lower() not in WRITE_FORMATS:
            raise FileError(f"{out}: cannot tell the image format from its name; use .png, .jpg, .webp, .tif or .bmp.")
        if not out.parent.is_dir():
            raise FileError(f"{out}: the folder {out.parent} does not exist.")
        return [Job(sources[0], out)]
    if out.exists() and not out.is_dir():
        raise FileError(f"{out} is a file; with several photos -o must name a folder.")
    out.mkdir(parents=True, exist_ok=True)
    jobs, taken = [], set()
    for source in sources:
        ext = suffix or (source.suffix.lower() if source.suffix.lower() in WRITE_FORMATS else ".png")
        name = f"{source.stem}{ext}"
        if name in taken:  # photo.jpg and photo.png in one album
            name = f"{source.stem}-{source.suffix.lstrip('.').lower()}{ext}"
        taken.add(name)
        jobs.append(Job(source, out / name))
    return jobs


def run_batch(args: argparse.Namespace, prepare: Callable[[], Callable], *, suffix: str | None = None,
              label: str = "") -> int:
    """Check the inputs, then prepare() the work (load the model, once), then run work(pixels, cancel) ->
    (rgba, parameters text) over every photo; returns the exit status."""
    import numpy as np

    from sd_studio.cli import error
    from sd_studio.cli_generate import ProgressBar, _cancel_on_interrupt
    from sd_studio.document.io.images import open_image, save_image
    from sd_studio.engine.request import Progress

    jobs = plan_batch(args.photos, args.output, suffix=suffix)
    todo = [j for j in jobs if args.overwrite or not _complete(j.output)]
    skipped = len(jobs) - len(todo)
    if skipped and not args.quiet:
        print(f"{skipped} of {len(jobs)} results already there; skipping them (--overwrite redoes them)", file=sys.stderr)
    if not todo:
        return 0
    work = prepare()
    bar = None if args.quiet else ProgressBar(sys.stderr)
    failures: list[str] = []
    with _cancel_on_interrupt() as cancelled:
        for i, job in enumerate(todo):
            if cancelled():
                break
            if bar is not None:
                bar(Progress(label or args.command, i, len(todo), message=job.source.name))
            try:
                pixels = np.asarray(open_image(job.source).pixels)
                rgba, parameters = work(pixels, cancelled)
                save_image(job.output, rgba, parameters=parameters)
            except SDStudioError as exc:
                if cancelled():
                    break
                failures.append(f"{job.source}: {exc}")
            except MemoryError:
                failures.append(f"{job.source}: not enough memory for this photo.")
        if bar is not None:
            bar(Progress(label or args.command, len(todo) if not cancelled() else i, len(todo)))
            bar.close()
    for line in failures:
        print(f"sd-studio: warning: {_printable(line)}", file=sys.stderr)
    if cancelled():
        return error("cancelled; the results written so far are kept, run the same command again to resume")
    if failures:
        return error(f"{len(failures)} of {len(todo)} photos failed (listed above); the others were written")
    if not args.quiet and len(jobs) > 1:
        print(f"{len(todo)} written to {args.output}", file=sys.stderr)
    return 0


def _complete(path: Path) -> bool:
    """True when a readable image is already at path (results are written atomically, so it is whole)."""
    if not path.is_file():
        return False
    from sd_studio.document.io.images import detect_format

    try:
        return detect_format(path) is not None
    except Exception:  # noqa: BLE001 - unreadable means: do it again
        return False


def _printable(text: str) -> str:
    """Text from files and paths without terminal control characters."""
    return "".join(c if c.isprintable() else "?" for c in text)


# -- the subcommands ---------------------------------------------------------------------------------------
def run_find_damage(args: argparse.Namespace) -> int:
    """Handler of find-damage: the damage mask of each photo as a black-and-white PNG."""
    import numpy as np

    from sd_studio.engine.damage import find_damage, thresholds

    thresholds(args.sensitivity)  # a bad sensitivity fails once, before the batch

    def work(pixels, cancel):
        mask = find_damage(pixels, args.sensitivity, cancel=cancel)
        rgba = np.empty(mask.shape + (4,), np.uint8)
        rgba[..., :3] = mask[..., None]
        rgba[..., 3] = 255
        return rgba, f"Postprocessing: Find damage, Damage sensitivity: {args.sensitivity:g}"

    return run_batch(args, lambda: work, suffix=".png")


def run_restore(args: argparse.Namespace) -> int:
    """Handler of restore: find the damage and heal it."""
    from sd_studio.engine.damage import thresholds
    from sd_studio.engine.restore.heal import HealSettings, restore_photo

    thresholds(args.sensitivity)
    if args.engine == "diffusion" and not args.model:
        raise SDStudioError("--engine diffusion needs --model (a hub id, a diffusers folder or a .safetensors file).")
    settings = HealSettings(engine=args.engine, model=args.model if args.engine == "diffusion" else None,
                            prompt=args.prompt, grow=args.grow, device=args.device)

    def prepare():
        eraser = None
        if args.engine == "lama":
            from sd_studio.engine.restore.models import ModelSlot

            eraser = ModelSlot().get("erase", args.model, args.device)

        def work(pixels, cancel):
            result = restore_photo(pixels, args.sensitivity, settings, eraser=eraser, cancel=cancel)
            return result.composite_onto(pixels), result.parameters_text()

        return work

    return run_batch(args, prepare)


def run_upscale(args: argparse.Namespace) -> int:
    """Handler of upscale: each photo enlarged with the upscaler (or Lanczos), refined when --detail is given."""
    from sd_studio.engine.restore.models import ModelSlot, find_model_files
    from sd_studio.engine.restore.refine import RefineSettings
    from sd_studio.engine.restore.upscale import UpscaleSettings, upscale

    refine = None
    if args.detail:
        refine = RefineSettings(model=args.detail, prompt=args.prompt, strength=args.strength, steps=args.steps,
                                seed=args.seed, device=args.device).checked()
    settings = UpscaleSettings(factor=args.factor, model=args.model, tile=args.tile, refine=refine)

    def prepare():
        model = None
        if not args.lanczos and (args.model or find_model_files("upscale")):
            model = ModelSlot().get("upscale", args.model, args.device)
        elif not args.quiet and not args.lanczos:
            print("upscaling with Lanczos (no upscaler model; see README, Restoring old photos)", file=sys.stderr)

        def work(pixels, cancel):
            result = upscale(pixels, settings, model=model, cancel=cancel)
            return result.composite_onto(pixels), result.parameters_text()

        return work

    return run_batch(args, prepare)


def run_expand(args: argparse.Namespace) -> int:
    """Handler of expand: each photo's canvas grown by the margins and the new area filled."""
    from sd_studio.engine.restore.expand import ExpandSettings, Margins

    sides = {s: (getattr(args, s) if getattr(args, s) is not None else args.all) for s in ("left", "top", "right", "bottom")}
    settings = ExpandSettings(Margins(**sides), prefill=args.prefill, band=args.band, model=args.model,
                              prompt=args.prompt, seed=args.seed, device=args.device)
    from sd_studio.document.geometry import Extent

    settings.checked(Extent(1, 1))  # margins and options fail once, before the batch

    def work(pixels, cancel):
        from sd_studio.engine.restore.expand import expand

        result = expand(pixels, settings, cancel=cancel)
        return result.composite_onto(pixels), result.parameters_text()

    return run_batch(args, lambda: work)


def run_faces(args: argparse.Namespace) -> int:
    """Handler of faces: every face found in each photo restored and pasted back."""
    from sd_studio.engine.restore.faces import restore_faces
    from sd_studio.engine.restore.models import ModelSlot

    if not 0.0 <= args.strength <= 1.0:
        raise SDStudioError(f"The face strength must be from 0 to 1, not {args.strength:g}.")
    def prepare():
        model = ModelSlot().get("faces", args.model, args.device)

        def work(pixels, cancel):
            result = restore_faces(pixels, model, args.strength, cancel=cancel)
            return result.composite_onto(pixels), result.parameters_text()

        return work

    return run_batch(args, prepare)


def run_colorize(args: argparse.Namespace) -> int:
    """Handler of colorize: each photo coloured by DDColor, its own lightness kept."""
    from sd_studio.engine.restore.colorize import colorize
    from sd_studio.engine.restore.models import ModelSlot

    def prepare():
        model = ModelSlot().get("colorize", args.model, args.device)

        def work(pixels, cancel):
            result = colorize(pixels, model, cancel=cancel)
            return result.composite_onto(pixels), result.parameters_text()

        return work

    return run_batch(args, prepare)


def _integer(text: str) -> int:
    from sd_studio.cli_generate import _integer as integer

    return integer(text)


def _number(text: str) -> float:
    from sd_studio.cli_generate import _number as number

    return number(text)
