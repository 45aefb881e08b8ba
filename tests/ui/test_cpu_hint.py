"""The Generate panel's CPU line: the fast preset offered for few-step models, and the expected time after a run."""

from __future__ import annotations

import pytest


@pytest.fixture
def panel(qtbot):
    from sd_studio.ui.panels.generate import GeneratePanel

    p = GeneratePanel()
    qtbot.addWidget(p)
    p.show()
    p.device.setCurrentText("cpu")
    return p


def test_turbo_model_on_cpu_offers_its_preset(panel):
    hint = panel.cpu_hint
    panel.model.setCurrentText("/models/v1-5-pruned-emaonly.safetensors")
    assert not hint.preset_button.isVisible()
    panel.model.setCurrentText("stabilityai/sd-turbo")
    assert hint.preset_button.isVisible() and "Turbo" in hint.preset_button.text()
    hint.preset_button.click()
    assert (panel.steps.value(), panel.guidance.value()) == (4, 0.0)
    assert not hint.preset_button.isVisible()  # already applied


def test_lcm_preset_sets_the_lcm_sampler(panel):
    panel.model.setCurrentText("SimianLuo/LCM_Dreamshaper_v7")
    panel.cpu_hint.apply_preset()
    s = panel.settings()
    assert (s["scheduler"], s["steps"], s["guidance"]) == ("LCM", 4, 1.0)


def test_no_preset_offered_on_a_gpu(panel):
    panel.device.setCurrentText("cuda")
    panel.model.setCurrentText("stabilityai/sd-turbo")
    assert not panel.cpu_hint.preset_button.isVisible()


def test_expected_time_from_the_last_run(panel):
    from sd_studio.engine.presets import StepTimer

    now = [0.0]
    panel.cpu_hint.timer = StepTimer(clock=lambda: now[0])
    assert panel.cpu_hint.expected.text() == ""
    panel.mode.setCurrentIndex(panel.mode.findData("txt2img"))
    panel.steps.setValue(10)
    panel.set_busy(True)
    for step in range(1, 11):
        now[0] += 3.0
        panel.set_progress("denoising", step, 10)
    now[0] += 4.0
    panel.set_done("Done")
    assert panel.cpu_hint.expected.text().startswith("About 34 s per image (10 steps")
    panel.steps.setValue(4)
    assert panel.cpu_hint.expected.text().startswith("About 16 s per image (4 steps")


def test_precision_setting_reaches_the_request(panel):
    panel.precision.setCurrentText("bf16")
    assert panel.settings()["precision"] == "bf16"
    from sd_studio.document.document import Document
    from sd_studio.ui.generation import build_request

    panel.model.setCurrentText("some/model")
    request = build_request(Document.new(64, 64), panel.settings())
    assert request.precision == "bf16"
