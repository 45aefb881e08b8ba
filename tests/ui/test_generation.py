"""Generation in the editor, end to end: the engine thread, results as layers, cancel, errors, stalls."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QElapsedTimer, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from sd_studio.document.commands import set_mask

RUN_TIMEOUT_MS = 240_000


def _masked(window, photo, box=(30, 20, 60, 50)):
    """Open the photo and mark a rectangle (x0, y0, x1, y1) of the mask, outside the history."""
    window.open_path(str(photo))
    doc = window.doc
    mask = np.zeros((doc.size.height, doc.size.width), np.uint8)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 255
    doc.execute(set_mask(doc, mask))
    doc.history.clear()
    doc.history.mark_clean()
    return doc


def _configure(window, mode: str, model=None, steps: int = 2, variants: int = 1, prompt: str = "a red barn") -> None:
    panel = window.generate_panel
    panel.mode.setCurrentIndex(panel.mode.findData(mode))
    panel.prompt.setPlainText(prompt)
    panel.model.setCurrentText(str(model) if model else "")
    panel.steps.setValue(steps)
    panel.variants.setValue(variants)
    panel.resolution.setCurrentText("64")
    panel.device.setCurrentText("cpu")
    panel.seed.setText("1234")
    panel.seed_lock.setChecked(True)


def _run(window, qtbot, timeout: int = RUN_TIMEOUT_MS) -> None:
    with qtbot.waitSignal(window.engine.busy_changed, check_params_cb=lambda busy: busy is False, timeout=timeout):
        window.actions["generate"].trigger()


def _error_boxes(window):
    return [b for b in window.findChildren(QMessageBox, "errorBox") if b.isVisible()]


class StallMeter:
    """Measures the main thread's event loop: the longest gap between ticks of a 5 ms timer."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self._clock = QElapsedTimer()
        self._timer = QTimer(interval=5, timeout=self._tick)

    def start(self) -> None:
        self._clock.start()
        self._timer.start()

    def _tick(self) -> None:
        self.gaps.append(self._clock.restart())

    def stop(self) -> float:
        self._timer.stop()
        return max(self.gaps, default=0.0)


def test_fill_end_to_end(window, photo, qtbot):
    doc = _masked(window, photo)
    source = doc.active
    before = np.array(doc.composite(), copy=True)
    _configure(window, "fill")
    _run(window, qtbot, timeout=60_000)
    assert not _error_boxes(window)
    assert len(doc.layers) == 2
    result = doc.layers[1]
    assert doc.layers[0] is source and doc.active is result
    assert result.name == "Fill"
    assert "parameters" in result.metadata
    assert window.canvas.region is not None and window.canvas.region.contains(doc.mask.bounding_box())
    assert tuple(result.offset) == tuple(window.canvas.region.origin)
    after = np.array(doc.composite(), copy=True)
    assert (after[25:45, 35:55] != before[25:45, 35:55]).any()
    np.testing.assert_array_equal(after[70:, :], before[70:, :])  # far from the mask: bit-for-bit
    assert doc.history.names == [doc.history.names[0]] and len(doc.history) == 1
    window.actions["undo"].trigger()
    assert doc.layers == [source]
    np.testing.assert_array_equal(doc.composite(), before)
    window.actions["redo"].trigger()
    assert doc.layers == [source, result]


def test_inpaint_end_to_end_on_tiny_model(window, photo, qtbot, tiny_sd_dir):
    doc = _masked(window, photo)
    window.layers_panel.add_layer()  # the result goes above the active layer, not on top of the stack
    doc.active = doc.layers[0]
    doc.history.clear()
    source, top = doc.layers
    _configure(window, "inpaint", model=tiny_sd_dir, steps=3)
    previews = []
    window.engine.progress.connect(lambda job, p: previews.append(window.canvas._preview_bounds) if p.phase == "denoising" else None)
    _run(window, qtbot)
    assert not _error_boxes(window), _error_boxes(window)[0].detailedText()
    # Each denoising step was drawn live inside the planned region; the preview is gone at the end.
    assert previews and all(b == window.canvas.region for b in previews)
    assert window.canvas._preview is None
    assert [layer.name for layer in doc.layers] == ["Background", "a red barn", top.name]
    result = doc.layers[1]
    assert doc.layers[0] is source and doc.active is result
    params = result.metadata["parameters"]
    assert "a red barn" in params and "Seed: 1234" in params and "Steps: 3" in params
    region = window.canvas.region
    assert tuple(result.offset) == tuple(region.origin)
    assert result.surface.content_bounds().width <= region.width
    assert window.generate_panel.progress.format() == "Done"
    # The status bar names the device the model really runs on, not the "auto" asked for.
    assert window.engine_label.text().startswith("Engine: cpu, float32 · tiny-sd"), window.engine_label.text()
    # Undo removes the result, redo brings it back.
    window.actions["undo"].trigger()
    assert doc.layers == [source, top]
    window.actions["redo"].trigger()
    assert doc.layers == [source, result, top]
    # "Use these settings" loads the layer's parameters back into the panel.
    panel = window.generate_panel
    panel.prompt.setPlainText("something else")
    panel.steps.setValue(30)
    panel.seed.setText("1")
    window.use_layer_settings(result)
    assert panel.prompt.toPlainText() == "a red barn"
    assert panel.steps.value() == 3 and panel.seed.text() == "1234" and panel.seed_lock.isChecked()
    # A second run uses the already loaded model: the event loop never waits more than 100 ms.
    meter = StallMeter()
    meter.start()
    _run(window, qtbot)
    worst = meter.stop()
    assert len(doc.layers) == 4
    assert worst < 100, f"the event loop stalled {worst:.0f} ms"


