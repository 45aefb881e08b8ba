"""Geometry as small immutable value types: Point, Extent and Bounds."""

from __future__ import annotations

import math
from typing import Iterator, NamedTuple


class Point(NamedTuple):
    """A position in pixels."""

    x: int
    y: int

    def __add__(self, other: object) -> "Point":  # type: ignore[override]
        if isinstance(other, tuple) and len(other) == 2:
            return Point(self.x + other[0], self.y + other[1])
        return NotImplemented

    def __sub__(self, other: tuple[int, int]) -> "Point":
        return Point(self.x - other[0], self.y - other[1])


class Extent(NamedTuple):
    """A width and a height in pixels."""

    width: int
    height: int

    @property
    def pixel_count(self) -> int:
        """Width times height."""
        return self.width * self.height

    @property
    def is_empty(self) -> bool:
        """True when either side is zero or negative."""
        return self.width <= 0 or self.height <= 0

    def multiple_of(self, n: int) -> "Extent":
        """Round each side up to the next multiple of n."""
        return Extent(math.ceil(self.width / n) * n, math.ceil(self.height / n) * n)

    def at_least(self, n: int) -> "Extent":
        """Each side no smaller than n."""
        return Extent(max(self.width, n), max(self.height, n))

    def scale_keep_aspect(self, target: int) -> "Extent":
        """Scale to about target x target pixels of area, keeping the aspect ratio."""
        scale = math.sqrt(target * target / max(1, self.pixel_count))
        return Extent(max(1, round(self.width * scale)), max(1, round(self.height * scale)))

    def scale_longest_side(self, target: int) -> "Extent":
        """Scale so the longer side equals target, keeping aspect."""
        scale = target / max(self.width, self.height, 1)
        return Extent(max(1, round(self.width * scale)), max(1, round(self.height * scale)))


class Bounds(NamedTuple):
    """An axis-aligned rectangle: left, top, width, height (half-open on the right and bottom)."""

    x: int
    y: int
    width: int
    height: int

    @staticmethod
    def from_extent(extent: tuple[int, int]) -> "Bounds":
        """The rectangle at the origin with that size."""
        return Bounds(0, 0, int(extent[0]), int(extent[1]))

    @staticmethod
    def from_corners(x0: int, y0: int, x1: int, y1: int) -> "Bounds":
        """The rectangle from (x0, y0) inclusive to (x1, y1) exclusive; empty if inverted."""
        return Bounds(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    @property
    def right(self) -> int:
        """One past the last column."""
        return self.x + self.width

    @property
    def bottom(self) -> int:
        """One past the last row."""
        return self.y + self.height

    @property
    def extent(self) -> Extent:
        """The size of the rectangle."""
        return Extent(self.width, self.height)

    @property
    def origin(self) -> Point:
        """The top-left corner."""
        return Point(self.x, self.y)

    @property
    def is_empty(self) -> bool:
        """True when the rectangle holds no pixel."""
        return self.width <= 0 or self.height <= 0

    @property
    def slices(self) -> tuple[slice, slice]:
        """Numpy (rows, columns) slices selecting this rectangle from an array at the origin."""
        return slice(self.y, self.bottom), slice(self.x, self.right)

    def offset(self, dx: int, dy: int) -> "Bounds":
        """The same rectangle moved by (dx, dy)."""
        return Bounds(self.x + dx, self.y + dy, self.width, self.height)

    def pad(self, n: int) -> "Bounds":
        """Grown by n pixels on every side (shrunk when n is negative)."""
        return Bounds.from_corners(self.x - n, self.y - n, self.right + n, self.bottom + n)

    def intersect(self, other: "Bounds") -> "Bounds":
        """The overlap of two rectangles (empty when they do not meet)."""
        return Bounds.from_corners(
            max(self.x, other.x), max(self.y, other.y),
            min(self.right, other.right), min(self.bottom, other.bottom),
        )

    def union(self, other: "Bounds") -> "Bounds":
        """The smallest rectangle holding both; an empty one is ignored."""
        if self.is_empty:
            return other
        if other.is_empty:
            return self
        return Bounds.from_corners(
            min(self.x, other.x), min(self.y, other.y),
            max(self.right, other.right), max(self.bottom, other.bottom),
        )

    def contains(self, other: "Bounds") -> bool:
        """True when other lies wholly inside this rectangle."""
        return (
            other.x >= self.x and other.y >= self.y
            and other.right <= self.right and other.bottom <= self.bottom
        )

    def contains_point(self, x: float, y: float) -> bool:
        """True when the point lies inside."""
        return self.x <= x < self.right and self.y <= y < self.bottom

    def clamp(self, outer: "Bounds") -> "Bounds":
        """Moved (not shrunk, unless it is larger) so that it lies inside outer."""
        w, h = min(self.width, outer.width), min(self.height, outer.height)
        x = min(max(self.x, outer.x), outer.right - w)
        y = min(max(self.y, outer.y), outer.bottom - h)
        return Bounds(x, y, w, h)

    def snap_out(self, n: int) -> "Bounds":
        """Grown outwards so every edge lies on a multiple of n (an empty rectangle stays empty)."""
        if self.is_empty:
            return self
        x0 = (self.x // n) * n
        y0 = (self.y // n) * n
        x1 = -((-self.right) // n) * n
        y1 = -((-self.bottom) // n) * n
        return Bounds.from_corners(x0, y0, x1, y1)

    def tiles(self, size: int) -> Iterator[tuple[int, int]]:
        """The (column, row) indices of the size x size tiles this rectangle touches."""
        if self.is_empty:
            return
        for ty in range(self.y // size, (self.bottom - 1) // size + 1):
            for tx in range(self.x // size, (self.right - 1) // size + 1):
                yield tx, ty
