"""Crash recovery: autosaved copies of modified documents, kept until a clean exit, offered after a crash.

A recovery copy is two files in the recovery folder: `<doc_id>.ora` (the document, written
atomically) and `<doc_id>.json` (where it came from, when, and the id of the process that wrote
it; written after the .ora, so its presence means the copy is complete). A copy whose process is
no longer running is what a crash left behind; `RecoveryStore.pending()` lists those.

Use from the editor (all calls on the main thread, none of which waits for a save;
nothing here imports Qt):

    saver = Autosaver(doc, RecoveryStore(), source_path=path, interval_s=60)
    saver.start()
    QTimer every ~1 s   -> saver.tick()          # saves when modified and the interval has passed
    generation applied  -> saver.request_save()  # saves now
    after Save As       -> saver.source_path = new_path
    clean close of doc  -> saver.close()          # removes the copy (on the autosave thread)
    application exit    -> saver.join()           # the only wait on the main thread
    at start-up         -> for e in RecoveryStore().pending(): offer e; restore(e) or discard(e)
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sd_studio.document.io.atomic import atomic_write
from sd_studio.document.io.ora import read_ora, write_ora
from sd_studio.errors import FileError
from sd_studio.processes import process_alive, process_token

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class RecoveryEntry:
    """A recovery copy on disk: the document's id, its files, and what the sidecar says of it."""

    doc_id: str
    ora_path: Path
    info_path: Path
    source_path: Path | None
    saved_at: float
    pid: int

    @property
    def title(self) -> str:
        """The name to show the user: the original file's name, or "Untitled"."""
        return self.source_path.name if self.source_path else "Untitled"


def snapshot_document(doc):
    """A detached copy of doc's layers, mask and metadata that later edits do not change.

    It costs a dict copy per layer (tiles are read-only and shared), so it is cheap enough to
    take on the main thread; the copy has no history and may be read on another thread.
    """
    from sd_studio.document.document import Document
    from sd_studio.document.layer import Layer

    copy = Document(doc.size.width, doc.size.height, history_budget=0)
    for layer in doc.layers:
        copy.layers.append(Layer(
            name=layer.name, surface=layer.surface.copy(), offset=layer.offset, opacity=layer.opacity,
            visible=layer.visible, locked=layer.locked, blend_mode=layer.blend_mode,
            metadata=dict(layer.metadata), id=layer.id,
        ))
    copy.mask.surface = doc.mask.surface.copy()
    copy.metadata = dict(getattr(doc, "metadata", {}))
    if doc.active is not None and doc.active in doc.layers:
        copy._active = copy.layers[doc.layers.index(doc.active)]
    return copy


