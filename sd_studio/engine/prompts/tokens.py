"""Prompt tokens as CLIP sees them: counting and A1111-style 75-token chunks, with the bundled tokenizer."""

from __future__ import annotations

import functools

from sd_studio.bundled import resource_path

TOKENIZER_DIR = resource_path("tokenizers", "clip")
CLIP_WINDOW = 75  # tokens per chunk; the text encoder sees 77 with the start and end tokens
COMMA_BACKTRACK = 20  # A1111's comma_padding_backtrack: a full chunk breaks after a comma this close to its end


@functools.lru_cache(maxsize=4)
def clip_tokenizer(pad_token: str = "<|endoftext|>"):
    """The bundled CLIP BPE tokenizer (a transformers CLIPTokenizer; "!" pads for OpenCLIP encoders), loaded once."""
    from transformers import CLIPTokenizer  # imports no torch; kept lazy so importing this module stays cheap

    return CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR), pad_token=pad_token)


def token_ids(text: str) -> list[int]:
    """The prompt's token ids without start/end tokens and without truncation."""
    # verbose=False: long prompts are expected here (they are chunked), so no "longer than 77" warning
    return clip_tokenizer()(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]


def count_tokens(text: str) -> int:
    """How many CLIP tokens the prompt uses (the "n" in A1111's "n/75"); start and end tokens not counted."""
    return len(token_ids(text))


def token_usage(text: str) -> tuple[int, int]:
    """(tokens used, tokens available in the chunks used) as A1111 shows them, e.g. (80, 150)."""
    chunks = chunk_token_ids(text)
    return sum(len(c) for c in chunks), CLIP_WINDOW * len(chunks)


def chunk_token_ids(text: str) -> list[list[int]]:
    """The prompt's token ids cut into chunks of at most CLIP_WINDOW, as A1111 cuts them.

    A chunk that fills up breaks after its last comma when that comma is within COMMA_BACKTRACK
    tokens of the end, so phrases are not split across chunks. An empty prompt is one empty chunk.
    """
    comma = clip_tokenizer().convert_tokens_to_ids(",</w>")
    chunks: list[list[int]] = []
    chunk: list[int] = []
    last_comma = -1
    for token in token_ids(text):
        if token == comma:
            last_comma = len(chunk)
        elif len(chunk) == CLIP_WINDOW and last_comma != -1 and len(chunk) - last_comma <= COMMA_BACKTRACK:
            moved = chunk[last_comma + 1 :]
            chunks.append(chunk[: last_comma + 1])
            chunk, last_comma = moved, -1
        if len(chunk) == CLIP_WINDOW:
            chunks.append(chunk)
            chunk, last_comma = [], -1
        chunk.append(token)
    if chunk or not chunks:
        chunks.append(chunk)
    return chunks


def window_ids(chunk: list[int], pad_token_id: int | None = None) -> list[int]:
    """One chunk as the 77 ids a CLIP text encoder takes: start, the chunk, end, then padding.

    pad_token_id defaults to the end token (SD 1.x and A1111's choice); pass 0 ("!") for OpenCLIP encoders.
    """
    if len(chunk) > CLIP_WINDOW:
        raise ValueError(f"a chunk holds at most {CLIP_WINDOW} tokens, got {len(chunk)}")
    tokenizer = clip_tokenizer()
    pad = tokenizer.eos_token_id if pad_token_id is None else pad_token_id
    ids = [tokenizer.bos_token_id, *chunk, tokenizer.eos_token_id]
    return ids + [pad] * (CLIP_WINDOW + 2 - len(ids))


def prompt_chunks(text: str) -> tuple[int, int]:
    """(tokens, chunks) of a prompt as the engine encodes it: emphasis syntax, BREAK and <lora:...> tags read as A1111 reads them."""
    from sd_studio.engine.prompts.embeds import chunk_tokens, weighted_tokens

    tokenizer = clip_tokenizer()
    pairs = weighted_tokens(tokenizer, text)
    chunks = chunk_tokens(pairs, CLIP_WINDOW, tokenizer.convert_tokens_to_ids(",</w>"))
    return sum(1 for token, _ in pairs if token is not None), len(chunks)


def long_prompt_note(label: str, text: str) -> str | None:
    """A one-line note when the prompt is over CLIP's window, e.g. "prompt: 92 tokens, 2 chunks of 75 (...)"; else None."""
    if not text:
        return None
    count, chunks = prompt_chunks(text)
    if count <= CLIP_WINDOW:
        return None
    return f"{label}: {count} tokens, {chunks} chunks of {CLIP_WINDOW} (see README: long prompts)"
