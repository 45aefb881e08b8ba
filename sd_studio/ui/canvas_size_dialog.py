"""Image > Canvas Size (and the Expand tool's settings): the new size, where the photo sits in it, and how to
fill the new area — left empty, pre-filled from the photo's edge, or painted by Stable Diffusion (outpaint)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

FILLS = {
    "transparent": "Leave it transparent",
    "stretch": "Stretch the edges",
    "blur": "Stretch and blur the edges",
    "navier-stokes": "Continue the edges (Navier-Stokes)",
    "generate": "Generate with Stable Diffusion",
}
"""How the new area can be filled, with their labels."""

ANCHORS = [(ax, ay) for ay in (0, 1, 2) for ax in (0, 1, 2)]
"""Where the photo sits: (column, row) of the 3 x 3 anchor grid; (1, 1) centres it."""


class CanvasSizeDialog(QDialog):
    """Asks for a new canvas size around a `width` x `height` image and how to fill what is added."""

    def __init__(self, width: int, height: int, diffusion_model: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from sd_studio.document.canvas import MAX_SIDE

        self.setWindowTitle("Canvas size")
        self.source = (width, height)
        self.model = diffusion_model
        self._explicit: tuple[int, int, int, int] | None = None  # margins set by the Expand tool
        self.width_box = QSpinBox(minimum=1, maximum=MAX_SIDE, value=width, suffix=" px")
        self.height_box = QSpinBox(minimum=1, maximum=MAX_SIDE, value=height, suffix=" px")
        self.anchor = QButtonGroup(self)
        grid = QGridLayout()
        grid.setSpacing(2)
        for i, (ax, ay) in enumerate(ANCHORS):
            button = QPushButton(checkable=True)
            button.setFixedSize(26, 26)
            button.setToolTip("Put the photo here")
            self.anchor.addButton(button, i)
            grid.addWidget(button, ay, ax)
        self.anchor.button(ANCHORS.index((1, 1))).setChecked(True)
        anchor_box = QWidget()
        anchor_box.setLayout(grid)
        self.fill = QComboBox()
        for key, label in FILLS.items():
            self.fill.addItem(label, key)
        generate = self.fill.model().item(list(FILLS).index("generate"))
        if not diffusion_model:
            generate.setEnabled(False)
            generate.setToolTip("Choose a Stable Diffusion model in the Generate panel first.")
        self.fill.setCurrentIndex(list(FILLS).index("stretch"))
        self.prompt = QLineEdit(placeholderText="what lies beyond the edges, e.g. a garden in summer")
        self.band = QSpinBox(minimum=0, maximum=256, value=16, suffix=" px")
        self.band.setToolTip("How far into the photo the new area blends; 0 keeps every pixel of the photo.")
        self.margins_label = QLabel()
        form = QFormLayout()
        form.addRow("Width", self.width_box)
        form.addRow("Height", self.height_box)
        form.addRow("Photo", anchor_box)
        form.addRow("Added", self.margins_label)
        form.addRow("New area", self.fill)
        form.addRow("Prompt", self.prompt)
        form.addRow("Blend band", self.band)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        for signal in (self.width_box.valueChanged, self.height_box.valueChanged, self.anchor.idClicked,
                       self.fill.currentIndexChanged):
            signal.connect(self._update)
        self._update()

    def set_margins(self, left: int, top: int, right: int, bottom: int) -> None:
        """Set the size and anchor from margins (the Expand tool drags them); uneven margins keep the nearest anchor."""
        self.width_box.setValue(self.source[0] + left + right)
        self.height_box.setValue(self.source[1] + top + bottom)
        ax = 0 if left == 0 and right > 0 else 2 if right == 0 and left > 0 else 1
        ay = 0 if top == 0 and bottom > 0 else 2 if bottom == 0 and top > 0 else 1
        self.anchor.button(ANCHORS.index((ax, ay))).setChecked(True)
        self._explicit = (left, top, right, bottom)
        self._update()

    def margins(self):
        """The engine's Margins: pixels added (negative: cut) on each side."""
        from sd_studio.engine.restore.expand import Margins

        explicit = self._explicit
        if explicit is not None and explicit[0] + explicit[2] == self.width_box.value() - self.source[0] \
                and explicit[1] + explicit[3] == self.height_box.value() - self.source[1]:
            return Margins(*explicit)
        ax, ay = ANCHORS[self.anchor.checkedId()]
        dw, dh = self.width_box.value() - self.source[0], self.height_box.value() - self.source[1]
        left = (0, dw // 2, dw)[ax]
        top = (0, dh // 2, dh)[ay]
        return Margins(left, top, dw - left, dh - top)

    @property
    def fill_mode(self) -> str:
        """The chosen FILLS key."""
        return self.fill.currentData()

    def _update(self, *_args) -> None:
        m = self.margins()
        self.margins_label.setText(f"left {m.left}, top {m.top}, right {m.right}, bottom {m.bottom} px")
        grows = min(m.left, m.top, m.right, m.bottom) >= 0
        fills = self.fill_mode != "transparent" and grows
        self.fill.setEnabled(grows)
        self.prompt.setEnabled(fills and self.fill_mode == "generate")
        self.band.setEnabled(fills and self.fill_mode == "generate")
        changed = (self.width_box.value(), self.height_box.value()) != self.source
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(changed)

    def expand_settings(self):
        """The engine's ExpandSettings when the new area is to be filled, else None (a plain canvas resize)."""
        from sd_studio.engine.restore.expand import ExpandSettings

        m = self.margins()
        if self.fill_mode == "transparent" or min(m.left, m.top, m.right, m.bottom) < 0:
            return None
        generate = self.fill_mode == "generate"
        return ExpandSettings(m, prefill="stretch" if generate else self.fill_mode, band=self.band.value(),
                              model=self.model if generate else None, prompt=self.prompt.text() if generate else "")

    def command(self, doc):
        """The undoable canvas resize (content moved by the left/top margins) for a plain resize or a crop."""
        from sd_studio.document.canvas import ResizeCanvas
        from sd_studio.document.geometry import Extent, Point

        m = self.margins()
        return ResizeCanvas(doc, Extent(self.width_box.value(), self.height_box.value()), Point(m.left, m.top))

    def job(self, image, models=None):
        """The function a RestoreJob runs for a filled expansion: (progress, cancel) -> RestoreResult."""
        settings = self.expand_settings()
        if settings is None:
            raise ValueError("a plain canvas resize has no job; use command()")

        def run(progress, cancel):
            from sd_studio.engine.restore.expand import expand

            return expand(image, settings, progress=progress, cancel=cancel, models=models)

        return run


