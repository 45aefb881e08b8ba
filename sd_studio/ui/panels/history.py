"""History panel: the list of commands; clicking one undoes or redoes up to it."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtGui import QBrush, QPalette
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from sd_studio.document.document import Document


class HistoryPanel(QWidget):
    """Row 0 is the document as it was opened or made ("Original"); row n is the state after the n-th command.
    Undone rows are dimmed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc: Document | None = None
        self._updating = False
        self.list = QListWidget()
        self.list.setObjectName("historyList")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list)
        self.list.currentRowChanged.connect(self._on_row)

    def set_document(self, doc: Document) -> None:
        """Show another document's history."""
        if self.doc is not None:
            self.doc.events.history_changed.disconnect(self.refresh)
        self.doc = doc
        doc.events.history_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the list from the history."""
        history = self.doc.history
        self._updating = True
        self.list.clear()
        dim = QBrush(self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text))
        for row, name in enumerate(["Original", *history.names]):  # a new document is not "opened"
            item = QListWidgetItem(name)
            if row > history.index:
                item.setForeground(dim)
            self.list.addItem(item)
        self.list.setCurrentRow(history.index)
        self.list.scrollToItem(self.list.currentItem())
        self._updating = False

    def _on_row(self, row: int) -> None:
        if not self._updating and row >= 0 and row != self.doc.history.index:
            # Jump after this signal returns: the jump rebuilds the very list that emitted it.
            QTimer.singleShot(0, lambda: self.doc.history.jump_to(row, self.doc))
