"""Restoration operations on real photos (scikit-image's public-domain ones) with tiny random models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import restore_models

from sd_studio.errors import Cancelled, GenerationError


@pytest.fixture(scope="module")
def restore_dir(tmp_path_factory) -> Path:
    """A folder the module's tiny restoration models are written into, each on first use."""
    return tmp_path_factory.mktemp("restore-ops")


def _model(restore_dir: Path, family: str, kind: str):
    from sd_studio.engine.restore.models import load_model
    from sd_studio.engine.restore.spandrel_import import extra_arches_installed

    if restore_models.FAMILIES[family][1] and not extra_arches_installed():
        pytest.skip("spandrel-extra-arches is not installed (make test installs it)")
    path = restore_dir / f"{family}.safetensors"
    if not path.exists():
        restore_models.save(family, restore_dir)
    return load_model(path, kind, device="cpu")


@pytest.fixture(scope="module")
def models():
    """One diffusion model cache for the module."""
    from sd_studio.engine.models.loading import ModelCache

    return ModelCache()


def _photo(name: str = "chelsea", size: tuple[int, int] | None = None) -> np.ndarray:
    import cv2
    import skimage.data

    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.dstack([image] * 3)
    if size is not None:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image[..., :3])


# -- upscale -----------------------------------------------------------------------------------------------
def test_lanczos_upscale_without_a_model_doubles_the_size_and_records_it():
    from sd_studio.engine.restore.upscale import UpscaleSettings, upscale

    image = _photo(size=(120, 90))
    result = upscale(image, UpscaleSettings(factor=2))
    assert result.canvas == (240, 180) and result.image.shape == (180, 240, 4) and result.scale == 2
    assert "Postprocess upscaler: Lanczos" in result.parameters_text()
    assert (result.image[..., 3] == 255).all()


@pytest.mark.parametrize(("family", "factor"), [("esrgan", 4), ("compact", 2), ("swinir", 2), ("hat", 4), ("dat", 2)])
def test_an_upscaler_model_runs_in_tiles_to_exactly_the_factor_asked(restore_dir, family, factor):
    from sd_studio.engine.restore.upscale import UpscaleSettings, upscale

    model = _model(restore_dir, family, "upscale")
    image = _photo(size=(70, 50))
    reports = []
    result = upscale(image, UpscaleSettings(factor=factor, tile=32, padding=4), model=model, progress=reports.append)
    assert result.image.shape == (50 * factor, 70 * factor, 4)
    assert result.parameters["model"] == family and result.parameters["Postprocess upscale by"] == factor
    assert [r.phase for r in reports].count("upscaling") >= 4  # one report per tile


def test_a_cancelled_upscale_raises_between_tiles(restore_dir):
    from sd_studio.engine.restore.upscale import UpscaleSettings, upscale

    model = _model(restore_dir, "compact", "upscale")
    reports = []
    with pytest.raises(Cancelled):
        upscale(_photo(size=(100, 100)), UpscaleSettings(factor=4, tile=32, padding=4), model=model,
                progress=reports.append, cancel=lambda: len(reports) >= 2)
    assert len(reports) == 2


def test_upscale_settings_out_of_range_are_refused():
    from sd_studio.engine.restore.refine import RefineSettings
    from sd_studio.engine.restore.upscale import UpscaleSettings, upscale

    with pytest.raises(GenerationError, match="factor"):
        upscale(_photo(size=(20, 20)), UpscaleSettings(factor=5))
    with pytest.raises(GenerationError, match="Detail strength"):
        upscale(_photo(size=(20, 20)), UpscaleSettings(factor=2, refine=RefineSettings(model="x", strength=0.9)))


def test_upscale_with_detail_refines_each_tile_with_diffusion(tiny_sd_dir, models):
    from sd_studio.engine.restore.refine import RefineSettings
    from sd_studio.engine.restore.upscale import UpscaleSettings, upscale

    refine = RefineSettings(model=str(tiny_sd_dir), prompt="old photo", strength=0.3, steps=2, tile=64, padding=8,
                            device="cpu")
    reports = []
    result = upscale(_photo(size=(60, 45)), UpscaleSettings(factor=2, refine=refine), progress=reports.append,
                     diffusion_models=models)
    assert result.image.shape == (90, 120, 4)
    refining = [r for r in reports if r.phase == "refining"]
    assert len(refining) == refining[0].total == 6  # 120 x 90 in 48-px cores: 3 x 2 tiles
    assert result.parameters["denoising_strength"] == 0.3 and result.parameters["Tile size"] == 64


