"""Command line: `sd-studio [FILE]` opens the editor; subcommands run without a window."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from sd_studio import __version__
from sd_studio.errors import SDStudioError

PROG = "sd-studio"

SUBCOMMAND_MODULES = (
    "sd_studio.cli_files",
    "sd_studio.cli_generate",
    "sd_studio.cli_models",
    "sd_studio.cli_restore",
    "sd_studio.cli_backends",
    "sd_studio.cli_mask",
)
"""Modules that each add their subcommands through a `register(subparsers)` function."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="SD Studio: an image editor whose brush can ask Stable Diffusion for help. "
        "Without a subcommand it opens the editor (on FILE when given).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="subcommands")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def error(message: str) -> int:
    """Print `sd-studio: error: message` on stderr; return the exit status 2."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or (argv[0] not in _subcommand_names(parser) and not argv[0].startswith("-")):
        return _open_editor(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        return _open_editor([])
    try:
        return int(args.func(args) or 0)
    except SDStudioError as exc:
        return error(str(exc))
    except KeyboardInterrupt:
        return error("interrupted")
    except Exception as exc:  # noqa: BLE001 - the user gets one line, the log gets the rest
        from sd_studio.incidents import log_exception

        path = log_exception(exc, action=f"{PROG} {args.command}")
        return error(f"internal error: {exc.__class__.__name__}: {exc} (details in {path})")


def _subcommand_names(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:  # argparse offers no public way to list subcommands
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def _open_editor(argv: list[str]) -> int:
    if len(argv) > 1:
        return error("the editor opens one file at a time; for batch work use a subcommand (see --help)")
    try:
        from sd_studio.app import run_editor
    except ImportError:
        print(f"{PROG}: the editor is not built yet; it will open {argv[0] if argv else 'a new document'}.")
        return 0
    return run_editor(argv[0] if argv else None)
