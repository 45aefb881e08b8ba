"""The layers and history panels: every operation is a document command, shown as it happens."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from sd_studio.document.layer import BlendMode


def _names(panel):
    return [panel.list.item(i).text() for i in range(panel.list.count())]


def test_layers_panel_operations(window, photo, qtbot):
    window.open_path(str(photo))
    doc, panel = window.doc, window.layers_panel
    panel.buttons["add"].click()
    assert _names(panel) == ["Layer 2", "Background"] and doc.active is doc.layers[1]
    panel.buttons["duplicate"].click()
    assert _names(panel) == ["Layer 2 copy", "Layer 2", "Background"]
    # rename by editing the item
    panel.list.item(0).setText("Sky")
    assert doc.layers[2].name == "Sky" and doc.history.names[-1].startswith("Change name")
    # visibility by the check box
    panel.list.item(2).setCheckState(Qt.CheckState.Unchecked)
    assert doc.layers[0].visible is False
    assert doc.composite()[10, 10, 3] == 0  # nothing visible any more
    window.actions["undo"].trigger()
    assert doc.layers[0].visible is True and panel.list.item(2).checkState() == Qt.CheckState.Checked
    # opacity, blend mode and lock of the active layer
    panel.list.setCurrentRow(0)
    assert doc.active.name == "Sky"
    panel.opacity.setValue(40)
    panel.opacity.editingFinished.emit()
    assert doc.active.opacity == 0.4
    panel.blend.setCurrentIndex(panel.blend.findData(BlendMode.MULTIPLY))
    panel.blend.activated.emit(panel.blend.currentIndex())
    assert doc.active.blend_mode is BlendMode.MULTIPLY
    panel.lock.setChecked(True)
    assert doc.active.locked
    # reorder: move down, then drop at the top
    panel.buttons["down"].click()
    assert _names(panel) == ["Layer 2", "Sky", "Background"]
    panel._on_drop(2, 0)
    assert _names(panel) == ["Background", "Layer 2", "Sky"]
    window.actions["undo"].trigger()
    assert _names(panel) == ["Layer 2", "Sky", "Background"]
    # delete, merge down, flatten, each one undo step
    count = doc.history.index
    panel.list.setCurrentRow(0)
    panel.buttons["delete"].click()
    assert _names(panel) == ["Sky", "Background"]
    panel.buttons["merge"].click()
    assert _names(panel) == ["Background"]
    assert doc.history.index == count + 2 == len(doc.history)
    window.actions["undo"].trigger()
    window.actions["undo"].trigger()
    assert _names(panel) == ["Layer 2", "Sky", "Background"]
    before = np.array(doc.composite(), copy=True)
    panel.buttons["flatten"].click()
    assert _names(panel) == ["Background"]
    np.testing.assert_array_equal(doc.composite(), before)


def test_layer_thumbnails_follow_painting(window, photo, qtbot):
    window.open_path(str(photo))
    panel = window.layers_panel
    panel.add_layer()
    before = panel.list.item(0).icon().pixmap(40, 40).toImage()
    window.select_tool("brush")
    window.options.set(size=40, hardness=1.0)
    from tests.ui.gestures import drag

    drag(window.canvas, [(48, 40), (50, 40)])
    qtbot.waitUntil(lambda: panel.list.item(0).icon().pixmap(40, 40).toImage() != before, timeout=3000)


def test_history_panel_jumps(window, qtbot):
    doc, history = window.doc, window.history_panel
    window.layers_panel.add_layer()
    window.layers_panel.add_layer()
    assert history.list.count() == 3 and history.list.currentRow() == 2
    history.list.setCurrentRow(0)
    qtbot.waitUntil(lambda: doc.history.index == 0)
    assert len(doc.layers) == 1
    assert history.list.currentRow() == 0 and history.list.count() == 3
    history.list.setCurrentRow(2)
    qtbot.waitUntil(lambda: doc.history.index == 2)
    assert len(doc.layers) == 3


def test_layer_opacity_applies_live_and_a_burst_is_one_undo_step(window, photo, qtbot):
    from PySide6.QtTest import QTest

    window.open_path(str(photo))
    doc, panel = window.doc, window.layers_panel
    layer = doc.active
    before = np.array(doc.composite(), copy=True)
    panel.opacity.setFocus()
    for _ in range(3):  # the arrow keys (or the spin arrows, the wheel) step it; focus never leaves
        QTest.keyClick(panel.opacity, Qt.Key.Key_Down)
    assert panel.opacity.value() == 97
    assert layer.opacity == 0.97  # at once, no editingFinished needed
    assert not np.array_equal(doc.composite(), before)
    # The burst becomes one undo step once the box rests; undo takes the whole of it back.
    qtbot.waitUntil(lambda: len(doc.history) == 1, timeout=5000)
    assert doc.history.names == ["Change opacity of “Background”"]
    window.actions["undo"].trigger()
    assert layer.opacity == 1.0 and panel.opacity.value() == 100
    np.testing.assert_array_equal(doc.composite(), before)
    window.actions["redo"].trigger()
    assert layer.opacity == 0.97
    # Undo while a burst is still going first makes it its own step, then undoes it.
    QTest.keyClick(panel.opacity, Qt.Key.Key_Down)
    assert layer.opacity == 0.96 and len(doc.history) == 1
    window.actions["undo"].trigger()
    assert layer.opacity == 0.97 and len(doc.history) == 2 and doc.history.index == 1
