"""The layers list's context menu: a right-click on a layer offers its operations, each undoable."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction, QContextMenuEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLineEdit

PARAMETERS = "a lighthouse at dusk\nNegative prompt: fog\nSteps: 7, Sampler: Euler a, CFG scale: 5.5, Seed: 4242, Size: 64x64"


def _names(panel):
    return [panel.list.item(i).text() for i in range(panel.list.count())]


def _context_click(viewport, pos) -> None:
    """What a right-click becomes once the platform has seen it: a mouse context-menu event."""
    QApplication.sendEvent(viewport, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, pos, viewport.mapToGlobal(pos)))


def _right_click(qtbot, panel, row: int):
    """A right-click on a row; returns the menu that opened."""
    rect = panel.list.visualItemRect(panel.list.item(row))
    _context_click(panel.list.viewport(), rect.center())
    qtbot.waitUntil(lambda: panel.context_menu is not None and panel.context_menu.isVisible(), timeout=5000)
    return panel.context_menu


def _action(menu, key: str) -> QAction:
    return next(a for a in menu.actions() if a.objectName() == f"layer_menu_{key}")


def _trigger(menu, key: str) -> None:
    action = _action(menu, key)
    assert action.isEnabled(), key
    menu.hide()
    action.trigger()


def test_the_menu_opens_on_the_layer_under_the_pointer(window, photo, qtbot):
    window.open_path(str(photo))
    doc, panel = window.doc, window.layers_panel
    doc.add_layer("Sky")
    assert _names(panel) == ["Sky", "Background"] and doc.active.name == "Sky"
    menu = _right_click(qtbot, panel, 1)
    assert doc.active is doc.layers[0]  # the clicked layer became the active one
    keys = [a.objectName() for a in menu.actions() if not a.isSeparator()]
    assert keys == [f"layer_menu_{k}" for k in ("rename", "duplicate", "delete", "merge", "use_settings", "visible", "lock")]
    # the bottom layer cannot merge down; it carries no generation settings
    assert not _action(menu, "merge").isEnabled() and not _action(menu, "use_settings").isEnabled()
    assert _action(menu, "delete").isEnabled() and _action(menu, "visible").text() == "Hide"
    menu.hide()
    # a click below the last row opens nothing
    panel.context_menu = None
    below = panel.list.visualItemRect(panel.list.item(1)).bottomLeft() + QPoint(5, 20)
    assert panel.list.itemAt(below) is None
    _context_click(panel.list.viewport(), below)
    QApplication.processEvents()
    assert panel.context_menu is None


def test_duplicate_delete_merge_hide_and_lock_from_the_menu(window, photo, qtbot):
    window.open_path(str(photo))
    doc, panel = window.doc, window.layers_panel
    doc.add_layer("Sky")
    _trigger(_right_click(qtbot, panel, 0), "duplicate")
    assert _names(panel) == ["Sky copy", "Sky", "Background"]
    _trigger(_right_click(qtbot, panel, 0), "merge")
    assert _names(panel) == ["Sky", "Background"]
    _trigger(_right_click(qtbot, panel, 0), "delete")
    assert _names(panel) == ["Background"]
    window.actions["undo"].trigger()
    assert _names(panel) == ["Sky", "Background"]
    doc.add_layer("Top")
    _trigger(_right_click(qtbot, panel, 2), "visible")
    assert doc.layers[0].visible is False and panel.list.item(2).checkState() == Qt.CheckState.Unchecked
    menu = _right_click(qtbot, panel, 2)
    assert _action(menu, "visible").text() == "Show"
    _trigger(menu, "visible")
    assert doc.layers[0].visible is True
    menu = _right_click(qtbot, panel, 1)
    assert not _action(menu, "lock").isChecked()
    _trigger(menu, "lock")
    assert doc.layers[1].locked is True and panel.lock.isChecked()
    assert _action(_right_click(qtbot, panel, 1), "lock").isChecked()
    panel.context_menu.hide()
    window.actions["undo"].trigger()
    assert doc.layers[1].locked is False


def test_delete_is_disabled_on_the_only_layer(window, qtbot):
    menu = _right_click(qtbot, window.layers_panel, 0)
    assert not _action(menu, "delete").isEnabled() and not _action(menu, "merge").isEnabled()
    menu.hide()


def test_rename_edits_the_name_in_place(window, photo, qtbot):
    window.open_path(str(photo))
    doc, panel = window.doc, window.layers_panel
    _trigger(_right_click(qtbot, panel, 0), "rename")
    qtbot.waitUntil(lambda: panel.list.findChild(QLineEdit) is not None and panel.list.findChild(QLineEdit).isVisible(), timeout=5000)
    editor = panel.list.findChild(QLineEdit)
    editor.selectAll()
    QTest.keyClicks(editor, "Photo")
    QTest.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: doc.layers[0].name == "Photo", timeout=5000)
    assert doc.history.names[-1].startswith("Change name")
    window.actions["undo"].trigger()
    assert doc.layers[0].name == "Background" and _names(panel) == ["Background"]


def test_use_these_settings_loads_a_generated_layers_parameters(window, photo, qtbot):
    window.open_path(str(photo))
    doc, panel = window.doc, window.layers_panel
    layer = doc.add_layer("a lighthouse at dusk")
    layer.metadata["parameters"] = PARAMETERS
    window.generate_panel.prompt.setPlainText("something else")
    menu = _right_click(qtbot, panel, 0)
    _trigger(menu, "use_settings")
    g = window.generate_panel
    assert g.prompt.toPlainText() == "a lighthouse at dusk"
    assert g.steps.value() == 7 and g.seed.text() == "4242"
    # the layer below has no parameters: the entry is there but disabled
    menu = _right_click(qtbot, panel, 1)
    assert not _action(menu, "use_settings").isEnabled()
    menu.hide()
