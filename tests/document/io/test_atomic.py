"""atomic_output / atomic_write: the target holds its old bytes or all of its new ones."""

import os
import stat

import pytest

from sd_studio.document.io.atomic import atomic_output, atomic_write
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
