"""Build resources/tokenizers/clip/ (Hugging Face CLIPTokenizer files) from open-clip's BPE vocabulary.

Usage:
    pip download --no-deps open-clip-torch -d /tmp/oc
    python packaging/build_clip_tokenizer.py /tmp/oc/open_clip_torch-*.whl

The vocabulary is built exactly as OpenAI's CLIP `simple_tokenizer.py` builds it (open-clip ships a copy),
so token ids match the ones every Stable Diffusion text encoder was trained with.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import zipfile
from pathlib import Path

BPE_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
OUT = Path(__file__).resolve().parent.parent / "resources" / "tokenizers" / "clip"
N_MERGES = 49152 - 256 - 2  # what simple_tokenizer.py keeps: lines[1 : 49152-256-2+1]
CONTEXT_LENGTH = 77


def bytes_to_unicode() -> dict[int, str]:
    """OpenAI CLIP's reversible byte -> printable-unicode table, in its order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def read_bpe(source: Path) -> bytes:
    """The gzipped BPE file, from an open-clip-torch wheel or given directly."""
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            return wheel.read(BPE_MEMBER)
    return source.read_bytes()


def build(bpe_gz: bytes) -> tuple[dict[str, int], list[str]]:
    """(vocab token -> id, merge lines) following simple_tokenizer.py step by step."""
    lines = gzip.decompress(bpe_gz).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(merge) for merge in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408, len(vocab)
    return {token: i for i, token in enumerate(vocab)}, [" ".join(m) for m in merges]


def write(out: Path, vocab: dict[str, int], merges: list[str]) -> None:
    """Write vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json into out."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": CONTEXT_LENGTH,
        "do_lower_case": True,
        "add_prefix_space": False,
        "errors": "replace",
        **special,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="open_clip_torch-*.whl or bpe_simple_vocab_16e6.txt.gz")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    bpe = read_bpe(args.source)
    vocab, merges = build(bpe)
    write(args.out, vocab, merges)
    print(f"{args.out}: {len(vocab)} tokens, {len(merges)} merges, source sha256 {hashlib.sha256(bpe).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
