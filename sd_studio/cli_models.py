"""Subcommand `get-model`: list the recommended models, or download one into the models folder (resumable)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `get-model` subcommand."""
    parser = subparsers.add_parser(
        "get-model", help="list the recommended models, or download one into the models folder",
        description="Without ID: list the recommended models (size, licence, whether they are on this computer). "
        "With ID: download that model from the Hugging Face hub into the models folder, with its checksum "
        "checked; a download that was cut or cancelled (Ctrl+C) continues where it stopped.",
    )
    parser.add_argument("id", nargs="?", metavar="ID", help="the model to download (an id from the list)")
    parser.add_argument("--folder", type=Path, default=None, metavar="DIR",
                        help="the models folder (default: the one in sd-studio's data folder)")
    parser.add_argument("--catalog", type=Path, default=None, metavar="FILE",
                        help="a catalog of your own, in the format of resources/models.json")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_get_model)


def run_get_model(args: argparse.Namespace) -> int:
    """List the catalog, or download args.id; SDStudioError (one sentence) when that cannot be done."""
    from sd_studio.engine.models.catalog import find_entry, load_catalog
    from sd_studio.engine.models.discovery import default_models_folder

    entries = load_catalog(args.catalog)
    folder = args.folder.expanduser() if args.folder is not None else default_models_folder()
    if args.id is None:
        print("\n".join(_listing(entries, folder)))
        return 0
    entry = find_entry(entries, args.id)
    from sd_studio.cli_generate import _cancel_on_interrupt
    from sd_studio.engine.models.downloads import download_entry

    bar = None if args.quiet else _bytes_bar(sys.stderr)
    with _cancel_on_interrupt() as cancelled:
        try:
            path = download_entry(entry, folder, progress=bar, cancel=cancelled)
        finally:
            if bar is not None:
                bar.close()
    print(path)
    if entry.kind == "lora":
        print(f"sd-studio: apply it with --lora {path}", file=sys.stderr)
    return 0


def _listing(entries, folder: Path) -> list[str]:
    from sd_studio.engine.models.catalog import format_size
    from sd_studio.engine.models.downloads import partial_bytes

    lines = [f"Models folder: {folder}"]
    width = max(len(e.id) for e in entries) if entries else 0
    for e in entries:
        if e.installed(folder):
            state = "on this computer"
        else:
            kept = partial_bytes(e, folder)
            state = f"{format_size(kept)} downloaded, to continue" if kept else "-"
        star = "*" if e.recommended else " "
        lines.append(f"{star} {e.id:<{width}}  {e.kind_label:<8} {e.size_label:>14}  {e.licence.name:<26} "
                     f"{state}\n    {e.name}: {e.good_for}")
    lines.append("* recommended. Download one with: sd-studio get-model ID")
    return lines


def _bytes_bar(stream):
    """A ProgressBar (the one generation uses) that counts bytes and shows speed and time left."""
    from sd_studio.cli_generate import BAR_WIDTH, ProgressBar
    from sd_studio.engine.models.catalog import format_size
    from sd_studio.engine.models.downloads import TransferRate, format_duration

    class BytesBar(ProgressBar):
        def __init__(self, stream) -> None:
            super().__init__(stream)
            self.rate = TransferRate()

        def __call__(self, progress) -> None:
            total = max(1, progress.total)
            done = min(max(0, progress.step), total)
            filled = round(BAR_WIDTH * done / total)
            line = f"{progress.phase:<11} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {format_size(done)} of " \
                   f"{format_size(total)}"
            if progress.phase == "downloading":
                self.rate.add(time.monotonic(), done)
                if self.rate.speed:
                    line += f" · {format_size(self.rate.speed)}/s"
                left = self.rate.time_left(total)
                if left is not None and done < total:
                    line += f" · {format_duration(left)} left"
            self.stream.write("\r" + line.ljust(BAR_WIDTH + 60))
            self.stream.flush()
            self._shown = True

    return BytesBar(stream)
