"""The generation subcommands: `inpaint`, `img2img`, `txt2img` and `models`, run without a window."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sd_studio import cli_backends
from sd_studio.errors import FileError

if TYPE_CHECKING:
    import numpy as np

BAR_WIDTH = 30


def register(subparsers) -> None:
    """Add the generation subcommands to the `sd-studio` parser."""
    inpaint = _add(subparsers, "inpaint", "Repaint the white part of MASK in IMAGE.")
    inpaint.add_argument("image", metavar="IMAGE", help="the picture to change")
    inpaint.add_argument("--mask", required=True, metavar="MASK", help="white repaints, black keeps, grey blends")
    _common(inpaint, prompt_required=False)

    img2img = _add(subparsers, "img2img", "Redraw IMAGE following a prompt.")
    img2img.add_argument("image", metavar="IMAGE", help="the picture to redraw")
    img2img.add_argument("--mask", metavar="MASK", help="optional selection: only its region is redrawn")
    _common(img2img, prompt_required=True)

    txt2img = _add(subparsers, "txt2img", "Draw a new picture from a prompt.")
    txt2img.add_argument("--width", type=_integer, default=512, help="pixels, a multiple of 8 (default 512)")
    txt2img.add_argument("--height", type=_integer, default=512, help="pixels, a multiple of 8 (default 512)")
    _common(txt2img, prompt_required=True)

    models = _add(subparsers, "models", "List the models sd-studio can find.")
    models.add_argument(
        "--folder", action="append", default=[], metavar="DIR", help="also look in this folder (repeatable)"
    )
    models.set_defaults(func=run_models)


def run_generation(args: argparse.Namespace) -> int:
    """Handler of inpaint/img2img/txt2img: read the inputs, generate, write OUT (or OUT-1 ... OUT-N)."""
    from sd_studio.engine.generate import generate
    from sd_studio.engine.request import GenerationRequest

    output = Path(args.output)
    _check_output(output)
    image = _read_image(Path(args.image)) if getattr(args, "image", None) else None
    mask = None
    if getattr(args, "mask", None):
        mask = read_mask(Path(args.mask))
        if mask.shape != image.shape[:2]:
            raise FileError(
                f"The mask {args.mask} is {mask.shape[1]} x {mask.shape[0]} pixels but the image is "
                f"{image.shape[1]} x {image.shape[0]}; they must be the same size."
            )
    request = GenerationRequest(
        mode=args.command,
        image=image,
        mask=mask,
        prompt=args.prompt or "",
        negative_prompt=args.negative_prompt or "",
        steps=args.steps,
        guidance=args.guidance,
        strength=args.strength,
        seed=args.seed,
        scheduler=args.scheduler,
        width=getattr(args, "width", 512),
        height=getattr(args, "height", 512),
        variants=args.variants,
        model=args.model,
        engine=args.engine,
        padding=args.padding,
        feather=args.feather,
        resolution=args.resolution,
        device=args.device,
        precision=args.precision,
        memory_mode=args.memory_mode,
        loras=tuple(args.lora),
        match_color=args.match_color,
        whole_image=args.whole_image,
    )
    backend = cli_backends.open_from_args(args)  # None: this computer
    if backend is not None:
        request = cli_backends.prepare_request(request, backend, args.quiet)
    if not args.quiet and request.model and request.engine != "classical" and backend is None:  # a fill reads none
        _note_long_prompts(request)
    bar = None if args.quiet else ProgressBar(sys.stderr)
    with _cancel_on_interrupt() as cancelled, _cpu_settings(args):
        try:
            result = generate(request, progress=bar, cancel=cancelled, backend=backend)
        finally:
            if bar is not None:
                bar.close()
            if backend is not None:
                backend.close()
    import numpy as np  # only when generating: `sd-studio --help` and the editor start without it

    base = image if image is not None else np.zeros((request.height, request.width, 4), np.uint8)
    paths = output_paths(output, len(result.images))
    for i, path in enumerate(paths):
        _write_image(path, result.composite_onto(base, i), result.parameters_text(i))
        if not args.quiet:
            print(f"{path} (seed {result.seeds[i]})", file=sys.stderr)
    return 0


def _note_long_prompts(request) -> None:
    """One stderr line for each of the prompt and negative prompt that is over CLIP's 75-token window."""
    from sd_studio.engine.prompts.tokens import long_prompt_note

    for label, text in (("prompt", request.prompt), ("negative prompt", request.negative_prompt)):
        note = long_prompt_note(label, text)
        if note:
            print(note, file=sys.stderr)


