"""The document session: Save keeps everything or asks, Export never clears the unsaved mark, one history budget."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from sd_studio.document.commands import SetLayerProperty, TilesCommand, set_mask
from sd_studio.document.document import Document
from sd_studio.document.geometry import Point
from sd_studio.document.io import open_document
from sd_studio.ui.session import flat_copy_loses


@pytest.fixture
def save_dialog(monkeypatch):
    """Answers each Save As / Export file dialog with the next path of a list; records what it was offered."""
    answers: list[str] = []
    offered: list[tuple[str, str]] = []

    def answer(parent, caption, suggestion, filters, *args, **kwargs):
        offered.append((caption, suggestion))
        return (answers.pop(0) if answers else "", "")

    monkeypatch.setattr("sd_studio.ui.session.QFileDialog.getSaveFileName", answer)
    return answers, offered


def _answer_box(name: str, button_text: str, seen: list) -> None:
    """Click the button labelled button_text in the next message box named name, once it is open."""
    def click():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox) and box.objectName() == name:
            seen.append(box.text())
            next(b for b in box.buttons() if b.text().replace("&", "") == button_text).click()
        else:
            QTimer.singleShot(20, click)

    QTimer.singleShot(0, click)


def _two_layers(window, photo):
    assert window.open_path(str(photo))
    window.layers_panel.add_layer()
    assert len(window.doc.layers) == 2 and window.doc.is_modified


def test_save_as_png_of_a_layered_document_can_only_export_and_keeps_it_unsaved(window, photo, tmp_path, save_dialog):
    _two_layers(window, photo)
    answers, _ = save_dialog
    flat = tmp_path / "flat.png"
    answers.append(str(flat))
    seen: list = []
    _answer_box("flatBox", "Export flattened copy", seen)
    assert not window.session.save_as()
    assert seen and "without its 2 layers" in seen[0]
    assert flat.exists() and open_document(flat).document.size == (96, 80)
    # the layers exist nowhere but here: still unsaved, still the photo's file, and quitting asks
    assert window.doc.is_modified and window.path == str(photo)
    assert window.windowTitle() == "photo.png* — SD Studio"
    asked: list = []
    _answer_box("unsavedBox", "Cancel", asked)
    assert not window.close() and asked


def test_save_as_png_of_a_layered_document_can_become_a_project(window, photo, tmp_path, save_dialog):
    _two_layers(window, photo)
    answers, offered = save_dialog
    answers += [str(tmp_path / "mine.png"), str(tmp_path / "mine.ora")]
    _answer_box("flatBox", "Save as .ora...", [])
    assert window.session.save_as()
    assert offered[1][1] == str(tmp_path / "mine.ora")  # the dialog again, with the project's name
    assert not (tmp_path / "mine.png").exists()
    assert not window.doc.is_modified and window.path == str(tmp_path / "mine.ora")
    assert len(open_document(tmp_path / "mine.ora").document.layers) == 2


def test_save_of_a_layered_document_opened_from_a_png_goes_through_save_as(window, photo, tmp_path, save_dialog):
    _two_layers(window, photo)
    before = photo.read_bytes()
    answers, offered = save_dialog
    answers.append(str(tmp_path / "photo.ora"))
    assert window.session.save()
    assert offered == [("Save As", str(photo.with_suffix(".ora")))]
    assert photo.read_bytes() == before  # the flat original is not overwritten by a flattened copy
    assert window.path == str(tmp_path / "photo.ora") and not window.doc.is_modified


def test_save_of_a_single_layer_painted_photo_writes_the_photo(window, photo, save_dialog):
    from tests.ui.gestures import drag

    assert window.open_path(str(photo))
    window.select_tool("brush")
    drag(window.canvas, [(20, 20), (40, 20)])
    assert window.session.save()
    assert save_dialog[1] == []  # no dialog: a PNG holds a single plain layer whole
    saved = open_document(photo).document.composite()
    np.testing.assert_array_equal(saved, window.doc.composite())
    assert window.windowTitle() == "photo.png — SD Studio"


def test_export_writes_the_composite_and_changes_nothing_else(window, photo, tmp_path, save_dialog):
    _two_layers(window, photo)
    answers, offered = save_dialog
    answers += [str(tmp_path / "out.jpg"), str(tmp_path / "out.ora")]
    assert window.session.export()
    assert (tmp_path / "out.jpg").exists()
    assert window.doc.is_modified and window.path == str(photo)
    assert "unsaved changes" in window.statusBar().currentMessage()
    assert not window.session.export()  # Export writes images only; the project is Save As
    assert not (tmp_path / "out.ora").exists()
    boxes = [b for b in window.findChildren(QMessageBox, "errorBox") if b.isVisible()]
    assert boxes and "Save As" in boxes[-1].text()
    assert offered[1][1] == str(tmp_path / "out.jpg")  # the next Export offers the last one's file


def test_a_result_landing_while_the_file_is_written_is_not_marked_saved(window, photo, tmp_path, save_dialog,
                                                                       monkeypatch):
    import sd_studio.document.io as io
    import sd_studio.ui.opening as opening

    _two_layers(window, photo)
    gate, writing = threading.Event(), threading.Event()
    real = io.save_document

    def slow(path, doc, **kw):
        writing.set()
        gate.wait(30)
        return real(path, doc, **kw)

    monkeypatch.setattr(io, "save_document", slow)
    monkeypatch.setattr(opening, "SHOW_PROGRESS_AFTER_MS", 10)

    def land():  # as a generation's result arrives through the event loop during the write
        if not writing.is_set():
            QTimer.singleShot(10, land)
            return
        window.doc.execute(SetLayerProperty(window.doc.layers[0], "opacity", 0.5))
        gate.set()

    QTimer.singleShot(0, land)
    save_dialog[0].append(str(tmp_path / "p.ora"))
    assert window.session.save_as()
    assert window.path == str(tmp_path / "p.ora")
    assert window.doc.is_modified  # what was written is the state before the result
    assert open_document(tmp_path / "p.ora").document.layers[0].opacity == 1.0


def test_what_a_flat_image_would_lose():
    doc = Document.new(64, 48)
    assert flat_copy_loses(doc, "a.png") == "" and flat_copy_loses(doc, "a.jpg") == ""
    layer = doc.layers[0]
    doc.execute(TilesCommand.write("Erase", layer, layer.surface, 0, 0, np.zeros((4, 4, 4), np.uint8)))
    assert flat_copy_loses(doc, "a.png") == "" and flat_copy_loses(doc, "a.jpg") == "its transparency"
    doc = Document.new(64, 48)
    doc.layers[0].opacity = 0.5
    assert "opacity" in flat_copy_loses(doc, "a.webp")
    doc = Document.new(64, 48)
    doc.layers[0].offset = Point(10, 0)  # moved: a strip of it now lies beyond the right edge
    assert flat_copy_loses(doc, "a.png") == "the parts of the layer outside the canvas"
    doc = Document.new(64, 48)
    mask = np.zeros((48, 64), np.uint8)
    mask[5:10, 5:10] = 255
    doc.execute(set_mask(doc, mask))
    assert flat_copy_loses(doc, "a.png") == "the mask"
    doc.add_layer("two")
    assert flat_copy_loses(doc, "a.png") == "its 2 layers, the mask"
    assert flat_copy_loses(doc, "a.ora") == "its 2 layers, the mask"  # the caller decides .ora; this is flat


def test_a_layer_whose_tiles_reach_past_the_canvas_but_not_its_pixels_loses_nothing():
    doc = Document.new(96, 80)  # 96 x 80 lies inside partial tiles
    assert not doc.bounds.contains(doc.layers[0].document_bounds())
    assert flat_copy_loses(doc, "a.png") == ""


def test_every_document_gets_the_history_budget(window, photo, monkeypatch):
    from PySide6.QtGui import QGuiApplication

    from sd_studio.ui.dialogs import NewDocumentDialog

    window.settings.setValue("history/budget_mb", 128)
    budget = 128 << 20
    window.open_path(str(photo))
    assert window.doc.history.budget_bytes == budget
    window.copy_image()
    assert QGuiApplication.clipboard().image().width() == 96
    window.paste_as_document()  # the case: a pasted document kept the default budget
    assert window.path is None and window.doc.history.budget_bytes == budget
    monkeypatch.setattr(NewDocumentDialog, "exec", lambda dialog: NewDocumentDialog.DialogCode.Accepted)
    window.session.new_document()
    assert window.doc.history.budget_bytes == budget
    window.session.set_document(Document.new(8, 8), None)  # as crash recovery hands over a restored copy
    assert window.doc.history.budget_bytes == budget
    window.settings.setValue("history/budget_mb", 256)
    window.session.apply_settings()
    assert window.doc.history.budget_bytes == 256 << 20


def test_the_unsaved_changes_question_offers_save_discard_cancel(window, photo, tmp_path, save_dialog):
    window.layers_panel.add_layer()
    buttons: list = []

    def look():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox) and box.objectName() == "unsavedBox":
            buttons.extend(b.text().replace("&", "") for b in box.buttons())
            box.button(QMessageBox.StandardButton.Save).click()
        else:
            QTimer.singleShot(20, look)

    QTimer.singleShot(0, look)
    save_dialog[0].append(str(tmp_path / "kept.ora"))
    assert window.open_path(str(photo))  # Save went through Save As, then the photo opened
    assert sorted(buttons) == ["Cancel", "Discard", "Save"]
    assert (tmp_path / "kept.ora").exists() and window.path == str(photo)
