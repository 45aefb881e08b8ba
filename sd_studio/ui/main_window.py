"""MainWindow: menus, actions, the canvas, the docks and the status bar around one document."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QColor, QGuiApplication, QKeySequence, QPainter
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSlider,
    QSpinBox,
    QToolBar,
    QToolButton,
    QWidget,
)

from sd_studio.errors import SDStudioError
from sd_studio.ui.dialogs import NewDocumentDialog, SettingsDialog, settings_list
from sd_studio.ui.errors import show_error
from sd_studio.ui.icons import icon
from sd_studio.ui.tools import TOOL_CLASSES, ToolOptions

# The window's frame (menus, toolbars, docks) needs only Qt; numpy, the document model, the canvas and
# the panels load in finish_startup(), after a deferred window has painted its first frame.
if TYPE_CHECKING:
    from sd_studio.document.document import Document
    from sd_studio.document.layer import Layer
    from sd_studio.ui.engine_thread import EngineThread

APP_NAME = "SD Studio"
OPEN_FILTER = "Images and projects (*.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp *.gif *.ora);;All files (*)"
SAVE_FILTER = "OpenRaster project (*.ora);;PNG image (*.png);;JPEG image (*.jpg *.jpeg);;WebP image (*.webp)"
EXPORT_FILTER = "PNG image (*.png);;JPEG image (*.jpg *.jpeg);;WebP image (*.webp)"
MAX_RECENT = 10


class _Backdrop(QWidget):
    """Stands where the canvas will be, in the canvas's own background, until finish_startup()."""

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(event.rect(), self.palette().color(self.backgroundRole()).darker(115))
        p.end()


