"""MaskPrompt: what a smart-mask request asks for (points to include or exclude, a box), in image coordinates."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from sd_studio.document.geometry import Bounds, Extent
from sd_studio.errors import SDStudioError


class PromptError(SDStudioError):
    """A smart-mask request the image cannot answer (a point outside it, an empty box); the message says which."""


class PromptPoint(NamedTuple):
    """A click in continuous image coordinates (pixel (i, j) covers [i, i+1) x [j, j+1)); positive includes."""

    x: float
    y: float
    positive: bool = True


@dataclass(frozen=True)
class MaskPrompt:
    """The points and the optional box that describe one object.

    `previous` is the low-resolution answer to the same object's last prompt (Segment Anything's logits):
    a model refines it instead of starting over, as its interactive demo does.
    """

    points: tuple[PromptPoint, ...] = ()
    box: Bounds | None = None
    previous: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def positives(self) -> tuple[PromptPoint, ...]:
        """The points on the object."""
        return tuple(p for p in self.points if p.positive)

    @property
    def negatives(self) -> tuple[PromptPoint, ...]:
        """The points off the object."""
        return tuple(p for p in self.points if not p.positive)

    @property
    def is_empty(self) -> bool:
        """True when the prompt has neither a point nor a box."""
        return not self.points and self.box is None

    def with_point(self, point: PromptPoint, previous: np.ndarray | None = None) -> MaskPrompt:
        """This prompt with one more point (refining `previous` when given)."""
        return replace(self, points=(*self.points, PromptPoint(*point)), previous=previous)

    def with_box(self, box: Bounds, previous: np.ndarray | None = None) -> MaskPrompt:
        """This prompt with its box replaced."""
        return replace(self, box=Bounds(*box), previous=previous)

    def checked(self, extent: Extent) -> MaskPrompt:
        """This prompt for an image of that extent, its box clipped to the image; PromptError when it cannot be answered."""
        width, height = extent
        for p in self.points:
            if not (np.isfinite(p.x) and np.isfinite(p.y) and 0 <= p.x < width and 0 <= p.y < height):
                raise PromptError(
                    f"The point {_num(p.x)},{_num(p.y)} lies outside the {width} x {height} image."
                )
        box = self.box
        if box is not None:
            clipped = Bounds(*box).intersect(Bounds.from_extent(extent))
            if clipped.width < 2 or clipped.height < 2:
                raise PromptError(
                    f"The box {box.x},{box.y},{box.right},{box.bottom} holds no part of the {width} x {height} image "
                    "(it must cover at least 2 x 2 pixels of it)."
                )
            box = clipped
        if box is None and not self.positives:
            raise PromptError("Mark the object with a point on it or a box around it; points that exclude "
                              "cannot select anything on their own.")
        return replace(self, box=box)


def _num(value: float) -> str:
    return f"{value:g}"
