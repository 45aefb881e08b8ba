"""Model specs, refusals and loading: hub ids (cached or not), diffusers folders, single files, devices."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sd_studio.engine.models.devices import choose_device
from sd_studio.engine.models.discovery import find_models
from sd_studio.engine.models.files import check_diffusers_folder, read_safetensors_header, resolve_model_spec
from sd_studio.engine.models.loading import ModelCache, load_model
from sd_studio.errors import ModelError


class _CreatesMarker:
    """Unpickling this calls open(marker, "w"): proof that a file was unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _one_sentence(error: BaseException) -> str:
    text = str(error)
    assert text and "\n" not in text and "Traceback" not in text
    return text


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    """An empty Hugging Face home for one test; the hub stays offline."""
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin", ".pth"])
def test_pickles_are_refused_without_being_unpickled(tmp_path, suffix):
    control_marker, marker = tmp_path / "control-ran", tmp_path / "model-ran"
    control = tmp_path / "control.pkl"
    control.write_bytes(pickle.dumps(_CreatesMarker(control_marker)))
    pickle.loads(control.read_bytes()).close()  # the trap is real: unpickling creates its marker
    assert control_marker.exists()

    model = tmp_path / f"model{suffix}"
    model.write_bytes(pickle.dumps(_CreatesMarker(marker)))
    with pytest.raises(ModelError) as info:
        ModelCache().get(str(model), device="cpu")
    text = _one_sentence(info.value)
    assert "run arbitrary code" in text and ".safetensors" in text and "convert" in text
    assert not marker.exists()


def test_folder_with_only_bin_weights_is_refused_like_a_pickle(tiny_sd_dir, tmp_path):
    folder = shutil.copytree(tiny_sd_dir, tmp_path / "bin-only")
    for f in folder.rglob("*.safetensors"):
        f.rename(f.with_name(f.name.replace(".safetensors", ".bin")))
    with pytest.raises(ModelError) as info:
        load_model(str(folder), device="cpu")
    assert "pickle" in _one_sentence(info.value) and ".safetensors" in str(info.value)


def test_missing_path_empty_folder_and_non_diffusers_folder(tmp_path):
    with pytest.raises(ModelError, match="no model file or folder at"):
        resolve_model_spec(str(tmp_path / "nothing.safetensors"))
    with pytest.raises(ModelError, match="no model file or folder at"):
        resolve_model_spec("./models/gone")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="is empty"):
        resolve_model_spec(str(tmp_path / "empty"))
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(ModelError, match="not a diffusers model folder") as info:
        resolve_model_spec(str(other))
    _one_sentence(info.value)
    with pytest.raises(ModelError, match="No model given"):
        resolve_model_spec("  ")
    with pytest.raises(ModelError, match="nor a Hugging Face repo id"):
        resolve_model_spec("not a model")
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    with pytest.raises(ModelError, match="not a model file"):
        resolve_model_spec(str(text_file))


def test_diffusers_folder_without_a_unet_is_not_a_sd_model(tmp_path):
    folder = tmp_path / "tts"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "AudioLDMPipeline", "vocoder": ["transformers", "X"]}')
    with pytest.raises(ModelError, match="not a Stable Diffusion model"):
        check_diffusers_folder(folder)


def test_corrupt_and_truncated_safetensors_give_one_sentence(tiny_sd_dir, tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelError, match="truncated or corrupt"):
        load_model(str(junk), device="cpu")
    real = tiny_sd_dir / "unet" / "diffusion_pytorch_model.safetensors"
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    assert read_safetensors_header(real)  # the whole file reads
    with pytest.raises(ModelError, match="truncated or corrupt") as info:
        load_model(str(cut), device="cpu")
    _one_sentence(info.value)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        load_model(str(empty), device="cpu")


