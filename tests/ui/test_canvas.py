"""The canvas: zoom and pan, what it draws, and repainting only what the document reports."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRect, Qt
from PySide6.QtWidgets import QWidget

from sd_studio.document.commands import TilesCommand, set_mask
from sd_studio.document.document import Document
from sd_studio.document.geometry import Bounds
from sd_studio.ui.canvas import Canvas
from sd_studio.ui.images import rgba_from_qimage


def _canvas(qtbot, doc, size=(400, 300)) -> Canvas:
    canvas = Canvas()
    qtbot.addWidget(canvas)
    canvas.resize(*size)
    canvas.set_document(doc)
    canvas.show()
    qtbot.waitExposed(canvas)
    return canvas


def _shown(canvas) -> np.ndarray:
    return rgba_from_qimage(canvas.grab().toImage())


class _Spy(Canvas):
    """A canvas that records the rectangles it is asked to repaint."""

    def __init__(self) -> None:
        super().__init__()
        self.requested: list[QRect] = []

    def update(self, *args):  # noqa: D401
        if args and isinstance(args[0], QRect):
            self.requested.append(QRect(args[0]))
        return QWidget.update(self, *args)


def test_fit_zoom_and_mapping(qtbot):
    doc = Document.new(800, 200, (10, 200, 30, 255))
    canvas = _canvas(qtbot, doc)
    assert canvas.zoom < 1 and canvas.zoom <= (400 - 20) / 800
    p = canvas.to_widget(QPointF(400, 100))
    assert abs(p.x() - 200) < 1 and abs(p.y() - 150) < 1
    canvas.actual_size()
    assert canvas.zoom == 1.0
    canvas.zoom_in(QPointF(100, 100))
    fixed = canvas.to_document(QPointF(100, 100))
    canvas.zoom_in(QPointF(100, 100))
    after = canvas.to_document(QPointF(100, 100))
    assert abs(fixed.x() - after.x()) < 1e-6 and abs(fixed.y() - after.y()) < 1e-6
    canvas.pan(30, -10)
    assert abs(canvas.to_document(QPointF(130, 90)).x() - after.x()) < 1e-6


def test_draws_pixels_and_checkerboard(qtbot):
    doc = Document.new(64, 64, None)
    doc.layers[0].surface.write(0, 0, np.full((64, 32, 4), (200, 20, 20, 255), np.uint8))
    canvas = _canvas(qtbot, doc, (200, 200))
    canvas.set_zoom(2.0)
    canvas.center()
    shown = _shown(canvas)
    red = canvas.to_widget(QPointF(16, 32)).toPoint()
    empty = canvas.to_widget(QPointF(48, 32)).toPoint()
    assert tuple(shown[red.y(), red.x(), :3]) == (200, 20, 20)
    assert tuple(shown[empty.y(), empty.x(), :3]) in ((255, 255, 255), (204, 204, 204))  # the checkerboard


def test_repaints_only_the_dirty_rectangle(qtbot):
    doc = Document.new(512, 512)
    canvas = _Spy()
    qtbot.addWidget(canvas)
    canvas.resize(600, 600)
    canvas.set_document(doc)
    canvas.show()
    qtbot.waitExposed(canvas)
    canvas.actual_size()
    canvas.requested.clear()
    doc.execute(TilesCommand.write("dot", doc.layers[0], doc.layers[0].surface, 100, 100, np.zeros((4, 4, 4), np.uint8) + 255))
    assert canvas.requested, "no repaint was requested"
    area = canvas.requested[0]
    assert area.width() <= 70 and area.height() <= 70  # one tile, not the document
    assert area.contains(canvas.to_widget(QPointF(101, 101)).toPoint())


def test_downscaled_view_follows_changes(qtbot):
    doc = Document.new(2048, 2048, (255, 255, 255, 255))
    canvas = _canvas(qtbot, doc, (300, 300))
    assert canvas.zoom <= 1 / 4
    _shown(canvas)  # builds the shrunken copy
    patch = np.zeros((512, 512, 4), np.uint8)
    patch[..., 3] = 255
    doc.execute(TilesCommand.write("black", doc.layers[0], doc.layers[0].surface, 1024, 1024, patch))
    shown = _shown(canvas)
    inside = canvas.to_widget(QPointF(1280, 1280)).toPoint()
    outside = canvas.to_widget(QPointF(512, 512)).toPoint()
    assert shown[inside.y(), inside.x(), :3].max() < 30
    assert shown[outside.y(), outside.x(), :3].min() > 225


def test_mask_overlay_toggles(qtbot):
    doc = Document.new(100, 100, (255, 255, 255, 255))
    canvas = _canvas(qtbot, doc, (200, 200))
    mask = np.zeros((100, 100), np.uint8)
    mask[:, :50] = 255
    doc.execute(set_mask(doc, mask))
    shown = _shown(canvas)
    left = canvas.to_widget(QPointF(25, 50)).toPoint()
    right = canvas.to_widget(QPointF(75, 50)).toPoint()
    assert tuple(shown[right.y(), right.x(), :3]) == (255, 255, 255)
    assert shown[left.y(), left.x(), 1] < 200  # tinted
    canvas.set_show_mask(False)
    shown = _shown(canvas)
    assert tuple(shown[left.y(), left.x(), :3]) == (255, 255, 255)


def test_the_mask_shown_as_erased_is_the_checkerboard_through_the_image(qtbot):
    doc = Document.new(100, 100, (200, 30, 30, 255))
    canvas = _canvas(qtbot, doc, (200, 200))
    mask = np.zeros((100, 100), np.uint8)
    mask[:, :50] = 255
    mask[:, 50:60] = 128  # a feathered edge: half erased
    doc.execute(set_mask(doc, mask))
    canvas.set_mask_display("erased")
    shown = _shown(canvas).astype(int)
    greys = set()
    for y in range(10, 90, 3):
        p = canvas.to_widget(QPointF(25, y)).toPoint()
        r, g, b = shown[p.y(), p.x(), :3]
        assert r == g == b, (r, g, b)  # no red of the image, no tint: the checkerboard
        greys.add(int(r))
    assert greys == {204, 255}  # both of its squares
    right = canvas.to_widget(QPointF(75, 50)).toPoint()
    assert tuple(shown[right.y(), right.x(), :3]) == (200, 30, 30)  # outside the mask: the image
    edge = canvas.to_widget(QPointF(55, 50)).toPoint()
    r, g, b = shown[edge.y(), edge.x(), :3]
    assert 30 < g < 204 and r > g  # half image, half checkerboard
    canvas.set_mask_display("tint")
    shown = _shown(canvas)
    left = canvas.to_widget(QPointF(25, 50)).toPoint()
    assert shown[left.y(), left.x(), 0] > shown[left.y(), left.x(), 1]  # red again, the image under it


def test_region_outline_and_preview(qtbot):
    doc = Document.new(100, 100, (255, 255, 255, 255))
    canvas = _canvas(qtbot, doc, (200, 200))
    canvas.set_preview(np.zeros((8, 8, 3), np.uint8), Bounds(20, 20, 40, 40))
    shown = _shown(canvas)
    c = canvas.to_widget(QPointF(40, 40)).toPoint()
    assert tuple(shown[c.y(), c.x(), :3]) == (0, 0, 0)
    canvas.set_preview(None)
    shown = _shown(canvas)
    assert tuple(shown[c.y(), c.x(), :3]) == (255, 255, 255)
    canvas.set_region(Bounds(10, 10, 50, 50))
    assert canvas.region == Bounds(10, 10, 50, 50)


def test_middle_button_pans(qtbot):
    from PySide6.QtTest import QTest

    doc = Document.new(100, 100)
    canvas = _canvas(qtbot, doc, (300, 300))
    before = canvas.to_widget(QPointF(0, 0))
    QTest.mousePress(canvas, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, before.toPoint() + canvas.rect().center() * 0)
    QTest.mouseMove(canvas, before.toPoint() + QPointF(20, 10).toPoint())
    QTest.mouseRelease(canvas, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, before.toPoint() + QPointF(20, 10).toPoint())
    after = canvas.to_widget(QPointF(0, 0))
    assert round(after.x() - before.x()) == 20 and round(after.y() - before.y()) == 10
    assert len(doc.history) == 0


def test_wheel_zooms_about_the_pointer(qtbot):
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    doc = Document.new(400, 400)
    canvas = _canvas(qtbot, doc, (300, 300))
    at = QPointF(120, 80)
    under = canvas.to_document(at)
    zoom = canvas.zoom
    event = QWheelEvent(at, canvas.mapToGlobal(at), QPoint(0, 0), QPoint(0, 120), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(canvas, event)
    assert canvas.zoom > zoom
    after = canvas.to_document(at)
    # the same document point stays under the pointer, to within the half screen pixel that keeping
    # the document's corner on a whole pixel costs
    half_pixel = 0.5 / canvas.zoom + 1e-9
    assert abs(after.x() - under.x()) <= half_pixel and abs(after.y() - under.y()) <= half_pixel
    origin = canvas.to_widget(QPointF(0, 0))
    assert origin.x() == round(origin.x()) and origin.y() == round(origin.y())


def test_a_centred_document_at_100_percent_sits_on_whole_screen_pixels(qtbot):
    """An odd gap between canvas and document must not put every pixel half way between two."""
    doc = Document.new(96, 80)
    canvas = _canvas(qtbot, doc, (401, 301))
    canvas.actual_size()
    origin = canvas.to_widget(QPointF(0, 0))
    assert (origin.x(), origin.y()) == (round(origin.x()), round(origin.y()))
    doc_point = canvas.to_document(QPointF(origin.x() + 10, origin.y() + 10))
    assert (doc_point.x(), doc_point.y()) == (10.0, 10.0)
