"""The oracles that need no library: multiple choice (a letter), yes/no, and normalised exact match."""

from __future__ import annotations

import re
import string
from typing import Any

from pts.tasks.oracles.extract import answer_phrase, ends_inside_box, extract_boxed, final_answer_text
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

# Another option right after a letter ("(A) or (B)", "A and C", "(A), (B)"): the sentence names several.
_ANOTHER_OPTION = (
    r"[ \t]*\**[ \t]*[\)\]]?[ \t]*\**(?:,?[ \t]*(?i:and|or|nor)\b|[ \t]*[/&]|,(?=[ \t]*[\(\[]))[ \t]*"
    r"(?i:(?:option|choice)[ \t]*)?(?:[\(\[][A-Ea-e][\)\]]|[A-E](?![A-Za-z0-9]))"
)
# A letter naming one option: "(B)", "[b]", "**B**", "B" (a bare letter only in upper case: "a" is an article).
_LETTER = (
    r"(?P<open>[\(\[])?[ \t]*\**[ \t]*(?P<letter>[A-Ea-e])(?![A-Za-z0-9])(?!" + _ANOTHER_OPTION + r")"
    r"[ \t]*\**[ \t]*(?P<close>[\)\]])?"
)
_CORRECT = r"(?:correct|right|best|true|accurate|valid)"
_BE = r"(?:is|would[ \t]+be|should[ \t]+be|must[ \t]+be|will[ \t]+be|seems[ \t]+to[ \t]+be)"
# Statements of the chosen option, each ending at the letter: "the correct option is (B) because ...",
# "Answer: C", "I would choose (B)", "(B) 4 m is the correct answer", "B is correct".
_MC_STATEMENTS = [
    re.compile(p.format(LETTER=_LETTER, CORRECT=_CORRECT, BE=_BE))
    for p in (
        # "[the] [correct] answer/option/choice [to this question] is|would be|: [option] (B)"
        r"(?i:\b(?:{CORRECT}[ \t]+)?(?:answer|option|choice|response)(?:[ \t]+(?:to|for)[ \t]+(?:this|the)"
        r"[ \t]+(?:question|problem))?)\**[ \t]*(?i:{BE}\b[ \t]*:?|:|=)\**[ \t]*\n?[ \t]*"
        r"(?i:(?:option|choice|letter)[ \t]*:?[ \t]*)?{LETTER}",
        # "I'd choose / we select / let's go with / I pick [option] (B)"; "Choose (B)" at the start of a line
        r"(?:(?i:\b(?:I|we|let's|let[ \t]+us)(?:'d|'ll|[ \t]+(?:would|will|should|shall))?[ \t]+)"
        r"|(?m:^)[ \t]*)(?i:choose|select|pick|go[ \t]+with|opt[ \t]+for)[ \t]+"
        r"(?i:(?:option|choice|answer)[ \t]*)?{LETTER}",
    )
]
# "(B) is correct", "option B is the right answer", "(B) 4 meters is the correct one": the letter comes first.
# A letter with text between it and the verb needs a bracket ("B) 4 m"), and that text no "is/not/or/...".
_MC_LETTER_FIRST_RE = re.compile(
    r"(?:(?<![\w\\])(?i:(?:option|choice)[ \t]*)?(?P<open>[\(\[])?(?P<letter>[A-Ea-e])[\)\]]"
    r"(?:[ \t]+(?:(?!(?i:is|isn't|not|but|and|or|nor)\b)[^\n()\[\];:!?])+?)?"
    r"|(?<![\w\\])(?i:(?:option|choice)[ \t]+)?(?P<bare>[A-E])(?![A-Za-z0-9])\**)"
    rf"[ \t]+(?i:{_BE}[ \t]+(?:(?:clearly|definitely|indeed|therefore)[ \t]+)?(?:the[ \t]+)?"
    rf"(?:{_CORRECT}\b(?:[ \t]+(?:answer|option|choice|one)\b)?|answer\b))"
)
# Words that turn a statement around when they come before it in its sentence: "not", "neither ... nor".
_MC_DENIAL_RE = re.compile(r"(?i:\b(?:not|nor|neither|never|whether|unless)\b|n't\b)")
_MC_OPTION_RE = re.compile(r"\b(?:option|choice)[ \t]*[\(\[]?(?P<letter>[A-E])(?:\W|$)", re.IGNORECASE)
_MC_BOXED_RE = re.compile(r"^\s*(?:\\text\{)?\s*\(?([A-Ea-e])\)?\s*\}?\s*$")
_MC_BOLD_RE = re.compile(r"\*\*[ \t]*[\(\[]?([A-E])[\)\]]?[.:]?[ \t]*(?:\*\*|[\)\]])")
_MC_LONE_RE = re.compile(r"(?m)^[ \t]*[\(\[]?([A-Ea-e])[\)\]]?[.:]?[ \t]*$")
_MC_LEADING_RE = re.compile(r"(?m)^[ \t]*\(?([A-E])[\).:][ \t]+\S")
_MC_GOLD_RE = re.compile(r"^\s*[\(\[]?\s*([A-Ea-e])\s*[\)\]]?\s*[.:)]?(?:\s|$)")


