"""Prompt embeddings as AUTOMATIC1111 makes them: 75-token chunks (long prompts are not cut at 77) and (emphasis:1.2)."""

from __future__ import annotations

COMMA_BACKTRACK = 20  # a full chunk breaks after a comma this close to its end (A1111's default)


def chunk_tokens(tokens: list[tuple[int | None, float]], window: int = 75, comma_id: int | None = None) -> list[list[tuple[int, float]]]:
    """(id, weight) tokens cut into chunks of at most `window`; a BREAK (id None) starts a new chunk.

    A chunk that fills up breaks after its last comma when that comma is within COMMA_BACKTRACK
    tokens of the end, so phrases are not split across chunks, as A1111 does. An empty prompt is one
    empty chunk, so it still encodes to one window.
    """
    chunks: list[list[tuple[int, float]]] = []
    chunk: list[tuple[int, float]] = []
    last_comma = -1
    for token in tokens:
        if token[0] is None:
            if chunk:
                chunks.append(chunk)
            chunk, last_comma = [], -1
            continue
        if comma_id is not None and token[0] == comma_id:
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


def chunk_ids(ids: list[int], window: int = 75, comma_id: int | None = None) -> list[list[int]]:
    """Token ids (without start/end) cut into chunks as `chunk_tokens` cuts them."""
    return [[i for i, _ in chunk] for chunk in chunk_tokens([(i, 1.0) for i in ids], window, comma_id)]


def weighted_tokens(tokenizer, text: str) -> list[tuple[int | None, float]]:
    """The prompt's (token id, emphasis weight) pairs, without start/end tokens; (None, 1.0) marks a BREAK.

    Extra-network tags such as <lora:NAME:W> are left out: they name networks, A1111 does not encode them.
    """
    from sd_studio.engine.prompts.weights import parse_emphasis, strip_extra_networks

    out: list[tuple[int | None, float]] = []
    for piece, weight in parse_emphasis(strip_extra_networks(text)):
        if weight is None:
            out.append((None, 1.0))
            continue
        ids = tokenizer(piece, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        out.extend((i, weight) for i in ids)
    return out


def _windows(tokenizer, text: str) -> list[tuple[list[int], list[float]]]:
    """The prompt as full encoder windows: ([start, chunk..., end, pad...], per-position weights)."""
    length = tokenizer.model_max_length
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    comma = comma if isinstance(comma, int) and comma != tokenizer.unk_token_id else None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    windows = []
    for chunk in chunk_tokens(weighted_tokens(tokenizer, text), length - 2, comma):
        ids = [tokenizer.bos_token_id, *(i for i, _ in chunk), tokenizer.eos_token_id]
        weights = [1.0, *(w for _, w in chunk), 1.0]
        windows.append((ids + [pad] * (length - len(ids)), weights + [1.0] * (length - len(weights))))
    return windows


def prompt_token_count(tokenizer, text: str) -> int:
    """How many tokens the prompt uses with this tokenizer, emphasis syntax removed (start/end not counted).

    Over 75 means several chunks: each 75 tokens is encoded separately and the embeddings joined.
    """
    return sum(1 for i, _ in weighted_tokens(tokenizer, text) if i is not None)


def _encode_windows(encoder, windows, device, **kwargs):
    """(the text encoder's output for the windows' ids, their emphasis weights as a (chunks, tokens) tensor)."""
    import torch

    ids = torch.tensor([w[0] for w in windows], dtype=torch.long, device=device)
    out = encoder(ids, **kwargs)
    weights = torch.tensor([w[1] for w in windows], dtype=torch.float32, device=device)
    return out, weights


def _weighted(hidden, weights):
    """hidden (chunks, tokens, dim) scaled per token by weights (chunks, tokens), each chunk's mean restored."""
    import torch

    if bool((weights == 1).all()):
        return hidden
    original = hidden.float().mean(dim=(1, 2), keepdim=True)
    scaled = hidden.float() * weights[..., None]
    new = scaled.mean(dim=(1, 2), keepdim=True)
    ratio = torch.where(new != 0, original / new, torch.ones_like(new))
    return (scaled * ratio).to(hidden.dtype)


def _even(a: list, b: list, empty: list) -> tuple[list, list]:
    """Pad the shorter window list with empty-prompt windows so both have the same length (CFG concatenates them)."""
    n = max(len(a), len(b))
    return a + [empty] * (n - len(a)), b + [empty] * (n - len(b))


def encode_prompts(pipe, family: str, prompt: str, negative_prompt: str, device, dtype) -> dict:
    """The prompt_embeds keyword arguments for a diffusers SD or SDXL pipeline call, in 75-token chunks.

    Each chunk is encoded on its own and the embeddings are concatenated along the token axis, so a
    prompt of 100 tokens gives 154 embedding positions instead of being truncated at 77; the negative
    prompt is padded with empty chunks to the same length. A1111 emphasis ("(word:1.3)", "(word)",
    "[word]", "BREAK") scales each token's embedding, then restores each chunk's mean, as A1111 does.
    """
    import torch

    with torch.no_grad():
        if family == "sdxl":
            return _encode_sdxl(pipe, prompt, negative_prompt, device, dtype)
        tok, enc = pipe.tokenizer, pipe.text_encoder
        empty = _windows(tok, "")[0]
        pos, neg = _even(_windows(tok, prompt), _windows(tok, negative_prompt), empty)

        def encode(windows):
            out, weights = _encode_windows(enc, windows, device)
            hidden = _weighted(out[0], weights)  # (chunks, 77, dim)
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
            out, weights = _encode_windows(enc, wins, device, output_hidden_states=True)
            pooled = out[0][:1]  # the last encoder (with projection) gives the pooled embedding
            hidden = _weighted(out.hidden_states[-2], weights)
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
