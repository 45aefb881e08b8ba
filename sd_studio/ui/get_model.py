"""The Get a model dialog: download a recommended model (progress, speed, time left, cancel), or use models already
on disk (a file or folder, and the model folders of AUTOMATIC1111 and ComfyUI installations, ticked into QSettings).

Downloads and the search for other programs' folders run on worker threads; their reports wait in a queue
that a timer reads on the main thread, so nothing slow ever runs there and a closed dialog leaves nothing
dangling (a download that is still stopping just ends).
"""

from __future__ import annotations

import html
import queue
import threading
import time
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from sd_studio.ui.dialogs import settings_list
from sd_studio.ui.icons import icon

FOLDER_KEYS = {
    "checkpoint": "models/folders",  # the Model box and the Settings dialog's "Model folders"
    "lora": "models/lora_folders",
    "vae": "models/vae_folders",
    "upscaler": "models/upscaler_folders",
}
"""The QSettings list each kind of ticked folder is kept in."""

POLL_MS = 100  # how often the worker threads' reports are read


class Background:
    """A function run on a worker thread whose reports (report(kind, value)) and outcome reach the main thread:
    on_report(kind, value) for each report, then on_done(result) or on_failed(exception). cancel() asks it to stop
    (the function polls `cancelled`)."""

    def __init__(self, parent: QWidget, work, on_report=None, on_done=None, on_failed=None) -> None:
        self._events: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._handlers = (on_report, on_done, on_failed)
        self._timer = QTimer(parent, interval=POLL_MS, timeout=self._deliver)
        self._thread = threading.Thread(target=self._run, args=(work,), name="sd-studio get model", daemon=True)
        self.finished = False

    def start(self) -> Background:
        """Start the work; returns self."""
        self._timer.start()
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the work to stop at its next check."""
        self._cancel.set()

    @property
    def alive(self) -> bool:
        """True while the work's thread runs (its last reports may still wait to be delivered)."""
        return self._thread.is_alive()

    @property
    def cancelled(self) -> bool:
        """True once cancel() was called (the work polls this)."""
        return self._cancel.is_set()

    def report(self, kind: str, value) -> None:
        """Called by the work on its thread: hand (kind, value) to on_report on the main thread."""
        self._events.put(("report", (kind, value)))

    def _run(self, work) -> None:
        try:
            self._events.put(("done", work(self)))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, shown there
            self._events.put(("failed", exc))

    def _deliver(self) -> None:
        on_report, on_done, on_failed = self._handlers
        while True:
            try:
                what, value = self._events.get_nowait()
            except queue.Empty:
                return
            if what == "report":
                if on_report is not None:
                    on_report(*value)
                continue
            self._timer.stop()
            self.finished = True
            handler = on_done if what == "done" else on_failed
            if handler is not None:
                handler(value)
            return


