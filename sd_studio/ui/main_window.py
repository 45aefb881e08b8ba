"""MainWindow: the frame around one document: menus and tool bars (built from ui/actions.py), the canvas, the
docks and the status bar. The document's life (new, open, save, export) is the session's (ui/session.py)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMessageBox, QWidget

from sd_studio.ui import APP_NAME

# The first frame needs only Qt: the window's size, title and background. The action table, its icon font,
# the tool bars, docks, canvas, panels, numpy and the document model load in finish_startup(), after a
# deferred window has painted that frame.
if TYPE_CHECKING:
    from sd_studio.document.document import Document
    from sd_studio.document.layer import Layer
    from sd_studio.ui.actions import ActionSpec
    from sd_studio.ui.engine_thread import EngineThread
    from sd_studio.ui.session import DocumentSession

MASK_DISPLAY_KEY = "view/mask_display"
"""QSettings key: how the mask shows, "tint" (red) or "erased" (checkerboard through it)."""
LAYER_ROWS = 3
"""Rows of the Layers list a first-start layout keeps in sight, whatever the screen."""
HISTORY_HEIGHT = 140


class _Backdrop(QWidget):
    """Stands where the canvas will be, in the canvas's own background, until finish_startup(); calls
    painted() once, after its first paint (the window's first frame)."""

    def __init__(self, parent: QWidget, painted) -> None:
        super().__init__(parent)
        self._painted = painted
        # Qt fills the background: a Python QPainter in the first frame would cost PySide ~0.1 s of set-up
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.Window, palette.window().color().darker(115))  # as the canvas
        self.setPalette(palette)
        self.setAutoFillBackground(True)

    def paintEvent(self, event) -> None:  # noqa: N802
        if self._painted is not None:
            painted, self._painted = self._painted, None
            painted()


