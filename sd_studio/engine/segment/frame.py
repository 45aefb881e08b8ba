"""SamFrame: how an image sits in Segment Anything's square input, both ways, without torchvision.

The model sees the image scaled so that its longest side fills the square (1024 pixels for every
released SAM), normalised with ImageNet's mean and deviation and padded with zeros to the right and
bottom, as transformers' SamImageProcessor does. Prompts go into that frame; the decoder's
low-resolution logits come back out of it to the image's own size, exactly, and only over the part
that holds the object, so a 6000 x 4000 photo costs what its object covers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sd_studio.document.geometry import Bounds, Extent

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_WARP = 4096  # pixels a side per warp: bounded temporary memory, and under OpenCV's limit


def rgb_of(image: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 RGB of an RGB or RGBA image; transparent pixels show white, as a flattened export does."""
    image = np.asarray(image)
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2).astype(np.uint8)
    if image.shape[2] == 3:
        return image.astype(np.uint8, copy=False)
    alpha = image[..., 3:4].astype(np.uint16)
    if (alpha == 255).all():
        return np.ascontiguousarray(image[..., :3])
    rgb = (image[..., :3].astype(np.uint16) * alpha + 255 * (255 - alpha) + 127) // 255
    return rgb.astype(np.uint8)


@dataclass(frozen=True)
class SamFrame:
    """An image of extent `image` scaled into a square of `side` pixels (longest side filling it), padded right and bottom.

    Coordinates: prompts are continuous image coordinates (pixel i covers [i, i+1)); the model takes pixel
    indices and adds 0.5 itself, so a coordinate c enters it as c * scale - 0.5.
    """

    image: Extent
    side: int = 1024

    @property
    def resized(self) -> Extent:
        """The image's size inside the frame (rounded as transformers' SamImageProcessor rounds it)."""
        width, height = self.image
        scale = self.side / max(width, height)
        return Extent(max(1, int(width * scale + 0.5)), max(1, int(height * scale + 0.5)))

    @property
    def scale(self) -> tuple[float, float]:
        """Frame pixels per image pixel, across and down."""
        resized = self.resized
        return resized.width / self.image.width, resized.height / self.image.height

    def point(self, x: float, y: float) -> tuple[float, float]:
        """An image position as the model's prompt encoder takes it."""
        sx, sy = self.scale
        return x * sx - 0.5, y * sy - 0.5

    def box(self, box: Bounds) -> tuple[float, float, float, float]:
        """A box's corners (its outer edges) as the model's prompt encoder takes them."""
        x0, y0 = self.point(box.x, box.y)
        x1, y1 = self.point(box.right, box.bottom)
        return x0, y0, x1, y1

    def pixels(self, image: np.ndarray) -> np.ndarray:
        """The model's input for an (h, w, 3|4) uint8 image: (1, 3, side, side) float32, normalised and padded."""
        import cv2

        rgb = rgb_of(image)
        resized = self.resized
        shrinking = resized.width < rgb.shape[1]
        scaled = cv2.resize(rgb, tuple(resized), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        out = np.zeros((1, 3, self.side, self.side), np.float32)
        for c in range(3):
            plane = scaled[..., c].astype(np.float32) * (1 / 255)
            out[0, c, : resized.height, : resized.width] = (plane - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        return out

    def mask(self, low_res: np.ndarray, threshold: float = 0.0,
             clean: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[Bounds, np.ndarray]:
        """The image-sized mask of the decoder's (m, m) logits, as (bounds, uint8 pixels over bounds; 255 selected).

        As SamProcessor.post_process_masks: bilinear up to the square, the padding cut off, bilinear to the
        image's size, then the threshold; but the last step runs only over the rectangle holding the object.
        `clean`, given the inside (bool) at the frame's resolution, returns what to keep: specks and holes are
        dealt with there, at a megapixel, not at the photo's size.
        """
        import cv2

        logits = np.ascontiguousarray(low_res, np.float32)
        square = cv2.resize(logits, (self.side, self.side), interpolation=cv2.INTER_LINEAR)
        resized = self.resized
        crop = np.ascontiguousarray(square[: resized.height, : resized.width])
        inside = crop > threshold
        if clean is not None:
            kept = clean(inside)
            # Dropped pieces sink below the threshold, filled holes rise above it; edges keep their logits.
            crop = np.where(kept == inside, crop, np.where(kept, threshold + 1.0, threshold - 1.0)).astype(np.float32)
            inside = kept
        rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        if rows.size == 0:
            return Bounds(0, 0, 0, 0), np.zeros((0, 0), np.uint8)
        sx, sy = self.scale
        # One frame pixel spans 1/scale image pixels; a margin of two of them holds the whole bilinear edge.
        x0 = int(np.floor((cols[0] - 2) / sx))
        y0 = int(np.floor((rows[0] - 2) / sy))
        x1 = int(np.ceil((cols[-1] + 3) / sx))
        y1 = int(np.ceil((rows[-1] + 3) / sy))
        bounds = Bounds.from_corners(x0, y0, x1, y1).intersect(Bounds.from_extent(self.image))
        # Destination pixel (u, v) of bounds samples the crop where a full-size resize would:
        # src = (dst + 0.5) * scale - 0.5 (bilinear with half-pixel centres, align_corners=False).
        out = np.empty((bounds.height, bounds.width), np.uint8)
        for part in _pieces(bounds, MAX_WARP):
            matrix = np.array([[sx, 0.0, (part.x + 0.5) * sx - 0.5], [0.0, sy, (part.y + 0.5) * sy - 0.5]])
            values = cv2.warpAffine(
                crop, matrix, (part.width, part.height),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
            )
            out[part.offset(-bounds.x, -bounds.y).slices] = np.where(values > threshold, np.uint8(255), np.uint8(0))
        return bounds, out


def _pieces(bounds: Bounds, size: int):
    """bounds cut into rectangles of at most size x size pixels (OpenCV's warps stop at 32767 a side)."""
    for y in range(bounds.y, bounds.bottom, size):
        for x in range(bounds.x, bounds.right, size):
            yield Bounds.from_corners(x, y, min(x + size, bounds.right), min(y + size, bounds.bottom))
