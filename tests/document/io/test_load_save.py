"""load_document / save_document: flat images and OpenRaster chosen by content and extension."""

import zipfile

import numpy as np
import pytest

from sd_studio.document.document import Document
from sd_studio.document.io import (
    document_parameters,
    document_text_chunks,
    is_openraster,
    load_document,
    save_document,
)
from sd_studio.document.io.images import open_image, save_image
from sd_studio.errors import FileError

TEXT = "a lighthouse\nNegative prompt: fog\nSteps: 12, Sampler: Euler, CFG scale: 6, Seed: 5"


def _pixels(h=20, w=30):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    return pixels


def test_a_flat_image_becomes_one_background_layer_with_its_parameters(tmp_path):
    save_image(tmp_path / "gen.png", _pixels(), parameters=TEXT)
    doc = load_document(tmp_path / "gen.png")
    assert tuple(doc.size) == (30, 20)
    assert [layer.name for layer in doc.layers] == ["Background"]
    assert doc.active is doc.layers[0]
    assert doc.layers[0].metadata == {"parameters": TEXT}
    assert doc.metadata["parameters"] == TEXT
    assert np.array_equal(doc.composite(), _pixels())
    assert not doc.is_modified


def test_a_flat_image_without_parameters_has_empty_metadata(tmp_path):
    save_image(tmp_path / "plain.png", _pixels())
    doc = load_document(tmp_path / "plain.png")
    assert doc.layers[0].metadata == {} and doc.metadata == {}


def test_save_document_writes_the_composite_and_the_top_layers_parameters(tmp_path):
    doc = Document.new(16, 8, background=(0, 0, 255, 255))
    top = doc.add_layer("generated")
    top.surface.write(0, 0, np.full((8, 8, 4), (255, 0, 0, 255), np.uint8))
    doc.notify_pixels(top, None)
    top.metadata["parameters"] = TEXT
    save_document(tmp_path / "out.png", doc)
    image = open_image(tmp_path / "out.png")
    assert image.parameters == {"parameters": TEXT}
    assert image.pixels[4, 2].tolist() == [255, 0, 0, 255] and image.pixels[4, 12].tolist() == [0, 0, 255, 255]


def test_parameters_come_from_the_topmost_visible_layer_then_the_document():
    doc = Document.new(4, 4)
    assert document_parameters(doc) is None
    doc.metadata["parameters"] = "from the file"
    assert document_parameters(doc) == "from the file"
    low = doc.add_layer("low")
    low.metadata["parameters"] = "low"
    high = doc.add_layer("high")
    high.metadata["parameters"] = "high"
    assert document_parameters(doc) == "high"
    high.visible = False
    assert document_parameters(doc) == "low"


def test_save_document_options_reach_save_image(tmp_path):
    doc = Document.from_pixels(_pixels())
    save_document(tmp_path / "x.jpg", doc, quality=100, parameters="given")
    assert open_image(tmp_path / "x.jpg").parameters == {"parameters": "given"}


def test_openraster_round_trip_keeps_layers(tmp_path):
    doc = Document.new(10, 6)
    layer = doc.add_layer("paint")
    layer.surface.write(1, 1, np.full((2, 2, 4), (9, 8, 7, 255), np.uint8))
    layer.metadata["parameters"] = TEXT
    save_document(tmp_path / "project.ora", doc)
    assert is_openraster(tmp_path / "project.ora")
    back = load_document(tmp_path / "project.ora")
    assert [layer.name for layer in back.layers] == ["Background", "paint"]
    assert back.layers[1].metadata.get("parameters") == TEXT


def test_openraster_is_recognised_by_content_not_name(tmp_path):
    save_document(tmp_path / "project.ora", Document.new(4, 4))
    (tmp_path / "project.ora").rename(tmp_path / "renamed.png")
    assert is_openraster(tmp_path / "renamed.png")
    assert len(load_document(tmp_path / "renamed.png").layers) == 1


