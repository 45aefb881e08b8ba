"""Few-step presets by model name, and the expected time per image from the last run's step reports."""

from __future__ import annotations

import pytest

from sd_studio.engine.presets import (
    LCM_PRESET,
    TURBO_PRESET,
    StepTimer,
    effective_steps,
    expected_time_text,
    runs_on_cpu,
    suggest_preset,
)


@pytest.mark.parametrize("model, loras, expected", [
    ("stabilityai/sd-turbo", (), TURBO_PRESET),
    ("/models/sdxl_lightning_4step.safetensors", (), TURBO_PRESET),
    ("SimianLuo/LCM_Dreamshaper_v7", (), LCM_PRESET),
    ("/models/v1-5-pruned-emaonly.safetensors", (("/loras/lcm-lora-sdv1-5.safetensors", 1.0),), LCM_PRESET),
    ("/models/v1-5-pruned-emaonly.safetensors", (("/loras/detail.safetensors", 0.8),), None),
    (None, (), None),
])
def test_suggest_preset(model, loras, expected):
    assert suggest_preset(model, loras) == expected


def test_presets_are_few_steps():
    assert LCM_PRESET.scheduler == "LCM" and LCM_PRESET.steps <= 4
    assert TURBO_PRESET.guidance == 0 and 1 <= TURBO_PRESET.steps <= 4


def test_runs_on_cpu_by_setting():
    assert runs_on_cpu("cpu") and not runs_on_cpu("cuda") and not runs_on_cpu("mps")


def test_effective_steps():
    assert effective_steps(20, 0.75, "img2img") == 15
    assert effective_steps(20, 0.75, "txt2img") == 20
    assert effective_steps(4, 0.1, "inpaint") == 1


class FakeClock:
    """A clock the test moves by hand (the timer's arithmetic is under test, not the machine's speed)."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_step_timer_measures_the_last_run():
    clock = FakeClock()
    timer = StepTimer(clock=clock)
    assert timer.expected_seconds(4) is None and expected_time_text(None, 4) == ""
    timer.start()
    clock.now += 30  # loading and encoding: not a step
    timer.report("loading", 1, 1)
    timer.report("denoising", 1, 4)
    for seconds in (2.0, 3.0, 2.0):
        clock.now += seconds
        timer.report("denoising", timer_step := len(timer._current) + 2, 4)
    assert timer_step == 4
    clock.now += 5.0  # decoding and pasting
    timer.report("decoding", 4, 4)
    timer.finish()
    assert timer.seconds_per_step == 2.0
    assert timer.expected_seconds(4) == pytest.approx(2.0 * 4 + 5.0)
    assert expected_time_text(timer.expected_seconds(4), 4).startswith("About 13 s per image (4 steps")
    # A failed or cancelled run leaves the last measurement alone.
    timer.start()
    timer.report("denoising", 1, 20)
    clock.now += 50
    timer.report("denoising", 2, 20)
    timer.start()
    assert timer.seconds_per_step == 2.0


def test_variants_do_not_count_the_decode_between_them_as_a_step():
    clock = FakeClock()
    timer = StepTimer(clock=clock)
    timer.start()
    for _variant in range(2):
        timer.report("denoising", 1, 2)
        clock.now += 1.0
        timer.report("denoising", 2, 2)
        clock.now += 10.0  # decode, then the next variant's first step
    timer.finish()
    assert timer.step_seconds == [1.0, 1.0]


def _safetensors(path, metadata):
    """A real one-tensor .safetensors file with the given metadata."""
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"lora_unet_down.alpha": np.ones(1, np.float32)}, str(path), metadata=metadata)
    return path


def test_a_hub_cache_download_is_known_by_its_repo_id(tmp_path):
    snapshot = tmp_path / "hub" / "models--latent-consistency--lcm-lora-sdv1-5" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    lora = _safetensors(snapshot / "pytorch_lora_weights.safetensors", {"format": "pt"})
    assert suggest_preset("/models/v1-5.safetensors", ((str(lora), 1.0),)) == LCM_PRESET


def test_a_diffusers_folder_is_known_by_its_scheduler(tmp_path):
    import json

    folder = tmp_path / "my-favourite-model"
    (folder / "scheduler").mkdir(parents=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "LCMScheduler"}))
    assert suggest_preset(str(folder)) == LCM_PRESET
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "PNDMScheduler"}))
    assert suggest_preset(str(folder)) is None


def test_a_single_file_is_known_by_its_metadata(tmp_path):
    plain = _safetensors(tmp_path / "model-a.safetensors", {"modelspec.title": "Dreamy realism v3"})
    turbo = _safetensors(tmp_path / "model-b.safetensors", {"modelspec.title": "DreamShaper XL Turbo"})
    assert suggest_preset(str(plain)) is None
    assert suggest_preset(str(turbo)) == TURBO_PRESET


def test_only_whole_words_count():
    assert suggest_preset("/home/malcolm/models/portrait.safetensors") is None
    assert suggest_preset("/models/lcm/portrait.safetensors") is None  # a folder above says nothing of the file
    assert suggest_preset("/models/dreamshaper_lcm.safetensors") == LCM_PRESET


def test_runs_on_cpu_before_torch_is_imported_asks_the_system(monkeypatch):
    import sys

    import sd_studio.engine.presets as presets

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(presets, "_gpu_driver_present", lambda: False)
    assert runs_on_cpu("auto")
    monkeypatch.setattr(presets, "_gpu_driver_present", lambda: True)
    assert not runs_on_cpu("auto")
