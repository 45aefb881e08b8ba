"""The main window: opening files, painting and undoing, the mask, shortcuts, errors, the title."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from sd_studio.document.geometry import Bounds
from tests.ui.gestures import drag


def _error_boxes(window):
    return [b for b in window.findChildren(QMessageBox, "errorBox") if b.isVisible()]


def test_new_window_is_untitled(window):
    assert window.windowTitle() == "Untitled — SD Studio"
    assert window.size_label.text() == "1024 × 1024"


def test_open_paint_undo(window, photo, qtbot):
    assert window.open_path(str(photo))
    assert window.windowTitle() == "photo.png — SD Studio"
    doc = window.doc
    before = np.array(doc.composite(), copy=True)
    window.select_tool("brush")
    window.options.set(size=10, hardness=1.0, opacity=1.0)
    drag(window.canvas, [(20, 40), (40, 40), (60, 40)])
    after = np.array(doc.composite(), copy=True)
    changed = np.argwhere((after != before).any(axis=2))
    assert len(changed), "the stroke changed no pixel"
    ys, xs = changed[:, 0], changed[:, 1]
    assert 30 <= ys.min() and ys.max() <= 50 and 10 <= xs.min() and xs.max() <= 70
    assert tuple(after[40, 40, :3]) == (30, 30, 30)  # the brush colour where the dab is solid
    assert window.windowTitle() == "photo.png* — SD Studio"
    assert doc.history.names[-1].startswith("Paint")
    # The canvas' own copy of the composite followed the stroke.
    np.testing.assert_array_equal(window.canvas.composite_array(), after)
    window.actions["undo"].trigger()
    np.testing.assert_array_equal(doc.composite(), before)
    np.testing.assert_array_equal(window.canvas.composite_array(), before)
    assert window.windowTitle() == "photo.png — SD Studio"


def test_mask_brush_and_eraser(window, photo):
    window.open_path(str(photo))
    doc = window.doc
    window.select_tool("mask_brush")
    window.options.set(size=12, hardness=1.0)
    drag(window.canvas, [(30, 30), (50, 30)])
    mask = doc.mask.to_array()
    assert mask[30, 40] == 255 and mask[70, 80] == 0
    np.testing.assert_array_equal(window.canvas.mask_array(), mask)
    pixels_before = np.array(doc.composite(), copy=True)
    window.select_tool("mask_eraser")
    drag(window.canvas, [(40, 30), (41, 30)])
    assert doc.mask.to_array()[30, 40] == 0
    assert doc.mask.to_array()[30, 30] == 255
    np.testing.assert_array_equal(doc.composite(), pixels_before)  # the mask never touches pixels


def test_rectangle_and_lasso_add_to_mask(window, photo):
    window.open_path(str(photo))
    doc = window.doc
    window.select_tool("rect_select")
    drag(window.canvas, [(10, 10), (20, 15), (30, 25)])
    mask = doc.mask.to_array()
    assert mask[10:25, 10:30].min() == 255 and mask.sum() == 255 * 15 * 20
    window.select_tool("lasso_select")
    drag(window.canvas, [(50, 50), (80, 50), (80, 75), (50, 75)])
    mask = doc.mask.to_array()
    assert mask[60, 65] == 255 and mask[10:25, 10:30].min() == 255  # added, not replaced
    window.actions["undo"].trigger()
    assert doc.mask.to_array()[60, 65] == 0


def test_move_tool_is_one_command(window, photo):
    window.open_path(str(photo))
    doc = window.doc
    window.select_tool("move")
    drag(window.canvas, [(10, 10), (15, 12), (20, 13)])
    assert tuple(doc.active.offset) == (10, 3)
    assert len(doc.history) == 1
    window.actions["undo"].trigger()
    assert tuple(doc.active.offset) == (0, 0)


def test_color_picker(window, photo):
    window.open_path(str(photo))
    window.select_tool("picker")
    drag(window.canvas, [(10, 20)])
    expected = window.doc.composite(Bounds(10, 20, 1, 1))[0, 0]
    assert window.options.rgba()[:3] == tuple(int(v) for v in expected[:3])


def test_tool_shortcuts_and_brush_size(window):
    canvas = window.canvas
    canvas.setFocus()
    for key, modifiers, name in (
        (Qt.Key.Key_E, Qt.KeyboardModifier.NoModifier, "eraser"),
        (Qt.Key.Key_M, Qt.KeyboardModifier.NoModifier, "mask_brush"),
        (Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier, "mask_eraser"),
        (Qt.Key.Key_V, Qt.KeyboardModifier.NoModifier, "move"),
        (Qt.Key.Key_I, Qt.KeyboardModifier.NoModifier, "picker"),
        (Qt.Key.Key_B, Qt.KeyboardModifier.NoModifier, "brush"),
    ):
        QTest.keyClick(canvas, key, modifiers)
        assert canvas.tool.name == name, key
    size = window.options.size
    QTest.keyClick(canvas, Qt.Key.Key_BracketRight)
    assert window.options.size > size
    assert window.options_bar.size_box.value() == round(window.options.size)
    QTest.keyClick(canvas, Qt.Key.Key_BracketLeft)
    QTest.keyClick(canvas, Qt.Key.Key_BracketLeft)
    assert window.options.size < size


def test_undo_redo_zoom_shortcuts(window):
    canvas = window.canvas
    canvas.setFocus()
    window.layers_panel.add_layer()
    assert len(window.doc.layers) == 2
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(window.doc.layers) == 1
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert len(window.doc.layers) == 2
    zoom = canvas.zoom
    QTest.keyClick(canvas, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom < zoom
    QTest.keyClick(canvas, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom == 1.0


def test_quit_has_a_shortcut_everywhere(window):
    from PySide6.QtGui import QKeySequence

    assert QKeySequence("Ctrl+Q") in window.actions["quit"].shortcuts()


def test_bad_file_shows_error_and_keeps_document(window, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    doc = window.doc
    assert not window.open_path(str(bad))
    assert window.doc is doc
    boxes = _error_boxes(window)
    assert len(boxes) == 1
    assert "broken.png" in boxes[0].text()
    # a file the user chose is an error they can act on: its sentence, no traceback behind "Show Details"
    assert not boxes[0].detailedText() and "Traceback" not in boxes[0].text()
    assert [b.text() for b in boxes[0].buttons()] == ["OK"]


def test_save_and_reopen_ora(window, photo, tmp_path, monkeypatch):
    window.open_path(str(photo))
    window.layers_panel.add_layer()
    path = tmp_path / "project.ora"
    monkeypatch.setattr("sd_studio.ui.session.QFileDialog.getSaveFileName", lambda *a, **k: (str(path), ""))
    assert window.session.save_as()
    assert not window.doc.is_modified and window.path == str(path)
    assert window.open_path(str(path))
    assert len(window.doc.layers) == 2


def test_unsaved_changes_prompt_on_close(window, monkeypatch):
    window.layers_panel.add_layer()
    asked = []

    def answer(box):
        asked.append(box.text())
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "exec", answer)
    assert not window.close()
    assert asked and window.isVisible()
    monkeypatch.setattr(QMessageBox, "exec", lambda box: QMessageBox.StandardButton.Discard)
    assert window.close()


def test_copy_and_paste_as_layer(window, photo):
    window.open_path(str(photo))
    window.copy_image()
    window.paste_as_layer()
    doc = window.doc
    assert len(doc.layers) == 2 and doc.active.name == "Pasted"
    np.testing.assert_array_equal(doc.active.surface.read(Bounds(0, 0, 96, 80)), doc.layers[0].surface.read(Bounds(0, 0, 96, 80)))
    window.actions["undo"].trigger()
    assert len(doc.layers) == 1


def test_generate_and_cancel_shortcuts(window, qtbot):
    window.generate_panel.mode.setCurrentIndex(window.generate_panel.mode.findData("fill"))
    window.generate_panel.prompt.setFocus()
    QTest.keyClick(window.generate_panel.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    boxes = _error_boxes(window)
    assert len(boxes) == 1 and "mask" in boxes[0].text().lower()  # Generate ran, and refused: no mask yet
    assert "\n" not in window.generate_panel.prompt.toPlainText()


def test_mask_menu_commands(window, photo):
    window.open_path(str(photo))
    doc = window.doc
    window.select_tool("rect_select")
    drag(window.canvas, [(10, 10), (30, 30)])
    window.actions["invert_mask"].trigger()
    mask = doc.mask.to_array()
    assert mask[20, 20] == 0 and mask[50, 50] == 255
    window.actions["clear_mask"].trigger()
    assert doc.mask.is_empty
    window.actions["undo"].trigger()
    assert not doc.mask.is_empty


def test_recent_files_and_drop(window, photo, qtbot, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    window.open_path(str(photo))
    assert window.settings.value("files/recent") in ([str(photo)], str(photo))
    assert [a.text() for a in window.recent_menu.actions()] == ["photo.png"]
    other = tmp_path / "other.png"
    other.write_bytes(photo.read_bytes())
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(other))])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: window.path == str(other))
    assert window.windowTitle() == "other.png — SD Studio"
    assert [a.text() for a in window.recent_menu.actions()] == ["other.png", "photo.png"]


def test_new_document_from_clipboard(window, photo):
    window.open_path(str(photo))
    window.copy_image()
    window.paste_as_document()
    assert window.path is None and tuple(window.doc.size) == (96, 80)
    assert window.windowTitle() == "Untitled — SD Studio"


def test_typing_a_prompt_does_not_switch_tools(window):
    prompt = window.generate_panel.prompt
    prompt.setFocus()
    QTest.keyClicks(prompt, "bevim[]")
    assert prompt.toPlainText() == "bevim[]"
    assert window.canvas.tool.name == "brush" and window.options.size == 40


def test_models_in_configured_folders_are_offered(window, tmp_path, qtbot):
    folder = tmp_path / "models"
    (folder / "my-diffusers-model").mkdir(parents=True)
    (folder / "my-diffusers-model" / "model_index.json").write_text("{}")
    window.settings.setValue("models/folders", [str(folder)])
    window.scan_models()
    combo = window.generate_panel.model
    qtbot.waitUntil(lambda: combo.findText("my-diffusers-model") >= 0, timeout=5000)
    combo.setCurrentIndex(combo.findText("my-diffusers-model"))
    assert window.generate_panel.settings()["model"] == str((folder / "my-diffusers-model").resolve())


def test_new_document_dialog(window, monkeypatch):
    from sd_studio.ui.dialogs import NewDocumentDialog

    def answer(dialog):
        dialog.width_box.setValue(300)
        dialog.height_box.setValue(200)
        dialog.background.setCurrentText("Transparent")
        return NewDocumentDialog.DialogCode.Accepted

    monkeypatch.setattr(NewDocumentDialog, "exec", answer)
    window.actions["new"].trigger()
    assert tuple(window.doc.size) == (300, 200) and window.doc.composite()[0, 0, 3] == 0
    assert window.size_label.text() == "300 × 200"


def test_settings_dialog_stores_and_applies(window, monkeypatch):
    from sd_studio.ui.dialogs import SettingsDialog

    def answer(dialog):
        dialog.folders.setPlainText("/models/a\n/models/b\n")
        dialog.default_model.setText("some/hub-model")
        dialog.device.setCurrentText("cpu")
        dialog.budget.setValue(256)
        assert dialog.autosave.value() == 60 and dialog.autosave.text() == "60 s"
        dialog.autosave.setValue(0)
        assert dialog.autosave.text() == "off"
        dialog.accept()
        return 1

    monkeypatch.setattr(SettingsDialog, "exec", answer)
    window.actions["settings"].trigger()
    s = window.settings
    assert s.value("models/folders") == ["/models/a", "/models/b"]
    assert window.doc.history.budget_bytes == 256 << 20
    assert window.generate_panel.device.currentText() == "cpu"
    assert window.generate_panel.settings()["model"] == "some/hub-model"
    from sd_studio.ui.dialogs import autosave_interval

    assert autosave_interval(s) == 0  # autosave off from the next document on


def test_a_first_start_shows_the_generate_button_and_leaves_the_canvas_most_of_the_width(window, qtbot):
    from PySide6.QtCore import QPoint

    button = window.generate_panel.generate_button
    dock = window.docks["Generate"]

    def button_in_sight():
        corner = button.mapTo(dock, QPoint(button.width() - 1, button.height() - 1))
        return button.isVisible() and dock.rect().contains(corner)

    qtbot.waitUntil(button_in_sight)
    assert window.canvas.width() > window.width() / 2
    assert window.docks["Layers"].height() >= 100 and window.docks["History"].height() >= 100


def test_the_dock_layout_comes_back_as_it_was_left(qtbot, settings):
    from sd_studio.ui.main_window import MainWindow

    def start():
        win = MainWindow(settings=settings, defer=True)
        win.show()
        qtbot.waitExposed(win)
        qtbot.waitUntil(lambda: win.is_ready)
        qtbot.wait(100)  # the dock sizes settle on the next turn
        return win

    first = start()
    first.resize(780, 740)  # inside the offscreen screen, so the geometry comes back as it was
    qtbot.wait(100)
    width, canvas = first.docks["Generate"].width(), first.canvas.width()
    assert canvas > width
    first.doc.history.mark_clean()
    first.close()  # saves the geometry and the dock layout
    first.engine.shutdown()
    second = start()
    try:
        assert second.size() == first.size()
        assert abs(second.docks["Generate"].width() - width) <= 8
        assert abs(second.canvas.width() - canvas) <= 8
    finally:
        second.doc.history.mark_clean()
        second.close()
        second.engine.shutdown()


def test_file_and_clipboard_shortcuts_reach_their_actions(window, photo, tmp_path, monkeypatch):
    """The keys a user presses, not the actions triggered from code: open, copy, paste, save as, new."""
    from PySide6.QtGui import QGuiApplication

    from sd_studio.ui.dialogs import NewDocumentDialog

    canvas = window.canvas
    canvas.setFocus()
    ctrl, shift = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier
    monkeypatch.setattr("sd_studio.ui.session.QFileDialog.getOpenFileName", lambda *a, **k: (str(photo), ""))
    QTest.keyClick(canvas, Qt.Key.Key_O, ctrl)
    assert window.windowTitle() == "photo.png — SD Studio"
    QTest.keyClick(canvas, Qt.Key.Key_C, ctrl)
    copied = QGuiApplication.clipboard().image()
    assert (copied.width(), copied.height()) == (96, 80)
    QTest.keyClick(canvas, Qt.Key.Key_V, ctrl)
    assert len(window.doc.layers) == 2 and window.doc.active.name == "Pasted"
    target = tmp_path / "project.ora"
    monkeypatch.setattr("sd_studio.ui.session.QFileDialog.getSaveFileName",
                        lambda *a, **k: (str(target), "OpenRaster (*.ora)"))
    QTest.keyClick(canvas, Qt.Key.Key_S, ctrl | shift)
    assert target.exists() and window.windowTitle() == "project.ora — SD Studio"
    QTest.keyClick(canvas, Qt.Key.Key_Z, ctrl)  # undo the paste: modified again
    assert window.windowTitle() == "project.ora* — SD Studio"
    QTest.keyClick(canvas, Qt.Key.Key_S, ctrl)  # save to the same file, no dialog
    assert window.windowTitle() == "project.ora — SD Studio"

    def answer(dialog):
        dialog.width_box.setValue(64)
        dialog.height_box.setValue(48)
        dialog.accept()
        return 1

    monkeypatch.setattr(NewDocumentDialog, "exec", answer)
    QTest.keyClick(canvas, Qt.Key.Key_N, ctrl)
    assert tuple(window.doc.size) == (64, 48) and window.windowTitle() == "Untitled — SD Studio"
