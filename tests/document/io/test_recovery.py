"""Recovery copies: the store, the autosaver, and a process killed while editing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from sd_studio.document.commands import SetLayerProperty, TilesCommand
from sd_studio.document.document import Document
from sd_studio.document.io.recovery import Autosaver, RecoveryStore, snapshot_document
from sd_studio.document.layer import BlendMode

ROOT = Path(__file__).resolve().parents[3]

BUILD = textwrap.dedent("""
    import numpy as np
    from sd_studio.document.commands import SetLayerProperty, TilesCommand
    from sd_studio.document.document import Document
    from sd_studio.document.layer import BlendMode

    def build():
        doc = Document.new(200, 150, background=(20, 40, 60, 255))
        rng = np.random.default_rng(11)
        layer = doc.add_layer("Painted")
        doc.execute(TilesCommand.write("Paint", layer, layer.surface, 30, 20,
                                       rng.integers(0, 256, (70, 90, 4), dtype=np.uint8)))
        doc.execute(SetLayerProperty(layer, "blend_mode", BlendMode.SCREEN))
        doc.execute(SetLayerProperty(layer, "metadata", {"parameters": "a boat\\nSteps: 4, Seed: 3"}))
        doc.execute(TilesCommand.write("Mask", None, doc.mask.surface, 5, 5, np.full((9, 9), 255, np.uint8)))
        return doc
