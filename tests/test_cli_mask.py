"""`sd-studio mask` end to end, in-process, on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mask_testing import disc_photo, save_tiny_sam
from PIL import Image

from sd_studio.cli import main


@pytest.fixture(scope="module")
def sam_dir(tmp_path_factory):
    """A tiny SAM saved as a transformers folder."""
    return save_tiny_sam(tmp_path_factory.mktemp("sam") / "tiny-sam")


@pytest.fixture
def disc(tmp_path):
    """A 400 x 300 photo of a red disc (centre 210,150, radius 80) on a textured background, and its truth."""
    image, truth = disc_photo(400, 300, (210, 150), 80)
    path = tmp_path / "disc.png"
    Image.fromarray(image, "RGB").save(path)
    return path, truth


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "L"
        return np.asarray(im)


def _iou(a, b) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_a_box_without_a_model_uses_grabcut_and_says_so(disc, tmp_path, capsys):
    path, truth = disc
    out = tmp_path / "mask.png"
    assert main(["mask", str(path), "--box", "110,50,310,250", "-o", str(out)]) == 0
    mask = _read(out)
    assert mask.shape == (300, 400) and set(np.unique(mask)) <= {0, 255}
    assert _iou(mask > 127, truth) >= 0.9
    err = capsys.readouterr().err
    assert "GrabCut" in err and str(out) in err


def test_percentages_mean_the_same_place_in_every_photo(disc, tmp_path):
    path, _ = disc
    in_pixels, in_percent = tmp_path / "a.png", tmp_path / "b.png"
    assert main(["mask", str(path), "--box", "100,60,300,240", "-o", str(in_pixels), "--quiet"]) == 0
    assert main(["mask", str(path), "--box", "25%,20%,75%,80%", "-o", str(in_percent), "--quiet"]) == 0
    assert np.array_equal(_read(in_pixels), _read(in_percent))


def test_points_without_a_model_are_refused_in_one_line(disc, tmp_path, capsys):
    path, _ = disc
    out = tmp_path / "mask.png"
    assert main(["mask", str(path), "--point", "210,150", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sd-studio: error: ")
    assert "--box" in err[0] and "GrabCut" in err[0] and "--model" in err[0]
    assert not out.exists()


def test_points_with_a_model_write_a_mask_and_outside_points_name_the_photo(disc, sam_dir, tmp_path, capsys):
    path, _ = disc
    out = tmp_path / "mask.png"
    args = ["mask", str(path), "--point", "210,150", "--negative-point", "20,20", "--model", str(sam_dir), "-o", str(out)]
    assert main(args + ["--quiet"]) == 0
    assert _read(out).shape == (300, 400)
    capsys.readouterr()
    assert main(["mask", str(path), "--point", "400,10", "--model", str(sam_dir), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"sd-studio: error: {path}: the point 400,10 lies outside the 400 x 300 photo."


def test_a_model_in_the_models_folder_is_found_on_its_own(disc, sam_dir, tmp_path, capsys):
    import shutil

    from sd_studio.cli_generate import default_models_folder

    folder = default_models_folder()
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(sam_dir, folder / "tiny-sam")
    path, _ = disc
    assert main(["mask", str(path), "--point", "50%,50%", "-o", str(tmp_path / "m.png")]) == 0
    assert "tiny-sam" in capsys.readouterr().err
    assert main(["mask", str(path), "--point", "50%,50%", "--grabcut", "-o", str(tmp_path / "m.png")]) == 2


def test_several_photos_fill_a_folder_and_subject_and_background_are_complements(disc, tmp_path):
    path, truth = disc
    other = tmp_path / "second.jpg"
    Image.open(path).convert("RGB").save(other, quality=95)
    folder = tmp_path / "masks"
    assert main(["mask", str(path), str(other), "--subject", "-o", str(folder), "--quiet"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["disc.png", "second.png"]
    subject = _read(folder / "disc.png")
    assert _iou(subject > 127, truth) >= 0.9
    assert main(["mask", str(path), "--background", "-o", str(tmp_path / "bg.png"), "--quiet"]) == 0
    assert np.array_equal(_read(tmp_path / "bg.png"), 255 - subject)


def test_grow_feather_and_invert(disc, tmp_path):
    path, _ = disc
    plain, grown = tmp_path / "p.png", tmp_path / "g.png"
    base = ["mask", str(path), "--box", "110,50,310,250", "--quiet"]
    assert main(base + ["-o", str(plain)]) == 0
    assert main(base + ["-o", str(grown), "--grow", "6", "--feather", "3", "--invert"]) == 0
    p, g = _read(plain) > 127, 255 - _read(grown)
    assert (g > 0).sum() > p.sum()  # grown before inverting
    assert len(np.unique(g)) > 2  # feathered: greys along the edge


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--subject", "--box", "1,1,5,5"], "leave out"),
        ([], "Say what to select"),
        (["--box", "1,1,5,5", "-o", "x.jpg"], "lossless"),
        (["--box", "1,2,3"], "expected X0,Y0,X1,Y1"),
        (["--point", "a,b"], "pixels or a percentage"),
        (["--box", "500,400,600,500"], "holds no part"),
    ],
)
def test_bad_requests_get_one_line(disc, tmp_path, capsys, monkeypatch, extra, fragment):
    monkeypatch.chdir(tmp_path)
    path, _ = disc
    args = ["mask", str(path), *extra]
    if "-o" not in extra:
        args += ["-o", "m.png"]
    try:
        status = main(args)
    except SystemExit as exit_:
        status = exit_.code
    assert status == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("sd-studio: note: ")]
    assert len(err) == 1 and err[0].startswith("sd-studio: error: ") and fragment in err[0], err


def test_a_missing_photo_does_not_stop_the_batch(disc, tmp_path, capsys):
    path, _ = disc
    folder = tmp_path / "out"
    status = main(["mask", str(tmp_path / "gone.png"), str(path), "--subject", "-o", str(folder), "--quiet"])
    assert status == 2
    assert (folder / "disc.png").exists() and not (folder / "gone.png").exists()
    assert "gone.png: there is no such file." in capsys.readouterr().err
