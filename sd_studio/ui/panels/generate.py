"""Generate panel: mode, prompts with token counts, sampler settings, seed, model, and Advanced."""

from __future__ import annotations

import math
import random
import sys
import threading
from pathlib import Path

from PySide6.QtCore import QSignalBlocker, QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from sd_studio.ui.generation import MODE_LABELS
from sd_studio.ui.icons import icon as _icon
from sd_studio.ui.panels.cpu_hint import CpuHint

MAX_SEED = 2**32 - 1
DEFAULT_STRENGTH = {"inpaint": 1.0, "img2img": 0.75, "txt2img": 1.0, "fill": 1.0}
DEVICES = ("auto", "cpu", "cuda", "mps")
MEMORY_MODES = ("auto", "none", "attention-slicing", "vae-tiling", "cpu-offload")
RESOLUTIONS = ("Model default", "512", "640", "768", "1024")
NO_MODEL_HINT = "No model yet: Fill works without one — <a href='get-model'>Get a model…</a>"
"""Shown under the Model box while there is no model, and as the answer to a diffusion run without one."""


def _scheduler_names() -> tuple[str, ...]:
    try:
        from sd_studio.engine.schedulers import scheduler_names

        return scheduler_names()
    except Exception:  # noqa: BLE001 - the panel still opens; the engine will name the problem
        return ("Euler a",)


