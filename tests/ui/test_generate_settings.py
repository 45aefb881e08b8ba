"""The Generate panel's settings: the seed a run uses, "Use these settings", strength across modes, remembered engine choices."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSettings

from sd_studio.document.commands import set_mask
from sd_studio.document.geometry import Extent
from sd_studio.document.io.parameters import format_parameters
from sd_studio.engine.region import target_size


def _masked(window, photo):
    window.open_path(str(photo))
    doc = window.doc
    mask = np.zeros((doc.size.height, doc.size.width), np.uint8)
    mask[20:50, 30:60] = 255
    doc.execute(set_mask(doc, mask))
    doc.history.clear()
    return doc


def _fill(window, qtbot):
    """Run a Fill (the classical engine: no weights, quick) and wait for its result."""
    panel = window.generate_panel
    panel.mode.setCurrentIndex(panel.mode.findData("fill"))
    with qtbot.waitSignal(window.engine.busy_changed, check_params_cb=lambda busy: busy is False, timeout=60_000):
        window.actions["generate"].trigger()


# -- the seed ---------------------------------------------------------------------------------
def test_the_seed_in_the_box_is_the_next_runs_even_unlocked(window):
    panel = window.generate_panel
    assert not panel.seed_lock.isChecked()
    assert panel.settings()["seed"] is None  # an empty box: a random seed
    panel.seed.setText("777")
    assert panel.settings()["seed"] == 777
    panel.dice.click()
    rolled = panel.seed.text()
    assert rolled.isdigit() and panel.settings()["seed"] == int(rolled)


def test_unlocked_a_run_reports_its_seed_and_rolls_a_new_one(window, photo, qtbot):
    doc = _masked(window, photo)
    panel = window.generate_panel
    panel.seed.setText("777")
    _fill(window, qtbot)
    result = doc.layers[-1]
    assert "Seed: 777" in result.metadata["parameters"]  # the typed seed was the one used
    assert panel.last_seed == 777 and "777" in panel.status.text()
    assert panel.seed.text().isdigit()  # a fresh random seed waits for the next run
    panel.reuse_seed.setEnabled(True)  # Fill greys the seed row; the button itself works the same
    panel.reuse_seed.click()
    assert panel.seed.text() == "777" and panel.seed_lock.isChecked()


def test_locked_the_seed_stays_after_a_run(window, photo, qtbot):
    _masked(window, photo)
    panel = window.generate_panel
    panel.seed.setText("4321")
    panel.seed_lock.setChecked(True)
    _fill(window, qtbot)
    assert panel.last_seed == 4321 and panel.seed.text() == "4321"


# -- strength across modes --------------------------------------------------------------------
def test_a_chosen_strength_survives_a_change_of_mode(window):
    panel = window.generate_panel
    panel.mode.setCurrentIndex(panel.mode.findData("img2img"))
    assert panel.strength.value() == 0.75  # untouched: the mode's default
    panel.strength.setValue(0.4)
    panel.mode.setCurrentIndex(panel.mode.findData("inpaint"))
    assert panel.strength.value() == 0.4
    panel.mode.setCurrentIndex(panel.mode.findData("img2img"))
    assert panel.strength.value() == 0.4


# -- "Use these settings" ---------------------------------------------------------------------
def test_use_these_settings_restores_everything_stored(window, photo):
    window.open_path(str(photo))
    panel = window.generate_panel
    panel.set_models(["/models/other.safetensors", "/models/tiny-sd"], "/models/other.safetensors")
    size = target_size(Extent(300, 200), 640)  # what a 640 run on a 3:2 region records as its size
    layer = window.doc.add_layer("a lighthouse")
    layer.metadata["parameters"] = format_parameters({
        "prompt": "a lighthouse", "negative_prompt": "fog", "steps": 9, "sampler": panel.scheduler.itemText(0),
        "cfg_scale": 5.5, "seed": 99, "width": size.width, "height": size.height, "model_hash": "abc",
        "model": "tiny-sd", "denoising_strength": 0.6, "mode": "img2img", "Mask blur": 9, "Masked area padding": 48,
    })
    panel.whole_image.setChecked(True)
    window.use_layer_settings(layer)
    assert panel.mode.currentData() == "img2img"
    assert panel.strength.value() == 0.6  # not reset by the change of mode
    assert (panel.steps.value(), panel.guidance.value(), panel.seed.text()) == (9, 5.5, "99")
    assert panel.model_spec() == "/models/tiny-sd"  # the stored name found among the offered models
    assert (panel.feather.value(), panel.padding.value()) == (9, 48)
    assert not panel.whole_image.isChecked()  # a padding is recorded only for "only the masked area"
    assert panel.resolution.currentText() == "640"
    assert panel.settings()["resolution"] == 640
    layer.metadata["parameters"] = format_parameters({
        "prompt": "a lighthouse", "steps": 9, "seed": 99, "mode": "inpaint", "Mask blur": 9,
        "Masked area padding": 48, "Inpaint area": "Whole picture", "Match color": True,
    })
    window.use_layer_settings(layer)
    assert panel.whole_image.isChecked() and panel.match_color.isChecked()  # the engine's own record wins


def test_an_unknown_model_name_keeps_the_chosen_model_and_says_so(window, photo):
    window.open_path(str(photo))
    panel = window.generate_panel
    panel.set_models(["/models/tiny-sd"], "/models/tiny-sd")
    notes = panel.load_parameters({"prompt": "x", "model": "somewhere-else", "mode": "inpaint"})
    assert panel.model_spec() == "/models/tiny-sd"
    assert len(notes) == 1 and "somewhere-else" in notes[0]
    assert panel.load_parameters({"prompt": "x", "model": "tiny-sd"}) == []  # the chosen one's own name
    assert panel.model_spec() == "/models/tiny-sd"


def test_a_fill_result_comes_back_as_fill(window, photo, qtbot):
    doc = _masked(window, photo)
    panel = window.generate_panel
    panel.padding.setValue(20)
    panel.feather.setValue(6)
    _fill(window, qtbot)
    result = doc.layers[-1]
    panel.mode.setCurrentIndex(panel.mode.findData("inpaint"))
    panel.padding.setValue(64)
    panel.feather.setValue(1)
    window.use_layer_settings(result)
    assert panel.mode.currentData() == "fill"
    assert (panel.padding.value(), panel.feather.value()) == (20, 6)


# -- remembered engine choices ----------------------------------------------------------------
def test_device_and_memory_mode_chosen_in_the_panel_are_the_next_starts(window, settings, qtbot):
    from sd_studio.ui.main_window import MainWindow

    window.generate_panel.device.setCurrentText("cpu")
    window.generate_panel.memory_mode.setCurrentText("attention-slicing")
    settings.sync()
    again = QSettings(settings.fileName(), QSettings.Format.IniFormat)
    assert again.value("engine/device") == "cpu" and again.value("engine/memory_mode") == "attention-slicing"
    second = MainWindow(settings=again)
    try:
        assert second.generate_panel.device.currentText() == "cpu"
        assert second.generate_panel.memory_mode.currentText() == "attention-slicing"
    finally:
        second.doc.history.mark_clean()
        second.close()
        second.engine.shutdown()
        second.deleteLater()
