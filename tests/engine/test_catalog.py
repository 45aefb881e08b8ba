"""The recommended-model catalog (resources/models.json) and its checks: safetensors only, inside the models
folder, sizes and sha256s for every weight file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sd_studio.engine.models.catalog import KIND_FOLDERS, find_entry, load_catalog
from sd_studio.errors import ModelError

GOOD = {
    "id": "tiny", "name": "Tiny", "kind": "checkpoint", "repo": "org/tiny", "revision": "main",
    "files": [{"path": "tiny.safetensors", "size": 10, "sha256": "a" * 64}],
    "licence": {"name": "MIT", "url": "https://example.org/mit"}, "good_for": "tests",
}


def _write(tmp_path: Path, models) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"format": 1, "models": models}), encoding="utf-8")
    return path


def test_the_shipped_catalog_offers_what_a_newcomer_needs():
    entries = load_catalog()
    by_id = {e.id: e for e in entries}
    assert entries[0].recommended and by_id["sd15-inpainting"].recommended
    assert by_id["sd15-inpainting"].kind == "checkpoint" and by_id["sd15-inpainting"].family == "sd1"
    assert by_id["sdxl-base"].kind == "checkpoint" and by_id["sdxl-base"].family == "sdxl"
    assert by_id["lcm-lora-sd15"].kind == "lora"
    assert {by_id["taesd"].kind, by_id["taesdxl"].kind} == {"decoder"}
    for entry in entries:
        assert entry.licence.url.startswith("https://") and entry.licence.name and entry.good_for
        for f in entry.files:
            assert f.path.endswith((".safetensors", ".json"))
            if f.path.endswith(".safetensors"):
                assert f.size and len(f.sha256) == 64
            else:
                assert "config.json" in entry.unchecked  # said, not hidden
    assert by_id["sdxl-base"].size == 6938078334
    assert by_id["sd15-inpainting"].size == 4265203873


def test_each_kind_lands_in_its_own_place(tmp_path):
    by_id = {e.id: e for e in load_catalog()}
    models = tmp_path / "models"
    assert by_id["sd15-inpainting"].destination(models) == models / "sd-v1-5-inpainting.safetensors"
    assert by_id["lcm-lora-sd15"].destination(models) == models / "loras" / "lcm-lora-sdv1-5.safetensors"
    assert by_id["taesd"].destination(models) == models / "decoders" / "taesd"
    assert set(KIND_FOLDERS) >= {"checkpoint", "lora", "decoder", "segmentation", "restoration", "upscaler"}
    taesd = by_id["taesd"]
    assert not taesd.installed(models)
    for f in taesd.files:
        target = taesd.file_destination(models, f)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"x")
    assert taesd.installed(models)


@pytest.mark.parametrize("change, says", [
    ({"files": [{"path": "model.ckpt", "size": 10, "sha256": "a" * 64}]}, "only .safetensors weights"),
    ({"files": [{"path": "model.bin", "size": 10, "sha256": "a" * 64}]}, "only .safetensors weights"),
    ({"files": [{"path": "tiny.safetensors", "save_as": "../../.bashrc.safetensors", "size": 10, "sha256": "a" * 64}]},
     "outside its folder"),
    ({"files": [{"path": "tiny.safetensors", "save_as": "/etc/x.safetensors", "size": 10, "sha256": "a" * 64}]},
     "outside its folder"),
    ({"files": [{"path": "tiny.safetensors", "size": 10}]}, "without their size and sha256"),
    ({"files": [{"path": "tiny.safetensors", "size": 10, "sha256": "A" * 64}]}, "not a lower-case sha256"),
    ({"files": [{"path": "tiny.safetensors", "size": -1, "sha256": "a" * 64}]}, "positive number of bytes"),
    ({"files": [{"path": "a/config.json"}, {"path": "b.safetensors", "save_as": "b.safetensors", "size": 1,
                                            "sha256": "a" * 64}]}, "one folder of their own"),
    ({"kind": "embedding"}, "unknown kind"),
    ({"repo": "not a repo"}, "not a hub repo id"),
    ({"licence": {"name": "MIT"}}, "no licence"),
    ({"licence": {"name": "MIT", "url": "http://example.org"}}, "not https"),
    ({"good_for": ""}, "has no good_for"),
])
def test_a_bad_catalog_entry_is_refused_with_one_sentence(tmp_path, change, says):
    with pytest.raises(ModelError) as failed:
        load_catalog(_write(tmp_path, [{**GOOD, **change}]))
    assert says in str(failed.value) and "\n" not in str(failed.value)


def test_a_catalog_that_is_not_one_is_refused(tmp_path):
    for text, says in (("not json", "not valid JSON"), ("[]", "no list of models"),
                       (json.dumps({"models": [GOOD, GOOD]}), "lists a model id twice")):
        path = tmp_path / "c.json"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ModelError, match=says):
            load_catalog(path)
    path.write_text(" " * (2 << 20), encoding="utf-8")
    with pytest.raises(ModelError, match="too large"):
        load_catalog(path)
    with pytest.raises(ModelError, match="could not be read"):
        load_catalog(tmp_path / "missing.json")


def test_an_unknown_id_names_the_ones_there_are(tmp_path):
    entries = load_catalog(_write(tmp_path, [GOOD]))
    assert find_entry(entries, "tiny") is entries[0]
    with pytest.raises(ModelError, match="There is no model 'huge' in the catalog; choose one of: tiny."):
        find_entry(entries, "huge")
