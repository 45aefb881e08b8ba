"""Atomic file writes: the target holds either its old bytes or all of its new ones, never a mix."""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from sd_studio.document.io.oserror import file_error
from sd_studio.errors import FileError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

STALE_UNLOCKED_AFTER_S = 3600.0
"""Where file locks are missing, a temporary file untouched this long counts as a leftover."""


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write that replaces `path` only when the `with` block ends without error.

    The bytes go to a hidden temporary file in the target's folder (so the final rename never
    crosses file systems), which is flushed and fsynced, renamed over the target with os.replace,
    and then the folder is fsynced so the rename itself survives a power cut. On any error, in
    the block or here, the temporary file is removed and the old target is left untouched.
    An existing target keeps its permission bits; a symlink is followed so the link survives.
    Our own failures (folder missing, disk full...) raise FileError; errors raised inside the
    block propagate unchanged. Leftover temporary files of killed saves of the same target are
    removed first (see clean_stale_temps); ours is locked while we write, so others leave it be.
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
    clean_stale_temps(target)
    temp, fd = _create_held_temp(target, path)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as exc:
                raise file_error(path, exc, "write") from exc
            if fcntl is not None:
                # renamed while still open, so our lock covers the file until it has its real name
                _replace(temp, target, old_mode, path)
        if fcntl is None:
            _replace(temp, target, old_mode, path)  # Windows cannot rename an open file
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_folder(folder)


def _replace(temp: Path, target: Path, old_mode: int | None, shown: str | os.PathLike) -> None:
    try:
        if old_mode is not None:
            os.chmod(temp, old_mode)
        os.replace(temp, target)
    except OSError as exc:
        raise file_error(shown, exc, "write") from exc


def atomic_write(path: str | os.PathLike, write_fn: Callable[[BinaryIO], None]) -> None:
    """Call write_fn(binary_file) and atomically replace `path` with what it wrote (see atomic_output)."""
    with atomic_output(path) as out:
        write_fn(out)


def clean_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the hidden temporary files that killed saves of path left beside it; returns them.

    Only regular files named in our own pattern (`.NAME.xxxxxxxx.tmp`) are considered. A save in
    progress holds a lock on its temporary file and the lock dies with its process, so a file
    nobody holds is garbage; where file locks are missing, only files untouched for
    STALE_UNLOCKED_AFTER_S count. Errors are ignored: cleaning never fails a save.
    """
    target = Path(os.path.realpath(os.fspath(path)))
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.[0-9a-f]{{8}}\.tmp$")
    removed: list[Path] = []
    try:
        candidates = [p for p in target.parent.iterdir() if pattern.match(p.name)]
    except OSError:
        return removed
    for temp in candidates:
        try:
            info = temp.lstat()
            if not stat.S_ISREG(info.st_mode):
                continue
            if fcntl is None:
                if time.time() - info.st_mtime < STALE_UNLOCKED_AFTER_S:
                    continue
            else:
                with open(temp, "rb") as f:
                    try:
                        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # a live process is still writing it
                    temp.unlink()
                    removed.append(temp)
                continue
            temp.unlink()
            removed.append(temp)
        except OSError:
            continue
    return removed


def _create_held_temp(target: Path, shown: str | os.PathLike) -> tuple[Path, int]:
    """A new temporary file beside target, locked for as long as this process lives, so that
    clean_stale_temps can tell a save in progress from one whose process was killed."""
    for _ in range(10):
        temp, fd = _create_temp(target, shown)
        if fcntl is None:
            return temp, fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # another save's sweep holds it this instant and will remove it
            continue
        except OSError:
            return temp, fd  # a file system without locks: the save itself still works
        try:
            # another save's sweep may have taken the file in the instant before we locked it
            if os.stat(temp).st_ino == os.fstat(fd).st_ino:
                return temp, fd
        except OSError:
            pass
        os.close(fd)
    raise FileError(f"{os.fspath(shown)}: cannot write: its temporary file kept disappearing")


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
