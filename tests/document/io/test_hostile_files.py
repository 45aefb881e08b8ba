"""A corpus of odd and hostile files, built here: each opens right or is refused with FileError,
and `sd-studio info` answers with one error line and exit status 2, never a traceback."""

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sd_studio.cli import main
from sd_studio.document.io.images import open_image
from sd_studio.errors import FileError

ROOT = Path(__file__).resolve().parents[3]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, depth: int, colour_type: int, raw: bytes | None = None) -> bytes:
    """A PNG written byte by byte; without raw data its IDAT holds one scanline's worth of zeros,
    so the header (which may declare any size) is valid and the pixel data is short."""
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0))
    body = _chunk(b"IDAT", zlib.compress(raw if raw is not None else bytes(64))) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + ihdr + body


def _noise_image(size=(64, 48)) -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _saved(tmp_path, name, fmt, **options) -> Path:
    path = tmp_path / name
    _noise_image().save(path, fmt, **options)
    return path


# -- refused ----------------------------------------------------------------------------------
def _empty(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    return tmp_path / "empty.png", "empty"


def _truncated_png(tmp_path):
    data = _saved(tmp_path, "full.png", "PNG").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    return tmp_path / "truncated.png", "damaged or incomplete"


def _truncated_jpeg(tmp_path):
    data = _saved(tmp_path, "full.jpg", "JPEG", quality=95).read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    return tmp_path / "truncated.jpg", "damaged or incomplete"


def _text_as_png(tmp_path):
    (tmp_path / "notes.png").write_text("these are my notes, not a picture\n")
    return tmp_path / "notes.png", "not an image in a supported format"


def _random_as_webp(tmp_path):
    (tmp_path / "noise.webp").write_bytes(np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return tmp_path / "noise.webp", "not an image in a supported format"


def _bomb(tmp_path):
    (tmp_path / "bomb.png").write_bytes(png_bytes(60000, 60000, 8, 6))
    return tmp_path / "bomb.png", "declares 60000 x 60000 pixels, more than the limit of"


def _folder(tmp_path):
    (tmp_path / "folder.png").mkdir()
    return tmp_path / "folder.png", "folder"


def _missing(tmp_path):
    return tmp_path / "missing.png", "no such file"


def _other_format(tmp_path):
    _noise_image().save(tmp_path / "picture.ppm")
    os.rename(tmp_path / "picture.ppm", tmp_path / "picture.jpg")
    return tmp_path / "picture.jpg", "PPM"


def _corrupt_header(tmp_path):
    (tmp_path / "header.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0\0\0\x0dIHDR" + b"\xff" * 20)
    return tmp_path / "header.png", "damaged"


def _bad_crc(tmp_path):
    data = bytearray(png_bytes(4, 4, 8, 2, b"".join(b"\0" + bytes(12) for _ in range(4))))
    data[-20] ^= 0xFF  # inside IDAT: the chunk's CRC no longer matches
    (tmp_path / "crc.png").write_bytes(bytes(data))
    return tmp_path / "crc.png", "damaged"


def _pipe(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this system")
    os.mkfifo(tmp_path / "pipe.png")
    return tmp_path / "pipe.png", "not a regular file"


def _device(tmp_path):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero on this system")
    return Path("/dev/zero"), "not a regular file"


REFUSED = [_pipe, _device, _empty, _truncated_png, _truncated_jpeg, _text_as_png, _random_as_webp, _bomb, _folder,
           _missing, _other_format, _corrupt_header, _bad_crc]


@pytest.mark.parametrize("make", REFUSED, ids=lambda f: f.__name__.strip("_"))
def test_refused_with_a_clear_file_error(tmp_path, make):
    path, reason = make(tmp_path)
    with pytest.raises(FileError) as caught:
        open_image(path)
    message = str(caught.value)
    assert message.startswith(str(path) + ": ")
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize("make", REFUSED, ids=lambda f: f.__name__.strip("_"))
def test_info_prints_one_error_line_and_exits_2(tmp_path, make, capsys):
    path, reason = make(tmp_path)
    assert main(["info", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"sd-studio: error: {path}: ")
    assert reason in err and err.count("\n") == 1 and "Traceback" not in err


def test_the_bomb_is_refused_before_decoding_even_with_a_higher_limit(tmp_path):
    # A caller may allow more than Pillow's own limit: the header passes, and the missing pixel
    # data is then reported as damage (not as Pillow's DecompressionBombError).
    # 18000 x 10000 is more than twice Pillow's default limit, where Image.open itself refuses.
    (tmp_path / "tall.png").write_bytes(png_bytes(18000, 10000, 8, 0))
    with pytest.raises(FileError, match="damaged or incomplete"):
        open_image(tmp_path / "tall.png", max_pixels=10**9)
    with pytest.raises(FileError, match="declares 18000 x 10000 pixels, more than the limit of 1,000"):
        open_image(tmp_path / "tall.png", max_pixels=1000)


def test_a_small_limit_refuses_a_real_image(tmp_path):
    path = _saved(tmp_path, "ok.png", "PNG")
    with pytest.raises(FileError, match="declares 64 x 48 pixels, more than the limit of 3,000"):
        open_image(path, max_pixels=3000)
    assert open_image(path, max_pixels=3072).width == 64


def test_an_unreadable_file(tmp_path):
    path = _saved(tmp_path, "secret.png", "PNG")
    os.chmod(path, 0)
    try:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # root reads anything: the file must then simply open
            assert open_image(path).width == 64
        else:
            with pytest.raises(FileError, match="permission denied"):
                open_image(path)
    finally:
        os.chmod(path, 0o644)


def test_a_real_subprocess_prints_no_traceback(tmp_path):
    path, _ = _truncated_png(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "sd_studio", "info", str(path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"sd-studio: error: {path}: the PNG data is damaged or incomplete")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


# -- unusual, opened right --------------------------------------------------------------------
def test_jpeg_named_png_opens_by_content(tmp_path):
    _noise_image().save(tmp_path / "photo.png", "JPEG")
    image = open_image(tmp_path / "photo.png")
    assert image.format == "JPEG" and (image.width, image.height) == (64, 48)


def test_animated_gif_gives_the_first_frame_and_the_count(tmp_path):
    frames = [Image.new("RGB", (8, 6), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = open_image(tmp_path / "anim.gif")
    assert image.format == "GIF" and image.frames == 3
    assert (image.pixels == [255, 0, 0, 255]).all()


def test_gif_with_transparency(tmp_path):
    im = Image.new("P", (4, 1))
    im.putpalette([0, 0, 0, 255, 255, 0] + [0] * 762)
    im.putdata([0, 1, 1, 0])
    im.save(tmp_path / "t.gif", transparency=0)
    image = open_image(tmp_path / "t.gif")
    assert image.pixels[0].tolist() == [[0, 0, 0, 0], [255, 255, 0, 255], [255, 255, 0, 255], [0, 0, 0, 0]]


@pytest.mark.parametrize("colour_type, channels, mode", [(2, 3, "RGB;16"), (6, 4, "RGBA;16"), (0, 1, "I;16")])
def test_sixteen_bit_pngs_written_by_hand_are_scaled(tmp_path, colour_type, channels, mode):
    values = np.array([0, 300, 32896, 65535], np.uint16)
    row = np.repeat(values[:, None], channels, axis=1).astype(">u2").tobytes()
    (tmp_path / "wide.png").write_bytes(png_bytes(4, 1, 16, colour_type, b"\0" + row))
    image = open_image(tmp_path / "wide.png")
    assert image.mode == mode
    assert image.pixels[0, :, 1].tolist()[1:] == [1, 128, 255]  # 300/65535 is 1/255, not clipped to 255


def test_exif_with_garbage_still_opens(tmp_path):
    _noise_image().save(tmp_path / "badexif.jpg", exif=b"Exif\0\0II*\0" + b"\xff" * 40)
    assert open_image(tmp_path / "badexif.jpg").width == 64


def test_a_png_with_data_after_iend_opens(tmp_path):
    data = _saved(tmp_path, "trailing.png", "PNG").read_bytes() + b"trailing junk" * 10
    (tmp_path / "trailing.png").write_bytes(data)
    assert open_image(tmp_path / "trailing.png").height == 48


def test_a_huge_text_chunk_is_refused(tmp_path):
    # zTXt that inflates far beyond Pillow's text limit: a metadata bomb, refused as damage
    text = _chunk(b"zTXt", b"parameters\0\0" + zlib.compress(b"a" * (4 << 20)))
    raw = b"".join(b"\0" + bytes(12) for _ in range(4))
    header = png_bytes(4, 4, 8, 2)[:33]
    data = header + text + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")
    (tmp_path / "ztxt.png").write_bytes(data)
    with pytest.raises(FileError):
        open_image(tmp_path / "ztxt.png")
