"""The restoration dialogs and jobs, standalone: live damage preview, Upscale, Canvas Size, results as commands."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QDialogButtonBox
from restore_support import damage_synth, restore_models

from sd_studio.document.document import Document


@pytest.fixture
def scratched():
    """A scratched scan (RGB) and where its damage is."""
    photo = damage_synth.scan_of("chelsea", scale=1)[:200, :300]
    damaged, bad, _ = damage_synth.damage(photo, seed=4, lines=3, curves=1, dust=20)
    return damaged, bad


def test_find_damage_previews_the_mask_off_the_main_thread_and_follows_the_slider(qtbot, scratched):
    from sd_studio.ui.find_damage_dialog import FindDamageDialog

    image, bad = scratched
    dialog = FindDamageDialog(image, sensitivity=0.5)
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert not ok.isEnabled() and dialog.mask() is None
    with qtbot.waitSignal(dialog.maskReady, timeout=20000) as first:
        pass
    assert ok.isEnabled()
    mask = first.args[0]
    assert mask.shape == image.shape[:2] and (mask > 0)[bad].mean() > 0.5
    assert "marked as damage" in dialog.status.text()
    assert dialog.preview.pixmap() is not None and not dialog.preview.pixmap().isNull()
    # a burst of slider moves is debounced into one detection, for the last value
    results = []
    dialog.maskReady.connect(results.append)
    with qtbot.waitSignal(dialog.maskReady, timeout=20000):
        for value in (60, 70, 80, 95):
            dialog.slider.setValue(value)
        assert dialog.mask() is None and not ok.isEnabled()
    qtbot.wait(400)
    assert len(results) == 1
    assert np.count_nonzero(results[0]) >= np.count_nonzero(mask)
    assert dialog.sensitivity == 0.95 and dialog.mask() is results[0]


def test_find_damage_gives_one_undoable_mask_command_that_can_add_to_the_mask(qtbot, scratched):
    from sd_studio.ui.find_damage_dialog import FindDamageDialog

    image, _ = scratched
    doc = Document.from_pixels(np.dstack([image, np.full(image.shape[:2], 255, np.uint8)]))
    painted = np.zeros(image.shape[:2], np.uint8)
    painted[0:10, 0:10] = 255
    dialog = FindDamageDialog(image, current_mask=painted)
    qtbot.addWidget(dialog)
    assert dialog.add_box.isChecked()
    with qtbot.waitSignal(dialog.maskReady, timeout=20000) as ready:
        pass
    proposed = ready.args[0]
    assert not proposed[0:10, 0:10].all()  # the painted corner is the user's, not the detector's
    doc.execute(dialog.command(doc))
    result = doc.mask.to_array()
    assert (result[0:10, 0:10] == 255).all() and np.count_nonzero(result) > 100
    assert "Find scratches and dust" in doc.history.names[-1]
    doc.undo()
    assert doc.mask.is_empty
    dialog.add_box.setChecked(False)
    assert dialog.mask() is proposed


def test_upscale_dialog_builds_the_engine_settings(qtbot, tmp_path):
    from sd_studio.ui.upscale_dialog import LANCZOS, UpscaleDialog

    path = tmp_path / "4x-compact.safetensors"
    dialog = UpscaleDialog(300, 200, upscalers=[path], diffusion_model="tiny-sd")
    qtbot.addWidget(dialog)
    assert dialog.upscaler.currentText() == "4x-compact"
    dialog.factor.setCurrentIndex(dialog.factor.findData(4))
    assert dialog.size_label.text() == "1200 x 800 px"
    settings = dialog.settings()
    assert settings.factor == 4 and settings.model == str(path) and settings.refine is None
    dialog.detail.setChecked(True)
    dialog.prompt.setText("family portrait")
    dialog.strength.setValue(0.9)  # clamped to the offered range
    refine = dialog.settings().refine
    assert refine.model == "tiny-sd" and refine.prompt == "family portrait" and refine.strength == 0.5
    dialog.upscaler.setCurrentIndex(dialog.upscaler.findText(LANCZOS))
    assert dialog.settings().model is None and not dialog.tile.isEnabled()
    without_model = UpscaleDialog(10, 10)
    qtbot.addWidget(without_model)
    assert not without_model.detail.isEnabled()


def test_a_cancelled_upscale_leaves_the_document_unchanged_and_a_finished_one_is_one_undo_step(qtbot, tmp_path):
    from sd_studio.errors import Cancelled
    from sd_studio.ui.restore_jobs import RestoreJob
    from sd_studio.ui.restore_results import apply_restore_result
    from sd_studio.ui.upscale_dialog import UpscaleDialog

    path = restore_models.save("compact", tmp_path)
    image = damage_synth.scan_of("coffee", scale=1)[:160, :200]
    doc = Document.from_pixels(np.dstack([image, np.full(image.shape[:2], 255, np.uint8)]))
    doc.history.mark_clean()
    dialog = UpscaleDialog(200, 160, upscalers=[path])
    qtbot.addWidget(dialog)
    dialog.factor.setCurrentIndex(dialog.factor.findData(4))
    dialog.tile.setValue(64)

    job = RestoreJob(dialog.job(image))
    steps = []
    job.progress.connect(lambda p: (steps.append(p), job.cancel() if len(steps) == 2 else None))
    job.finished.connect(lambda result: doc.execute(apply_restore_result(doc, result)))
    with qtbot.waitSignal(job.failed, timeout=60000) as failed:
        job.start()
    assert isinstance(failed.args[0], Cancelled)
    assert doc.size == (200, 160) and len(doc.layers) == 1 and not doc.is_modified

    job = RestoreJob(dialog.job(image))
    job.finished.connect(lambda result: doc.execute(apply_restore_result(doc, result, source=doc.layers[0])))
    with qtbot.waitSignal(job.finished, timeout=60000):
        job.start()
    assert doc.size == (800, 640) and len(doc.layers) == 2
    assert doc.layers[1].name == "Upscaled (compact)"
    assert "Postprocess upscale by: 4" in doc.layers[1].metadata["parameters"]
    doc.undo()
    assert doc.size == (200, 160) and len(doc.layers) == 1 and not doc.is_modified


def test_canvas_size_dialog_places_the_photo_by_its_anchor_and_resizes_undoably(qtbot):
    from sd_studio.engine.restore.expand import Margins
    from sd_studio.ui.canvas_size_dialog import ANCHORS, CanvasSizeDialog

    dialog = CanvasSizeDialog(100, 80)
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert not ok.isEnabled()
    dialog.width_box.setValue(160)
    dialog.height_box.setValue(100)
    assert ok.isEnabled()
    assert dialog.margins() == Margins(30, 10, 30, 10)
    dialog.anchor.button(ANCHORS.index((2, 2))).click()
    assert dialog.margins() == Margins(60, 20, 0, 0)
    assert not dialog.fill.model().item(4).isEnabled()  # Generate needs a model
    dialog.fill.setCurrentIndex(dialog.fill.findData("transparent"))
    assert dialog.expand_settings() is None
    doc = Document.new(100, 80)
    doc.execute(dialog.command(doc))
    assert doc.size == (160, 100) and doc.layers[0].offset == (60, 20)
    doc.undo()
    assert doc.size == (100, 80) and doc.layers[0].offset == (0, 0)


def test_the_expand_tool_s_margins_and_a_filled_expansion_as_one_command(qtbot):
    from sd_studio.ui.canvas_size_dialog import CanvasSizeDialog
    from sd_studio.ui.restore_jobs import RestoreJob
    from sd_studio.ui.restore_results import apply_restore_result

    image = damage_synth.scan_of("coffee", scale=1)[:80, :100]
    doc = Document.from_pixels(np.dstack([image, np.full(image.shape[:2], 255, np.uint8)]))
    dialog = CanvasSizeDialog(100, 80, diffusion_model="tiny-sd")
    qtbot.addWidget(dialog)
    dialog.set_margins(0, 0, 48, 16)
    assert dialog.fill.model().item(4).isEnabled()
    dialog.fill.setCurrentIndex(dialog.fill.findData("blur"))
    settings = dialog.expand_settings()
    assert (settings.margins.right, settings.margins.bottom, settings.prefill, settings.model) == (48, 16, "blur", None)
    job = RestoreJob(dialog.job(image))
    job.finished.connect(lambda result: doc.execute(apply_restore_result(doc, result, source=doc.layers[0])))
    with qtbot.waitSignal(job.finished, timeout=30000):
        job.start()
    assert doc.size == (148, 96) and len(doc.layers) == 2
    composite = doc.composite()
    assert np.array_equal(composite[:80, :100, :3], image) and (composite[..., 3] == 255).all()
    assert doc.layers[1].name == "Expanded"
    doc.undo()
    assert doc.size == (100, 80) and len(doc.layers) == 1
