"""AUTOMATIC1111's prompt emphasis syntax: (words) x1.1, [words] /1.1, (words:1.5), \\( escapes, BREAK."""

from __future__ import annotations

import re

ROUND = 1.1
SQUARE = 1 / 1.1
BREAK = None  # the weight-list marker for a forced chunk break

# One token of the emphasis grammar per match: an escape, an opening bracket, an explicit weight that
# closes a round bracket, a closing bracket, a run of plain text, or a lone colon.
_TOKEN = re.compile(r"\\[()\[\]\\]|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:")
_BREAK = re.compile(r"\s*\bBREAK\b\s*")
# A1111's extra-network tags (modules/extra_networks.py re_extra_net), e.g. <lora:style:0.8>.
EXTRA_NETWORK = re.compile(r"<(\w+):([^>]+)>")


def strip_extra_networks(text: str) -> str:
    """The prompt without A1111 extra-network tags such as <lora:NAME:WEIGHT>: they name networks, they are not text."""
    return EXTRA_NETWORK.sub("", text)


def parse_emphasis(text: str) -> list[tuple[str, float | None]]:
    """The prompt as (text, weight) pieces, as A1111 reads it; weight None marks a BREAK (start a new chunk).

    Unclosed brackets apply to the end of the prompt, as in A1111; neighbouring pieces of equal weight
    are merged. "a (red:1.5) fox" -> [("a ", 1.0), ("red", 1.5), (" fox", 1.0)].
    """
    pieces: list[list] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def scale(start: int, factor: float) -> None:
        for piece in pieces[start:]:
            if piece[1] is not None:
                piece[1] *= factor

    for match in _TOKEN.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\") and len(token) == 2:
            pieces.append([token[1], 1.0])
        elif token == "(":
            round_open.append(len(pieces))
        elif token == "[":
            square_open.append(len(pieces))
        elif weight is not None and round_open:
            try:
                scale(round_open.pop(), float(weight))
            except ValueError:  # "(a:1.2.3)": not a number, keep the text as written
                pieces.append([token, 1.0])
        elif token == ")" and round_open:
            scale(round_open.pop(), ROUND)
        elif token == "]" and square_open:
            scale(square_open.pop(), SQUARE)
        else:
            for i, part in enumerate(_BREAK.split(token)):
                if i:
                    pieces.append(["", BREAK])
                pieces.append([part, 1.0])
    for start in round_open:
        scale(start, ROUND)
    for start in square_open:
        scale(start, SQUARE)
    merged: list[list] = []
    for piece in pieces:
        if merged and piece[1] is not None and merged[-1][1] == piece[1]:
            merged[-1][0] += piece[0]
        elif piece[0] or piece[1] is None:
            merged.append(piece)
    return [(t, w) for t, w in merged] or [("", 1.0)]
