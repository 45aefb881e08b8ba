"""Small dialogs: a new document's size and background, and the application settings."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QColorDialog, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLineEdit, QPlainTextEdit, QPushButton,
    QSpinBox, QVBoxLayout, QWidget,
)


BACKGROUNDS = {"White": (255, 255, 255, 255), "Black": (0, 0, 0, 255), "Transparent": None}


class NewDocumentDialog(QDialog):
    """Asks for a new document's width, height and background."""

    def __init__(self, parent: QWidget | None = None, width: int = 1024, height: int = 1024) -> None:
        super().__init__(parent)
        self.setWindowTitle("New document")
        from sd_studio.document.document import MAX_SIDE  # numpy loads after the window shows

        self.width_box = QSpinBox(minimum=1, maximum=MAX_SIDE, value=width, suffix=" px")
        self.height_box = QSpinBox(minimum=1, maximum=MAX_SIDE, value=height, suffix=" px")
        self.background = QComboBox()
        self.background.addItems([*BACKGROUNDS, "Colour..."])
        self._color = QColor(255, 255, 255)
        self.background.activated.connect(self._pick_color)
        form = QFormLayout(self)
        form.addRow("Width", self.width_box)
        form.addRow("Height", self.height_box)
        form.addRow("Background", self.background)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _pick_color(self, index: int) -> None:
        if self.background.itemText(index) == "Colour...":
            color = QColorDialog.getColor(self._color, self, "Background colour")
            if color.isValid():
                self._color = color

    def values(self) -> tuple[int, int, tuple[int, int, int, int] | None]:
        """(width, height, background RGBA or None for transparent)."""
        text = self.background.currentText()
        bg = BACKGROUNDS.get(text, (self._color.red(), self._color.green(), self._color.blue(), 255))
        return self.width_box.value(), self.height_box.value(), bg


class SettingsDialog(QDialog):
    """Edits the settings kept in QSettings: model folders, default model, device, memory mode, history budget,
    autosave interval."""

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle("Settings")
        self.folders = QPlainTextEdit(placeholderText="One folder per line")
        self.folders.setPlainText("\n".join(settings_list(settings, "models/folders")))
        self.default_model = QLineEdit(str(settings.value("models/default", "") or ""))
        self.default_model.setPlaceholderText("Hub id, model folder or .safetensors file")
        browse = QPushButton("Add folder...")
        browse.clicked.connect(self._add_folder)
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda", "mps"])
        self.device.setCurrentText(str(settings.value("engine/device", "auto")))
        self.memory = QComboBox()
        self.memory.addItems(["auto", "none", "attention-slicing", "vae-tiling", "cpu-offload"])
        self.memory.setCurrentText(str(settings.value("engine/memory_mode", "auto")))
        self.budget = QSpinBox(minimum=64, maximum=65536, singleStep=256, suffix=" MB")
        self.budget.setValue(history_budget(settings) >> 20)
        self.autosave = QSpinBox(minimum=0, maximum=3600, singleStep=30, suffix=" s", objectName="autosaveInterval",
                                 specialValueText="off", toolTip="How often a recovery copy of a modified document is "
                                 "written (0: never); applies from the next document opened")
        self.autosave.setValue(max(0, int(autosave_interval(settings))))
        form = QFormLayout()
        form.addRow("Model folders", self.folders)
        form.addRow("", browse)
        form.addRow("Default model", self.default_model)
        form.addRow("Device", self.device)
        form.addRow("Memory mode", self.memory)
        form.addRow("Undo history", self.budget)
        form.addRow("Autosave every", self.autosave)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def _add_folder(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path = QFileDialog.getExistingDirectory(self, "Model folder")
        if path:
            self.folders.appendPlainText(path)

    def accept(self) -> None:
        """Store the values, then close."""
        s = self.settings
        s.setValue("models/folders", [line.strip() for line in self.folders.toPlainText().splitlines() if line.strip()])
        s.setValue("models/default", self.default_model.text().strip())
        s.setValue("engine/device", self.device.currentText())
        s.setValue("engine/memory_mode", self.memory.currentText())
        s.setValue("history/budget_mb", self.budget.value())
        s.setValue("autosave/interval_s", self.autosave.value())
        super().accept()


def settings_list(settings: QSettings, key: str) -> list[str]:
    """A list of strings from QSettings, whatever the backend made of it (None, one string, a list)."""
    value = settings.value(key, [])
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value]


def autosave_interval(settings) -> float:
    """Seconds between autosaves from the setting "autosave/interval_s" (default 60); 0 or less: off."""
    try:
        return float(settings.value("autosave/interval_s", 60))
    except (TypeError, ValueError):
        return 60.0


def history_budget(settings) -> int:
    """Bytes the undo history of a document may hold, from the setting "history/budget_mb" (default 1024)."""
    try:
        return max(64, int(settings.value("history/budget_mb", 1024))) << 20
    except (TypeError, ValueError):
        return 1024 << 20
