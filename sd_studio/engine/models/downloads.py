"""Downloading a catalog entry into the models folder: progress in bytes, resume after a cut, checksums, cancel.

huggingface_hub finds the files (its URLs, headers, token, errors and HTTP session), but its own downloads
start again from zero after a cut (2.x writes each attempt to a fresh temporary file and deletes it on
failure). A model of several gigabytes on a laptop's connection needs better: each file is written to a
hidden partial file beside its destination, named after the file's checksum, and a later call continues it
with an HTTP Range request. Bytes are hashed as they arrive (a resumed file's earlier bytes are read back
once), and only a file that matches its sha256 (the catalog's, or the hub's LFS hash, or for a small
config the hub's git hash) is renamed into place, so a file at its final name is always whole. Cancel is
checked between chunks and leaves the partial file to continue later.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from sd_studio.document.io.atomic import _fsync_folder  # the rename made durable, as atomic saves do
from sd_studio.engine.models.catalog import CatalogEntry, CatalogFile, format_size
from sd_studio.engine.models.hub import hub_endpoint, hub_error_sentence, hub_file_url, hub_offline, offline_sentence
from sd_studio.errors import Cancelled, ModelError

try:
    import fcntl
except ImportError:  # Windows: two downloads of one file at once are not prevented there
    fcntl = None  # type: ignore[assignment]

REPORT_BYTES = 1 << 20  # progress is reported once per MiB (cancel is checked for every piece that arrives)
READ_BYTES = 8 << 20  # a resumed file's earlier bytes are re-hashed in blocks of this size
READ_TIMEOUT_S = 30.0  # a connection silent this long counts as cut
RETRIES = 3  # cuts and server errors tolerated within one call before it stops (a later call resumes)
DISK_MARGIN_BYTES = 64 << 20  # left free beyond the download, so the disk is not filled to the last byte
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class RemoteFile:
    """Where the hub serves a file now and what it says of it: URL, size, ETag (sha256 for LFS files, else git sha1)."""

    url: str
    size: int
    etag: str
    on_hub: bool  # the URL is on the hub itself (the login token may be sent), not a CDN


def download_entry(entry: CatalogEntry, models_folder: Path, progress=None, cancel=None) -> Path:
    """Download every file of a catalog entry into models_folder and return where it is installed.

    progress gets Progress("downloading", bytes done, bytes in all, message) every MiB (and "checking" while a
    resumed file's earlier bytes are re-hashed); cancel() is polled for every piece that arrives and stops
    with Cancelled, leaving partial files that the next call continues. Files already in place are
    kept. Every failure is a ModelError (or Cancelled) with one sentence; nothing is left at a final name
    unless it passed its checksum.
    """
    from sd_studio.engine.request import Progress

    models_folder = Path(models_folder).expanduser()
    missing = [f for f in entry.files if not entry.file_destination(models_folder, f).is_file()]
    if not missing:
        return entry.destination(models_folder)
    if hub_offline():
        raise ModelError(offline_sentence(entry.repo))
    _check_cancel(cancel, entry)
    remotes = {f.path: remote_file(entry, f) for f in missing}
    done = sum(_installed_size(entry, f, models_folder) for f in entry.files if f not in missing)
    total = done + sum(remotes[f.path].size for f in missing)
    partials = {f.path: _partial_path(entry.file_destination(models_folder, f), _expected(f, remotes[f.path]))
                for f in missing}
    _check_disk_space(entry, models_folder, sum(remotes[f.path].size - _size_of(partials[f.path]) for f in missing))

    def report(phase: str, now: int) -> None:
        if progress is not None:
            verb = "Checking" if phase == "checking" else "Downloading"
            message = f"{verb} {entry.name}: {format_size(now)} of {format_size(total)}"
            progress(Progress(phase, now, total, message=message))

    for f in missing:
        done = _fetch(entry, f, entry.file_destination(models_folder, f), remotes[f.path], partials[f.path],
                      done, report, cancel)
    return entry.destination(models_folder)


def remote_file(entry: CatalogEntry, file: CatalogFile) -> RemoteFile:
    """Ask the hub where file is served and what it is (HEAD on /resolve/); ModelError when it differs from the
    catalog (size or sha256) or the hub cannot be asked."""
    from huggingface_hub import get_hf_file_metadata

    endpoint = hub_endpoint()
    url = hub_file_url(entry.repo, file.path, entry.revision)
    try:
        meta = get_hf_file_metadata(url, timeout=READ_TIMEOUT_S, endpoint=endpoint)
    except Exception as exc:  # noqa: BLE001 - every hub failure becomes one sentence
        raise ModelError(hub_error_sentence(exc, entry.repo, file.path)) from None
    etag = (meta.etag or "").lower()
    if meta.size is None or not (_SHA256.match(etag) or _GIT_SHA1.match(etag)):
        raise ModelError(
            f"The server at {endpoint} did not describe {file.path} of {entry.repo} the way the Hugging Face hub does "
            "(no size or checksum), so it is not downloaded."
        )
    if file.size is not None and meta.size != file.size or file.sha256 and _SHA256.match(etag) and etag != file.sha256:
        raise ModelError(
            f"{file.path} of {entry.repo} on the hub is not the file SD Studio lists (its size or checksum changed); "
            "nothing was downloaded."
        )
    location = urljoin(url, meta.location or url)
    return RemoteFile(url=location, size=meta.size, etag=etag, on_hub=_origin(location) == _origin(endpoint))


def partial_bytes(entry: CatalogEntry, models_folder: Path) -> int:
    """Bytes of the entry already on disk: installed files and the partial files a cut or cancel left."""
    models_folder = Path(models_folder).expanduser()
    total = 0
    for f in entry.files:
        dest = entry.file_destination(models_folder, f)
        if dest.is_file():
            total += _size_of(dest)
        elif dest.parent.is_dir():
            total += max((_size_of(p) for p in dest.parent.glob(f".{glob.escape(dest.name)}.*.part")), default=0)
    return total


def format_duration(seconds: float) -> str:
    """A time left as a short phrase: 40 s, 5 min, 1 h 20 min."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class TransferRate:
    """The speed of a transfer and the time it has left, from (time, bytes done) samples over a sliding window,
    so a stall or a faster link shows within seconds. Times are seconds on any monotonic clock."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, when: float, done: int) -> None:
        """Record that `done` bytes were done at time `when` (a resumed transfer may start above 0)."""
        if self._samples and done < self._samples[-1][1]:
            self._samples.clear()  # a restart from zero: the old samples say nothing about now
        self._samples.append((when, done))
        while len(self._samples) > 2 and when - self._samples[1][0] >= self.window_s:
            self._samples.popleft()

    @property
    def speed(self) -> float | None:
        """Bytes per second over the window, or None until there are two samples apart in time."""
        if len(self._samples) < 2:
            return None
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else None

    def time_left(self, total: int) -> float | None:
        """Seconds until `total` bytes at the current speed, or None while the speed is unknown or zero."""
        speed = self.speed
        if not speed or not self._samples:
            return None
        return max(0.0, (total - self._samples[-1][1]) / speed)


# -- one file -------------------------------------------------------------------------------------


class _Digest:
    """The checksum a file is held to: the catalog's or the hub's sha256, else the hub's git blob sha1."""

    def __init__(self, expected: str, size: int) -> None:
        self.expected = expected
        self.size = size
        self.reset()

    def reset(self) -> None:
        if _SHA256.match(self.expected):
            self.hash = hashlib.sha256()
        else:  # git's blob id: sha1 over "blob <size>\0" and the content
            self.hash = hashlib.sha1(b"blob %d\0" % self.size, usedforsecurity=False)

    def update(self, data: bytes) -> None:
        self.hash.update(data)

    def matches(self) -> bool:
        return self.hash.hexdigest() == self.expected


def _fetch(entry, file, dest: Path, remote: RemoteFile, partial: Path, done: int, report, cancel) -> int:
    """Bring one file to dest through its partial file; returns the entry's bytes done after it."""
    expected = _expected(file, remote)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{glob.escape(dest.name)}.*.part"):
        if stale != partial:  # a cut download of another version of the file: it cannot be continued
            stale.unlink(missing_ok=True)
    digest = _Digest(expected, remote.size)
    try:
        out = partial.open("ab")
    except OSError as exc:
        raise ModelError(f"{dest.parent} cannot be written to ({exc.strerror or exc}).") from None
    with out:
        _lock(out, entry)
        have = out.seek(0, os.SEEK_END)
        if have > remote.size:  # not a prefix of this file
            out.truncate(0)
            have = 0
        if have:
            _hash_existing(partial, have, digest, lambda n: report("checking", done + n), cancel, entry)
        report("downloading", done + have)
        attempts, refreshed = 0, False
        while have < remote.size:
            _check_cancel(cancel, entry)
            before = have
            try:
                have = _stream(remote, out, have, digest, lambda n: report("downloading", done + n), cancel, entry)
            except (Cancelled, ModelError):
                raise
            except Exception as exc:  # noqa: BLE001 - sorted below: cut, server error, expired link, or final
                have = out.seek(0, os.SEEK_END)  # what arrived before the failure is kept (and already hashed)
                if have > before:
                    attempts = 0  # a cut after progress is a new cut, not the same failure again
                status = getattr(getattr(exc, "response", None), "status_code", None)
                if status == 403 and not remote.on_hub and not refreshed:
                    remote, refreshed = remote_file(entry, file), True  # the CDN's signed link expired: ask again
                    continue
                transient = status is None and _is_transport_error(exc) or status in (408, 429, 500, 502, 503, 504)
                attempts += 1
                if not transient or attempts > RETRIES:
                    out.flush()
                    kept = f" ({format_size(have)} of {format_size(remote.size)} kept)" if have else ""
                    raise ModelError(
                        f"{hub_error_sentence(exc, entry.repo, file.path)} Run the download again to continue where it "
                        f"stopped{kept}."
                    ) from None
                _pause(attempts, cancel, entry)
        try:
            out.flush()
            os.fsync(out.fileno())
        except OSError as exc:
            raise ModelError(f"{partial.name} could not be written ({exc.strerror or exc}).") from None
    if not digest.matches():
        partial.unlink(missing_ok=True)
        raise ModelError(
            f"{file.path} of {entry.repo} arrived damaged (its checksum does not match), so it was deleted; "
            "download it again."
        )
    try:
        os.replace(partial, dest)
    except OSError as exc:
        raise ModelError(f"{dest} could not be put in place ({exc.strerror or exc}).") from None
    _fsync_folder(dest.parent)
    return done + remote.size


def _stream(remote: RemoteFile, out, have: int, digest: _Digest, report, cancel, entry) -> int:
    """One GET from byte `have` on, appended to out and hashed; returns the bytes the partial file holds after it.
    Raises the transport's error or HfHubHTTPError when the connection or the server fails."""
    from huggingface_hub import get_session, hf_raise_for_status
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers()
    if not remote.on_hub:
        headers.pop("authorization", None)  # the login token stays with the hub, never goes to a CDN
    headers["Accept-Encoding"] = "identity"  # byte ranges of the file itself, not of a compressed copy
    if have:
        headers["Range"] = f"bytes={have}-"
    with get_session().stream("GET", remote.url, headers=headers, timeout=READ_TIMEOUT_S,
                              follow_redirects=True) as response:
        hf_raise_for_status(response)
        if have and not _continues_at(response, have):
            out.truncate(0)  # the server sent the whole file (it ignored Range): start the file again
            digest.reset()
            have = 0
        reported = have
        # the pieces as they arrive (not re-chunked), so a cut loses nothing that reached us
        for piece in response.iter_bytes():
            _check_cancel(cancel, entry)
            if have + len(piece) > remote.size:
                out.truncate(0)
                raise ModelError(
                    f"The server sent more of {Path(urlsplit(remote.url).path).name} than the hub said it holds; "
                    "the partial download was discarded, try again."
                )
            out.write(piece)
            digest.update(piece)
            have += len(piece)
            if have - reported >= REPORT_BYTES or have == remote.size:
                report(have)
                reported = have
    if have < remote.size:
        out.flush()
        raise ConnectionError("the server closed the connection before the end of the file")
    return have


def _continues_at(response, have: int) -> bool:
    """True when a response to a Range request is the file from byte `have` on (206 with a matching Content-Range)."""
    if response.status_code != 206:
        return False
    match = re.match(r"bytes\s+(\d+)-", response.headers.get("Content-Range", ""))
    return bool(match) and int(match.group(1)) == have


def _hash_existing(partial: Path, have: int, digest: _Digest, report, cancel, entry) -> None:
    with partial.open("rb") as f:
        read = 0
        while read < have:
            _check_cancel(cancel, entry)
            block = f.read(min(READ_BYTES, have - read))
            if not block:
                break
            digest.update(block)
            read += len(block)
            report(read)


def _expected(file: CatalogFile, remote: RemoteFile) -> str:
    """The checksum the file must match: the catalog's sha256, else the hub's ETag (an LFS sha256 or a git sha1)."""
    return file.sha256 or remote.etag


def _partial_path(dest: Path, expected: str) -> Path:
    # hidden, and named after the checksum: a later call continues only a partial of the very same file
    return dest.with_name(f".{dest.name}.{expected[:16]}.part")


def _installed_size(entry: CatalogEntry, file: CatalogFile, models_folder: Path) -> int:
    return _size_of(entry.file_destination(models_folder, file))


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _check_disk_space(entry: CatalogEntry, models_folder: Path, needed: int) -> None:
    folder = models_folder
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent  # the models folder may not exist yet: ask the disk it will be on
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if needed + DISK_MARGIN_BYTES > free:
        raise ModelError(
            f"{entry.name} needs {format_size(needed)} more on the disk of {models_folder}, which has "
            f"{format_size(free)} free; make room and try again."
        )


def _check_cancel(cancel: Callable[[], bool] | None, entry: CatalogEntry) -> None:
    if cancel is not None and cancel():
        raise Cancelled(f"The download of {entry.name} was cancelled; the next download continues where it stopped.")


def _pause(attempt: int, cancel, entry) -> None:
    """Wait a little before retrying (longer after each failure), still answering cancel."""
    deadline = time.monotonic() + min(0.5 * 2 ** (attempt - 1), 4.0)
    while time.monotonic() < deadline:
        _check_cancel(cancel, entry)
        time.sleep(0.05)


def _is_transport_error(exc: BaseException) -> bool:
    """A cut or unreachable connection (httpx's TransportError, whatever the HTTP package huggingface_hub uses)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"TransportError", "NetworkError", "TimeoutException", "RemoteProtocolError"}) or isinstance(
        exc, (ConnectionError, TimeoutError)
    )


def _lock(out, entry: CatalogEntry) -> None:
    if fcntl is None:
        return
    try:
        fcntl.flock(out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise ModelError(f"{entry.name} is already being downloaded (by another window or command).") from None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port