# -- faces -------------------------------------------------------------------------------------------------
def test_faces_are_found_on_a_real_photo():
    from sd_studio.engine.restore.faces import find_faces

    faces = find_faces(_photo("astronaut"))
    assert len(faces) == 1
    face = faces[0]
    assert 150 < face.x + face.width / 2 < 260 and 60 < face.y + face.height / 2 < 170
    assert find_faces(_photo("rocket")) == []
    assert len(find_faces(_photo("astronaut")[..., :1].repeat(3, axis=2))) >= 1  # black and white too


@pytest.mark.parametrize("family", ["gfpgan", "restoreformer", "codeformer"])
def test_faces_are_restored_inside_a_feathered_ellipse_and_nothing_else_changes(restore_dir, family):
    from sd_studio.engine.restore.faces import restore_faces

    model = _model(restore_dir, family, "faces")
    image = _photo("astronaut")
    result = restore_faces(image, model, strength=1.0)
    assert result.parameters["Faces"] == 1
    out = result.composite_onto(image)
    changed = np.any(out[..., :3] != image, axis=2)
    assert changed.any()
    outside = np.ones(changed.shape, bool)
    outside[result.region.slices] = False
    assert not changed[outside].any()
    alpha = result.image[..., 3]
    assert alpha.max() == 255 and 0 < np.count_nonzero((alpha > 0) & (alpha < 255))  # a soft edge


def test_face_strength_zero_changes_nothing(restore_dir):
    from sd_studio.engine.restore.faces import restore_faces

    model = _model(restore_dir, "restoreformer", "faces")
    image = _photo("astronaut")
    result = restore_faces(image, model, strength=0.0)
    assert np.array_equal(result.composite_onto(image)[..., :3], image)


def test_a_photo_without_faces_comes_back_unchanged(restore_dir):
    from sd_studio.engine.restore.faces import restore_faces

    model = _model(restore_dir, "restoreformer", "faces")
    image = _photo("rocket")
    result = restore_faces(image, model)
    assert result.parameters["Faces"] == 0
    assert np.array_equal(result.composite_onto(image)[..., :3], image)


# -- colour ------------------------------------------------------------------------------------------------
def test_colorize_keeps_the_scan_s_own_lightness(restore_dir):
    import cv2

    from sd_studio.engine.restore.colorize import colorize

    model = _model(restore_dir, "ddcolor", "colorize")
    grey = _photo("camera", size=(96, 80))
    result = colorize(grey, model)
    out = result.composite_onto(grey)[..., :3]
    assert out.shape == grey.shape
    lightness = cv2.cvtColor(out, cv2.COLOR_RGB2LAB)[..., 0].astype(int)
    original = cv2.cvtColor(grey, cv2.COLOR_RGB2LAB)[..., 0].astype(int)
    # A random model's colours may leave the gamut, so L is not kept exactly; the scan's detail is.
    assert np.corrcoef(lightness.ravel(), original.ravel())[0, 1] > 0.95


def test_colorize_refuses_another_kind_of_model(restore_dir):
    from sd_studio.engine.restore.colorize import colorize

    with pytest.raises(GenerationError, match="not a colourisation model"):
        colorize(_photo(size=(32, 32)), _model(restore_dir, "compact", "upscale"))


# -- erasers, heal -----------------------------------------------------------------------------------------
def _scratched(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    damaged = image.copy()
    cv2.line(damaged, (10, 20), (200, 150), (250, 250, 250), 2)
    cv2.line(damaged, (300, 10), (260, 280), (15, 15, 15), 1)
    truth = np.any(damaged != image, axis=2).astype(np.uint8) * 255
    return damaged, truth


def test_lama_erases_inside_the_mask_only(restore_dir):
    from sd_studio.engine.restore.heal import HealSettings, heal

    eraser = _model(restore_dir, "lama", "erase")
    image, mask = _scratched(_photo(size=(320, 300)))
    result = heal(image, mask, HealSettings(engine="lama"), eraser=eraser)
    out = result.composite_onto(image)[..., :3]
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert result.parameters["Architecture"] == "LaMa"


def test_mat_erases_inside_the_mask_only(restore_dir):
    from sd_studio.engine.restore.erase import erase

    eraser = _model(restore_dir, "mat", "erase")
    image, mask = _scratched(_photo(size=(320, 300)))
    patch, region = erase(image, mask, eraser)
    from sd_studio.engine.restore.result import RestoreResult

    out = RestoreResult(patch, region, canvas=(320, 300)).composite_onto(image)[..., :3]
    assert np.array_equal(out[mask == 0], image[mask == 0])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-9))


