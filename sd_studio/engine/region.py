"""The region a generation works on: where to crop around the mask, and how to paste the result back.

Regions, not whole images: a hole's bounding box plus some context is cropped, scaled to the model's
native resolution, generated, scaled back and pasted through a feathered mask, so the cost of a small
hole does not grow with the photo and every pixel farther than FEATHER from the mask stays bit-for-bit
unchanged. Only the region's pixels are read, converted or copied; the whole image never is.

The target size rule: the crop keeps its aspect and is scaled so its area is about resolution²
(a 512-model sees about 512 x 512 pixels whatever the crop's shape), each side rounded to a multiple
of 8. The long side is capped at 2 x resolution so a thin sliver is not blown up to an absurd length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sd_studio.document.geometry import Bounds, Extent
from sd_studio.errors import GenerationError

MULTIPLE = 8
"""Model input sizes and crop sizes are multiples of this (the VAE downsamples by 8)."""

MIN_IMAGE_SIDE = 8
"""An image smaller than this on either side cannot be generated on."""

LONG_SIDE_CAP = 2.0
"""The target's long side is at most this many times the model's resolution."""


@dataclass(frozen=True)
class RegionPlan:
    """Where a generation works: `bounds` in the image, scaled to `target` for the model."""

    bounds: Bounds
    """The crop in the image: the mask's bounding box plus padding, inside the image; each side a multiple
    of 8 unless it spans the image's whole side."""
    target: Extent
    """The size the crop is scaled to for the model (multiples of 8)."""

    @property
    def is_identity(self) -> bool:
        """True when the crop goes to the model unscaled."""
        return self.bounds.extent == self.target

    def unscaled(self) -> "RegionPlan":
        """The same crop at its own size (for fills that need no model resolution; sides may not be multiples of 8)."""
        return RegionPlan(self.bounds, self.bounds.extent)


def mask_bounds(mask: np.ndarray) -> Bounds:
    """The smallest rectangle holding every non-zero pixel of a (H, W) mask (empty if none)."""
    # Row maxima first, then columns over the marked rows only: one cheap pass over the mask.
    rows = np.flatnonzero(mask.max(axis=1))
    if rows.size == 0:
        return Bounds(0, 0, 0, 0)
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero(mask[y0:y1].max(axis=0))
    return Bounds.from_corners(int(cols[0]), y0, int(cols[-1]) + 1, y1)


def target_size(crop: Extent, resolution: int) -> Extent:
    """The model input size for a crop: its aspect kept, area about resolution², sides multiples of 8."""
    if resolution < MULTIPLE:
        raise GenerationError(f"The resolution must be at least {MULTIPLE} pixels (got {resolution}).")
    w, h = max(1, crop.width), max(1, crop.height)
    scale = min(resolution / math.sqrt(w * h), LONG_SIDE_CAP * resolution / max(w, h))
    return Extent(_round_to_multiple(w * scale), _round_to_multiple(h * scale))


def plan_region(
    image_size: Extent,
    mask: np.ndarray | None,
    *,
    padding: int = 32,
    resolution: int = 512,
    whole_image: bool = False,
    fixed_sizes: tuple[Extent, ...] | None = None,
) -> RegionPlan:
    """Plan the crop around the mask (or the whole image) and its model input size; GenerationError if impossible.

    With `fixed_sizes` (a backend that compiles per shape), the target is the one closest in aspect.
    """
    image = Bounds.from_extent(image_size)
    if image.width < MIN_IMAGE_SIDE or image.height < MIN_IMAGE_SIDE:
        raise GenerationError(
            f"The image is {image.width} x {image.height} pixels; it needs at least "
            f"{MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE} to generate on."
        )
    if mask is not None and mask.shape[:2] != (image.height, image.width):
        raise GenerationError(
            f"The mask is {mask.shape[1]} x {mask.shape[0]} pixels but the image is "
            f"{image.width} x {image.height}; they must be the same size."
        )
    if padding < 0:
        raise GenerationError(f"The padding must be 0 or more pixels (got {padding}).")
    if whole_image or mask is None:
        bounds = image
    else:
        box = mask_bounds(mask)
        if box.is_empty:
            raise GenerationError("The mask is empty: paint over the part of the image to repaint.")
        bounds = _grow_to_multiple(box.pad(padding).intersect(image), image)
    target = target_size(bounds.extent, resolution)
    if fixed_sizes:
        from sd_studio.engine.cpu.backend import nearest_size

        target = nearest_size(target, tuple(fixed_sizes))
    return RegionPlan(bounds, target)


def crop_for_model(
    image: np.ndarray, mask: np.ndarray | None, plan: RegionPlan
) -> tuple[np.ndarray, np.ndarray | None]:
    """The region's RGB pixels scaled to plan.target, and its mask there as 0/255 (fresh arrays; the image is not copied whole).

    The model's mask marks every target pixel that any marked source pixel falls in: a thin scratch
    must not vanish when the crop shrinks, and a grey (partial) mark still needs new pixels to blend
    in. How much of them shows is the paste mask's business, not the model's.
    """
    rows, cols = plan.bounds.slices
    rgb = _resize(np.ascontiguousarray(image[rows, cols, :3]), plan.target)
    if mask is None:
        return rgb, None
    region_mask = _resize(np.ascontiguousarray(mask[rows, cols]), plan.target, smooth_enlarge=False)
    return rgb, np.where(region_mask > 0, np.uint8(255), np.uint8(0))


