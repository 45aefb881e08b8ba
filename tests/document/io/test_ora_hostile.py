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
from sd_studio.document.geometry import Bounds
from sd_studio.document.io import ora
from sd_studio.document.io.ora import (
    MAX_LAYERS,
    max_pixels_or_default,
    open_ora,
    read_ora,
    read_ora_info,
    total_pixel_limit,
    write_ora,
)
from sd_studio.document.layer import BlendMode
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
    _refused(path, "not an OpenRaster archive")
    with pytest.raises(FileError):
        read_ora_info(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileError, match="no such file"):
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
    _refused(tmp_path / "big.ora", "more than the limit")
    _archive(tmp_path / "small.ora", _stack('<layer src="data/a.png"/>', w=64, h=64), {"data/a.png": _png()})
    _refused(tmp_path / "small.ora", "more than the limit", max_pixels=1000)
    assert read_ora(tmp_path / "small.ora", max_pixels=64 * 64).size == (64, 64)


def test_layer_png_declaring_a_size_over_the_limit(tmp_path):
    # a tiny file whose PNG header claims 60000 x 60000 pixels: refused before any decoding
    _archive(tmp_path / "d.ora", _stack('<layer src="data/a.png"/>'), {"data/a.png": _png_declaring(60000, 60000)})
    _refused(tmp_path / "d.ora", "more than the limit")
    _archive(tmp_path / "d2.ora", _stack('<layer src="data/a.png"/>'), {"data/a.png": _png(50, 50)})
    _refused(tmp_path / "d2.ora", "more than the limit", max_pixels=2000)


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


def _solid_png(w: int, h: int, value: int = 77) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((h, w, 4), value, np.uint8)).save(out, "PNG")
    return out.getvalue()


def test_a_layer_is_clipped_to_the_kept_area(tmp_path):
    # a 1000 x 800 PNG placed at (-10, -20) in a 64 x 48 image: what lies inside the image and one
    # image size around it (up to x = 128, y = 96) is kept, the rest is never held
    _archive(tmp_path / "c.ora", _stack('<layer src="data/a.png" x="-10" y="-20"/>', w=64, h=48),
             {"data/a.png": _solid_png(1000, 800)})
    layer = read_ora(tmp_path / "c.ora").layers[0]
    assert ora.kept_area(64, 48) == Bounds(-64, -48, 192, 144)
    assert layer.surface.content_bounds().offset(*layer.offset) == Bounds.from_corners(-10, -20, 128, 96)


def test_a_layer_wholly_outside_the_document_holds_nothing(tmp_path):
    _archive(tmp_path / "o.ora", _stack('<layer name="far" src="data/a.png" x="5000" y="-9000"/>', w=64, h=48),
             {"data/a.png": _solid_png(300, 300)})
    [layer] = read_ora(tmp_path / "o.ora").layers
    assert layer.name == "far" and layer.surface.is_empty


def test_a_flattened_group_is_clipped_to_the_kept_area(tmp_path):
    # two 1 x 1 layers at (0, 0) and (300, 300) in a 64 x 64 image once made a 320 x 320 layer
    group = ('<stack name="G" opacity="0.5"><layer src="data/a.png" x="0" y="0"/>'
             '<layer src="data/a.png" x="300" y="300"/></stack>')
    _archive(tmp_path / "g.ora", _stack(group, w=64, h=64), {"data/a.png": _solid_png(1, 1, 200)})
    [layer] = read_ora(tmp_path / "g.ora").layers
    assert layer.name == "G" and layer.opacity == 0.5
    assert layer.surface.content_bounds().offset(*layer.offset) == Bounds(0, 0, 1, 1)
    assert ora.kept_area(64, 64).contains(layer.document_bounds())


def test_the_decoded_total_is_tied_to_the_document_area():
    big = 89_478_485
    assert total_pixel_limit(4000, 3000, big) == 4000 * 3000 * ora.MAX_DOCUMENT_AREAS
    assert total_pixel_limit(8000, 8000, big) == big * ora.MAX_TOTAL_FACTOR
    # a small image may still decode a modest fixed amount (256 MiB), whatever its size
    assert total_pixel_limit(16, 16, big) == ora.MIN_TOTAL_PIXELS


