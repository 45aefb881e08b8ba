"""ToolOptionsBar: the tool bar showing and editing the shared brush settings (size, hardness, opacity,
colour, pen pressure)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QColorDialog, QLabel, QSlider, QSpinBox, QToolBar, QToolButton, QWidget

from sd_studio.ui.tools.options import MAX_SIZE, MIN_SIZE, ToolOptions


class ToolOptionsBar(QToolBar):
    """Mirrors a ToolOptions both ways. Only the Size box ever takes the keyboard (on a click), and it
    hands the keys back (done) on Enter, so tool keys reach the canvas."""

    done = Signal()  # a value was typed and confirmed: the canvas may take the keys back

    def __init__(self, options: ToolOptions, parent: QWidget | None = None) -> None:
        super().__init__("Tool options", parent, objectName="optionsToolbar")
        self.options = options
        self.size_box = QSpinBox(minimum=MIN_SIZE, maximum=MAX_SIZE, suffix=" px", toolTip="Brush size ([ and ])",
                                 objectName="brushSize")
        # a click types into it; Tab and the start-up focus pass it by (the canvas has the keys)
        self.size_box.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.hardness_slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100, toolTip="Hardness")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, minimum=1, maximum=100, toolTip="Opacity")
        for s in (self.hardness_slider, self.opacity_slider):
            s.setFixedWidth(110)
        self.color_button = QToolButton(toolTip="Brush colour")
        self.pressure_size = QCheckBox("Pressure → size")
        self.pressure_opacity = QCheckBox("Pressure → opacity")
        # worked with the mouse; they never keep the keys
        for w in (self.hardness_slider, self.opacity_slider, self.color_button, self.pressure_size,
                  self.pressure_opacity):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for label, widget in (("Size", self.size_box), ("Hardness", self.hardness_slider),
                              ("Opacity", self.opacity_slider), ("Colour", self.color_button)):
            self.addWidget(QLabel(f"  {label} "))
            self.addWidget(widget)
        self.addSeparator()
        self.addWidget(self.pressure_size)
        self.addWidget(self.pressure_opacity)

        self.size_box.valueChanged.connect(lambda v: options.size != v and options.set(size=v))
        self.size_box.lineEdit().returnPressed.connect(self.done)
        self.hardness_slider.valueChanged.connect(lambda v: options.set(hardness=v / 100))
        self.opacity_slider.valueChanged.connect(lambda v: options.set(opacity=v / 100))
        self.pressure_size.toggled.connect(lambda on: options.set(pressure_size=on))
        self.pressure_opacity.toggled.connect(lambda on: options.set(pressure_opacity=on))
        self.color_button.clicked.connect(self.choose_color)
        options.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Show the options' current values (without echoing them back)."""
        o = self.options
        for widget, value in ((self.size_box, round(o.size)), (self.hardness_slider, round(o.hardness * 100)),
                              (self.opacity_slider, round(o.opacity * 100))):
            if widget.value() != value:
                widget.blockSignals(True)
                widget.setValue(value)
                widget.blockSignals(False)
        for box, on in ((self.pressure_size, o.pressure_size), (self.pressure_opacity, o.pressure_opacity)):
            if box.isChecked() != on:
                box.setChecked(on)
        self.color_button.setStyleSheet(
            f"background: {o.color.name()}; min-width: 22px; border: 1px solid palette(mid);")

    def choose_color(self) -> None:
        """Ask for the brush colour."""
        color = QColorDialog.getColor(self.options.color, self.window(), "Brush colour")
        if color.isValid():
            self.options.set(color=QColor(color))
