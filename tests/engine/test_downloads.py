"""Downloading catalog entries and hub repos from a stand-in hub on 127.0.0.1 (tests/engine/fake_hub.py):
a whole model that then loads and generates, a cut resumed by the next call, checksums, cancel, and the
hub's errors each as one sentence."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from fake_hub import FakeHub, catalog_entry, point_huggingface_hub_at, write_catalog

from sd_studio.engine.models import downloads
from sd_studio.engine.models.catalog import format_size, load_catalog
from sd_studio.engine.models.downloads import TransferRate, download_entry, format_duration, partial_bytes
from sd_studio.errors import Cancelled, ModelError

WEIGHTS = np.random.default_rng(3).integers(0, 256, 5 * (1 << 20) + 123, dtype=np.uint8).tobytes()
CONFIG = b'{"_class_name": "AutoencoderTiny", "latent_channels": 4}\n'


@pytest.fixture
def hub(monkeypatch):
    """The stand-in hub, with huggingface_hub pointed at it; retries come at once."""
    with FakeHub() as fake:
        point_huggingface_hub_at(fake, monkeypatch)
        monkeypatch.setattr(downloads, "_pause", lambda attempt, cancel, entry: None)
        yield fake


def _catalog(tmp_path: Path, entries: list[dict]) -> tuple:
    return load_catalog(write_catalog(tmp_path / "catalog.json", entries))


def _entry(files: dict[str, bytes], repo: str = "test/decoder", kind: str = "decoder", folder: str = "tiny") -> dict:
    return catalog_entry(files, repo, kind, folder)


def _one_sentence(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message
    assert message.endswith(".") and 20 < len(message) < 400, message


def test_a_whole_model_downloads_then_loads_through_the_users_path_and_generates(hub, tmp_path, tiny_sd_dir):
    from sd_studio.engine.generate import generate
    from sd_studio.engine.models.discovery import find_models
    from sd_studio.engine.request import GenerationRequest

    hub.add_folder("test/tiny-sd", tiny_sd_dir)
    files = {p.relative_to(tiny_sd_dir).as_posix(): p.read_bytes() for p in tiny_sd_dir.rglob("*") if p.is_file()}
    (entry,) = _catalog(tmp_path, [_entry(files, repo="test/tiny-sd", kind="checkpoint", folder="tiny-sd")])
    models = tmp_path / "models"
    events = []
    path = download_entry(entry, models, progress=events.append)

    assert path == models / "tiny-sd" and entry.installed(models)
    for name, data in files.items():
        assert (path / name).read_bytes() == data
    assert not list(models.rglob("*.part"))
    total = sum(len(d) for d in files.values())
    assert events[-1].step == events[-1].total == total
    assert all(a.step <= b.step for a, b in itertools.pairwise(events))
    assert events[-1].phase == "downloading" and "Tiny checkpoint" in events[-1].message
    # weights came from the CDN once each, exactly their size
    assert hub.served == {n: len(d) for n, d in files.items() if n.endswith(".safetensors")}

    found = find_models([models])
    assert [(m.name, m.kind) for m in found] == [("tiny-sd", "folder")]
    result = generate(GenerationRequest("txt2img", prompt="a barn", steps=2, seed=5, width=64, height=64,
                                        model=found[0].spec, device="cpu"))
    assert result.images[0].shape == (64, 64, 4)
    # a second call finds everything in place and asks the hub nothing
    asked = len(hub.requests)
    assert download_entry(entry, models) == path and len(hub.requests) == asked


def test_a_hub_id_in_the_model_box_downloads_into_the_cache_safetensors_only(hub, tmp_path, tiny_sd_dir):
    from sd_studio.engine.models.hub import fetch_hub_model
    from sd_studio.engine.models.loading import ModelCache

    hub.add_folder("test/tiny-sd", tiny_sd_dir)
    hub.repos["test/tiny-sd"].files["unet/diffusion_pytorch_model.bin"] = b"pickle"  # never fetched
    events = []
    folder = fetch_hub_model("test/tiny-sd", events.append)
    assert (folder / "model_index.json").is_file()
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not (folder / "unet" / "diffusion_pytorch_model.bin").exists()
    assert events and events[-1].phase == "downloading"
    assert ModelCache().get("test/tiny-sd", device="cpu") is not None  # found in the cache, loaded


def test_a_cut_download_is_continued_by_the_next_call_with_a_range_request(hub, tmp_path):
    hub.add_repo("test/decoder", {"config.json": CONFIG, "weights.safetensors": WEIGHTS})
    (entry,) = _catalog(tmp_path, [_entry({"config.json": CONFIG, "weights.safetensors": WEIGHTS})])
    models = tmp_path / "models"
    cut = 2 * (1 << 20) + 7
    hub.faults.cut_after = cut
    hub.faults.statuses = [503] * 10  # and then the network stays down for this call
    with pytest.raises(ModelError) as failed:
        download_entry(entry, models)
    _one_sentence(str(failed.value))
    assert "HTTP 503" in str(failed.value) and "continue where it stopped" in str(failed.value)
    assert not (models / "decoders" / "tiny" / "weights.safetensors").exists()
    (partial,) = (models / "decoders" / "tiny").glob(".weights.safetensors.*.part")
    assert partial.stat().st_size == cut
    assert partial_bytes(entry, models) == len(CONFIG) + cut  # the config arrived whole before the weights

    hub.faults.statuses = []  # the network is back
    download_entry(entry, models)
    assert (models / "decoders" / "tiny" / "weights.safetensors").read_bytes() == WEIGHTS
    assert hub.ranges("weights.safetensors")[-1] == f"bytes={cut}-"
    assert hub.served["weights.safetensors"] == len(WEIGHTS)  # nothing was sent twice
    assert not partial.exists()


def test_a_connection_cut_once_is_resumed_within_the_same_call(hub, tmp_path):
    hub.add_repo("test/lora", {"lora.safetensors": WEIGHTS})
    (entry,) = _catalog(tmp_path, [_entry({"lora.safetensors": WEIGHTS}, repo="test/lora", kind="lora")])
    hub.faults.cut_after = 1 << 20
    path = download_entry(entry, tmp_path / "models")
    assert path == tmp_path / "models" / "loras" / "lora.safetensors" and path.read_bytes() == WEIGHTS
    assert hub.ranges("lora.safetensors") == [None, f"bytes={1 << 20}-"]
    assert hub.served["lora.safetensors"] == len(WEIGHTS)


def test_a_server_that_ignores_range_sends_the_whole_file_again_and_it_still_verifies(hub, tmp_path):
    hub.add_repo("test/lora", {"lora.safetensors": WEIGHTS})
    (entry,) = _catalog(tmp_path, [_entry({"lora.safetensors": WEIGHTS}, repo="test/lora", kind="lora")])
    hub.faults.cut_after, hub.faults.ignore_range = 1 << 20, True
    assert download_entry(entry, tmp_path / "models").read_bytes() == WEIGHTS


def test_a_corrupt_file_fails_its_checksum_and_is_deleted(hub, tmp_path):
    hub.add_repo("test/lora", {"lora.safetensors": WEIGHTS})
    (entry,) = _catalog(tmp_path, [_entry({"lora.safetensors": WEIGHTS}, repo="test/lora", kind="lora")])
    hub.faults.corrupt = True
    models = tmp_path / "models"
    with pytest.raises(ModelError) as failed:
        download_entry(entry, models)
    _one_sentence(str(failed.value))
    assert "checksum" in str(failed.value) and "deleted" in str(failed.value)
    assert [p for p in models.rglob("*") if p.is_file()] == []  # neither a final file nor a partial one

    hub.faults.corrupt = False
    assert download_entry(entry, models).read_bytes() == WEIGHTS


def test_a_config_file_is_held_to_the_hubs_git_hash(hub, tmp_path):
    hub.add_repo("test/decoder", {"config.json": CONFIG, "weights.safetensors": WEIGHTS})
    (entry,) = _catalog(tmp_path, [_entry({"config.json": CONFIG, "weights.safetensors": WEIGHTS})])
    assert entry.files[0].sha256 is None  # the catalog lists no checksum for it: the hub's ETag is the one
    hub.faults.corrupt = True
    with pytest.raises(ModelError, match="config.json of test/decoder arrived damaged"):
        download_entry(entry, tmp_path / "models")
    assert not (tmp_path / "models" / "decoders" / "tiny" / "config.json").exists()


def test_cancel_stops_between_chunks_and_keeps_a_partial_file_to_continue(hub, tmp_path):
    hub.add_repo("test/lora", {"lora.safetensors": WEIGHTS})
    (entry,) = _catalog(tmp_path, [_entry({"lora.safetensors": WEIGHTS}, repo="test/lora", kind="lora")])
    models = tmp_path / "models"
    seen = []
    with pytest.raises(Cancelled) as stopped:
        download_entry(entry, models, progress=lambda p: seen.append(p.step),
                       cancel=lambda: bool(seen) and seen[-1] > 0)
    _one_sentence(str(stopped.value))
    assert not (models / "loras" / "lora.safetensors").exists()
    (partial,) = (models / "loras").glob(".lora.safetensors.*.part")
    kept = partial.stat().st_size
    assert 0 < kept < len(WEIGHTS) and partial_bytes(entry, models) == kept

    events = []
    download_entry(entry, models, progress=events.append)
    assert (models / "loras" / "lora.safetensors").read_bytes() == WEIGHTS
    assert hub.ranges("lora.safetensors")[-1] == f"bytes={kept}-"
    assert events[0].phase == "checking"  # the kept bytes were hashed again, not trusted


def test_cancel_before_anything_arrives_asks_the_hub_nothing(hub, tmp_path):
    hub.add_repo("test/lora", {"lora.safetensors": WEIGHTS})
    (entry,) = _catalog(tmp_path, [_entry({"lora.safetensors": WEIGHTS}, repo="test/lora", kind="lora")])
    with pytest.raises(Cancelled):
        download_entry(entry, tmp_path / "models", cancel=lambda: True)
    assert hub.requests == []


@pytest.mark.parametrize("case, expected", [
    ("no repo", "There is no model 'test/elsewhere' on the Hugging Face hub"),
    ("no file", "has no file weights.safetensors any more"),
    ("gated", "is gated: accept its licence on https://huggingface.co/test/gated and log in with `hf auth login`"),
    ("server error", "server error (HTTP 500)"),
])
def test_hub_errors_are_one_sentence_each_and_leave_nothing(hub, tmp_path, case, expected):
    hub.add_repo("test/gated", {"weights.safetensors": WEIGHTS}, gated=True)
    hub.add_repo("test/empty", {})
    hub.add_repo("test/lora", {"weights.safetensors": WEIGHTS})
    repo = {"no repo": "test/elsewhere", "no file": "test/empty", "gated": "test/gated", "server error": "test/lora"}
    if case == "server error":
        hub.faults.statuses = [500] * 10
    (entry,) = _catalog(tmp_path, [_entry({"weights.safetensors": WEIGHTS}, repo=repo[case], kind="lora")])
    with pytest.raises(ModelError) as failed:
        download_entry(entry, tmp_path / "models")
    _one_sentence(str(failed.value))
    assert expected in str(failed.value)
    assert not (tmp_path / "models" / "loras" / "weights.safetensors").exists()


def test_no_network_and_offline_mode_are_one_sentence(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    (entry,) = _catalog(tmp_path, [_entry({"w.safetensors": WEIGHTS}, repo="test/lora", kind="lora")])
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(ModelError) as failed:
        download_entry(entry, tmp_path / "models")
    _one_sentence(str(failed.value))
    assert "could not be reached" in str(failed.value) and "hf download test/lora" in str(failed.value)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as failed:
        download_entry(entry, tmp_path / "models")
    _one_sentence(str(failed.value))
    assert "HF_HUB_OFFLINE" in str(failed.value)


def test_a_file_that_changed_on_the_hub_is_refused_before_downloading(hub, tmp_path):
    hub.add_repo("test/lora", {"lora.safetensors": WEIGHTS[:-1]})  # not the file the catalog lists
    (entry,) = _catalog(tmp_path, [_entry({"lora.safetensors": WEIGHTS}, repo="test/lora", kind="lora")])
    with pytest.raises(ModelError, match="not the file SD Studio lists"):
        download_entry(entry, tmp_path / "models")
    assert hub.ranges("lora.safetensors") == []


def test_too_little_disk_space_is_said_before_downloading(hub, tmp_path, monkeypatch):
    import shutil

    hub.add_repo("test/lora", {"lora.safetensors": WEIGHTS})
    (entry,) = _catalog(tmp_path, [_entry({"lora.safetensors": WEIGHTS}, repo="test/lora", kind="lora")])
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(ModelError) as failed:
        download_entry(entry, tmp_path / "models")
    _one_sentence(str(failed.value))
    assert "free" in str(failed.value) and hub.ranges("lora.safetensors") == []


def test_two_downloads_of_one_file_at_once_are_refused(hub, tmp_path):
    if os.name == "nt":
        pytest.skip("no advisory locks on Windows")
    hub.add_repo("test/lora", {"lora.safetensors": WEIGHTS})
    (entry,) = _catalog(tmp_path, [_entry({"lora.safetensors": WEIGHTS}, repo="test/lora", kind="lora")])
    models = tmp_path / "models"
    outcome = []

    def second_download(progress):
        if not outcome and progress.step > 0:
            try:
                download_entry(entry, models)
            except ModelError as exc:
                outcome.append(str(exc))

    download_entry(entry, models, progress=second_download)
    assert outcome and "already being downloaded" in outcome[0]
    assert (models / "loras" / "lora.safetensors").read_bytes() == WEIGHTS


def test_speed_and_time_left_follow_the_last_seconds():
    rate = TransferRate(window_s=5)
    assert rate.speed is None and rate.time_left(100) is None
    for second in range(11):
        rate.add(float(second), second * 1_000_000)  # 1 MB/s
    assert rate.speed == pytest.approx(1_000_000)
    assert rate.time_left(20_000_000) == pytest.approx(10)
    for second in range(11, 17):
        rate.add(float(second), 10_000_000 + (second - 10) * 4_000_000)  # faster now
    assert rate.speed == pytest.approx(4_000_000)
    rate.add(17.0, 0)  # started again from zero
    assert rate.speed is None


def test_sizes_and_durations_read_like_a_download_page():
    assert format_size(4265203873) == "4.27 GB"
    assert format_size(134621556) == "135 MB"
    assert format_size(9793292) == "9.8 MB"
    assert format_size(512) == "512 bytes"
    assert format_duration(42) == "42 s" and format_duration(300) == "5 min" and format_duration(4800) == "1 h 20 min"
