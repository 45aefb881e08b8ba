"""Image > Upscale: the factor, the upscaler (a model file or Lanczos) and, optionally, detail added by Stable
Diffusion in tiles with a prompt and a low strength. It builds the engine's UpscaleSettings and the job to run."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

LANCZOS = "Lanczos (no model)"


class UpscaleDialog(QDialog):
    """Asks how to enlarge a `width` x `height` image; `settings()` is the engine's UpscaleSettings."""

    def __init__(self, width: int, height: int, upscalers: list[Path] | None = None,
                 diffusion_model: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from sd_studio.engine.restore.refine import MAX_STRENGTH, MIN_STRENGTH
        from sd_studio.engine.restore.upscale import FACTORS

        self.setWindowTitle("Upscale")
        self.source = (width, height)
        self.factor = QComboBox()
        for f in FACTORS:
            self.factor.addItem(f"x{f}", f)
        self.factor.setCurrentIndex(FACTORS.index(2))
        self.upscaler = QComboBox()
        self.upscaler.addItem(LANCZOS, None)
        for path in upscalers or []:
            self.upscaler.addItem(Path(path).stem, str(path))
        if upscalers:
            self.upscaler.setCurrentIndex(1)
        self.tile = QSpinBox(minimum=64, maximum=2048, singleStep=64, value=256, suffix=" px")
        self.tile.setToolTip("The upscaler works on tiles this big: smaller tiles need less memory.")
        self.size_label = QLabel()

        self.detail = QGroupBox("Add detail with Stable Diffusion", checkable=True, checked=False)
        self.detail.setEnabled(bool(diffusion_model))
        self.detail.setToolTip("" if diffusion_model else "Choose a Stable Diffusion model in the Generate panel first.")
        self.model = diffusion_model
        self.prompt = QLineEdit(placeholderText="what the photo shows, e.g. 1950s family portrait, sharp")
        self.strength = QDoubleSpinBox(minimum=MIN_STRENGTH, maximum=MAX_STRENGTH, singleStep=0.05, value=0.3)
        self.strength.setToolTip("How much the refinement may change: low keeps the photo, high invents detail.")
        self.steps = QSpinBox(minimum=1, maximum=150, value=20)
        self.refine_tile = QComboBox()
        self.refine_tile.addItem("The model's own size", None)
        self.refine_tile.addItem("512 px", 512)
        detail_form = QFormLayout(self.detail)
        detail_form.addRow("Prompt", self.prompt)
        detail_form.addRow("Strength", self.strength)
        detail_form.addRow("Steps", self.steps)
        detail_form.addRow("Tiles", self.refine_tile)

        form = QFormLayout()
        form.addRow("Enlarge", self.factor)
        form.addRow("Upscaler", self.upscaler)
        form.addRow("Upscaler tiles", self.tile)
        form.addRow("New size", self.size_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.detail)
        layout.addWidget(buttons)
        self.factor.currentIndexChanged.connect(self._update_size)
        self.upscaler.currentIndexChanged.connect(lambda _i: self.tile.setEnabled(self.upscaler.currentData() is not None))
        self._update_size()
        self.tile.setEnabled(self.upscaler.currentData() is not None)

    def _update_size(self) -> None:
        f = self.factor.currentData()
        self.size_label.setText(f"{self.source[0] * f} x {self.source[1] * f} px")

    def settings(self):
        """The engine's UpscaleSettings for what the dialog shows."""
        from sd_studio.engine.restore.refine import RefineSettings
        from sd_studio.engine.restore.upscale import UpscaleSettings

        refine = None
        if self.detail.isChecked() and self.model:
            refine = RefineSettings(model=self.model, prompt=self.prompt.text(), strength=round(self.strength.value(), 2),
                                    steps=self.steps.value(), tile=self.refine_tile.currentData())
        return UpscaleSettings(factor=self.factor.currentData(), model=self.upscaler.currentData(),
                               tile=self.tile.value(), refine=refine)

    def job(self, image, models=None, slot=None):
        """The function a RestoreJob runs: (progress, cancel) -> RestoreResult for `image`, loading the upscaler there
        (through `slot`, an engine.restore.models.ModelSlot kept by the window, so it loads once per session)."""
        settings = self.settings()

        def run(progress, cancel):
            from sd_studio.engine.restore.models import ModelSlot
            from sd_studio.engine.restore.upscale import upscale

            model = (slot or ModelSlot()).get("upscale", settings.model) if settings.model else None
            return upscale(image, settings, model=model, progress=progress, cancel=cancel, diffusion_models=models)

        return run