class _TokenCounter(QLabel):
    """Shows `n/75` for a prompt; the tokenizer loads on a background thread so typing never waits."""

    _loaded = threading.Event()
    _loading = False

    def __init__(self, edit: QPlainTextEdit) -> None:
        super().__init__("0/75")
        self.edit = edit
        self.setToolTip("CLIP tokens used in this prompt (75 per chunk)")
        self._timer = QTimer(self, singleShot=True, interval=200, timeout=self.refresh)
        edit.textChanged.connect(self._timer.start)

    @classmethod
    def _warm_up(cls) -> None:
        if cls._loading:
            return
        cls._loading = True

        def load() -> None:
            try:
                from sd_studio.engine.prompts.tokens import count_tokens

                count_tokens("warm up")
            finally:
                cls._loaded.set()

        threading.Thread(target=load, name="tokenizer warm-up", daemon=True).start()

    def refresh(self) -> None:
        """Count the prompt's tokens (an estimate until the tokenizer has loaded)."""
        text = self.edit.toPlainText()
        n: int | None = None
        if self._loaded.is_set() and "sd_studio.engine.prompts.tokens" in sys.modules:
            try:
                n = sys.modules["sd_studio.engine.prompts.tokens"].count_tokens(text)
            except Exception:  # noqa: BLE001 - a counter must never break typing
                n = None
        if n is None:
            self._warm_up()
            self._timer.start(500)
            n = round(len(text.replace(",", " , ").split()) * 1.3)
            prefix = "~"
        else:
            prefix = ""
        window = 75
        chunks = max(1, -(-n // window))
        self.setText(f"{prefix}{n}/{window * chunks}")


class GeneratePanel(QWidget):
    """The settings of the next generation, the Generate/Cancel buttons, progress and the variant chooser."""

    generate_requested = Signal()
    cancel_requested = Signal()
    variant_changed = Signal(int)
    keep_requested = Signal(bool)  # True: keep every variant, False: keep the one shown
    discard_requested = Signal()
    model_chosen = Signal(str)
    get_model_requested = Signal()  # the window opens ui.get_model.open_get_model_dialog

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mode = QComboBox(objectName="mode")
        for key, label in MODE_LABELS.items():
            self.mode.addItem(label, key)
        self.prompt = QPlainTextEdit(objectName="prompt", placeholderText="What to paint: a red barn on a hill, golden hour")
        self.negative = QPlainTextEdit(objectName="negative", placeholderText="What to avoid: blurry, watermark")
        for edit, rows in ((self.prompt, 4), (self.negative, 2)):
            edit.setTabChangesFocus(True)
            edit.setFixedHeight(edit.fontMetrics().lineSpacing() * rows + 12)
        self.prompt_tokens = _TokenCounter(self.prompt)
        self.negative_tokens = _TokenCounter(self.negative)

        self.model = QComboBox(objectName="model", editable=True)
        self.model.lineEdit().setPlaceholderText("Hub id, model folder or .safetensors file")
        self.model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model.setMinimumContentsLength(12)
        self.model_button = QToolButton(toolTip="Open model file or folder...")
        self.model_button.setIcon(_icon("mdi6.folder-open-outline"))
        self.model_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.model_button)
        menu.addAction("Open model file...", self._open_model_file)
        menu.addAction("Open model folder...", self._open_model_folder)
        self.model_button.setMenu(menu)
        # an icon beside the box (the panel keeps its width); the "no model yet" line below spells it out
        self.get_model_button = QToolButton(text="Get a model…", objectName="getModel", accessibleName="Get a model…",
                                            toolTip="Get a model… (download a recommended one, or use models you "
                                                    "already have)")
        self.get_model_button.setIcon(_icon("mdi6.download"))
        self.get_model_button.clicked.connect(self.get_model_requested)
        self.model_hint = QLabel(NO_MODEL_HINT, objectName="modelHint", wordWrap=True)
        self.model_hint.linkActivated.connect(lambda _link: self.get_model_requested.emit())

        self.scheduler = QComboBox(objectName="scheduler")
        self.scheduler.addItems(list(_scheduler_names()))
        self.steps = QSpinBox(minimum=1, maximum=150, value=20, objectName="steps")
        self.guidance = QDoubleSpinBox(minimum=0.0, maximum=30.0, singleStep=0.5, value=7.0, decimals=1, objectName="guidance")
        self.strength = QDoubleSpinBox(minimum=0.01, maximum=1.0, singleStep=0.05, value=1.0, decimals=2, objectName="strength")
        self.variants = QSpinBox(minimum=1, maximum=16, value=1, objectName="variants")
        self.seed = QLineEdit(objectName="seed", placeholderText="random")
        self.seed.setValidator(_seed_validator(self.seed))
        self.seed.setToolTip("The seed of the next run (empty: a random one)")
        self.dice = QToolButton(toolTip="A new random seed for the next run")
        self.dice.setIcon(_icon("mdi6.dice-5-outline"))
        self.reuse_seed = QToolButton(toolTip="Reuse the last run's seed (and lock it)", enabled=False)
        self.reuse_seed.setIcon(_icon("mdi6.recycle"))
        self.reuse_seed.setObjectName("reuseSeed")
        self.last_seed: int | None = None  # the seed the last run actually used
        self.seed_lock = QToolButton(toolTip="Keep this seed (unlocked: a new random seed after each run)", checkable=True)
        self.seed_lock.setIcon(_icon("mdi6.lock-open-variant-outline"))
        self.seed_lock.setObjectName("seedLock")

        self.advanced = QToolButton(text="Advanced", checkable=True, objectName="advancedToggle")
        self.advanced.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced.setAutoRaise(True)
        self.padding = QSpinBox(minimum=0, maximum=1024, value=32, suffix=" px")
        self.feather = QSpinBox(minimum=0, maximum=256, value=4, suffix=" px")
        self.resolution = QComboBox(editable=True)
        self.resolution.addItems(list(RESOLUTIONS))
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.memory_mode = QComboBox()
        self.memory_mode.addItems(list(MEMORY_MODES))
        self.whole_image = QCheckBox("Whole image")
        self.match_color = QCheckBox("Match colours")
        adv = QFormLayout()
        adv.addRow("Padding", self.padding)
        adv.addRow("Feather", self.feather)
        adv.addRow("Resolution", self.resolution)
        adv.addRow("Device", self.device)
        adv.addRow("Memory", self.memory_mode)
        self.precision = QComboBox(objectName="precision")
        self.precision.addItems(["auto", "fp32", "bf16", "fp16"])
        self.precision.setToolTip("auto: fp16 on a GPU; on a processor bf16 where it has AMX or AVX512-BF16 and it measured faster")
        adv.addRow("Precision", self.precision)
        flags = QHBoxLayout()
        flags.addWidget(self.whole_image)
        flags.addWidget(self.match_color)
        adv.addRow(flags)
        self._advanced_body = QWidget()
        self._advanced_body.setLayout(adv)
        self._advanced_body.setVisible(False)
        self.advanced.toggled.connect(self._toggle_advanced)

        self.generate_button = QPushButton("Generate", objectName="generateButton")
        self.generate_button.setIcon(_icon("mdi6.auto-fix"))
        self.generate_button.setToolTip("Generate (Ctrl+Enter)")
        self.generate_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel", objectName="cancelButton", enabled=False)
        self.cancel_button.setIcon(_icon("mdi6.stop-circle-outline"))
        self.cancel_button.setToolTip("Cancel (Esc)")
        self.progress = QProgressBar(objectName="progress", textVisible=True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("Ready")
        self.status = _LineLabel(wordWrap=True)

        self.variant_box = QWidget()
        self.variant_label = QLabel()
        self.prev_button = QToolButton(toolTip="Previous variant")
        self.prev_button.setIcon(_icon("mdi6.chevron-left"))
        self.next_button = QToolButton(toolTip="Next variant")
        self.next_button.setIcon(_icon("mdi6.chevron-right"))
        self.keep_button = QPushButton("Keep")
        self.keep_all_button = QPushButton("Keep all")
        self.discard_button = QPushButton("Discard")
        vrow = QHBoxLayout(self.variant_box)
        vrow.setContentsMargins(0, 0, 0, 0)
        for w in (self.prev_button, self.variant_label, self.next_button, self.keep_button, self.keep_all_button, self.discard_button):
            vrow.addWidget(w)
        self.variant_box.setVisible(False)
        self._variant = 0
        self._variant_count = 0

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Mode", self.mode)
        form.addRow(_label_with("Prompt", self.prompt_tokens), self.prompt)
        form.addRow(_label_with("Negative", self.negative_tokens), self.negative)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(self.model_button)
        model_row.addWidget(self.get_model_button)
        form.addRow("Model", model_row)
        form.addRow("", self.model_hint)
        form.addRow("Sampler", self.scheduler)
        form.addRow("Steps", self.steps)
        form.addRow("Guidance", self.guidance)
        form.addRow("Strength", self.strength)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.dice)
        seed_row.addWidget(self.reuse_seed)
        seed_row.addWidget(self.seed_lock)
        form.addRow("Seed", seed_row)
        form.addRow("Variants", self.variants)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 1)
        buttons.addWidget(self.cancel_button)
        # The settings scroll when the dock is short (Advanced open on a laptop screen); the Generate and
        # Cancel buttons, the progress and the variant chooser below them always stay in sight.
        body = QWidget()
        body_layout = QVBoxLayout(body)
        body_layout.setContentsMargins(6, 6, 6, 0)
        body_layout.addLayout(form)
        body_layout.addWidget(self.advanced)
        body_layout.addWidget(self._advanced_body)
        body_layout.addStretch(1)
        self.settings_area = _WholeSizeScrollArea(objectName="generateScroll", widgetResizable=True,
                                                  frameShape=QFrame.Shape.NoFrame)
        self.settings_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.settings_area.setWidget(body)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 6)
        layout.addWidget(self.settings_area, 1)
        footer = QVBoxLayout()
        footer.setContentsMargins(6, 0, 6, 0)
        footer.addLayout(buttons)
        footer.addWidget(self.progress)
        footer.addWidget(self.variant_box)
        footer.addWidget(self.status)
        self.cpu_hint = CpuHint(self)  # expected time per image, and a few-step preset on a CPU
        footer.addWidget(self.cpu_hint)
        layout.addLayout(footer)

        self.mode.currentIndexChanged.connect(self._on_mode)
        self.dice.clicked.connect(self.roll_seed)
        self.reuse_seed.clicked.connect(self.use_last_seed)
        self._strength_chosen = False  # the user set the strength: a change of mode keeps it
        self._setting_strength = False
        self.strength.valueChanged.connect(self._on_strength)
        self.seed_lock.toggled.connect(self._on_lock)
        self.generate_button.clicked.connect(self.generate_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.prev_button.clicked.connect(lambda: self.show_variant(self._variant - 1))
        self.next_button.clicked.connect(lambda: self.show_variant(self._variant + 1))
        self.keep_button.clicked.connect(lambda: self.keep_requested.emit(False))
        self.keep_all_button.clicked.connect(lambda: self.keep_requested.emit(True))
        self.discard_button.clicked.connect(self.discard_requested)
        self.model.lineEdit().editingFinished.connect(lambda: self.model_chosen.emit(self.model_spec()))
        self.model.currentTextChanged.connect(self._update_model_hint)
        self.status.linkActivated.connect(lambda _link: self.get_model_requested.emit())  # show_model_needed's link
        self._on_mode()
        self._update_model_hint()

    # -- settings ----------------------------------------------------------------------------
    def settings(self) -> dict:
        """The panel's values as GenerationRequest fields, plus "mode" (inpaint|img2img|txt2img|fill)."""
        res = self.resolution.currentText().strip()
        seed_text = self.seed.text().strip()
        return {
            "mode": self.mode.currentData(),
            "prompt": self.prompt.toPlainText().strip(),
            "negative_prompt": self.negative.toPlainText().strip(),
            "model": self.model_spec() or None,
            "scheduler": self.scheduler.currentText(),
            "steps": self.steps.value(),
            "guidance": self.guidance.value(),
            "strength": self.strength.value(),
            "seed": int(seed_text) if seed_text else None,  # what the box shows; empty: random
            "variants": self.variants.value(),
            "padding": self.padding.value(),
            "feather": self.feather.value(),
            "resolution": int(res) if res.isdigit() else None,
            "device": self.device.currentText(),
            "memory_mode": self.memory_mode.currentText(),
            "precision": self.precision.currentText(),
            "whole_image": self.whole_image.isChecked(),
            "match_color": self.match_color.isChecked(),
        }

    def load_parameters(self, p: dict) -> list[str]:
        """Fill the panel from parsed A1111 parameters (document.io.parameters.parse_parameters); the seed is
        locked. Returns a sentence for each stored setting that could not be restored."""
        notes: list[str] = []
        classical = str(p.get("model") or "") == "classical"  # a Fill result (engine.generate records it so)
        mode = "fill" if classical else {"txt2img": "txt2img", "img2img": "img2img", "inpaint": "inpaint"}.get(
            str(p.get("Mode", p.get("mode", ""))).lower())
        if mode:
            self.mode.setCurrentIndex(self.mode.findData(mode))
        if "prompt" in p:
            self.prompt.setPlainText(str(p["prompt"]))
        if "negative_prompt" in p:
            self.negative.setPlainText(str(p["negative_prompt"]))
        if isinstance(p.get("steps"), int):
            self.steps.setValue(p["steps"])
        if isinstance(p.get("cfg_scale"), (int, float)):
            self.guidance.setValue(float(p["cfg_scale"]))
        if isinstance(p.get("denoising_strength"), (int, float)):
            self._set_strength(float(p["denoising_strength"]))
            self._strength_chosen = abs(self.strength.value() - DEFAULT_STRENGTH[self.mode.currentData()]) > 1e-6
        if p.get("sampler") and self.scheduler.findText(str(p["sampler"])) >= 0:
            self.scheduler.setCurrentText(str(p["sampler"]))
        if isinstance(p.get("seed"), int):
            self.seed.setText(str(p["seed"]))
            self.seed_lock.setChecked(True)
        feather = _whole_number(p.get("Mask blur"))
        padding = _whole_number(p.get("Masked area padding"))
        if feather is not None:
            self.feather.setValue(feather)
            if not classical:  # a Fill never works on the whole image; the box is the next diffusion run's
                # A1111 writes the padding only for "Only masked"; a masked run without it was on the whole image.
                self.whole_image.setChecked(padding is None)
        if padding is not None:
            self.padding.setValue(padding)
        area = str(p.get("Inpaint area", "")).strip().lower()
        if area and not classical:  # A1111's own key, written by the engine since it records it
            self.whole_image.setChecked(area.startswith("whole"))
        if "Match color" in p:
            self.match_color.setChecked(str(p["Match color"]).strip().lower() == "true")
        if not classical and isinstance(p.get("width"), int) and isinstance(p.get("height"), int):
            self._set_resolution(p["width"], p["height"])
        if p.get("model") and not classical:
            notes += self._restore_model(str(p["model"]))
        return notes

    def _restore_model(self, name: str) -> list[str]:
        # The parameters name a model as the engine loaded it (a file's stem, a folder's or hub repo's last
        # part), not by its path: find the offered model it names, the chosen one first.
        if _names_model(name, self.model.currentText().strip(), self.model_spec()):
            return []
        for i in range(self.model.count()):
            if _names_model(name, self.model.itemText(i), str(self.model.itemData(i) or self.model.itemText(i))):
                self.model.setCurrentIndex(i)
                return []
        if not self.model.currentText().strip():
            self.model.setCurrentText(name)
            return []
        return [f"The model “{name}” is not among the known models, so “{self.model.currentText().strip()}” stays chosen."]

    def _set_resolution(self, width: int, height: int) -> None:
        # The stored size is the model input; its area is about resolution² (engine.region.target_size).
        side = max(64, round(math.sqrt(width * height) / 8) * 8)
        self.resolution.setCurrentText(str(side))

    def set_models(self, recent: list[str], current: str | None) -> None:
        """Offer the recent models, showing current (or the first)."""
        with QSignalBlocker(self.model):
            self.model.clear()
            self.model.addItems(recent)
            self.model.setCurrentText(current or (recent[0] if recent else ""))
        self._update_model_hint()

    def add_found_models(self, entries) -> None:
        """Offer models found on disk (engine.models.ModelEntry: name, spec, kind) after the recent ones."""
        with QSignalBlocker(self.model):
            current = self.model.currentText()
            known = {self.model.itemData(i) or self.model.itemText(i) for i in range(self.model.count())}
            for entry in entries:
                if entry.spec not in known:
                    self.model.addItem(entry.name, entry.spec)
                    self.model.setItemData(self.model.count() - 1, entry.spec, Qt.ItemDataRole.ToolTipRole)
            self.model.setCurrentText(current)
        self._update_model_hint()

    def choose_model(self, spec: str) -> None:
        """Put a model (a path or hub id, e.g. one just downloaded) in the Model box, as if the user picked it."""
        self.model.setCurrentText(spec)
        self.model_chosen.emit(spec)

    def model_needed(self) -> bool:
        """True when the chosen mode needs a model (every mode but Fill) and none is given."""
        return self.mode.currentData() != "fill" and not self.model_spec()

    def show_model_needed(self) -> None:
        """Answer a diffusion run without a model in the panel's words (not the engine's), pointing to Get a model."""
        self.model_hint.setVisible(True)
        self.status.setText(NO_MODEL_HINT)

    def _update_model_hint(self) -> None:
        # "no model yet": nothing typed or picked and nothing found on disk to offer
        self.model_hint.setVisible(not self.model.currentText().strip() and self.model.count() == 0)

    def model_spec(self) -> str:
        """The model to use: what the box shows, or the path or hub id behind a found model's name."""
        text = self.model.currentText().strip()
        index = self.model.findText(text)
        data = self.model.itemData(index) if index >= 0 else None
        return str(data) if data else text

    def roll_seed(self) -> None:
        """Put a new random seed in the box; the next run uses it."""
        self.seed.setText(str(random.randint(0, MAX_SEED)))

    def use_last_seed(self) -> None:
        """Put the last run's seed back in the box and lock it."""
        if self.last_seed is not None:
            self.seed.setText(str(self.last_seed))
            self.seed_lock.setChecked(True)

    def show_seed(self, seed: int) -> None:
        """Report the seed a run used; unlocked, the box then gets a fresh random seed for the next run."""
        self.last_seed = int(seed)
        self.reuse_seed.setEnabled(self.seed.isEnabled())
        self.reuse_seed.setToolTip(f"Reuse the last run's seed, {seed} (and lock it)")
        self.status.setText(f"Seed {seed}")
        if not self.seed_lock.isChecked():
            self.roll_seed()

    def _on_lock(self, locked: bool) -> None:
        self.seed_lock.setIcon(_icon("mdi6.lock-outline" if locked else "mdi6.lock-open-variant-outline"))
        if locked and not self.seed.text().strip():
            self.roll_seed()

    def _on_mode(self) -> None:
        mode = self.mode.currentData()
        diffusion = mode != "fill"
        for w in (self.prompt, self.negative, self.model, self.model_button, self.scheduler, self.steps,
                  self.guidance, self.variants, self.seed, self.dice, self.seed_lock, self.resolution,
                  self.device, self.memory_mode, self.precision, self.whole_image, self.match_color):
            w.setEnabled(diffusion)
        self.reuse_seed.setEnabled(diffusion and self.last_seed is not None)
        self.strength.setEnabled(mode in ("img2img", "inpaint"))
        if not self._strength_chosen:
            self._set_strength(DEFAULT_STRENGTH[mode])

    def _set_strength(self, value: float) -> None:
        self._setting_strength = True
        try:
            self.strength.setValue(value)
        finally:
            self._setting_strength = False

    def _on_strength(self, _value: float) -> None:
        if not self._setting_strength:
            self._strength_chosen = True

    def _toggle_advanced(self, shown: bool) -> None:
        self.advanced.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self._advanced_body.setVisible(shown)

    def _open_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open model file", "", "Safetensors models (*.safetensors);;All files (*)")
        if path:
            self.model.setCurrentText(path)
            self.model_chosen.emit(path)

    def _open_model_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open diffusers model folder")
        if path:
            self.model.setCurrentText(path)
            self.model_chosen.emit(path)

    # -- running -----------------------------------------------------------------------------
    def set_busy(self, busy: bool) -> None:
        """Switch between the idle and the running state of the buttons."""
        self.generate_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        if busy:
            self.cpu_hint.run_started()
            self.progress.setRange(0, 0)
            self.progress.setFormat("Starting...")
            self.status.setText("")

    def set_progress(self, phase: str, step: int, total: int, message: str = "") -> None:
        """Show a progress report: a step count while denoising, a busy bar otherwise."""
        self.cpu_hint.run_progress(phase, step, total)
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(min(step, total))
            self.progress.setFormat(f"{phase.capitalize()} {step}/{total}")
        else:
            self.progress.setRange(0, 0)
            self.progress.setFormat(phase.capitalize())
        if message:
            self.status.setText(message)

    def set_done(self, text: str) -> None:
        """Show the end of a run."""
        self.cpu_hint.run_finished(text.startswith("Done"))
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if text.startswith("Done") else 0)
        self.progress.setFormat(text)
        if self.status.text().strip().lower() == text.strip().lower():
            self.status.setText("")  # the bar says it already

    def reset(self) -> None:
        """Forget the last run's state (progress, status, variants) for a new document; the settings stay."""
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("Ready")
        self.status.setText("")
        self.offer_variants(0)

    def offer_variants(self, count: int) -> None:
        """Show the chooser for count variants (0 hides it)."""
        self._variant_count = count
        self.variant_box.setVisible(count > 1)
        if count > 1:
            self.show_variant(0)

    def show_variant(self, i: int) -> None:
        """Flip to variant i (wrapping around)."""
        if self._variant_count < 1:
            return
        self._variant = i % self._variant_count
        self.variant_label.setText(f"{self._variant + 1}/{self._variant_count}")
        self.variant_changed.emit(self._variant)

    @property
    def current_variant(self) -> int:
        """The variant shown in the chooser."""
        return self._variant


