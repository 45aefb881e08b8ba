"""Signal: a small pure-Python observer through which the document announces its changes.

Why not psygnal: its mypyc-compiled wheels (0.15.1 and 0.16.1, CPython 3.11) drop a reference
to None on every emit once shiboken6 6.12 (PySide6) is imported, so an editor that emits a few
thousand events aborts with "Fatal Python error: none_dealloc". This keeps the part of its API the
project uses (`connect`, `disconnect`, `emit`) with the same slot rules.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any, Callable


class Signal:
    """Declared as a class attribute; each instance of the class gets its own SignalInstance."""

    def __init__(self, *types: Any) -> None:
        self.types = types
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> "Signal | SignalInstance":
        if instance is None:
            return self
        signal = SignalInstance(self.name)
        instance.__dict__[self.name] = signal  # later lookups find it there, not here
        return signal


def _max_args(slot: Callable) -> int | None:
    """How many positional arguments slot accepts (None: any number)."""
    try:
        params = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        return None
    count = 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


class SignalInstance:
    """Slots connected to one signal of one object, called in connection order on `emit`.

    A slot may take fewer arguments than the signal sends (the extra ones are dropped). Bound
    methods are held weakly, so connecting a widget does not keep it alive; other callables are
    held strongly. A slot may connect or disconnect slots while being called.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._slots: list[tuple[Callable[[], Callable | None], Any, int | None]] = []

    def connect(self, slot: Callable) -> Callable:
        """Call slot on every emit from now on; returns slot (so it works as a decorator)."""
        if not callable(slot):
            raise TypeError("a slot must be callable")
        if inspect.ismethod(slot):
            ref: Callable[[], Callable | None] = weakref.WeakMethod(slot)
            key: Any = (id(slot.__self__), slot.__func__)
        else:
            ref = (lambda s: lambda: s)(slot)
            key = slot
        self._slots.append((ref, key, _max_args(slot)))
        return slot

    def disconnect(self, slot: Callable | None = None) -> None:
        """Stop calling slot (every slot when None); a slot that is not connected is ignored."""
        if slot is None:
            self._slots.clear()
            return
        key = (id(slot.__self__), slot.__func__) if inspect.ismethod(slot) else slot
        self._slots = [s for s in self._slots if s[1] != key]

    def emit(self, *args: Any) -> None:
        """Call every connected slot with args (as many of them as each slot takes)."""
        for entry in list(self._slots):
            slot = entry[0]()
            if slot is None:  # its object is gone
                self._slots = [s for s in self._slots if s is not entry]
                continue
            nargs = entry[2]
            slot(*(args if nargs is None else args[:nargs]))

    def __len__(self) -> int:
        return len(self._slots)
