"""Quick generation runs for editor tests: Fill needs no model."""

from __future__ import annotations

import numpy as np

from sd_studio.document.commands import set_mask


def fill_square(window, qtbot) -> None:
    """Mark a 20 x 20 square of the window's document and run Fill through the Generate action; returns once
    the result layer has landed."""
    mask = np.zeros((window.doc.size.height, window.doc.size.width), np.uint8)
    mask[20:40, 30:50] = 255
    window.doc.execute(set_mask(window.doc, mask))
    panel = window.generate_panel
    panel.mode.setCurrentIndex(panel.mode.findData("fill"))
    with qtbot.waitSignal(window.generation.result_applied, timeout=60000):
        window.actions["generate"].trigger()