def paste_mask(mask: np.ndarray, plan: RegionPlan, feather: int) -> np.ndarray:
    """The region-size paste alpha: the mask's own value inside it, a soft edge at most `feather` px outside, 0 beyond."""
    import cv2

    rows, cols = plan.bounds.slices
    inside = np.ascontiguousarray(mask[rows, cols])
    if feather <= 0:
        return inside.copy()
    outside = (inside == 0).astype(np.uint8)
    if not outside.any():
        return inside.copy()
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    # Linear fall-off that is still above 0 at `feather` px and exactly 0 past it.
    falloff = np.clip(1.0 - distance / (feather + 1.0), 0.0, 1.0)
    falloff[distance > feather] = 0.0
    # A grey (partial) mask softens its edge in proportion: never brighter than the mask nearby.
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * feather + 1, 2 * feather + 1))
    nearby = cv2.dilate(inside, kernel)
    edge = np.rint(falloff * nearby).astype(np.uint8)
    return np.where(outside.astype(bool), edge, inside)


def paste_back(
    source: np.ndarray,
    generated: np.ndarray,
    mask: np.ndarray | None,
    plan: RegionPlan,
    *,
    feather: int = 4,
    match_color: bool = False,
) -> np.ndarray:
    """The region-size RGBA result: generated scaled back to plan.bounds, alpha the feathered mask, 0 where alpha is 0."""
    rgb = generated[..., :3]
    if rgb.shape[:2] != (plan.bounds.height, plan.bounds.width):
        rgb = _resize(np.ascontiguousarray(rgb), plan.bounds.extent)
    if mask is None:
        alpha = np.full((plan.bounds.height, plan.bounds.width), 255, np.uint8)
    else:
        alpha = paste_mask(mask, plan, feather)
        if match_color:
            rows, cols = plan.bounds.slices
            rgb = match_colour(rgb, source[rows, cols, :3], mask[rows, cols], ring=max(feather, 4) + 4)
    out = np.zeros((plan.bounds.height, plan.bounds.width, 4), np.uint8)
    visible = alpha > 0
    out[..., :3][visible] = rgb[visible]
    out[..., 3] = alpha
    return out


def match_colour(generated: np.ndarray, source: np.ndarray, mask: np.ndarray, *, ring: int = 8) -> np.ndarray:
    """Shift generated's per-channel mean/std in the ring just outside the mask to the source's there."""
    import cv2

    outside = (mask == 0).astype(np.uint8)
    if not outside.any() or outside.all():
        return generated
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    band = (distance > 0) & (distance <= ring)
    if band.sum() < 2:
        return generated
    gen = generated[band].astype(np.float32)
    src = source[band].astype(np.float32)
    gen_mean, gen_std = gen.mean(axis=0), gen.std(axis=0)
    src_mean, src_std = src.mean(axis=0), src.std(axis=0)
    # A flat ring says nothing about contrast: then shift the mean only.
    gain = np.where(gen_std > 1.0, src_std / np.maximum(gen_std, 1.0), 1.0)
    matched = (generated.astype(np.float32) - gen_mean) * gain + src_mean
    return np.clip(np.rint(matched), 0, 255).astype(np.uint8)


def compose(destination: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """`rgba` over `destination` (same height/width, RGB or straight RGBA uint8) in integer math, in place; returns it.

    Alpha 0 leaves the destination pixel exactly as it was; alpha 255 gives exactly the generated pixel.
    """
    a = rgba[..., 3:4].astype(np.uint32)
    gen = rgba[..., :3].astype(np.uint32)
    dst = destination[..., :3].astype(np.uint32)
    if destination.shape[-1] == 3 or bool((destination[..., 3] == 255).all()):
        destination[..., :3] = (gen * a + dst * (255 - a) + 127) // 255
        return destination
    # Straight alpha "over": weights are alpha_generated*255 and alpha_destination*(255 - alpha_generated).
    da = destination[..., 3:4].astype(np.uint32)
    w_gen = a * 255
    w_dst = da * (255 - a)
    total = w_gen + w_dst
    safe = np.maximum(total, 1)
    rgb = (gen * w_gen + dst * w_dst + safe // 2) // safe
    # Nothing over nothing: keep whatever the destination held.
    destination[..., :3] = np.where(total > 0, rgb, dst)
    destination[..., 3:4] = (total + 127) // 255
    return destination


def compose_region(image: np.ndarray, rgba: np.ndarray, bounds: Bounds) -> np.ndarray:
    """A copy of image with the region-size rgba composed over it at bounds (RGBA out)."""
    if image.shape[-1] == 3:
        out = np.empty(image.shape[:2] + (4,), np.uint8)
        out[..., :3] = image
        out[..., 3] = 255
    else:
        out = image.copy()
    rows, cols = bounds.slices
    compose(out[rows, cols], rgba)
    return out


def _round_to_multiple(value: float) -> int:
    return max(MULTIPLE, int(round(value / MULTIPLE)) * MULTIPLE)


def _grow_to_multiple(bounds: Bounds, image: Bounds) -> Bounds:
    """Each side grown (to the right/bottom, then moved back inside the image) to a multiple of 8 when the image allows."""
    width = min(math.ceil(bounds.width / MULTIPLE) * MULTIPLE, image.width)
    height = min(math.ceil(bounds.height / MULTIPLE) * MULTIPLE, image.height)
    return Bounds(bounds.x, bounds.y, width, height).clamp(image)


def _resize(pixels: np.ndarray, size: Extent, smooth_enlarge: bool = True) -> np.ndarray:
    """Resample to size: area averaging when shrinking, Lanczos (or bilinear) when enlarging, a copy when equal."""
    import cv2

    h, w = pixels.shape[:2]
    if (w, h) == (size.width, size.height):
        return pixels.copy()
    shrinking = size.width * size.height < w * h
    interpolation = cv2.INTER_AREA if shrinking else (cv2.INTER_LANCZOS4 if smooth_enlarge else cv2.INTER_LINEAR)
    return cv2.resize(pixels, (size.width, size.height), interpolation=interpolation)
