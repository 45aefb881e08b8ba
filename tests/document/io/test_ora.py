"""OpenRaster round trips, the archive's shape, and files in the shape Krita and MyPaint write."""

from __future__ import annotations

import io
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sd_studio.document.document import Document
from sd_studio.document.geometry import Bounds, Point
from sd_studio.document.io.ora import (
    NAMESPACE,
    content_bounds,
    kept_area,
    read_ora,
    read_ora_info,
    write_ora,
)
from sd_studio.document.layer import BlendMode, Layer
from sd_studio.document.surface import Surface


def _noise(h: int, w: int, seed: int = 0, alpha: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    px = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    px[..., 3] = rng.integers(1, 256, (h, w), dtype=np.uint8) if alpha is None else alpha
    return px


def _sample_doc() -> Document:
    doc = Document.new(300, 200, background=(250, 240, 230, 255))
    gen = Layer(name='Generated "cat" — ünïcode & <tags>', offset=Point(-5, 7), opacity=0.37, locked=True,
                blend_mode=BlendMode.MULTIPLY, metadata={"parameters": "a cat\nNegative prompt: dog\nSteps: 20, Seed: 7"})
    gen.surface.write(-20, 20, _noise(50, 70, 1))
    hidden = Layer(name="Hidden", visible=False)
    hidden.surface.write(100, 100, _noise(30, 30, 2, alpha=255))
    empty = Layer(name="Empty", offset=Point(12, 34))
    doc.layers += [gen, hidden, empty]
    doc.active = gen
    doc.mask.surface.write(3, 4, np.full((10, 12), 200, np.uint8))
    doc.metadata["title"] = "sample"
    return doc


def _inside(layer: Layer, doc: Document) -> Surface:
    """The layer's pixels that lie inside the document, all a read keeps (in the layer's coordinates)."""
    area = layer.to_layer(kept_area(*doc.size))
    kept = Surface(4)
    kept.write(area.x, area.y, layer.surface.read(area))
    return kept


def _assert_same(a: Document, b: Document) -> None:
    """b holds what a holds inside the kept area (what lies farther out is not read back)."""
    assert a.size == b.size
    assert [layer.properties() for layer in a.layers] == [layer.properties() for layer in b.layers]
    for la, lb in zip(a.layers, b.layers):
        assert _inside(la, a).equals(lb.surface), la.name
    assert np.array_equal(a.mask.to_array(), b.mask.to_array())
    assert a.active is not None and b.active is not None
    assert a.index_of(a.active) == b.index_of(b.active)
    assert np.array_equal(a.composite(), b.composite())


def test_round_trip_keeps_every_property(tmp_path):
    doc = _sample_doc()
    path = tmp_path / "a.ora"
    write_ora(path, doc)
    back = read_ora(path)
    _assert_same(doc, back)
    assert back.metadata == {"title": "sample"}
    assert not back.is_modified


def test_text_xml_cannot_hold_is_written_safely(tmp_path):
    doc = Document.new(16, 16)
    doc.layers[0].name = "bell\x07 and \ud800 surrogate"
    doc.layers[0].metadata = {"parameters": "ctrl \x01\x1f, emoji \U0001f600, lone \udfff\nSteps: 1"}
    write_ora(tmp_path / "t.ora", doc)
    back = read_ora(tmp_path / "t.ora")
    assert back.layers[0].name == "bell\ufffd and \ufffd surrogate"
    assert back.layers[0].metadata == doc.layers[0].metadata  # JSON escapes keep it exact


@pytest.mark.parametrize("mode", list(BlendMode))
def test_round_trip_every_blend_mode(tmp_path, mode):
    doc = Document.new(64, 64, background=(10, 120, 200, 255))
    top = Layer(name=mode.label, blend_mode=mode, opacity=0.5)
    top.surface.write(8, 8, _noise(40, 40, 3))
    doc.layers.append(top)
    write_ora(tmp_path / "m.ora", doc)
    with zipfile.ZipFile(tmp_path / "m.ora") as zf:
        stack = ET.fromstring(zf.read("stack.xml"))
    assert stack[0][0].get("composite-op") == mode.value
    back = read_ora(tmp_path / "m.ora")
    assert back.layers[1].blend_mode is mode
    _assert_same(doc, back)


def test_archive_follows_the_openraster_spec(tmp_path):
    doc = _sample_doc()
    path = tmp_path / "spec.ora"
    write_ora(path, doc)
    raw = path.read_bytes()
    # the mimetype is the first member, stored, with no extra field, so `file` can sniff it
    assert raw[:4] == b"PK\x03\x04"
    assert raw[30:38] == b"mimetype" and raw[38:54] == b"image/openraster"
    with zipfile.ZipFile(path) as zf:
        first = zf.infolist()[0]
        assert (first.filename, first.compress_type, first.extra) == ("mimetype", zipfile.ZIP_STORED, b"")
        names = zf.namelist()
        assert {"stack.xml", "mergedimage.png", "Thumbnails/thumbnail.png"} <= set(names)
        merged = np.asarray(Image.open(io.BytesIO(zf.read("mergedimage.png"))).convert("RGBA"))
        assert np.array_equal(merged, doc.composite())
        thumb = Image.open(io.BytesIO(zf.read("Thumbnails/thumbnail.png")))
        assert max(thumb.size) == 256 and thumb.size == (256, 171)
        root = ET.fromstring(zf.read("stack.xml"))
        layers = list(root.find("stack"))
        assert all(el.get("src") in names and el.get("src").startswith("data/") for el in layers)
        # topmost first: the hidden inpaint mask, then the document's layers from the top down
        assert layers[0].get(f"{{{NAMESPACE}}}role") == "inpaint-mask" and layers[0].get("visibility") == "hidden"
        assert [el.get("name") for el in layers[1:]] == [layer.name for layer in reversed(doc.layers)]
        gen = layers[3]
        assert gen.get("edit-locked") == "true" and gen.get("selected") == "true"
        assert gen.get("opacity") == "0.37" and gen.get("composite-op") == "svg:multiply"
        # layer PNGs are cropped to the content; x/y carry where it lies in the document
        png = Image.open(io.BytesIO(zf.read(gen.get("src"))))
        assert png.size == (70, 50)
        assert (int(gen.get("x")), int(gen.get("y"))) == (-25, 27)
        hidden = layers[2]
        assert hidden.get("visibility") == "hidden" and (hidden.get("x"), hidden.get("y")) == ("100", "100")


def test_info_reads_without_decoding(tmp_path):
    doc = _sample_doc()
    write_ora(tmp_path / "i.ora", doc)
    info = read_ora_info(tmp_path / "i.ora")
    assert (info["width"], info["height"], info["has_mask"]) == (300, 200, True)
    assert [layer["name"] for layer in info["layers"]] == [layer.name for layer in reversed(doc.layers)]
    gen = info["layers"][2]
    assert (gen["width"], gen["height"], gen["x"], gen["y"]) == (70, 50, -25, 27)
    assert gen["metadata"]["parameters"].startswith("a cat\n")
    assert gen["blend_mode"] == "svg:multiply" and gen["locked"] and gen["opacity"] == pytest.approx(0.37)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-200, 200), st.integers(-200, 200), st.integers(1, 90), st.integers(1, 90)),
                min_size=0, max_size=4))