def test_unrelated_safetensors_file_is_refused(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "embedding.safetensors"
    save_file({"emb_params": np.zeros((2, 768), np.float32)}, str(path))
    with pytest.raises(ModelError) as info:
        load_model(str(path), device="cpu")
    assert "not a Stable Diffusion checkpoint" in _one_sentence(info.value)


def test_hub_id_not_cached_offline_says_how_to_get_it(hf_home):
    with pytest.raises(ModelError) as info:
        load_model("someorg/some-model", device="cpu")
    text = _one_sentence(info.value)
    assert "not in the local Hugging Face cache" in text and "no network" in text
    assert "`hf download someorg/some-model`" in text and ".safetensors" in text


def _cache_layout(hf_home: Path, source: Path, repo_id: str, revision: str = "0123456789abcdef") -> Path:
    """The Hugging Face hub cache layout: models--org--name/{blobs,refs/main,snapshots/<rev>/...}."""
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    shutil.copytree(source, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def test_hub_id_in_the_cache_loads_offline(tiny_sd_dir, hf_home):
    _cache_layout(hf_home, tiny_sd_dir, "tinyorg/tiny-sd")
    assert resolve_model_spec("tinyorg/tiny-sd") == ("hub", "tinyorg/tiny-sd")
    events = []
    model = ModelCache().get("tinyorg/tiny-sd", device="cpu", progress=events.append)
    assert model.name == "tiny-sd" and model.family == "sd1" and not model.is_inpaint
    assert len(model.hash) == 10
    assert events[0].phase == "loading" and events[-1].step == events[-1].total
    assert "tinyorg/tiny-sd" in [e.spec for e in find_models([])]


def test_folder_loads_with_identity_and_shared_pipelines(tiny_sd_dir, tiny_inpaint_dir):
    model = load_model(str(tiny_sd_dir), device="cpu")
    assert (model.family, model.native_resolution, model.is_inpaint) == ("sd1", 64, False)
    assert model.device == "cpu" and model.dtype == torch.float32
    assert model.name == "tiny-sd" and len(model.hash) == 10
    assert model.hash == load_model(str(tiny_sd_dir), device="cpu").hash  # stable
    t2i, i2i, inp = model.pipeline("txt2img"), model.pipeline("img2img"), model.pipeline("inpaint")
    assert type(t2i).__name__ == "StableDiffusionPipeline"
    assert type(i2i).__name__ == "StableDiffusionImg2ImgPipeline"
    assert type(inp).__name__ == "StableDiffusionInpaintPipeline"
    assert t2i.unet is i2i.unet is inp.unet is model.components["unet"]  # loaded once, shared
    assert model.pipeline("txt2img") is t2i
    inpaint = load_model(str(tiny_inpaint_dir), device="cpu")
    assert inpaint.is_inpaint and inpaint.components["unet"].config.in_channels == 9
    assert inpaint.hash != model.hash


def test_model_cache_keeps_the_last_model(tiny_sd_dir, tiny_inpaint_dir):
    cache = ModelCache()
    first = cache.get(str(tiny_sd_dir), device="cpu")
    assert cache.get(str(tiny_sd_dir), device="cpu") is first
    other = cache.get(str(tiny_inpaint_dir), device="cpu")
    assert other is not first and other.is_inpaint
    assert first.components == {}  # the previous model was released
    assert cache.get(str(tiny_sd_dir), device="cpu") is not first


def test_choose_device():
    assert choose_device("cpu") == ("cpu", torch.float32)
    assert choose_device("cpu", "bf16") == ("cpu", torch.bfloat16)
    with pytest.raises(ModelError, match="fp16 is not supported on the CPU"):
        choose_device("cpu", "fp16")
    device, dtype = choose_device("auto")
    if torch.cuda.is_available():
        assert (device, dtype) == ("cuda", torch.float16)
    else:
        with pytest.raises(ModelError, match="no CUDA GPU"):
            choose_device("cuda")
        if device == "cpu":
            assert dtype == torch.float32


def test_find_models_lists_checkpoints_and_folders_not_loras_or_pickles(tiny_sd_dir, tmp_path, hf_home):
    from safetensors.numpy import save_file

    base = tmp_path / "models"
    base.mkdir()
    save_file({"model.diffusion_model.input_blocks.0.0.weight": np.zeros((1,), np.float32)}, str(base / "ckpt.safetensors"))
    save_file({"lora_unet_down_blocks_0.lora_down.weight": np.zeros((1,), np.float32)}, str(base / "style.safetensors"))
    (base / "old.ckpt").write_bytes(b"pickle")
    shutil.copytree(tiny_sd_dir, base / "tiny")
    entries = {e.name: e for e in find_models([base, tmp_path / "missing"])}
    assert set(entries) == {"ckpt", "tiny"}
    assert entries["ckpt"].kind == "file" and entries["tiny"].kind == "folder"
    assert entries["tiny"].size_bytes > 0


def test_download_progress_reaches_the_progress_callback():
    from sd_studio.engine.models.hub import _download_tqdm

    events = []
    cls = _download_tqdm("org/name", events.append)
    written = cls(total=100 * 2**20, unit="B", desc="Reconstructing")
    written.update(40 * 2**20)
    written.update(60 * 2**20)
    written.close()
    cls(total=10 * 2**20, unit="B", desc="Downloading bytes").update(5)  # the network estimate: not reported
    cls(total=3, desc="Fetching 3 files").update(1)  # the file count: not reported
    assert [(e.phase, e.step, e.total) for e in events] == [
        ("downloading", 40 * 2**20, 100 * 2**20),
        ("downloading", 100 * 2**20, 100 * 2**20),
    ]
    assert events[0].message == "Downloading org/name: 40 of 100 MiB"


def test_single_file_checkpoint_loads_through_the_user_path(tiny_sd_dir, tmp_path, monkeypatch):
    from original_layout import clip_to_original, unet_to_original, vae_to_original
    from safetensors.torch import load_file, save_file

    from sd_studio.engine.diffusion import run_diffusion
    from sd_studio.engine.models import single_file

    def weights(sub, name):
        return load_file(tiny_sd_dir / sub / name)

    state = {}
    state.update(unet_to_original(weights("unet", "diffusion_pytorch_model.safetensors"),
                                  json.loads((tiny_sd_dir / "unet" / "config.json").read_text())))
    state.update(vae_to_original(weights("vae", "diffusion_pytorch_model.safetensors"),
                                 json.loads((tiny_sd_dir / "vae" / "config.json").read_text())))
    state.update(clip_to_original(weights("text_encoder", "model.safetensors")))
    path = tmp_path / "tiny-civitai.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    configs = tmp_path / "configs"
    shutil.copytree(tiny_sd_dir, configs / "sd15", ignore=shutil.ignore_patterns("*.safetensors"))
    monkeypatch.setattr(single_file, "CONFIGS_DIR", configs)  # the tiny stand-in for the shipped SD1.5 config

    model = ModelCache().get(str(path), device="cpu")
    assert (model.name, model.family, model.is_inpaint, model.native_resolution) == ("tiny-civitai", "sd1", False, 64)
    assert model.hash == hashlib.sha256(path.read_bytes()).hexdigest()[:10]  # A1111's short hash of the file
    image = np.zeros((64, 64, 3), np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    for mode in ("txt2img", "img2img", "inpaint"):
        out = run_diffusion(model, mode, image=image, mask=mask, prompt="a fox", negative_prompt="", steps=2,
                            guidance=7.0, strength=0.7, seeds=[1], scheduler="Euler a", width=64, height=64)
        assert out[0].shape == (64, 64, 3)


def test_hub_unreachable_while_online_is_one_clear_sentence(hf_home, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(ModelError) as info:
        load_model("someorg/some-model", device="cpu")
    text = _one_sentence(info.value)
    assert "could not be reached" in text and "`hf download someorg/some-model`" in text


def test_out_of_memory_while_loading_is_a_model_error(tiny_sd_dir, monkeypatch):
    from sd_studio.engine.models import loading as models

    def no_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")

    monkeypatch.setattr(models, "load_folder", no_memory)  # the allocation failure a big model meets on a small GPU
    with pytest.raises(ModelError, match="not enough cpu memory to load tiny-sd") as info:
        load_model(str(tiny_sd_dir), device="cpu")
    _one_sentence(info.value)


def test_folder_without_a_first_text_encoder_is_still_a_model(tiny_sdxl_dir, tmp_path):
    folder = shutil.copytree(tiny_sdxl_dir, tmp_path / "refiner-like")
    index = json.loads((folder / "model_index.json").read_text())
    index["text_encoder"] = [None, None]  # SDXL refiners ship only the second encoder
    (folder / "model_index.json").write_text(json.dumps(index))
    shutil.rmtree(folder / "text_encoder")
    assert check_diffusers_folder(folder) == folder.resolve()