class MainWindow(QMainWindow):
    """The editor's window: one document (its session), its canvas, tools, panels and the engine thread."""

    _models_found = Signal(object)  # from the model-scanning thread
    building = Signal()  # finish_startup() begins: the window's first frame is on screen
    ready = Signal()  # finish_startup() is done: the canvas, panels, engine and document exist

    def __init__(self, settings: QSettings | None = None, engine: EngineThread | None = None, *,
                 defer: bool = False, initial_path: str | None = None) -> None:
        """Build the window; with defer, only what its first frame shows (its size, title and background) now and
        the rest (finish_startup: menus, tool bars, docks, canvas, panels, engine, document) once it has painted,
        so it appears at once. initial_path is opened by finish_startup instead of a new document."""
        super().__init__()
        self.settings = settings if settings is not None else QSettings("sd-studio", "sd-studio")
        self.is_ready = False
        self._building = False
        self._engine_arg = engine
        self._initial_path = initial_path
        self._defer_pending = defer
        self.autosave = None  # the AutosaveController sd_studio.app gives the editor's window
        self.actions: dict = {}  # filled by finish_startup (ui/actions.py's table)
        self.session: DocumentSession | None = None  # made by finish_startup
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.setWindowTitle(f"Untitled — {APP_NAME}")
        # a Python event() override would make every event of the window a Python object (with its enums)
        # before the first frame: the backdrop's first paint says when that frame is done instead
        self.setCentralWidget(_Backdrop(self, self._first_frame_painted))
        self._restore_geometry()
        if not defer:
            self.finish_startup()
        else:
            # in case no frame is ever painted (a hidden or minimised window), do not wait forever
            QTimer.singleShot(1000, self, self.finish_startup)

    def _build_frame(self) -> None:
        """The session, the tools and the frame around the canvas: menus and tool bars from the action table,
        the docks (empty until the panels come), the status bar; the saved dock layout when it fits."""
        from sd_studio.ui.actions import build_actions, build_menus, build_toolbars
        from sd_studio.ui.session import DocumentSession
        from sd_studio.ui.tools import TOOL_CLASSES, ToolOptions
        from sd_studio.ui.tools.options_bar import ToolOptionsBar

        self.session = DocumentSession(self, self.settings, settle=self._settle)
        self.options = ToolOptions()
        self.tools = {cls.name: cls(self.options) for cls in TOOL_CLASSES}
        self.docks = {title: self._dock(title) for title in ("Generate", "Layers", "History")}
        self._build_status_bar()
        self.actions = build_actions(self, self._run)
        self.menus = build_menus(self, self.actions)
        self.recent_menu = self.menus["recent"]
        self.toolbars = build_toolbars(self, self.actions)
        self.options_bar = ToolOptionsBar(self.options, self)
        # beside the main tool bar, not below it: a laptop screen keeps the row for the panels
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.options_bar)
        self.session.state_changed.connect(self._update_title)
        self.session.recent_changed.connect(self._update_recent_menu)
        self.session.message.connect(lambda text, ms: self.statusBar().showMessage(text, ms))
        self._update_recent_menu()
        if not self.first_start:
            state = self.settings.value("window/state")
            if state is not None:
                self.restoreState(state)

    # -- start-up ----------------------------------------------------------------------------
    def _first_frame_painted(self) -> None:
        if self._defer_pending:
            self._defer_pending = False
            QTimer.singleShot(0, self, self.finish_startup)  # after this frame reaches the screen

    def finish_startup(self) -> None:
        """Build the frame (menus, tool bars, docks), the canvas, panels and engine thread, and start on a
        document; does nothing the second time. Emits building first and ready when done."""
        if self.is_ready or self._building:
            return
        self._building = True
        self._defer_pending = False
        self.building.emit()
        self._build_frame()
        from sd_studio.ui.canvas import Canvas
        from sd_studio.ui.engine_thread import EngineThread
        from sd_studio.ui.errors import show_error
        from sd_studio.ui.focus import KeyboardHome
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
            QTimer.singleShot(0, self, self._first_start_layout)  # once the new docks are laid out
        else:
            # the dock sizes restored by _build_frame were laid out around empty docks; now they hold panels
            state = self.settings.value("window/state")
            if state is not None:
                QTimer.singleShot(0, self, lambda: self.restoreState(state))

        engine = self._engine_arg
        self.engine = engine if engine is not None else EngineThread(self)
        self.generation = GenerationController(self, self.generate_panel, self.canvas, self.engine)
        self.generation.error.connect(lambda exc: show_error(self, exc, "generate"))
        self.generation.message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        self.generation.engine_state.connect(self._set_engine_state)
        self.generation.model_used.connect(self._remember_model)
        self.generation.result_applied.connect(self._on_result_applied)
        self.engine.busy_changed.connect(self._on_busy)
        self.generate_panel.model_chosen.connect(self._remember_model)
        self.layers_panel.use_settings_requested.connect(self.use_layer_settings)
        for signal in (self.generate_panel.model.currentTextChanged, self.generate_panel.device.currentTextChanged):
            signal.connect(self._show_engine_choice)
        # The device and memory mode chosen in the panel are the next start's too (as the Settings dialog's are).
        self.generate_panel.device.currentTextChanged.connect(
            lambda text: self.settings.setValue("engine/device", text))
        self.generate_panel.memory_mode.currentTextChanged.connect(
            lambda text: self.settings.setValue("engine/memory_mode", text))

        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))
        self.canvas.cursor_moved.connect(self._on_cursor)
        self.canvas.message.connect(lambda text: self.statusBar().showMessage(text, 4000))
        self.options.changed.connect(self.canvas.update_cursor)
        self.options_bar.done.connect(self.give_keys_to_canvas)
        self.keyboard_home = KeyboardHome(self, self.canvas)
        self.set_mask_display(str(self.settings.value(MASK_DISPLAY_KEY, "tint")))
        self._load_settings()
        self._models_found.connect(self.generate_panel.add_found_models)
        QTimer.singleShot(500, self, self.scan_models)
        self.session.document_changed.connect(self._on_document)
        self.is_ready = True
        self.select_tool(next(n for n in self.tools if self.actions[f"tool_{n}"].isChecked()))
        self.session.start(self._initial_path)
        self.ready.emit()

    # -- building ----------------------------------------------------------------------------
    def _dock(self, title: str) -> QDockWidget:
        dock = QDockWidget(title, self, objectName=f"dock_{title.lower()}")
        dock.setWidget(QWidget())
        feature = QDockWidget.DockWidgetFeature
        dock.setFeatures(feature.DockWidgetMovable | feature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        return dock

    def _run(self, spec: ActionSpec, checked: bool) -> None:
        """Run an action's slot; the incident log names the action first, so an error in it is logged under it."""
        # a deferred window shows its menus before the document exists: triggers wait for finish_startup
        if not self.is_ready:
            return
        from sd_studio.incidents import set_context  # not at import: logging is not needed for the first frame
        from sd_studio.ui.actions import action_name, call_slot

        set_context(action=action_name(self.actions[spec.key]))
        call_slot(self, spec, checked)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.position_label = QLabel("")
        self.size_label = QLabel("")
        self.zoom_label = QLabel("100%")
        self.engine_label = QLabel("Engine: idle")
        for w in (self.position_label, self.size_label, self.zoom_label, self.engine_label):
            w.setContentsMargins(8, 0, 8, 0)
            bar.addPermanentWidget(w)

    # -- the document ------------------------------------------------------------------------
    @property
    def doc(self) -> Document | None:
        """The document being edited (the session's; None until finish_startup)."""
        return self.session.doc if self.session is not None else None

    @property
    def path(self) -> str | None:
        """The document's file, or None when it is saved nowhere yet."""
        return self.session.path if self.session is not None else None

    def open_path(self, path: str) -> bool:
        """Open a file in this window (after the unsaved-changes question); errors are shown, nothing changes."""
        self.finish_startup()
        return self.session.open_path(path)

    def _on_document(self, doc: Document) -> None:
        # Everything the window shows of a document starts afresh with the next one: the mask is visible
        # again, the Generate panel forgets the previous run, and the keys are the canvas's.
        self.canvas.set_document(doc)
        self.layers_panel.set_document(doc)
        self.history_panel.set_document(doc)
        self.generation.document_changed()
        self.generate_panel.reset()
        self.set_show_mask(True)
        self.size_label.setText(f"{doc.size.width} × {doc.size.height}")
        self.give_keys_to_canvas()

    def _update_title(self) -> None:
        self.setWindowTitle(self.session.title)
        if self.doc is not None:
            self.actions["undo"].setEnabled(self.doc.history.can_undo)
            self.actions["redo"].setEnabled(self.doc.history.can_redo)

    def _settle(self) -> None:
        """Turn edits still in progress (an opacity being dragged) into their undo step."""
        if self.is_ready:
            self.layers_panel.commit_opacity()

    def undo(self) -> None:
        """Undo the last change."""
        self._settle()
        self.doc.undo()

    def redo(self) -> None:
        """Redo the last undone change."""
        self._settle()
        self.doc.redo()

    def closeEvent(self, event) -> None:  # noqa: N802
        if not self.is_ready:  # closed before its first frame: nothing to keep, not even the layout
            event.accept()
            return
        if self.session.busy or not self.session.maybe_save():  # a file being read or written: let it finish
            event.ignore()
            return
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("window/size", self.size())
        self.engine.shutdown(2000)
        event.accept()

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.session.recent_files()
        for path in recent:
            self.recent_menu.addAction(Path(path).name, lambda p=path: self.open_path(p)).setToolTip(path)
        self.recent_menu.setEnabled(bool(recent))

    # -- keyboard ----------------------------------------------------------------------------
    def give_keys_to_canvas(self) -> None:
        """Let the canvas have the keyboard (tool keys, space to pan)."""
        if self.is_ready:
            self.canvas.setFocus(Qt.FocusReason.OtherFocusReason)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        # Esc that no widget used (a text field, a spin box, a list): the keys go back to the canvas
        if event.key() == Qt.Key.Key_Escape and self.is_ready:
            self.give_keys_to_canvas()
            return
        super().keyPressEvent(event)

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
        if pixels is not None:
            self.session.new_from_pixels(pixels)

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            event.acceptProposedAction()
            # Open after the drop returns, so a dialog never runs inside the drag's event loop.
            QTimer.singleShot(0, self, lambda: self.open_path(files[0]))

    # -- mask --------------------------------------------------------------------------------
    def set_show_mask(self, show: bool) -> None:
        """Show or hide the mask on the canvas (Ctrl+H)."""
        self.actions["show_mask"].setChecked(show)
        if self.is_ready:
            self.canvas.set_show_mask(show)

    def set_mask_display(self, style: str) -> None:
        """Show the mask as a red tint ("tint") or as erased ("erased": the checkerboard through it); remembered."""
        from sd_studio.ui.canvas import MASK_DISPLAYS

        style = style if style in MASK_DISPLAYS else MASK_DISPLAYS[0]
        self.actions["mask_erased" if style == "erased" else "mask_tint"].setChecked(True)
        self.settings.setValue(MASK_DISPLAY_KEY, style)
        self.canvas.set_mask_display(style)
        self.set_show_mask(True)

    def _on_result_applied(self) -> None:
        # the result lies under the mask: hide the mask so it is seen (a mask tool shows it again)
        if self.actions["show_mask"].isChecked() and not self.doc.mask.is_empty:
            self.set_show_mask(False)
            # after the generation's own line, added to it
            QTimer.singleShot(0, self, lambda: self.statusBar().showMessage(
                f"{self.statusBar().currentMessage()} The mask is hidden to show the result; "
                "Ctrl+H or a mask tool shows it again.".strip(), 10000))

    def clear_mask(self) -> None:
        """Empty the inpaint mask (undoable)."""
        if not self.doc.mask.is_empty:
            from sd_studio.document import commands as cmd

            self.doc.execute(cmd.clear_mask(self.doc))

    def invert_mask(self) -> None:
        """Swap the marked and unmarked parts of the mask (undoable)."""
        from sd_studio.document.mask import invert_mask

        self._execute(invert_mask(self.doc))

    def grow_mask(self, px: int = 8) -> None:
        """Grow the mask by px pixels (undoable)."""
        from sd_studio.document.mask import grow_mask

        self._execute(grow_mask(self.doc, px))

    def shrink_mask(self, px: int = 8) -> None:
        """Shrink the mask by px pixels (undoable)."""
        from sd_studio.document.mask import shrink_mask

        self._execute(shrink_mask(self.doc, px))

    def feather_mask(self, px: int = 8) -> None:
        """Soften the mask's edge over about px pixels (undoable)."""
        from sd_studio.document.mask import feather_mask

        self._execute(feather_mask(self.doc, px))

    def _execute(self, command) -> None:
        if command is not None:  # None: nothing would change
            self.doc.execute(command)

    # -- tools -------------------------------------------------------------------------------
    def select_tool(self, name: str) -> None:
        """Make a tool current; a tool that changes the mask shows it."""
        tool = self.tools[name]
        self.canvas.set_tool(tool)
        self.actions[f"tool_{name}"].setChecked(True)
        if tool.edits_mask:
            self.set_show_mask(True)

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

    def use_active_layer_settings(self) -> None:
        """Load the active layer's generation parameters into the Generate panel."""
        self.use_layer_settings(self.doc.active)

    def use_layer_settings(self, layer: Layer | None) -> None:
        """Load a generated layer's parameters back into the Generate panel."""
        text = layer.metadata.get("parameters") if layer is not None else None
        if not text:
            self.statusBar().showMessage("This layer carries no generation settings.", 4000)
            return
        from sd_studio.document.io.parameters import parse_parameters

        notes = self.generate_panel.load_parameters(parse_parameters(text))
        self.statusBar().showMessage(" ".join([f"Loaded the settings of “{layer.name}”.", *notes]), 6000)

    # -- settings and models -----------------------------------------------------------------
    def _remember_model(self, spec: str) -> None:
        from sd_studio.ui.dialogs import settings_list
        from sd_studio.ui.session import MAX_RECENT

        if not spec:
            return
        recent = [m for m in settings_list(self.settings, "models/recent") if m != spec]
        self.settings.setValue("models/recent", [spec, *recent][:MAX_RECENT])

    def _load_settings(self) -> None:
        from sd_studio.ui.dialogs import settings_list

        s = self.settings
        recent = settings_list(s, "models/recent")
        default = str(s.value("models/default", "") or "")
        models = [default, *[m for m in recent if m != default]] if default else recent
        self.generate_panel.set_models(models, default or None)
        self.generate_panel.device.setCurrentText(str(s.value("engine/device", "auto")))
        self.generate_panel.memory_mode.setCurrentText(str(s.value("engine/memory_mode", "auto")))
        self._show_engine_choice()

    def scan_models(self) -> None:
        """List the models in the configured folders and the Hugging Face cache, off the main thread."""
        from sd_studio.ui.dialogs import settings_list

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
        """Edit the settings; they apply to the next generation, and the history budget at once."""
        from sd_studio.ui.dialogs import SettingsDialog

        if SettingsDialog(self.settings, self).exec():
            self._load_settings()
            self.scan_models()
            self.session.apply_settings()

    def about(self) -> None:
        """Show the version."""
        from sd_studio import __version__

        QMessageBox.about(self, APP_NAME, f"<b>{APP_NAME}</b> {__version__}<br>"
                          "An image editor whose brush can ask Stable Diffusion for help.")

    # -- layout ------------------------------------------------------------------------------
    def _first_start_layout(self) -> None:
        # Qt splits docks evenly (and widens them when asked for heights). On a first start the Generate panel
        # gets what it asks for, so its settings and Generate button are in sight, as long as the Layers list
        # keeps LAYER_ROWS rows; History gets a few lines below, or on a short screen a tab behind Layers.
        generate_dock, layers_dock, history_dock = (self.docks[name] for name in ("Generate", "Layers", "History"))
        available = sum(d.height() for d in (generate_dock, layers_dock, history_dock))
        if available - self._generate_dock_height() - self._layers_dock_height(LAYER_ROWS) < HISTORY_HEIGHT:
            self.tabifyDockWidget(layers_dock, history_dock)
            layers_dock.raise_()
        QTimer.singleShot(0, self, self._share_dock_height)  # once the tab bar has taken its room

    def _share_dock_height(self) -> None:
        generate_dock, layers_dock, history_dock = (self.docks[name] for name in ("Generate", "Layers", "History"))
        tabbed = history_dock in self.tabifiedDockWidgets(layers_dock)
        docks = [generate_dock, layers_dock] if tabbed else [generate_dock, layers_dock, history_dock]
        available = sum(d.height() for d in docks)
        generate, layers = self._generate_dock_height(), self._layers_dock_height(LAYER_ROWS)
        if tabbed:
            layers = max(layers, available - generate)
            sizes = [max(120, available - layers), layers]
        else:
            sizes = [generate, available - generate - HISTORY_HEIGHT, HISTORY_HEIGHT]
        width = max(d.widget().sizeHint().width() for d in docks)
        self.resizeDocks(docks, [width] * len(docks), Qt.Orientation.Horizontal)  # the canvas keeps the rest
        self.resizeDocks(docks, sizes, Qt.Orientation.Vertical)
        if tabbed:  # Qt sizes a tabbed group with its tab bar: one correction once the sizes have landed
            QTimer.singleShot(0, self, lambda: self._correct_height(layers_dock, sizes[1], generate_dock, sizes[1]))

    def _correct_height(self, dock: QDockWidget, wanted: int, giver: QDockWidget, asked: int, tries: int = 4) -> None:
        short = wanted - dock.height()
        if short > 0 and tries:
            asked += short
            self.resizeDocks([giver, dock], [giver.height() + dock.height() - asked, asked], Qt.Orientation.Vertical)
            QTimer.singleShot(0, self, lambda: self._correct_height(dock, wanted, giver, asked, tries - 1))

    def _generate_dock_height(self) -> int:
        """The Generate dock's height that shows all its settings."""
        dock = self.docks["Generate"]
        return dock.widget().sizeHint().height() + dock.height() - dock.widget().height() + 6

    def _layers_dock_height(self, rows: int) -> int:
        """The Layers dock's height that shows rows rows of its list."""
        dock, view = self.docks["Layers"], self.layers_panel.list
        row = view.sizeHintForRow(0) if view.count() else 44
        return dock.height() - view.viewport().height() + rows * row + 2 * view.frameWidth()

    def _restore_geometry(self) -> None:
        """The geometry of the last session when its layout fits this screen (first_start False: finish_startup
        restores the dock layout too); otherwise (a first start, or a layout made on a bigger screen) most of
        the screen, and first_start is True (the caller may maximise; finish_startup lays the docks out afresh)."""
        screen = QGuiApplication.primaryScreen()
        area = screen.availableGeometry() if screen is not None else None
        geometry, saved = self.settings.value("window/geometry"), self.settings.value("window/size")
        fits = isinstance(saved, QSize) and saved.isValid() and (
            area is None or area.isEmpty() or (saved.width() <= area.width() and saved.height() <= area.height()))
        self.first_start = not (geometry is not None and fits and self.restoreGeometry(geometry))
        if not self.first_start:
            return
        if area is None or area.isEmpty():
            self.resize(1400, 900)
        else:
            self.resize(area.size() * 0.9)
            self.move(area.center() - self.rect().center())
