"""Mask > Find scratches and dust: a sensitivity slider with a live preview of the proposed mask.

The detector runs on a background thread, a moment after the slider stops moving (debounced), on
the photo itself (thin scratches vanish on a reduced copy); a newer request cancels an older one.
The preview shows the photo with the proposed mask as the editor's red tint. OK gives the mask;
`command(doc)` turns it into one undoable change of the inpaint mask (replacing it, or added to it).
"""

from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

DEBOUNCE_MS = 250
"""How long the slider must rest before the preview is recomputed."""

PREVIEW_SIDE = 720
"""The preview image's long side (px)."""

TINT = np.array([255, 40, 40], np.float32)
"""The mask's colour in the preview (the canvas shows the inpaint mask as the same red)."""


class _Signals(QObject):
    done = Signal(int, object)  # request number, mask (or None when cancelled/failed)


class _Detect(QRunnable):
    def __init__(self, number: int, image: np.ndarray, sensitivity: float, current, signals: _Signals) -> None:
        super().__init__()
        self.number, self.image, self.sensitivity, self.current, self.signals = number, image, sensitivity, current, signals

    def run(self) -> None:
        from sd_studio.engine.damage import find_damage
        from sd_studio.errors import SDStudioError

        try:
            mask = find_damage(self.image, self.sensitivity, cancel=lambda: self.current() != self.number)
        except SDStudioError:
            mask = None
        self.signals.done.emit(self.number, mask)


class FindDamageDialog(QDialog):
    """Proposes a scratch-and-dust mask for `image` (RGB/RGBA uint8) at a sensitivity the user picks."""

    maskReady = Signal(object)  # the proposed mask for the slider's current value, (H, W) uint8

    def __init__(self, image: np.ndarray, current_mask: np.ndarray | None = None, sensitivity: float = 0.5,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Find scratches and dust")
        self.image = np.ascontiguousarray(image[..., :3])
        self.current_mask = current_mask if current_mask is not None and current_mask.any() else None
        self._mask: np.ndarray | None = None
        self._mask_for: int | None = None
        self._requested = 0
        self._lock = threading.Lock()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._signals = _Signals(self)
        self._signals.done.connect(self._on_done)

        self.slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100, value=round(sensitivity * 100))
        self.slider.setToolTip("Low: only obvious scratches and specks. High: faint and short ones too.")
        self.value_label = QLabel()
        self.preview = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(320, 240)
        self.status = QLabel()
        self.add_box = QCheckBox("Add to the current mask")
        self.add_box.setChecked(self.current_mask is not None)
        self.add_box.setVisible(self.current_mask is not None)
        row = QHBoxLayout()
        row.addWidget(QLabel("Sensitivity"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.value_label)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.preview, 1)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.add_box)
        layout.addWidget(self.buttons)

        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self._detect)
        self.slider.valueChanged.connect(self._changed)
        self._show_preview(None)
        self._changed()

    @property
    def sensitivity(self) -> float:
        """The slider's value, 0..1."""
        return self.slider.value() / 100.0

    def mask(self) -> np.ndarray | None:
        """The proposed mask for the current sensitivity (with the current mask added if asked), or None if not ready."""
        if self._mask is None or self._mask_for != self.slider.value():
            return None
        if self.add_box.isChecked() and self.current_mask is not None:
            return np.maximum(self._mask, self.current_mask)
        return self._mask

    def command(self, doc):
        """The undoable change of the document's inpaint mask to mask() (None when no mask is ready)."""
        from sd_studio.document.commands import set_mask

        mask = self.mask()
        if mask is None:
            return None
        return set_mask(doc, mask, name=f"Find scratches and dust ({self.sensitivity:.2f})")

    def _changed(self) -> None:
        self.value_label.setText(f"{self.sensitivity:.2f}")
        self.status.setText("Looking for scratches and dust…")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)
        with self._lock:
            self._requested += 1  # an older run still going sees this and stops
        self._timer.start()

    def _current(self) -> int:
        with self._lock:
            return self._requested

    def _detect(self) -> None:
        number = self._current()
        self._pool.start(_Detect(number, self.image, self.sensitivity, self._current, self._signals))

    def _on_done(self, number: int, mask) -> None:
        if number != self._current() or mask is None:
            return
        self._mask, self._mask_for = mask, self.slider.value()
        share = float(np.count_nonzero(mask)) / mask.size
        self.status.setText(f"{share:.2%} of the photo marked as damage — check it, then heal it (Fill or Generate).")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(True)
        self._show_preview(mask)
        self.maskReady.emit(mask)

    def _show_preview(self, mask: np.ndarray | None) -> None:
        import cv2

        h, w = self.image.shape[:2]
        scale = min(1.0, PREVIEW_SIDE / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(self.image, size, interpolation=cv2.INTER_AREA) if scale < 1 else self.image.copy()
        if mask is not None:
            # a maximum, not a mean, so a 1 px scratch still shows at preview size
            marked = cv2.resize(cv2.dilate(mask, np.ones((3, 3), np.uint8)), size, interpolation=cv2.INTER_AREA) \
                if scale < 1 else mask
            alpha = (marked.astype(np.float32) / 255.0 * 0.6)[..., None]
            small = np.clip(small * (1 - alpha) + TINT * alpha, 0, 255).astype(np.uint8)
        small = np.ascontiguousarray(small)
        image = QImage(small.data, small.shape[1], small.shape[0], small.strides[0], QImage.Format.Format_RGB888)
        self.preview.setPixmap(QPixmap.fromImage(image.copy()))

    def done(self, result: int) -> None:
        """Close the dialog; a detection still running is told to stop."""
        with self._lock:
            self._requested += 1
        self._timer.stop()
        super().done(result)
        self._pool.waitForDone(5000)
