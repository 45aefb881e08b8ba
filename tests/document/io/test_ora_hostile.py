"""Hostile and broken OpenRaster archives are refused with a FileError, never extracted to disk."""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from sd_studio.document.document import Document
from sd_studio.document.io.ora import MAX_LAYERS, read_ora, read_ora_info, write_ora
from sd_studio.errors import FileError


def _png(w: int = 4, h: int = 4) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((h, w, 4), 77, np.uint8)).save(out, "PNG")
    return out.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_declaring(w: int, h: int, idat: bytes = b"") -> bytes:
    """A PNG whose header claims w x h RGBA pixels, followed by whatever IDAT we like."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _stack(*layers: str, w: int = 4, h: int = 4) -> str:
    return f'<image w="{w}" h="{h}"><stack>{"".join(layers)}</stack></image>'


def _archive(path, stack_xml: str | bytes, members: dict[str, bytes] | None = None,
             compress: int = zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "image/openraster", compress_type=zipfile.ZIP_STORED)
        zf.writestr("stack.xml", stack_xml, compress_type=compress)
        for name, data in (members or {}).items():
            zf.writestr(name, data, compress_type=compress)


def _refused(path, match: str, **kwargs) -> None:
    before = set(os.listdir(path.parent))
    with pytest.raises(FileError, match=match):
        read_ora(path, **kwargs)
    assert set(os.listdir(path.parent)) == before  # nothing extracted beside it


def test_a_good_minimal_archive_opens(tmp_path):
    # the control for every refusal below: the same builder makes a file that does open
    _archive(tmp_path / "ok.ora", _stack('<layer src="data/a.png"/>'), {"data/a.png": _png()})
    assert read_ora(tmp_path / "ok.ora").layers[0].surface.read(Document(4, 4).bounds)[0, 0, 0] == 77


@pytest.mark.parametrize("content", [b"", b"\x00" * 10, os.urandom(4096), b"PK\x03\x04" + os.urandom(200)])
def test_random_bytes(tmp_path, content):
    path = tmp_path / "r.ora"
    path.write_bytes(content)
    _refused(path, "not an OpenRaster file")
    with pytest.raises(FileError):
        read_ora_info(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileError, match="does not exist"):
        read_ora(tmp_path / "nope.ora")


def test_a_zip_that_is_not_openraster(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.ora", "w") as zf:
        zf.writestr("readme.txt", "hello")
    _refused(tmp_path / "z.ora", "no stack.xml")
    with zipfile.ZipFile(tmp_path / "odt.ora", "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        zf.writestr("stack.xml", _stack())
    _refused(tmp_path / "odt.ora", "mimetype")


@pytest.mark.parametrize("xml", [
    "<image w='4' h='4'><stack>",                       # truncated
    "<image w='4' h='4'><stack></image>",               # mismatched
    "\x00\x01 not xml",
    "<notimage/>",
    "<image w='4' h='4'/>",                             # no stack
    "<image w='four' h='4'><stack/></image>",
    "<image w='inf' h='4'><stack/></image>",
    "<image w='0' h='4'><stack/></image>",
])
def test_broken_xml(tmp_path, xml):
    _archive(tmp_path / "x.ora", xml)
    _refused(tmp_path / "x.ora", "XML|damaged|size")


@pytest.mark.parametrize("xml", [
    # billion laughs
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
    "<image w='4' h='4'><stack><layer name='&lol2;' src='data/a.png'/></stack></image>",
    # external entity reading a local file
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<image w='4' h='4'><stack><layer name='&xxe;' src='data/a.png'/></stack></image>",
    # a bare DTD
    '<!DOCTYPE image SYSTEM "http://example.invalid/x.dtd"><image w="4" h="4"><stack/></image>',
])
def test_dtds_and_entities_are_refused(tmp_path, xml):
    _archive(tmp_path / "e.ora", xml, {"data/a.png": _png()})
    _refused(tmp_path / "e.ora", "DTD or entities")


@pytest.mark.parametrize("src, match", [
    ("data/missing.png", "missing"),
    ("../outside.png", "outside the archive"),
    ("data/../../outside.png", "outside the archive"),
    ("/etc/passwd", "outside the archive"),
    ("\\\\server\\share\\x.png", "outside the archive"),
    ("C:/Windows/x.png", "outside the archive"),
    ("", "outside the archive"),
])
def test_layer_sources_outside_the_archive(tmp_path, src, match):
    (tmp_path / "outside.png").write_bytes(_png())
    _archive(tmp_path / "s.ora", _stack(f'<layer src="{src}"/>'), {"data/a.png": _png()})
    _refused(tmp_path / "s.ora", match)


def test_a_layer_without_src_or_with_a_non_png(tmp_path):
    _archive(tmp_path / "n.ora", _stack("<layer name='x'/>"))
    _refused(tmp_path / "n.ora", "no image")
    _archive(tmp_path / "j.ora", _stack('<layer src="data/a.png"/>'), {"data/a.png": b"GIF89a" + b"\x00" * 40})
    _refused(tmp_path / "j.ora", "not a PNG")
    _archive(tmp_path / "c.ora", _stack('<layer src="data/a.png"/>'), {"data/a.png": _png()[:40] + b"\x00" * 30})
    _refused(tmp_path / "c.ora", "not a readable PNG")


def test_image_size_over_the_limit(tmp_path):
    _archive(tmp_path / "big.ora", _stack(w=100000, h=100000))
    _refused(tmp_path / "big.ora", "over the limit")
    _archive(tmp_path / "small.ora", _stack('<layer src="data/a.png"/>', w=64, h=64), {"data/a.png": _png()})
    _refused(tmp_path / "small.ora", "over the limit", max_pixels=1000)
    assert read_ora(tmp_path / "small.ora", max_pixels=64 * 64).size == (64, 64)


def test_layer_png_declaring_a_size_over_the_limit(tmp_path):
    # a tiny file whose PNG header claims 60000 x 60000 pixels: refused before any decoding
    _archive(tmp_path / "d.ora", _stack('<layer src="data/a.png"/>'), {"data/a.png": _png_declaring(60000, 60000)})
    _refused(tmp_path / "d.ora", "over the limit")
    _archive(tmp_path / "d2.ora", _stack('<layer src="data/a.png"/>'), {"data/a.png": _png(50, 50)})
    _refused(tmp_path / "d2.ora", "over the limit", max_pixels=2000)


def test_zip_bomb_member_is_refused_by_its_inflated_size(tmp_path):
    # a PNG claiming 8x8 pixels, padded with 64 MiB of zeros that deflate to ~64 KiB
    bomb = _png_declaring(8, 8, zlib.compress(b"\x00" * (8 * 33))) + b"\x00" * (64 << 20)
    _archive(tmp_path / "bomb.ora", _stack('<layer src="data/a.png"/>'), {"data/a.png": bomb})
    assert (tmp_path / "bomb.ora").stat().st_size < 1 << 20
    _refused(tmp_path / "bomb.ora", "inflate")


def test_zip_bomb_lying_about_its_size_is_refused(tmp_path):
    # the central directory claims a small stack.xml but the data inflates to far more
    path = tmp_path / "liar.ora"
    big = b"<image w='4' h='4'><stack>" + b" " * (40 << 20) + b"</stack></image>"
    _archive(path, big)
    raw = bytearray(path.read_bytes())
    true_size = struct.pack("<I", len(big))
    fake_size = struct.pack("<I", 100)
    assert raw.count(true_size) == 2  # the local header and the central directory entry
    path.write_bytes(bytes(raw).replace(true_size, fake_size))
    _refused(path, "damaged|inflate|XML")


def test_too_many_layers(tmp_path):
    layers = '<layer src="data/a.png"/>' * (MAX_LAYERS + 1)
    _archive(tmp_path / "many.ora", _stack(layers), {"data/a.png": _png()})
    _refused(tmp_path / "many.ora", "more than")


def test_groups_nested_too_deep(tmp_path):
    xml = _stack("<stack>" * 100 + '<layer src="data/a.png"/>' + "</stack>" * 100)
    _archive(tmp_path / "deep.ora", xml, {"data/a.png": _png()})
    _refused(tmp_path / "deep.ora", "nest deeper")


def test_many_layers_sharing_one_large_png_hit_the_total_budget(tmp_path):
    # one 100x100 PNG shown by 50 layers: each within the per-image limit, the sum is not
    layers = '<layer src="data/a.png"/>' * 50
    _archive(tmp_path / "share.ora", _stack(layers, w=100, h=100), {"data/a.png": _png(100, 100)})
    doc = read_ora(tmp_path / "share.ora")  # shared images are decoded once...
    assert len(doc.layers) == 50
    distinct = {f"data/{i}.png": _png(100, 100) for i in range(20)}
    layers = "".join(f'<layer src="data/{i}.png"/>' for i in range(20))
    _archive(tmp_path / "sum.ora", _stack(layers, w=100, h=100), distinct)
    _refused(tmp_path / "sum.ora", "more than", max_pixels=100 * 100)  # ...distinct ones count


def test_a_failed_save_keeps_the_old_file(tmp_path):
    path = tmp_path / "keep.ora"
    write_ora(path, Document.new(8, 8))
    before = path.read_bytes()

    class Broken(Document):
        def composite(self, bounds=None):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_ora(path, Broken.new(8, 8))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.ora"]
