"""DocumentSession: the open document's life in the window: new, open, save, save as, export, recent files,
and whether it has unsaved changes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QSettings, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from sd_studio.errors import FileError
from sd_studio.ui import APP_NAME
from sd_studio.ui.dialogs import NewDocumentDialog, history_budget, settings_list
from sd_studio.ui.errors import show_error

if TYPE_CHECKING:
    from sd_studio.document.document import Document

OPEN_FILTER = "Images and projects (*.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp *.gif *.ora);;All files (*)"
PROJECT_FILTER = "OpenRaster project (*.ora)"
IMAGE_FILTER = "PNG image (*.png);;JPEG image (*.jpg *.jpeg);;WebP image (*.webp)"
FLAT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
"""The image formats Save, Save As and Export write (the project format aside)."""
MAX_RECENT = 10


class DocumentSession(QObject):
    """Owns the window's document and its file. Every document, however it comes (new, opened, pasted,
    restored after a crash), enters through set_document, which applies the history budget and emits
    document_changed. Save and Save As write the .ora project, or a flat image when that loses nothing;
    Export writes a flattened image and never clears the unsaved mark (as GIMP's Export)."""

    document_changed = Signal(object)  # the Document now open; .path is its file
    state_changed = Signal()  # the file name or the unsaved state changed (the title follows)
    recent_changed = Signal()
    message = Signal(str, int)  # a status-bar line and how long it shows (ms)

    def __init__(self, window: QWidget, settings: QSettings, settle: Callable[[], None] | None = None) -> None:
        """window parents the dialogs; settle turns edits in progress into their undo step before a save."""
        super().__init__(window)
        self.window = window
        self.settings = settings
        self.doc: Document | None = None
        self.path: str | None = None
        self.export_path: str | None = None  # the last Export of this document, offered again
        self.busy = False  # a file is being read or written on a worker thread
        self._settle = settle or (lambda: None)

    # -- the one way in ----------------------------------------------------------------------
    def set_document(self, doc: Document, path: str | None) -> None:
        """Edit doc (saved as path, or nowhere) from now on; the previous document is dropped without asking
        (callers ask first: maybe_save)."""
        if self.doc is not None:
            self.doc.events.history_changed.disconnect(self._on_history)
        doc.history.budget_bytes = history_budget(self.settings)
        self.doc, self.path, self.export_path = doc, os.fspath(path) if path else None, None
        doc.events.history_changed.connect(self._on_history)
        self.document_changed.emit(doc)
        self.state_changed.emit()

    def apply_settings(self) -> None:
        """The Settings changed: the open document's history takes the new budget too."""
        if self.doc is not None:
            self.doc.history.budget_bytes = history_budget(self.settings)

    def _on_history(self) -> None:
        self.state_changed.emit()

    @property
    def title(self) -> str:
        """The window title: `NAME — SD Studio`, with `*` while there are unsaved changes."""
        name = Path(self.path).name if self.path else "Untitled"
        modified = "*" if self.doc is not None and self.doc.is_modified else ""
        return f"{name}{modified} — {APP_NAME}"

    # -- starting ----------------------------------------------------------------------------
    def start(self, path: str | None) -> None:
        """The first document: the file at path, or (none given, or it cannot be opened: the error is shown
        over it) a new 1024 x 1024 one."""
        from sd_studio.document.document import Document

        error = None
        if path:
            try:
                doc = self._load(path)
            except Exception as exc:  # noqa: BLE001 - shown below, over a new document
                error, doc = exc, None
            if doc is not None:
                self.set_document(doc, path)
                self._add_recent(os.fspath(path))
                return
        self.set_document(Document.new(1024, 1024), None)
        if error is not None:
            QTimer.singleShot(0, self, lambda: show_error(self.window, error, f"open {path}"))

    def new_document(self) -> None:
        """Ask for a size and background, then start a new document."""
        if not self.maybe_save():
            return
        dialog = NewDocumentDialog(self.window, *self.doc.size)
        if dialog.exec() == NewDocumentDialog.DialogCode.Accepted:
            from sd_studio.document.document import Document

            self.set_document(Document.new(*dialog.values()), None)

    def new_from_pixels(self, pixels) -> None:
        """Start a new document holding an (h, w, 4) image (Paste as new document), after asking about
        unsaved changes."""
        if self.maybe_save():
            from sd_studio.document.document import Document

            self.set_document(Document.from_pixels(pixels), None)

    # -- opening -----------------------------------------------------------------------------
    def open_dialog(self) -> None:
        """Choose a file to open."""
        path, _ = QFileDialog.getOpenFileName(self.window, "Open", self._last_dir(), OPEN_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> bool:
        """Open a file (after the unsaved-changes question); errors are shown and nothing changes."""
        if not self.maybe_save():
            return False
        try:
            doc = self._load(path)
        except Exception as exc:  # noqa: BLE001 - every failure is a dialog, the document stays
            show_error(self.window, exc, f"open {path}")
            return False
        if doc is None:  # cancelled
            return False
        self.set_document(doc, path)
        self._add_recent(os.fspath(path))
        self.message.emit(f"Opened {path}", 4000)
        return True

    def _load(self, path: str):
        """The document at path, decoded off the main thread (the window keeps painting); None if cancelled.
        What the file holds that SD Studio shows differently (an unknown blend mode) is said in the status bar."""
        from sd_studio.ui.opening import load_in_background

        self.busy = True
        try:
            opened = load_in_background(self.window, os.fspath(path))
        finally:
            self.busy = False
        if opened is None:
            return None
        if opened.warnings:
            more = f" (and {len(opened.warnings) - 1} more)" if len(opened.warnings) > 1 else ""
            QTimer.singleShot(0, self, lambda: self.message.emit(f"{opened.warnings[0]}{more}", 15000))
        return opened.document

    # -- saving ------------------------------------------------------------------------------
    def save(self) -> bool:
        """Save to the document's file when that keeps everything (an .ora project, or a flat image of a
        document a flat image holds whole); otherwise Save As. True when saved."""
        if self.path is None or self._flat_losses(self.path):
            return self.save_as()
        return self._save_to(self.path)

    def save_as(self) -> bool:
        """Choose a file and save there: an .ora project, or a flat image when it loses nothing (else the
        user picks the project or a flattened copy that leaves the document unsaved). True when saved."""
        keeps_file = self.path is not None and not self._flat_losses(self.path)
        suggestion = self.path if keeps_file else str(Path(self._last_dir()) / f"{self._stem()}.ora")
        while True:
            path, chosen = QFileDialog.getSaveFileName(self.window, "Save As", suggestion,
                                                       f"{PROJECT_FILTER};;{IMAGE_FILTER}")
            if not path:
                return False
            path = with_extension(path, chosen)
            losses = self._flat_losses(path)
            if not losses:
                return self._save_to(path)
            answer = self._ask_flat(path, losses)
            if answer == "project":
                suggestion = str(Path(path).with_suffix(".ora"))
                continue  # the dialog again, so an existing project is never replaced without asking
            if answer == "export":
                self._export_to(path)
            return False

    def export(self) -> bool:
        """Write the flattened image to a PNG, JPEG or WebP file; the document keeps its own file and its
        unsaved mark. True when written."""
        suggestion = self.export_path or str(Path(self._last_dir()) / f"{self._stem()}.png")
        path, chosen = QFileDialog.getSaveFileName(self.window, "Export", suggestion, IMAGE_FILTER)
        if not path:
            return False
        path = with_extension(path, chosen)
        if Path(path).suffix.lower() not in FLAT_SUFFIXES:
            show_error(self.window, FileError(f"{Path(path).name}: Export writes PNG, JPEG or WebP images; "
                                              "Save As writes the .ora project."), f"export {path}")
            return False
        return self._export_to(path)

    def maybe_save(self) -> bool:
        """Ask what to do with unsaved changes (Save / Discard / Cancel); False means keep the document open."""
        self._settle()
        if self.doc is None or not self.doc.is_modified:
            return True
        name = Path(self.path).name if self.path else "Untitled"
        box = QMessageBox(QMessageBox.Icon.Warning, APP_NAME, f"Save the changes to “{name}” before closing it?",
                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                          | QMessageBox.StandardButton.Cancel, self.window)
        box.setInformativeText("Your changes will be lost if you don't save them.")
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        box.setObjectName("unsavedBox")
        answer = box.exec()
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def _flat_losses(self, path: str) -> str:
        """What writing the document to path loses ("" for a project, or a flat image that holds it all)."""
        if Path(path).suffix.lower() == ".ora":
            return ""
        self._settle()
        return flat_copy_loses(self.doc, path)

    def _ask_flat(self, path: str, losses: str) -> str:
        """"project", "export" or "" (cancel): what to do when a flat image would lose part of the document."""
        box = QMessageBox(QMessageBox.Icon.Question, APP_NAME,
                          f"{Path(path).name} would keep only the flattened image, without {losses}.",
                          QMessageBox.StandardButton.Cancel, self.window)
        box.setObjectName("flatBox")
        box.setInformativeText("Save the project as .ora to keep everything, or export a flattened copy "
                               "(the document then still has unsaved changes).")
        project = box.addButton("Save as .ora...", QMessageBox.ButtonRole.AcceptRole)
        export = box.addButton("Export flattened copy", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(project)
        box.exec()
        return {project: "project", export: "export"}.get(box.clickedButton(), "")

    def _save_to(self, path: str) -> bool:
        """Write the document to path and make it the document's file, saved; errors are shown."""
        if not self._write(path, "save"):
            return False
        self.path = os.fspath(path)
        self._add_recent(self.path)
        self.message.emit(f"Saved {path}", 4000)
        self.state_changed.emit()
        return True

    def _export_to(self, path: str) -> bool:
        """Write the flattened image to path; the document's file and unsaved mark stay as they were."""
        if not self._write(path, "export", mark_clean=False):
            return False
        self.export_path = os.fspath(path)
        unsaved = " (the document itself still has unsaved changes)" if self.doc.is_modified else ""
        self.message.emit(f"Exported {path}{unsaved}", 6000)
        return True

    def _write(self, path: str, doing: str, mark_clean: bool = True) -> bool:
        """Write a snapshot of the document to path on a worker thread while the window paints; with
        mark_clean, what was written becomes the saved state unless the document changed meanwhile."""
        from sd_studio.document.io import save_document
        from sd_studio.document.io.recovery import snapshot_document
        from sd_studio.ui.opening import run_in_background

        self._settle()
        doc, changed = self.doc, []

        def note() -> None:
            changed.append(True)  # a generation's result landed during the write: that is not saved

        doc.events.history_changed.connect(note)
        self.busy = True
        try:
            snapshot = snapshot_document(doc)
            run_in_background(self.window, f"Saving {Path(path).name}…", lambda: save_document(path, snapshot),
                              title="Saving", cancellable=False)
        except Exception as exc:  # noqa: BLE001 - every failure is a dialog; the file on disk is intact
            show_error(self.window, exc, f"{doing} {path}")
            return False
        finally:
            self.busy = False
            doc.events.history_changed.disconnect(note)
        if mark_clean and not changed:
            doc.history.mark_clean()
        return True

    # -- recent files ------------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        """The files opened or saved lately, the newest first."""
        return settings_list(self.settings, "files/recent")

    def _add_recent(self, path: str) -> None:
        recent = [p for p in self.recent_files() if p != path]
        self.settings.setValue("files/recent", [path, *recent][:MAX_RECENT])
        self.settings.setValue("files/last_dir", str(Path(path).parent))
        self.recent_changed.emit()

    def _last_dir(self) -> str:
        if self.path:
            return str(Path(self.path).parent)
        return str(self.settings.value("files/last_dir", str(Path.home())))

    def _stem(self) -> str:
        return Path(self.path).stem if self.path else "Untitled"


def flat_copy_loses(doc: Document, path: str) -> str:
    """What a flat image at path (by its extension) would not hold of doc, as a phrase ("its 2 layers, the
    mask"); "" when it holds everything: one plain layer inside the canvas, no mask, and transparency only
    where the format keeps it."""
    from sd_studio.document.layer import BlendMode

    losses = []
    if len(doc.layers) != 1:
        losses.append(f"its {len(doc.layers)} layers")
    else:
        layer = doc.layers[0]
        if not layer.visible or layer.opacity < 1 or layer.blend_mode is not BlendMode.SRC_OVER or layer.locked:
            losses.append("the layer's settings (visibility, opacity, blend mode, lock)")
        if _paints_outside(layer, doc.bounds):
            losses.append("the parts of the layer outside the canvas")
    if not doc.mask.is_empty:
        losses.append("the mask")
    if Path(path).suffix.lower() in (".jpg", ".jpeg", ".bmp") and (doc.composite()[..., 3] < 255).any():
        losses.append("its transparency")
    return ", ".join(losses)


def _paints_outside(layer, canvas) -> bool:
    """True when the layer has a visible pixel outside the canvas (its tiles may reach past it, empty)."""
    from sd_studio.document.geometry import Bounds

    area = layer.document_bounds()
    if area.is_empty or canvas.contains(area):
        return False
    inside = area.intersect(canvas)
    if inside.is_empty:
        return True  # the whole layer lies off the canvas: it has tiles, so it had pixels
    strips = (Bounds.from_corners(area.x, area.y, area.right, inside.y),  # above, below, left, right
              Bounds.from_corners(area.x, inside.bottom, area.right, area.bottom),
              Bounds.from_corners(area.x, inside.y, inside.x, inside.bottom),
              Bounds.from_corners(inside.right, inside.y, area.right, inside.bottom))
    return any(not strip.is_empty and (layer.read(strip)[..., 3] > 0).any() for strip in strips)


def with_extension(path: str, chosen_filter: str) -> str:
    """path as typed, or with the extension of the chosen filter when it has none (.png when no filter names one)."""
    if Path(path).suffix:
        return path
    for ext in (".ora", ".png", ".jpg", ".webp"):
        if ext[1:] in chosen_filter.lower():
            return path + ext
    return path + ".png"