def _label_with(text: str, counter: QLabel) -> QWidget:
    w = QWidget()
    v = QVBoxLayout(w)
    v.setContentsMargins(0, 0, 0, 0)
    v.setSpacing(0)
    v.addWidget(QLabel(text))
    counter.setStyleSheet("color: palette(mid); font-size: 9pt;")
    v.addWidget(counter)
    v.addStretch(1)
    return w


def _names_model(name: str, label: str, spec: str) -> bool:
    """True when a recorded model name is this offered model (its label, spec, file stem or last path part)."""
    if not spec:
        return False
    path = Path(spec)
    return name in (label, spec, path.name, path.stem, spec.rstrip("/\\").split("/")[-1])


def _whole_number(value) -> int | None:
    """A stored whole number (parse_parameters keeps A1111's extra fields as text), or None."""
    try:
        return int(str(value).strip()) if value is not None else None
    except ValueError:
        return None


def _seed_validator(parent):
    from PySide6.QtCore import QRegularExpression
    from PySide6.QtGui import QRegularExpressionValidator

    return QRegularExpressionValidator(QRegularExpression(r"\d{0,10}"), parent)


class _WholeSizeScrollArea(QScrollArea):
    """A scroll area that asks for its whole content's size: the dock opens as tall as the settings
    want, and scrolls only when the window is too short for them."""

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """The content's own size hint, plus room for the vertical scroll bar."""
        hint = self.widget().sizeHint()
        return QSize(hint.width() + self.verticalScrollBar().sizeHint().width(), hint.height())


class _LineLabel(QLabel):
    """A status line that takes no room while it has nothing to say (the settings above get it)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setVisible(False)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        """Show text; an empty text hides the line."""
        super().setText(text)
        self.setVisible(bool(text))
