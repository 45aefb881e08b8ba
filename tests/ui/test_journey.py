"""A newcomer's first minute, driven like a user: real key and mouse events, each sent where the focus really is.

Start the editor, open a photo (Ctrl+O, type its path in the file dialog), M, a stroke over the photo, choose
Fill, Ctrl+Enter, Save As a project (Ctrl+Shift+S, type its name), open it again: two layers, and outside the
mask the pixels of the photo, unchanged.
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QComboBox, QFileDialog

from sd_studio.document.io import open_document
from tests.ui.gestures import drag
from tests.ui.keys import focused, press, reactivate, type_text, when_dialog

CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier


def _through_file_dialog(window, qtbot, keys, path) -> None:
    """Press keys (a shortcut that opens a file dialog), type path into the dialog and press Enter."""
    def answer(dialog):
        press(dialog, Qt.Key.Key_A, CTRL)  # the file name box has the focus; replace what it suggests
        type_text(dialog, str(path))
        press(dialog, Qt.Key.Key_Return)

    answered = when_dialog(lambda d: isinstance(d, QFileDialog), answer)
    press(window, *keys)
    qtbot.waitUntil(lambda: bool(answered), timeout=20000)
    reactivate(window, qtbot)


def test_the_first_minute(editor, qtbot, tmp_path):
    from sd_studio.document.io import save_image

    y, x = np.mgrid[0:240, 0:320]
    photo_pixels = np.stack([x % 256, y, (x + y) % 256, np.full_like(x, 255)], axis=-1).astype(np.uint8)
    photo = tmp_path / "scan.png"
    save_image(str(photo), photo_pixels)

    # open the photo the way a user does
    _through_file_dialog(editor, qtbot, (Qt.Key.Key_O, CTRL), photo)
    qtbot.waitUntil(lambda: editor.path == str(photo), timeout=20000)
    assert editor.windowTitle() == "scan.png — SD Studio"

    # M, then a stroke across the photo: the mask, not paint
    press(editor, Qt.Key.Key_M)
    drag(editor.canvas, [(100, 120), (140, 122), (180, 124), (220, 126)])
    mask = editor.doc.mask.to_array()
    assert mask[122, 160] == 255, "the stroke did not mark the mask"
    np.testing.assert_array_equal(editor.doc.composite(), photo_pixels)  # no paint on the photo

    # choose Fill in the Generate panel (no model needed), with the mouse and the keys of its list
    mode = editor.generate_panel.mode
    QTest.mouseClick(mode, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: mode.view().isVisible())
    QTest.keyClick(focused(), Qt.Key.Key_End)  # the list that dropped down has the keys
    QTest.keyClick(focused(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not mode.view().isVisible())
    reactivate(editor, qtbot)  # the offscreen platform leaves the closed list "active"; a window system does not
    assert mode.currentData() == "fill" and isinstance(focused(editor), QComboBox)

    # Ctrl+Enter where the focus is (the Mode box): the result lands as a layer
    with qtbot.waitSignal(editor.generation.result_applied, timeout=60000):
        press(editor, Qt.Key.Key_Return, CTRL)
    assert len(editor.doc.layers) == 2

    # Save As a project, with the keys
    project = tmp_path / "scan restored.ora"
    _through_file_dialog(editor, qtbot, (Qt.Key.Key_S, CTRL | SHIFT), project)
    qtbot.waitUntil(lambda: editor.windowTitle() == "scan restored.ora — SD Studio", timeout=20000)

    # open it again: both layers, the mask, and the photo unchanged outside the feathered mask
    _through_file_dialog(editor, qtbot, (Qt.Key.Key_O, CTRL), project)
    qtbot.waitUntil(lambda: editor.path == str(project), timeout=20000)
    doc = editor.doc
    assert [layer.name for layer in doc.layers][0] == "Background" and len(doc.layers) == 2
    np.testing.assert_array_equal(doc.mask.to_array(), mask)
    reach = editor.generate_panel.feather.value() + 1
    outside = cv2.dilate((mask > 0).astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) == 0
    reopened = doc.composite()
    np.testing.assert_array_equal(reopened[outside], photo_pixels[outside])
    assert (reopened[mask == 255] != photo_pixels[mask == 255]).any()  # and the fill changed the marked pixels
    assert len(open_document(project).document.layers) == 2