""")


def _build() -> Document:
    scope: dict = {}
    exec(BUILD, scope)  # the same document the child process builds
    return scope["build"]()


def _same(a: Document, b: Document) -> None:
    assert [x.properties() for x in a.layers] == [x.properties() for x in b.layers]
    assert all(x.surface.equals(y.surface) for x, y in zip(a.layers, b.layers))
    assert np.array_equal(a.mask.to_array(), b.mask.to_array())
    assert np.array_equal(a.composite(), b.composite())


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_store_saves_restores_and_discards(tmp_path):
    store = RecoveryStore(tmp_path / "rec")
    doc = _build()
    entry = store.save(doc, "doc1", "/photos/boat.ora")
    assert entry.ora_path.is_file() and entry.info_path.is_file()
    assert entry.title == "boat.ora" and entry.pid == os.getpid()
    assert [e.doc_id for e in store.entries()] == ["doc1"]
    assert store.pending() == []  # we are alive: not a crash
    _same(doc, store.restore(entry))
    store.discard(entry)
    assert store.entries() == [] and list((tmp_path / "rec").iterdir()) == []


def test_pending_lists_copies_of_dead_processes_only(tmp_path):
    store = RecoveryStore(tmp_path)
    doc = Document.new(8, 8)
    alive = store.save(doc, "mine")
    dead = store.save(doc, "crashed", "/a/b.ora")
    record = json.loads(dead.info_path.read_text())
    record["pid"] = _dead_pid()
    dead.info_path.write_text(json.dumps(record))
    # a live process that reuses a dead one's id is told apart by its start time
    reused = store.save(doc, "reused")
    record = json.loads(reused.info_path.read_text())
    record["pid"], record["process"] = os.getppid(), "0"
    reused.info_path.write_text(json.dumps(record))
    # half a copy (no sidecar yet) is not offered
    (tmp_path / "half.ora").write_bytes(alive.ora_path.read_bytes())
    pending = {e.doc_id for e in store.pending()}
    expected = {"crashed", "reused"} if sys.platform.startswith("linux") else {"crashed"}
    assert pending == expected


def test_ids_cannot_escape_the_folder(tmp_path):
    with pytest.raises(ValueError):
        RecoveryStore(tmp_path).save(Document.new(4, 4), "../evil")


def test_snapshot_is_detached_from_later_edits():
    doc = _build()
    before = doc.composite().copy()
    snap = snapshot_document(doc)
    layer = doc.layers[1]
    doc.execute(TilesCommand.write("More", layer, layer.surface, 0, 0, np.full((50, 50, 4), 255, np.uint8)))
    doc.execute(SetLayerProperty(layer, "name", "Renamed"))
    assert np.array_equal(snap.composite(), before)
    assert snap.layers[1].name == "Painted" and snap.active.name == "Painted"


def test_autosaver_writes_in_the_background_what_the_document_was(tmp_path):
    doc = _build()
    expected = snapshot_document(doc)
    saver = Autosaver(doc, RecoveryStore(tmp_path), doc_id="d", source_path=tmp_path / "x.ora").start()
    saver.request_save()
    layer = doc.layers[1]  # edits right after the request do not leak into the copy
    doc.execute(TilesCommand.write("Later", layer, layer.surface, 0, 0, np.zeros((40, 40, 4), np.uint8) + 9))
    assert saver.flush(timeout=60)
    assert saver.saves == 1 and saver.last_error is None
    _same(expected, saver.store.restore(saver.store.entries()[0]))
    saver.close()
    assert saver.join(timeout=60)
    assert saver.store.entries() == []  # a clean exit leaves nothing behind


def test_tick_saves_modified_documents_and_drops_the_copy_once_saved(tmp_path):
    doc = _build()
    saver = Autosaver(doc, RecoveryStore(tmp_path), doc_id="t", interval_s=0).start()
    assert saver.tick() is True
    assert saver.flush(timeout=60) and len(saver.store.entries()) == 1
    assert saver.tick() is False  # nothing changed since
    doc.history.mark_clean()  # the user saved
    saver.tick()
    assert saver.flush(timeout=60) and saver.store.entries() == []
    slow = Autosaver(doc, RecoveryStore(tmp_path / "slow"), interval_s=3600)
    doc.execute(SetLayerProperty(doc.layers[0], "opacity", 0.5))
    assert slow.tick() is False  # modified, but the interval has not passed
    saver.close()
    slow.close()


def test_close_without_discard_keeps_the_copy(tmp_path):
    doc = _build()
    saver = Autosaver(doc, RecoveryStore(tmp_path), doc_id="k")
    saver.request_save()
    saver.close(discard=False)
    assert saver.join(timeout=60)  # the waiting save is still written
    assert [e.doc_id for e in saver.store.entries()] == ["k"]


def test_a_failing_autosave_is_reported_not_raised(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    errors: list[BaseException] = []
    saver = Autosaver(_build(), RecoveryStore(blocker), on_error=errors.append).start()
    saver.request_save()
    assert saver.flush(timeout=60)
    assert saver.last_error is not None and errors == [saver.last_error]
    saver.close()


def test_autosave_thread_does_not_block_the_caller(tmp_path):
    doc = _build()
    store = RecoveryStore(tmp_path)
    entered, release = threading.Event(), threading.Event()
    real = store.save

    def slow_save(*args, **kwargs):
        entered.set()
        release.wait(30)
        return real(*args, **kwargs)

    store.save = slow_save  # type: ignore[method-assign]
    saver = Autosaver(doc, store).start()
    saver.request_save()
    assert entered.wait(30)
    saver.request_save()  # returns although the first save is still being written
    assert not saver.flush(timeout=0.05)
    release.set()
    assert saver.flush(timeout=60)
    saver.close()


class _SlowStore(RecoveryStore):
    """A real store whose saves wait for `release`: `entered` when a save begins, `written` when done."""

    def __init__(self, folder) -> None:
        super().__init__(folder)
        self.entered, self.release, self.written = threading.Event(), threading.Event(), threading.Event()

    def save(self, *args, **kwargs):
        """Wait for release (30 s at most, so a regression fails instead of hanging), then save."""
        self.entered.set()
        self.release.wait(30)
        try:
            return super().save(*args, **kwargs)
        finally:
            self.written.set()


def test_tick_does_not_wait_for_a_save_being_written(tmp_path):
    doc = _build()
    store = _SlowStore(tmp_path)
    saver = Autosaver(doc, store, doc_id="busy", interval_s=0).start()
    assert saver.tick() is True
    assert store.entered.wait(30)
    doc.history.mark_clean()  # Ctrl+S while the autosave is writing
    saver.tick()
    assert not store.written.is_set()  # tick returned while the save was still being written
    store.release.set()
    assert saver.flush(timeout=60)
    assert store.written.is_set() and store.entries() == []  # the copy written late is removed after all
    saver.tick()
    assert saver.flush(timeout=60) and store.entries() == []
    saver.close()
    assert saver.join(timeout=60)


def test_close_does_not_wait_and_the_thread_removes_the_copy(tmp_path):
    doc = _build()
    store = _SlowStore(tmp_path)
    saver = Autosaver(doc, store, doc_id="closing").start()
    saver.request_save()
    assert store.entered.wait(30)
    saver.close(discard=True)
    assert not store.written.is_set()  # close returned while the save was still being written
    saver.request_save()  # closed: ignored
    store.release.set()
    assert saver.join(timeout=60)
    assert store.written.is_set() and store.entries() == []


def test_a_modified_document_saved_again_after_a_discard_keeps_its_new_copy(tmp_path):
    doc = _build()
    store = _SlowStore(tmp_path)
    saver = Autosaver(doc, store, doc_id="again", interval_s=0).start()
    saver.request_save()
    assert store.entered.wait(30)
    doc.history.mark_clean()
    saver.tick()  # removal queued behind the running save
    doc.execute(SetLayerProperty(doc.layers[0], "opacity", 0.25))  # modified again
    assert saver.tick() is True  # a new snapshot, after the removal
    store.release.set()
    assert saver.flush(timeout=60)
    [entry] = store.entries()
    assert store.restore(entry).layers[0].opacity == 0.25
    saver.close()
    assert saver.join(timeout=60) and store.entries() == []


def test_a_process_killed_while_editing_leaves_a_copy_that_restores(tmp_path):
    folder = tmp_path / "recovery"
    script = BUILD + textwrap.dedent(f"""
        import os, signal
        from sd_studio.document.io.recovery import Autosaver, RecoveryStore
        doc = build()
        saver = Autosaver(doc, RecoveryStore({str(folder)!r}), doc_id="killed", source_path="/work/boat.ora")
        saver.request_save()
        assert saver.flush(timeout=120)
        print("saved", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert result.stdout.strip() == "saved"
    store = RecoveryStore(folder)
    pending = store.pending()
    assert [e.doc_id for e in pending] == ["killed"]
    assert pending[0].source_path == Path("/work/boat.ora")
    restored = store.restore(pending[0])
    _same(_build(), restored)
    assert restored.is_modified  # saved nowhere yet: closing it must ask
    assert restored.layers[1].blend_mode is BlendMode.SCREEN
    store.discard(pending[0])
    assert store.pending() == []