@contextmanager
def _cpu_settings(args: argparse.Namespace):
    """For a diffusion run: every physical core for torch, and the chosen CPU backend; both restored after."""
    if not args.model or args.engine == "classical" or args.backend != "local":
        yield
        return
    import torch

    from sd_studio.engine.cpu.processor import configure_threads

    threads, backend = torch.get_num_threads(), os.environ.get("SD_STUDIO_CPU_BACKEND")
    configure_threads(for_editor=False)
    if args.cpu_backend:
        os.environ["SD_STUDIO_CPU_BACKEND"] = args.cpu_backend
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if backend is None:
            os.environ.pop("SD_STUDIO_CPU_BACKEND", None)
        else:
            os.environ["SD_STUDIO_CPU_BACKEND"] = backend


def run_models(args: argparse.Namespace) -> int:
    """Handler of `models`: one line per model found in the models folders and the hub cache."""
    from sd_studio.engine.models.discovery import find_models

    folders = [default_models_folder()] + [Path(f) for f in args.folder]
    entries = find_models(folders)
    if not entries:
        print(f"No models found. Put .safetensors files or diffusers folders in {folders[0]}, "
              "or pass --folder DIR.")
        return 0
    for entry in entries:
        size = f"{entry.size_bytes / 2**30:.1f} GiB" if entry.size_bytes else "-"
        print(f"{entry.name}\t{entry.kind}\t{size}\t{entry.spec}")
    return 0


def default_models_folder() -> Path:
    """The user's own models folder (inside sd-studio's data folder); searched by `models`."""
    from sd_studio.incidents import data_dir

    return data_dir() / "models"


def read_mask(path: Path) -> np.ndarray:
    """A mask file as (H, W) uint8 luminance (white repaints, black keeps, grey blends), as Pillow's 'L' mode."""
    import numpy as np

    pixels = _read_image(path)
    if pixels.ndim == 2:
        return pixels.astype(np.uint8, copy=False)
    if pixels.shape[2] < 3:
        return np.ascontiguousarray(pixels[..., 0])
    rgb = pixels[..., :3].astype(np.uint32)
    # ITU-R 601-2 luma in Pillow's exact fixed-point form, so a file reads the same as Image.convert("L").
    luma = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
    return luma.astype(np.uint8)


def output_paths(output: Path, count: int) -> list[Path]:
    """OUT itself for one image; OUT-1.ext ... OUT-N.ext for variants."""
    if count == 1:
        return [output]
    return [output.with_name(f"{output.stem}-{i}{output.suffix}") for i in range(1, count + 1)]


class ProgressBar:
    """A one-line `\\r` progress bar with step counts, written to a text stream."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self._shown = False

    def __call__(self, progress) -> None:
        """Redraw the bar for one engine Progress report."""
        total = max(1, progress.total)
        step = min(max(0, progress.step), total)
        filled = round(BAR_WIDTH * step / total)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        line = f"{progress.phase:<10} [{bar}] {step}/{progress.total}"
        self.stream.write("\r" + line.ljust(BAR_WIDTH + 30))
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        """End the bar's line."""
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


class _cancel_on_interrupt:
    """While active, the first Ctrl+C asks the engine to stop at its next step; a second one interrupts at once."""

    def __enter__(self):
        self.flag = threading.Event()
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self.flag.is_set

    def _handle(self, signum, frame) -> None:
        self.flag.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\nsd-studio: cancelling after this step (Ctrl+C again to stop at once)", file=sys.stderr)

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _add(subparsers, name: str, description: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=description, description=description)
    # One line, `sd-studio: error: ...`, exit status 2 — like every other user error.
    parser.error = _parse_error  # type: ignore[method-assign]
    return parser


