"""Choosing "the subject" among a model's candidate masks: the largest well-rated segment around the picture's centre.

No salient-object model loads here without running code from the model's repository (RMBG and
BiRefNet ship their architectures as `trust_remote_code`, and neither transformers nor any other
installed library has them), so "select subject" asks Segment Anything around the centre instead and
keeps the candidate a photographer would mean: large, holding the centre, not the whole frame, not
the background (which touches three or four edges), and rated well by the model itself.
"""

from __future__ import annotations

import numpy as np

from sd_studio.document.geometry import Extent

MIN_FRACTION = 0.01
MAX_FRACTION = 0.9
SCORE_SHARE = 0.5
"""A candidate rated below this share of the best rating is not trusted, however large."""


def pick_subject(candidates: np.ndarray, scores: np.ndarray, visible: Extent) -> int:
    """The index of the subject among (n, m, m) logit candidates (positive: inside) with their predicted scores.

    `visible` is the part of each m x m grid that shows the picture (its top-left corner; the rest is
    padding). Among candidates that hold the centre, cover 1-90 % of the picture, touch at most two of its
    edges and are rated at least half as well as the best, the largest wins; failing that, the same without
    the centre; failing that, the best rated.
    """
    width, height = visible
    inside = np.asarray(candidates)[:, :height, :width] > 0
    scores = np.asarray(scores, np.float64)
    total = float(width * height)
    centre = inside[:, height // 2, width // 2]
    fractions = inside.reshape(len(inside), -1).sum(axis=1) / total
    edges = (inside[:, 0, :].any(axis=1).astype(int) + inside[:, -1, :].any(axis=1)
             + inside[:, :, 0].any(axis=1) + inside[:, :, -1].any(axis=1))
    trusted = scores >= SCORE_SHARE * scores.max() if scores.max() > 0 else np.ones(len(scores), bool)
    plausible = (fractions >= MIN_FRACTION) & (fractions <= MAX_FRACTION) & (edges <= 2) & trusted
    for wanted in (plausible & centre, plausible):
        if wanted.any():
            return int(np.flatnonzero(wanted)[np.argmax(fractions[wanted])])
    return int(np.argmax(scores))
