"""`sd-studio info` and `sd-studio convert`, in-process on real files."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from sd_parsers import ParserManager

from sd_studio.cli import main
from sd_studio.document.document import Document
from sd_studio.document.io import load_document, save_document
from sd_studio.document.io.images import open_image, save_image

ROOT = Path(__file__).resolve().parents[1]
ROCKET = ROOT / "tests" / "data" / "rocket.jpg"
TEXT = ("a red fox in snow\nNegative prompt: blurry\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 24x16, Model hash: abc123, Model: sd15")


def _pixels(h=16, w=24):
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    return pixels


def test_info_on_a_photo(capsys):
    assert main(["info", str(ROCKET)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(ROCKET)
    assert "  size: 640x427" in out
    assert "  format: JPEG" in out
    assert "  colour mode: RGB (ICC profile converted to sRGB)" in out
    assert out[out.index("  layers: 1") + 1] == "    Background"
    assert "  generation parameters: none" in out


def test_info_shows_generation_parameters(tmp_path, capsys):
    save_image(tmp_path / "gen.png", _pixels(), parameters=TEXT)
    assert main(["info", str(tmp_path / "gen.png")]) == 0
    out = capsys.readouterr().out
    assert "  colour mode: RGB" in out
    assert "Prompt: a red fox in snow" in out
    assert "Negative prompt: blurry" in out
    assert "Seed: 42" in out and "Model: sd15" in out


def test_info_summarises_a_comfyui_png(tmp_path, capsys):
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dream.safetensors"}},
             "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a moonlit lake"}},
             "3": {"class_type": "KSampler", "inputs": {"seed": 9, "steps": 25, "cfg": 6, "sampler_name": "euler",
                                                        "positive": ["2", 0], "negative": ["2", 0]}}}
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(graph))
    Image.new("RGB", (8, 8)).save(tmp_path / "comfy.png", pnginfo=info)
    assert main(["info", str(tmp_path / "comfy.png")]) == 0
    out = capsys.readouterr().out
    assert "Checkpoint: dream.safetensors" in out and "Prompt: a moonlit lake" in out and "steps 25" in out


def test_info_on_an_animated_gif_names_the_frames(tmp_path, capsys):
    frames = [Image.new("RGB", (4, 4), c) for c in ("red", "blue")]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert main(["info", str(tmp_path / "a.gif")]) == 0
    assert "  format: GIF, 2 frames (the first is used)" in capsys.readouterr().out


def test_info_on_an_openraster_project_lists_layers_top_first(tmp_path, capsys):
    doc = Document.new(12, 10)
    layer = doc.add_layer("sky fix")
    layer.surface.write(0, 0, np.full((3, 3, 4), 200, np.uint8))
    layer.metadata["parameters"] = TEXT
    hidden = doc.add_layer("draft")
    hidden.visible = False
    save_document(tmp_path / "p.ora", doc)
    assert main(["info", str(tmp_path / "p.ora")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "  size: 12x10" in out and "  format: OpenRaster" in out
    start = out.index("  layers: 3 (top first)")
    assert out[start + 1:start + 4] == ["    draft (hidden)", "    sky fix", "    Background"]
    assert any("Prompt: a red fox in snow" in line for line in out)


def test_convert_png_to_jpeg_keeps_the_parameters_for_other_tools(tmp_path):
    save_image(tmp_path / "gen.png", _pixels(), parameters=TEXT)
    assert main(["convert", str(tmp_path / "gen.png"), str(tmp_path / "gen.jpg"), "--quality", "90"]) == 0
    image = open_image(tmp_path / "gen.jpg")
    assert image.format == "JPEG" and (image.width, image.height) == (24, 16)
    assert image.parameters == {"parameters": TEXT}
    parsed = ParserManager().parse(str(tmp_path / "gen.jpg"))
    assert parsed.full_prompt == "a red fox in snow" and parsed.samplers[0].parameters["seed"] == "42"


def test_convert_quality_is_applied(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "n.png")
    main(["convert", str(tmp_path / "n.png"), str(tmp_path / "low.jpg"), "--quality", "20"])
    main(["convert", str(tmp_path / "n.png"), str(tmp_path / "high.jpg"), "--quality", "95"])
    assert (tmp_path / "low.jpg").stat().st_size < (tmp_path / "high.jpg").stat().st_size


def test_convert_to_lossless_webp_is_exact(tmp_path):
    save_image(tmp_path / "in.png", _pixels())
    assert main(["convert", str(tmp_path / "in.png"), str(tmp_path / "out.webp"), "--quality", "100"]) == 0
    assert np.array_equal(open_image(tmp_path / "out.webp").pixels, _pixels())


def test_convert_image_to_ora_and_back_to_png(tmp_path):
    save_image(tmp_path / "in.png", _pixels(), parameters=TEXT)
    assert main(["convert", str(tmp_path / "in.png"), str(tmp_path / "mid.ora")]) == 0
    doc = load_document(tmp_path / "mid.ora")
    assert [layer.name for layer in doc.layers] == ["Background"]
    assert main(["convert", str(tmp_path / "mid.ora"), str(tmp_path / "out.png")]) == 0
    image = open_image(tmp_path / "out.png")
    assert np.array_equal(image.pixels, _pixels()) and image.parameters == {"parameters": TEXT}


def test_convert_flattens_a_layered_project(tmp_path):
    doc = Document.new(8, 8, background=(0, 0, 0, 255))
    top = doc.add_layer("half")
    top.surface.write(0, 0, np.full((8, 8, 4), (255, 255, 255, 255), np.uint8))
    top.opacity = 0.5
    save_document(tmp_path / "p.ora", doc)
    assert main(["convert", str(tmp_path / "p.ora"), str(tmp_path / "flat.png")]) == 0
    assert np.abs(open_image(tmp_path / "flat.png").pixels[..., 0].astype(int) - 128).max() <= 1


@pytest.mark.parametrize("argv_tail, reason", [
    (["missing.png", "out.png"], "missing.png: cannot open: no such file or folder"),
    (["in.png", "out.xyz"], "out.xyz: cannot tell the image format from the extension '.xyz'"),
    (["in.png", "nofolder/out.png"], "does not exist"),
    (["in.png", "out.ora", "--quality", "50"], "out.ora: --quality applies to JPEG and WebP"),
    (["notes.png", "out.png"], "notes.png: not an image in a supported format"),
])
def test_convert_errors_are_one_line_with_exit_2(tmp_path, monkeypatch, capsys, argv_tail, reason):
    monkeypatch.chdir(tmp_path)
    save_image(tmp_path / "in.png", _pixels())
    (tmp_path / "notes.png").write_text("not a picture")
    assert main(["convert", *argv_tail]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("sd-studio: error: ") and reason in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "notes.png"]  # nothing half-written


@pytest.mark.parametrize("quality", ["0", "101", "high"])
def test_a_bad_quality_is_an_argument_error(tmp_path, capsys, quality):
    with pytest.raises(SystemExit) as exited:
        main(["convert", "a.png", "b.jpg", "--quality", quality])
    assert exited.value.code == 2
    assert "--quality" in capsys.readouterr().err


def test_info_max_pixels_option(tmp_path, capsys):
    save_image(tmp_path / "x.png", _pixels())
    assert main(["info", "--max-pixels", "100", str(tmp_path / "x.png")]) == 2
    assert "declares 24 x 16 pixels, more than the limit of 100" in capsys.readouterr().err


def test_info_on_a_damaged_openraster_file(tmp_path, capsys):
    import zipfile

    with zipfile.ZipFile(tmp_path / "broken.ora", "w") as archive:
        archive.writestr("mimetype", "image/openraster", compress_type=zipfile.ZIP_STORED)
    assert main(["info", str(tmp_path / "broken.ora")]) == 2
    err = capsys.readouterr().err
    # the OpenRaster reader words its own messages: the path as given, a colon, the reason
    assert err == f"sd-studio: error: {tmp_path / 'broken.ora'}: not an OpenRaster archive (it has no stack.xml)\n"


@pytest.mark.parametrize("command", ["info", "convert"])
def test_random_bytes_named_ora_are_not_an_openraster_archive(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    Path("junk.ora").write_bytes(bytes(range(256)) * 8)
    argv = [command, "junk.ora"] + (["out.png"] if command == "convert" else [])
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "sd-studio: error: junk.ora: not an OpenRaster archive (it is not a zip file)\n"


def test_info_max_pixels_applies_to_openraster_too(tmp_path, capsys):
    doc = Document.new(12, 10)
    save_document(tmp_path / "p.ora", doc)
    assert main(["info", "--max-pixels", "100", str(tmp_path / "p.ora")]) == 2
    assert capsys.readouterr().err == (
        f"sd-studio: error: {tmp_path / 'p.ora'}: declares 12 x 10 pixels, more than the limit of 100\n")
    assert main(["info", "--max-pixels", "120", str(tmp_path / "p.ora")]) == 0


COMFY_PROMPT = json.dumps({
    "3": {"class_type": "KSampler", "inputs": {"seed": 99, "steps": 30, "cfg": 5.5, "sampler_name": "euler",
                                               "positive": ["6", 0], "negative": ["7", 0]}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a paper boat"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "rain"}},
})


def test_a_comfyui_png_keeps_its_graph_through_convert_and_info_shows_it_in_a_project(tmp_path, capsys):
    save_image(tmp_path / "comfy.png", _pixels(), text={"prompt": COMFY_PROMPT, "workflow": '{"nodes": []}'})
    assert main(["convert", str(tmp_path / "comfy.png"), str(tmp_path / "copy.png")]) == 0
    assert open_image(tmp_path / "copy.png").parameters == {"prompt": COMFY_PROMPT, "workflow": '{"nodes": []}'}
    assert main(["convert", str(tmp_path / "comfy.png"), str(tmp_path / "p.ora")]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "p.ora")]) == 0
    out = capsys.readouterr().out.splitlines()
    start = out.index("  generation parameters:")
    assert out[start + 1] == "    document:"
    assert any("a paper boat" in line for line in out[start + 2:])
    assert "  generation parameters: none" not in out


def test_a_png_made_a_project_shows_its_parameters_once(tmp_path, capsys):
    save_image(tmp_path / "gen.png", _pixels(), parameters=TEXT)
    assert main(["convert", str(tmp_path / "gen.png"), str(tmp_path / "p.ora")]) == 0
    assert main(["info", str(tmp_path / "p.ora")]) == 0
    out = capsys.readouterr().out
    assert out.count("a red fox in snow") == 1 and "document:" not in out


def test_unknown_blend_modes_are_warned_about_on_one_line_each(tmp_path, capsys):
    import io
    import zipfile

    png = io.BytesIO()
    Image.fromarray(np.full((4, 4, 4), 90, np.uint8)).save(png, "PNG")
    path = tmp_path / "krita.ora"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "image/openraster", compress_type=zipfile.ZIP_STORED)
        archive.writestr("stack.xml", '<image w="4" h="4"><stack><layer name="Glow" src="data/a.png" '
                                      'composite-op="krita:linear_light"/></stack></image>')
        archive.writestr("data/a.png", png.getvalue())
    warning = f'sd-studio: warning: {path}: layer "Glow" uses krita:linear_light which SD Studio shows as Normal\n'
    assert main(["info", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == warning and "    Glow" in out.splitlines()
    assert main(["convert", str(path), str(tmp_path / "out.png")]) == 0
    assert capsys.readouterr().err == warning
    assert open_image(tmp_path / "out.png").pixels[0, 0].tolist() == [90, 90, 90, 90]
