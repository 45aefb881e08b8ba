"""Turning operating-system errors about a file into one sentence a user can act on."""

from __future__ import annotations

import errno
import os

from sd_studio.errors import FileError

_REASONS = {
    errno.ENOENT: "no such file or folder",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.ENOSPC: "the disk is full",
    errno.EROFS: "the disk is read-only",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EMFILE: "too many files are open",
    errno.EIO: "the disk reported an input/output error",
}


def os_reason(exc: OSError) -> str:
    """A short lower-case phrase saying why an OSError happened ("permission denied")."""
    reason = _REASONS.get(exc.errno or -1)
    if reason:
        return reason
    if exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return str(exc) or exc.__class__.__name__


def file_error(path: str | os.PathLike, exc: OSError, doing: str) -> FileError:
    """A FileError reading "PATH: cannot DOING: REASON" for an OSError met while doing something."""
    return FileError(f"{os.fspath(path)}: cannot {doing}: {os_reason(exc)}")
