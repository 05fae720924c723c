"""The math oracle: answers compared as numbers, else as math with math-verify.

math-verify (and sympy behind it) is imported on first use so that importing
this module stays cheap.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import signal
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pts.tasks.oracles.extract import (
    NUMBER_PATTERN,
    extract_math_answer,
    final_answer_text,
    math_answer_complete,
    math_gold_text,
)
from pts.tasks.task import Oracle

__all__ = ["MathOracle", "exact_number_verdict", "math_equal"]

_PLAIN_NUMBER_RE = re.compile(r"^" + NUMBER_PATTERN + r"$")
# Magnitudes up to this compare like floats in math-verify without any doubt about its rounding.
_SAFE_MAGNITUDE = Decimal(10) ** 12
_DISTINCT = Decimal("1e-4")  # far beyond math-verify's 6-decimal rounding


def _plain_decimal(s: str) -> Decimal | None:
    """``s`` as an exact Decimal when it is nothing but a plain number (sign, thousands commas, decimals)."""
    s = s.strip()
    return Decimal(s.replace(",", "")) if _PLAIN_NUMBER_RE.match(s) else None


def exact_number_verdict(gold: str, prediction: str) -> bool | None:
    """math-verify's verdict on two plain numbers, decided without it; None where only math-verify can tell.

    Both must be plain numbers (``18``, ``-3.50``, ``1,000``): equal values are equal; two integers that
    differ are not; two numbers below 10^12 that differ by more than 1e-4 are not. Near misses such as
    ``3`` against ``3.0000001`` return None (math-verify rounds some to 6 decimals and not others).
    tests/test_oracles.py checks this against math-verify on a table and on random answers.
    """
    a, b = _plain_decimal(gold), _plain_decimal(prediction)
    if a is None or b is None:
        return None
    if a == b:
        return True
    if "." not in gold and "." not in prediction:
        return False
    if abs(a) < _SAFE_MAGNITUDE and abs(b) < _SAFE_MAGNITUDE and abs(a - b) > _DISTINCT:
        return False
    return None


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
    """True when ``prediction`` equals ``gold`` as math: plain numbers exactly where that is math-verify's
    verdict too (:func:`exact_number_verdict`), other numbers with tolerance, else math-verify."""
    exact = exact_number_verdict(gold, prediction)
    if exact is not None:
        return exact
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
        return answer is not None and math_answer_complete(answer)
