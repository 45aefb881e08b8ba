"""open_image / save_image on well-formed files: colour modes, orientation, ICC, metadata, formats."""

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms, ImageOps

from sd_studio.document.io.images import open_image, save_image
from sd_studio.errors import FileError

ROOT = Path(__file__).resolve().parents[3]
ROCKET = ROOT / "tests" / "data" / "rocket.jpg"
SAMPLE = ROOT / "resources" / "sample.png"


def _pil(path) -> Image.Image:
    """Pillow's own reading of a file, loaded and closed."""
    with Image.open(path) as im:
        im.load()
        return im


def _noise(h, w, seed=0, alpha=True):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    if not alpha:
        pixels[..., 3] = 255
    pixels[pixels[..., 3] == 0] = 0
    return pixels


# -- real photos -------------------------------------------------------------------------------
def test_the_rocket_photo_opens_with_its_adobe_rgb_profile_converted():
    image = open_image(ROCKET)
    assert (image.width, image.height) == (640, 427)
    assert image.format == "JPEG" and image.mode == "RGB" and image.frames == 1
    assert image.icc_converted
    naive = np.asarray(_pil(ROCKET).convert("RGB"), dtype=np.int16)
    # Adobe RGB numbers shown as sRGB look dull; the conversion makes saturated colours stronger
    assert np.abs(image.pixels[..., :3].astype(np.int16) - naive).mean() > 2
    assert (image.pixels[..., 3] == 255).all()


def test_the_sample_png_opens_as_opaque_rgba():
    image = open_image(SAMPLE)
    assert (image.width, image.height, image.format, image.mode) == (512, 512, "PNG", "RGB")
    assert np.array_equal(image.pixels[..., :3], np.asarray(_pil(SAMPLE).convert("RGB")))
    assert image.parameters == {}  # Photoshop's "Comment" chunk is not generation metadata


# -- colour modes -------------------------------------------------------------------------------
def test_rgba_png_round_trip_is_exact(tmp_path):
    pixels = _noise(37, 53)
    save_image(tmp_path / "a.png", pixels)
    image = open_image(tmp_path / "a.png")
    assert image.mode == "RGBA"
    assert np.array_equal(image.pixels, pixels)


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 1000, 32896, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    image = open_image(tmp_path / "g16.png")
    assert image.mode == "I;16"
    assert image.pixels[0, :, 0].tolist() == [0, 1, 4, 128, 255]
    assert (image.pixels[..., 0] == image.pixels[..., 2]).all() and (image.pixels[..., 3] == 255).all()


def test_greyscale_with_alpha(tmp_path):
    grey = np.array([[10, 200], [90, 255]], np.uint8)
    alpha = np.array([[255, 128], [0, 1]], np.uint8)
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(tmp_path / "la.png")
    image = open_image(tmp_path / "la.png")
    assert image.mode == "LA"
    expected = np.dstack([grey, grey, grey, alpha])
    expected[alpha == 0] = 0
    assert np.array_equal(image.pixels, expected)


def test_palette_with_transparency_index(tmp_path):
    im = Image.new("P", (3, 1))
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    im.putdata([0, 1, 2])
    im.save(tmp_path / "p.png", transparency=1)
    image = open_image(tmp_path / "p.png")
    assert image.mode == "P"
    assert image.pixels[0].tolist() == [[255, 0, 0, 255], [0, 0, 0, 0], [0, 0, 255, 255]]


def test_palette_with_partial_alpha_trns(tmp_path):
    im = Image.new("P", (2, 1))
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.putdata([0, 1])
    im.save(tmp_path / "pa.png", transparency=bytes([100, 255]))
    image = open_image(tmp_path / "pa.png")
    assert image.pixels[0].tolist() == [[255, 0, 0, 100], [0, 0, 255, 255]]


def test_cmyk_jpeg_with_adobe_inverted_values(tmp_path):
    cmyk = np.zeros((16, 48, 4), np.uint8)
    cmyk[:, 16:32, 0] = 255  # pure cyan
    cmyk[:, 32:, 3] = 255  # pure black
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.jpg", quality=100)
    assert b"Adobe" in (tmp_path / "c.jpg").read_bytes()  # Pillow stores CMYK inverted, as Photoshop does
    image = open_image(tmp_path / "c.jpg")
    assert image.mode == "CMYK"
    rgb = image.pixels[8, [8, 24, 40], :3].astype(int)
    assert np.abs(rgb - [[255, 255, 255], [0, 255, 255], [0, 0, 0]]).max() <= 3


