"""Colourising a black-and-white scan with DDColor: the model proposes colour at a modest size, the scan's
own lightness is kept at full resolution.

The model sees the photo at most WORK_SIDE px long; its colour (the a and b channels of CIE Lab) is
enlarged to the scan's size and joined to the scan's own L channel, so no detail is lost and memory
does not grow with the scan.
"""

from __future__ import annotations

import numpy as np

from sd_studio.document.geometry import Bounds, Extent
from sd_studio.engine.request import Progress
from sd_studio.engine.restore.result import RestoreResult, full_patch, model_parameters
from sd_studio.errors import Cancelled, GenerationError

WORK_SIDE = 1024
"""The long side (px) the model works at."""


def colorize(image: np.ndarray, model, *, progress=None, cancel=None) -> RestoreResult:
    """The photo in colour (an opaque patch over the whole image): the model's colour, the photo's lightness."""
    import cv2

    from sd_studio.engine.restore.inference import run_image_model

    if model.architecture != "DDColor":
        raise GenerationError(f"{model.name} is not a colourisation model.")
    rgb = np.ascontiguousarray(image[..., :3])
    h, w = rgb.shape[:2]
    if progress is not None:
        progress(Progress("colorizing", 0, 1))
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else rgb
    coloured = run_image_model(model, small)
    if cancel is not None and cancel():
        raise Cancelled("Colourising cancelled; nothing was changed.")
    lab_colour = cv2.cvtColor(coloured, cv2.COLOR_RGB2LAB)
    ab = cv2.resize(lab_colour[..., 1:], (w, h), interpolation=cv2.INTER_CUBIC) if scale < 1 else lab_colour[..., 1:]
    lightness = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)[..., :1]
    out = cv2.cvtColor(np.ascontiguousarray(np.concatenate([lightness, ab], axis=2)), cv2.COLOR_LAB2RGB)
    if progress is not None:
        progress(Progress("colorizing", 1, 1, message="done"))
    params = model_parameters("Colorize", model, Colorization=model.name)
    return RestoreResult(image=full_patch(out), region=Bounds(0, 0, w, h), canvas=Extent(w, h), parameters=params)
