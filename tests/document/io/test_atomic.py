"""atomic_output / atomic_write: the target holds its old bytes or all of its new ones."""

import os
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from sd_studio.document.io import atomic
from sd_studio.document.io.atomic import atomic_output, atomic_write, clean_stale_temps
from sd_studio.document.io.images import save_image
from sd_studio.errors import FileError


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_creates_a_new_file_with_the_umask_permissions(tmp_path):
    target = tmp_path / "new.bin"
    with atomic_output(target) as out:
        out.write(b"hello")
    assert target.read_bytes() == b"hello"
    assert _mode(target) == 0o666 & ~_current_umask()
    assert os.listdir(tmp_path) == ["new.bin"]


def test_replaces_an_existing_file_and_keeps_its_permissions(tmp_path):
    target = tmp_path / "old.bin"
    target.write_bytes(b"old contents")
    os.chmod(target, 0o640)
    atomic_write(target, lambda out: out.write(b"new"))
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o640


def test_writes_to_a_hidden_temporary_file_beside_the_target(tmp_path):
    target = tmp_path / "doc.png"
    target.write_bytes(b"old")
    with atomic_output(target) as out:
        out.write(b"half written")
        out.flush()
        others = [name for name in os.listdir(tmp_path) if name != "doc.png"]
        assert len(others) == 1 and others[0].startswith(".doc.png.")
        assert target.read_bytes() == b"old"  # nothing visible until the block ends
    assert target.read_bytes() == b"half written"
    assert os.listdir(tmp_path) == ["doc.png"]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_error_in_the_block_leaves_the_old_file_and_no_temporary(tmp_path, error):
    target = tmp_path / "keep.txt"
    target.write_bytes(b"precious")
    with pytest.raises(type(error)):
        with atomic_output(target) as out:
            out.write(b"partial")
            raise error
    assert target.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_an_error_before_any_file_existed_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        atomic_write(tmp_path / "never.txt", lambda out: (out.write(b"x"), int("not a number")))
    assert os.listdir(tmp_path) == []


def test_writing_through_a_symlink_keeps_the_link(tmp_path):
    real = tmp_path / "real.txt"
    real.write_bytes(b"old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    atomic_write(link, lambda out: out.write(b"new"))
    assert link.is_symlink()
    assert real.read_bytes() == b"new"


def test_a_missing_folder_is_a_file_error_naming_it(tmp_path):
    target = tmp_path / "no" / "such" / "out.png"
    with pytest.raises(FileError, match="does not exist"):
        atomic_write(target, lambda out: out.write(b"x"))
    assert not (tmp_path / "no").exists()


def test_a_folder_as_target_is_a_file_error(tmp_path):
    with pytest.raises(FileError, match="folder"):
        atomic_write(tmp_path, lambda out: out.write(b"x"))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_folder_is_a_permission_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    os.chmod(folder, 0o500)
    try:
        with pytest.raises(FileError, match="permission denied"):
            atomic_write(folder / "x.bin", lambda out: out.write(b"x"))
    finally:
        os.chmod(folder, 0o700)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_a_pipe_or_device_is_never_replaced(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(FileError, match="not a regular file"):
        atomic_write(tmp_path / "pipe", lambda out: out.write(b"x"))
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)
    assert sorted(os.listdir(tmp_path)) == ["pipe"]


KILLED_FLAT_SAVE = """
import os, signal, sys
from sd_studio.document.io.atomic import atomic_output
with atomic_output(sys.argv[1]) as out:
    out.write(b"half a PNG")
    out.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _hidden(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="no SIGKILL on this system")
def test_a_killed_flat_save_is_swept_by_the_next_save_of_that_file(tmp_path):
    target = tmp_path / "photo.png"
    save_image(target, np.full((4, 4, 4), 9, np.uint8))
    child = subprocess.run([sys.executable, "-c", KILLED_FLAT_SAVE, str(target)], capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL
    [left] = _hidden(tmp_path)
    assert left.startswith(".photo.png.") and left.endswith(".tmp")
    save_image(target, np.full((4, 4, 4), 200, np.uint8))
    assert _hidden(tmp_path) == [] and os.listdir(tmp_path) == ["photo.png"]


def test_only_our_own_temporary_names_are_swept(tmp_path):
    target = tmp_path / "doc.png"
    ours = tmp_path / ".doc.png.0123abcd.tmp"
    kept = [".doc.png.0123abcd.tmp.keep", ".doc.png.XYZ.tmp", ".other.png.0123abcd.tmp", "doc.png.0123abcd.tmp",
            ".doc.png.0123abcd9.tmp"]
    for name in [ours.name, *kept]:
        (tmp_path / name).write_bytes(b"x")
    atomic_write(target, lambda out: out.write(b"new"))
    assert not ours.exists()
    assert sorted(os.listdir(tmp_path)) == sorted(["doc.png", *kept])


@pytest.mark.skipif(atomic.fcntl is None, reason="no file locks on this system")
def test_a_temporary_file_held_by_a_live_save_is_left_alone(tmp_path):
    target = tmp_path / "doc.png"
    other = tmp_path / ".doc.png.89abcdef.tmp"
    other.write_bytes(b"another process is writing this")
    with open(other, "rb") as held:
        atomic.fcntl.flock(held.fileno(), atomic.fcntl.LOCK_EX)  # as a live save holds its own
        atomic_write(target, lambda out: out.write(b"new"))
        assert other.exists()
        with atomic_output(target) as out:  # and our own save in progress is never swept either
            out.write(b"newer")
            [mine] = [name for name in _hidden(tmp_path) if name != other.name]
            assert clean_stale_temps(target) == [] and (tmp_path / mine).exists()
    assert [p.name for p in clean_stale_temps(target)] == [other.name]  # its holder is gone
    assert target.read_bytes() == b"newer" and _hidden(tmp_path) == []


def test_without_file_locks_only_old_temporary_files_count_as_left_over(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "fcntl", None)
    target = tmp_path / "doc.png"
    fresh = tmp_path / ".doc.png.00000001.tmp"
    old = tmp_path / ".doc.png.00000002.tmp"
    fresh.write_bytes(b"maybe a save in progress")
    old.write_bytes(b"a killed save")
    hours_ago = time.time() - 2 * atomic.STALE_UNLOCKED_AFTER_S
    os.utime(old, (hours_ago, hours_ago))
    atomic_write(target, lambda out: out.write(b"new"))
    assert fresh.exists() and not old.exists()