def _parse_error(message: str) -> None:
    print(f"sd-studio: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _common(parser: argparse.ArgumentParser, *, prompt_required: bool) -> None:
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="the file to write (.png keeps the parameters)")
    parser.add_argument("--prompt", required=prompt_required, default="", metavar="P", help="what to draw")
    parser.add_argument("--negative-prompt", default="", metavar="N", help="what to avoid")
    parser.add_argument("--model", metavar="M", help="hub id, diffusers folder or .safetensors file")
    parser.add_argument(
        "--engine", choices=("auto", "diffusion", "classical"), default="auto",
        help="auto: diffusion when a model is given, else the classical fill (inpaint only)",
    )
    parser.add_argument("--steps", type=_integer, default=20, metavar="N", help="denoising steps, 1 to 150 (default 20)")
    parser.add_argument("--guidance", type=_number, default=7.0, metavar="G", help="CFG scale (default 7)")
    parser.add_argument("--strength", type=_number, default=None, metavar="S", help="denoising strength, 0 to 1")
    parser.add_argument("--seed", type=_integer, default=None, metavar="N", help="random when left out")
    parser.add_argument(
        "--scheduler", default="Euler a", metavar="NAME",
        help="sampler by its A1111 name (Euler a, DPM++ 2M Karras, ...; Telea or Navier-Stokes for the classical fill)",
    )
    parser.add_argument("--padding", type=_integer, default=32, metavar="PX", help="context around the mask (default 32)")
    parser.add_argument("--feather", type=_integer, default=4, metavar="PX", help="soft edge beyond the mask (default 4)")
    parser.add_argument("--resolution", type=_integer, default=None, metavar="PX", help="model input size (default: the model's own)")
    parser.add_argument("--variants", type=_integer, default=1, metavar="N", help="N images with seeds s, s+1, ...")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument(
        "--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
        help="auto: fp16 on a GPU; on a processor bf16 where it has AMX or AVX512-BF16 and it measured faster",
    )
    parser.add_argument(
        "--cpu-backend", choices=("torch", "openvino", "auto"), default=None,
        help="on a processor: torch, or OpenVINO (pip install 'sd-studio[openvino]'; converts the model once)",
    )
    parser.add_argument(
        "--memory-mode", choices=("auto", "none", "attention-slicing", "vae-tiling", "cpu-offload"), default="auto",
        help="how to save GPU memory (auto: by free VRAM)",
    )
    parser.add_argument(
        "--lora", action="append", type=_lora, default=[], metavar="FILE[:WEIGHT]",
        help="apply a LoRA .safetensors file with a weight (default 1.0); repeat for several",
    )
    parser.add_argument("--match-color", action="store_true", help="match the result's colour to its surroundings")
    parser.add_argument("--whole-image", action="store_true", help="generate over the whole image, not just the mask's region")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    cli_backends.add_backend_arguments(parser)
    parser.set_defaults(func=run_generation)


def _lora(text: str) -> tuple[str, float]:
    """FILE or FILE:WEIGHT; a Windows drive letter's colon is not a weight."""
    path, sep, weight = text.rpartition(":")
    if sep and path and not (len(path) == 1 and path.isalpha()):
        try:
            return path, float(weight)
        except ValueError:
            pass
    return text, 1.0


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _check_output(path: Path) -> None:
    """Refuse an output that could not be written before spending minutes on the generation."""
    from sd_studio.document.io.images import WRITE_FORMATS

    if path.suffix.lower() not in WRITE_FORMATS:
        raise FileError(f"{path}: cannot tell the image format from its name; use .png, .jpg, .webp, .tif or .bmp.")
    if not path.parent.is_dir():
        raise FileError(f"{path}: the folder {path.parent} does not exist.")


def _read_image(path: Path) -> np.ndarray:
    import numpy as np

    from sd_studio.document.io.images import open_image

    if not path.exists():
        raise FileError(f"{path} does not exist.")
    return np.asarray(open_image(path).pixels)


def _write_image(path: Path, rgba: np.ndarray, parameters: str) -> None:
    from sd_studio.document.io.images import save_image

    save_image(path, rgba, parameters=parameters)
