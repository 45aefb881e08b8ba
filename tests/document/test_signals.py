"""Signal: connect, disconnect, emit, argument trimming, weak bound methods, and Qt loaded."""

import gc
import subprocess
import sys
import textwrap

from sd_studio.document.signals import Signal


class Events:
    changed = Signal(object, str)
    plain = Signal()


class Receiver:
    def __init__(self):
        self.got = []

    def on_changed(self, value, name):
        self.got.append((value, name))

    def on_value(self, value):
        self.got.append(value)


def test_each_instance_has_its_own_slots():
    a, b = Events(), Events()
    seen = []
    a.changed.connect(lambda v, n: seen.append((v, n)))
    b.changed.emit(1, "b")
    a.changed.emit(2, "a")
    assert seen == [(2, "a")] and a.changed is a.changed and isinstance(Events.changed, Signal)


def test_slots_taking_fewer_arguments_get_the_first_ones():
    e, r = Events(), Receiver()
    e.changed.connect(r.on_value)
    e.changed.connect(r.on_changed)
    calls = []
    e.changed.connect(lambda: calls.append(1))
    e.changed.connect(calls.append)  # a builtin method taking one argument
    e.changed.emit(5, "x")
    assert r.got == [5, (5, "x")] and calls == [1, 5]


def test_disconnect_one_or_all_and_missing_is_ignored():
    e, r = Events(), Receiver()
    e.changed.connect(r.on_changed)
    e.changed.connect(r.on_value)
    e.changed.disconnect(r.on_changed)
    e.changed.disconnect(Receiver().on_value)  # never connected
    e.changed.emit(1, "a")
    assert r.got == [1]
    e.changed.disconnect()
    e.changed.emit(2, "b")
    assert r.got == [1] and len(e.changed) == 0


def test_bound_methods_are_held_weakly():
    e, r = Events(), Receiver()
    e.changed.connect(r.on_changed)
    del r
    gc.collect()
    e.changed.emit(1, "a")
    assert len(e.changed) == 0


def test_a_slot_may_disconnect_itself_while_called():
    e = Events()
    calls = []

    def once():
        calls.append("once")
        e.plain.disconnect(once)

    e.plain.connect(once)
    e.plain.connect(lambda: calls.append("other"))
    e.plain.emit()
    e.plain.emit()
    assert calls == ["once", "other", "other"]


def test_many_events_with_qt_loaded_do_not_crash_the_process():
    # Compiled psygnal under shiboken6 6.12 lost a reference to None per emit and aborted here.
    code = textwrap.dedent("""
        import shiboken6
        from sd_studio.document.document import Document
        from sd_studio.document.geometry import Bounds
        doc = Document.new(8, 8)
        doc.events.pixels_changed.connect(lambda b: None)
        for _ in range(200_000):
            doc.events.pixels_changed.emit(Bounds(0, 0, 1, 1))
            doc.events.history_changed.emit()
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
