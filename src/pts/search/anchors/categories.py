"""A rule-based labeller of reasoning sentences, in Thought Anchors' eight categories.

The paper labels sentences with an LLM; pts has none to spare, so it uses
rules: the first category (in :data:`RULES` order) whose pattern matches the
lower-cased sentence wins, and ``unknown`` is the label when no rule fires.
The order puts the narrow categories (a final answer, a check, a doubt) before
the broad ones (a computation, a plan). :func:`reasoning_pattern` maps a
category to the original PTS tool's ``reasoning_pattern`` names.
"""

from __future__ import annotations

import re

UNKNOWN = "unknown"

# (category, pattern). First match wins (a category may have two rules); documented in docs/anchors.md.
RULES: tuple[tuple[str, str], ...] = (
    ("final_answer_emission", r"\\boxed|final answer|the answer is|answer:\s|####"),
    ("self_checking", r"\b(let me (verify|check|double-check)|verify|check(ing)?|confirm|is this (right|correct))\b"),
    ("uncertainty_management", r"\b(wait|hmm|actually|hold on|not sure|mistake|reconsider|i think i)\b"),
    ("result_consolidation", r"\b(therefore|thus|hence|so the|in total|altogether|in summary|overall)\b"),
    ("active_computation", r"\d\s*[-+*/x×=]\s*\d"),
    ("fact_retrieval", r"\b(recall|we know|formula|by definition|is defined as|there are \d+ \w+ in)\b"),
    ("plan_generation", r"\b(first|next|then|let's|let me|we need to|i need to|to (find|solve)|step \d|approach)\b"),
    ("active_computation", r"\b(equals|gives|multiply|divide|subtract|add(ing)?|sum of|plus|minus|times)\b"),
    ("problem_setup", r"\b(the problem|we are given|given|the question|asks?)\b"),
)
_COMPILED = tuple((name, re.compile(pattern)) for name, pattern in RULES)

CATEGORIES = tuple(dict.fromkeys(name for name, _ in RULES))

# The original PTS tool's reasoning_pattern for each category (its exporter's mapping).
PATTERNS = {
    "plan_generation": "planning",
    "uncertainty_management": "uncertainty_management",
    "self_checking": "verification",
    "active_computation": "computation",
    "fact_retrieval": "knowledge_access",
    "result_consolidation": "consolidation",
    "final_answer_emission": "answer_emission",
    "problem_setup": "problem_understanding",
}


def categorise(sentence: str) -> str:
    """The category of ``sentence``: the first rule of :data:`RULES` that matches, else ``unknown``."""
    lowered = sentence.lower()
    return next((name for name, pattern in _COMPILED if pattern.search(lowered)), UNKNOWN)


def reasoning_pattern(category: str, sentence: str) -> str:
    """The original tool's ``reasoning_pattern`` of a sentence of ``category`` (``other`` when unknown);
    a doubt that turns back (``wait``, ``actually``...) is ``backtracking``, as there."""
    if category == "uncertainty_management" and re.search(r"\b(wait|actually|hmm|reconsider)\b", sentence.lower()):
        return "backtracking"
    return PATTERNS.get(category, "other")
