"""Compositing: blend modes per the W3C Compositing and Blending spec, flattened per rectangle.

(Provisional src-over-only version; the full set of blend modes replaces it.)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sd_studio.document.geometry import Bounds
from sd_studio.document.layer import Layer


def flatten(layers: Sequence[Layer], bounds: Bounds) -> np.ndarray:
    """The visible layers (bottom first) composited over a transparent backdrop inside bounds."""
    out = np.zeros((bounds.height, bounds.width, 4), np.float32)
    for layer in layers:
        if not layer.visible or layer.opacity <= 0:
            continue
        src = layer.read(bounds).astype(np.float32) / 255
        a_s = src[..., 3:] * layer.opacity
        a_b = out[..., 3:]
        a_o = a_s + a_b * (1 - a_s)
        c = src[..., :3] * a_s + out[..., :3] * a_b * (1 - a_s)
        out[..., :3] = np.divide(c, a_o, out=np.zeros_like(c), where=a_o > 0)
        out[..., 3:] = a_o
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)