class RecoveryStore:
    """The folder of recovery copies (default: `recovery` in the user's data folder)."""

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        if folder is None:
            from sd_studio.incidents import data_dir

            folder = data_dir() / "recovery"
        self.folder = Path(folder)

    def _paths(self, doc_id: str) -> tuple[Path, Path]:
        if not _ID.match(doc_id):
            raise ValueError(f"a recovery id is 1-64 letters, digits, '-' or '_', not {doc_id!r}")
        return self.folder / f"{doc_id}.ora", self.folder / f"{doc_id}.json"

    def save(self, doc, doc_id: str, source_path: str | os.PathLike | None = None,
             workers: int | None = None) -> RecoveryEntry:
        """Write (or replace) the recovery copy of doc, atomically; returns its entry.
        workers: encoding threads, as for write_ora."""
        ora, info = self._paths(doc_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        write_ora(ora, doc, workers=workers)
        record = {
            "doc_id": doc_id, "source_path": os.fspath(source_path) if source_path else None,
            "saved_at": time.time(), "pid": os.getpid(), "process": process_token(os.getpid()),
            "host": socket.gethostname(), "format": 1,
        }
        atomic_write(info, lambda f: f.write(json.dumps(record, indent=1).encode("utf-8")))
        return _entry(record, ora, info)

    def entries(self) -> list[RecoveryEntry]:
        """Every complete recovery copy in the folder, newest first, whoever wrote it."""
        out = []
        try:
            infos = sorted(self.folder.glob("*.json"))
        except OSError:
            return []
        for info in infos:
            record = _load(info)
            ora = info.with_suffix(".ora")
            if record is not None and ora.is_file():
                out.append((record, _entry(record, ora, info)))
        out.sort(key=lambda pair: pair[1].saved_at, reverse=True)
        return [entry for record, entry in out]

    def pending(self) -> list[RecoveryEntry]:
        """The copies left by processes on this machine that are no longer running (crashes)."""
        host = socket.gethostname()
        out = []
        for entry in self.entries():
            record = _load(entry.info_path) or {}
            if record.get("host", host) != host:
                continue  # another machine sharing the folder; its process may well be alive
            if not process_alive(entry.pid, record.get("process")):
                out.append(entry)
        return out

    def restore(self, entry: RecoveryEntry):
        """The document a recovery copy holds, counted as modified (it is saved nowhere yet);
        FileError when it cannot be read."""
        doc = read_ora(entry.ora_path)
        doc.history.mark_unsaved()
        return doc

    def discard(self, entry: RecoveryEntry) -> None:
        """Delete a recovery copy (after the user restored or declined it)."""
        self.remove(entry.doc_id)

    def remove(self, doc_id: str) -> None:
        """Delete the recovery copy of doc_id, if there is one (sidecar first: no half-copies)."""
        ora, info = self._paths(doc_id)
        for path in (info, ora):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def _entry(record: dict, ora: Path, info: Path) -> RecoveryEntry:
    source = record.get("source_path")
    return RecoveryEntry(
        doc_id=str(record.get("doc_id") or ora.stem), ora_path=ora, info_path=info,
        source_path=Path(source) if source else None,
        saved_at=float(record.get("saved_at") or 0.0), pid=int(record.get("pid") or 0),
    )


def _load(info: Path) -> dict | None:
    try:
        record = json.loads(info.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


class Autosaver:
    """Keeps a recovery copy of one document, written on a background thread.

    The main thread only takes snapshots (`snapshot_document`, a few milliseconds even for large
    documents) and sets flags; it never waits for the autosave thread. Encoding, writing and
    removing the copy happen on that thread: a newer snapshot replaces one still waiting, and a
    removal asked for during a save happens once that save is written. Errors never reach the
    caller: they are logged to the incident log, kept in `last_error` and passed to on_error
    (called on the autosave thread).
    """

    def __init__(self, doc, store: RecoveryStore | None = None, doc_id: str | None = None,
                 source_path: str | os.PathLike | None = None, interval_s: float = 60.0,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self.doc = doc
        self.store = store if store is not None else RecoveryStore()
        self.doc_id = doc_id or uuid.uuid4().hex
        self.source_path = source_path
        self.interval_s = float(interval_s)
        self.on_error = on_error
        self.last_error: BaseException | None = None
        self.saves = 0
        """How many recovery copies were written (tests and the status bar read it)."""
        self._changed = True
        self._has_copy = False  # main thread only: a copy exists or is on its way
        self._last_request = time.monotonic()
        self._pending = None
        self._remove = False  # delete the copy once the save being written (if any) is done
        self._busy = False
        self._closed = False
        self._worker = False  # the autosave thread is running and will look at the flags again
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        doc.events.history_changed.connect(self._on_history)

    def _on_history(self) -> None:
        self._changed = True

    def start(self) -> "Autosaver":
        """Start the autosave thread; returns self."""
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="autosave", daemon=True)
            with self._cond:
                self._worker = True
            self._thread.start()
        return self

    def tick(self) -> bool:
        """Call often from the main thread: saves when the document changed and the interval has
        passed, and has the copy removed once the document is saved (clean); True when it saved.
        It never waits for a save being written."""
        if not self.doc.is_modified:
            if self._has_copy:
                self._discard()
            return False
        if self._changed and time.monotonic() - self._last_request >= self.interval_s:
            self.request_save()
            return True
        return False

    def request_save(self) -> None:
        """Snapshot the document now (main thread, cheap) and have the autosave thread write it."""
        if self._closed:
            return
        snapshot = snapshot_document(self.doc)
        self._changed = False
        self._last_request = time.monotonic()
        self._has_copy = True
        with self._cond:
            self._pending = (snapshot, self.source_path)
            self._cond.notify_all()
        if self._thread is None:
            self.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every requested save and removal is done; False when timeout passed first.
        Not for the main thread of a GUI (tests, scripts, application exit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._remove or self._busy:
                if not self._worker:
                    break  # nobody left to do the work
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, discard: bool = True) -> None:
        """Stop taking snapshots and let the autosave thread finish on its own; with discard (a
        clean close) the copy is removed, after any save being written. Returns at once: call
        join() at application exit so the thread's last work is done before the process ends."""
        if not self._closed:
            self.doc.events.history_changed.disconnect(self._on_history)
        with self._cond:
            self._closed = True
            if discard:
                self._pending = None
            self._cond.notify_all()
        if discard:
            self._discard()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the autosave thread to end after close(); False when timeout passed first.
        Only at application exit: the main thread waits here."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _discard(self) -> None:
        self._has_copy = False
        with self._cond:
            self._pending = None  # a snapshot of the document before it was saved is stale
            if self._worker:
                self._remove = True
                self._cond.notify_all()
                return
        self._remove_copy()  # no thread (never started, or gone): nothing to wait for

    def _remove_copy(self) -> None:
        try:
            self.store.remove(self.doc_id)
        except OSError as exc:
            self._failed(exc)

    def _run(self) -> None:
        try:  # Linux: yield the CPU to the UI thread; the encoding threads inherit this
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        while True:
            with self._cond:
                while self._pending is None and not self._remove and not self._closed:
                    self._cond.wait()
                if self._remove:
                    # a removal asked for after any waiting snapshot was taken (discard drops those)
                    self._remove = False
                    job = None
                elif self._pending is not None:
                    job = self._pending
                    self._pending = None
                else:
                    self._worker = False  # under the lock: a later _discard removes the copy itself
                    return
                self._busy = True
            try:
                if job is None:
                    self._remove_copy()
                else:
                    snapshot, source = job
                    # half the cores at most, so the UI thread always finds one free
                    self.store.save(snapshot, self.doc_id, source, workers=max(1, (os.cpu_count() or 2) // 2))
                    self.saves += 1
                    self.last_error = None
            except Exception as exc:  # noqa: BLE001 - an autosave failure must not take the app down
                self._failed(exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _failed(self, exc: BaseException) -> None:
        self.last_error = exc
        if not isinstance(exc, FileError):
            from sd_studio.incidents import log_exception

            log_exception(exc, action="autosave")
        if self.on_error is not None:
            try:
                self.on_error(exc)
            except Exception:  # noqa: BLE001
                pass
