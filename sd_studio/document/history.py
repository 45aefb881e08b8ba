"""History: the undo stack of commands, kept within a memory budget."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from sd_studio.document.commands import Command
    from sd_studio.document.document import Document

DEFAULT_BUDGET = 1 << 30
"""Bytes of pixel data the history may hold before it forgets its oldest entries (1 GiB)."""


class History:
    """An undo/redo stack of commands.

    Entries before `index` are done, entries from `index` on are undone (and redoable). Pushing a
    command drops the redoable tail. The pixel data the commands keep is counted once per array
    (commands share tiles) and the oldest entries are dropped while the total exceeds the budget;
    the newest entry is always kept, however large.
    """

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET) -> None:
        self.budget_bytes = int(budget_bytes)
        self._entries: list[Command] = []
        self._index = 0
        self._clean: int | None = 0
        self._arrays: dict[int, list] = {}  # id(array) -> [nbytes, refcount, array]
        # What each entry retained, so release matches retain even if the command's arrays()
        # changes meanwhile (AddLayer reports its layer's current tiles, which later strokes replace).
        self._held: dict[int, list] = {}
        self.on_change: Callable[[], None] | None = None

    # -- state -------------------------------------------------------------------------------
    @property
    def index(self) -> int:
        """How many entries are done."""
        return self._index

    @property
    def names(self) -> list[str]:
        """The entries' names, oldest first."""
        return [c.name for c in self._entries]

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def can_undo(self) -> bool:
        """True when there is a done entry to undo."""
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        """True when there is an undone entry to redo."""
        return self._index < len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes of pixel data held by all entries, each shared array counted once."""
        return sum(v[0] for v in self._arrays.values())

    @property
    def is_clean(self) -> bool:
        """True when the document is as it was at the last mark_clean (e.g. the last save)."""
        return self._clean == self._index

    def mark_clean(self) -> None:
        """Remember the current entry as the saved state."""
        self._clean = self._index
        self._changed()

    def mark_unsaved(self) -> None:
        """Count the document as modified at every entry until the next mark_clean (a document
        restored after a crash is saved nowhere yet)."""
        self._clean = None
        self._changed()

    # -- changes -----------------------------------------------------------------------------
    def push(self, command: "Command", document: "Document", done: bool = False) -> None:
        """Add a command (running it first unless done) and drop the redoable entries."""
        if not done:
            command.redo(document)
        for dropped in self._entries[self._index:]:
            self._release(dropped)
        if self._clean is not None and self._clean > self._index:
            self._clean = None
        del self._entries[self._index:]
        self._entries.append(command)
        self._index += 1
        self._retain(command)
        self._enforce_budget()
        self._changed()

    def undo(self, document: "Document") -> "Command | None":
        """Undo the newest done entry; returns it, or None when there is nothing to undo."""
        if not self.can_undo:
            return None
        self._index -= 1
        command = self._entries[self._index]
        command.undo(document)
        self._changed()
        return command

    def redo(self, document: "Document") -> "Command | None":
        """Redo the oldest undone entry; returns it, or None when there is nothing to redo."""
        if not self.can_redo:
            return None
        command = self._entries[self._index]
        command.redo(document)
        self._index += 1
        self._changed()
        return command

    def jump_to(self, index: int, document: "Document") -> None:
        """Undo or redo until exactly `index` entries are done."""
        index = max(0, min(index, len(self._entries)))
        while self._index > index:
            self.undo(document)
        while self._index < index:
            self.redo(document)

    def clear(self) -> None:
        """Forget every entry (the document stays as it is)."""
        self._entries.clear()
        self._arrays.clear()
        self._held.clear()
        self._index = 0
        self._clean = None
        self._changed()

    # -- memory ------------------------------------------------------------------------------
    def _retain(self, command: "Command") -> None:
        arrays = self._held[id(command)] = list(command.arrays())
        for array in arrays:
            entry = self._arrays.get(id(array))
            if entry is None:
                self._arrays[id(array)] = [array.nbytes, 1, array]
            else:
                entry[1] += 1

    def _release(self, command: "Command") -> None:
        for array in self._held.pop(id(command), ()):
            entry = self._arrays.get(id(array))
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    del self._arrays[id(array)]

    def _enforce_budget(self) -> None:
        while len(self._entries) > 1 and self._index > 1 and self.nbytes > self.budget_bytes:
            oldest = self._entries.pop(0)
            self._release(oldest)
            self._index -= 1
            if self._clean is not None:
                self._clean = self._clean - 1 if self._clean > 0 else None

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()