def test_classical_restore_finds_and_heals_scratches_keeping_every_other_pixel():
    import cv2

    from sd_studio.engine.restore.heal import restore_photo

    clean = cv2.resize(_photo("chelsea"), (900, 600), interpolation=cv2.INTER_CUBIC)
    damaged, _ = _scratched(clean)
    result = restore_photo(damaged, 0.5)
    out = result.composite_onto(damaged)[..., :3]
    assert np.array_equal(out[result.mask == 0][:0], damaged[result.mask == 0][:0])
    grown = result.image[..., 3] > 0
    untouched = np.ones(damaged.shape[:2], bool)
    untouched[result.region.slices] &= ~grown
    assert np.array_equal(out[untouched], damaged[untouched])
    assert _psnr(out, clean) > _psnr(damaged, clean) + 3


def test_diffusion_heal_works_region_by_region(tiny_sd_dir, models):
    from sd_studio.engine.restore.heal import HealSettings, heal

    image = _photo(size=(160, 120))
    mask = np.zeros((120, 160), np.uint8)
    mask[10:20, 10:30] = 255
    mask[90:110, 120:150] = 255
    result = heal(image, mask, HealSettings(engine="diffusion", model=str(tiny_sd_dir), steps=2, seed=3,
                                            device="cpu"), models=models)
    out = result.composite_onto(image)[..., :3]
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert not np.array_equal(out[mask > 0], image[mask > 0])


def test_unknown_heal_engines_and_missing_models_get_one_sentence():
    from sd_studio.engine.restore.heal import HealSettings, heal

    mask = np.zeros((32, 32), np.uint8)
    mask[4:8, 4:8] = 255
    with pytest.raises(GenerationError, match="Unknown engine"):
        heal(_photo(size=(32, 32)), mask, HealSettings(engine="magic"))
    with pytest.raises(GenerationError, match="needs an eraser"):
        heal(_photo(size=(32, 32)), mask, HealSettings(engine="lama"))
    with pytest.raises(GenerationError, match="needs a model"):
        heal(_photo(size=(32, 32)), mask, HealSettings(engine="diffusion"))


# -- expand, large regions ---------------------------------------------------------------------------------
@pytest.mark.parametrize("prefill", ["stretch", "blur", "navier-stokes"])
def test_expand_grows_the_canvas_and_keeps_the_photo_bit_exact(prefill):
    from sd_studio.engine.restore.expand import ExpandSettings, Margins, expand

    image = _photo(size=(200, 150))
    result = expand(image, ExpandSettings(Margins(left=30, top=0, right=50, bottom=20), prefill=prefill))
    out = result.composite_onto(image)
    assert out.shape == (170, 280, 4) and result.canvas == (280, 170)
    assert np.array_equal(out[0:150, 30:230, :3], image)
    assert (out[..., 3] == 255).all()
    assert result.mask[0:150, 30:230].max() == 0 and result.mask[160:, :].min() == 255


def test_expand_settings_are_checked():
    from sd_studio.engine.restore.expand import ExpandSettings, Margins, expand

    with pytest.raises(GenerationError, match="Nothing to expand"):
        expand(_photo(size=(20, 20)), ExpandSettings(Margins()))
    with pytest.raises(GenerationError, match="negative"):
        expand(_photo(size=(20, 20)), ExpandSettings(Margins(left=-3)))


@pytest.mark.parametrize("band", [0, 6])
def test_expand_with_diffusion_keeps_the_photo_beyond_the_blend_band(tiny_sd_dir, models, band):
    from sd_studio.engine.restore.expand import ExpandSettings, Margins, expand

    image = _photo(size=(64, 64))
    reports = []
    result = expand(image, ExpandSettings(Margins(40, 40, 40, 40), band=band, model=str(tiny_sd_dir), steps=2, seed=5,
                                          device="cpu"), models=models, progress=reports.append)
    out = result.composite_onto(image)
    inner = image[band:64 - band, band:64 - band]
    assert np.array_equal(out[40 + band:104 - band, 40 + band:104 - band, :3], inner)
    assert result.canvas == (144, 144)
    # 144 px is more than 1.5 x the tiny model's 64 px: generated at 64, enlarged, refined in tiles.
    assert any(r.phase == "refining" for r in reports)
    assert result.parameters["Refine strength"] == 0.3
