"""Fills without weights: OpenCV's Telea and Navier-Stokes inpainting, offline, on any machine."""

from __future__ import annotations

import numpy as np

from sd_studio.errors import GenerationError

METHODS = {"telea": "Telea", "ns": "Navier-Stokes"}
"""Method keys and the sampler names reported in a result's parameters."""

DEFAULT_RADIUS = 5
"""Pixels around each filled point that inform it."""


def fill(image_rgb: np.ndarray, mask: np.ndarray, method: str = "telea", radius: int = DEFAULT_RADIUS) -> np.ndarray:
    """A new (H, W, 3) uint8 RGB image with every non-zero mask pixel filled from its surroundings."""
    import cv2

    if method not in METHODS:
        raise GenerationError(f"Unknown fill method {method!r}; use one of: {', '.join(METHODS)}.")
    if image_rgb.shape[:2] != mask.shape[:2]:
        raise GenerationError("The fill's mask and image differ in size.")
    flags = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    rgb = np.ascontiguousarray(image_rgb[..., :3], dtype=np.uint8)
    # Any marked pixel (even a partial one) is refilled; the paste-back blends partial ones.
    holes = (mask > 0).astype(np.uint8)
    if not holes.any():
        return rgb.copy()
    return cv2.inpaint(rgb, holes, max(1, int(radius)), flags)


def method_label(method: str) -> str:
    """The sampler name a classical fill reports (Telea, Navier-Stokes)."""
    return METHODS[method]
