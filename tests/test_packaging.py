"""The PyInstaller packaging (packaging/): what the bundle keeps of diffusers/transformers, the launcher,
and, when `make package` has been run, the built app itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packaging"))

from bundle_contents import (
    DATA_COLLECTED_ELSEWHERE,
    DATA_NOT_NEEDED,
    DATA_PACKAGES,
    keep_diffusers,
    keep_transformers,
)

FROZEN = ROOT / "dist" / "sd-studio" / ("sd-studio.exe" if os.name == "nt" else "sd-studio")

# Runs in a fresh interpreter so sys.modules holds exactly what the command line's diffusion runs import:
# a tiny SD txt2img, a tiny inpainting model, a tiny SDXL, and every sampler preset.
_GENERATE_AND_LIST_MODULES = r"""
import sys
from pathlib import Path
sys.path.insert(0, {engine_tests!r})
from conftest import save_tiny_model, save_tiny_sdxl_model
from sd_studio.cli import main
from sd_studio.engine.schedulers import make_scheduler, scheduler_names
tmp = Path({tmp!r})
sd, inpaint, sdxl = save_tiny_model(tmp / "sd"), save_tiny_model(tmp / "inp", in_channels=9), save_tiny_sdxl_model(tmp / "xl")
common = ["--steps", "2", "--seed", "1", "--quiet", "--device", "cpu", "--precision", "fp32", "--cpu-backend", "torch"]
assert main(["txt2img", "--prompt", "a cat", "--width", "64", "--height", "64", "--model", str(sd), "-o", str(tmp / "a.png")] + common) == 0
assert main(["inpaint", {image!r}, "--mask", {mask!r}, "--model", str(inpaint), "--resolution", "64", "-o", str(tmp / "b.png")] + common) == 0
assert main(["txt2img", "--prompt", "a cat", "--width", "64", "--height", "64", "--model", str(sdxl), "-o", str(tmp / "c.png")] + common) == 0
import diffusers
for name in scheduler_names():
    make_scheduler(name, diffusers.EulerDiscreteScheduler().config, seed=1)
print("\n".join(sorted(m for m in sys.modules if m.split(".")[0] in ("diffusers", "transformers"))))
"""


def test_filters_keep_the_stable_diffusion_modules_and_drop_other_families():
    assert keep_diffusers("diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_inpaint")
    assert keep_diffusers("diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl")
    assert keep_diffusers("diffusers.pipelines.pipeline_utils")
    assert keep_diffusers("diffusers.schedulers.scheduling_dpmsolver_sde")
    assert keep_diffusers("diffusers.loaders.single_file_utils")
    assert not keep_diffusers("diffusers.pipelines.flux")
    assert not keep_diffusers("diffusers.pipelines.flux.pipeline_flux")
    assert not keep_diffusers("diffusers.commands.env")
    assert keep_transformers("transformers.models.clip.modeling_clip")
    assert keep_transformers("transformers.models.auto.tokenization_auto")
    assert keep_transformers("transformers.modeling_utils")
    assert not keep_transformers("transformers.models.bert.modeling_bert")
    assert not keep_transformers("transformers.pipelines.text_classification")


def test_every_module_a_diffusion_run_imports_is_kept(tmp_path):
    mask = tmp_path / "mask.png"
    from PIL import Image

    holes = Image.new("L", (64, 64), 0)
    holes.paste(255, (16, 16, 48, 48))
    holes.save(mask)
    Image.new("RGB", (64, 64), (120, 90, 60)).save(tmp_path / "image.png")
    script = _GENERATE_AND_LIST_MODULES.format(
        engine_tests=str(ROOT / "tests" / "engine"), tmp=str(tmp_path), image=str(tmp_path / "image.png"), mask=str(mask)
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    modules = done.stdout.split()
    assert "diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl" in modules
    assert "transformers.models.clip.modeling_clip" in modules
    missing = [m for m in modules if not (keep_diffusers(m) if m.startswith("diffusers") else keep_transformers(m))]
    assert missing == [], f"imported but left out of the bundle: {missing}"


def _runtime_distributions():
    """The installed distributions sd-studio needs at run time: pyproject's dependencies, transitively."""
    from importlib import metadata
    import re

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from packaging.requirements import Requirement

    wanted = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    seen, found = set(), []
    while wanted:
        requirement = Requirement(wanted.pop())
        key = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if key in seen or requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            continue
        found.append(dist)
        wanted += dist.requires or []
    return found


