"""The Smart mask tool on a real canvas: clicks and boxes at any zoom, off the main thread, one undo per object."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from mask_testing import disc_photo, save_tiny_sam
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from sd_studio.document.document import Document
from sd_studio.document.geometry import Bounds, Extent
from sd_studio.engine.segment.frame import SamFrame
from sd_studio.ui.canvas import Canvas
from sd_studio.ui.smart_mask_service import SmartMaskService
from sd_studio.ui.tools import ToolOptions
from sd_studio.ui.tools.smart_mask import NO_MODEL, SmartMaskTool

from .gestures import drag, widget_point


@pytest.fixture(scope="module")
def sam_dir(tmp_path_factory):
    """A tiny SAM saved as a transformers folder."""
    return save_tiny_sam(tmp_path_factory.mktemp("sam") / "tiny-sam")


@pytest.fixture
def make(qtbot):
    """make(doc, model=None, size=(500, 400)) -> (canvas, tool): a shown canvas with the Smart mask tool on it."""
    made = []

    def build(doc: Document, model=None, size=(500, 400)):
        # Built here rather than borrowed from test_canvas.py, whose helpers the canvas's owner may rename.
        canvas = Canvas()
        qtbot.addWidget(canvas)
        canvas.resize(*size)
        canvas.set_document(doc)
        canvas.show()
        qtbot.waitExposed(canvas)
        service = SmartMaskService(str(model) if model else None)
        tool = SmartMaskTool(ToolOptions(), service=service, model=str(model) if model else None)
        canvas.set_tool(tool)
        made.append(tool)
        return canvas, tool

    yield build
    for tool in made:
        tool.shutdown()


def _document(width: int, height: int, seed: int = 0) -> Document:
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Document.from_pixels(np.dstack([rgb, np.full((height, width), 255, np.uint8)]))


def _disc_document():
    image, truth = disc_photo(400, 300, (210, 150), 80)
    return Document.from_pixels(np.dstack([image, np.full((300, 400), 255, np.uint8)])), truth


def _settle(qtbot, tool) -> None:
    qtbot.waitUntil(lambda: not tool.service.busy, timeout=60_000)
    qtbot.wait(10)  # the answers' queued signals


def _click(canvas, x: float, y: float, modifiers=Qt.KeyboardModifier.NoModifier) -> QPointF:
    """Click over document point (x, y); returns the document point the canvas really reports there."""
    at = widget_point(canvas, x, y)
    QTest.mouseClick(canvas, Qt.MouseButton.LeftButton, modifiers, at)
    return canvas.to_document(QPointF(at))


class _PromptSpy:
    """Records the prompt encoder's inputs and the thread that ran it."""

    def __init__(self, model) -> None:
        self.calls: list[dict] = []
        self.threads: set[int] = set()
        self.handle = model.prompt_encoder.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, _module, _args, kwargs):
        self.threads.add(threading.get_ident())
        self.calls.append({k: (None if v is None else v.clone()) for k, v in kwargs.items()})


def _model_of(tool):
    """The worker's loaded SamModel (loaded on the first request)."""
    return tool.service.worker.segmenter.predictor().model


def _disc_answers(model, radius: float = 10.0):
    """Make the decoder answer every prompt with a disc around its first point (else the box's centre), in its grid."""
    import torch

    seen = {}

    def remember(_module, _args, kwargs):
        points, boxes = kwargs.get("input_points"), kwargs.get("input_boxes")
        seen["at"] = points[0, 0, 0].clone() if points is not None else boxes[0, 0].view(2, 2).mean(0)

    def disc(_module, _args, output):
        masks, scores = output
        x, y = ((seen["at"] + 0.5) / 4 - 0.5).tolist()
        yy, xx = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
        return (radius - torch.sqrt((xx - x) ** 2 + (yy - y) ** 2)).expand_as(masks).clone(), scores

    return [model.prompt_encoder.register_forward_pre_hook(remember, with_kwargs=True),
            model.mask_decoder.register_forward_hook(disc)]


def _warm(qtbot, canvas, tool):
    """One click so the worker loads the model; the history entry it makes is undone."""
    _click(canvas, 5, 5)
    _settle(qtbot, tool)
    canvas.document.undo()


