"""Restoration model files: spandrel without torchvision, every family from tiny safetensors, refusals."""

from __future__ import annotations

import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import restore_models

from sd_studio.errors import ModelError

KIND_OF = {"esrgan": "upscale", "compact": "upscale", "swinir": "upscale", "hat": "upscale", "dat": "upscale",
           "gfpgan": "faces", "restoreformer": "faces", "codeformer": "faces", "lama": "erase", "mat": "erase",
           "ddcolor": "colorize"}


def _needs_extra(family: str) -> None:
    from sd_studio.engine.restore.spandrel_import import extra_arches_installed

    if restore_models.FAMILIES[family][1] and not extra_arches_installed():
        pytest.skip("spandrel-extra-arches is not installed (make test installs it)")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A folder the module's tiny model files are written into, each on first use."""
    return tmp_path_factory.mktemp("restore-models")


def _file(model_dir: Path, family: str) -> Path:
    path = model_dir / f"{family}.safetensors"
    if not path.exists():
        restore_models.save(family, model_dir)
    return path


@pytest.mark.parametrize("family", list(restore_models.FAMILIES))
def test_each_family_loads_from_tiny_safetensors_with_its_architecture_detected(model_dir, family):
    from sd_studio.engine.restore.models import load_model

    _needs_extra(family)
    model = load_model(_file(model_dir, family), KIND_OF[family], device="cpu")
    assert model.architecture == restore_models.FAMILIES[family][0]
    assert model.name == family and len(model.hash) >= 8
    assert model.device == "cpu"


def test_a_model_of_another_kind_is_refused_with_what_it_is(model_dir):
    from sd_studio.engine.restore.models import load_model

    with pytest.raises(ModelError, match=r"esrgan.safetensors is a ESRGAN model \(SR\), not a face restoration model"):
        load_model(_file(model_dir, "esrgan"), "faces")


def test_a_weights_only_pth_loads(tmp_path):
    import torch

    from sd_studio.engine.restore.models import load_model

    path = tmp_path / "compact.pth"
    torch.save({"params": restore_models.build("compact").state_dict()}, path)  # Real-ESRGAN's own layout
    assert load_model(path, "upscale").architecture == "Compact"


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "the payload ran"))


@pytest.mark.parametrize("container", ["torch-zip", "plain-pickle"])
def test_a_pickle_with_a_payload_is_refused_and_the_payload_never_runs(tmp_path, container):
    import torch

    from sd_studio.engine.restore.models import load_model

    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    state = {"model.0.weight": torch.zeros(1), "trap": _Payload(marker)}
    if container == "torch-zip":
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state))
    with pytest.raises(ModelError, match="refused"):
        load_model(path, "upscale")
    assert not marker.exists()


def test_a_torchscript_archive_is_refused_without_running_it(tmp_path):
    import torch

    from sd_studio.engine.restore.models import load_model

    path = tmp_path / "big-lama.pt"
    torch.jit.script(torch.nn.Conv2d(3, 3, 1)).save(str(path))
    assert any("/code/" in n for n in zipfile.ZipFile(path).namelist())
    with pytest.raises(ModelError, match="TorchScript"):
        load_model(path, "erase")


@pytest.mark.parametrize(("name", "content", "message"), [
    ("model.ckpt", b"x" * 10, "not a model file"),
    ("model.bin", b"x" * 10, "not a model file"),
    ("model.safetensors", b"", "empty"),
    ("model.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{broken", "not a readable .safetensors"),
    ("model.pth", b"not a torch file", "not a readable weights file"),
])
def test_unusable_files_get_one_sentence(tmp_path, name, content, message):
    from sd_studio.engine.restore.models import load_model

    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        load_model(path, "upscale")


def test_an_unknown_architecture_is_named_as_such(tmp_path):
    import torch
    from safetensors.torch import save_file

    from sd_studio.engine.restore.models import load_model

    path = tmp_path / "mystery.safetensors"
    save_file({"foo.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(ModelError, match="not a model architecture SD Studio can load"):
        load_model(path, "upscale")


def test_without_a_model_the_message_says_which_file_to_get_and_where(tmp_path):
    from sd_studio.engine.restore.models import models_folder, resolve_model

    for kind, name in (("upscale", "RealESRGAN_x4plus.pth"), ("faces", "GFPGANv1.4.pth"),
                       ("colorize", "ddcolor"), ("erase", "big-lama")):
        with pytest.raises(ModelError) as info:
            resolve_model(kind, None)
        text = str(info.value)
        assert name in text and str(models_folder(kind)) in text and text.count(".") >= 1
        assert "\n" not in text
    with pytest.raises(ModelError, match="There is no model file at"):
        resolve_model("upscale", str(tmp_path / "missing.safetensors"))


def test_a_file_in_the_models_folder_is_found_and_loaded_once(model_dir):
    import shutil

    from sd_studio.engine.restore.models import ModelSlot, find_model_files, models_folder

    folder = models_folder("upscale")
    folder.mkdir(parents=True)
    shutil.copy(_file(model_dir, "compact"), folder / "4x-compact.safetensors")
    assert [p.name for p in find_model_files("upscale")] == ["4x-compact.safetensors"]
    slot = ModelSlot()
    first = slot.get("upscale", None)
    assert slot.get("upscale", None) is first
    assert first.scale == 4


def test_spandrel_imports_without_torchvision_and_the_stand_in_does_not_leak():
    code = (
        "import sys\n"
        "from sd_studio.engine.restore.spandrel_import import import_spandrel, rotate, normalize\n"
        "spandrel = import_spandrel()\n"
        "import spandrel.architectures.LaMa.__arch.LaMa as lama\n"
        "import spandrel.architectures.RestoreFormer as rf\n"
        "assert not any(m == 'torchvision' or m.startswith('torchvision.') for m in sys.modules), 'leaked'\n"
        "assert lama.rotate is rotate and rf.tv_normalize is normalize\n"
        "import importlib.util\n"
        "assert importlib.util.find_spec('torchvision') is None\n"
        "from transformers.utils import is_torchvision_available\n"
        "assert not is_torchvision_available()\n"
        "print('ok')\n"
    )
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("a torchvision is installed here; the stand-in is not used")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ok"


def test_the_stand_in_rotate_and_normalize_behave_like_torchvisions():
    import torch

    from sd_studio.engine.restore.spandrel_import import InterpolationMode, normalize, rotate

    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    assert torch.equal(rotate(x, 90.0, InterpolationMode.NEAREST, fill=0), torch.rot90(x, 1, [2, 3]))
    assert torch.allclose(rotate(x, torch.tensor([90.0]), InterpolationMode.BILINEAR, fill=0), torch.rot90(x, 1, [2, 3]),
                          atol=1e-4)
    there_and_back = rotate(rotate(x, 30.0, InterpolationMode.BILINEAR), -30.0, InterpolationMode.BILINEAR)
    assert torch.allclose(there_and_back[..., 2:4, 2:4], x[..., 2:4, 2:4], atol=1.5)
    y = torch.ones(1, 3, 2, 2)
    assert torch.allclose(normalize(y, [0.5] * 3, [0.5] * 3), torch.ones(1, 3, 2, 2))
