"""RestoreResult: what a restoration returns — a patch for a new layer, the canvas it lands on, its parameters."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sd_studio.document.geometry import Bounds, Extent, Point

ORIGIN = Point(0, 0)

COMPOSE_ROWS = 256
"""Rows of the patch composed at a time."""


@dataclass(frozen=True)
class RestoreResult:
    """A restoration's result: `image` (RGBA, alpha = where it applies) at `region` of a canvas of `canvas` size.

    The canvas may differ from the source's: Upscale scales the old canvas by `scale`, Expand moves it
    by `shift` inside a larger one. The source layers stay as they are (scaled or moved with the canvas);
    the patch becomes a new layer carrying `parameters` (A1111-style names).
    """

    image: np.ndarray
    region: Bounds
    canvas: Extent
    parameters: dict = field(default_factory=dict)
    scale: int = 1
    shift: Point = ORIGIN
    mask: np.ndarray | None = None
    """For Expand and Find damage: the mask the operation proposes or used (canvas size, 255 = marked)."""

    def parameters_text(self) -> str:
        """The parameters as AUTOMATIC1111 `parameters` text."""
        from sd_studio.document.io.parameters import format_parameters

        return format_parameters(self.parameters)

    def composite_onto(self, source: np.ndarray) -> np.ndarray:
        """The full result: source (RGB or RGBA) scaled/moved onto the new canvas, the patch over it (RGBA; the patch
        itself when it covers the whole canvas opaquely — copy it before changing it)."""
        if self.region == Bounds.from_extent(self.canvas) and bool((self.image[..., 3] == 255).all()):
            return self.image  # an opaque patch over the whole canvas (Upscale, Colorize) is the result itself
        src = source if source.shape[2] == 4 else np.dstack([source, np.full(source.shape[:2], 255, np.uint8)])
        if self.scale != 1:
            import cv2

            src = cv2.resize(src, (src.shape[1] * self.scale, src.shape[0] * self.scale),
                             interpolation=cv2.INTER_LANCZOS4)
        if tuple(self.canvas) != (src.shape[1], src.shape[0]) or tuple(self.shift) != (0, 0):
            canvas = np.zeros((self.canvas.height, self.canvas.width, 4), np.uint8)
            placed = Bounds(self.shift.x, self.shift.y, src.shape[1], src.shape[0]).intersect(
                Bounds.from_extent(self.canvas))
            rows, cols = placed.slices
            canvas[rows, cols] = src[placed.y - self.shift.y:placed.bottom - self.shift.y,
                                     placed.x - self.shift.x:placed.right - self.shift.x]
            src = canvas
        else:
            src = src.copy()
        compose_in_bands(src[self.region.slices], self.image)
        return src


def compose_in_bands(destination: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """region.compose (rgba over destination, in place) a band of rows at a time: its integer temporaries are
    several times the pixels they cover, so a whole-canvas patch would cost several canvases of memory."""
    from sd_studio.engine.region import compose

    for y in range(0, rgba.shape[0], COMPOSE_ROWS):
        compose(destination[y:y + COMPOSE_ROWS], rgba[y:y + COMPOSE_ROWS])
    return destination


def full_patch(rgb: np.ndarray) -> np.ndarray:
    """An opaque RGBA patch of RGB pixels."""
    out = np.empty(rgb.shape[:2] + (4,), np.uint8)
    out[..., :3] = rgb[..., :3]
    out[..., 3] = 255
    return out


def model_parameters(operation: str, model, **settings) -> dict:
    """A restoration's parameters: what ran (operation, model name and hash, architecture) and its settings."""
    params: dict = {"Postprocessing": operation}
    if model is not None:
        params["model"] = model.name
        params["model_hash"] = model.hash
        params["Architecture"] = model.architecture
    params.update({k: v for k, v in settings.items() if v is not None})
    return params
