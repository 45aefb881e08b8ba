"""The bundled CLIP tokenizer gives OpenAI's ids; counting and A1111-style chunking."""

from __future__ import annotations

import html
import json
import subprocess
import sys

import pytest
import regex

from sd_studio.engine.prompts import tokens
from sd_studio.engine.prompts.tokens import (
    CLIP_WINDOW,
    chunk_token_ids,
    count_tokens,
    token_ids,
    token_usage,
    window_ids,
)


class ReferenceTokenizer:
    """OpenAI CLIP's simple_tokenizer.py algorithm (ftfy left out: it changes nothing in these prompts).

    It rebuilds the vocabulary from merges.txt the way simple_tokenizer builds it from the BPE file, so
    the test also checks that vocab.json holds the same ids in the same order.
    """

    def __init__(self, merges_path):
        lines = merges_path.read_text(encoding="utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1:] if line]
        byte_encoder = _bytes_to_unicode()
        vocab = list(byte_encoder.values())
        vocab = vocab + [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.byte_encoder = byte_encoder
        self.encoder = {t: i for i, t in enumerate(vocab)}
        self.bpe_ranks = {m: i for i, m in enumerate(merges)}
        self.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}
        self.pat = regex.compile(
            r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = _pairs(word)
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new_word.extend(word[i:j])
                    i = j
                except ValueError:
                    new_word.extend(word[i:])
                    break
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = _pairs(word)
        result = " ".join(word)
        self.cache[token] = result
        return result

    def encode(self, text):
        text = html.unescape(html.unescape(text)).strip()
        text = " ".join(text.split()).strip().lower()
        ids = []
        for token in regex.findall(self.pat, text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return ids


def _bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def _pairs(word):
    return {(a, b) for a, b in zip(word, word[1:])}


@pytest.fixture(scope="module")
def reference():
    return ReferenceTokenizer(tokens.TOKENIZER_DIR / "merges.txt")


PROMPTS = [
    "a photo of an astronaut riding a horse on mars",
    "masterpiece, best quality, (detailed face:1.2), 8k uhd, dslr, soft lighting, film grain, Fujifilm XT3",
    "Portrait of a young woman, oil painting by Rembrandt van Rijn; chiaroscuro!!!",
    "   extra   spaces\tand\nnewlines   ",
    "don't can't we're they've I'm you'll he'd",
    "café crème brûlée, naïve façade, Zürich, 東京 タワー, 🚀 rocket",
    "lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, fewer digits, cropped",
    "<|startoftext|>special<|endoftext|> tokens in text",
    "numbers 1234567890 and 3.14159 and 1,000,000",
    "",
]


def test_vocab_has_openai_layout():
    vocab = json.loads((tokens.TOKENIZER_DIR / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 49408
    assert sorted(vocab.values()) == list(range(49408))
    assert vocab["!"] == 0 and vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert vocab["a</w>"] == 320 and vocab["photo</w>"] == 1125  # ids every SD text encoder was trained with


@pytest.mark.parametrize("prompt", PROMPTS)
def test_ids_match_openai_simple_tokenizer(prompt, reference):
    assert token_ids(prompt) == reference.encode(prompt)


def test_full_encoding_wraps_with_start_and_end():
    tok = tokens.clip_tokenizer()
    ids = tok("a photo of a cat")["input_ids"]
    assert ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tok.model_max_length == 77


def test_openclip_pad_token_is_exclamation_mark():
    tok = tokens.clip_tokenizer("!")
    assert tok.pad_token == "!" and tok.pad_token_id == 0
    padded = tok("a cat", padding="max_length", max_length=77)["input_ids"]
    assert padded[:4] == [49406, 320, 2368, 49407] and set(padded[4:]) == {0}


def test_count_tokens():
    assert count_tokens("") == 0
    assert count_tokens("a photo of a cat") == 5
    assert count_tokens("a, " * 100) == 200


def test_long_prompt_counts_without_warning(caplog, capfd):
    assert count_tokens("cat " * 100) == 100
    assert "longer than the specified maximum" not in caplog.text + "".join(capfd.readouterr())


def test_token_usage_like_a1111():
    assert token_usage("") == (0, 75)
    assert token_usage("a photo of a cat") == (5, 75)
    assert token_usage(" ".join(["cat"] * 80)) == (80, 150)


def test_short_prompt_is_one_chunk():
    assert chunk_token_ids("a photo of a cat") == [[320, 1125, 539, 320, 2368]]
    assert chunk_token_ids("") == [[]]


def test_long_prompt_without_commas_cuts_at_75():
    prompt = " ".join(["cat"] * 160)
    chunks = chunk_token_ids(prompt)
    assert [len(c) for c in chunks] == [75, 75, 10]
    assert sum(chunks, []) == token_ids(prompt)


def test_full_chunk_breaks_after_a_near_comma():
    # 70 words, a comma, then 20 more words: the first chunk ends at the comma (71 tokens)
    prompt = " ".join(["cat"] * 70) + ", " + " ".join(["dog"] * 20)
    chunks = chunk_token_ids(prompt)
    comma = tokens.clip_tokenizer().convert_tokens_to_ids(",</w>")
    assert [len(c) for c in chunks] == [71, 20]
    assert chunks[0][-1] == comma
    assert sum(chunks, []) == token_ids(prompt)


def test_far_comma_does_not_break():
    # the comma sits 25 tokens before the end of the full chunk: beyond the 20-token backtrack
    prompt = " ".join(["cat"] * 49) + ", " + " ".join(["dog"] * 40)
    assert [len(c) for c in chunk_token_ids(prompt)] == [75, 15]


def test_window_ids():
    chunk = [320, 2368]
    ids = window_ids(chunk)
    assert len(ids) == CLIP_WINDOW + 2
    assert ids[:4] == [49406, 320, 2368, 49407] and set(ids[4:]) == {49407}
    assert set(window_ids(chunk, pad_token_id=0)[4:]) == {0}
    assert len(window_ids(list(range(75)))) == 77
    with pytest.raises(ValueError):
        window_ids(list(range(76)))


def test_counting_imports_no_torch():
    code = (
        "import sys; from sd_studio.engine.prompts.tokens import count_tokens; "
        "n = count_tokens('a photo of a cat'); print(n, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["5", "False"]


def test_prompt_chunks_count_what_the_engine_encodes():
    from sd_studio.engine.prompts.tokens import long_prompt_note, prompt_chunks

    plain = "a red fox in the snow"
    assert prompt_chunks(plain) == (count_tokens(plain), 1)
    # Emphasis syntax and <lora:...> tags are not encoded, so they are not counted; BREAK starts a chunk.
    assert prompt_chunks("(a red fox:1.3) in the [snow] <lora:style:0.8>") == (count_tokens(plain), 1)
    assert prompt_chunks("a red fox BREAK in the snow") == (count_tokens(plain), 2)
    long = "a red fox in the snow, " * 14
    assert prompt_chunks(long) == (98, 2)
    assert long_prompt_note("prompt", long) == "prompt: 98 tokens, 2 chunks of 75 (see README: long prompts)"
    full = "a red fox, " * 18 + "a red fox"
    assert count_tokens(full) == 75 and long_prompt_note("prompt", full) is None  # exactly one window
    assert long_prompt_note("negative prompt", full + " tail") == (
        "negative prompt: 76 tokens, 2 chunks of 75 (see README: long prompts)")