@pytest.mark.parametrize("zoom", [0.25, 1.0, 3.0])
def test_clicks_and_boxes_reach_the_model_in_image_coordinates_at_any_zoom(qtbot, make, sam_dir, zoom):
    doc = _document(1200, 800)
    canvas, tool = make(doc, sam_dir)
    _warm(qtbot, canvas, tool)
    spy = _PromptSpy(_model_of(tool))
    canvas.set_zoom(zoom)
    corner = canvas.to_widget(QPointF(0, 0))
    canvas.pan(20 - corner.x(), 20 - corner.y())  # the picture's corner 20 pixels into the view
    target = (37.0, 61.0) if zoom >= 1 else (900.0, 700.0)
    where = _click(canvas, *target)
    _settle(qtbot, tool)
    assert abs(where.x() - target[0]) <= 1 / zoom + 1 and abs(where.y() - target[1]) <= 1 / zoom + 1
    frame = SamFrame(Extent(1200, 800))
    assert np.allclose(spy.calls[-1]["input_points"].numpy()[0, 0, 0], frame.point(where.x(), where.y()), atol=1e-3)
    a, b = (20.0, 30.0), (60.0, 90.0) if zoom >= 1 else (300.0, 400.0)
    drag(canvas, [a, ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2), b])
    _settle(qtbot, tool)
    first, last = canvas.to_document(QPointF(widget_point(canvas, *a))), canvas.to_document(QPointF(widget_point(canvas, *b)))
    box = Bounds.from_corners(round(first.x()), round(first.y()), round(last.x()), round(last.y()))
    assert np.allclose(spy.calls[-1]["input_boxes"].numpy()[0, 0], frame.box(box), atol=1e-3)
    assert threading.get_ident() not in spy.threads  # the model never ran on the main thread
    spy.handle.remove()


def test_the_mask_lands_under_the_click_on_a_6000_by_4000_photo_and_undo_removes_it(qtbot, make, sam_dir):
    doc = _document(6000, 4000, seed=2)
    doc.execute(_rect_mask(doc, Bounds(10, 10, 50, 50)))  # something the user had masked before
    before = doc.mask.to_array()
    canvas, tool = make(doc, sam_dir, size=(600, 420))
    _warm(qtbot, canvas, tool)
    handles = _disc_answers(_model_of(tool))
    entries = doc.history.index
    try:
        where = _click(canvas, 4200, 2900)
        _settle(qtbot, tool)
        first = doc.mask.to_array()
        assert doc.history.index == entries + 1
        ys, xs = np.nonzero(first & ~before)
        assert abs(xs.mean() - where.x()) < 4 and abs(ys.mean() - where.y()) < 4
        assert np.array_equal(first[before > 0], before[before > 0])  # added to, never replaced
        # Shift+click refines the same object: its answer replaces the first in the history.
        _click(canvas, 1500, 900, Qt.KeyboardModifier.ShiftModifier)
        _settle(qtbot, tool)
        assert doc.history.index == entries + 1 and doc.history.names[-1] == "Smart mask"
    finally:
        for handle in handles:
            handle.remove()
    doc.undo()
    assert np.array_equal(doc.mask.to_array(), before)
    doc.redo()
    assert not np.array_equal(doc.mask.to_array(), before)


def _rect_mask(doc, bounds):
    from sd_studio.document.mask import fill_mask_rect

    return fill_mask_rect(doc, bounds)


def test_each_object_is_one_undo_step_and_other_edits_end_it(qtbot, make, sam_dir):
    from sd_studio.ui.tools.smart_mask import NO_OBJECT

    doc = _document(640, 480, seed=4)
    canvas, tool = make(doc, sam_dir)
    _warm(qtbot, canvas, tool)
    messages = []
    canvas.message.connect(messages.append)
    _click(canvas, 300, 300, Qt.KeyboardModifier.AltModifier)  # nothing to take away from yet
    assert messages[-1] == NO_OBJECT
    handles = _disc_answers(_model_of(tool))
    start = doc.history.index
    try:
        _click(canvas, 100, 100)
        _settle(qtbot, tool)
        _click(canvas, 150, 120, Qt.KeyboardModifier.ShiftModifier)
        _settle(qtbot, tool)
        _click(canvas, 300, 300, Qt.KeyboardModifier.AltModifier)
        _settle(qtbot, tool)
        assert doc.history.index == start + 1  # one object, one entry, however many clicks refined it
        assert [p.positive for p in tool._object.points] == [True, True, False]
        _click(canvas, 500, 400)  # a plain click: a new object; the first stays as it is
        _settle(qtbot, tool)
        assert doc.history.index == start + 2 and doc.mask.to_array()[100, 100] == 255
        doc.execute(_rect_mask(doc, Bounds(0, 0, 10, 10)))  # another tool's edit ends the object
        _click(canvas, 520, 300, Qt.KeyboardModifier.ShiftModifier)  # so this starts a new one
        _settle(qtbot, tool)
    finally:
        for handle in handles:
            handle.remove()
    assert doc.history.names[start:] == ["Smart mask", "Smart mask", "Select rectangle", "Smart mask"]
    doc.undo()
    assert doc.mask.to_array()[5, 5] == 255  # the tool's undo took its own object, not the rectangle


