"""The Generate panel's line for slow machines: the expected time per image and a few-step preset to switch to."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from sd_studio.engine.presets import StepTimer, effective_steps, expected_time_text, runs_on_cpu, suggest_preset


class CpuHint(QWidget):
    """Shows "About N s per image" from the last run's steps, and on a CPU offers the model's fast preset."""

    def __init__(self, panel, timer: StepTimer | None = None) -> None:
        super().__init__(panel)
        self.panel = panel
        self.timer = timer or StepTimer()
        self.expected = QLabel(objectName="expectedTime", wordWrap=True)
        self.preset_button = QPushButton(objectName="fastPreset")
        self.preset_button.setVisible(False)
        self.preset_button.clicked.connect(self.apply_preset)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.expected, 1)
        layout.addWidget(self.preset_button)
        panel.model.currentTextChanged.connect(self.refresh)
        panel.device.currentTextChanged.connect(self.refresh)
        panel.steps.valueChanged.connect(self.refresh)
        panel.strength.valueChanged.connect(self.refresh)
        panel.mode.currentIndexChanged.connect(self.refresh)
        self.refresh()

    def preset(self):
        """The fast preset to offer now: the model allows one, generation runs on the CPU, and it is not already set."""
        settings = self.panel.settings()
        if settings["mode"] == "fill" or not runs_on_cpu(settings["device"]):
            return None
        preset = suggest_preset(settings["model"])
        if preset is None:
            return None
        if (settings["scheduler"], settings["steps"], settings["guidance"]) == (preset.scheduler, preset.steps, preset.guidance):
            return None
        return preset

    def refresh(self, *_) -> None:
        """Recompute the expected time for the panel's steps, and whether to offer the preset."""
        s = self.panel.settings()
        steps = effective_steps(s["steps"], s["strength"], s["mode"])
        self.expected.setText(expected_time_text(self.timer.expected_seconds(steps), steps))
        preset = self.preset()
        self.preset_button.setVisible(preset is not None)
        self.setVisible(bool(self.expected.text()) or preset is not None)  # no empty line under the progress bar
        if preset is not None:
            self.preset_button.setText(f"Use {preset.label}")
            self.preset_button.setToolTip("This model makes good images in a few steps, which matters on a processor.")

    def apply_preset(self) -> None:
        """Put the offered preset's sampler, steps and guidance in the panel."""
        preset = self.preset()
        if preset is None:
            return
        if self.panel.scheduler.findText(preset.scheduler) >= 0:
            self.panel.scheduler.setCurrentText(preset.scheduler)
        self.panel.steps.setValue(preset.steps)
        self.panel.guidance.setValue(preset.guidance)
        self.refresh()

    def run_started(self) -> None:
        """A generation started."""
        self.timer.start()

    def run_progress(self, phase: str, step: int, total: int) -> None:
        """A progress report of the running generation."""
        self.timer.report(phase, step, total)

    def run_finished(self, ok: bool) -> None:
        """The generation ended; a successful one becomes the measurement."""
        if ok:
            self.timer.finish()
        else:
            self.timer.start()
        self.refresh()
