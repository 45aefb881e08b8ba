"""The Get a model dialog and the Generate panel's way to it: the catalog, a download from a stand-in hub on
127.0.0.1 with progress and cancel (on a worker thread), errors as one sentence, AUTOMATIC1111/ComfyUI folders
ticked into QSettings, and the panel's "no model yet" line."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

_spec = importlib.util.spec_from_file_location("fake_hub", Path(__file__).parents[1] / "engine" / "fake_hub.py")
fake_hub = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("fake_hub", fake_hub)
_spec.loader.exec_module(fake_hub)

WEIGHTS = np.random.default_rng(9).integers(0, 256, 3 * (1 << 20) + 5, dtype=np.uint8).tobytes()


@pytest.fixture
def hub(monkeypatch):
    """The stand-in hub, with huggingface_hub pointed at it."""
    with fake_hub.FakeHub() as fake:
        fake_hub.point_huggingface_hub_at(fake, monkeypatch)
        yield fake


@pytest.fixture
def make_dialog(qtbot, settings, tmp_path, monkeypatch):
    """Makes Get a model dialogs on a test catalog (or the shipped one) and a temporary models folder; closing one
    during a download (as the test's end does) answers Yes to "Stop it?", and the download is waited for."""
    from sd_studio.engine.models.catalog import load_catalog
    from sd_studio.ui.get_model import GetModelDialog

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    made = []

    def make(entries=None, places=None):
        catalog = None if entries is None else load_catalog(fake_hub.write_catalog(tmp_path / "catalog.json", entries))
        dialog = GetModelDialog(settings, models_folder=tmp_path / "models", catalog=catalog,
                                places=places if places is not None else [])
        qtbot.addWidget(dialog)
        dialog.show()
        made.append(dialog)
        return dialog

    yield make
    for dialog in made:
        if dialog._job is not None:
            dialog._job.cancel()
            qtbot.waitUntil(lambda d=dialog: not d._job.alive, timeout=60_000)


def _rows(dialog):
    t = dialog.table
    return [[t.topLevelItem(i).text(c) for c in range(5)] for i in range(t.topLevelItemCount())]


def test_the_catalog_shows_size_licence_and_what_each_model_is_for(make_dialog, tmp_path):
    dialog = make_dialog()
    rows = _rows(dialog)
    names = [r[0] for r in rows]
    assert names[0] == "Stable Diffusion 1.5 Inpainting"  # recommended first
    assert {"Stable Diffusion XL 1.0 (base)", "LCM-LoRA for SD 1.5 (few steps)",
            "TAESD tiny decoder (SD 1.x, 2.x)"} <= set(names)
    by_name = {r[0]: r for r in rows}
    assert by_name["Stable Diffusion 1.5 Inpainting"][1:4] == ["Model", "4.27 GB", "CreativeML OpenRAIL-M"]
    assert by_name["TAESD tiny decoder (SD 1.x, 2.x)"][2] == "about 9.8 MB"  # its config's size is not listed
    assert all(r[4] == "" for r in rows)  # nothing downloaded yet
    details = dialog.details.text()
    assert "repaints what you mask" in details and "spaces/CompVis/stable-diffusion-license" in details
    assert str(tmp_path / "models" / "sd-v1-5-inpainting.safetensors") in details
    assert dialog.download_button.isEnabled() and not dialog.use_button.isEnabled()


def test_a_download_runs_off_the_main_thread_and_chooses_the_new_model(make_dialog, qtbot, tmp_path, hub,
                                                                       tiny_sd_dir, monkeypatch):
    from sd_studio.engine.models import downloads

    hub.add_folder("test/tiny-sd", tiny_sd_dir)
    files = {p.relative_to(tiny_sd_dir).as_posix(): p.read_bytes() for p in tiny_sd_dir.rglob("*") if p.is_file()}
    dialog = make_dialog([fake_hub.catalog_entry(files, "test/tiny-sd", "checkpoint", "tiny-sd")])
    threads = []
    real = downloads.download_entry
    monkeypatch.setattr(downloads, "download_entry",
                        lambda *a, **k: (threads.append(threading.current_thread()), real(*a, **k))[1])
    chosen = []
    dialog.model_chosen.connect(chosen.append)
    with qtbot.waitSignal(dialog.models_changed, timeout=60_000):
        dialog.download_button.click()
        assert dialog.downloading and dialog.progress.isVisible() and dialog.cancel_button.isEnabled()
    assert threads and threads[0] is not threading.main_thread()
    assert chosen == [str(tmp_path / "models" / "tiny-sd")]
    assert _rows(dialog)[0][4] == "Ready" and "is ready and chosen in the Model box" in dialog.message.text()
    assert not dialog.download_button.isEnabled() and dialog.use_button.isEnabled()
    assert not dialog.progress.isVisible()


def test_cancel_keeps_what_arrived_and_the_next_download_continues(make_dialog, qtbot, tmp_path, hub):
    hub.add_repo("test/lora", {"lora.safetensors": WEIGHTS})
    entry = fake_hub.catalog_entry({"lora.safetensors": WEIGHTS}, "test/lora", "lora", "tiny-lora")
    dialog = make_dialog([entry])
    hub.faults.hold_after = 1 << 20  # the server sends a MiB, then waits
    dialog.download_button.click()
    qtbot.waitUntil(lambda: dialog.progress.format().startswith("1.0 MB of 3.1 MB"), timeout=30_000)
    dialog.cancel_button.click()
    hub.release.set()
    qtbot.waitUntil(lambda: not dialog.downloading, timeout=30_000)
    assert "was cancelled" in dialog.message.text() and "continues where it stopped" in dialog.message.text()
    assert _rows(dialog)[0][4].endswith("to continue") and dialog.download_button.text() == "Continue download"
    assert not (tmp_path / "models" / "loras" / "lora.safetensors").exists()

    dialog.download_button.click()
    qtbot.waitUntil(lambda: not dialog.downloading, timeout=30_000)
    assert (tmp_path / "models" / "loras" / "lora.safetensors").read_bytes() == WEIGHTS
    assert hub.ranges("lora.safetensors")[-1].startswith("bytes=")  # continued, not started again
    assert "--lora" in dialog.message.text()


def test_a_hub_error_is_one_sentence_in_the_dialog(make_dialog, qtbot, hub):
    hub.add_repo("test/gated", {"w.safetensors": WEIGHTS}, gated=True)
    dialog = make_dialog([fake_hub.catalog_entry({"w.safetensors": WEIGHTS}, "test/gated", "checkpoint", "gated")])
    dialog.download_button.click()
    qtbot.waitUntil(lambda: not dialog.downloading, timeout=30_000)
    text = dialog.message.text()
    assert text.startswith("test/gated is gated: accept its licence") and "\n" not in text and "Traceback" not in text
    assert dialog.download_button.isEnabled()


def test_closing_during_a_download_asks_and_stops_it(make_dialog, qtbot, hub, monkeypatch):
    hub.add_repo("test/lora", {"lora.safetensors": WEIGHTS})
    dialog = make_dialog([fake_hub.catalog_entry({"lora.safetensors": WEIGHTS}, "test/lora", "lora", "tiny-lora")])
    hub.faults.hold_after = 1 << 20
    dialog.download_button.click()
    qtbot.waitUntil(lambda: dialog.progress.format().startswith("1.0 MB of"), timeout=30_000)
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: answers.pop(0))
    dialog.reject()
    assert dialog.isVisible() and dialog.downloading  # "No": it goes on
    dialog.reject()
    assert not dialog.isVisible()
    hub.release.set()
    qtbot.waitUntil(lambda: dialog._job.cancelled, timeout=5000)


