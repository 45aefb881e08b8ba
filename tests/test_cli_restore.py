"""The restoration subcommands end to end, in-process, on real files: one photo, albums, failures, resuming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from restore_support import damage_synth, restore_models

from sd_studio.cli import main


@pytest.fixture
def album(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    """A folder of three scratched scans (PNG and JPEG) and the clean originals."""
    folder = tmp_path / "album"
    folder.mkdir()
    clean = {}
    for i, name in enumerate(("chelsea", "coffee", "astronaut")):
        photo = damage_synth.scan_of(name, scale=1)[:256, :320]
        damaged, _, _ = damage_synth.damage(photo, seed=i, lines=4, curves=1, dust=30)
        suffix = ".jpg" if name == "coffee" else ".png"
        Image.fromarray(damaged).save(folder / f"{name}{suffix}", quality=98)
        clean[name] = photo
    (folder / "notes.txt").write_text("not a photo")
    return folder, clean


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_find_damage_writes_a_white_on_black_mask(album, capsys):
    folder, _ = album
    out = folder.parent / "mask.png"
    assert main(["find-damage", str(folder / "chelsea.png"), "-o", str(out), "--sensitivity", "0.6"]) == 0
    mask = _read(out)[..., 0]
    assert mask.shape == (256, 320)
    assert set(np.unique(mask)) <= {0, 255} and 0 < (mask > 0).mean() < 0.2
    assert "1/1" in capsys.readouterr().err


def test_restore_keeps_every_pixel_outside_the_mask_and_records_its_settings(album):
    folder, _ = album
    source = folder / "chelsea.png"
    out = folder.parent / "restored.png"
    assert main(["restore", str(source), "-o", str(out), "--quiet"]) == 0
    assert main(["find-damage", str(source), "-o", str(folder.parent / "m.png"), "--quiet"]) == 0
    import cv2

    grown = cv2.dilate(_read(folder.parent / "m.png")[..., 0], np.ones((3, 3), np.uint8))
    before, after = _read(source), _read(out)
    assert np.array_equal(after[grown == 0], before[grown == 0])
    assert not np.array_equal(after[grown > 0], before[grown > 0])
    assert "Heal engine: classical" in Image.open(out).info["parameters"]


def test_an_album_is_restored_into_a_folder_skipping_what_is_done(album, capsys):
    folder, _ = album
    out = folder.parent / "restored"
    assert main(["restore", str(folder), "-o", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["astronaut.png", "chelsea.png", "coffee.jpg"]
    err = capsys.readouterr().err
    assert "3/3" in err and "3 written" in err
    stamp = (out / "chelsea.png").stat().st_mtime_ns
    (out / "coffee.jpg").unlink()
    assert main(["restore", str(folder), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "2 of 3 results already there" in err and "1/1" in err
    assert (out / "coffee.jpg").exists() and (out / "chelsea.png").stat().st_mtime_ns == stamp


def test_a_failing_photo_is_reported_and_the_rest_are_done(album, capsys):
    folder, _ = album
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = folder.parent / "out"
    status = main(["find-damage", str(folder), "-o", str(out), "--quiet"])
    assert status == 2
    err = capsys.readouterr().err
    assert "sd-studio: warning:" in err and "broken.png" in err
    assert "1 of 4 photos failed" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.png", "chelsea.png", "coffee.png"]


def test_several_photos_need_a_folder_and_missing_inputs_are_named(album, capsys):
    folder, _ = album
    a, b = str(folder / "chelsea.png"), str(folder / "astronaut.png")
    (folder.parent / "taken.png").write_bytes(b"x")
    assert main(["find-damage", a, b, "-o", str(folder.parent / "taken.png")]) == 2
    assert "must name a folder" in capsys.readouterr().err
    assert main(["find-damage", str(folder / "nope.png"), "-o", str(folder.parent / "x.png")]) == 2
    assert "nope.png does not exist" in capsys.readouterr().err
    assert main(["find-damage", a, "-o", str(folder.parent / "x.psd")]) == 2
    assert "cannot tell the image format" in capsys.readouterr().err
    assert main(["find-damage", a, "-o", str(folder.parent / "x.png"), "--sensitivity", "3"]) == 2
    assert "sensitivity must be from 0 to 1" in capsys.readouterr().err


def test_upscale_without_a_model_uses_lanczos_and_says_so(album, capsys):
    folder, _ = album
    out = folder.parent / "big.png"
    assert main(["upscale", str(folder / "chelsea.png"), "-o", str(out), "--factor", "3"]) == 0
    assert Image.open(out).size == (960, 768)
    assert "Lanczos" in capsys.readouterr().err
    assert "Postprocess upscaler: Lanczos" in Image.open(out).info["parameters"]


def test_upscale_an_album_with_a_model_loaded_once(album, tmp_path, monkeypatch):
    from sd_studio.engine.restore import models

    folder, _ = album
    path = restore_models.save("compact", tmp_path)
    loads = []
    original = models.load_model
    monkeypatch.setattr(models, "load_model", lambda *a, **k: loads.append(a) or original(*a, **k))
    out = tmp_path / "big"
    assert main(["upscale", str(folder), "-o", str(out), "--model", str(path), "--factor", "2", "--quiet"]) == 0
    assert len(loads) == 1
    assert {p.name: Image.open(p).size for p in out.iterdir()} == {
        "astronaut.png": (640, 512), "chelsea.png": (640, 512), "coffee.jpg": (640, 512)}


def test_expand_grows_the_canvas_with_the_photo_in_place(album):
    folder, _ = album
    out = folder.parent / "wide.png"
    assert main(["expand", str(folder / "chelsea.png"), "-o", str(out), "--left", "40", "--right", "24",
                 "--prefill", "navier-stokes", "--quiet"]) == 0
    result = _read(out)
    assert result.shape == (256, 384, 3)
    assert np.array_equal(result[:, 40:360], _read(folder / "chelsea.png"))
    assert main(["expand", str(folder / "chelsea.png"), "-o", str(out), "--overwrite", "--quiet"]) == 2


def test_faces_and_colorize_without_a_model_say_which_file_to_get(album, capsys):
    folder, _ = album
    for command, file in (("faces", "GFPGANv1.4.pth"), ("colorize", "ddcolor_modelscope.pth")):
        assert main([command, str(folder / "chelsea.png"), "-o", str(folder.parent / "x.png")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("sd-studio: error: ") and file in err and err.count("\n") == 1


def test_faces_with_a_model_file(tmp_path):
    path = restore_models.save("restoreformer", tmp_path)
    photo = tmp_path / "astronaut.png"
    Image.fromarray(damage_synth.scan_of("astronaut", scale=1)).save(photo)
    out = tmp_path / "faces.png"
    assert main(["faces", str(photo), "-o", str(out), "--model", str(path), "--strength", "0.5", "--quiet"]) == 0
    assert "Faces: 1" in Image.open(out).info["parameters"]


def test_a_pickled_model_is_refused_in_one_line(album, tmp_path, capsys):
    folder, _ = album
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(b"whatever")
    assert main(["upscale", str(folder / "chelsea.png"), "-o", str(tmp_path / "x.png"), "--model", str(evil)]) == 2
    err = capsys.readouterr().err
    assert "evil.ckpt is not a model file" in err and err.count("\n") == 1
