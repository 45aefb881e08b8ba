"""A1111 emphasis syntax: parsing, and its effect on the embeddings."""

from __future__ import annotations

import pytest

from sd_studio.engine.prompts.weights import parse_emphasis


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a red fox", [("a red fox", 1.0)]),
        ("", [("", 1.0)]),
        ("a (red:1.5) fox", [("a ", 1.0), ("red", 1.5), (" fox", 1.0)]),
        ("(red)", [("red", pytest.approx(1.1))]),
        ("((red))", [("red", pytest.approx(1.21))]),
        ("[red]", [("red", pytest.approx(1 / 1.1))]),
        ("(a (b:2) c:0.5)", [("a ", 0.5), ("b", 1.0), (" c", 0.5)]),
        (r"\(not emphasis\)", [("(not emphasis)", 1.0)]),
        ("(unclosed", [("unclosed", pytest.approx(1.1))]),
        ("a BREAK b", [("a", 1.0), ("", None), ("b", 1.0)]),
        ("time: noon", [("time: noon", 1.0)]),
        ("(x:1.2.3)", [("x:1.2.3)", 1.0)]),  # not a number: kept as text, never an error
    ],
)
def test_parse_emphasis_reads_prompts_as_a1111_does(text, expected):
    assert parse_emphasis(text) == expected


def test_emphasis_scales_the_tokens_embeddings(tiny_sd_dir):
    import torch

    from sd_studio.engine.models.loading import load_model
    from sd_studio.engine.prompts.embeds import encode_prompts, prompt_token_count

    pipe = load_model(str(tiny_sd_dir), device="cpu").pipeline("txt2img")

    def embeds(text):
        return encode_prompts(pipe, "sd1", text, "", "cpu", torch.float32)["prompt_embeds"]

    plain = embeds("a red fox")
    assert torch.equal(embeds("a (red:1) fox"), plain)  # weight 1 is the plain prompt
    assert prompt_token_count(pipe.tokenizer, "a (red:1.5) fox") == prompt_token_count(pipe.tokenizer, "a red fox")
    heavy = embeds("a (red:1.5) fox")
    assert heavy.shape == plain.shape and not torch.allclose(heavy, plain)
    torch.testing.assert_close(heavy.mean(), plain.mean())  # A1111 restores the chunk's mean
    assert embeds("a BREAK fox").shape[1] == 2 * 77  # BREAK starts a new chunk
