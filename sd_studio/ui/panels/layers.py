"""Layers panel: the stack with thumbnails, and every layer operation as a document command."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QHBoxLayout, QListWidget, QListWidgetItem, QMenu, QSpinBox,
    QToolButton, QVBoxLayout, QWidget,
)

from sd_studio.document import commands as cmd
from sd_studio.document.document import Document
from sd_studio.document.layer import BlendMode, Layer
from sd_studio.ui.icons import icon as _icon
from sd_studio.ui.images import qimage_copy
from sd_studio.ui.panels.thumbnails import thumbnail

THUMB = 40
OPACITY_SETTLE_MS = 700
"""How long the opacity box rests before the change since it was first touched becomes one undo step."""
_CHECKER: QBrush | None = None


def _checker() -> QBrush:
    tile = QPixmap(8, 8)
    tile.fill(QColor(204, 204, 204))
    p = QPainter(tile)
    p.fillRect(0, 0, 4, 4, QColor(255, 255, 255))
    p.fillRect(4, 4, 4, 4, QColor(255, 255, 255))
    p.end()
    return QBrush(tile)


class _LayerList(QListWidget):
    """The stack, top layer first; a drop reorders through the panel (never by itself)."""

    dropped = Signal(int, int)  # from row, to row

    def dropEvent(self, event) -> None:  # noqa: N802
        source = self.currentRow()
        target_item = self.itemAt(event.position().toPoint())
        target = self.row(target_item) if target_item is not None else self.count() - 1
        event.setDropAction(Qt.DropAction.IgnoreAction)
        event.accept()
        if source >= 0 and target != source:
            self.dropped.emit(source, target)


class LayersPanel(QWidget):
    """Shows the document's layers and turns clicks into commands: add, delete, duplicate, rename,
    reorder, visibility, lock, opacity, blend mode, merge down, flatten."""

    use_settings_requested = Signal(object)  # the Layer whose generation parameters to load

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc: Document | None = None
        self._updating = False
        self._dirty_thumbs: set[int] = set()
        self._thumb_timer = QTimer(self, singleShot=True, interval=150, timeout=self._refresh_thumbnails)
        # An opacity change shows at once; a burst of them (arrows held, the wheel, typing) becomes one undo
        # step when the box rests or loses focus: the command is made at the first change and pushed, already
        # done, at the end (as a brush stroke is).
        self._opacity_edit: cmd.SetLayerProperty | None = None
        self._opacity_start = 1.0
        self._opacity_live = False
        self._opacity_timer = QTimer(self, singleShot=True, interval=OPACITY_SETTLE_MS, timeout=self.commit_opacity)

        self.blend = QComboBox(toolTip="Blend mode")
        for mode in BlendMode:
            self.blend.addItem(mode.label, mode)
        self.opacity = QSpinBox(suffix=" %", minimum=0, maximum=100, toolTip="Opacity")
        self.lock = QCheckBox("Lock", toolTip="Lock the layer against painting and moving")
        top = QHBoxLayout()
        top.addWidget(self.blend, 1)
        top.addWidget(self.opacity)
        top.addWidget(self.lock)

        self.list = _LayerList()
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.list.setObjectName("layerList")
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._on_context_menu)
        self.context_menu: QMenu | None = None  # the menu last opened on a layer (kept for tests)

        buttons = QHBoxLayout()
        self.buttons: dict[str, QToolButton] = {}
        for key, icon, tip in (
            ("add", "mdi6.plus", "New layer"),
            ("duplicate", "mdi6.content-copy", "Duplicate layer"),
            ("delete", "mdi6.delete-outline", "Delete layer"),
            ("up", "mdi6.arrow-up", "Move layer up"),
            ("down", "mdi6.arrow-down", "Move layer down"),
            ("merge", "mdi6.layers-triple-outline", "Merge down"),
            ("flatten", "mdi6.layers-outline", "Flatten image"),
            ("use_settings", "mdi6.tune-variant", "Use these settings (load the layer's generation parameters)"),
        ):
            b = QToolButton(toolTip=tip)
            b.setIcon(_icon(icon))
            b.setAutoRaise(True)
            b.setObjectName(f"layer_{key}")
            self.buttons[key] = b
            buttons.addWidget(b)
        buttons.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)

        self.buttons["add"].clicked.connect(self.add_layer)
        self.buttons["duplicate"].clicked.connect(self.duplicate_layer)
        self.buttons["delete"].clicked.connect(self.delete_layer)
        self.buttons["up"].clicked.connect(lambda: self.move_layer(+1))
        self.buttons["down"].clicked.connect(lambda: self.move_layer(-1))
        self.buttons["merge"].clicked.connect(self.merge_down)
        self.buttons["flatten"].clicked.connect(self.flatten)
        self.buttons["use_settings"].clicked.connect(lambda: self.doc and self.doc.active and self.use_settings_requested.emit(self.doc.active))
        self.list.currentRowChanged.connect(self._on_row)
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.dropped.connect(self._on_drop)
        self.blend.activated.connect(lambda _i: self._set("blend_mode", self.blend.currentData()))
        self.opacity.valueChanged.connect(self._on_opacity)
        self.opacity.editingFinished.connect(self.commit_opacity)
        self.lock.toggled.connect(lambda on: self._set("locked", bool(on)))

    # -- document ----------------------------------------------------------------------------
    def set_document(self, doc: Document) -> None:
        """Show another document's layers."""
        self.commit_opacity()
        if self.doc is not None:
            ev = self.doc.events
            ev.history_changed.disconnect(self._on_history)
            ev.layers_changed.disconnect(self.rebuild)
            ev.active_changed.disconnect(self._on_active)
            ev.layer_property_changed.disconnect(self._on_property)
            ev.layer_pixels_changed.disconnect(self._on_layer_pixels)
        self.doc = doc
        ev = doc.events
        ev.layers_changed.connect(self.rebuild)
        ev.active_changed.connect(self._on_active)
        ev.layer_property_changed.connect(self._on_property)
        ev.layer_pixels_changed.connect(self._on_layer_pixels)
        ev.history_changed.connect(self._on_history)
        self.rebuild()

    def layer_at(self, row: int) -> Layer:
        """The layer shown in a row (row 0 is the top of the stack)."""
        return self.doc.layers[len(self.doc.layers) - 1 - row]

    def row_of(self, layer: Layer) -> int:
        """The row showing a layer."""
        return len(self.doc.layers) - 1 - self.doc.layers.index(layer)

    def rebuild(self) -> None:
        """Rebuild the list from the document's stack."""
        self._updating = True
        self.list.clear()
        for layer in reversed(self.doc.layers):
            item = QListWidgetItem(layer.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsDragEnabled)
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsDropEnabled)
            item.setCheckState(Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked)
            item.setIcon(self._thumbnail(layer))
            item.setToolTip(layer.metadata.get("parameters", layer.name))
            item.setData(Qt.ItemDataRole.UserRole, layer.id)
            self.list.addItem(item)
        self._updating = False
        self._on_active(self.doc.active)

    def _thumbnail(self, layer: Layer) -> QIcon:
        global _CHECKER
        if _CHECKER is None:
            _CHECKER = _checker()  # needs a QGuiApplication, so not at import
        pixels = thumbnail(layer, self.doc.size, THUMB)
        pixmap = QPixmap(THUMB, THUMB)
        pixmap.fill(Qt.GlobalColor.transparent)
        p = QPainter(pixmap)
        x, y = (THUMB - pixels.shape[1]) // 2, (THUMB - pixels.shape[0]) // 2
        p.fillRect(x, y, pixels.shape[1], pixels.shape[0], _CHECKER)
        p.drawImage(x, y, qimage_copy(pixels))
        p.end()
        return QIcon(pixmap)

    def _on_layer_pixels(self, layer: Layer, _bounds) -> None:
        self._dirty_thumbs.add(layer.id)
        self._thumb_timer.start()

    def _refresh_thumbnails(self) -> None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) in self._dirty_thumbs:
                item.setIcon(self._thumbnail(self.layer_at(row)))
        self._dirty_thumbs.clear()

    def _on_active(self, layer: Layer | None) -> None:
        self._updating = True
        if layer is not None and layer in self.doc.layers:
            self.list.setCurrentRow(self.row_of(layer))
            self.blend.setCurrentIndex(self.blend.findData(layer.blend_mode))
            self.opacity.setValue(round(layer.opacity * 100))
            self.lock.setChecked(layer.locked)
        self._updating = False
        self._update_buttons()

    def _update_buttons(self) -> None:
        layer = self.doc.active if self.doc else None
        index = self.doc.layers.index(layer) if layer is not None else -1
        self.buttons["delete"].setEnabled(layer is not None and len(self.doc.layers) > 1)
        self.buttons["duplicate"].setEnabled(layer is not None)
        self.buttons["merge"].setEnabled(index > 0)
        self.buttons["up"].setEnabled(0 <= index < len(self.doc.layers) - 1)
        self.buttons["down"].setEnabled(index > 0)
        self.buttons["use_settings"].setEnabled(layer is not None and "parameters" in layer.metadata)

    def _on_property(self, layer: Layer, prop: str) -> None:
        if layer not in self.doc.layers or self._opacity_live:
            return
        item = self.list.item(self.row_of(layer))
        self._updating = True
        if prop == "name":
            item.setText(layer.name)
        elif prop == "visible":
            item.setCheckState(Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked)
        elif prop == "metadata":
            item.setToolTip(layer.metadata.get("parameters", layer.name))
        self._updating = False
        if layer is self.doc.active:
            self._on_active(layer)

    # -- context menu ------------------------------------------------------------------------
    def build_context_menu(self, row: int) -> QMenu:
        """The menu for the layer in a row (made active first): rename, duplicate, delete, merge
        down, use these settings, show/hide, lock; each action's objectName is layer_menu_<key>."""
        layer = self.layer_at(row)
        if layer is not self.doc.active:
            self.doc.active = layer
        index = self.doc.layers.index(layer)
        menu = QMenu(self)
        menu.setObjectName("layerContextMenu")

        def add(key: str, text: str, slot, icon: str | None = None, enabled: bool = True):
            action = menu.addAction(_icon(icon) if icon else QIcon(), text)
            action.setObjectName(f"layer_menu_{key}")
            action.setEnabled(enabled)
            action.triggered.connect(slot)
            return action

        add("rename", "Rename", lambda: self.rename_layer(layer), "mdi6.rename")
        add("duplicate", "Duplicate", self.duplicate_layer, "mdi6.content-copy")
        add("delete", "Delete", self.delete_layer, "mdi6.delete-outline", len(self.doc.layers) > 1)
        add("merge", "Merge down", self.merge_down, "mdi6.layers-triple-outline", index > 0)
        menu.addSeparator()
        add("use_settings", "Use these settings", lambda: self.use_settings_requested.emit(layer), "mdi6.tune-variant",
            bool(layer.metadata.get("parameters")))
        menu.addSeparator()
        add("visible", "Hide" if layer.visible else "Show",
            lambda: self.doc.execute(cmd.SetLayerProperty(layer, "visible", not layer.visible)),
            "mdi6.eye-off-outline" if layer.visible else "mdi6.eye-outline")
        lock = add("lock", "Lock", lambda on: self.doc.execute(cmd.SetLayerProperty(layer, "locked", bool(on))), "mdi6.lock-outline")
        lock.setCheckable(True)
        lock.setChecked(layer.locked)
        return menu

    def _on_context_menu(self, pos) -> None:
        item = self.list.itemAt(pos)
        if item is None or self.doc is None:
            return
        if self.context_menu is not None:
            self.context_menu.deleteLater()
        self.context_menu = self.build_context_menu(self.list.row(item))
        self.context_menu.popup(self.list.viewport().mapToGlobal(pos))

    def rename_layer(self, layer: Layer) -> None:
        """Start editing a layer's name in the list (Enter commits it as one command)."""
        if layer in self.doc.layers:
            item = self.list.item(self.row_of(layer))
            self.list.setCurrentItem(item)
            self.list.editItem(item)

    # -- user actions ------------------------------------------------------------------------
    def _on_row(self, row: int) -> None:
        if not self._updating and 0 <= row < len(self.doc.layers):
            self.doc.active = self.layer_at(row)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._updating:
            return
        layer = self.layer_at(self.list.row(item))
        visible = item.checkState() == Qt.CheckState.Checked
        if visible != layer.visible:
            self.doc.execute(cmd.SetLayerProperty(layer, "visible", visible))
        name = item.text().strip()
        if name and name != layer.name:
            self.doc.execute(cmd.SetLayerProperty(layer, "name", name))
        elif not name:
            self._updating = True
            item.setText(layer.name)
            self._updating = False

    def _on_drop(self, source_row: int, target_row: int) -> None:
        layer = self.layer_at(source_row)
        self.doc.execute(cmd.MoveLayer(layer, len(self.doc.layers) - 1 - target_row))

    def _on_opacity(self, percent: int) -> None:
        layer = self.doc.active if self.doc else None
        if self._updating or layer is None:
            return
        value = percent / 100
        if self._opacity_edit is not None and self._opacity_edit.layer is not layer:
            self.commit_opacity()
        if self._opacity_edit is None:
            if layer.opacity == value:
                return
            self._opacity_start = layer.opacity
            self._opacity_edit = cmd.SetLayerProperty(layer, "opacity", value)
        self._opacity_edit.value = value
        self._opacity_live = True  # the box already shows it: no echo back while the user types
        try:
            self._opacity_edit.redo(self.doc)
        finally:
            self._opacity_live = False
        self._opacity_timer.start()

    def commit_opacity(self) -> None:
        """Make the opacity changed since the box was first touched one undo step (the box rests or loses focus)."""
        self._opacity_timer.stop()
        edit, self._opacity_edit = self._opacity_edit, None
        if edit is None or self.doc is None or edit.layer not in self.doc.layers:
            return
        if edit.layer.opacity != edit.value or edit.value == self._opacity_start:
            return  # something else (an undo) changed it meanwhile, or it is back where it started
        self.doc.push_done(edit)

    def _on_history(self) -> None:
        edit = self._opacity_edit
        if edit is not None and (edit.layer not in self.doc.layers or edit.layer.opacity != edit.value):
            self._opacity_timer.stop()  # an undo or redo replaced the value being changed: nothing to record
            self._opacity_edit = None

    def _set(self, prop: str, value) -> None:
        layer = self.doc.active if self.doc else None
        if self._updating or layer is None or getattr(layer, prop) == value:
            return
        self.doc.execute(cmd.SetLayerProperty(layer, prop, value))

    def add_layer(self) -> None:
        """Add an empty layer above the active one."""
        self.doc.add_layer(f"Layer {len(self.doc.layers) + 1}")

    def duplicate_layer(self) -> None:
        """Copy the active layer just above it."""
        if self.doc.active is not None:
            self.doc.execute(cmd.duplicate_layer(self.doc.active, self.doc))

    def delete_layer(self) -> None:
        """Remove the active layer (never the last one)."""
        if self.doc.active is not None and len(self.doc.layers) > 1:
            self.doc.execute(cmd.RemoveLayer(self.doc.active))

    def move_layer(self, delta: int) -> None:
        """Move the active layer up (+1) or down (-1) the stack."""
        layer = self.doc.active
        if layer is None:
            return
        index = self.doc.layers.index(layer) + delta
        if 0 <= index < len(self.doc.layers):
            self.doc.execute(cmd.MoveLayer(layer, index))

    def merge_down(self) -> None:
        """Merge the active layer into the one below."""
        layer = self.doc.active
        if layer is not None and self.doc.layers.index(layer) > 0:
            self.doc.execute(cmd.merge_down(layer, self.doc))

    def flatten(self) -> None:
        """Replace every layer with the visible composite."""
        if len(self.doc.layers) > 1 or self.doc.layers[0].opacity < 1 or not self.doc.layers[0].visible:
            self.doc.execute(cmd.flatten_image(self.doc))
