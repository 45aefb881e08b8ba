"""A1111 parameters text: exact format, the inverse parse, other tools reading it (sd-parsers)."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sd_parsers import ParserManager

from sd_studio.document.io.images import save_image
from sd_studio.document.io.parameters import describe_metadata, format_parameters, parse_parameters

FULL = {
    "prompt": "a castle on a hill, golden hour",
    "negative_prompt": "blurry, lowres",
    "steps": 20,
    "sampler": "Euler a",
    "cfg_scale": 7.5,
    "seed": 1234567890,
    "width": 512,
    "height": 768,
    "model_hash": "6ce0161689",
    "model": "v1-5-pruned-emaonly",
    "denoising_strength": 0.75,
}
FULL_TEXT = (
    "a castle on a hill, golden hour\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 1234567890, Size: 512x768, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.75"
)


def test_format_matches_a1111_exactly():
    assert format_parameters(FULL) == FULL_TEXT


def test_the_negative_line_is_left_out_when_empty_and_whole_floats_lose_their_point():
    text = format_parameters({"prompt": "cat", "negative_prompt": "", "steps": 30, "sampler": "DDIM", "cfg_scale": 7.0, "seed": 1})
    assert text == "cat\nSteps: 30, Sampler: DDIM, CFG scale: 7, Seed: 1"


def test_key_order_is_a1111s_whatever_the_dict_order_and_extras_come_last():
    shuffled = dict(reversed(list(FULL.items())))
    shuffled["Schedule type"] = "Karras"
    shuffled["Inpaint area"] = "Only masked"
    assert format_parameters(shuffled) == FULL_TEXT + ", Schedule type: Karras, Inpaint area: Only masked"


def test_a_value_starting_with_a_quote_or_padded_with_spaces_survives():
    p = {"prompt": "p", "steps": 1, "sampler": '"x"', "seed": 2, "Note": " padded "}
    assert parse_parameters(format_parameters(p)) == dict(p, negative_prompt="")


def test_values_with_commas_colons_or_newlines_are_quoted_like_a1111():
    text = format_parameters({"prompt": "p", "steps": 1, "sampler": "a, b", "seed": 2, "Lora hashes": "x: 1, y: 2"})
    assert text == 'p\nSteps: 1, Sampler: "a, b", Seed: 2, Lora hashes: "x: 1, y: 2"'
    parsed = parse_parameters(text)
    assert parsed["sampler"] == "a, b"
    assert parsed["Lora hashes"] == "x: 1, y: 2"


def test_none_values_are_left_out():
    assert format_parameters({"prompt": "p", "steps": 5, "seed": None, "sampler": "X", "cfg_scale": 2}) == "p\nSteps: 5, Sampler: X, CFG scale: 2"


def test_a_parameter_name_that_cannot_be_read_back_is_refused():
    with pytest.raises(ValueError):
        format_parameters({"prompt": "p", "bad: name": 1})


def test_parse_is_the_inverse_of_format():
    assert parse_parameters(FULL_TEXT) == FULL


def test_parse_keeps_multi_line_prompts_and_other_tools_keys():
    text = (
        "line one\nline two\n"
        "Negative prompt: neg one\nneg two\n"
        'Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 5, Seed: 99, Size: 832x1216, '
        'Model hash: abc, Model: sdxl, Lora hashes: "detail: 0a1b, style: 2c3d", '
        'Hashes: {"model": "abc"}, Version: v1.10.1'
    )
    p = parse_parameters(text)
    assert p["prompt"] == "line one\nline two"
    assert p["negative_prompt"] == "neg one\nneg two"
    assert (p["steps"], p["seed"], p["cfg_scale"], p["width"], p["height"]) == (28, 99, 5.0, 832, 1216)
    assert p["sampler"] == "DPM++ 2M"
    assert p["Schedule type"] == "Karras"
    assert p["Lora hashes"] == "detail: 0a1b, style: 2c3d"
    assert p["Version"] == "v1.10.1"
    assert "Hashes" in p


def test_parse_of_a_bare_prompt_gives_only_the_prompt():
    assert parse_parameters("just a prompt, with commas") == {"prompt": "just a prompt, with commas", "negative_prompt": ""}


def test_parse_keeps_unparseable_numbers_as_text():
    p = parse_parameters("x\nSteps: many, Sampler: Euler, Seed: -1, CFG scale: high")
    assert p["steps"] == "many" and p["seed"] == -1 and p["cfg_scale"] == "high"


_words = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
_prompts = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=20).filter(lambda s: s.strip() == s)


@settings(max_examples=150, deadline=None)
@given(
    prompt=_prompts.filter(lambda s: not s.startswith("Negative prompt:") and ":" not in s),
    sampler=_words,
    steps=st.integers(1, 150),
    seed=st.integers(0, 2**32 - 1),
    cfg=st.floats(1, 30, allow_nan=False).map(lambda f: round(f, 2)),
    extra=_words,
)
def test_round_trip_of_arbitrary_values(prompt, sampler, steps, seed, cfg, extra):
    """Any setting value survives, whatever quotes, commas, colons, spaces or newlines it holds."""
    p = {"prompt": prompt, "negative_prompt": "", "steps": steps, "sampler": sampler, "cfg_scale": cfg, "seed": seed, "Extra": extra}
    assert parse_parameters(format_parameters(p)) == p


# -- other tools read what we write -------------------------------------------------------------
SIMPLE = dict(FULL, prompt="a red fox in snow, detailed", negative_prompt="blurry, watermark")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_sd_parsers_reads_our_files(tmp_path, suffix):
    path = tmp_path / f"generated{suffix}"
    pixels = np.zeros((16, 24, 4), np.uint8)
    pixels[..., 3] = 255
    save_image(path, pixels, parameters=format_parameters(SIMPLE))
    info = ParserManager().parse(str(path))
    assert info is not None, "sd-parsers found no parameters"
    assert info.full_prompt == SIMPLE["prompt"]
    assert info.full_negative_prompt == SIMPLE["negative_prompt"]
    sampler = info.samplers[0]
    assert sampler.name == "Euler a"
    assert sampler.parameters["seed"] == "1234567890"
    assert sampler.parameters["steps"] == "20"
    assert sampler.parameters["cfg_scale"] == "7.5"
    assert sampler.model.name == "v1-5-pruned-emaonly"
    assert sampler.model.hash == "6ce0161689"


def test_sd_parsers_reads_non_latin_text_in_png(tmp_path):
    path = tmp_path / "unicode.png"
    p = dict(SIMPLE, prompt="雪の中の赤い狐 🦊", negative_prompt="ぼやけた")
    save_image(path, np.full((4, 4, 4), 255, np.uint8), parameters=format_parameters(p))
    info = ParserManager().parse(str(path))
    assert info.full_prompt == p["prompt"] and info.full_negative_prompt == p["negative_prompt"]


# -- describe_metadata -----------------------------------------------------------------------------
COMFY_PROMPT = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 156680208700286, "steps": 20, "cfg": 8, "sampler_name": "euler", "scheduler": "normal",
        "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "beautiful scenery nature glass bottle", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
}


def test_describe_a1111_text():
    lines = describe_metadata({"parameters": FULL_TEXT})
    assert lines[0].startswith("Generation parameters (A1111")
    assert "  Prompt: a castle on a hill, golden hour" in lines
    assert "  Negative prompt: blurry, lowres" in lines
    assert "  Size: 512x768" in lines
    assert "  Seed: 1234567890" in lines


def test_describe_comfyui_prompt_graph_follows_links_to_the_prompts():
    lines = describe_metadata({"prompt": json.dumps(COMFY_PROMPT), "workflow": json.dumps({"nodes": [{}, {}, {}]})})
    text = "\n".join(lines)
    assert "Checkpoint: v1-5-pruned-emaonly.safetensors" in text
    assert "Prompt: beautiful scenery nature glass bottle" in text
    assert "Negative prompt: text, watermark" in text
    assert "steps 20" in text and "cfg 8" in text and "seed 156680208700286" in text and "sampler_name euler" in text
    assert "ComfyUI workflow: 3 nodes" in text


def test_describe_comfyui_workflow_alone_reads_widget_values():
    workflow = {"nodes": [
        {"type": "CheckpointLoaderSimple", "widgets_values": ["sdxl.safetensors"]},
        {"type": "CLIPTextEncode", "title": "Positive", "widgets_values": ["a cat"]},
        {"type": "KSampler", "widgets_values": [42, "fixed", 25, 6.5, "dpmpp_2m", "karras", 1.0]},
    ]}
    text = "\n".join(describe_metadata({"workflow": json.dumps(workflow)}))
    assert "Checkpoint: sdxl.safetensors" in text
    assert "Text (Positive): a cat" in text
    assert "steps 25" in text and "seed 42" in text and "dpmpp_2m" in text


def test_describe_invokeai_metadata():
    meta = {"positive_prompt": "a lighthouse", "negative_prompt": "fog", "seed": 7, "steps": 30,
            "cfg_scale": 7.5, "scheduler": "euler", "model": {"name": "sd-1.5"}, "width": 512, "height": 512}
    text = "\n".join(describe_metadata({"invokeai_metadata": json.dumps(meta)}))
    assert "Prompt: a lighthouse" in text and "Negative prompt: fog" in text and "Model: sd-1.5" in text
    assert "seed 7" in text and "steps 30" in text


def test_describe_broken_json_and_unknown_keys_as_shortened_text():
    lines = describe_metadata({"prompt": "{not json", "Software": "x" * 1000})
    assert lines[0] == "prompt: {not json"
    assert lines[1].startswith("Software: xxx") and len(lines[1]) < 500


def test_describe_novelai_comment():
    comment = json.dumps({"prompt": "a knight", "uc": "lowres", "steps": 28, "scale": 5, "seed": 11, "sampler": "k_euler"})
    text = "\n".join(describe_metadata({"Software": "NovelAI", "Comment": comment}))
    assert "Software: NovelAI" in text
    assert "Prompt: a knight" in text and "Negative prompt: lowres" in text and "steps 28" in text and "seed 11" in text