def _denied(text: str, start: int, end: int | None = None) -> bool:
    """True when a denial ("not", "neither", "n't") is in the sentence before ``start`` (up to ``end`` when given)."""
    before = re.split(r"[.!?;:\n]", text[max(0, start - 40) : start])[-1]
    after = re.split(r"[.!?;:\n]", text[end : end + 60])[0] if end is not None else ""
    return _MC_DENIAL_RE.search(before + " " + after) is not None


def _after_another_option(text: str, start: int) -> bool:
    """True when the letter at ``start`` follows another option ("(A) or (B) is correct")."""
    return (
        re.search(r"(?:\b(?i:and|or|nor)|[,/&])[ \t]*(?i:(?:option|choice)[ \t]*)?$", text[max(0, start - 20) : start])
        is not None
    )


def _statements(text: str) -> list[tuple[int, str, bool]]:
    """Every statement of a chosen option in ``text``: (position, letter, whether its end is written)."""
    found = []
    for pattern in _MC_STATEMENTS:
        for m in pattern.finditer(text):
            letter = m.group("letter")
            # "the answer is a number ..." uses the article, not choice (a).
            if letter.islower() and not m.group("open"):
                continue
            if not _denied(text, m.start()):
                # The letter is whole once a bracket closes it or anything follows it.
                found.append((m.start(), letter.upper(), bool(m.group("close")) or m.end() < len(text)))
    for m in _MC_LETTER_FIRST_RE.finditer(text):
        letter = m.group("letter") or m.group("bare")
        if letter.islower() and not m.group("open"):
            continue
        if not _denied(text, m.start()) and not _after_another_option(text, m.start()):
            found.append((m.start(), letter.upper(), m.end() < len(text)))
    return sorted(found)


def _named_options(text: str) -> str | None:
    """The one option named as "option B" in ``text``, or None if none or several are, or a sentence naming it
    holds a denial ("it is not option B")."""
    mentions = list(_MC_OPTION_RE.finditer(text))
    letters = {m.group("letter").upper() for m in mentions}
    if len(letters) != 1 or any(_denied(text, m.start(), m.end()) for m in mentions):
        return None
    return letters.pop()


def extract_choice(text: str) -> str | None:
    """The multiple-choice letter (upper case) chosen in answer text, or None.

    Clear statements win over weak signs: the last of "the answer is (B)",
    "Answer: C", "the correct option is (B) because ...", "I would choose B",
    "(B) is correct" (none of them denied: "not (B)", nor naming several
    options: "(A) or (B)"); then ``\\boxed{D}``; "option E" when it is the only
    option named; bold ``**D**``; a line holding only a letter; last a single
    distinct "B) text" line. A text that ends inside an unclosed ``\\boxed{``
    (cut off while writing its answer) has none.
    """
    if not isinstance(text, str) or ends_inside_box(text):
        return None
    statements = _statements(text)
    letter = statements[-1][1] if statements else None
    if letter is None:
        boxed = extract_boxed(text)
        m = _MC_BOXED_RE.match(boxed) if boxed else None
        letter = m.group(1) if m else None
    if letter is None:
        letter = _named_options(text)
    for pattern in (_MC_BOLD_RE, _MC_LONE_RE):
        if letter is None:
            hits = pattern.findall(text)
            letter = hits[-1] if hits else None
    if letter is None:
        # A restated list of options ("A) 3  B) 4 ...") names no choice, nor does "(B) is not ..." or "(B)?".
        lines = [(m.group(1), text[m.start() :].split("\n", 1)[0]) for m in _MC_LEADING_RE.finditer(text)]
        leading = {letter for letter, _ in lines}
        doubted = any("?" in line or _MC_DENIAL_RE.search(line) for _, line in lines)
        letter = leading.pop() if len(leading) == 1 and not doubted else None
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
        if answer is None or ends_inside_box(answer):
            return False
        statements = _statements(answer)
        return bool(statements) and statements[-1][2]


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