def _a1111(root: Path) -> Path:
    for name in ("Stable-diffusion", "Lora", "VAE"):
        (root / "models" / name).mkdir(parents=True)
    return root


def test_other_programs_folders_are_found_and_ticked_into_the_settings(make_dialog, qtbot, settings, tmp_path):
    home = tmp_path / "home"
    webui = _a1111(home / "stable-diffusion-webui")
    dialog = make_dialog(places=[home])
    changes = []
    dialog.models_changed.connect(lambda: changes.append(True))
    dialog.tabs.setCurrentIndex(1)  # the search starts when the tab is opened
    qtbot.waitUntil(lambda: dialog.search_status.text().startswith("Found"), timeout=30_000)
    items = {dialog.folders.item(i).text(): dialog.folders.item(i) for i in range(dialog.folders.count())}
    checkpoints = items[f"AUTOMATIC1111 checkpoints — {webui / 'models' / 'Stable-diffusion'}"]
    assert checkpoints.checkState() == Qt.CheckState.Unchecked and len(items) == 3
    checkpoints.setCheckState(Qt.CheckState.Checked)
    items[f"AUTOMATIC1111 LoRAs — {webui / 'models' / 'Lora'}"].setCheckState(Qt.CheckState.Checked)
    assert settings.value("models/folders") == [str(webui / "models" / "Stable-diffusion")]
    assert settings.value("models/lora_folders") == [str(webui / "models" / "Lora")]
    assert len(changes) == 2
    checkpoints.setCheckState(Qt.CheckState.Unchecked)
    assert not settings.value("models/folders")


