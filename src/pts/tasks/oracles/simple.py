"""The oracles that need no library: multiple choice (a letter), yes/no, and normalised exact match."""

from __future__ import annotations

import re
import string
from typing import Any

from pts.tasks.oracles.extract import answer_phrase, extract_boxed, final_answer_text
from pts.tasks.task import Oracle

__all__ = [
    "ExactMatchOracle",
    "MultipleChoiceOracle",
    "YesNoOracle",
    "choice_gold",
    "extract_choice",
    "normalize_text",
    "yes_no_value",
]

_MC_MARKER_RE = re.compile(
    r"\banswer\b\**[ \t]*(?:is\b[ \t]*:?|:)[ \t]*\**[ \t]*(?:option|choice)?[ \t]*:?[ \t]*"
    r"(?P<open>[\(\[])?[ \t]*\**(?P<letter>[A-Ea-e])(?P<after>\W|$)",
    re.IGNORECASE,
)
_MC_OPTION_RE = re.compile(r"\b(?:option|choice)[ \t]*[\(\[]?(?P<letter>[A-E])(?:\W|$)", re.IGNORECASE)
_MC_BOXED_RE = re.compile(r"^\s*(?:\\text\{)?\s*\(?([A-Ea-e])\)?\s*\}?\s*$")
_MC_BOLD_RE = re.compile(r"\*\*[ \t]*[\(\[]?([A-E])[\)\]]?[.:]?[ \t]*(?:\*\*|[\)\]])")
_MC_LONE_RE = re.compile(r"(?m)^[ \t]*[\(\[]?([A-Ea-e])[\)\]]?[.:]?[ \t]*$")
_MC_LEADING_RE = re.compile(r"(?m)^[ \t]*\(?([A-E])[\).:][ \t]+\S")
_MC_GOLD_RE = re.compile(r"^\s*[\(\[]?\s*([A-Ea-e])\s*[\)\]]?\s*[.:)]?(?:\s|$)")


def _marker_letter(text: str, *, need_end: bool) -> str | None:
    letter = None
    for m in _MC_MARKER_RE.finditer(text):
        ch = m.group("letter")
        # "the answer is a number ..." uses the article, not choice (a).
        if ch.islower() and not m.group("open") and re.match(r"[ \t]+[A-Za-z]", text[m.end("letter") :]):
            continue
        if need_end and not m.group("after"):
            continue
        letter = ch
    return letter


def extract_choice(text: str) -> str | None:
    """The multiple-choice letter (upper case) chosen in answer text, or None.

    Clear markers win over weak ones: "answer is (B)" / "Answer: C", then
    ``\\boxed{D}``, "option E", bold ``**D**``, a line holding only a letter, and
    last a single distinct "B) text" line.
    """
    if not isinstance(text, str):
        return None
    letter = _marker_letter(text, need_end=False)
    if letter is None:
        boxed = extract_boxed(text)
        m = _MC_BOXED_RE.match(boxed) if boxed else None
        letter = m.group(1) if m else None
    for pattern in (_MC_OPTION_RE, _MC_BOLD_RE, _MC_LONE_RE):
        if letter is None:
            hits = pattern.findall(text)
            letter = hits[-1] if hits else None
    if letter is None:
        # A restated list of options ("A) 3  B) 4 ...") names no choice.
        leading = set(_MC_LEADING_RE.findall(text))
        letter = leading.pop() if len(leading) == 1 else None
    return letter.upper() if letter else None


def choice_gold(reference: Any) -> str | None:
    """The gold letter of a reference like "B", "(b)", "B)" or "B) 42", or None."""
    m = _MC_GOLD_RE.match(str(reference)) if reference is not None else None
    return m.group(1).upper() if m else None


class MultipleChoiceOracle(Oracle):
    """Multiple choice with letters A-E."""

    name = "multiple_choice"

    def judge(self, completion: str, reference: Any) -> bool:
        try:
            answer = final_answer_text(completion)
            gold = choice_gold(reference)
            return answer is not None and gold is not None and extract_choice(answer) == gold
        except Exception:
            return False

    def answer_complete(self, completion: str) -> bool:
        answer = final_answer_text(completion)
        return answer is not None and _marker_letter(answer, need_end=True) is not None


_YES_NO_RE = re.compile(r"\b(yes|no|true|false)\b", re.IGNORECASE)
_YES_NO_VALUE = {"yes": True, "true": True, "no": False, "false": False}


def yes_no_value(text: Any) -> bool | None:
    """True for yes/true, False for no/false (first such word in ``text``), None if absent."""
    if isinstance(text, bool):
        return text
    m = _YES_NO_RE.search(str(text)) if text is not None else None
    return _YES_NO_VALUE[m.group(1).lower()] if m else None


class YesNoOracle(Oracle):
    """Yes/no (or true/false) questions: the first yes/no/true/false word of the answer."""

    name = "yes_no"

    def judge(self, completion: str, reference: Any) -> bool:
        try:
            answer = final_answer_text(completion)
            if answer is None:
                return False
            gold, prediction = yes_no_value(reference), yes_no_value(answer)
            return gold is not None and prediction is not None and gold == prediction
        except Exception:
            return False

    def answer_complete(self, completion: str) -> bool:
        answer = final_answer_text(completion)
        m = _YES_NO_RE.search(answer) if answer is not None else None
        # The first word decides; it is whole once something follows it.
        return m is not None and m.end() < len(answer)


_PUNCT_TABLE = str.maketrans("", "", string.punctuation)


def normalize_text(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""
    text = str(text).lower().translate(_PUNCT_TABLE)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


class ExactMatchOracle(Oracle):
    """Normalised exact match of the gold with the whole answer, its last line or its stated answer."""

    name = "exact"

    def judge(self, completion: str, reference: Any) -> bool:
        try:
            answer = final_answer_text(completion)
            gold = normalize_text(reference) if reference is not None else ""
            if answer is None or not gold:
                return False
            lines = [line for line in answer.splitlines() if line.strip()]
            candidates = [answer, lines[-1] if lines else ""]
            phrase = answer_phrase(answer)
            if phrase:
                candidates.append(phrase[0])
            return any(normalize_text(c) == gold for c in candidates)
        except Exception:
            return False