def test_a_zip_that_is_not_openraster_is_refused_with_the_reason(tmp_path):
    with zipfile.ZipFile(tmp_path / "archive.ora", "w") as archive:
        archive.writestr("mimetype", "application/zip")
    assert not is_openraster(tmp_path / "archive.ora")
    with pytest.raises(FileError, match=r"archive.ora: not an OpenRaster archive \(its mimetype is b'application/zip'\)"):
        load_document(tmp_path / "archive.ora")
    (tmp_path / "archive.ora").rename(tmp_path / "archive.png")  # not named .ora: refused as an image
    with pytest.raises(FileError, match="it is a ZIP file; sd-studio opens PNG"):
        load_document(tmp_path / "archive.png")


@pytest.mark.parametrize("content", [b"", b"GIF87 nearly", bytes(range(256)) * 4])
def test_other_bytes_named_ora_are_not_an_openraster_archive(tmp_path, content):
    path = tmp_path / "random.ora"
    path.write_bytes(content)
    with pytest.raises(FileError) as caught:
        load_document(path)
    assert str(caught.value) == f"{path}: not an OpenRaster archive (it is not a zip file)"


def test_an_image_named_ora_opens_as_the_image_it_is(tmp_path):
    save_image(tmp_path / "photo.png", _pixels())
    (tmp_path / "photo.png").rename(tmp_path / "photo.ora")
    assert np.array_equal(load_document(tmp_path / "photo.ora").composite(), _pixels())


COMFY_PROMPT = '{"3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 12}}}'
COMFY_WORKFLOW = '{"nodes": [{"id": 3, "type": "KSampler", "widgets_values": [5, "fixed", 12]}]}'


def test_other_tools_metadata_survives_a_png_to_png_save(tmp_path):
    save_image(tmp_path / "comfy.png", _pixels(), text={"prompt": COMFY_PROMPT, "workflow": COMFY_WORKFLOW})
    doc = load_document(tmp_path / "comfy.png")
    save_document(tmp_path / "again.png", doc)
    assert open_image(tmp_path / "again.png").parameters == {"prompt": COMFY_PROMPT, "workflow": COMFY_WORKFLOW}
    save_document(tmp_path / "mid.ora", doc)  # through a project file too
    save_document(tmp_path / "out.png", load_document(tmp_path / "mid.ora"))
    assert open_image(tmp_path / "out.png").parameters == {"prompt": COMFY_PROMPT, "workflow": COMFY_WORKFLOW}


def test_png_text_chunks_follow_the_a1111_parameters_and_only_generation_keys_are_taken(tmp_path):
    from PIL import Image

    save_image(tmp_path / "both.png", _pixels(), parameters=TEXT, text={"workflow": COMFY_WORKFLOW})
    with Image.open(tmp_path / "both.png") as im:
        assert list(im.text) == ["parameters", "workflow"]
    with pytest.raises(ValueError, match="not a generation metadata chunk"):
        save_image(tmp_path / "x.png", _pixels(), text={"title": "mine"})
    doc = Document.new(4, 4)
    doc.metadata.update({"title": "sample", "workflow": COMFY_WORKFLOW, "parameters": TEXT})
    assert document_text_chunks(doc) == {"workflow": COMFY_WORKFLOW}


def test_openraster_files_take_no_image_options(tmp_path):
    with pytest.raises(TypeError):
        save_document(tmp_path / "x.ora", Document.new(4, 4), quality=80)


def test_load_document_passes_the_pixel_limit(tmp_path):
    save_image(tmp_path / "big.png", _pixels())
    with pytest.raises(FileError, match="more than the limit of 100"):
        load_document(tmp_path / "big.png", max_pixels=100)


def test_an_image_wider_than_a_document_may_be_is_refused_from_its_header(tmp_path):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 2, 8, 0, 0, 0, 0))
    data = b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", zlib.compress(bytes(16))) + chunk(b"IEND", b"")
    (tmp_path / "wide.png").write_bytes(data)
    with pytest.raises(FileError, match="declares 40000 x 2 pixels; sd-studio edits images up to 32768"):
        load_document(tmp_path / "wide.png")
