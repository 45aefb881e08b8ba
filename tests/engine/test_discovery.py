"""Finding models on disk: checkpoints (and only checkpoints) in the models folders, and the model folders of
AUTOMATIC1111 and ComfyUI installations, with ComfyUI's extra_model_paths.yaml read safely."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from sd_studio.engine.models.discovery import (
    A1111,
    COMFYUI,
    AppFolder,
    app_folders_in,
    default_models_folder,
    find_app_folders,
    find_models,
    read_extra_model_paths,
    search_places,
)
from sd_studio.errors import ModelError


def _safetensors(path: Path, *keys: str) -> Path:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.zeros((2, 2), np.float16) for k in keys}, str(path))
    return path


def _checkpoint(path: Path) -> Path:
    return _safetensors(path, "model.diffusion_model.input_blocks.0.0.weight",
                        "first_stage_model.decoder.conv_in.weight")


def test_only_checkpoints_are_listed_from_the_folder_and_its_sub_folders(tmp_path):
    models = tmp_path / "models"
    _checkpoint(models / "photo.safetensors")
    _checkpoint(models / "SDXL" / "styles" / "painterly.safetensors")  # sorted into folders, as A1111 users do
    _safetensors(models / "detail-lora.safetensors", "lora_unet_down_blocks_0_attentions_0.lora_down.weight")
    _safetensors(models / "vae-ft-mse.safetensors", "encoder.down.0.block.0.conv1.weight")
    _safetensors(models / "decoders" / "taesd" / "diffusion_pytorch_model.safetensors", "decoder.layers.0.weight")
    _checkpoint(models / ".photo.safetensors.0123.part")  # a partial download
    (models / "broken.safetensors").write_bytes(b"\x00" * 10)
    (models / "old.ckpt").write_bytes(b"pickle")
    (models / "my-diffusers" ).mkdir()
    (models / "my-diffusers" / "model_index.json").write_text("{}")
    (models / "SDXL" / "loop").symlink_to(models, target_is_directory=True)  # a link back up must not loop
    found = {(m.name, m.kind) for m in find_models([models], include_default=False)}
    assert found == {("photo", "file"), ("painterly", "file"), ("my-diffusers", "folder")}


def test_the_users_models_folder_is_always_listed(tmp_path):
    _checkpoint(default_models_folder() / "downloaded.safetensors")  # the data folder is a temporary one in tests
    assert [m.name for m in find_models([])] == ["downloaded"]
    assert find_models([], include_default=False) == []


def _a1111(root: Path) -> Path:
    for name in ("Stable-diffusion", "Lora", "VAE"):
        (root / "models" / name).mkdir(parents=True)
    (root / "webui.py").write_text("")
    return root


def _comfy(root: Path) -> Path:
    for name in ("checkpoints", "loras", "vae", "upscale_models", "clip"):
        (root / "models" / name).mkdir(parents=True)
    (root / "main.py").write_text("")
    return root


def test_a1111_and_comfyui_installations_are_found_in_the_usual_places(tmp_path):
    home = tmp_path / "home"
    webui = _a1111(home / "src" / "stable-diffusion-webui")
    comfy = _comfy(home / "Documents" / "ComfyUI")
    portable = _comfy(home / "ComfyUI_windows_portable" / "ComfyUI")
    (home / "Documents" / "notes").mkdir()
    found = find_app_folders([home, home / "src", home / "Documents"])
    assert not found.notes
    got = {(f.app, f.kind, f.path) for f in found.folders}
    assert got == {
        (A1111, "checkpoint", webui / "models" / "Stable-diffusion"),
        (A1111, "lora", webui / "models" / "Lora"),
        (A1111, "vae", webui / "models" / "VAE"),
        (COMFYUI, "checkpoint", comfy / "models" / "checkpoints"),
        (COMFYUI, "lora", comfy / "models" / "loras"),
        (COMFYUI, "vae", comfy / "models" / "vae"),
        (COMFYUI, "upscaler", comfy / "models" / "upscale_models"),
        (COMFYUI, "checkpoint", portable / "models" / "checkpoints"),
        (COMFYUI, "lora", portable / "models" / "loras"),
        (COMFYUI, "vae", portable / "models" / "vae"),
        (COMFYUI, "upscaler", portable / "models" / "upscale_models"),
    }
    labels = {f.label for f in found.folders}
    assert "ComfyUI checkpoints" in labels and "AUTOMATIC1111 LoRAs" in labels


def test_a_picked_folder_may_be_the_installation_its_models_folder_or_hold_one(tmp_path):
    webui = _a1111(tmp_path / "stable-diffusion-webui")
    expected = {(A1111, "checkpoint"), (A1111, "lora"), (A1111, "vae")}
    for picked in (webui, webui / "models", tmp_path):
        assert {(f.app, f.kind) for f in app_folders_in(picked).folders} == expected, picked
    assert app_folders_in(tmp_path / "nothing-here").folders == ()


def test_comfyuis_extra_model_paths_are_followed_as_comfyui_does(tmp_path, monkeypatch):
    comfy = _comfy(tmp_path / "ComfyUI")
    webui = _a1111(tmp_path / "stable-diffusion-webui")
    (webui / "models" / "LyCORIS").mkdir()
    shared = tmp_path / "shared"
    (shared / "ckpt").mkdir(parents=True)
    monkeypatch.setenv("SHARED_MODELS", str(shared))
    (comfy / "extra_model_paths.yaml").write_text(
        "a111:\n"
        "    base_path: ../stable-diffusion-webui/\n"  # relative to the yaml's folder, as ComfyUI takes it
        "    checkpoints: models/Stable-diffusion\n"
        "    loras: |\n"
        "         models/Lora\n"
        "         models/LyCORIS\n"
        "    embeddings: embeddings\n"
        "mine:\n"
        "    base_path: $SHARED_MODELS\n"
        "    checkpoints: ckpt/\n"
        "    vae: not-there/\n"
        "broken: just a string\n",
        encoding="utf-8",
    )
    found = read_extra_model_paths(comfy / "extra_model_paths.yaml")
    assert {(f.kind, f.path.resolve()) for f in found} == {
        ("checkpoint", (webui / "models" / "Stable-diffusion").resolve()),
        ("lora", (webui / "models" / "Lora").resolve()),
        ("lora", (webui / "models" / "LyCORIS").resolve()),
        ("checkpoint", (shared / "ckpt").resolve()),
    }
    # and the installation's own folders come with them, each once
    paths = [f.path.resolve() for f in app_folders_in(comfy).folders]
    assert (shared / "ckpt").resolve() in paths and len(paths) == len(set(paths))


@pytest.mark.parametrize("text, says", [
    ("a: &x\n  base_path: /tmp\nb: *x\n", "anchors or aliases"),
    ("a: [unclosed\n", "not valid YAML (line 2)"),
    ("!!python/object:os.system {}\n", "not valid YAML"),
])
def test_a_hostile_or_broken_yaml_is_one_sentence(tmp_path, text, says):
    path = tmp_path / "extra_model_paths.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ModelError) as failed:
        read_extra_model_paths(path)
    assert says in str(failed.value) and "\n" not in str(failed.value)


def test_a_huge_yaml_is_not_read_and_a_broken_one_does_not_hide_the_rest(tmp_path):
    comfy = _comfy(tmp_path / "ComfyUI")
    (comfy / "extra_model_paths.yaml").write_text("x: " + "y" * (300 * 1024), encoding="utf-8")
    found = app_folders_in(comfy)
    assert {f.kind for f in found.folders} == {"checkpoint", "lora", "vae", "upscaler"}
    assert len(found.notes) == 1 and "too large" in found.notes[0]


def test_the_comfyui_desktop_apps_config_is_read(tmp_path, monkeypatch):
    if os.name == "nt":
        pytest.skip("the desktop app keeps it in %APPDATA% there")
    store = tmp_path / "store"
    (store / "models" / "checkpoints").mkdir(parents=True)
    config = tmp_path / "config" / "ComfyUI" / "extra_models_config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(f"comfyui_desktop:\n  base_path: {store}\n  checkpoints: models/checkpoints/\n", encoding="utf-8")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr("sys.platform", "linux")
    found = find_app_folders([])
    assert [(f.app, f.kind, f.path.resolve()) for f in found.folders] == [
        (COMFYUI, "checkpoint", (store / "models" / "checkpoints").resolve())]


def test_the_usual_places_are_below_home(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    (tmp_path / "Documents").mkdir()
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path))
    places = search_places()
    assert places[:3] == [tmp_path, tmp_path / "src", tmp_path / "Documents"]
    assert all(p.is_dir() for p in places)


def test_app_folder_is_a_value():
    a = AppFolder(A1111, "checkpoint", Path("/x"), Path("/"))
    assert a == AppFolder(A1111, "checkpoint", Path("/x"), Path("/")) and a.label == "AUTOMATIC1111 checkpoints"
