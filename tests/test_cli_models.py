"""`sd-studio get-model`: the recommended models listed, one downloaded from a stand-in hub on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from sd_studio.cli import main

_spec = importlib.util.spec_from_file_location("fake_hub", Path(__file__).parent / "engine" / "fake_hub.py")
fake_hub = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("fake_hub", fake_hub)
_spec.loader.exec_module(fake_hub)

WEIGHTS = np.random.default_rng(5).integers(0, 256, (1 << 20) + 17, dtype=np.uint8).tobytes()


def test_without_an_id_it_lists_the_recommended_models(capsys, tmp_path):
    assert main(["get-model", "--folder", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"Models folder: {tmp_path}" in out
    first = out.splitlines()[1]
    assert first.startswith("* sd15-inpainting") and "4.27 GB" in first and "CreativeML OpenRAIL-M" in first
    assert "sdxl-base" in out and "lcm-lora-sd15" in out and "about 9.8 MB" in out
    assert "sd-studio get-model ID" in out


def test_an_unknown_id_or_no_network_is_one_line_and_exit_2(capsys, tmp_path):
    assert main(["get-model", "nope", "--folder", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sd-studio: error: There is no model 'nope' in the catalog; choose one of: sd15-inpainting")
    assert main(["get-model", "taesd", "--folder", str(tmp_path)]) == 2  # the tests run with HF_HUB_OFFLINE=1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HF_HUB_OFFLINE" in err and "Traceback" not in err


def test_a_model_downloads_with_a_progress_bar_and_is_then_listed(capsys, tmp_path, monkeypatch):
    with fake_hub.FakeHub() as hub:
        fake_hub.point_huggingface_hub_at(hub, monkeypatch)
        hub.add_repo("test/lora", {"lora.safetensors": WEIGHTS})
        catalog = fake_hub.write_catalog(tmp_path / "catalog.json", [
            fake_hub.catalog_entry({"lora.safetensors": WEIGHTS}, "test/lora", "lora", "tiny-lora")])
        models = tmp_path / "models"
        assert main(["get-model", "tiny-lora", "--catalog", str(catalog), "--folder", str(models)]) == 0
    captured = capsys.readouterr()
    path = models / "loras" / "lora.safetensors"
    assert captured.out.strip() == str(path) and path.read_bytes() == WEIGHTS
    assert "downloading" in captured.err and "1.0 MB of 1.0 MB" in captured.err
    assert f"apply it with --lora {path}" in captured.err
    assert main(["get-model", "--catalog", str(catalog), "--folder", str(models)]) == 0
    assert "on this computer" in capsys.readouterr().out


def test_a_bad_catalog_file_is_one_line(capsys, tmp_path):
    (tmp_path / "c.json").write_text("{", encoding="utf-8")
    assert main(["get-model", "--catalog", str(tmp_path / "c.json")]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["get-model", "--help"]])
def test_help_describes_resuming(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert "continues where it stopped" in capsys.readouterr().out