def test_every_dependency_that_ships_data_files_is_bundled_or_says_why_not():
    import re

    code = re.compile(r"(\.(py|pyc|pyi|pyd|dll|dylib|pth)|py\.typed|\.so(\.\d+)*)$")
    listed = set(DATA_PACKAGES) | set(DATA_COLLECTED_ELSEWHERE) | set(DATA_NOT_NEEDED)
    unaccounted = {}
    for dist in _runtime_distributions():
        for f in dist.files or []:
            path = str(f).replace("\\", "/")
            if "/" not in path or path.startswith(("..", "bin/")) or ".dist-info/" in path or ".libs/" in path:
                continue
            if "__pycache__" in path or code.search(path):
                continue
            top = path.split("/")[0]
            if top not in listed:
                unaccounted.setdefault(top, path)
    assert not unaccounted, (
        "these runtime dependencies ship data files the bundle neither carries nor explains; add each to "
        f"packaging/bundle_contents.py DATA_PACKAGES (bundled) or DATA_NOT_NEEDED (with the reason): {unaccounted}"
    )
    assert "kernels" in DATA_PACKAGES


def test_the_launcher_runs_the_command_line():
    done = subprocess.run([sys.executable, str(ROOT / "packaging" / "launcher.py"), "--version"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("sd-studio ")


# `make package` sets SD_STUDIO_REQUIRE_BUILD: there a missing app is a failure, not a skip
needs_build = pytest.mark.skipif(not FROZEN.exists() and not os.environ.get("SD_STUDIO_REQUIRE_BUILD"),
                                 reason="no built app: run `make package` first")


def _frozen(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(FROZEN), *map(str, args)], capture_output=True, text=True, timeout=600, **kwargs)


@needs_build
def test_the_built_app_describes_the_sample_and_writes_a_project(tmp_path):
    sample = ROOT / "resources" / "sample.png"
    done = _frozen("info", sample)
    assert done.returncode == 0, done.stderr
    assert "size: 512x512" in done.stdout
    # .ora layers are encoded by libvips: this fails when pyvips-binary's library is not in the bundle
    assert _frozen("convert", sample, tmp_path / "sample.ora").returncode == 0
    done = _frozen("info", tmp_path / "sample.ora")
    assert done.returncode == 0, done.stderr
    assert "format: OpenRaster" in done.stdout


@needs_build
def test_the_built_app_generates_with_a_tiny_model_like_the_source_does(tmp_path):
    import importlib.util

    import numpy as np
    from PIL import Image

    from sd_studio.cli import main

    spec = importlib.util.spec_from_file_location("engine_tiny_models", ROOT / "tests" / "engine" / "conftest.py")
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    model = tiny.save_tiny_model(tmp_path / "tiny")
    args = ["txt2img", "--prompt", "a red barn", "--width", "64", "--height", "64", "--model", str(model),
            "--steps", "2", "--seed", "7", "--scheduler", "DPM++ 2M Karras", "--quiet", "--device", "cpu",
            "--precision", "fp32", "--cpu-backend", "torch"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = _frozen(*args, "-o", tmp_path / "frozen.png", env=env)
    assert done.returncode == 0, done.stderr
    assert main(args + ["-o", str(tmp_path / "source.png")]) == 0
    frozen = np.asarray(Image.open(tmp_path / "frozen.png"))
    source = np.asarray(Image.open(tmp_path / "source.png"))
    assert frozen.shape == (64, 64, 4)
    np.testing.assert_array_equal(frozen, source, err_msg="the built app differs from the source: `make package` again?")


@needs_build
def test_the_built_app_downloads_a_model_from_the_hub(tmp_path):
    """The frozen app can get a model: huggingface_hub, its HTTP stack and the catalog code are all inside."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fake_hub", ROOT / "tests" / "engine" / "fake_hub.py")
    fake_hub = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fake_hub", fake_hub)
    spec.loader.exec_module(fake_hub)
    weights = bytes(range(256)) * 4096 + b"tail"
    with fake_hub.FakeHub() as hub:
        hub.add_repo("test/lora", {"lora.safetensors": weights})
        catalog = fake_hub.write_catalog(tmp_path / "catalog.json", [
            fake_hub.catalog_entry({"lora.safetensors": weights}, "test/lora", "lora", "tiny-lora")])
        env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HUB_DISABLE_IMPLICIT_TOKEN="1")
        done = _frozen("get-model", "tiny-lora", "--catalog", catalog, "--folder", tmp_path / "models", "--quiet",
                       env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "models" / "loras" / "lora.safetensors").read_bytes() == weights
