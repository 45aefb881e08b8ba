"""A save killed at any moment leaves the old file or the new one, never a broken one.

Temporary files: a save writes a hidden `.NAME.XXXXXXXX.tmp` beside the target and holds a lock
on it; a SIGKILL leaves that hidden file behind, and the next save of the same target removes it
(`clean_stale_temps`). No visible stray file is ever left.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sd_studio.document.document import Document
from sd_studio.document.io.ora import read_ora, write_ora

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _old_doc() -> Document:
    return Document.new(64, 48, background=(1, 2, 3, 255))


def _is_old_or_new(path: Path, new_pixels: np.ndarray) -> str:
    doc = read_ora(path)  # a broken file raises FileError here
    if doc.size == (64, 48):
        assert (doc.composite() == (1, 2, 3, 255)).all()
        return "old"
    assert np.array_equal(doc.composite(), new_pixels)
    return "new"


@pytest.fixture
def big_png(tmp_path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(5)
    h, w = 1536, 2048
    pixels = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    pixels[:, : w // 2, :3] = np.linspace(0, 255, w // 2, dtype=np.uint8)[None, :, None]
    path = tmp_path / "src" / "big.png"
    path.parent.mkdir()
    Image.fromarray(pixels).save(path, compress_level=1)
    return path, pixels


def test_a_save_killed_at_random_moments_never_breaks_the_file(tmp_path, big_png):
    source, pixels = big_png
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "out.ora"
    command = [sys.executable, "-m", "sd_studio", "convert", str(source), str(out)]
    start = time.monotonic()
    subprocess.run(command, env=ENV, check=True, timeout=300)
    full = time.monotonic() - start  # used only to spread the kills over a whole save
    assert _is_old_or_new(out, pixels) == "new"
    rng = random.Random(1234)
    seen = []
    for delay in sorted(rng.uniform(0.0, full * 1.1) for _ in range(7)):
        write_ora(out, _old_doc())
        child = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        seen.append(_is_old_or_new(out, pixels))
        assert _visible(out_dir) == ["out.ora"]
        assert all(name.startswith(".out.ora.") and name.endswith(".tmp") for name in _hidden(out_dir))
    write_ora(out, _old_doc())  # the next save sweeps what killed saves left
    assert _hidden(out_dir) == [] and _visible(out_dir) == ["out.ora"]
    assert set(seen) <= {"old", "new"}


KILLED_WHILE_WRITING = """
import os, signal, sys, numpy as np
from sd_studio.document.document import Document
from sd_studio.document.io import ora
real = ora.encode_png
calls = []
def encode_then_die(pixels):
    calls.append(1)
    if len(calls) == 3:  # members already written into the temporary file, more to come
        print("writing", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return real(pixels)
ora.encode_png = encode_then_die
doc = Document.new(300, 200, background=(9, 9, 9, 255))
for i in range(4):
    doc.add_layer(f"L{i}").surface.write(0, 0, np.full((50, 60, 4), 40 * i + 1, np.uint8))
ora.write_ora(sys.argv[1], doc)
print("finished", flush=True)
"""


def test_a_save_killed_while_writing_keeps_the_old_file_and_the_next_save_cleans_up(tmp_path):
    out = tmp_path / "doc.ora"
    write_ora(out, _old_doc())
    before = out.read_bytes()
    child = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(out)], env=ENV,
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL and child.stdout.strip() == "writing"
    assert out.read_bytes() == before
    [temp] = _hidden(tmp_path)
    assert temp.startswith(".doc.ora.") and (tmp_path / temp).stat().st_size > 0
    assert _visible(tmp_path) == ["doc.ora"]
    write_ora(out, _old_doc())
    assert _hidden(tmp_path) == []


def test_a_save_in_progress_elsewhere_is_not_swept(tmp_path):
    # another process holding its temporary file (its lock) keeps it while we save the same name
    out = tmp_path / "shared.ora"
    temp = tmp_path / ".shared.ora.0123abcd.tmp"
    temp.write_bytes(b"partial")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys, time\nf = open(sys.argv[1], 'rb+')\nfcntl.flock(f, fcntl.LOCK_EX)\n"
         "print('held', flush=True)\ntime.sleep(120)\n", str(temp)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        write_ora(out, _old_doc())
        assert temp.exists()
    finally:
        holder.kill()
        holder.wait()
    write_ora(out, _old_doc())
    assert not temp.exists()
