"""Prompt embeddings in 75-token chunks, as AUTOMATIC1111 makes them, so long prompts are not cut at 77 tokens."""

from __future__ import annotations

COMMA_BACKTRACK = 20  # a full chunk breaks after a comma this close to its end (A1111's default)


def chunk_ids(ids: list[int], window: int = 75, comma_id: int | None = None) -> list[list[int]]:
    """Token ids (without start/end) cut into chunks of at most `window`; a chunk breaks after a late comma.

    An empty prompt is one empty chunk, so it still encodes to one window.
    """
    chunks: list[list[int]] = []
    chunk: list[int] = []
    last_comma = -1
    for token in ids:
        if comma_id is not None and token == comma_id:
            last_comma = len(chunk)
        elif len(chunk) == window and last_comma != -1 and len(chunk) - last_comma <= COMMA_BACKTRACK:
            moved = chunk[last_comma + 1 :]
            chunks.append(chunk[: last_comma + 1])
            chunk, last_comma = moved, -1
        if len(chunk) == window:
            chunks.append(chunk)
            chunk, last_comma = [], -1
        chunk.append(token)
    if chunk or not chunks:
        chunks.append(chunk)
    return chunks


def _windows(tokenizer, text: str) -> list[list[int]]:
    """The prompt as full encoder windows: [start, chunk..., end, pad...] of model_max_length ids each."""
    length = tokenizer.model_max_length
    ids = tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    comma = comma if isinstance(comma, int) and comma != tokenizer.unk_token_id else None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    windows = []
    for chunk in chunk_ids(ids, length - 2, comma):
        window = [tokenizer.bos_token_id, *chunk, tokenizer.eos_token_id]
        windows.append(window + [pad] * (length - len(window)))
    return windows


def prompt_token_count(tokenizer, text: str) -> int:
    """How many tokens the prompt uses with this tokenizer (start/end not counted); over 75 means several chunks."""
    return len(tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])


def _even(a: list, b: list, empty: list) -> tuple[list, list]:
    """Pad the shorter window list with empty-prompt windows so both have the same length (CFG concatenates them)."""
    n = max(len(a), len(b))
    return a + [empty] * (n - len(a)), b + [empty] * (n - len(b))


def encode_prompts(pipe, family: str, prompt: str, negative_prompt: str, device, dtype) -> dict:
    """The prompt_embeds keyword arguments for a diffusers SD or SDXL pipeline call, in 75-token chunks.

    Each chunk is encoded on its own and the embeddings are concatenated along the token axis, so a
    prompt of 100 tokens gives 154 embedding positions instead of being truncated at 77; the negative
    prompt is padded with empty chunks to the same length.
    """
    import torch

    with torch.no_grad():
        if family == "sdxl":
            return _encode_sdxl(pipe, prompt, negative_prompt, device, dtype)
        tok, enc = pipe.tokenizer, pipe.text_encoder
        empty = _windows(tok, "")[0]
        pos, neg = _even(_windows(tok, prompt), _windows(tok, negative_prompt), empty)

        def encode(windows):
            ids = torch.tensor(windows, dtype=torch.long, device=device)
            hidden = enc(ids)[0]  # (chunks, 77, dim)
            return hidden.reshape(1, -1, hidden.shape[-1]).to(dtype)

        return {"prompt_embeds": encode(pos), "negative_prompt_embeds": encode(neg)}


def _encode_sdxl(pipe, prompt: str, negative_prompt: str, device, dtype) -> dict:
    """SDXL: both text encoders' penultimate hidden states side by side, pooled output from the first chunk."""
    import torch

    encoders = [(pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)]
    encoders = [(t, e) for t, e in encoders if t is not None and e is not None]

    def encode(text: str):
        per_encoder, pooled = [], None
        windows = [_windows(t, text) for t, _ in encoders]
        n = max(len(w) for w in windows)
        for (tok, enc), wins in zip(encoders, windows):
            wins = wins + [_windows(tok, "")[0]] * (n - len(wins))
            out = enc(torch.tensor(wins, dtype=torch.long, device=device), output_hidden_states=True)
            pooled = out[0][:1]  # the last encoder (with projection) gives the pooled embedding
            hidden = out.hidden_states[-2]
            per_encoder.append(hidden.reshape(1, -1, hidden.shape[-1]))
        return torch.cat(per_encoder, dim=-1), pooled, n

    pos, pos_pooled, n_pos = encode(prompt)
    zero_negative = not negative_prompt and getattr(pipe.config, "force_zeros_for_empty_prompt", False)
    if zero_negative:
        neg, neg_pooled = torch.zeros_like(pos), torch.zeros_like(pos_pooled)
    else:
        neg, neg_pooled, n_neg = encode(negative_prompt)
        if n_neg != n_pos:  # pad the shorter side with the empty prompt's encoding, chunk by chunk
            empty, _, _ = encode("")
            if n_neg < n_pos:
                neg = torch.cat([neg] + [empty] * (n_pos - n_neg), dim=1)
            else:
                pos = torch.cat([pos] + [empty] * (n_neg - n_pos), dim=1)
    return {
        "prompt_embeds": pos.to(dtype),
        "negative_prompt_embeds": neg.to(dtype),
        "pooled_prompt_embeds": pos_pooled.to(dtype),
        "negative_pooled_prompt_embeds": neg_pooled.to(dtype),
    }
