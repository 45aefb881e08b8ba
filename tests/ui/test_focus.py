"""Who has the keys: the canvas after start, Open and every dialog; a text field only while it is edited."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from tests.ui.keys import focused, press, reactivate, type_text, when_dialog

CTRL = Qt.KeyboardModifier.ControlModifier


def _click(widget, pos: QPoint | None = None) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos or widget.rect().center())


def test_at_start_the_keys_are_the_canvas_s(editor, monkeypatch):
    exported = []
    monkeypatch.setattr("sd_studio.ui.session.QFileDialog.getSaveFileName",
                        lambda *a, **k: (exported.append(a[1]), ("", ""))[1])
    assert focused(editor) is editor.canvas
    size = editor.options.size
    press(editor, Qt.Key.Key_M)
    assert editor.canvas.tool.name == "mask_brush"
    press(editor, Qt.Key.Key_Up)
    assert editor.options.size == size and editor.options_bar.size_box.value() == size
    press(editor, Qt.Key.Key_E, CTRL)
    assert exported == ["Export"]  # Ctrl+E reached its action, not a text field's "end of line"


def test_the_size_box_takes_the_keys_on_a_click_and_gives_them_back_on_enter(editor):
    box = editor.options_bar.size_box
    _click(box)
    assert focused(editor) is box
    press(editor, Qt.Key.Key_A, CTRL)
    type_text(editor, "60")
    assert editor.canvas.tool.name == "brush"  # typing a value is not a tool key
    press(editor, Qt.Key.Key_Return)
    assert editor.options.size == 60 and focused(editor) is editor.canvas
    press(editor, Qt.Key.Key_B)
    press(editor, Qt.Key.Key_M)
    assert editor.canvas.tool.name == "mask_brush"


def test_escape_hands_the_keys_back_from_a_text_field(editor):
    prompt = editor.generate_panel.prompt
    _click(prompt.viewport())
    type_text(editor, "a barn, mist")
    assert prompt.toPlainText() == "a barn, mist" and editor.canvas.tool.name == "brush"
    press(editor, Qt.Key.Key_Escape)
    assert focused(editor) is editor.canvas
    press(editor, Qt.Key.Key_E)
    assert editor.canvas.tool.name == "eraser" and prompt.toPlainText() == "a barn, mist"


def test_after_open_the_keys_are_the_canvas_s(editor, photo, monkeypatch):
    monkeypatch.setattr("sd_studio.ui.session.QFileDialog.getOpenFileName", lambda *a, **k: (str(photo), ""))
    _click(editor.options_bar.size_box)
    assert focused(editor) is editor.options_bar.size_box
    editor.actions["open"].trigger()  # as the menu does (a key would be typed into the box)
    assert focused(editor) is editor.canvas


def test_after_a_dialog_the_keys_are_the_canvas_s(editor, qtbot):
    from sd_studio.ui.dialogs import NewDocumentDialog

    _click(editor.options_bar.size_box)
    cancelled = when_dialog(lambda d: isinstance(d, NewDocumentDialog), lambda d: press(d, Qt.Key.Key_Escape))
    editor.actions["new"].trigger()
    assert cancelled
    reactivate(editor, qtbot)
    assert focused(editor) is editor.canvas
    press(editor, Qt.Key.Key_M)
    assert editor.canvas.tool.name == "mask_brush"


def test_after_an_error_box_the_keys_are_the_canvas_s(editor, qtbot, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"no image")
    _click(editor.generate_panel.prompt.viewport())
    answered = when_dialog(lambda d: d.objectName() == "errorBox", lambda d: press(d, Qt.Key.Key_Return))
    assert not editor.open_path(str(bad))  # the box is window-modal: open_path returns with it open
    qtbot.waitUntil(lambda: bool(answered))
    assert not [b for b in editor.findChildren(QMessageBox, "errorBox") if b.isVisible()]
    reactivate(editor, qtbot)
    assert focused(editor) is editor.canvas


def test_space_pans_without_a_click_on_the_canvas(editor, qtbot):
    from tests.ui.gestures import drag, widget_point

    layers = editor.layers_panel.list
    _click(layers.viewport(), layers.visualItemRect(layers.item(0)).center())
    assert focused(editor) is layers
    canvas = editor.canvas
    QTest.mouseMove(canvas, widget_point(canvas, 40, 40))  # the pointer comes over the canvas
    qtbot.waitUntil(lambda: QApplication.focusWidget() is canvas)
    before = canvas.to_widget(QPointF(0, 0))
    history = len(editor.doc.history)
    QTest.keyPress(focused(editor), Qt.Key.Key_Space)
    drag(canvas, [(40, 40), (50, 45), (60, 50)])
    QTest.keyRelease(focused(editor), Qt.Key.Key_Space)
    after = canvas.to_widget(QPointF(0, 0))
    assert after != before  # the view moved
    assert len(editor.doc.history) == history  # and nothing was painted


def test_the_pointer_over_the_canvas_leaves_a_text_field_its_keys(editor, qtbot):
    from tests.ui.gestures import widget_point

    prompt = editor.generate_panel.prompt
    _click(prompt.viewport())
    QTest.mouseMove(editor.canvas, widget_point(editor.canvas, 40, 40))
    qtbot.wait(50)
    assert focused(editor) is prompt
    type_text(editor, "m")
    assert prompt.toPlainText() == "m" and editor.canvas.tool.name == "brush"