def test_layers_past_the_document_area_budget_are_refused(tmp_path, monkeypatch):
    # each layer lies inside the 16 x 16 image and fits the per-image limit; their sum does not
    monkeypatch.setattr(ora, "MIN_TOTAL_PIXELS", 0)
    count = ora.MAX_DOCUMENT_AREAS
    _archive(tmp_path / "ok.ora", _stack('<layer src="data/a.png"/>' * count, w=16, h=16),
             {"data/a.png": _solid_png(16, 16)})
    assert len(read_ora(tmp_path / "ok.ora").layers) == count
    _archive(tmp_path / "t.ora", _stack('<layer src="data/a.png"/>' * (count + 1), w=16, h=16),
             {"data/a.png": _solid_png(16, 16)})
    _refused(tmp_path / "t.ora", "more than 16,384 pixels inside its 16 x 16 image")
    # what lies outside the document is not decoded, so it does not count
    outside = '<layer src="data/a.png" x="100" y="100"/>' * 200
    _archive(tmp_path / "out.ora", _stack('<layer src="data/a.png"/>' + outside, w=16, h=16),
             {"data/a.png": _solid_png(16, 16)})
    assert len(read_ora(tmp_path / "out.ora").layers) == 201


def test_the_default_per_image_limit_is_the_one_flat_images_get(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    assert max_pixels_or_default(None) == 5000
    # a small file whose layer PNG declares more than that is refused from its header
    _archive(tmp_path / "h.ora", _stack('<layer src="data/a.png"/>', w=8, h=8), {"data/a.png": _png_declaring(100, 60)})
    _refused(tmp_path / "h.ora", r"data/a.png declares 100 x 60 pixels, more than the limit of 5,000")
    with pytest.raises(FileError, match="more than the limit of 5,000"):
        read_ora_info(tmp_path / "h.ora")
    _archive(tmp_path / "d.ora", _stack(w=100, h=60))
    _refused(tmp_path / "d.ora", r"declares 100 x 60 pixels, more than the limit of 5,000")


def test_a_png_inflate_bomb_decodes_only_the_pixels_it_declares(tmp_path):
    # an 8 x 8 PNG whose IDAT inflates to 64 MiB: decoding streams and stops after 8 rows
    bomb = _png_declaring(8, 8, zlib.compress(b"\x00" * (64 << 20), 9))
    assert len(bomb) < 1 << 20
    _archive(tmp_path / "z.ora", _stack('<layer src="data/a.png" x="2" y="3"/>', w=8, h=8), {"data/a.png": bomb})
    [layer] = read_ora(tmp_path / "z.ora").layers
    assert layer.surface.is_empty  # all-zero rows: fully transparent


def test_errors_name_the_path_as_given_then_the_reason(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.mkdir("sub")
    _archive(tmp_path / "sub" / "x.ora", _stack('<layer src="../x.png"/>'))
    for call in (read_ora, read_ora_info):
        with pytest.raises(FileError) as caught:
            call("./sub/x.ora")
        assert str(caught.value) == "./sub/x.ora: a layer points outside the archive ('../x.png')"


def test_unknown_composite_ops_read_as_normal_with_a_warning(tmp_path):
    layers = ('<layer name="Glow" src="data/a.png" composite-op="krita:linear_light"/>'
              '<stack name="Shade" composite-op="krita:burn"><layer src="data/a.png"/></stack>'
              '<layer name="Plain" src="data/a.png" composite-op="svg:multiply"/>')
    _archive(tmp_path / "k.ora", _stack(layers), {"data/a.png": _png()})
    read = open_ora(tmp_path / "k.ora")
    assert [layer.blend_mode for layer in reversed(read.document.layers)][0] is BlendMode.SRC_OVER
    assert read.warnings == [
        'layer "Glow" uses krita:linear_light which SD Studio shows as Normal',
        'group "Shade" uses krita:burn which SD Studio shows as Normal',
    ]
    assert read_ora_info(tmp_path / "k.ora")["warnings"] == read.warnings
    _archive(tmp_path / "many.ora", _stack('<layer src="data/a.png" composite-op="krita:x"/>' * 30), {"data/a.png": _png()})
    warnings = open_ora(tmp_path / "many.ora").warnings
    assert len(warnings) == 11 and warnings[-1].startswith("20 more layers use composite ops")