def test_the_picture_is_analysed_once_until_it_changes(qtbot, make, sam_dir):
    doc = _document(800, 600, seed=5)
    canvas, tool = make(doc, sam_dir)
    _warm(qtbot, canvas, tool)
    calls: list = []
    handle = _model_of(tool).vision_encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        for x in (100, 200, 300):
            _click(canvas, x, 100)
            _settle(qtbot, tool)
        assert calls == []  # analysed by the first (warming) click already
        from sd_studio.document.commands import TilesCommand

        layer = doc.layers[0]
        doc.execute(TilesCommand.write("Paint", layer, layer.surface, 0, 0, np.zeros((8, 8, 4), np.uint8)))
        _click(canvas, 400, 100)
        _settle(qtbot, tool)
        assert len(calls) == 1
    finally:
        handle.remove()


def test_clicks_faster_than_the_model_apply_only_the_newest(qtbot, make, sam_dir):
    doc = _document(500, 400, seed=6)
    canvas, tool = make(doc, sam_dir)
    _warm(qtbot, canvas, tool)
    start = doc.history.index
    answered = []
    tool.service.finished.connect(lambda job, _sel: answered.append(job))
    handles = _disc_answers(_model_of(tool))
    try:
        for x in (100, 120, 140, 160):
            _click(canvas, x, 100, Qt.KeyboardModifier.ShiftModifier)
        _settle(qtbot, tool)
    finally:
        for handle in handles:
            handle.remove()
    assert answered[-1] == tool._latest  # whatever ran in between, the newest request was answered last
    assert doc.history.index == start + 1
    assert len(tool._object.points) == 4


def test_without_a_model_a_click_says_so_in_one_sentence_and_a_box_uses_grabcut(qtbot, make):
    doc, truth = _disc_document()
    canvas, tool = make(doc, None)
    messages = []
    canvas.message.connect(messages.append)
    entries = doc.history.index
    _click(canvas, 210, 150)
    assert messages[-1] == NO_MODEL and "GrabCut" in NO_MODEL and NO_MODEL.count(". ") == 0
    assert doc.history.index == entries and doc.mask.is_empty
    drag(canvas, [(110, 50), (200, 150), (310, 250)])
    _settle(qtbot, tool)
    mask = doc.mask.to_array() > 127
    assert (mask & truth).sum() / (mask | truth).sum() >= 0.9
    assert doc.history.index == entries + 1
    doc.undo()
    assert doc.mask.is_empty


def test_select_subject_and_background_are_single_commands(qtbot, make):
    doc, truth = _disc_document()
    canvas, tool = make(doc, None)
    entries = doc.history.index
    tool.select_subject(canvas)
    _settle(qtbot, tool)
    subject = doc.mask.to_array() > 127
    assert (subject & truth).sum() / (subject | truth).sum() >= 0.9
    assert doc.history.names[-1] == "Select subject" and doc.history.index == entries + 1
    doc.undo()
    tool.select_background(canvas)
    _settle(qtbot, tool)
    background = doc.mask.to_array() > 127
    assert np.array_equal(background, ~subject)
    assert doc.history.names[-1] == "Select background"


def test_a_broken_model_file_gives_its_sentence_and_changes_nothing(qtbot, make, tmp_path):
    broken = tmp_path / "sam.safetensors"
    broken.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    doc = _document(300, 200)
    canvas, tool = make(doc, broken)
    messages = []
    canvas.message.connect(messages.append)
    _click(canvas, 100, 100)
    _settle(qtbot, tool)
    assert doc.mask.is_empty and "sam.safetensors" in messages[-1]


def test_an_undo_while_an_answer_is_on_its_way_wins(qtbot, make, sam_dir):
    doc = _document(500, 400, seed=7)
    canvas, tool = make(doc, sam_dir)
    _warm(qtbot, canvas, tool)
    handles = _disc_answers(_model_of(tool))
    try:
        _click(canvas, 200, 200)
        _settle(qtbot, tool)
        assert not doc.mask.is_empty
        _click(canvas, 260, 220, Qt.KeyboardModifier.ShiftModifier)  # a refinement on its way...
        doc.undo()  # ...and the user takes the object away before it lands
        _settle(qtbot, tool)
    finally:
        for handle in handles:
            handle.remove()
    assert doc.mask.is_empty and doc.history.can_redo
