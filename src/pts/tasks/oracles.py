"""Oracles: judge a completion's final answer against a reference.

Every oracle looks only at the completion (the model's response), never at the
prompt. Reasoning inside ``<think>...</think>`` is ignored: the answer is read
from the text after the last ``</think>``.

The heavy libraries (math-verify, reasoning-gym) are imported on first use so
that importing this module stays cheap.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import signal
import string
import threading
from typing import Any, Callable

from pts.errors import PTSError
from pts.tasks.task import Oracle

__all__ = [
    "ORACLES",
    "ExactMatchOracle",
    "MathOracle",
    "MultipleChoiceOracle",
    "ReasoningGymOracle",
    "YesNoOracle",
    "check_rg_task",
    "choice_gold",
    "extract_boxed",
    "extract_choice",
    "extract_math_answer",
    "final_answer_text",
    "get_oracle",
    "math_equal",
    "math_gold_text",
    "normalize_text",
    "rg_task_names",
    "yes_no_value",
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


_NUMBER = r"(?:[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+)"
_NUMBER_RE = re.compile(r"(?<![\w.])" + _NUMBER + r"(?![\d])")
_PLAIN_NUMBER_RE = re.compile(r"^" + _NUMBER + r"$")

# '####' (GSM8K) or '###' (optillmbench's gsm8k prompt), optionally "answer:" and a currency sign.
_HASH_RE = re.compile(
    r"(?<!#)(?P<hashes>#{3,4})(?!#)[ \t]*(?:\*\*)?[ \t]*(?:(?:final[ \t]+)?answer[ \t]*:?)?[ \t]*"
    r"(?P<body>[^\n]*)",
    re.IGNORECASE,
)
_HASH_NUMBER_RE = re.compile(r"^(?:\\?\$)?[ \t]*(?P<num>" + _NUMBER + r")(?![\d])(?P<rest>[^\n]*)$")
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
    r"^(?:\\?\$)?[ \t]*(?P<num>" + _NUMBER + r")(?:[ \t]+[A-Za-z]{2,}|[ \t]*[,;][ \t]+[A-Za-z])"
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


def _boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """All closed ``\\boxed{...}`` / ``\\fbox{...}`` groups as (start, end, content), braces nested."""
    # One pass with a brace stack, so a model repeating "\boxed{" stays linear in the text length.
    opens = {m.end() - 1: m.start() for m in _BOXED_START_RE.finditer(text)}
    if not opens:
        return []
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
    return sorted(spans)


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


def _answer_phrase(text: str) -> tuple[str, re.Match] | None:
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
    the last number in the text.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    hashed = _hash_answer(text)
    if hashed:
        return hashed[0]
    boxed = extract_boxed(text)
    if boxed:
        return boxed
    phrase = _answer_phrase(text)
    if phrase:
        return phrase[0]
    return _last_number(text)


def _math_answer_complete(text: str) -> bool:
    """True once the math answer in ``text`` can no longer change by appending."""
    hashed = _hash_answer(text)
    if hashed:
        m = hashed[1]
        return text[m.end() : m.end() + 1] == "\n"
    spans = _boxed_spans(text)
    if spans and spans[-1][1] < len(text):
        return True
    phrase = _answer_phrase(text)
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


def _as_number(s: str) -> float | None:
    s = s.strip().replace("\\!", "").replace("\\,", "")
    s = re.sub(r"^\\?\$", "", s).strip()
    s = re.sub(r"\\?%$", "", s).strip().rstrip(".")
    if not _PLAIN_NUMBER_RE.match(s):
        return None
    try:
        return float(s.replace(",", ""))
    except ValueError:
        return None


def _normalise_expr(s: str) -> str:
    s = re.sub(r"\\left|\\right|\\!|\\,|\\;|\\ |\$|\s", "", s)
    return s.rstrip(".").lower()


@functools.lru_cache(maxsize=1)
def _math_verify() -> tuple[Callable, Callable, list]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    # math-verify logs a warning per call when its timeout is off (worker threads) or trips.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    return parse, verify, configs


def _timeout_seconds() -> int | None:
    """math-verify's timeout, or None where its SIGALRM cannot be used.

    Only the main thread may set SIGALRM, and math-verify cancels any pending alarm
    (e.g. pytest-timeout's), so the timeout is on only in the main thread with no alarm set.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    return None if signal.getitimer(signal.ITIMER_REAL)[0] > 0 else 5


# Power towers such as 9^{9^{9^9}} hang sympy; without a timeout they must never reach it.
_COSTLY_MATH_RE = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\([^()]*\^|\^\s*[\w.]+\s*\^|\*\*[^*]*\*\*|\^\s*\{?\s*\d{6,}")


def _costly_for_sympy(s: str) -> bool:
    return len(s) > 500 or bool(_COSTLY_MATH_RE.search(s))


def _parse_math(s: str) -> list:
    parse, _, configs = _math_verify()
    wrapped = s if re.search(r"\$|\\\(|\\\[|\\boxed", s) else f"${s}$"
    # Prose around a number ("that she has 18") parses as a product of letters inside $...$.
    has_words = re.search(r"(?<![\\A-Za-z])[A-Za-z]{3,}", s) and "\\" not in s
    attempts = (s, wrapped) if has_words else (wrapped, s)
    for attempt in attempts:
        parsed = parse(attempt, configs, parsing_timeout=_timeout_seconds())
        if parsed:
            return parsed
    return []


def math_equal(gold: str, prediction: str) -> bool:
    """True when ``prediction`` equals ``gold`` as math (numbers with tolerance, else math-verify)."""
    gold_number, pred_number = _as_number(gold), _as_number(prediction)
    if gold_number is not None and pred_number is not None:
        return math.isclose(gold_number, pred_number, rel_tol=1e-6, abs_tol=1e-6)
    if _normalise_expr(gold) == _normalise_expr(prediction):
        return True
    if _costly_for_sympy(gold) or _costly_for_sympy(prediction):
        return False
    gold_parsed, pred_parsed = _parse_math(gold), _parse_math(prediction)
    if not gold_parsed or not pred_parsed:
        return False
    _, verify, _ = _math_verify()
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=_timeout_seconds()))


class MathOracle(Oracle):
    """Math answers (GSM8K, MATH, plain numbers) compared with math-verify.

    The reference is a number, a LaTeX expression, a GSM8K solution ending in
    ``#### N`` or a MATH solution holding ``\\boxed{}``.
    """

    name = "math"

    def judge(self, completion: str, reference: Any) -> bool:
        try:
            answer = final_answer_text(completion)
            prediction = extract_math_answer(answer) if answer is not None else None
            gold = math_gold_text(reference)
            if prediction is None or gold is None:
                return False
            return math_equal(gold, prediction)
        except Exception:  # a judge must never crash a search on odd text
            return False

    def answer_complete(self, completion: str) -> bool:
        answer = final_answer_text(completion)
        return answer is not None and _math_answer_complete(answer)


_RG_ANSWER_TAG_RE = re.compile(r"<answer>\s?(.*?)\s?</answer>", re.DOTALL)


@functools.lru_cache(maxsize=None)
def _rg_default_scorer(task_name: str) -> Callable[[str | None, dict], float]:
    import reasoning_gym

    return reasoning_gym.get_score_answer_fn(task_name)


def rg_task_names() -> list[str]:
    """Names of the installed reasoning-gym task families, sorted."""
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


def check_rg_task(task_name: str) -> None:
    """Raise PTSError unless ``task_name`` is an installed reasoning-gym task."""
    import difflib

    names = rg_task_names()
    if task_name in names:
        return
    close = difflib.get_close_matches(task_name, names, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise PTSError(
        f"unknown reasoning-gym task {task_name!r}{hint}; {len(names)} tasks are installed, "
        f"e.g. {', '.join(names[:8])}"
    )


class ReasoningGymOracle(Oracle):
    """Judges with reasoning-gym's own scorer; the reference is the reasoning-gym entry.

    The answer is the last ``<answer>...</answer>`` (reasoning-gym's format), else the
    math extraction chain; correct when the scorer gives 1.0. ``config`` (the
    dataset's options) matters only for scorers that read their config.
    """

    def __init__(self, task_name: str, config: dict[str, Any] | None = None) -> None:
        check_rg_task(task_name)
        self.task_name = task_name
        self.name = f"rg:{task_name}"
        self.config = dict(config or {})
        self._scorer: Callable | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The bound scorer holds a whole dataset; rebuild it after unpickling.
        return {**self.__dict__, "_scorer": None}

    def __repr__(self) -> str:
        return f"ReasoningGymOracle({self.task_name!r})"

    def _score_fn(self, entry: dict) -> Callable:
        source = (entry.get("metadata") or {}).get("source_dataset") or self.task_name
        if source != self.task_name or not self.config:
            return _rg_default_scorer(source)
        if self._scorer is None:
            import reasoning_gym

            self._scorer = reasoning_gym.create_dataset(self.task_name, **self.config).score_answer
        return self._scorer

    @staticmethod
    def extract_answer(answer_text: str) -> str | None:
        """The answer reasoning-gym should score: the last <answer> tag, else the math chain."""
        tags = _RG_ANSWER_TAG_RE.findall(answer_text)
        if tags:
            return tags[-1].strip()
        return extract_math_answer(answer_text)

    def judge(self, completion: str, reference: Any) -> bool:
        try:
            if not isinstance(reference, dict) or "answer" not in reference:
                return False
            answer = final_answer_text(completion)
            prediction = self.extract_answer(answer) if answer is not None else None
            if prediction is None:
                return False
            return float(self._score_fn(reference)(prediction, reference)) >= 1.0
        except Exception:  # scorers raise on odd answers; that is a wrong answer
            return False

    def answer_complete(self, completion: str) -> bool:
        answer = final_answer_text(completion)
        if answer is None:
            return False
        if _RG_ANSWER_TAG_RE.search(answer):
            return True
        return "<answer>" not in answer and _math_answer_complete(answer)


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
            phrase = _answer_phrase(answer)
            if phrase:
                candidates.append(phrase[0])
            return any(normalize_text(c) == gold for c in candidates)
        except Exception:
            return False


def _code_oracle(language: str = "python") -> Oracle:
    from pts.tasks.code import CodeOracle  # imports the sandbox only when code is judged

    return CodeOracle(language)


ORACLES: dict[str, Callable[[], Oracle]] = {
    "math": MathOracle,
    "gsm8k": MathOracle,
    "multiple_choice": MultipleChoiceOracle,
    "yes_no": YesNoOracle,
    "exact": ExactMatchOracle,
    "code": _code_oracle,
    "humaneval": _code_oracle,
}


def register_oracle(name: str, factory: Callable[[], Oracle]) -> None:
    """Make ``--oracle name`` judge with a new ``factory()`` oracle (see docs/architecture.md)."""
    ORACLES[name] = factory


def get_oracle(name: str) -> Oracle:
    """Return a new oracle by name: one of ``ORACLES``, ``rg:<reasoning-gym task>`` or
    ``code:<language>`` (``code`` alone is Python).

    Raises PTSError for an unknown name.
    """
    if isinstance(name, str) and name.startswith("rg:"):
        return ReasoningGymOracle(name[3:])
    if isinstance(name, str) and name.startswith("code:"):
        return _code_oracle(name[len("code:"):])
    factory = ORACLES.get(name) if isinstance(name, str) else None
    if factory is None:
        raise PTSError(f"unknown oracle {name!r}; valid names: {', '.join(ORACLES)}, rg:<reasoning-gym task>, "
                       "code:<language>")
    return factory()
