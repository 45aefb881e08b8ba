"""Faces: find each face (no download needed), restore it with GFPGAN / RestoreFormer / CodeFormer, paste it back.

Faces are found with scikit-image's LBP frontal-face cascade, which ships inside scikit-image's wheel
(OpenCV's Haar cascades are not in the opencv-python-headless wheel, and YuNet needs a model file),
on a copy at most DETECT_SIDE px long. Each face is cut out as a square twice its size (the margin
these models were trained with), scaled to the model's 512 px, restored, scaled back and pasted
through a feathered ellipse; strength 0..1 is the share of the restored face in the result.
"""

from __future__ import annotations

import math

import numpy as np

from sd_studio.document.geometry import Bounds
from sd_studio.engine.request import Progress
from sd_studio.engine.restore.result import RestoreResult, model_parameters
from sd_studio.errors import Cancelled, GenerationError

DETECT_SIDE = 1024
"""Faces are searched on a copy whose long side is at most this (px)."""

MIN_FACE = 24
"""The smallest face searched for, in px of that copy."""

FACE_SIZE = 512
"""The size face models work at."""

MARGIN = 2.0
"""The crop around a face, as a multiple of the detected face's side."""


def find_faces(rgb: np.ndarray) -> list[Bounds]:
    """Bounding boxes of the frontal faces in an (H, W, 3) uint8 image, largest first, overlaps merged."""
    import cv2
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(h, w))
    small = cv2.resize(rgb[..., :3], (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else rgb[..., :3]
    gray = cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    side = min(gray.shape)
    if side < MIN_FACE:
        return []
    cascade = Cascade(lbp_frontal_face_cascade_filename())
    found = cascade.detect_multi_scale(img=gray, scale_factor=1.2, step_ratio=1, min_size=(MIN_FACE, MIN_FACE),
                                       max_size=(side, side))
    colour = _is_colour(small)
    boxes = [Bounds(round(f["c"] / scale), round(f["r"] / scale), round(f["width"] / scale),
                    round(f["height"] / scale)) for f in found
             if not colour or _skin_share(small, f) >= SKIN_SHARE]
    boxes.sort(key=lambda b: b.width * b.height, reverse=True)
    kept: list[Bounds] = []
    for box in boxes:
        if all(_overlap(box, other) < 0.3 for other in kept):
            kept.append(box)
    return kept


SKIN_SHARE = 0.3
"""In a colour photo, a face's centre must be at least this much skin-coloured (the cascade alone also takes
reflections and folds for faces); black-and-white scans are not checked."""


def _is_colour(rgb: np.ndarray) -> bool:
    import cv2

    return float(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)[..., 1].mean()) > 25.0


def _skin_share(rgb: np.ndarray, found: dict) -> float:
    """The share of skin-coloured pixels (a YCrCb box, any skin tone) in the middle half of a detection."""
    import cv2

    y, x, w, h = found["r"], found["c"], found["width"], found["height"]
    centre = np.ascontiguousarray(rgb[y + h // 4:y + h - h // 4, x + w // 4:x + w - w // 4])
    if centre.size == 0:
        return 0.0
    ycc = cv2.cvtColor(centre, cv2.COLOR_RGB2YCrCb)
    cr, cb = ycc[..., 1], ycc[..., 2]
    return float(((cr >= 133) & (cr <= 180) & (cb >= 77) & (cb <= 135)).mean())


def restore_faces(image: np.ndarray, model, strength: float = 1.0, *, faces: list[Bounds] | None = None,
                  progress=None, cancel=None) -> RestoreResult:
    """Every face restored and pasted back over a feathered ellipse, as one RGBA patch (alpha 0 where no face)."""
    from sd_studio.engine.restore.inference import run_image_model

    if not 0.0 <= float(strength) <= 1.0:
        raise GenerationError(f"The face strength must be from 0 to 1, not {strength!r}.")
    if model.purpose != "FaceSR":
        raise GenerationError(f"{model.name} is not a face restoration model.")
    rgb = np.ascontiguousarray(image[..., :3])
    h, w = rgb.shape[:2]
    canvas = Bounds(0, 0, w, h)
    boxes = find_faces(rgb) if faces is None else faces
    crops = [_crop_box(box, canvas) for box in boxes]
    area = Bounds(0, 0, 0, 0)
    for crop in crops:
        area = area.union(crop.intersect(canvas))
    params = model_parameters("Face restoration", model, **{"Face restoration": model.name,
                                                            "Face strength": float(strength),
                                                            "Faces": len(boxes)})
    if area.is_empty:
        return RestoreResult(image=np.zeros((0, 0, 4), np.uint8), region=Bounds(0, 0, 0, 0),
                             canvas=canvas.extent, parameters=params)
    patch = np.zeros((area.height, area.width, 4), np.uint8)
    patch[..., :3] = rgb[area.slices]
    for i, crop in enumerate(crops):
        if cancel is not None and cancel():
            raise Cancelled("Face restoration cancelled; nothing was changed.")
        if progress is not None:
            progress(Progress("faces", i, len(crops), message=f"face {i + 1} of {len(crops)}"))
        face = _read_square(rgb, crop)
        restored = run_image_model(model, _resize(face, FACE_SIZE))
        restored = _resize(restored, crop.width)
        alpha = _ellipse(crop.width) * float(strength)
        inside = crop.intersect(canvas)
        ox, oy = inside.x - crop.x, inside.y - crop.y
        px, py = inside.x - area.x, inside.y - area.y
        a = alpha[oy:oy + inside.height, ox:ox + inside.width, None]
        dst = patch[py:py + inside.height, px:px + inside.width]
        rgb_new = restored[oy:oy + inside.height, ox:ox + inside.width].astype(np.float32)
        # Faces can overlap: each one goes over what is already there.
        dst[..., :3] = np.clip(np.rint(rgb_new * a + dst[..., :3] * (1 - a)), 0, 255).astype(np.uint8)
        dst[..., 3] = np.maximum(dst[..., 3], np.rint(a[..., 0] * 255).astype(np.uint8))
    if progress is not None:
        progress(Progress("faces", len(crops), len(crops), message="done"))
    patch[patch[..., 3] == 0] = 0
    return RestoreResult(image=patch, region=area, canvas=canvas.extent, parameters=params)


def _crop_box(face: Bounds, canvas: Bounds) -> Bounds:
    side = max(8, round(max(face.width, face.height) * MARGIN))
    cx, cy = face.x + face.width / 2, face.y + face.height / 2
    return Bounds(round(cx - side / 2), round(cy - side / 2), side, side)


def _read_square(rgb: np.ndarray, crop: Bounds) -> np.ndarray:
    """The crop's pixels; where it leaves the image, the image's edge is mirrored in."""
    import cv2

    h, w = rgb.shape[:2]
    inside = crop.intersect(Bounds(0, 0, w, h))
    pixels = rgb[inside.slices]
    top, left = inside.y - crop.y, inside.x - crop.x
    bottom, right = crop.bottom - inside.bottom, crop.right - inside.right
    if top or left or bottom or right:
        pixels = cv2.copyMakeBorder(np.ascontiguousarray(pixels), top, bottom, left, right, cv2.BORDER_REFLECT_101)
    return np.ascontiguousarray(pixels)


def _ellipse(side: int) -> np.ndarray:
    """A (side, side) float32 alpha: 1 over the face's ellipse, falling smoothly to 0 before the crop's edge."""
    import cv2

    mask = np.zeros((side, side), np.float32)
    centre = (side // 2, side // 2)
    cv2.ellipse(mask, centre, (round(side * 0.33), round(side * 0.40)), 0, 0, 360, 1.0, -1)
    sigma = max(1.0, side / 16)
    k = 2 * math.ceil(3 * sigma) + 1
    return np.clip(cv2.GaussianBlur(mask, (k, k), sigma), 0.0, 1.0)


def _resize(pixels: np.ndarray, side: int) -> np.ndarray:
    import cv2

    if pixels.shape[0] == side and pixels.shape[1] == side:
        return pixels
    shrinking = side < pixels.shape[0]
    return cv2.resize(pixels, (side, side), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4)


def _overlap(a: Bounds, b: Bounds) -> float:
    inter = a.intersect(b)
    if inter.is_empty:
        return 0.0
    return inter.width * inter.height / min(a.width * a.height, b.width * b.height)