def test_variants_keep_all_is_one_command(window, photo, qtbot, tiny_sd_dir):
    doc = _masked(window, photo)
    _configure(window, "img2img", model=tiny_sd_dir, steps=2, variants=2)
    _run(window, qtbot)
    assert not _error_boxes(window), _error_boxes(window)[0].detailedText()
    panel = window.generate_panel
    assert len(doc.layers) == 1 and not panel.variant_box.isHidden()
    panel.next_button.click()
    assert panel.variant_label.text() == "2/2"
    assert window.canvas._preview is not None  # the variant shown is drawn over its region
    panel.keep_all_button.click()
    assert window.canvas._preview is None
    assert [layer.name for layer in doc.layers][1:] == ["a red barn (seed 1234)", "a red barn (seed 1235)"]
    assert len(doc.history) == 1
    window.actions["undo"].trigger()
    assert len(doc.layers) == 1


@pytest.mark.parametrize("how", ["action", "escape key"])
def test_cancel_mid_run_changes_nothing(window, photo, qtbot, tiny_sd_dir, how):
    doc = _masked(window, photo)
    before = np.array(doc.composite(), copy=True)
    _configure(window, "inpaint", model=tiny_sd_dir, steps=150)
    steps_seen = []

    def on_progress(job, p):
        if p.phase == "denoising":
            steps_seen.append(p.step)
            if len(steps_seen) == 1 and how == "action":
                window.actions["cancel"].trigger()
            elif len(steps_seen) == 1:
                window.canvas.setFocus()
                QTest.keyClick(window.canvas, Qt.Key.Key_Escape)

    window.engine.progress.connect(on_progress)
    _run(window, qtbot)
    assert steps_seen and max(steps_seen) < 150
    assert not _error_boxes(window)
    assert len(doc.layers) == 1 and len(doc.history) == 0
    np.testing.assert_array_equal(doc.composite(), before)
    assert window.generate_panel.progress.format() == "Cancelled"
    assert window.actions["generate"].isEnabled() and not window.actions["cancel"].isEnabled()


def test_bad_model_path_shows_error_and_keeps_document(window, photo, qtbot, tmp_path):
    doc = _masked(window, photo)
    _configure(window, "inpaint", model=tmp_path / "no-such-model.safetensors")
    _run(window, qtbot, timeout=120_000)
    boxes = _error_boxes(window)
    assert len(boxes) == 1
    assert "no-such-model" in boxes[0].text()
    assert not boxes[0].detailedText()  # an error the user can act on: the sentence, no traceback
    assert len(doc.layers) == 1 and len(doc.history) == 0


def test_inpaint_without_mask_is_refused_at_once(window, qtbot):
    _configure(window, "fill")
    window.actions["generate"].trigger()
    assert not window.engine.busy
    boxes = _error_boxes(window)
    assert len(boxes) == 1 and "mask" in boxes[0].text().lower()
    assert len(window.doc.layers) == 1


@pytest.mark.parametrize("mode", ["txt2img"])
def test_text_to_image_without_selection_fills_a_new_layer(window, photo, qtbot, tiny_sd_dir, mode):
    window.open_path(str(photo))
    doc = window.doc
    _configure(window, mode, model=tiny_sd_dir, steps=2)
    _run(window, qtbot)
    assert not _error_boxes(window), _error_boxes(window)[0].detailedText()
    assert len(doc.layers) == 2
    assert doc.layers[1].document_bounds().contains(doc.bounds) or doc.layers[1].surface.content_bounds().extent == doc.size



def test_generate_builds_its_request_on_the_engine_thread_from_a_snapshot(window, photo, qtbot, monkeypatch):
    import threading

    from sd_studio.document.commands import set_mask as _set_mask
    from sd_studio.errors import GenerationError
    import sd_studio.ui.generation as generation

    doc = _masked(window, photo)
    _configure(window, "fill")
    before = np.array(doc.composite(), copy=True)
    built_on = []
    real = generation.build_request

    def spying(document, settings):
        built_on.append(threading.current_thread())
        return real(document, settings)

    monkeypatch.setattr(generation, "build_request", spying)
    make = generation.prepare_request(doc, window.generate_panel.settings())
    assert built_on == []  # nothing flattened or copied yet
    doc.execute(_set_mask(doc, np.zeros((80, 96), np.uint8) + 255))  # edits after Generate change nothing
    request = make()
    np.testing.assert_array_equal(request.image, before)
    assert int(request.mask.sum()) == 255 * 30 * 30
    # through the window: built on the engine thread, not the main one
    built_on.clear()
    _run(window, qtbot)
    assert built_on and built_on[0] is not threading.main_thread()
    assert not _error_boxes(window)
    # a setting that is wrong is refused at once, before any snapshot
    _configure(window, "inpaint", model=None)
    with pytest.raises(GenerationError, match="needs a model"):
        generation.prepare_request(doc, window.generate_panel.settings())
