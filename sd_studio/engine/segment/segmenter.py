"""Segmenter: the one entry point for smart masks — Segment Anything when a model is given, GrabCut without one."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

import numpy as np

from sd_studio.document.geometry import Extent
from sd_studio.engine.segment.prompt import MaskPrompt
from sd_studio.engine.segment.selection import Selection
from sd_studio.errors import ModelError

if TYPE_CHECKING:
    from sd_studio.engine.request import CancelCallback, ProgressCallback
    from sd_studio.engine.segment.sam import SamPredictor


class NeedsModel(ModelError):
    """A request only a segmentation model can answer (points without a box) and none is set."""


NO_MODEL_FOR_POINTS = (
    "Selecting by clicks needs a Segment Anything model; without one, drag a box around the object and "
    "GrabCut selects inside it."
)


class Segmenter:
    """Answers smart-mask requests on images: Segment Anything when `model` names one (loaded on first use), else GrabCut.

    With a model, each picture's embedding is computed once and reused (by `key`, or by the pixels' digest),
    so that every further click costs only the mask decoder. Call it from one thread at a time.
    """

    def __init__(self, model: str | None = None, device: str = "auto") -> None:
        self.model = model or None
        self.device = device
        self._predictor: SamPredictor | None = None

    @property
    def method(self) -> str:
        """"sam" when a model is set, "grabcut" otherwise."""
        return "sam" if self.model else "grabcut"

    def predictor(self, progress: ProgressCallback | None = None) -> SamPredictor:
        """The loaded Segment Anything model (loading it now if needed); ModelError when it cannot be loaded."""
        if self._predictor is None:
            from sd_studio.engine.request import Progress
            from sd_studio.engine.segment.sam import SamPredictor
            from sd_studio.engine.segment.sam_files import sam_source

            source = sam_source(self.model)
            if progress is not None:
                progress(Progress("loading", 0, 1, message=f"Loading {source.name}"))
            self._predictor = SamPredictor(source, self.device)
            if progress is not None:
                progress(Progress("loading", 1, 1, message=f"Loaded {source.name}"))
        return self._predictor

    def needs_analysis(self, key: Hashable) -> bool:
        """True when the next request on the picture with this key will run the image encoder (the slow part)."""
        return self.model is not None and (self._predictor is None or not self._predictor.has_embedding(key))

    def select(self, image: np.ndarray, prompt: MaskPrompt, key: Hashable | None = None,
               progress: ProgressCallback | None = None, cancel: CancelCallback | None = None) -> Selection:
        """The object the prompt marks in an (h, w, 3|4) uint8 image; PromptError for a prompt outside it,
        NeedsModel for points alone without a model."""
        prompt = prompt.checked(Extent(image.shape[1], image.shape[0]))
        if self.model:
            return self.predictor(progress).select(image, prompt, key, progress, cancel)
        if prompt.box is None:
            raise NeedsModel(NO_MODEL_FOR_POINTS)
        from sd_studio.engine.segment.grabcut import grabcut_select

        return grabcut_select(image, prompt.box, prompt.points, cancel)

    def select_subject(self, image: np.ndarray, key: Hashable | None = None,
                       progress: ProgressCallback | None = None, cancel: CancelCallback | None = None) -> Selection:
        """The picture's main object (Segment Anything around the centre, or GrabCut from the picture's rim)."""
        if self.model:
            return self.predictor(progress).subject(image, key, progress, cancel)
        from sd_studio.engine.segment.grabcut import grabcut_subject

        return grabcut_subject(image, cancel)

    def select_background(self, image: np.ndarray, key: Hashable | None = None,
                          progress: ProgressCallback | None = None,
                          cancel: CancelCallback | None = None) -> Selection:
        """Everything but the picture's main object."""
        return self.select_subject(image, key, progress, cancel).inverted()
