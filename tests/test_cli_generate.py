"""The generation subcommands end to end, in-process, on real files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sd_studio.cli import main
from sd_studio.cli_generate import ProgressBar, output_paths, read_mask
from sd_studio.document.io.parameters import parse_parameters
from sd_studio.engine.request import Progress


@pytest.fixture
def scratched(tmp_path):
    """A gradient photo with a white scratch, and the mask of the scratch, as PNG files."""
    h, w = 90, 120
    yy, xx = np.mgrid[0:h, 0:w]
    clean = np.stack([xx * 2, yy * 2, np.full_like(xx, 80)], axis=-1).astype(np.uint8)
    photo = clean.copy()
    photo[40:43, 10:110] = 255
    mask = np.zeros((h, w), np.uint8)
    mask[40:43, 10:110] = 255
    Image.fromarray(photo, "RGB").save(tmp_path / "photo.png")
    Image.fromarray(mask, "L").save(tmp_path / "mask.png")
    return tmp_path, clean, photo, mask


def test_inpaint_classical_writes_the_fill_with_parameters(scratched, capsys):
    folder, clean, photo, mask = scratched
    out = folder / "out.png"
    status = main(["inpaint", str(folder / "photo.png"), "--mask", str(folder / "mask.png"), "-o", str(out),
                   "--seed", "42", "--prompt", "remove the scratch, please"])
    assert status == 0
    written = Image.open(out)
    assert written.size == (120, 90)
    pixels = np.asarray(written.convert("RGB"))
    hole = mask > 0
    assert np.abs(pixels[hole].astype(int) - clean[hole]).mean() < 10
    import cv2

    far = cv2.dilate(mask, np.ones((9, 9), np.uint8)) == 0
    assert np.array_equal(pixels[far], photo[far])
    params = parse_parameters(written.info["parameters"])
    assert params["prompt"] == "remove the scratch, please"
    assert params["seed"] == 42 and params["sampler"] == "Telea" and params["model"] == "classical"
    err = capsys.readouterr().err
    assert "\r" in err and "1/1" in err


def test_variants_write_numbered_files(scratched):
    folder, *_ = scratched
    out = folder / "out.png"
    status = main(["inpaint", str(folder / "photo.png"), "--mask", str(folder / "mask.png"), "-o", str(out),
                   "--variants", "2", "--seed", "5", "--quiet"])
    assert status == 0
    assert not out.exists()
    seeds = [parse_parameters(Image.open(folder / f"out-{i}.png").info["parameters"])["seed"] for i in (1, 2)]
    assert seeds == [5, 6]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("sd-studio: error: ")
    return err[0]


def test_a_mask_of_another_size_is_an_error(scratched, capsys):
    folder, *_ = scratched
    Image.fromarray(np.zeros((10, 10), np.uint8), "L").save(folder / "small.png")
    status = main(["inpaint", str(folder / "photo.png"), "--mask", str(folder / "small.png"), "-o", str(folder / "o.png")])
    assert status == 2
    assert "same size" in _one_error_line(capsys)
    assert not (folder / "o.png").exists()


def test_a_missing_file_is_an_error(scratched, capsys):
    folder, *_ = scratched
    status = main(["inpaint", str(folder / "nope.png"), "--mask", str(folder / "mask.png"), "-o", str(folder / "o.png")])
    assert status == 2
    assert "nope.png" in _one_error_line(capsys)


def test_steps_out_of_range_is_an_error(scratched, capsys):
    folder, *_ = scratched
    status = main(["inpaint", str(folder / "photo.png"), "--mask", str(folder / "mask.png"), "-o", str(folder / "o.png"),
                   "--steps", "0", "--quiet"])
    assert status == 2
    assert "Steps" in _one_error_line(capsys)


def test_steps_not_a_number_is_an_error(scratched, capsys):
    folder, *_ = scratched
    with pytest.raises(SystemExit) as exit_info:
        main(["inpaint", str(folder / "photo.png"), "--mask", str(folder / "mask.png"), "-o", str(folder / "o.png"),
              "--steps", "many"])
    assert exit_info.value.code == 2
    assert "many" in _one_error_line(capsys)


def test_an_empty_mask_is_an_error(scratched, capsys):
    folder, *_ = scratched
    Image.fromarray(np.zeros((90, 120), np.uint8), "L").save(folder / "empty.png")
    status = main(["inpaint", str(folder / "photo.png"), "--mask", str(folder / "empty.png"), "-o", str(folder / "o.png")])
    assert status == 2
    assert "empty" in _one_error_line(capsys)


def test_img2img_without_a_model_is_an_error(scratched, capsys):
    folder, *_ = scratched
    status = main(["img2img", str(folder / "photo.png"), "--prompt", "x", "-o", str(folder / "o.png")])
    assert status == 2
    assert "model" in _one_error_line(capsys)


def test_read_mask_converts_like_pillow_l(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (12, 17, 3), np.uint8)
    Image.fromarray(rgb, "RGB").save(tmp_path / "m.png")
    expected = np.asarray(Image.fromarray(rgb, "RGB").convert("L"))
    assert np.array_equal(read_mask(tmp_path / "m.png"), expected)


def test_output_paths(tmp_path):
    out = tmp_path / "x.png"
    assert output_paths(out, 1) == [out]
    assert output_paths(out, 3) == [tmp_path / "x-1.png", tmp_path / "x-2.png", tmp_path / "x-3.png"]


def test_progress_bar_draws_one_line():
    import io

    stream = io.StringIO()
    bar = ProgressBar(stream)
    bar(Progress("denoising", 5, 20))
    bar(Progress("denoising", 20, 20))
    bar.close()
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.count("\r") == 2 and "20/20" in text


def test_models_lists_a_diffusers_folder(tmp_path, capsys):
    folder = tmp_path / "models" / "my-model"
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    assert main(["models", "--folder", str(tmp_path / "models")]) == 0
    out = capsys.readouterr().out
    assert "my-model" in out and "folder" in out


def test_ctrl_c_asks_the_engine_to_cancel_instead_of_killing_it(capsys):
    import signal

    from sd_studio.cli_generate import _cancel_on_interrupt

    before = signal.getsignal(signal.SIGINT)
    with _cancel_on_interrupt() as cancelled:
        assert not cancelled()
        # Call the installed handler as the interpreter would: a real process-wide SIGINT can land
        # on one of the native threads torch, OpenVINO and Qt keep running in this test process.
        signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        assert cancelled()
    assert signal.getsignal(signal.SIGINT) is before
    assert "cancelling" in capsys.readouterr().err


def test_an_unwritable_output_is_refused_before_generating(scratched, capsys):
    folder, *_ = scratched
    args = ["inpaint", str(folder / "photo.png"), "--mask", str(folder / "mask.png")]
    assert main(args + ["-o", str(folder / "out.xyz")]) == 2
    assert "format" in _one_error_line(capsys)
    assert main(args + ["-o", str(folder / "missing" / "out.png")]) == 2
    assert "does not exist" in _one_error_line(capsys)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("style.safetensors", ("style.safetensors", 1.0)),
        ("style.safetensors:0.4", ("style.safetensors", 0.4)),
        ("C:/loras/style.safetensors", ("C:/loras/style.safetensors", 1.0)),
        ("C:/loras/style.safetensors:-1.5", ("C:/loras/style.safetensors", -1.5)),
        ("odd:name.safetensors", ("odd:name.safetensors", 1.0)),
    ],
)
def test_lora_arguments_take_an_optional_weight(text, expected):
    from sd_studio.cli_generate import _lora

    assert _lora(text) == expected


def test_whole_image_and_match_color_reach_the_classical_fill(scratched):
    folder, clean, photo, mask = scratched
    out = folder / "whole.png"
    args = ["inpaint", str(folder / "photo.png"), "--mask", str(folder / "mask.png"), "-o", str(out), "--quiet"]
    assert main(args + ["--whole-image", "--match-color"]) == 0
    params = parse_parameters(Image.open(out).info["parameters"])
    width, height = Image.open(folder / "photo.png").size
    assert params["width"] == width and params["height"] == height  # the region was the whole image


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny random SD model folder, built by the engine tests' own helper."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent / "engine" / "conftest.py"
    spec = importlib.util.spec_from_file_location("engine_tiny_models", path)
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    return tiny.save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sd")


LONG_PROMPT = "a red fox in the snow, " * 14  # 98 tokens (7 each) with the bundled CLIP tokenizer


def _notes(err: str) -> list[str]:
    return [line for line in err.splitlines() if "chunks of 75" in line]


def test_a_prompt_over_75_tokens_is_noted_once_on_stderr(scratched, tiny_model, capsys):
    import torch

    from sd_studio.engine.prompts.tokens import prompt_chunks

    folder, *_ = scratched
    threads = torch.get_num_threads()
    common = ["--model", str(tiny_model), "--steps", "1", "--seed", "1", "--device", "cpu", "--cpu-backend", "torch"]
    try:
        assert main(["txt2img", "--width", "64", "--height", "64", "-o", str(folder / "t.png"), "--prompt", LONG_PROMPT,
                     "--negative-prompt", "blurry, " * 40, *common]) == 0
        notes = _notes(capsys.readouterr().err)
        assert notes == [
            "prompt: 98 tokens, 2 chunks of 75 (see README: long prompts)",
            f"negative prompt: {prompt_chunks('blurry, ' * 40)[0]} tokens, 2 chunks of 75 (see README: long prompts)",
        ]
        inpaint = ["inpaint", str(folder / "photo.png"), "--mask", str(folder / "mask.png"), "-o", str(folder / "i.png")]
        assert main(inpaint + ["--prompt", LONG_PROMPT, "--quiet", *common]) == 0
        assert capsys.readouterr().err == ""  # --quiet: nothing at all
        assert main(inpaint + ["--prompt", "a red fox in the snow", *common]) == 0
        assert _notes(capsys.readouterr().err) == []  # short: no note
    finally:
        torch.set_num_threads(threads)
