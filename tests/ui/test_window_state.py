"""What the window keeps per document and per screen: the mask's visibility and display, the Generate panel's
last run, and the dock layout."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt

from tests.ui.keys import press
from tests.ui.runs import fill_square


def test_a_hidden_mask_is_shown_again_in_the_next_document(window, photo):
    window.canvas.setFocus()
    press(window, Qt.Key.Key_H, Qt.KeyboardModifier.ControlModifier)
    assert not window.actions["show_mask"].isChecked() and not window.canvas.show_mask
    assert window.open_path(str(photo))
    assert window.actions["show_mask"].isChecked() and window.canvas.show_mask


def test_a_result_is_not_hidden_under_the_mask(window, photo, qtbot):
    window.open_path(str(photo))
    fill_square(window, qtbot)
    assert len(window.doc.layers) == 2 and not window.doc.mask.is_empty
    assert not window.canvas.show_mask and not window.actions["show_mask"].isChecked()
    qtbot.waitUntil(lambda: "mask is hidden" in window.statusBar().currentMessage())
    window.canvas.setFocus()
    press(window, Qt.Key.Key_M)  # a mask tool: the mask is worked on, so it shows
    assert window.canvas.tool.name == "mask_brush" and window.canvas.show_mask


def test_the_generate_panel_forgets_the_last_run_in_the_next_document(window, photo, qtbot):
    window.open_path(str(photo))
    fill_square(window, qtbot)
    panel = window.generate_panel
    assert panel.progress.format() == "Done"
    window.doc.history.mark_clean()
    window.open_path(str(photo))
    assert panel.progress.format() == "Ready" and panel.status.text() == "" and not panel.status.isVisible()


def test_the_mask_display_is_a_view_choice_that_is_remembered(window, qtbot, settings):
    from sd_studio.ui.main_window import MainWindow

    assert window.canvas.mask_display == "tint" and window.actions["mask_tint"].isChecked()
    window.actions["mask_erased"].trigger()
    assert window.canvas.mask_display == "erased" and not window.actions["mask_tint"].isChecked()
    again = MainWindow(settings=settings)
    try:
        assert again.canvas.mask_display == "erased" and again.actions["mask_erased"].isChecked()
    finally:
        again.engine.shutdown()
        again.deleteLater()


def test_the_mask_tools_look_like_erasers(window):
    assert window.tools["mask_brush"].icon == "mdi6.eraser-variant"
    assert not window.actions["tool_mask_brush"].icon().isNull()


def test_a_layout_saved_on_a_bigger_screen_is_not_restored(qtbot, settings):
    from PySide6.QtGui import QGuiApplication

    from sd_studio.ui.main_window import MainWindow

    first = MainWindow(settings=settings)
    first.show()
    qtbot.waitExposed(first)
    first.close()
    first.engine.shutdown()
    assert settings.value("window/state") is not None
    again = MainWindow(settings=settings)
    assert not again.first_start  # it fits: restored
    again.engine.shutdown()
    area = QGuiApplication.primaryScreen().availableGeometry()
    settings.setValue("window/size", QSize(area.width() + 400, area.height() + 300))
    bigger = MainWindow(settings=settings)
    try:
        assert bigger.first_start  # the first-start layout, laid out for this screen
        assert bigger.width() <= area.width() and bigger.height() <= area.height()
    finally:
        bigger.engine.shutdown()
        bigger.deleteLater()
        again.deleteLater()
        first.deleteLater()


def test_a_laptop_screen_keeps_three_layer_rows_in_sight(qtbot, settings):
    from sd_studio.ui.main_window import LAYER_ROWS, MainWindow

    win = MainWindow(settings=settings)
    win.resize(1366, 700)  # a 1366 x 768 screen less the title bar and the task bar
    win.show()
    qtbot.waitExposed(win)
    view = win.layers_panel.list

    def rows_in_sight() -> float:
        return view.viewport().height() / view.sizeHintForRow(0)

    try:
        qtbot.waitUntil(lambda: rows_in_sight() >= LAYER_ROWS)
        button = win.generate_panel.generate_button
        assert button.isVisible() and win.docks["Generate"].rect().contains(
            button.mapTo(win.docks["Generate"], button.rect().bottomRight()))
    finally:
        win.engine.shutdown()
        win.deleteLater()