def test_content_bounds_matches_a_full_scan(rects):
    surface = Surface(4)
    for x, y, w, h in rects:
        px = np.zeros((h, w, 4), np.uint8)
        px[h // 2, w - 1] = (1, 2, 3, 4)
        px[0, w // 3] = (9, 9, 9, 9)
        surface.write(x, y, px)
    assert content_bounds(surface) == surface.content_bounds()


# -- files in the shape other programs write -----------------------------------------------------
def _png(pixels: np.ndarray, mode: str = "RGBA") -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(out, "PNG")
    return out.getvalue()


def _archive(path, stack_xml: str, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "image/openraster", compress_type=zipfile.ZIP_STORED)
        zf.writestr("stack.xml", stack_xml)
        for name, data in members.items():
            zf.writestr(name, data)


def _over(dst: np.ndarray, src: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    """Plain src-over in float, to compare composites without our own compositor."""
    s = src.astype(np.float64) / 255
    d = dst.astype(np.float64) / 255
    sa = s[..., 3:] * opacity
    da = d[..., 3:]
    oa = sa + da * (1 - sa)
    oc = np.divide(s[..., :3] * sa + d[..., :3] * da * (1 - sa), oa, out=np.zeros_like(s[..., :3]), where=oa > 0)
    return np.clip(np.rint(np.concatenate([oc, oa], axis=2) * 255), 0, 255).astype(np.uint8)


def test_reads_a_krita_shaped_file(tmp_path):
    # Krita 5 writes a full-canvas PNG per layer, edit-locked/selected, xres/yres, a root stack
    # without isolation, groups as isolated stacks, and krita:* ops for modes outside svg:*
    w, h = 64, 48
    bg = np.zeros((h, w, 4), np.uint8)
    bg[...] = (200, 210, 220, 255)
    paint = np.zeros((h, w, 4), np.uint8)
    paint[10:30, 5:40] = (255, 0, 0, 160)
    inner = np.zeros((h, w, 4), np.uint8)
    inner[20:40, 30:60] = (0, 0, 255, 255)
    stack = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- written by Krita -->
<image w="{w}" xres="300" h="{h}" yres="300" version="0.0.1">
 <stack name="root" opacity="1" composite-op="svg:src-over" visibility="visible" x="0" y="0" isolation="isolate">
  <stack name="Group 1" opacity="0.5" composite-op="svg:src-over" visibility="visible" x="0" y="0" isolation="isolate">
   <layer name="Inner" opacity="1" composite-op="svg:src-over" visibility="visible" x="0" y="0" src="data/layer3.png"/>
  </stack>
  <stack name="Pass" opacity="1" composite-op="svg:src-over" visibility="visible" x="0" y="0" isolation="auto">
   <layer name="Odd mode" opacity="1" composite-op="krita:exclusion" visibility="hidden" x="0" y="0" src="data/layer4.png"/>
  </stack>
  <layer name="Paint" opacity="0.8" edit-locked="true" selected="true" composite-op="svg:src-over" visibility="visible" x="0" y="0" src="data/layer2.png"/>
  <layer name="Background" opacity="1" composite-op="svg:src-over" visibility="visible" x="0" y="0" src="data/layer1.png"/>
 </stack>
</image>
"""
    _archive(tmp_path / "k.ora", stack, {
        "data/layer1.png": _png(bg), "data/layer2.png": _png(paint), "data/layer3.png": _png(inner),
        "data/layer4.png": _png(inner), "mergedimage.png": _png(bg), "Thumbnails/thumbnail.png": _png(bg),
    })
    doc = read_ora(tmp_path / "k.ora")
    assert [layer.name for layer in doc.layers] == ["Background", "Paint", "Odd mode", "Group 1"]
    assert doc.active is doc.layers[1] and doc.layers[1].locked and doc.layers[1].opacity == pytest.approx(0.8)
    odd, group = doc.layers[2], doc.layers[3]
    assert odd.blend_mode is BlendMode.SRC_OVER and not odd.visible  # hoisted from the pass-through group
    assert group.opacity == 0.5 and group.surface.content_bounds().width == 30  # flattened, isolated group
    expected = _over(_over(_over(np.zeros((h, w, 4), np.uint8), bg), paint, 0.8), inner, 0.5)
    assert np.abs(doc.composite().astype(int) - expected.astype(int)).max() <= 1


def test_reads_a_mypaint_shaped_file(tmp_path):
    # MyPaint 2 writes its own namespace, layer PNGs cropped with x/y offsets, a background layer
    # with a tile attribute, strokemaps beside the PNGs, 16-bit-free 8-bit RGBA, nested stacks
    w, h = 80, 60
    bg = np.zeros((h, w, 4), np.uint8)
    bg[...] = (255, 255, 255, 255)
    stroke = np.zeros((12, 20, 4), np.uint8)
    stroke[2:10, 3:18] = (10, 200, 10, 255)
    grey = np.full((6, 6), 90, np.uint8)
    stack = f"""<?xml version='1.0' encoding='UTF-8'?>
<image xmlns:mypaint="http://mypaint.org/ns/openraster" h="{h}" version="0.0.5" w="{w}" xres="72" yres="72">
  <stack>
    <stack composite-op="svg:src-over" isolation="auto" name="Group" opacity="1.0" visibility="visible" x="0" y="0">
      <layer composite-op="svg:src-over" mypaint:strokemap="data/layer002_strokemap.dat" name="Stroke" opacity="1.0" src="data/layer002.png" visibility="visible" x="33" y="21" selected="true"/>
    </stack>
    <layer composite-op="svg:src-over" name="Grey" opacity="0.5" src="data/layer001.png" visibility="visible" x="-3" y="50"/>
    <layer composite-op="svg:src-over" edit-locked="true" mypaint:background-tile="data/background_tile.png" name="background" opacity="1.0" src="data/background.png" visibility="visible" x="0" y="0"/>
  </stack>
</image>
"""
    _archive(tmp_path / "m.ora", stack, {
        "data/background.png": _png(bg, "RGB"), "data/background_tile.png": _png(bg[:64, :64], "RGB"),
        "data/layer001.png": _png(grey, "L"), "data/layer002.png": _png(stroke),
        "data/layer002_strokemap.dat": b"\x00" * 16,
    })
    doc = read_ora(tmp_path / "m.ora")
    assert [layer.name for layer in doc.layers] == ["background", "Grey", "Stroke"]
    assert doc.active is doc.layers[2] and doc.layers[0].locked
    assert doc.layers[2].offset == Point(33, 21) and doc.layers[1].offset == Point(-3, 50)
    expected = bg.copy()
    grey_rgba = np.zeros((h, w, 4), np.uint8)
    grey_rgba[50:56, 0:3] = (90, 90, 90, 255)
    expected = _over(expected, grey_rgba, 0.5)
    stroke_full = np.zeros((h, w, 4), np.uint8)
    stroke_full[21:33, 33:53] = stroke
    expected = _over(expected, stroke_full)
    assert np.abs(doc.composite().astype(int) - expected.astype(int)).max() <= 1


def test_wide_and_palette_pngs_become_8_bit_rgba(tmp_path):
    w, h = 16, 8
    wide = (np.arange(w * h, dtype=np.uint16).reshape(h, w) * 500).astype(np.uint16)
    out16 = io.BytesIO()
    Image.fromarray(wide).save(out16, "PNG")
    pal = Image.fromarray(np.full((h, w, 3), (30, 60, 90), np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE)
    outp = io.BytesIO()
    pal.save(outp, "PNG")
    stack = f"""<image w="{w}" h="{h}"><stack>
<layer name="p" src="data/p.png"/><layer name="g" src="data/g.png" visibility="hidden"/></stack></image>"""
    _archive(tmp_path / "w.ora", stack, {"data/g.png": out16.getvalue(), "data/p.png": outp.getvalue()})
    doc = read_ora(tmp_path / "w.ora")
    g = doc.layers[0].surface.read(doc.bounds)
    assert np.array_equal(g[..., 0], (wide >> 8).astype(np.uint8)) and (g[..., 3] == 255).all()
    assert tuple(doc.layers[1].surface.read(doc.bounds)[3, 3]) == (30, 60, 90, 255)


# -- a real program --------------------------------------------------------------------------------
def _krita(*args: str) -> None:
    runner = ["xvfb-run", "-a"] if shutil.which("xvfb-run") else []
    env = {k: v for k, v in __import__("os").environ.items() if k != "QT_QPA_PLATFORM"}
    subprocess.run(runner + ["krita", *args], check=True, timeout=300, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.skipif(shutil.which("krita") is None, reason="Krita is not installed")
def test_krita_shows_our_file_and_we_show_krita_s(tmp_path):
    doc = Document.new(160, 120, background=(240, 230, 220, 255))
    a = Layer(name="A", opacity=0.6, offset=Point(10, -4))
    a.surface.write(0, 0, _noise(60, 90, 5))
    b = Layer(name="B hidden", visible=False)
    b.surface.write(20, 20, _noise(40, 40, 6, alpha=255))
    c = Layer(name="C locked", locked=True)
    c.surface.write(100, 70, _noise(40, 50, 7))
    doc.layers += [a, b, c]
    doc.mask.surface.write(0, 0, np.full((20, 20), 255, np.uint8))
    ours = tmp_path / "ours.ora"
    write_ora(ours, doc)
    _krita(str(ours), "--export", "--export-filename", str(tmp_path / "krita.png"))
    seen = np.asarray(Image.open(tmp_path / "krita.png").convert("RGBA")).astype(int)
    assert seen.shape == (120, 160, 4)
    assert np.abs(seen - doc.composite().astype(int)).mean() < 1.0
    _krita(str(ours), "--export", "--export-filename", str(tmp_path / "krita.ora"))
    back = read_ora(tmp_path / "krita.ora")
    assert [layer.name for layer in back.layers] == ["Background", "A", "B hidden", "C locked", "Inpaint mask"]
    assert back.layers[3].locked and not back.layers[2].visible and back.layers[1].opacity == pytest.approx(0.6, abs=0.01)
    assert np.abs(back.composite().astype(int) - doc.composite().astype(int)).mean() < 1.0


@pytest.mark.skipif(shutil.which("krita") is None, reason="Krita is not installed")
def test_nested_stacks_read_as_krita_renders_them(tmp_path):
    # an isolated, half-opaque group holding a multiply layer (flattened by us) and a pass-through
    # group holding a screen layer (hoisted by us): Krita's own rendering is the reference
    w, h = 96, 64
    bg = np.zeros((h, w, 4), np.uint8)
    bg[..., :3] = np.linspace(40, 220, w, dtype=np.uint8)[None, :, None]
    bg[..., 3] = 255
    a = np.zeros((h, w, 4), np.uint8)
    a[10:50, 10:60] = (200, 60, 30, 200)
    b = np.zeros((h, w, 4), np.uint8)
    b[20:60, 30:90] = (30, 90, 220, 255)
    c = np.zeros((h, w, 4), np.uint8)
    c[5:30, 50:95] = (250, 250, 40, 180)
    stack = f"""<?xml version="1.0" encoding="UTF-8"?>
<image w="{w}" h="{h}" version="0.0.1">
 <stack isolation="isolate">
  <stack name="Iso" opacity="0.6" composite-op="svg:src-over" visibility="visible" isolation="isolate">
   <layer name="Mul" composite-op="svg:multiply" opacity="1" visibility="visible" x="0" y="0" src="data/b.png"/>
   <layer name="A" composite-op="svg:src-over" opacity="1" visibility="visible" x="0" y="0" src="data/a.png"/>
  </stack>
  <stack name="Pass" opacity="1" composite-op="svg:src-over" visibility="visible" isolation="auto">
   <layer name="Scr" composite-op="svg:screen" opacity="0.8" visibility="visible" x="0" y="0" src="data/c.png"/>
  </stack>
  <layer name="BG" composite-op="svg:src-over" opacity="1" visibility="visible" x="0" y="0" src="data/bg.png"/>
 </stack>
</image>"""
    path = tmp_path / "nested.ora"
    _archive(path, stack, {"data/bg.png": _png(bg), "data/a.png": _png(a), "data/b.png": _png(b), "data/c.png": _png(c)})
    doc = read_ora(path)
    assert [(layer.name, layer.blend_mode) for layer in doc.layers] == [
        ("BG", BlendMode.SRC_OVER), ("Scr", BlendMode.SCREEN), ("Iso", BlendMode.SRC_OVER)]
    _krita(str(path), "--export", "--export-filename", str(tmp_path / "nested.png"))
    seen = np.asarray(Image.open(tmp_path / "nested.png").convert("RGBA")).astype(int)
    assert np.abs(seen - doc.composite().astype(int)).max() <= 2


@pytest.mark.skipif(shutil.which("krita") is None, reason="Krita is not installed")
def test_krita_composites_every_blend_mode_of_our_files_as_we_do(tmp_path):
    # one strip per mode over a gradient, half opaque and half translucent, at opacity 0.8.
    # svg:plus is left out: Krita blends "Addition" and then mixes by alpha, while the
    # OpenRaster spec (and we, and MyPaint) use Porter-Duff plus; they differ where sums clip.
    modes = [m for m in BlendMode if m is not BlendMode.PLUS]
    cw, h = 24, 64
    w = cw * len(modes)
    doc = Document(w, h)
    bg = np.zeros((h, w, 4), np.uint8)
    bg[..., 0] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    bg[..., 1] = np.tile(np.linspace(255, 0, cw, dtype=np.uint8), len(modes))[None, :]
    bg[..., 2], bg[..., 3] = 90, 255
    doc.layers.append(Layer(name="Background"))
    doc.layers[0].surface.write(0, 0, bg)
    for i, mode in enumerate(modes):
        strip = np.zeros((h, cw, 4), np.uint8)
        strip[..., 0] = np.linspace(255, 0, h, dtype=np.uint8)[:, None]
        strip[..., 1] = np.linspace(0, 255, cw, dtype=np.uint8)[None, :]
        strip[..., 2] = 200
        strip[..., 3] = np.where(np.arange(h)[:, None] < h // 2, 255, 128)
        layer = Layer(name=mode.label, blend_mode=mode, opacity=0.8)
        layer.surface.write(i * cw, 0, strip)
        doc.layers.append(layer)
    doc.active = doc.layers[-1]
    write_ora(tmp_path / "modes.ora", doc)
    _krita(str(tmp_path / "modes.ora"), "--export", "--export-filename", str(tmp_path / "modes.png"))
    seen = np.asarray(Image.open(tmp_path / "modes.png").convert("RGBA")).astype(int)
    ours = doc.composite().astype(int)
    worst = {m.value: int(np.abs(seen - ours)[:, i * cw:(i + 1) * cw].max()) for i, m in enumerate(modes)}
    assert all(v <= 2 for v in worst.values()), worst


_layer_props = st.fixed_dictionaries({
    "name": st.text(max_size=12),
    "offset": st.tuples(st.integers(-100, 100), st.integers(-100, 100)),
    "rect": st.tuples(st.integers(-80, 80), st.integers(-80, 80), st.integers(0, 70), st.integers(0, 70)),
    "opacity": st.floats(0, 1).map(lambda v: round(v, 4)),
    "visible": st.booleans(), "locked": st.booleans(),
    "blend_mode": st.sampled_from(list(BlendMode)),
    "metadata": st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=30), max_size=2),
})


@settings(max_examples=25, deadline=None)
@given(layers=st.lists(_layer_props, min_size=1, max_size=4), active=st.integers(0, 3),
       mask=st.one_of(st.none(), st.tuples(st.integers(-10, 60), st.integers(-10, 60), st.integers(1, 30), st.integers(1, 30))))
def test_any_document_round_trips(tmp_path_factory, layers, active, mask):
    doc = Document(64, 48)
    for i, p in enumerate(layers):
        layer = Layer(name=p["name"], offset=Point(*p["offset"]), opacity=p["opacity"], visible=p["visible"],
                      locked=p["locked"], blend_mode=p["blend_mode"], metadata=p["metadata"])
        x, y, w, h = p["rect"]
        if w and h:
            layer.surface.write(x, y, _noise(h, w, seed=i))
        doc.layers.append(layer)
    doc.active = doc.layers[min(active, len(doc.layers) - 1)]
    if mask is not None:
        x, y, w, h = mask
        doc.mask.surface.write(x, y, np.full((h, w), 99, np.uint8))
    path = tmp_path_factory.mktemp("any") / "any.ora"
    write_ora(path, doc)
    back = read_ora(path)
    clean = [_xml_safe_name(layer.name) for layer in doc.layers]
    for layer, name in zip(doc.layers, clean):
        layer.name = name
    _assert_same(doc, back)


def _xml_safe_name(name: str) -> str:
    """The name write_ora stores: characters XML cannot hold become U+FFFD, empty becomes "Layer"."""
    import re

    name = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]", "\ufffd", name)
    return name or "Layer"


_MYPAINT = "/usr/lib/mypaint"
_MYPAINT_SCRIPT = """
import json, sys
sys.path.insert(0, %r)
import lib.document
doc = lib.document.Document()
doc.load(sys.argv[1])
print(json.dumps([[l.name, round(l.opacity, 3), bool(l.visible), bool(l.locked)] for l in doc.layer_stack.deepiter()]))
doc.save(sys.argv[2])
""" % _MYPAINT


@pytest.mark.skipif(not (Path(_MYPAINT, "lib", "document.py").is_file() and Path("/usr/bin/python3").is_file()),
                    reason="MyPaint is not installed")
def test_mypaint_opens_our_file_and_we_open_what_it_saves(tmp_path):
    # MyPaint's own document library (the code behind its File > Open and Save), run headless.
    # Its composite is not compared: MyPaint 2 blends in linear light, not in sRGB like the
    # OpenRaster spec, Krita and we do.
    import json

    doc = _sample_doc()
    write_ora(tmp_path / "ours.ora", doc)
    run = subprocess.run(["/usr/bin/python3", "-c", _MYPAINT_SCRIPT, str(tmp_path / "ours.ora"), str(tmp_path / "mp.ora")],
                         capture_output=True, text=True, timeout=300, check=True)
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    expected = [["Inpaint mask", 1.0, False, False]] + [
        [layer.name, round(layer.opacity, 3), layer.visible, layer.locked] for layer in reversed(doc.layers)]
    assert seen == expected
    back = read_ora(tmp_path / "mp.ora")
    names = [layer.name for layer in back.layers]
    assert names[-len(doc.layers) - 1:] == [layer.name for layer in doc.layers] + ["Inpaint mask"]
    gen = back.layers[names.index(doc.layers[1].name)]
    assert gen.blend_mode is BlendMode.MULTIPLY and gen.locked and gen.opacity == pytest.approx(0.37)
    # MyPaint moves the canvas origin to the corner of its content (whole tiles); shifted by as
    # much, every layer holds the same pixels as ours
    def placed(layer):
        return content_bounds(layer.surface).offset(*layer.offset)

    shift = Point(*placed(back.layers[names.index("Background")])[:2]) - Point(*placed(doc.layers[0])[:2])
    for ours, theirs in zip(doc.layers, back.layers[-len(doc.layers) - 1:]):
        area = placed(ours)
        if area.is_empty:
            assert theirs.surface.is_empty, ours.name
            continue
        assert placed(theirs) == area.offset(*shift), ours.name
        a, b = ours.read(area).astype(int), theirs.read(area.offset(*shift)).astype(int)
        assert np.array_equal(a[..., 3], b[..., 3]), ours.name
        # MyPaint keeps colour premultiplied in 15 bits: compare what actually shows
        assert np.abs(a[..., :3] * a[..., 3:] - b[..., :3] * b[..., 3:]).max() <= 255, ours.name


def test_pixels_moved_past_the_edge_come_back_and_far_ones_do_not(tmp_path):
    # reading keeps the canvas and one canvas size around it (kept_area): a layer dragged partly off
    # the canvas survives a save and a reopen; a hostile file still cannot make huge layers
    doc = Document(40, 30)
    moved = Layer(name="Moved", offset=Point(30, -5))
    moved.surface.write(0, 0, _noise(20, 20, 3, alpha=255))  # document (30..50, -5..15)
    far = Layer(name="Far", offset=Point(70, 0))
    far.surface.write(0, 0, _noise(10, 30, 4, alpha=255))  # document (70..100, 0..10); kept up to x = 80
    doc.layers += [moved, far]
    write_ora(tmp_path / "m.ora", doc)
    back_moved, back_far = read_ora(tmp_path / "m.ora").layers
    assert back_moved.offset == Point(30, -5)
    assert back_moved.surface.content_bounds() == Bounds(0, 0, 20, 20)
    assert back_moved.surface.equals(moved.surface)
    assert back_far.surface.content_bounds() == Bounds(0, 0, 10, 10)
    assert np.array_equal(back_far.surface.read(Bounds(0, 0, 10, 10)), far.surface.read(Bounds(0, 0, 10, 10)))