class MainWindow(QMainWindow):
    """The editor's window: one document, its canvas, tools, panels and the engine thread."""

    _models_found = Signal(object)  # from the model-scanning thread
    building = Signal()  # finish_startup() begins: the window's frame is on screen
    ready = Signal()  # finish_startup() is done: the canvas, panels, engine and document exist

    def __init__(self, settings: QSettings | None = None, engine: "EngineThread | None" = None, *,
                 defer: bool = False, initial_path: str | None = None) -> None:
        """Build the window; with defer, only its frame now and the rest (finish_startup) once it has
        painted, so it appears at once. initial_path is opened by finish_startup instead of a new document."""
        super().__init__()
        self.settings = settings if settings is not None else QSettings("sd-studio", "sd-studio")
        self.path: str | None = None
        self.doc: Document | None = None
        self.actions: dict[str, QAction] = {}
        self.is_ready = False
        self._building = False
        self._engine_arg = engine
        self._initial_path = initial_path
        self._opening = False  # a file is being read on a worker thread (ui/opening.py)
        self._defer_pending = defer
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.setWindowTitle(f"Untitled — {APP_NAME}")

        self.setCentralWidget(_Backdrop(self))
        self.options = ToolOptions()
        self.tools = {cls.name: cls(self.options) for cls in TOOL_CLASSES}
        self.docks = {title: self._dock(title, QWidget(), Qt.DockWidgetArea.RightDockWidgetArea)
                      for title in ("Generate", "Layers", "History")}

        self._build_status_bar()
        self._build_actions()
        self._build_menus()
        self._build_toolbars()
        self.options.changed.connect(self._on_options)
        self.actions["tool_brush"].setChecked(True)
        self._restore_window()
        if not defer:
            self.finish_startup()
        else:
            # in case no frame is ever painted (a hidden or minimised window), do not wait forever
            QTimer.singleShot(1000, self.finish_startup)

    def event(self, event) -> bool:
        """Qt's event dispatch; the first paint of a deferred window starts the rest of the start-up."""
        if self._defer_pending and event.type() == QEvent.Type.Paint:
            self._defer_pending = False
            QTimer.singleShot(0, self.finish_startup)  # after this frame reaches the screen
        return super().event(event)

    def finish_startup(self) -> None:
        """Build the canvas, panels and engine thread and start on a document; does nothing the
        second time. Emits ready when done."""
        if self.is_ready or self._building:
            return
        self._building = True
        self._defer_pending = False
        self.building.emit()
        from sd_studio.ui.canvas import Canvas
        from sd_studio.ui.engine_thread import EngineThread
        from sd_studio.ui.generate_controller import GenerationController
        from sd_studio.ui.panels.generate import GeneratePanel
        from sd_studio.ui.panels.history import HistoryPanel
        from sd_studio.ui.panels.layers import LayersPanel

        self.canvas = Canvas(self)
        self.setCentralWidget(self.canvas)
        self.layers_panel = LayersPanel()
        self.history_panel = HistoryPanel()
        self.generate_panel = GeneratePanel()
        self.docks["Generate"].setWidget(self.generate_panel)
        self.docks["Layers"].setWidget(self.layers_panel)
        self.docks["History"].setWidget(self.history_panel)
        if self.first_start:
            QTimer.singleShot(0, self._share_dock_height)  # once the new docks are laid out
        else:
            # the dock sizes restored in __init__ were laid out around empty docks; now they hold panels
            state = self.settings.value("window/state")
            if state is not None:
                QTimer.singleShot(0, lambda: self.restoreState(state))

        engine = self._engine_arg
        self.engine = engine if engine is not None else EngineThread(self)
        self.generation = GenerationController(self, self.generate_panel, self.canvas, self.engine)
        self.generation.error.connect(lambda exc: show_error(self, exc, "generate"))
        self.generation.message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        self.generation.engine_state.connect(self._set_engine_state)
        self.generation.model_used.connect(self._remember_model)
        self.engine.busy_changed.connect(self._on_busy)
        self.generate_panel.model_chosen.connect(self._remember_model)
        self.layers_panel.use_settings_requested.connect(self.use_layer_settings)
        for signal in (self.generate_panel.model.currentTextChanged, self.generate_panel.device.currentTextChanged):
            signal.connect(self._show_engine_choice)
        # The device and memory mode chosen in the panel are the next start's too (as the Settings dialog's are).
        self.generate_panel.device.currentTextChanged.connect(lambda text: self.settings.setValue("engine/device", text))
        self.generate_panel.memory_mode.currentTextChanged.connect(lambda text: self.settings.setValue("engine/memory_mode", text))

        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))
        self.canvas.cursor_moved.connect(self._on_cursor)
        self.canvas.message.connect(lambda text: self.statusBar().showMessage(text, 4000))
        self.canvas.set_show_mask(self.actions["show_mask"].isChecked())
        self._load_settings()
        self._models_found.connect(self.generate_panel.add_found_models)
        QTimer.singleShot(500, self.scan_models)
        self.is_ready = True
        self.select_tool(next(n for n in self.tools if self.actions[f"tool_{n}"].isChecked()))
        self._on_options()
        self._start_document(self._initial_path)
        self.ready.emit()

    def _start_document(self, path: str | None) -> None:
        from sd_studio.document.document import Document

        error = doc = None
        if path:
            try:
                doc = self._load(path)
            except Exception as exc:  # noqa: BLE001 - shown below, over a new document
                error = exc
            if doc is not None:
                doc.history.budget_bytes = self._budget()
                self.set_document(doc, os.fspath(path))
                self._add_recent(os.fspath(path))
                return
        doc = Document.new(1024, 1024)
        doc.history.budget_bytes = self._budget()
        self.set_document(doc, None)
        if error is not None:
            QTimer.singleShot(0, lambda: show_error(self, error, f"open {path}"))

    # -- building ----------------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, key: str, text: str, slot, shortcut=None, icon_name: str | None = None, checkable: bool = False) -> QAction:
        action = QAction(text, self)
        action.setObjectName(key)
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                action.setShortcuts([s if isinstance(s, QKeySequence) else QKeySequence(s) for s in shortcut])
            else:
                action.setShortcut(QKeySequence(shortcut))
        if icon_name:
            action.setIcon(icon(icon_name))
        action.setCheckable(checkable)
        name = action_name(action)

        def run(checked: bool = False) -> None:
            # a deferred window shows its menus before the document exists: triggers wait for finish_startup
            if not self.is_ready:
                return
            from sd_studio.incidents import set_context  # not at import: logging is not needed for the first frame

            set_context(action=name)  # before the handler, so an error in it is logged under this action
            slot(checked) if checkable else slot()

        action.triggered.connect(run)
        self.addAction(action)  # shortcuts work even when the menu bar is hidden
        self.actions[key] = action
        return action

    def _build_actions(self) -> None:
        SK = QKeySequence.StandardKey
        a = self._action
        a("new", "&New...", self.new_document, SK.New, "mdi6.file-outline")
        a("open", "&Open...", self.open_dialog, SK.Open, "mdi6.folder-open-outline")
        a("save", "&Save", self.save, SK.Save, "mdi6.content-save-outline")
        a("save_as", "Save &As...", self.save_as, SK.SaveAs, "mdi6.content-save-edit-outline")
        a("export", "&Export...", self.export, "Ctrl+E", "mdi6.export")
        a("quit", "&Quit", self.close, _keys(SK.Quit, "Ctrl+Q"), "mdi6.exit-to-app")
        a("undo", "&Undo", lambda: self._settle() or self.doc.undo(), SK.Undo, "mdi6.undo")
        a("redo", "&Redo", lambda: self._settle() or self.doc.redo(), _keys(SK.Redo, "Ctrl+Shift+Z", "Ctrl+Y"), "mdi6.redo")
        a("copy", "&Copy image", self.copy_image, SK.Copy, "mdi6.content-copy")
        a("paste", "&Paste as layer", self.paste_as_layer, SK.Paste, "mdi6.content-paste")
        a("paste_new", "Paste as new &document", self.paste_as_document, "Ctrl+Shift+V")
        a("settings", "Se&ttings...", self.open_settings, SK.Preferences, "mdi6.cog-outline")
        a("zoom_in", "Zoom &in", lambda: self.canvas.zoom_in(), _keys(SK.ZoomIn, "Ctrl+="), "mdi6.magnify-plus-outline")
        a("zoom_out", "Zoom &out", lambda: self.canvas.zoom_out(), SK.ZoomOut, "mdi6.magnify-minus-outline")
        a("zoom_fit", "&Fit to window", lambda: self.canvas.fit(), "Ctrl+0", "mdi6.fit-to-screen-outline")
        a("zoom_100", "&Actual size (100%)", lambda: self.canvas.actual_size(), "Ctrl+1", "mdi6.numeric-1-box-outline")
        show_mask = a("show_mask", "Show &mask", lambda on: self.canvas.set_show_mask(on), "Ctrl+H", "mdi6.eye-outline", checkable=True)
        show_mask.setChecked(True)
        a("clear_mask", "&Clear mask", self.clear_mask, "Ctrl+Shift+A", "mdi6.selection-off")
        a("invert_mask", "&Invert mask", lambda: self._mask_op("invert_mask"), "Ctrl+I")
        a("grow_mask", "&Grow mask by 8 px", lambda: self._mask_op("grow_mask", 8))
        a("shrink_mask", "&Shrink mask by 8 px", lambda: self._mask_op("shrink_mask", 8))
        a("feather_mask", "&Feather mask by 8 px", lambda: self._mask_op("feather_mask", 8))
        a("new_layer", "&New layer", lambda: self.layers_panel.add_layer(), "Ctrl+Shift+N", "mdi6.plus")
        a("duplicate_layer", "&Duplicate layer", lambda: self.layers_panel.duplicate_layer(), "Ctrl+J", "mdi6.content-copy")
        a("delete_layer", "D&elete layer", lambda: self.layers_panel.delete_layer(), None, "mdi6.delete-outline")
        a("merge_down", "&Merge down", lambda: self.layers_panel.merge_down(), "Ctrl+Shift+E", "mdi6.layers-triple-outline")
        a("flatten", "&Flatten image", lambda: self.layers_panel.flatten(), None, "mdi6.layers-outline")
        a("use_settings", "&Use these settings", lambda: self.use_layer_settings(self.doc.active), None, "mdi6.tune-variant")
        a("generate", "&Generate", lambda: self.generation.generate(), ["Ctrl+Return", "Ctrl+Enter"], "mdi6.auto-fix")
        cancel = a("cancel", "&Cancel generation", lambda: self.generation.cancel(), "Esc", "mdi6.stop-circle-outline")
        cancel.setEnabled(False)
        a("bigger", "Bigger brush", self.options.bigger, "]")
        a("smaller", "Smaller brush", self.options.smaller, "[")
        a("about", "&About SD Studio", self.about)
        group = QActionGroup(self)
        for tool in self.tools.values():
            action = a(f"tool_{tool.name}", tool.label, lambda _c=False, n=tool.name: self.select_tool(n), tool.shortcut, tool.icon, checkable=True)
            action.setToolTip(f"{tool.label} ({tool.shortcut})")
            group.addAction(action)
        for key in ("generate", "cancel", "bigger", "smaller", "undo", "redo"):
            self.actions[key].setShortcutContext(Qt.ShortcutContext.WindowShortcut)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        m = bar.addMenu("&File")
        for key in ("new", "open"):
            m.addAction(self.actions[key])
        self.recent_menu = m.addMenu("Open &Recent")
        m.addSeparator()
        for key in ("save", "save_as", "export"):
            m.addAction(self.actions[key])
        m.addSeparator()
        m.addAction(self.actions["quit"])
        m = bar.addMenu("&Edit")
        for key in ("undo", "redo", None, "copy", "paste", "paste_new", None, "settings"):
            m.addSeparator() if key is None else m.addAction(self.actions[key])
        m = bar.addMenu("&View")
        for key in ("zoom_in", "zoom_out", "zoom_fit", "zoom_100", None, "show_mask"):
            m.addSeparator() if key is None else m.addAction(self.actions[key])
        m = bar.addMenu("&Mask")
        for key in ("clear_mask", "invert_mask", "grow_mask", "shrink_mask", "feather_mask"):
            m.addAction(self.actions[key])
        m = bar.addMenu("&Layer")
        for key in ("new_layer", "duplicate_layer", "delete_layer", None, "merge_down", "flatten", None, "use_settings"):
            m.addSeparator() if key is None else m.addAction(self.actions[key])
        m = bar.addMenu("&Tools")
        for tool in self.tools.values():
            m.addAction(self.actions[f"tool_{tool.name}"])
        m.addSeparator()
        m.addAction(self.actions["bigger"])
        m.addAction(self.actions["smaller"])
        m = bar.addMenu("&Generate")
        m.addAction(self.actions["generate"])
        m.addAction(self.actions["cancel"])
        m = bar.addMenu("&Help")
        m.addAction(self.actions["about"])
        self._update_recent_menu()

    def _build_toolbars(self) -> None:
        main = QToolBar("Main", self, objectName="mainToolbar")
        for key in ("new", "open", "save", None, "undo", "redo", None, "zoom_in", "zoom_out", "zoom_fit", "show_mask", None, "generate", "cancel"):
            main.addSeparator() if key is None else main.addAction(self.actions[key])
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, main)
        tools = QToolBar("Tools", self, objectName="toolsToolbar")
        for tool in self.tools.values():
            tools.addAction(self.actions[f"tool_{tool.name}"])
        self.addToolBar(Qt.ToolBarArea.LeftToolBarArea, tools)
        self.addToolBarBreak()
        bar = QToolBar("Tool options", self, objectName="optionsToolbar")
        self.size_box = QSpinBox(minimum=1, maximum=1000, suffix=" px", toolTip="Brush size ([ and ])")
        self.hardness_slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100, toolTip="Hardness")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, minimum=1, maximum=100, toolTip="Opacity")
        for s in (self.hardness_slider, self.opacity_slider):
            s.setFixedWidth(110)
        self.color_button = QToolButton(toolTip="Brush colour")
        self.color_button.clicked.connect(self._choose_color)
        self.pressure_size = QCheckBox("Pressure → size")
        self.pressure_opacity = QCheckBox("Pressure → opacity")
        bar.addWidget(QLabel(" Size "))
        bar.addWidget(self.size_box)
        bar.addWidget(QLabel("  Hardness "))
        bar.addWidget(self.hardness_slider)
        bar.addWidget(QLabel("  Opacity "))
        bar.addWidget(self.opacity_slider)
        bar.addWidget(QLabel("  Colour "))
        bar.addWidget(self.color_button)
        bar.addSeparator()
        bar.addWidget(self.pressure_size)
        bar.addWidget(self.pressure_opacity)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        self.size_box.valueChanged.connect(lambda v: self.options.size != v and self.options.set(size=v))
        self.hardness_slider.valueChanged.connect(lambda v: self.options.set(hardness=v / 100))
        self.opacity_slider.valueChanged.connect(lambda v: self.options.set(opacity=v / 100))
        self.pressure_size.toggled.connect(lambda on: self.options.set(pressure_size=on))
        self.pressure_opacity.toggled.connect(lambda on: self.options.set(pressure_opacity=on))
        self._on_options()

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.position_label = QLabel("")
        self.size_label = QLabel("")
        self.zoom_label = QLabel("100%")
        self.engine_label = QLabel("Engine: idle")
        for w in (self.position_label, self.size_label, self.zoom_label, self.engine_label):
            w.setContentsMargins(8, 0, 8, 0)
            bar.addPermanentWidget(w)

    # -- document ----------------------------------------------------------------------------
    def set_document(self, doc: Document, path: str | None) -> None:
        """Edit another document (the previous one is dropped without asking)."""
        if self.doc is not None:
            self.doc.events.history_changed.disconnect(self._update_title)
        self.doc, self.path = doc, path
        self.canvas.set_document(doc)
        self.layers_panel.set_document(doc)
        self.history_panel.set_document(doc)
        self.generation.document_changed()
        doc.events.history_changed.connect(self._update_title)
        self.size_label.setText(f"{doc.size.width} × {doc.size.height}")
        self._update_title()

    def _update_title(self) -> None:
        name = Path(self.path).name if self.path else "Untitled"
        self.setWindowTitle(f"{name}{'*' if self.doc.is_modified else ''} — {APP_NAME}")
        self.actions["undo"].setEnabled(self.doc.history.can_undo)
        self.actions["redo"].setEnabled(self.doc.history.can_redo)

    def _budget(self) -> int:
        return int(self.settings.value("history/budget_mb", 1024)) << 20

    def _load(self, path: str):
        """The document at path, decoded off the main thread (the window keeps painting); None if cancelled.
        What the file holds that SD Studio shows differently (an unknown blend mode) is said in the status bar."""
        from sd_studio.ui.opening import load_in_background

        self._opening = True
        try:
            opened = load_in_background(self, path)
        finally:
            self._opening = False
        if opened is None:
            return None
        if opened.warnings:
            more = f" (and {len(opened.warnings) - 1} more)" if len(opened.warnings) > 1 else ""
            QTimer.singleShot(0, lambda: self.statusBar().showMessage(f"{opened.warnings[0]}{more}", 15000))
        return opened.document

    def open_path(self, path: str) -> bool:
        """Open a file in this window (after the unsaved-changes prompt); errors are shown, nothing changes."""
        self.finish_startup()
        if not self.maybe_save():
            return False
        try:
            doc = self._load(path)
        except Exception as exc:  # noqa: BLE001 - every failure is a dialog, the document stays
            show_error(self, exc, f"open {path}")
            return False
        if doc is None:  # cancelled
            return False
        doc.history.budget_bytes = self._budget()
        self.set_document(doc, os.fspath(path))
        self._add_recent(os.fspath(path))
        self.statusBar().showMessage(f"Opened {path}", 4000)
        return True

    def _settle(self) -> None:
        """Turn edits still in progress (an opacity being dragged) into their undo step."""
        if self.is_ready:
            self.layers_panel.commit_opacity()

    def save_to(self, path: str) -> bool:
        """Save to path by its extension (.ora keeps layers); errors are shown."""
        self._settle()
        try:
            from sd_studio.document.io import save_document

            save_document(path, self.doc)
        except Exception as exc:  # noqa: BLE001
            show_error(self, exc, f"save {path}")
            return False
        return True

    def new_document(self) -> None:
        """Ask for a size and background, then start a new document."""
        if not self.maybe_save():
            return
        dialog = NewDocumentDialog(self, *self.doc.size)
        if dialog.exec() == NewDocumentDialog.DialogCode.Accepted:
            from sd_studio.document.document import Document

            w, h, bg = dialog.values()
            doc = Document.new(w, h, bg)
            doc.history.budget_bytes = self._budget()
            self.set_document(doc, None)

    def open_dialog(self) -> None:
        """Choose a file to open."""
        path, _ = QFileDialog.getOpenFileName(self, "Open", self._last_dir(), OPEN_FILTER)
        if path:
            self.open_path(path)

    def save(self) -> bool:
        """Save to the current file; layered documents opened from flat images go through Save As."""
        if self.path is None or (len(self.doc.layers) > 1 and not self.path.lower().endswith(".ora")):
            return self.save_as()
        if self.save_to(self.path):
            self.doc.history.mark_clean()
            return True
        return False

    def save_as(self) -> bool:
        """Choose a file name and save (an .ora project keeps the layers)."""
        stem = Path(self.path).stem if self.path else "Untitled"
        path, chosen = QFileDialog.getSaveFileName(self, "Save As", str(Path(self._last_dir()) / f"{stem}.ora"), SAVE_FILTER)
        if not path:
            return False
        path = _with_extension(path, chosen)
        if self.save_to(path):
            self.path = path
            self.doc.history.mark_clean()
            self._add_recent(path)
            return True
        return False

    def export(self) -> None:
        """Write the flattened image to a PNG, JPEG or WebP file (the document keeps its own file)."""
        stem = Path(self.path).stem if self.path else "Untitled"
        path, chosen = QFileDialog.getSaveFileName(self, "Export", str(Path(self._last_dir()) / f"{stem}.png"), EXPORT_FILTER)
        if path:
            path = _with_extension(path, chosen)
            if self.save_to(path):
                self.statusBar().showMessage(f"Exported {path}", 4000)

    def maybe_save(self) -> bool:
        """Ask what to do with unsaved changes; False means the user cancelled."""
        self._settle()
        if self.doc is None or not self.doc.is_modified:
            return True
        box = QMessageBox(QMessageBox.Icon.Question, APP_NAME, "Save the changes to this document first?",
                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("unsavedBox")
        answer = box.exec()
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def closeEvent(self, event) -> None:  # noqa: N802
        if self._opening or not self.maybe_save():  # a file being opened: cancel that first
            event.ignore()
            return
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        if self.is_ready:
            self.engine.shutdown(2000)
        event.accept()

    # -- recent files and models -------------------------------------------------------------
    def _last_dir(self) -> str:
        return str(Path(self.path).parent) if self.path else str(self.settings.value("files/last_dir", str(Path.home())))

    def _add_recent(self, path: str) -> None:
        recent = [p for p in settings_list(self.settings, "files/recent") if p != path]
        self.settings.setValue("files/recent", [path, *recent][:MAX_RECENT])
        self.settings.setValue("files/last_dir", str(Path(path).parent))
        self._update_recent_menu()

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = settings_list(self.settings, "files/recent")
        for path in recent:
            self.recent_menu.addAction(Path(path).name, lambda p=path: self.open_path(p)).setToolTip(path)
        self.recent_menu.setEnabled(bool(recent))

    def _remember_model(self, spec: str) -> None:
        if not spec:
            return
        recent = [m for m in settings_list(self.settings, "models/recent") if m != spec]
        self.settings.setValue("models/recent", [spec, *recent][:MAX_RECENT])

    def _load_settings(self) -> None:
        s = self.settings
        recent = settings_list(s, "models/recent")
        default = str(s.value("models/default", "") or "")
        models = [default, *[m for m in recent if m != default]] if default else recent
        self.generate_panel.set_models(models, default or None)
        self.generate_panel.device.setCurrentText(str(s.value("engine/device", "auto")))
        self.generate_panel.memory_mode.setCurrentText(str(s.value("engine/memory_mode", "auto")))
        self._show_engine_choice()

    def _share_dock_height(self) -> None:
        # Qt splits docks evenly (and widens them when asked for heights). On a first start the Generate
        # panel gets all it asks for, so its Generate button is in sight; History gets a few lines and
        # Layers the rest, or, on a short screen, History becomes a tab behind Layers.
        generate_dock, layers_dock, history_dock = (self.docks[name] for name in ("Generate", "Layers", "History"))
        docks = [generate_dock, layers_dock, history_dock]
        available = sum(d.height() for d in docks)
        generate = generate_dock.widget().sizeHint().height() + generate_dock.height() - generate_dock.widget().height() + 6
        history, layers = 140, available - generate - 140
        if layers < 200:
            self.tabifyDockWidget(layers_dock, history_dock)
            layers_dock.raise_()
            docks, sizes = [generate_dock, layers_dock], [generate, max(120, available - generate)]
        else:
            sizes = [generate, layers, history]
        self.resizeDocks(docks, sizes, Qt.Orientation.Vertical)
        width = max(d.widget().sizeHint().width() for d in docks)
        self.resizeDocks(docks, [width] * len(docks), Qt.Orientation.Horizontal)  # the canvas keeps the rest

    def _restore_window(self) -> bool:
        """The geometry and dock layout of the last session; on a first start, most of the screen
        (first_start is then True and the caller may maximise). Returns whether anything was restored."""
        geometry = self.settings.value("window/geometry")
        if geometry is not None and self.restoreGeometry(geometry):
            state = self.settings.value("window/state")
            if state is not None:
                self.restoreState(state)
            self.first_start = False
            return True
        self.first_start = True
        screen = QGuiApplication.primaryScreen()
        area = screen.availableGeometry() if screen is not None else None
        if area is None or area.isEmpty():
            self.resize(1400, 900)
        else:
            size = area.size() * 0.9
            self.resize(size)
            self.move(area.center() - self.rect().center())
        return False

    def scan_models(self) -> None:
        """List the models in the configured folders and the Hugging Face cache, off the main thread."""
        folders = [Path(f) for f in settings_list(self.settings, "models/folders")]

        def scan() -> None:
            try:
                from sd_studio.engine.models.discovery import find_models

                entries = find_models(folders)
            except Exception:  # noqa: BLE001 - a listing is a convenience; typing a spec always works
                return
            self._models_found.emit(entries)

        threading.Thread(target=scan, name="model scan", daemon=True).start()

    def open_settings(self) -> None:
        """Edit the settings; they apply to the next generation and the next document."""
        if SettingsDialog(self.settings, self).exec():
            self._load_settings()
            self.scan_models()
            self.doc.history.budget_bytes = self._budget()

    # -- clipboard and drops -----------------------------------------------------------------
    def copy_image(self) -> None:
        """Put the visible composite on the clipboard."""
        from sd_studio.ui.images import qimage_copy

        QGuiApplication.clipboard().setImage(qimage_copy(self.doc.composite()))
        self.statusBar().showMessage("Copied the image", 3000)

    def _clipboard_pixels(self):
        image = QGuiApplication.clipboard().image()
        if image.isNull():
            self.statusBar().showMessage("The clipboard holds no image.", 4000)
            return None
        from sd_studio.ui.images import rgba_from_qimage

        return rgba_from_qimage(image)

    def paste_as_layer(self) -> None:
        """Add the clipboard's image as a new layer at the top-left of the view."""
        pixels = self._clipboard_pixels()
        if pixels is None:
            return
        from sd_studio.document import commands as cmd
        from sd_studio.document.geometry import Point
        from sd_studio.document.layer import Layer
        from sd_studio.document.surface import Surface

        surface = Surface(4)
        surface.write(0, 0, pixels)
        vis = self.canvas.visible_bounds()
        layer = Layer(name="Pasted", surface=surface, offset=Point(max(0, vis.x), max(0, vis.y)))
        index = self.doc.layers.index(self.doc.active) + 1 if self.doc.active else len(self.doc.layers)
        self.doc.execute(cmd.AddLayer(layer, index, name="Paste as layer"))

    def paste_as_document(self) -> None:
        """Start a new document from the clipboard's image."""
        pixels = self._clipboard_pixels()
        if pixels is not None and self.maybe_save():
            from sd_studio.document.document import Document

            self.set_document(Document.from_pixels(pixels), None)

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            event.acceptProposedAction()
            # Open after the drop returns, so a dialog never runs inside the drag's event loop.
            QTimer.singleShot(0, lambda: self.open_path(files[0]))

    # -- mask --------------------------------------------------------------------------------
    def clear_mask(self) -> None:
        """Empty the inpaint mask (undoable)."""
        if not self.doc.mask.is_empty:
            from sd_studio.document import commands as cmd

            self.doc.execute(cmd.clear_mask(self.doc))

    def _mask_op(self, name: str, *args) -> None:
        from sd_studio.document import mask as mask_ops

        op = getattr(mask_ops, name, None)
        if op is None:
            self.statusBar().showMessage("This mask operation is not available yet.", 4000)
            return
        try:
            command = op(self.doc, *args)
        except SDStudioError as exc:
            show_error(self, exc, name)
            return
        if command is not None:
            self.doc.execute(command)

    # -- tools -------------------------------------------------------------------------------
    def select_tool(self, name: str) -> None:
        """Make a tool current."""
        self.canvas.set_tool(self.tools[name])
        self.actions[f"tool_{name}"].setChecked(True)

    def _on_options(self) -> None:
        o = self.options
        for widget, value in ((self.size_box, round(o.size)), (self.hardness_slider, round(o.hardness * 100)),
                              (self.opacity_slider, round(o.opacity * 100))):
            if widget.value() != value:
                widget.blockSignals(True)
                widget.setValue(value)
                widget.blockSignals(False)
        self.pressure_size.setChecked(o.pressure_size)
        self.pressure_opacity.setChecked(o.pressure_opacity)
        self.color_button.setStyleSheet(f"background: {o.color.name()}; min-width: 22px; border: 1px solid palette(mid);")
        if self.is_ready:
            self.canvas.update_cursor()

    def _choose_color(self) -> None:
        color = QColorDialog.getColor(self.options.color, self, "Brush colour")
        if color.isValid():
            self.options.set(color=QColor(color))

    # -- status and generation ---------------------------------------------------------------
    def _on_cursor(self, pos) -> None:
        self.position_label.setText("" if pos is None else f"{int(pos.x())}, {int(pos.y())}")

    def _set_engine_state(self, text: str) -> None:
        self.engine_label.setText(f"Engine: {text}")

    def _show_engine_choice(self, *_args) -> None:
        if not self.engine.busy:
            p = self.generate_panel
            model = p.model.currentText().strip()
            self._set_engine_state(f"{p.device.currentText()} · {Path(model).name if model else 'no model'}")

    def _on_busy(self, busy: bool) -> None:
        self.actions["cancel"].setEnabled(busy)
        self.actions["generate"].setEnabled(not busy)

    def use_layer_settings(self, layer: Layer | None) -> None:
        """Load a generated layer's parameters back into the Generate panel."""
        text = layer.metadata.get("parameters") if layer is not None else None
        if not text:
            self.statusBar().showMessage("This layer carries no generation settings.", 4000)
            return
        from sd_studio.document.io.parameters import parse_parameters

        notes = self.generate_panel.load_parameters(parse_parameters(text))
        self.statusBar().showMessage(" ".join([f"Loaded the settings of “{layer.name}”.", *notes]), 6000)

    def about(self) -> None:
        """Show the version."""
        from sd_studio import __version__

        QMessageBox.about(self, APP_NAME, f"<b>{APP_NAME}</b> {__version__}<br>An image editor whose brush can ask Stable Diffusion for help.")


def action_name(action: QAction) -> str:
    """What the incident log calls a menu action: its text without the mnemonic and the dots ("Open")."""
    return re.sub(r"&(.)", r"\1", action.text()).rstrip(".").strip()


def _keys(standard, *extra: str) -> list[QKeySequence]:
    """The platform's standard key sequences plus common alternatives, without duplicates."""
    keys = list(QKeySequence.keyBindings(standard))
    for text in extra:
        if QKeySequence(text) not in keys:
            keys.append(QKeySequence(text))
    return keys


def _with_extension(path: str, chosen_filter: str) -> str:
    if Path(path).suffix:
        return path
    for ext in (".ora", ".png", ".jpg", ".webp"):
        if ext[1:] in chosen_filter.lower():
            return path + ext
    return path + ".png"

