"""Atomic file writes: the target holds either its old bytes or all of its new ones, never a mix."""

from __future__ import annotations

import os
import secrets
import stat
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from sd_studio.document.io.oserror import file_error
from sd_studio.errors import FileError


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write that replaces `path` only when the `with` block ends without error.

    The bytes go to a hidden temporary file in the target's folder (so the final rename never
    crosses file systems), which is flushed and fsynced, renamed over the target with os.replace,
    and then the folder is fsynced so the rename itself survives a power cut. On any error, in
    the block or here, the temporary file is removed and the old target is left untouched.
    An existing target keeps its permission bits; a symlink is followed so the link survives.
    Our own failures (folder missing, disk full...) raise FileError; errors raised inside the
    block propagate unchanged.
    """
    target = Path(os.path.realpath(os.fspath(path)))
    if target.is_dir():
        raise FileError(f"{os.fspath(path)}: cannot write: it is a folder, not a file")
    folder = target.parent
    if not folder.is_dir():
        raise FileError(f"{os.fspath(path)}: cannot write: the folder {folder} does not exist")
    try:
        old = os.stat(target).st_mode
    except OSError:
        old = None
    if old is not None and not stat.S_ISREG(old):
        # renaming over /dev/null or a pipe would replace the device itself
        raise FileError(f"{os.fspath(path)}: cannot write: it is not a regular file (a device or a pipe)")
    old_mode = stat.S_IMODE(old) if old is not None else None
    temp, fd = _create_temp(target, path)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as exc:
                raise file_error(path, exc, "write") from exc
        try:
            if old_mode is not None:
                os.chmod(temp, old_mode)
            os.replace(temp, target)
        except OSError as exc:
            raise file_error(path, exc, "write") from exc
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_folder(folder)


def atomic_write(path: str | os.PathLike, write_fn: Callable[[BinaryIO], None]) -> None:
    """Call write_fn(binary_file) and atomically replace `path` with what it wrote (see atomic_output)."""
    with atomic_output(path) as out:
        write_fn(out)


def _create_temp(target: Path, shown: str | os.PathLike) -> tuple[Path, int]:
    # os.open with 0o666 lets the umask decide a new file's permissions, as a plain open() would;
    # tempfile.mkstemp would force 0o600 on every new file.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return temp, os.open(temp, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise file_error(shown, exc, "write") from exc
    raise FileError(f"{os.fspath(shown)}: cannot write: no free temporary name in {target.parent}")


def _fsync_folder(folder: Path) -> None:
    # Some platforms (Windows) and file systems cannot open or fsync a folder; the file itself is
    # already safely on disk then, only the rename's durability is left to the OS.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
