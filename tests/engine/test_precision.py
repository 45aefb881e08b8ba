"""CPU precision: the choice rule with flags and timings injected, the per-machine cache, and bf16 images close to fp32."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sd_studio.engine.cpu import precision as P
from sd_studio.engine.cpu.processor import CpuInfo
from sd_studio.engine.generate import generate
from sd_studio.engine.models.loading import ModelCache
from sd_studio.engine.request import GenerationRequest
from sd_studio.errors import ModelError

AMX = CpuInfo("Xeon with AMX", frozenset({"amx_tile", "amx_bf16", "avx512_bf16"}), 4, 8)
AVX2 = CpuInfo("Laptop AVX2", frozenset({"avx2"}), 4, 8)
BIG = 900_000_000  # parameters of an SD 1.5 UNet, more or less


def timings(seconds: dict[str, float], calls: list[str]):
    def time_step(precision: str) -> float:
        calls.append(precision)
        return seconds[precision]

    return time_step


def test_explicit_request_wins_without_timing(tmp_path):
    calls: list[str] = []
    cache = P.PrecisionCache(tmp_path / "p.json")
    for requested in ("fp32", "bf16"):
        got = P.choose_cpu_precision(requested, "abc", info=AVX2, time_step=timings({}, calls), cache=cache, parameters=BIG)
        assert got == requested
    assert calls == []


def test_no_native_bf16_means_fp32_untimed(tmp_path):
    calls: list[str] = []
    got = P.choose_cpu_precision("auto", "abc", info=AVX2, time_step=timings({}, calls),
                                 cache=P.PrecisionCache(tmp_path / "p.json"), parameters=BIG)
    assert got == "fp32" and calls == []


@pytest.mark.parametrize("seconds, expected", [({"bf16": 2.0, "fp32": 6.2}, "bf16"), ({"bf16": 7.0, "fp32": 6.2}, "fp32")])
def test_native_bf16_keeps_the_faster(tmp_path, seconds, expected):
    calls: list[str] = []
    got = P.choose_cpu_precision("auto", "abc", info=AMX, time_step=timings(seconds, calls),
                                 cache=P.PrecisionCache(tmp_path / "p.json"), parameters=BIG, machine="m")
    assert got == expected
    assert sorted(calls) == ["bf16", "fp32"]


def test_choice_is_cached_per_machine_and_model(tmp_path):
    path = tmp_path / "p.json"
    calls: list[str] = []
    first = P.choose_cpu_precision("auto", "hash1", info=AMX, time_step=timings({"bf16": 2.0, "fp32": 6.0}, calls),
                                   cache=P.PrecisionCache(path), parameters=BIG, machine="m1")
    assert first == "bf16" and len(calls) == 2
    # Read back by a fresh cache object: no timing this time, even with timings that would say otherwise.
    again = P.choose_cpu_precision("auto", "hash1", info=AMX, time_step=timings({"bf16": 9.0, "fp32": 1.0}, calls),
                                   cache=P.PrecisionCache(path), parameters=BIG, machine="m1")
    assert again == "bf16" and len(calls) == 2
    stored = json.loads(path.read_text())
    assert stored["m1"]["hash1"] == {"choice": "bf16", "seconds": {"bf16": 2.0, "fp32": 6.0}}
    # Another model, or the same model on another machine, is timed afresh.
    other = P.choose_cpu_precision("auto", "hash2", info=AMX, time_step=timings({"bf16": 9.0, "fp32": 1.0}, calls),
                                   cache=P.PrecisionCache(path), parameters=BIG, machine="m1")
    elsewhere = P.choose_cpu_precision("auto", "hash1", info=AMX, time_step=timings({"bf16": 9.0, "fp32": 1.0}, calls),
                                       cache=P.PrecisionCache(path), parameters=BIG, machine="m2")
    assert (other, elsewhere) == ("fp32", "fp32") and len(calls) == 6


def test_corrupt_cache_file_is_ignored(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("{not json")
    calls: list[str] = []
    got = P.choose_cpu_precision("auto", "h", info=AMX, time_step=timings({"bf16": 1.0, "fp32": 2.0}, calls),
                                 cache=P.PrecisionCache(path), parameters=BIG, machine="m")
    assert got == "bf16" and json.loads(path.read_text())["m"]["h"]["choice"] == "bf16"


def test_small_models_stay_fp32_untimed(tmp_path):
    calls: list[str] = []
    got = P.choose_cpu_precision("auto", "h", info=AMX, time_step=timings({}, calls),
                                 cache=P.PrecisionCache(tmp_path / "p.json"), parameters=1_000_000)
    assert got == "fp32" and calls == []


def test_unknown_precision_is_refused(tmp_path):
    with pytest.raises(ModelError, match="auto, fp32 or bf16"):
        P.choose_cpu_precision("fp8", "h", info=AMX, time_step=lambda p: 1.0, cache=P.PrecisionCache(tmp_path / "p.json"))


def test_machine_key_names_cpu_and_torch():
    key = P.machine_key(AMX, "2.13.0+cpu")
    assert "Xeon with AMX" in key and "2.13.0+cpu" in key


def test_real_timing_path_on_a_tiny_model(tiny_sd_dir, tmp_path, monkeypatch):
    """The timing code itself runs (both precisions, a bf16 copy) and leaves the timed UNet fp32 until applied."""
    import torch

    monkeypatch.setattr(P, "MIN_TIMED_PARAMETERS", 0)
    model = ModelCache().get(str(tiny_sd_dir), device="cpu", precision="fp32")
    unet = model.components["unet"]
    assert unet.dtype == torch.float32
    cache = P.PrecisionCache(tmp_path / "p.json")
    messages = []
    choice = P.apply_cpu_precision(model, "auto", lambda p: messages.append(p.message), info=AMX, cache=cache)
    entry = cache.get(P.machine_key(AMX), model.hash)
    assert entry is not None and entry["choice"] == choice
    assert set(entry["seconds"]) == {"bf16", "fp32"} and all(s > 0 for s in entry["seconds"].values())
    assert any("Timing" in m for m in messages)
    assert unet.dtype == (torch.bfloat16 if choice == "bf16" else torch.float32)
    assert model.unet_precision == choice


def test_auto_on_this_cpu_keeps_a_tiny_model_fp32(tiny_sd_dir):
    import torch

    model = ModelCache().get(str(tiny_sd_dir), device="cpu", precision="auto")
    assert model.unet_precision == "fp32"
    assert model.components["unet"].dtype == torch.float32


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("mode", ["inpaint", "img2img", "txt2img"])
def test_bf16_images_are_close_to_fp32(tiny_sd_dir, tiny_image, tiny_mask, mode):
    import torch

    images = {}
    for precision in ("fp32", "bf16"):
        models = ModelCache()
        request = GenerationRequest(
            mode=mode, image=None if mode == "txt2img" else tiny_image, mask=tiny_mask if mode == "inpaint" else None,
            prompt="a red square", steps=4, seed=7, model=str(tiny_sd_dir), device="cpu", precision=precision,
            scheduler="Euler", width=64, height=64,
        )
        result = generate(request, models=models)
        model = models.get(str(tiny_sd_dir), device="cpu", precision=precision)
        assert model.unet_precision == precision
        # Only the UNet runs in bf16: the VAE (banding) and the text encoder stay fp32.
        assert model.components["vae"].dtype == torch.float32
        assert model.components["text_encoder"].dtype == torch.float32
        assert model.components["unet"].dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
        images[precision] = result.images[0]
    assert not np.array_equal(images["fp32"], images["bf16"])  # bf16 really ran
    assert psnr(images["fp32"], images["bf16"]) > 30


def test_cli_precision_option(tiny_sd_dir, tmp_path, capsys, monkeypatch):
    import torch

    from sd_studio.cli import main
    from sd_studio.engine import generate as generate_module

    monkeypatch.setattr(generate_module, "_default_models", None)
    threads = torch.get_num_threads()
    out = tmp_path / "out.png"
    status = main(["txt2img", "--prompt", "a cat", "--model", str(tiny_sd_dir), "--device", "cpu", "--precision", "bf16",
                   "--steps", "2", "--width", "64", "--height", "64", "--seed", "1", "--quiet", "-o", str(out)])
    assert status == 0 and out.is_file()
    model = generate_module.default_models().get(str(tiny_sd_dir), device="cpu", precision="bf16")
    assert model.unet_precision == "bf16"
    assert torch.get_num_threads() == threads  # the CLI's thread policy does not outlive the run
    generate_module.default_models().clear()

    with pytest.raises(SystemExit) as exit_info:
        main(["txt2img", "--prompt", "a cat", "--precision", "fp8", "-o", str(out)])
    assert exit_info.value.code == 2
    assert "sd-studio: error:" in capsys.readouterr().err


def test_model_cache_tells_auto_from_fp32(tiny_sd_dir, monkeypatch):
    """auto may choose bf16 on a CPU, so an fp32 request after it must not get the cached bf16 model."""
    from pathlib import Path

    from sd_studio.engine.models.hashes import folder_hash

    monkeypatch.setattr(P, "MIN_TIMED_PARAMETERS", 0)
    monkeypatch.setattr(P, "cpu_info", lambda: AMX)
    P.PrecisionCache().put(P.machine_key(AMX), folder_hash(Path(tiny_sd_dir)), "bf16", {"bf16": 1.0, "fp32": 2.0})
    cache = ModelCache()
    auto = cache.get(str(tiny_sd_dir), device="cpu", precision="auto")
    assert auto.unet_precision == "bf16"  # from the stored choice, untimed
    fp32 = cache.get(str(tiny_sd_dir), device="cpu", precision="fp32")
    assert fp32 is not auto and fp32.unet_precision == "fp32"