class GetModelDialog(QDialog):
    """Download a model from the recommended list into the models folder, or use models already on disk.

    Emits model_chosen(spec) for a checkpoint just downloaded or picked (for the Model box), and models_changed()
    when the models on disk or the ticked model folders changed (the window rescans them).
    """

    model_chosen = Signal(str)
    models_changed = Signal()

    def __init__(self, settings: QSettings, parent: QWidget | None = None, models_folder: Path | None = None,
                 catalog=None, places: list[Path] | None = None) -> None:
        super().__init__(parent)
        from sd_studio.engine.models.discovery import default_models_folder

        self.setWindowTitle("Get a model")
        self.setObjectName("getModelDialog")
        self.settings = settings
        self.models_folder = Path(models_folder) if models_folder is not None else default_models_folder()
        self._places = places
        self._job: Background | None = None
        self._job_entry = None
        self._rate = None
        self._search: Background | None = None
        self.tabs = QTabWidget(objectName="getModelTabs")
        self.tabs.addTab(self._download_tab(catalog), "Download")
        self.tabs.addTab(self._have_tab(), "Use a model I have")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(buttons)
        self.resize(760, 520)
        self.tabs.currentChanged.connect(lambda i: i == 1 and self.find_installations())

    # -- the Download tab ----------------------------------------------------------------------
    def _download_tab(self, catalog) -> QWidget:
        from sd_studio.engine.models.catalog import load_catalog
        from sd_studio.errors import ModelError

        tab = QWidget()
        intro = QLabel(
            "Models come from the Hugging Face hub and are saved in "
            f"<a href='{Path(self.models_folder).as_uri()}'>{html.escape(str(self.models_folder))}</a>. "
            "Fill works without any model.", wordWrap=True, openExternalLinks=True)
        self.table = QTreeWidget(objectName="catalog", rootIsDecorated=False, uniformRowHeights=True)
        self.table.setHeaderLabels(["Model", "Kind", "Size", "Licence", "On this computer"])
        self.table.header().setStretchLastSection(False)
        self.table.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, 5):
            self.table.header().setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.details = QLabel(objectName="modelDetails", wordWrap=True, openExternalLinks=True,
                              textInteractionFlags=Qt.TextInteractionFlag.TextBrowserInteraction)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.download_button = QPushButton("Download", objectName="downloadButton")
        self.download_button.setIcon(icon("mdi6.download"))
        self.cancel_button = QPushButton("Cancel download", objectName="cancelDownload", enabled=False)
        self.cancel_button.setIcon(icon("mdi6.stop-circle-outline"))
        self.use_button = QPushButton("Use this model", objectName="useModel", enabled=False)
        self.progress = QProgressBar(objectName="downloadProgress", textVisible=True, visible=False)
        self.progress.setRange(0, 1000)  # a fraction: byte counts overflow the bar's int
        self.message = QLabel(objectName="downloadMessage", wordWrap=True)
        row = QHBoxLayout()
        row.addWidget(self.download_button)
        row.addWidget(self.cancel_button)
        row.addStretch(1)
        row.addWidget(self.use_button)
        layout = QVBoxLayout(tab)
        layout.addWidget(intro)
        layout.addWidget(self.table, 3)
        layout.addWidget(self.details, 2)
        layout.addLayout(row)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        try:
            self.entries = tuple(catalog) if catalog is not None else load_catalog()
        except ModelError as exc:
            self.entries = ()
            self._say(str(exc), error=True)
        for entry in self.entries:
            item = QTreeWidgetItem([entry.name, entry.kind_label, entry.size_label, entry.licence.name, ""])
            item.setData(0, Qt.ItemDataRole.UserRole, entry.id)
            item.setToolTip(0, entry.good_for)
            if entry.recommended:
                item.setIcon(0, icon("mdi6.star"))
            self.table.addTopLevelItem(item)
        self.table.currentItemChanged.connect(self._show_entry)
        self.download_button.clicked.connect(self.download)
        self.cancel_button.clicked.connect(self.cancel_download)
        self.use_button.clicked.connect(self._use_entry)
        self.table.itemDoubleClicked.connect(lambda *_: self.download_button.isEnabled() and self.download())
        self._refresh_status()
        if self.entries:
            self.table.setCurrentItem(self.table.topLevelItem(0))
        return tab

    def entry(self, entry_id: str | None = None):
        """The catalog entry with this id, or the one selected (None when nothing is)."""
        if entry_id is None:
            item = self.table.currentItem()
            entry_id = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        return next((e for e in self.entries if e.id == entry_id), None)

    def select(self, entry_id: str) -> None:
        """Select the catalog entry with this id."""
        for i in range(self.table.topLevelItemCount()):
            if self.table.topLevelItem(i).data(0, Qt.ItemDataRole.UserRole) == entry_id:
                self.table.setCurrentItem(self.table.topLevelItem(i))

    def _show_entry(self, *_args) -> None:
        entry = self.entry()
        if entry is None:
            self.details.setText("")
            return
        where = entry.destination(self.models_folder)
        parts = [f"<b>{html.escape(entry.name)}</b> — {html.escape(entry.good_for)}"]
        if entry.source:
            parts.append(html.escape(entry.source))
        parts.append(f"From <a href='https://huggingface.co/{entry.repo}'>{html.escape(entry.repo)}</a> under the "
                     f"<a href='{html.escape(entry.licence.url)}'>{html.escape(entry.licence.name)}</a> licence; "
                     "read it before you use the model.")
        parts.append(f"Saved as {html.escape(str(where))}")
        if entry.unchecked:
            parts.append(f"<i>{html.escape(entry.unchecked)}</i>")
        self.details.setText("<br>".join(parts))
        self._update_buttons()

    def _refresh_status(self) -> None:
        from sd_studio.engine.models.catalog import format_size
        from sd_studio.engine.models.downloads import partial_bytes

        for i in range(self.table.topLevelItemCount()):
            item = self.table.topLevelItem(i)
            entry = self.entry(item.data(0, Qt.ItemDataRole.UserRole))
            if self._job is not None and not self._job.finished and entry is self._job_entry:
                continue  # the progress bar speaks for it
            if entry.installed(self.models_folder):
                item.setText(4, "Ready")
                item.setIcon(4, icon("mdi6.check-circle-outline"))
            else:
                kept = partial_bytes(entry, self.models_folder)
                item.setText(4, f"{format_size(kept)} of {entry.size_label}, to continue" if kept else "")
                item.setIcon(4, icon("mdi6.pause-circle-outline") if kept else icon(""))
        self._update_buttons()

    def _update_buttons(self) -> None:
        entry = self.entry()
        running = self._job is not None and not self._job.finished
        installed = entry is not None and entry.installed(self.models_folder)
        self.download_button.setEnabled(entry is not None and not running and not installed)
        partial = entry is not None and self.table.currentItem() is not None and bool(self.table.currentItem().text(4))
        self.download_button.setText("Continue download" if partial and not installed else "Download")
        self.cancel_button.setEnabled(running)
        self.use_button.setEnabled(installed and entry.kind == "checkpoint")

    def download(self) -> None:
        """Download the selected entry on a worker thread (the bar shows bytes, speed and time left)."""
        from sd_studio.engine.models.downloads import TransferRate, download_entry

        entry = self.entry()
        if entry is None or (self._job is not None and not self._job.finished):
            return
        folder = self.models_folder
        self._job_entry = entry
        self._rate = TransferRate()
        self._say("")
        self.progress.setValue(0)
        self.progress.setFormat(f"Starting the download of {entry.name}…")
        self.progress.setVisible(True)
        self._job = Background(
            self,
            lambda job: download_entry(entry, folder, progress=lambda p: job.report("progress", p),
                                       cancel=lambda: job.cancelled),
            on_report=self._on_progress, on_done=self._on_downloaded, on_failed=self._on_download_failed,
        ).start()
        self._update_buttons()

    def cancel_download(self) -> None:
        """Stop the running download between pieces; what arrived is kept for the next one."""
        if self._job is not None and not self._job.finished:
            self._job.cancel()
            self.progress.setFormat("Stopping…")
            self.cancel_button.setEnabled(False)

    @property
    def downloading(self) -> bool:
        """True while a download runs."""
        return self._job is not None and not self._job.finished

    def _on_progress(self, _kind: str, p) -> None:
        from sd_studio.engine.models.catalog import format_size
        from sd_studio.engine.models.downloads import format_duration

        if p.total <= 0:
            return
        self.progress.setValue(round(1000 * p.step / p.total))
        if p.phase == "checking":
            self.progress.setFormat(f"Checking what was downloaded before: {format_size(p.step)}")
            return
        self._rate.add(time.monotonic(), p.step)
        text = f"{format_size(p.step)} of {format_size(p.total)}"
        speed, left = self._rate.speed, self._rate.time_left(p.total)
        if speed:
            text += f" · {format_size(speed)}/s"
        if left is not None and p.step < p.total:
            text += f" · {format_duration(left)} left"
        self.progress.setFormat(text)

    def _on_downloaded(self, path) -> None:
        entry = self._job_entry
        self.progress.setVisible(False)
        self._refresh_status()
        if entry.kind == "checkpoint":
            self._say(f"{entry.name} is ready and chosen in the Model box.")
            self.models_changed.emit()
            self.model_chosen.emit(str(path))
        elif entry.kind == "lora":
            self._say(f"{entry.name} is saved as {path}; apply it with --lora on the command line.")
        else:
            self._say(f"{entry.name} is saved in {path}.")

    def _on_download_failed(self, exc) -> None:
        from sd_studio.errors import Cancelled, SDStudioError
        from sd_studio.ui.errors import error_text

        self.progress.setVisible(False)
        self._refresh_status()
        if isinstance(exc, Cancelled):
            self._say(str(exc))
        elif isinstance(exc, SDStudioError):
            self._say(str(exc), error=True)
        else:
            from sd_studio.incidents import log_exception

            log_exception(exc, "Get a model: download")
            self._say(error_text(exc), error=True)

    def _use_entry(self) -> None:
        entry = self.entry()
        if entry is not None and entry.installed(self.models_folder):
            self.model_chosen.emit(str(entry.destination(self.models_folder)))
            self._say(f"{entry.name} is chosen in the Model box.")

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: palette(highlight);" if not error else "color: #c0392b;")
        self.message.setText(text)

    # -- the Use a model I have tab --------------------------------------------------------------
    def _have_tab(self) -> QWidget:
        tab = QWidget()
        intro = QLabel("Choose a model file, or tick the model folders of AUTOMATIC1111 and ComfyUI to list their "
                       "models in the Model box (they stay where they are).", wordWrap=True)
        self.file_button = QPushButton("Choose a model file…", objectName="chooseModelFile")
        self.file_button.setIcon(icon("mdi6.file-outline"))
        self.folder_button = QPushButton("Add a folder…", objectName="addModelFolder")
        self.folder_button.setIcon(icon("mdi6.folder-plus-outline"))
        self.folder_button.setToolTip("A folder of models, a diffusers model, or an AUTOMATIC1111 or ComfyUI folder")
        self.folders = QListWidget(objectName="appFolders")
        self.search_status = QLabel(objectName="searchStatus", wordWrap=True)
        row = QHBoxLayout()
        row.addWidget(self.file_button)
        row.addWidget(self.folder_button)
        row.addStretch(1)
        layout = QVBoxLayout(tab)
        layout.addWidget(intro)
        layout.addLayout(row)
        layout.addWidget(self.folders, 1)
        layout.addWidget(self.search_status)
        self.file_button.clicked.connect(self._choose_file)
        self.folder_button.clicked.connect(self._choose_folder)
        self.folders.itemChanged.connect(self._on_tick)
        for kind, key in FOLDER_KEYS.items():  # what is ticked already, found or not
            for path in settings_list(self.settings, key):
                self._add_folder_item(kind, Path(path), f"Model folder ({_KIND_WORDS[kind]})", ticked=True)
        return tab

    def find_installations(self) -> None:
        """Look for AUTOMATIC1111 and ComfyUI in the usual places on a worker thread (once) and list their folders."""
        if self._search is not None:
            return
        from sd_studio.engine.models.discovery import find_app_folders

        self.search_status.setText("Looking for AUTOMATIC1111 and ComfyUI in the usual places…")
        places = self._places
        self._search = Background(self, lambda job: find_app_folders(places), on_done=self._on_found,
                                  on_failed=lambda exc: self.search_status.setText(
                                      f"The search for other programs' models stopped ({exc})."))
        self._search.start()

    def _on_found(self, found) -> None:
        for folder in found.folders:
            self._add_folder_item(folder.kind, folder.path, folder.label, ticked=False)
        apps = sorted({f.app for f in found.folders})
        text = (f"Found {' and '.join(apps)}. Tick a folder to list its models." if apps else
                "No AUTOMATIC1111 or ComfyUI was found in the usual places; use Add a folder… to point to one.")
        self.search_status.setText(" ".join([text, *found.notes]))

    def _add_folder_item(self, kind: str, path: Path, label: str, ticked: bool) -> None:
        key = FOLDER_KEYS.get(kind)
        if key is None:
            return
        for i in range(self.folders.count()):
            item = self.folders.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == (kind, str(path)):
                if label and not item.text().startswith(label):  # a ticked folder that the search recognised
                    item.setText(f"{label} — {path}")
                return
        item = QListWidgetItem(f"{label} — {path}")
        item.setData(Qt.ItemDataRole.UserRole, (kind, str(path)))
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        ticked = ticked or str(path) in settings_list(self.settings, key)
        with _Quiet(self.folders):
            item.setCheckState(Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)
            self.folders.addItem(item)

    def _on_tick(self, item: QListWidgetItem) -> None:
        kind, path = item.data(Qt.ItemDataRole.UserRole)
        key = FOLDER_KEYS[kind]
        folders = [f for f in settings_list(self.settings, key) if f != path]
        if item.checkState() == Qt.CheckState.Checked:
            folders.append(path)
        self.settings.setValue(key, folders)
        self.models_changed.emit()

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a model file", str(Path.home()),
                                              "Safetensors models (*.safetensors);;All files (*)")
        if path:
            self.use_path(Path(path))

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a folder with models", str(Path.home()))
        if path:
            self.use_path(Path(path))

    def use_path(self, path: Path) -> None:
        """Use what the user picked: a model file or diffusers folder is chosen in the Model box; an AUTOMATIC1111
        or ComfyUI folder adds its model folders, ticked; any other folder with models becomes a model folder."""
        from sd_studio.engine.models.discovery import app_folders_in, find_models

        if path.is_file() or (path / "model_index.json").is_file():
            self.model_chosen.emit(str(path))
            self.search_status.setText(f"{path.name} is chosen in the Model box.")
            return
        found = app_folders_in(path)
        if found.folders:
            for folder in found.folders:
                self._add_folder_item(folder.kind, folder.path, folder.label, ticked=True)
                self._tick(folder.kind, folder.path)
            self.search_status.setText(" ".join([f"Added the model folders of {path}.", *found.notes]))
        elif find_models([path], include_default=False):
            self._add_folder_item("checkpoint", path, "Model folder", ticked=True)
            self._tick("checkpoint", path)
            self.search_status.setText(f"Added {path}; its models are listed in the Model box.")
        else:
            self.search_status.setText(f"{path} holds no Stable Diffusion checkpoint (.safetensors) or diffusers "
                                       "model, nor an AUTOMATIC1111 or ComfyUI installation.")

    def _tick(self, kind: str, path: Path) -> None:
        key = FOLDER_KEYS[kind]
        folders = settings_list(self.settings, key)
        if str(path) not in folders:
            self.settings.setValue(key, [*folders, str(path)])
            self.models_changed.emit()

    # -- closing -----------------------------------------------------------------------------------
    def reject(self) -> None:
        """Close; a running download is first stopped, if the user agrees (what arrived is kept)."""
        if self.downloading and self._job.alive:
            answer = QMessageBox.question(
                self, "Get a model", f"{self._job_entry.name} is still downloading. Stop it? What arrived is kept, "
                "and the next download continues from there.")
            if answer != QMessageBox.StandardButton.Yes:
                return
            self.cancel_download()
        if self._search is not None:
            self._search.cancel()
        super().reject()


_KIND_WORDS = {"checkpoint": "checkpoints", "lora": "LoRAs", "vae": "VAEs", "upscaler": "upscalers"}


class _Quiet:
    """Blocks a widget's signals for a `with` block."""

    def __init__(self, widget: QWidget) -> None:
        self.widget = widget

    def __enter__(self) -> None:
        self._was = self.widget.blockSignals(True)

    def __exit__(self, *exc) -> None:
        self.widget.blockSignals(self._was)


def open_get_model_dialog(parent: QWidget, settings: QSettings, panel=None, rescan=None) -> GetModelDialog:
    """Show the Get a model dialog beside the editor (not modal: painting goes on while a model downloads).

    One dialog per window: asked again, the open one comes to the front. A model it downloads or the user picks
    is put in panel's Model box (a GeneratePanel, optional); rescan() (optional, the window's scan_models) runs
    whenever the models on disk or the ticked folders change.
    """
    dialog = parent.findChild(GetModelDialog) if parent is not None else None
    if dialog is None:
        dialog = GetModelDialog(settings, parent)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if rescan is not None:
            dialog.models_changed.connect(rescan)
        if panel is not None:
            dialog.model_chosen.connect(panel.choose_model)
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog
