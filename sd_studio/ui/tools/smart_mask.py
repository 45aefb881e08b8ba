"""SmartMaskTool: click an object to add it to the inpaint mask (Segment Anything), or drag a box (GrabCut without a model).

Gestures: a click starts a new object; Shift+click adds a point on it; Alt+click (or Ctrl+click, where
the desktop keeps Alt+drag for moving windows) marks a point that is not part of it; a drag selects
what is inside the box (Shift+drag: a new box for the same object). The model answers on a thread of
its own (SmartMaskService). Each object is ONE undoable command: while the user keeps refining it,
every answer replaces the previous one in the history, so a single undo takes the object away. Any
other change to the document (a stroke, an undo) ends the object; the next click starts another.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPen

from sd_studio.document.geometry import Bounds
from sd_studio.engine.segment.prompt import MaskPrompt, PromptPoint
from sd_studio.errors import Cancelled, SDStudioError
from sd_studio.ui.tools.base import Tool

DRAG_PIXELS = 4
"""A press that moves farther than this (screen pixels) is a box, not a click."""

NO_MODEL = (
    "Click to select needs a Segment Anything model (Get a model: SlimSAM, 39 MB); until then, drag a box "
    "around the object and GrabCut selects it."
)
NO_OBJECT = "Alt+click takes a part away from the object being selected: click the object first."
ANALYSING = "Smart mask: analysing the picture (once per picture)…"

POSITIVE = QColor(40, 200, 90)
NEGATIVE = QColor(230, 50, 50)


class SmartMaskTool(Tool):
    """Smart mask (W): objects by clicks and boxes, added to the inpaint mask one undoable command per object."""

    name = "smart_mask"
    label = "Smart mask"
    icon = "mdi6.auto-fix"
    shortcut = "W"

    def __init__(self, options, service=None, model: str | None = None) -> None:
        super().__init__(options)
        self._service = None
        self._model = model or None
        self._canvas = None
        self._doc = None
        self._serial = 0
        self._version = 0
        self._press: QPointF | None = None
        self._press_widget: QPointF | None = None
        self._end: QPointF | None = None
        self._dragging = False
        self._object: MaskPrompt | None = None
        self._previous: np.ndarray | None = None
        self._command = None
        self._applying = False
        self._latest: int | None = None
        self._latest_serial = 0
        self._name = "Smart mask"
        if service is not None:
            self._use(service)

    # -- set-up ------------------------------------------------------------------------------
    @property
    def service(self):
        """The SmartMaskService answering this tool's requests (started on first use)."""
        if self._service is None:
            from sd_studio.ui.smart_mask_service import SmartMaskService

            self._use(SmartMaskService(self._model))
        return self._service

    def _use(self, service) -> None:
        self._service = service
        service.finished.connect(self._on_finished)
        service.failed.connect(self._on_failed)
        service.progress.connect(self._on_progress)

    @property
    def model(self) -> str | None:
        """The Segment Anything model in use (None: GrabCut only)."""
        return self._model

    def set_model(self, model: str | None) -> None:
        """Use this Segment Anything model (folder, .safetensors file or hub id); None leaves GrabCut."""
        self._model = model or None
        if self._service is not None:
            self._service.set_model(self._model)

    def shutdown(self) -> None:
        """Stop the service's thread (the window calls this when it closes)."""
        if self._service is not None:
            self._service.shutdown()

    def _attach(self, canvas) -> bool:
        """Follow canvas's document; False when there is none."""
        self._canvas = canvas
        doc = canvas.document
        if doc is None:
            return False
        if doc is not self._doc:
            if self._doc is not None:
                self._doc.events.pixels_changed.disconnect(self._on_pixels)
                self._doc.events.history_changed.disconnect(self._on_history)
            self._doc = doc
            self._serial += 1
            self._version = 0
            self._end_object()
            doc.events.pixels_changed.connect(self._on_pixels)
            doc.events.history_changed.connect(self._on_history)
        return True

    def _key(self) -> Hashable:
        return (self._serial, self._version)

    def _on_pixels(self, _bounds) -> None:
        self._version += 1  # the picture changed: the next request analyses it again

    def _on_history(self) -> None:
        if not self._applying:
            # Someone else changed the document (a stroke, an undo): the proposal is final, and an answer still
            # on its way belongs to the past; it must not come back over an undo.
            self._latest = None
            self._end_object()

    def _end_object(self) -> None:
        self._object = None
        self._previous = None
        self._command = None
        if self._canvas is not None:
            self._canvas.update()

    # -- gestures ----------------------------------------------------------------------------
    def press(self, canvas, pos, pressure, modifiers) -> None:
        if not self._attach(canvas):
            return
        self._press, self._end, self._dragging = QPointF(pos), QPointF(pos), False
        self._press_widget = canvas.to_widget(pos)

    def move(self, canvas, pos, pressure, modifiers) -> None:
        if self._press is None:
            return
        self._end = QPointF(pos)
        if not self._dragging:
            delta = canvas.to_widget(pos) - self._press_widget
            self._dragging = max(abs(delta.x()), abs(delta.y())) > DRAG_PIXELS
        canvas.update()

    def release(self, canvas, pos, modifiers) -> None:
        if self._press is None or not self._attach(canvas):
            return
        start, self._end = self._press, QPointF(pos)
        dragging = self._dragging
        self._press = None
        canvas.update()
        shift = bool(modifiers & Qt.KeyboardModifier.ShiftModifier)
        remove = bool(modifiers & (Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.ControlModifier))
        if dragging:
            self._box(canvas, start, self._end, keep_points=shift)
        else:
            self._click(canvas, start, positive=not remove, refine=shift or remove)

    def cancel(self, canvas) -> None:
        self._press = None
        self._dragging = False
        canvas.update()

    def _click(self, canvas, pos: QPointF, positive: bool, refine: bool) -> None:
        doc = canvas.document
        if not doc.bounds.contains_point(pos.x(), pos.y()):
            return  # a click on the grey around the picture
        point = PromptPoint(pos.x(), pos.y(), positive)
        current = self._object if refine else None
        if current is None and not positive:
            canvas.message.emit(NO_OBJECT)
            return
        if self._model is None and (current is None or current.box is None):
            canvas.message.emit(NO_MODEL)
            return
        if current is None:
            self._begin("Smart mask")
            prompt = MaskPrompt((point,))
        else:
            prompt = current.with_point(point, previous=self._previous)
        self._ask(canvas, "prompt", prompt)

    def _box(self, canvas, a: QPointF, b: QPointF, keep_points: bool) -> None:
        doc = canvas.document
        box = Bounds.from_corners(
            round(min(a.x(), b.x())), round(min(a.y(), b.y())), round(max(a.x(), b.x())), round(max(a.y(), b.y()))
        ).intersect(doc.bounds)
        if box.width < 2 or box.height < 2:
            return
        if keep_points and self._object is not None:
            prompt = self._object.with_box(box)  # a new box is a new question: nothing to refine
        else:
            self._begin("Smart mask")
            prompt = MaskPrompt(box=box)
        self._ask(canvas, "prompt", prompt)

    def _begin(self, name: str) -> None:
        """Start a new object: the previous one stays in the mask as its own undo step."""
        self._object = None
        self._previous = None
        self._command = None
        self._name = name

    def _ask(self, canvas, kind: str, prompt: MaskPrompt | None = None) -> int:
        self._object = prompt
        key = self._key()
        service = self.service
        service.set_model(self._model)
        if service.needs_analysis(key):
            canvas.message.emit(ANALYSING)
            canvas.setCursor(Qt.CursorShape.BusyCursor)
        self._latest = service.submit(kind, key, lambda: _picture(canvas), prompt)
        self._latest_serial = self._serial
        canvas.update()
        return self._latest

    # -- menu actions ------------------------------------------------------------------------
    def select_subject(self, canvas) -> int | None:
        """Mask ▸ Select subject: add the picture's main object to the mask (one undoable command); the job id."""
        return self._whole(canvas, "subject", "Select subject")

    def select_background(self, canvas) -> int | None:
        """Mask ▸ Select background: add everything but the main object to the mask; the job id."""
        return self._whole(canvas, "background", "Select background")

    def _whole(self, canvas, kind: str, name: str) -> int | None:
        if not self._attach(canvas):
            return None
        self._begin(name)
        if self._model is None:
            canvas.message.emit(f"{name} without a Segment Anything model: GrabCut, from the picture's rim inwards.")
        job = self._ask(canvas, kind)
        self._object = None  # nothing to refine by clicks: the next click starts a new object
        return job

    # -- answers -----------------------------------------------------------------------------
    def _on_finished(self, job: int, selection) -> None:
        canvas = self._canvas
        if canvas is not None and not self.service.busy:
            canvas.setCursor(Qt.CursorShape.CrossCursor)
        if job != self._latest or self._latest_serial != self._serial or self._doc is None:
            return  # an answer to a question since replaced, or about another document
        if tuple(selection.extent) != tuple(self._doc.size):
            return
        if canvas is not None:
            canvas.message.emit("")
        self._previous = selection.low_res
        self._propose(selection)

    def _on_failed(self, job: int, exc) -> None:
        canvas = self._canvas
        if canvas is not None and not self.service.busy:
            canvas.setCursor(Qt.CursorShape.CrossCursor)
        if job != self._latest or isinstance(exc, Cancelled) or canvas is None:
            return
        if isinstance(exc, SDStudioError):
            canvas.message.emit(str(exc))
        else:
            from sd_studio.ui.errors import show_error

            show_error(canvas.window(), exc, "Smart mask")
        if self._command is None:
            self._object = None  # the object never got an answer: its points go, nothing is left to refine
        canvas.update()

    def _on_progress(self, job: int, report) -> None:
        canvas = self._canvas
        if canvas is None or job != self._latest or report.phase not in ("analysing", "loading"):
            return
        share = f" {100 * report.step // max(1, report.total)} %" if report.phase == "analysing" else ""
        canvas.message.emit(f"{report.message or ANALYSING}{share}")

    def _propose(self, selection) -> None:
        """Put the answer into the mask as the object's one command, replacing its previous answer."""
        from sd_studio.document.commands import TilesCommand

        doc = self._doc
        self._applying = True
        try:
            if self._command is not None:
                doc.undo()  # the previous answer for this object; nothing else happened since (_on_history)
                self._command = None
            region = selection.bounds.intersect(doc.bounds)
            if selection.is_empty or region.is_empty:
                if self._canvas is not None:
                    self._canvas.message.emit("Nothing was selected there.")
                return
            local = region.offset(-selection.bounds.x, -selection.bounds.y)
            before = doc.mask.to_array(region)
            after = np.maximum(before, selection.pixels[local.slices])
            if np.array_equal(before, after):
                return
            command = TilesCommand.write(self._name, None, doc.mask.surface, region.x, region.y, after)
            doc.execute(command)
            self._command = command
        finally:
            self._applying = False

    # -- drawing -----------------------------------------------------------------------------
    def paint_overlay(self, painter, canvas) -> None:
        if self._press is not None and self._dragging and self._end is not None:
            a, b = canvas.to_widget(self._press), canvas.to_widget(self._end)
            _dashed_rect(painter, QRectF(a, b).normalized())
        if self._object is None or canvas.document is not self._doc:
            return
        if self._object.box is not None:
            _dashed_rect(painter, canvas.widget_rect(self._object.box))
        for p in self._object.points:
            c = canvas.to_widget(QPointF(p.x, p.y))
            painter.setPen(QPen(QColor(255, 255, 255), 2))
            painter.setBrush(POSITIVE if p.positive else NEGATIVE)
            painter.drawEllipse(c, 5.0, 5.0)


def _dashed_rect(painter, rect: QRectF) -> None:
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.setPen(QPen(QColor(0, 0, 0), 1))
    painter.drawRect(rect)
    painter.setPen(QPen(QColor(255, 255, 255), 1, Qt.PenStyle.DashLine))
    painter.drawRect(rect)


def _picture(canvas) -> np.ndarray:
    """A copy of the picture the canvas shows (its composite), for the worker thread to read in peace."""
    pixels = canvas.composite_array()
    return np.array(pixels, copy=True)
