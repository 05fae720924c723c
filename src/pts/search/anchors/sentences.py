"""Sentences of a response on its own token boundaries: Thought Anchors' split rule, without re-encoding.

The rule (Bogdan et al. 2025, ``split_solution_into_chunks`` in their code):
a piece ends after ``.``, ``?`` or ``!`` followed by whitespace, and at a
blank line (``\\n\\n``); pieces shorter than ``MIN_CHARS`` characters (stripped)
are merged into the next one (the last one into the one before it).

pts applies it to the token ids it measures, never to re-encoded text: each
token's text is its share of the decoded response (:func:`token_pieces`), a
cut found in the text is moved forward to the next token boundary (a token
``".\\n\\n"`` ends its sentence), and a sentence is a span ``[start, end)`` of
token indices. Whitespace between sentences belongs to the sentence it
precedes when a token starts with it (``" Then"``), else to the one before.
Two differences from the reference code, both so that the spans cover the
response: text after the last cut is a sentence (theirs drops it), and tokens
that decode to nothing (end-of-sequence) stay in the sentence they close.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

MIN_CHARS = 10
_ENDS = ".?!"


@dataclass(frozen=True)
class Sentence:
    """Tokens ``[start, end)`` of a response, and their text (stripped)."""

    start: int
    end: int
    text: str


def token_pieces(token_ids: Sequence[int], decode: Callable[[list[int]], str]) -> list[str]:
    """Each token's share of ``decode(token_ids)``: the text the prefix gains when the token is added.

    Decoding prefixes (not single tokens) keeps the leading spaces that SentencePiece tokenizers drop when a
    token is decoded alone. A byte that completes a multi-byte character may rewrite the character before it;
    the piece is then what changed after the common part, so the pieces may differ from the text there by a
    character (only punctuation and whitespace decide cuts).
    """
    pieces, previous = [], ""
    for k in range(len(token_ids)):
        text = decode(list(token_ids[: k + 1]))
        common = 0
        limit = min(len(previous), len(text))
        while common < limit and previous[common] == text[common]:
            common += 1
        pieces.append(text[common:] if common == len(previous) else text[len(previous) :])
        previous = text
    return pieces


def text_cuts(text: str) -> list[int]:
    """Character positions where the split rule ends a piece of ``text`` (before the merge of short pieces)."""
    cuts = []
    for i, c in enumerate(text[:-1]):
        if (c in _ENDS and text[i + 1].isspace()) or (c == "\n" and text[i + 1] == "\n"):
            cuts.append(i + 1)
    return cuts


def merge_short(spans: list[tuple[int, int]], length: Callable[[int, int], int]) -> list[tuple[int, int]]:
    """``spans`` with every span under ``MIN_CHARS`` (by ``length(start, end)``) merged into the next one,
    the last into the one before it (the reference code's rule)."""
    out: list[tuple[int, int]] = []
    carry: int | None = None
    for start, end in spans:
        start = start if carry is None else carry
        if length(start, end) < MIN_CHARS:
            carry = start
            continue
        carry = None
        out.append((start, end))
    if carry is not None:
        end = spans[-1][1]
        if out:
            out[-1] = (out[-1][0], end)
        else:
            out.append((carry, end))
    return out


def split_sentences(pieces: Sequence[str]) -> list[Sentence]:
    """Sentences of a response from its tokens' texts (:func:`token_pieces`); see the module docstring.

    Returns token spans covering every token, in order; empty when the response has no tokens or only
    whitespace.
    """
    text = "".join(pieces)
    if not text.strip():
        return []
    ends, offset = [], 0  # character offset where each token ends
    for piece in pieces:
        offset += len(piece)
        ends.append(offset)
    cut_tokens = []
    k = 0
    for cut in text_cuts(text):
        while k < len(ends) and ends[k] < cut:
            k += 1
        if k < len(ends) - 1 and (not cut_tokens or cut_tokens[-1] != k + 1):
            cut_tokens.append(k + 1)  # tokens [.., k] end a piece
    bounds = [0, *cut_tokens, len(pieces)]
    spans = [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]

    def length(start: int, end: int) -> int:
        return len("".join(pieces[start:end]).strip())

    return [Sentence(a, b, "".join(pieces[a:b]).strip()) for a, b in merge_short(spans, length)]


def first_sentence(text: str) -> str:
    """The first sentence of ``text`` by the same rule (a continuation's, to compare with the one it replaced)."""
    cuts = [0, *text_cuts(text), len(text)]
    spans = [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
    if not spans:
        return ""
    merged = merge_short(spans, lambda a, b: len(text[a:b].strip()))
    a, b = merged[0]
    return text[a:b].strip()
