"""Where the answer is in a completion, and the math answer in it.

Every oracle looks only at the completion (the model's response), never at the
prompt. Reasoning inside ``<think>...</think>`` is ignored: the answer is read
from the text after the last ``</think>`` (:func:`final_answer_text`).

The math extraction chain (:func:`extract_math_answer`) reads a GSM8K ``#### N``
line, a ``\\boxed{}``, an "answer is X" phrase or the last number; the math and
reasoning-gym oracles use it, and :func:`math_answer_complete` tells them when
the answer can no longer change.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "NUMBER_PATTERN",
    "answer_phrase",
    "ends_inside_box",
    "extract_boxed",
    "extract_math_answer",
    "final_answer_text",
    "math_answer_complete",
    "math_gold_text",
]

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"


def final_answer_text(completion: str) -> str | None:
    """Return the part of ``completion`` that holds the answer, or None if there is none yet.

    Text after the last ``</think>`` is the answer (this also covers a chat template
    that opened ``<think>`` itself). A ``<think>`` that is never closed means the
    model is still reasoning: None. Without think tags the whole text is the answer.
    """
    if not isinstance(completion, str):
        return None
    close = completion.rfind(_THINK_CLOSE)
    tail = completion if close < 0 else completion[close + len(_THINK_CLOSE) :]
    # A think block re-opened after the last close has not ended: what precedes it is the answer so far.
    reopened = tail.find(_THINK_OPEN)
    if reopened >= 0:
        if close < 0:
            return None
        tail = tail[:reopened]
    return tail


NUMBER_PATTERN = r"(?:[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+)"
"""A number as a regex pattern: a sign, thousands commas and decimals allowed."""
_NUMBER_RE = re.compile(r"(?<![\w.])" + NUMBER_PATTERN + r"(?![\d])")

# '####' (GSM8K) or '###' (optillmbench's gsm8k prompt), optionally "answer:" and a currency sign.
_HASH_RE = re.compile(
    r"(?<!#)(?P<hashes>#{3,4})(?!#)[ \t]*(?:\*\*)?[ \t]*(?:(?:final[ \t]+)?answer[ \t]*:?)?[ \t]*"
    r"(?P<body>[^\n]*)",
    re.IGNORECASE,
)
_HASH_NUMBER_RE = re.compile(r"^(?:\\?\$)?[ \t]*(?P<num>" + NUMBER_PATTERN + r")(?![\d])(?P<rest>[^\n]*)$")
# After '### N' only a unit word or closing markup may follow; '### 1. Compute the sum' is a heading.
_HASH3_REST_RE = re.compile(r"^[ \t]*(?:\*\*|\\?\$|\\?%)?[ \t]*(?:[A-Za-z]+)?[ \t]*[.!]?[ \t]*(?:\*\*)?[ \t]*$")

_BOXED_START_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")

_ANSWER_PHRASE_RE = re.compile(
    r"\banswer\b\**[ \t]*(?:is\b[ \t]*:?|:)\**[ \t]*\n?[ \t]*(?P<body>[^\n]*)",
    re.IGNORECASE,
)
_SENTENCE_END_RE = re.compile(r"\.(?=\s|$)")
# "18 apples", "5 because ...", "1, which is 8 minus 7": a number that a word or a clause follows.
_LEADING_NUMBER_WITH_UNIT_RE = re.compile(
    r"^(?:\\?\$)?[ \t]*(?P<num>" + NUMBER_PATTERN + r")(?:[ \t]+[A-Za-z]{2,}|[ \t]*[,;][ \t]+[A-Za-z])"
)


def _hash_answer(text: str) -> tuple[str, re.Match] | None:
    """The answer on the last valid '####'/'###' line, with its match."""
    found = None
    for m in _HASH_RE.finditer(text):
        body = m.group("body").strip()
        num = _HASH_NUMBER_RE.match(body)
        if num:
            if m.group("hashes") == "###" and not _HASH3_REST_RE.match(num.group("rest")):
                continue
            found = (num.group("num"), m)
        elif m.group("hashes") == "####" and body[:1] in ("$", "\\"):
            found = (_strip_markup(body), m)
    return found


def _scan_boxes(text: str) -> tuple[list[tuple[int, int, str]], bool]:
    """All closed ``\\boxed{...}`` / ``\\fbox{...}`` groups as (start, end, content), braces nested, and
    whether the text ends inside a box (an opened box's brace still open at the end)."""
    # One pass with a brace stack, so a model repeating "\boxed{" stays linear in the text length.
    opens = {m.end() - 1: m.start() for m in _BOXED_START_RE.finditer(text)}
    if not opens:
        return [], False
    spans, stack = [], []
    i = min(opens)
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            stack.append(i if i in opens else None)
        elif ch == "}" and stack:
            brace = stack.pop()
            if brace is not None:
                spans.append((opens[brace], i + 1, text[brace + 1 : i]))
        i += 1
    return sorted(spans), any(brace is not None for brace in stack)


def _boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """All closed ``\\boxed{...}`` / ``\\fbox{...}`` groups as (start, end, content), braces nested."""
    return _scan_boxes(text)[0]


def ends_inside_box(text: str) -> bool:
    """True when ``text`` stops inside a ``\\boxed{`` (or ``\\fbox{``) whose brace was never closed.

    Such a response was cut off (by the token budget, say) while writing its
    answer: whatever the box holds so far is no answer.
    """
    return isinstance(text, str) and _scan_boxes(text)[1]


def extract_boxed(text: str) -> str | None:
    """Content of the last closed ``\\boxed{}`` or ``\\fbox{}`` in ``text`` (nested braces kept), or None."""
    spans = _boxed_spans(text) if isinstance(text, str) else []
    return spans[-1][2].strip() if spans else None


def _strip_markup(s: str) -> str:
    s = s.strip()
    for _ in range(3):
        s = s.strip(" \t*_`")
        s = re.sub(r"^(?:\\\(|\\\[|\$+)|(?:\\\)|\\\]|\$+)$", "", s).strip()
        s = s.rstrip(".,;!")
    return s


def answer_phrase(text: str) -> tuple[str, re.Match] | None:
    """The answer in the last "the answer is X" / "Answer: X" phrase, cleaned, with its match."""
    for m in reversed(list(_ANSWER_PHRASE_RE.finditer(text))):
        body = m.group("body")
        end = _SENTENCE_END_RE.search(body)
        if end:
            body = body[: end.start()]
        body = _strip_markup(body)
        # "answer is 3 + 5 = 8" states the result after the last '='.
        if "=" in body:
            body = _strip_markup(body.rsplit("=", 1)[1])
        unit = _LEADING_NUMBER_WITH_UNIT_RE.match(body)
        if unit:
            body = unit.group("num")
        if body:
            return body, m
    return None


def _last_number(text: str) -> str | None:
    numbers = _NUMBER_RE.findall(text)
    return numbers[-1] if numbers else None


def extract_math_answer(text: str) -> str | None:
    """Extract a math answer from answer text, or None.

    Priority: the last GSM8K ``#### 42`` (or ``### 42``) line; the last ``\\boxed{}``
    or ``\\fbox{}``; the last "the answer is X" / "Final answer: X" / "Answer: X";
    the last number in the text. A text that ends inside an unclosed ``\\boxed{``
    (cut off while writing the answer) has no answer unless a ``####`` line gave one.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    hashed = _hash_answer(text)
    if hashed:
        return hashed[0]
    spans, open_box = _scan_boxes(text)
    if open_box:
        return None
    boxed = spans[-1][2].strip() if spans else None
    if boxed:
        return boxed
    phrase = answer_phrase(text)
    if phrase:
        return phrase[0]
    return _last_number(text)


def math_answer_complete(text: str) -> bool:
    """True once the math answer in ``text`` can no longer change by appending."""
    hashed = _hash_answer(text)
    if hashed:
        m = hashed[1]
        return text[m.end() : m.end() + 1] == "\n"
    spans, open_box = _scan_boxes(text)
    if open_box:
        return False  # a box is being written: an earlier box or phrase is not the answer any more
    if spans and spans[-1][1] < len(text):
        return True
    phrase = answer_phrase(text)
    if phrase:
        m = phrase[1]
        return bool(re.search(r"\.(?:[ \t]|\n)", m.group("body") + text[m.end() : m.end() + 1]))
    return False


def math_gold_text(reference: Any) -> str | None:
    """The gold answer of a math reference: after '####' in a GSM8K solution, the last
    ``\\boxed{}`` in a MATH solution, else the text itself (numbers become text)."""
    if reference is None or isinstance(reference, bool):
        return None
    text = str(reference).strip()
    if "####" in text:
        after = text.rsplit("####", 1)[1].strip()
        num = _HASH_NUMBER_RE.match(after)
        return num.group("num") if num else _strip_markup(after.split("\n", 1)[0]) or None
    boxed = extract_boxed(text)
    if boxed:
        return boxed
    return text or None