def test_bilevel_and_tiff_and_bmp_open(tmp_path):
    Image.new("1", (5, 4), 1).save(tmp_path / "b.bmp")
    Image.fromarray(_noise(6, 7)).save(tmp_path / "t.tif")
    assert (open_image(tmp_path / "b.bmp").pixels == 255).all()
    tiff = open_image(tmp_path / "t.tif")
    assert tiff.format == "TIFF" and np.array_equal(tiff.pixels, _noise(6, 7))


# -- orientation --------------------------------------------------------------------------------
def _quadrants(w=40, h=20):
    pixels = np.zeros((h, w, 3), np.uint8)
    pixels[:] = (0, 0, 255)
    pixels[: h // 2, : w // 2] = (255, 0, 0)
    return pixels


def test_exif_orientation_6_jpeg_opens_rotated_right(tmp_path):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    Image.fromarray(_quadrants()).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    image = open_image(tmp_path / "rot.jpg")
    assert (image.width, image.height) == (20, 40)
    # the red top-left quadrant of the stored 40x20 image ends at the top right when upright
    assert np.abs(image.pixels[5, 15, :3].astype(int) - [255, 0, 0]).max() < 40
    assert np.abs(image.pixels[5, 4, :3].astype(int) - [0, 0, 255]).max() < 40
    assert np.abs(image.pixels[30, 15, :3].astype(int) - [0, 0, 255]).max() < 40


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillows_transpose(tmp_path, orientation):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    stored = Image.fromarray(_noise(5, 9, alpha=False))
    stored.save(tmp_path / "o.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(_pil(tmp_path / "o.png")).convert("RGBA"))
    assert np.array_equal(open_image(tmp_path / "o.png").pixels, expected)


# -- ICC profiles -------------------------------------------------------------------------------
def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def linear_srgb_profile() -> bytes:
    """An ICC v2 RGB matrix/TRC profile: sRGB primaries with gamma 1.0 (linear light)."""
    def xyz(x, y, z):
        return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)

    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 0x0100) + b"\0\0"
    name = b"Linear sRGB test\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(name)) + name + b"\0" * 8 + b"\0\0\0" + b"\0" * 67
    desc += b"\0" * (-len(desc) % 4)
    tags = [
        (b"desc", desc), (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.4361, 0.2225, 0.0139)), (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
        (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve),
        (b"cprt", b"text\0\0\0\0public domain\0\0\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"\0\0\0\0" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
              + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def test_a_non_srgb_profile_is_converted_to_srgb(tmp_path):
    profile = linear_srgb_profile()
    ImageCms.ImageCmsProfile(io.BytesIO(profile))  # lcms accepts the hand-built profile
    grey = np.array([[[0, 0, 0], [64, 64, 64], [128, 128, 128], [255, 255, 255]]], np.uint8)
    Image.fromarray(grey).save(tmp_path / "linear.png", icc_profile=profile)
    image = open_image(tmp_path / "linear.png")
    assert image.icc_converted
    linear = grey[0, :, 0] / 255.0
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055) * 255
    assert np.abs(image.pixels[0, :, 0].astype(float) - srgb).max() <= 2  # 128 linear is 188 in sRGB


def test_an_srgb_profile_leaves_the_pixels_alone(tmp_path):
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    pixels = _noise(8, 8, alpha=False)
    Image.fromarray(pixels).save(tmp_path / "srgb.png", icc_profile=profile)
    image = open_image(tmp_path / "srgb.png")
    assert not image.icc_converted and np.array_equal(image.pixels, pixels)


def test_a_broken_profile_is_ignored(tmp_path):
    pixels = _noise(4, 4, alpha=False)
    Image.fromarray(pixels).save(tmp_path / "bad_icc.png", icc_profile=b"not a profile at all")
    image = open_image(tmp_path / "bad_icc.png")
    assert not image.icc_converted and np.array_equal(image.pixels, pixels)


def test_alpha_survives_the_profile_conversion(tmp_path):
    pixels = _noise(4, 6)
    Image.fromarray(pixels).save(tmp_path / "la.png", icc_profile=linear_srgb_profile())
    image = open_image(tmp_path / "la.png")
    assert image.icc_converted and np.array_equal(image.pixels[..., 3], pixels[..., 3])


# -- saving -------------------------------------------------------------------------------------
def test_jpeg_is_flattened_onto_the_background(tmp_path):
    pixels = np.zeros((16, 16, 4), np.uint8)
    pixels[:, :8] = (255, 0, 0, 128)  # half-transparent red over the background
    save_image(tmp_path / "f.jpg", pixels, background=(0, 0, 255), quality=100)
    image = open_image(tmp_path / "f.jpg")
    assert np.abs(image.pixels[8, 3, :3].astype(int) - [128, 0, 127]).max() <= 3
    assert np.abs(image.pixels[8, 12, :3].astype(int) - [0, 0, 255]).max() <= 3  # fully transparent
    assert (image.pixels[..., 3] == 255).all()


def test_jpeg_quality_changes_the_size(tmp_path):
    pixels = _noise(64, 64, alpha=False)
    save_image(tmp_path / "q30.jpg", pixels, quality=30)
    save_image(tmp_path / "q95.jpeg", pixels, quality=95)
    assert (tmp_path / "q30.jpg").stat().st_size < (tmp_path / "q95.jpeg").stat().st_size


def test_webp_at_quality_100_is_lossless_with_alpha(tmp_path):
    pixels = _noise(21, 33)
    save_image(tmp_path / "l.webp", pixels, quality=100)
    image = open_image(tmp_path / "l.webp")
    assert image.format == "WEBP" and np.array_equal(image.pixels, pixels)


def test_lossy_webp_keeps_alpha(tmp_path):
    pixels = np.zeros((32, 32, 4), np.uint8)
    pixels[:, :16] = (10, 200, 30, 255)
    save_image(tmp_path / "lossy.webp", pixels, quality=80)
    image = open_image(tmp_path / "lossy.webp")
    assert (image.pixels[:, :14, 3] == 255).all() and (image.pixels[:, 18:, 3] == 0).all()


def test_tiff_keeps_alpha_and_bmp_flattens(tmp_path):
    pixels = _noise(9, 11)
    save_image(tmp_path / "x.tiff", pixels)
    assert np.array_equal(open_image(tmp_path / "x.tiff").pixels, pixels)
    save_image(tmp_path / "x.bmp", pixels, background=(0, 0, 0))
    flat = open_image(tmp_path / "x.bmp").pixels
    expected = (pixels[..., :3].astype(int) * pixels[..., 3:4] + 127) // 255
    assert (flat[..., 3] == 255).all() and np.array_equal(flat[..., :3], expected)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_parameters_survive_a_round_trip(tmp_path, suffix):
    text = "ein Fuchs im Schnee, 雪\nNegative prompt: blur\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 3"
    save_image(tmp_path / f"p{suffix}", _noise(8, 8, alpha=False), parameters=text)
    assert open_image(tmp_path / f"p{suffix}").parameters == {"parameters": text}


def test_jpeg_parameters_are_a1111s_exif_user_comment(tmp_path):
    save_image(tmp_path / "uc.jpg", _noise(4, 4, alpha=False), parameters="hi")
    comment = _pil(tmp_path / "uc.jpg").getexif().get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment]
    assert comment == b"UNICODE\0" + "hi".encode("utf-16-be")