def test_a_picked_file_folder_or_installation_is_used(make_dialog, settings, tmp_path):
    from safetensors.numpy import save_file

    dialog = make_dialog()
    chosen = []
    dialog.model_chosen.connect(chosen.append)
    model = tmp_path / "mine" / "photo.safetensors"
    model.parent.mkdir()
    save_file({"model.diffusion_model.input_blocks.0.0.weight": np.zeros((2, 2), np.float16)}, str(model))
    dialog.use_path(model)
    assert chosen == [str(model)]
    dialog.use_path(model.parent)  # a folder of checkpoints becomes a model folder
    assert settings.value("models/folders") == [str(model.parent)]
    webui = _a1111(tmp_path / "stable-diffusion-webui")
    dialog.use_path(webui)
    assert str(webui / "models" / "Stable-diffusion") in settings.value("models/folders")
    assert settings.value("models/vae_folders") == [str(webui / "models" / "VAE")]
    (tmp_path / "empty").mkdir()
    dialog.use_path(tmp_path / "empty")
    assert "holds no Stable Diffusion checkpoint" in dialog.search_status.text()


def test_ticked_folders_are_listed_when_the_dialog_opens(make_dialog, qtbot, settings, tmp_path):
    settings.setValue("models/folders", [str(tmp_path / "ckpts")])
    dialog = make_dialog()
    item = dialog.folders.item(0)
    assert item.checkState() == Qt.CheckState.Checked and str(tmp_path / "ckpts") in item.text()


# -- the Generate panel's side -------------------------------------------------------------------


@pytest.fixture
def panel(qtbot):
    from sd_studio.ui.panels.generate import GeneratePanel

    p = GeneratePanel()
    qtbot.addWidget(p)
    p.show()
    return p


def test_without_a_model_the_panel_says_fill_works_and_offers_get_a_model(panel, qtbot):
    assert panel.model_hint.isVisible() and "Fill works without one" in panel.model_hint.text()
    with qtbot.waitSignal(panel.get_model_requested):
        panel.get_model_button.click()
    with qtbot.waitSignal(panel.get_model_requested):
        panel.model_hint.linkActivated.emit("get-model")
    panel.mode.setCurrentIndex(panel.mode.findData("fill"))
    assert panel.get_model_button.isEnabled() and not panel.model_needed()  # Fill needs none
    panel.mode.setCurrentIndex(panel.mode.findData("inpaint"))
    assert panel.model_needed()
    panel.show_model_needed()
    assert panel.status.isVisible() and "Get a model" in panel.status.text() and "hub id" not in panel.status.text()
    panel.set_models(["/models/photo.safetensors"], None)
    assert not panel.model_hint.isVisible() and not panel.model_needed()


def test_a_model_from_the_dialog_lands_in_the_panel_and_the_dialog_opens_once(panel, qtbot, settings, tmp_path):
    from PySide6.QtWidgets import QWidget

    from sd_studio.ui.get_model import GetModelDialog, open_get_model_dialog

    window = QWidget()
    qtbot.addWidget(window)
    rescans = []
    dialog = open_get_model_dialog(window, settings, panel=panel, rescan=lambda: rescans.append(True))
    assert isinstance(dialog, GetModelDialog) and dialog.isVisible()
    assert open_get_model_dialog(window, settings, panel=panel) is dialog
    with qtbot.waitSignal(panel.model_chosen) as chosen:
        dialog.model_chosen.emit(str(tmp_path / "models" / "tiny-sd"))
    assert chosen.args == [str(tmp_path / "models" / "tiny-sd")]
    assert panel.model_spec() == str(tmp_path / "models" / "tiny-sd") and not panel.model_hint.isVisible()
    dialog.models_changed.emit()
    assert rescans == [True]
    dialog.close()
