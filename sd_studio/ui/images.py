"""Conversions between numpy pixel arrays and QImage, without Qt knowing about numpy."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def qimage_view(pixels: np.ndarray) -> QImage:
    """A QImage sharing a C-contiguous (h, w, 4) RGBA or (h, w, 3) RGB uint8 array's memory.

    The caller keeps the array alive (and unchanged while Qt reads it) as long as the image is used.
    """
    if not pixels.flags.c_contiguous:
        raise ValueError("qimage_view needs a C-contiguous array")
    h, w = pixels.shape[:2]
    fmt = QImage.Format.Format_RGBA8888 if pixels.shape[2] == 4 else QImage.Format.Format_RGB888
    return QImage(pixels.data, w, h, pixels.strides[0], fmt)


def qimage_copy(pixels: np.ndarray) -> QImage:
    """A QImage owning a copy of an (h, w, 4) RGBA or (h, w, 3) RGB uint8 array."""
    return qimage_view(np.ascontiguousarray(pixels, dtype=np.uint8)).copy()


def rgba_from_qimage(image: QImage) -> np.ndarray:
    """The pixels of any QImage as a new (h, w, 4) straight-alpha RGBA uint8 array."""
    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    h, w = image.height(), image.width()
    buffer = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * h)
    return buffer.reshape(h, image.bytesPerLine())[:, : w * 4].reshape(h, w, 4).copy()


def downscale(pixels: np.ndarray, factor: int) -> np.ndarray:
    """An array shrunk by an integer factor (area average), each side rounded up."""
    if factor <= 1:
        return pixels
    import cv2

    h, w = pixels.shape[:2]
    size = (max(1, -(-w // factor)), max(1, -(-h // factor)))
    return cv2.resize(np.ascontiguousarray(pixels), size, interpolation=cv2.INTER_AREA)