def test_little_endian_user_comments_from_other_tools_are_read(tmp_path):
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = b"UNICODE\0" + "a dog\nSteps: 1".encode("utf-16-le")
    Image.new("RGB", (4, 4)).save(tmp_path / "le.jpg", exif=exif)
    assert open_image(tmp_path / "le.jpg").parameters == {"parameters": "a dog\nSteps: 1"}


def test_png_text_chunks_of_comfyui_are_kept_raw(tmp_path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", '{"3": {"class_type": "KSampler", "inputs": {}}}')
    info.add_text("workflow", '{"nodes": []}')
    info.add_text("Software", "GIMP")  # not generation metadata
    Image.new("RGB", (2, 2)).save(tmp_path / "comfy.png", pnginfo=info)
    assert open_image(tmp_path / "comfy.png").parameters == {
        "prompt": '{"3": {"class_type": "KSampler", "inputs": {}}}', "workflow": '{"nodes": []}'}


def test_too_long_parameters_for_jpeg_are_refused_and_the_old_file_kept(tmp_path):
    target = tmp_path / "long.jpg"
    target.write_bytes(b"old")
    with pytest.raises(FileError, match="too long"):
        save_image(target, _noise(4, 4, alpha=False), parameters="x" * 40000)
    assert target.read_bytes() == b"old"


def test_an_icc_profile_can_be_embedded(tmp_path):
    profile = linear_srgb_profile()
    save_image(tmp_path / "icc.png", _noise(4, 4), icc_profile=profile)
    assert _pil(tmp_path / "icc.png").info["icc_profile"] == profile
    save_image(tmp_path / "plain.png", _noise(4, 4))
    assert "icc_profile" not in _pil(tmp_path / "plain.png").info


def test_format_argument_overrides_the_extension(tmp_path):
    save_image(tmp_path / "really_a_jpeg.png", _noise(8, 8, alpha=False), format="jpg")
    assert open_image(tmp_path / "really_a_jpeg.png").format == "JPEG"


@pytest.mark.parametrize("name", ["x.gif", "x.psd", "noextension"])
def test_unknown_extensions_are_refused(tmp_path, name):
    with pytest.raises(FileError, match=name):
        save_image(tmp_path / name, _noise(2, 2))
    assert not (tmp_path / name).exists()


def test_bad_pixels_and_quality_are_programming_errors(tmp_path):
    with pytest.raises(ValueError):
        save_image(tmp_path / "x.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError):
        save_image(tmp_path / "x.jpg", _noise(2, 2), quality=0)


def test_rgb_pixels_are_accepted(tmp_path):
    rgb = _noise(3, 5, alpha=False)[..., :3]
    save_image(tmp_path / "rgb.png", rgb)
    assert np.array_equal(open_image(tmp_path / "rgb.png").pixels[..., :3], rgb)


def test_saving_into_a_missing_folder_is_a_file_error(tmp_path):
    with pytest.raises(FileError, match="does not exist"):
        save_image(tmp_path / "missing" / "x.png", _noise(2, 2))


@pytest.mark.parametrize("mode", ["I;16B", "I;16", "I", "F"])
def test_wide_tiffs_are_scaled_to_8_bits(tmp_path, mode):
    wide = np.array([[0, 1000, 32896, 65535]], np.uint16)
    if mode == "F":
        im = Image.fromarray((wide / 65535).astype(np.float32))
    elif mode == "I":
        im = Image.fromarray(wide.astype(np.int32))
    else:
        im = Image.frombytes(mode, (4, 1), wide.astype(">u2" if mode == "I;16B" else "<u2").tobytes())
    im.save(tmp_path / "wide.tif")
    image = open_image(tmp_path / "wide.tif")
    assert image.mode == mode
    assert image.pixels[0, :, 0].tolist() == [0, 4, 128, 255]


def test_a1111_text_in_a_jpeg_comment_is_read_and_camera_comments_are_not(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "com.jpg", comment="a dog\nSteps: 5, Sampler: Euler, Seed: 1")
    assert open_image(tmp_path / "com.jpg").parameters == {"parameters": "a dog\nSteps: 5, Sampler: Euler, Seed: 1"}
    Image.new("RGB", (4, 4)).save(tmp_path / "cam.jpg", comment="Created with a camera")
    assert open_image(tmp_path / "cam.jpg").parameters == {}


def test_novelai_png_chunks_are_kept(tmp_path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "NovelAI")
    info.add_text("Description", "a knight")
    info.add_text("Comment", '{"prompt": "a knight", "steps": 28}')
    Image.new("RGB", (2, 2)).save(tmp_path / "nai.png", pnginfo=info)
    assert open_image(tmp_path / "nai.png").parameters == {
        "Description": "a knight", "Comment": '{"prompt": "a knight", "steps": 28}', "Software": "NovelAI"}
