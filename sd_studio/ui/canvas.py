"""Canvas: the view of a document — zoom, pan, checkerboard, mask overlay, dirty-rectangle repaint."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QApplication, QWidget

from sd_studio.document.document import Document
from sd_studio.document.geometry import Bounds
from sd_studio.ui.focus import edits_text
from sd_studio.ui.images import downscale, qimage_copy, qimage_view

ZOOM_STEPS = (1 / 32, 1 / 24, 1 / 16, 1 / 12, 1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32)
MAX_LEVEL = 6
BAND_ROWS = 256
"""Rows composited at a time when the whole document is loaded, which bounds the temporary memory."""

MASK_TINT = (255, 48, 96)
MASK_ALPHA = 0.45
MASK_DISPLAYS = ("tint", "erased")
"""How the mask shows: a red tint over the image, or the image erased (the checkerboard through the mask)."""


class _Level:
    """One step of the view's image pyramid: the composite shrunk by 2**k, with the areas still stale."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels
        self.image = qimage_view(pixels)
        self.stale: list[Bounds] = []


class Canvas(QWidget):
    """Shows a document at any zoom and forwards pointer gestures to the current tool.

    The view keeps its own copy of the composite (and shrunken copies for zooms below 1/2) and
    refreshes only the rectangles the document reports through `pixels_changed`; each paint draws
    only the part of the document that is visible.
    """

    zoom_changed = Signal(float)
    cursor_moved = Signal(object)  # QPointF in document coordinates, or None when outside the widget
    message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setAttribute(Qt.WidgetAttribute.WA_TabletTracking)
        self.setMinimumSize(200, 200)
        self._doc: Document | None = None
        self._levels: dict[int, _Level] = {}
        self._mask: np.ndarray | None = None
        self._mask_any = False
        self._zoom = 1.0
        self._origin = QPointF(0, 0)  # widget position of the document's top-left corner
        self._fit_pending = True
        self._tool = None
        self._hover: QPointF | None = None
        self._pan_from: QPointF | None = None
        self._space = False
        self._tool_active = False
        self._pressure = 1.0
        self.show_mask = True
        self.mask_display = MASK_DISPLAYS[0]
        self.region: Bounds | None = None
        self._preview: QImage | None = None
        self._preview_bounds: Bounds | None = None
        self._checker = _checker_brush()

    # -- document ----------------------------------------------------------------------------
    @property
    def document(self) -> Document | None:
        """The document shown."""
        return self._doc

    def set_document(self, doc: Document) -> None:
        """Show another document (fit to the window)."""
        if self._doc is not None:
            self._doc.events.pixels_changed.disconnect(self._on_pixels)
            self._doc.events.mask_changed.disconnect(self._on_mask)
        self._doc = doc
        w, h = doc.size
        rgba = np.empty((h, w, 4), np.uint8)
        for y in range(0, h, BAND_ROWS):
            band = Bounds(0, y, w, min(BAND_ROWS, h - y))
            rgba[band.slices] = doc.composite(band)
        self._levels = {0: _Level(rgba)}
        self._mask = doc.mask.to_array()
        self._mask_any = bool(self._mask.any())
        self.region = None
        self.set_preview(None)
        doc.events.pixels_changed.connect(self._on_pixels)
        doc.events.mask_changed.connect(self._on_mask)
        self._fit_pending = True
        if self.isVisible():
            self.fit()
        self.update()

    def _on_pixels(self, bounds: Bounds) -> None:
        if self._doc is None:
            return
        area = bounds.intersect(self._doc.bounds)
        if area.is_empty:
            return
        self._levels[0].pixels[area.slices] = self._doc.composite(area)
        for k, level in self._levels.items():
            if k:
                level.stale.append(area)
        self.update(self.widget_rect(area).toAlignedRect().adjusted(-2, -2, 2, 2))

    def _on_mask(self, bounds: Bounds) -> None:
        if self._doc is None or self._mask is None:
            return
        area = bounds.intersect(self._doc.bounds)
        if area.is_empty:
            return
        self._mask[area.slices] = self._doc.mask.to_array(area)
        self._mask_any = not self._doc.mask.is_empty
        if self.show_mask:
            self.update(self.widget_rect(area).toAlignedRect().adjusted(-2, -2, 2, 2))

    def mask_array(self) -> np.ndarray | None:
        """The view's copy of the inpaint mask (read it, do not change it)."""
        return self._mask

    def composite_array(self) -> np.ndarray | None:
        """The view's copy of the composite (read it, do not change it)."""
        return self._levels[0].pixels if self._levels else None

    # -- overlays ----------------------------------------------------------------------------
    def set_show_mask(self, show: bool) -> None:
        """Show or hide the tinted inpaint-mask overlay."""
        self.show_mask = bool(show)
        self.update()

    def set_mask_display(self, style: str) -> None:
        """Show the mask as "tint" (red over the image) or "erased" (the checkerboard through it, as AI erasers do)."""
        if style not in MASK_DISPLAYS:
            raise ValueError(f"the mask shows as one of {', '.join(MASK_DISPLAYS)}, not {style!r}")
        self.mask_display = style
        self.update()

    def set_region(self, region: Bounds | None) -> None:
        """Outline the rectangle a generation would repaint (None: no outline)."""
        if region != self.region:
            old = self.region
            self.region = region
            for r in (old, region):
                if r is not None:
                    self.update(self.widget_rect(r).toAlignedRect().adjusted(-3, -3, 3, 3))

    def set_preview(self, pixels: np.ndarray | None, bounds: Bounds | None = None) -> None:
        """Draw an (h, w, 3|4) image stretched over bounds (the live generation preview); None clears it."""
        old = self._preview_bounds
        self._preview = None if pixels is None else qimage_copy(pixels)
        self._preview_bounds = None if pixels is None else bounds
        for r in (old, self._preview_bounds):
            if r is not None:
                self.update(self.widget_rect(r).toAlignedRect().adjusted(-2, -2, 2, 2))

    # -- geometry ----------------------------------------------------------------------------
    @property
    def zoom(self) -> float:
        """Screen pixels per document pixel."""
        return self._zoom

    def to_document(self, p: QPointF) -> QPointF:
        """A widget position in document coordinates."""
        return (p - self._origin) / self._zoom

    def to_widget(self, p: QPointF) -> QPointF:
        """A document position in widget coordinates."""
        return p * self._zoom + self._origin

    def widget_rect(self, b: Bounds) -> QRectF:
        """A document rectangle in widget coordinates."""
        return QRectF(self._origin.x() + b.x * self._zoom, self._origin.y() + b.y * self._zoom, b.width * self._zoom, b.height * self._zoom)

    def visible_bounds(self) -> Bounds:
        """The part of the document inside the widget, in document pixels."""
        if self._doc is None:
            return Bounds(0, 0, 0, 0)
        return self._bounds_of(QRectF(self.rect()))

    def _bounds_of(self, r: QRectF) -> Bounds:
        a = self.to_document(r.topLeft())
        b = self.to_document(r.bottomRight())
        x0, y0 = math.floor(a.x()), math.floor(a.y())
        x1, y1 = math.ceil(b.x()) + 1, math.ceil(b.y()) + 1
        return Bounds.from_corners(x0, y0, x1, y1).intersect(self._doc.bounds)

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom keeping the document point under anchor (default: the widget centre) in place."""
        zoom = max(ZOOM_STEPS[0], min(ZOOM_STEPS[-1], zoom))
        anchor = QPointF(self.width() / 2, self.height() / 2) if anchor is None else anchor
        fixed = self.to_document(anchor)
        self._zoom = zoom
        self._origin = _whole_pixels(anchor - fixed * zoom)
        self._fit_pending = False
        self.zoom_changed.emit(zoom)
        self.update()

    def zoom_in(self, anchor: QPointF | None = None) -> None:
        """The next zoom step up."""
        self.set_zoom(next((z for z in ZOOM_STEPS if z > self._zoom * 1.001), ZOOM_STEPS[-1]), anchor)

    def zoom_out(self, anchor: QPointF | None = None) -> None:
        """The next zoom step down."""
        self.set_zoom(next((z for z in reversed(ZOOM_STEPS) if z < self._zoom / 1.001), ZOOM_STEPS[0]), anchor)

    def actual_size(self) -> None:
        """Zoom to 100%, centred."""
        self.set_zoom(1.0)
        self.center()

    def fit(self) -> None:
        """Zoom so that the whole document fits the widget, centred."""
        if self._doc is None:
            return
        w, h = self._doc.size
        zoom = min((self.width() - 20) / w, (self.height() - 20) / h)
        self.set_zoom(max(ZOOM_STEPS[0], min(zoom, 1.0 if max(w, h) > 64 else 8.0)))
        self.center()
        self._fit_pending = True

    def center(self) -> None:
        """Put the document's centre in the widget's centre."""
        if self._doc is None:
            return
        w, h = self._doc.size
        self._origin = _whole_pixels(QPointF((self.width() - w * self._zoom) / 2, (self.height() - h * self._zoom) / 2))
        self.update()

    def pan(self, dx: float, dy: float) -> None:
        """Move the view by widget pixels."""
        self._origin += QPointF(dx, dy)
        self._fit_pending = False
        self.update()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self._fit_pending:
            self.fit()
        super().resizeEvent(event)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(900, 700)

    # -- painting ----------------------------------------------------------------------------
    def _level(self, k: int) -> _Level:
        level = self._levels.get(k)
        base = self._levels[0].pixels
        if level is None:
            level = _Level(np.ascontiguousarray(downscale(base, 1 << k)))
            self._levels[k] = level
        elif level.stale:
            s = 1 << k
            h, w = base.shape[:2]
            stale = level.stale if len(level.stale) < 32 else [_union(level.stale)]
            for b in stale:
                x0, y0 = b.x // s * s, b.y // s * s
                x1, y1 = min(-(-b.right // s) * s, w), min(-(-b.bottom // s) * s, h)
                small = downscale(base[y0:y1, x0:x1], s)
                level.pixels[y0 // s: y0 // s + small.shape[0], x0 // s: x0 // s + small.shape[1]] = small
            level.stale = []
        return level

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(event.rect(), self.palette().color(self.backgroundRole()).darker(115))
        if self._doc is None:
            p.end()
            return
        area = self._bounds_of(QRectF(event.rect()))
        if not area.is_empty:
            target = self.widget_rect(area)
            p.save()
            p.setBrushOrigin(self._origin)
            p.fillRect(target, self._checker)
            k = 0
            while k < MAX_LEVEL and self._zoom * (1 << (k + 1)) <= 1.0:
                k += 1
            s = 1 << k
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._zoom * s < 1.0)
            level = self._level(k)
            p.drawImage(target, level.image, QRectF(area.x / s, area.y / s, area.width / s, area.height / s))
            if self.show_mask and self._mask_any:
                self._paint_mask(p, area, s)
            p.restore()
        self._paint_overlays(p)
        p.end()

    def _paint_mask(self, p: QPainter, area: Bounds, s: int) -> None:
        x0, y0 = area.x // s * s, area.y // s * s
        m = np.ascontiguousarray(self._mask[y0: area.bottom: s, x0: area.right: s])
        if not m.any():
            return
        target = self.widget_rect(Bounds(x0, y0, m.shape[1] * s, m.shape[0] * s))
        p.setClipRect(self.widget_rect(self._doc.bounds))
        if self.mask_display == "erased":
            self._paint_erased(p, m, target)
            return
        tint = np.empty(m.shape + (4,), np.uint8)
        tint[..., :3] = MASK_TINT
        tint[..., 3] = (m.astype(np.uint16) * int(255 * MASK_ALPHA) // 255).astype(np.uint8)
        p.drawImage(target, qimage_view(tint))

    def _paint_erased(self, p: QPainter, m: np.ndarray, target: QRectF) -> None:
        # the checkerboard, cut to the mask's shape (its values as alpha), laid over the image
        box = target.toAlignedRect().intersected(self.rect())
        if box.isEmpty():
            return
        cut = QImage(box.size(), QImage.Format.Format_ARGB32_Premultiplied)
        cut.fill(Qt.GlobalColor.transparent)
        alpha = QImage(m.data, m.shape[1], m.shape[0], m.strides[0], QImage.Format.Format_Alpha8)
        q = QPainter(cut)
        q.setBrushOrigin(self._origin - QPointF(box.topLeft()))
        q.fillRect(cut.rect(), self._checker)
        q.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationIn)
        q.drawImage(target.translated(-QPointF(box.topLeft())), alpha)
        q.end()
        p.drawImage(box.topLeft(), cut)

    def _paint_overlays(self, p: QPainter) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if self._preview is not None and self._preview_bounds is not None:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            p.drawImage(self.widget_rect(self._preview_bounds), self._preview)
        if self.region is not None and not self.region.is_empty:
            r = self.widget_rect(self.region)
            p.setPen(QPen(QColor(0, 0, 0, 160), 1))
            p.drawRect(r)
            pen = QPen(QColor(255, 210, 40), 1, Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.drawRect(r)
        if self._tool is not None:
            self._tool.paint_overlay(p, self)
            radius = self._tool.cursor_radius()
            if radius and self._hover is not None:
                c = self.to_widget(self._hover)
                r = max(1.5, radius * self._zoom)
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.setPen(QPen(QColor(0, 0, 0, 200), 1.5))
                p.drawEllipse(c, r, r)
                p.setPen(QPen(QColor(255, 255, 255, 220), 1))
                p.drawEllipse(c, r, r)

    def _cursor_area(self) -> QRect:
        if self._hover is None or self._tool is None:
            return QRect()
        r = (self._tool.cursor_radius() or 0) * self._zoom + 4
        c = self.to_widget(self._hover)
        return QRectF(c.x() - r, c.y() - r, 2 * r, 2 * r).toAlignedRect()

    # -- tools -------------------------------------------------------------------------------
    @property
    def tool(self):
        """The tool that receives gestures."""
        return self._tool

    def set_tool(self, tool) -> None:
        """Make tool the one that receives gestures (cancelling a gesture in progress)."""
        if self._tool is not None and self._tool_active:
            self._tool.cancel(self)
            self._tool_active = False
        self._tool = tool
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.update()

    def update_cursor(self) -> None:
        """Repaint the brush outline after its size changed."""
        self.update()

    def _doc_pos(self, event) -> QPointF:
        return self.to_document(event.position())

    def _set_hover(self, pos: QPointF | None) -> None:
        old = self._cursor_area()
        self._hover = pos
        self.update(old)
        self.update(self._cursor_area())
        self.cursor_moved.emit(pos)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if self._doc is None:
            return
        if event.button() == Qt.MouseButton.MiddleButton or (event.button() == Qt.MouseButton.LeftButton and self._space):
            self._pan_from = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        if event.button() == Qt.MouseButton.LeftButton and self._tool is not None:
            self._tool_active = True
            self._tool.press(self, self._doc_pos(event), self._pressure, event.modifiers())
        elif event.button() == Qt.MouseButton.RightButton and self._tool_active:
            self._tool.cancel(self)
            self._tool_active = False

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._pan_from is not None:
            delta = event.position() - self._pan_from
            self._pan_from = event.position()
            self.pan(delta.x(), delta.y())
            return
        pos = self._doc_pos(event)
        self._set_hover(pos)
        if self._tool_active and self._tool is not None:
            self._tool.move(self, pos, self._pressure, event.modifiers())

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._pan_from is not None and event.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._pan_from = None
            self.setCursor(Qt.CursorShape.OpenHandCursor if self._space else Qt.CursorShape.CrossCursor)
            return
        if event.button() == Qt.MouseButton.LeftButton and self._tool_active and self._tool is not None:
            self._tool_active = False
            self._tool.release(self, self._doc_pos(event), event.modifiers())
            self._pressure = 1.0

    def tabletEvent(self, event) -> None:  # noqa: N802
        # Keep the pen's pressure for the mouse events Qt synthesises from this tablet event.
        self._pressure = max(0.01, float(event.pressure())) if event.pressure() > 0 else 1.0
        event.ignore()

    def enterEvent(self, event) -> None:  # noqa: N802
        # the pointer over the canvas takes the keys (Space pans at once, M picks the mask brush) unless the
        # user is typing in a text field: Esc or a click hands them over then
        focus = QApplication.focusWidget()
        if focus is not self and self.isActiveWindow() and not edits_text(focus):
            self.setFocus(Qt.FocusReason.MouseFocusReason)
        super().enterEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802
        self._set_hover(None)
        super().leaveEvent(event)

    def wheelEvent(self, event) -> None:  # noqa: N802
        delta = event.angleDelta()
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier or (not event.pixelDelta().isNull() and not event.modifiers() & Qt.KeyboardModifier.ControlModifier):
            pd = event.pixelDelta() if not event.pixelDelta().isNull() else delta / 2
            self.pan(pd.x(), pd.y()) if not event.modifiers() & Qt.KeyboardModifier.ShiftModifier else self.pan(pd.y(), pd.x())
        elif delta.y() > 0:
            self.zoom_in(event.position())
        elif delta.y() < 0:
            self.zoom_out(event.position())
        event.accept()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.setCursor(Qt.CursorShape.OpenHandCursor)
            return
        if event.key() == Qt.Key.Key_Escape and self._tool_active and self._tool is not None:
            self._tool.cancel(self)
            self._tool_active = False
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.setCursor(Qt.CursorShape.CrossCursor)
            return
        super().keyReleaseEvent(event)


def _union(bounds: list[Bounds]) -> Bounds:
    out = bounds[0]
    for b in bounds[1:]:
        out = out.union(b)
    return out


def _checker_brush(cell: int = 8) -> QBrush:
    pixmap = QPixmap(2 * cell, 2 * cell)
    pixmap.fill(QColor(204, 204, 204))
    p = QPainter(pixmap)
    p.fillRect(0, 0, cell, cell, QColor(255, 255, 255))
    p.fillRect(cell, cell, cell, cell, QColor(255, 255, 255))
    p.end()
    return QBrush(pixmap)


def _whole_pixels(p: QPointF) -> QPointF:
    # the document's corner on a whole widget pixel: at 100% (and every integer zoom) each document
    # pixel then covers whole screen pixels instead of being smeared across two
    return QPointF(round(p.x()), round(p.y()))
