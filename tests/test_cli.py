"""The command line's front door: version, help, argument errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sd_studio import __version__
from sd_studio.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"sd-studio {__version__}"


def test_help_lists_the_file_subcommands(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "usage: sd-studio" in out and "info" in out and "convert" in out


@pytest.mark.parametrize("command", ["info", "convert"])
def test_subcommand_help(capsys, command):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert f"usage: sd-studio {command}" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["info"], ["convert", "only-one.png"], ["info", "--bogus", "x.png"], ["--bogus"]])
def test_bad_arguments_exit_2_with_usage(capsys, argv):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "usage: sd-studio" in err and "error:" in err


def test_the_parser_knows_info_and_convert():
    parser = build_parser()
    args = parser.parse_args(["convert", "a.png", "b.webp", "--quality", "80"])
    assert (args.input, args.output, args.quality) == ("a.png", "b.webp", 80)
    assert parser.parse_args(["info", "x.png"]).file == "x.png"


def test_python_dash_m_runs_the_command_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "sd_studio", "--version"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"sd-studio {__version__}"
