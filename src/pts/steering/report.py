"""The paired comparison: the same prompts and seeds generated without and with steering, and its report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pts.stats import paired_bootstrap_interval, wilson_interval
from pts.steering.apply import ContextSteering, Steering
from pts.steering.generate import Generation

if TYPE_CHECKING:
    from pts.tasks.task import Task

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass
class PairedSample:
    """One (query, sample) pair: the same prompt and random stream, generated without and with steering."""

    task_index: int
    sample: int
    seed: int
    base: Generation
    steered: Generation
    base_correct: bool | None = None
    steered_correct: bool | None = None


@dataclass
class SteerReport:
    """Accuracy without and with steering on the same prompts and seeds."""

    description: str
    model_id: str
    dataset_id: str
    queries: int
    samples: int
    max_new_tokens: int
    temperature: float
    seed: int
    pairs: list[PairedSample]
    layer_norms: dict[int, float]
    added_norms: dict[int, float] = field(default_factory=dict)
    output_path: str | None = None
    seconds: float = 0.0

    @property
    def n(self) -> int:
        return len(self.pairs)

    @property
    def base_correct(self) -> int:
        return sum(bool(p.base_correct) for p in self.pairs)

    @property
    def steered_correct(self) -> int:
        return sum(bool(p.steered_correct) for p in self.pairs)

    @property
    def base_accuracy(self) -> float:
        return self.base_correct / self.n if self.n else 0.0

    @property
    def steered_accuracy(self) -> float:
        return self.steered_correct / self.n if self.n else 0.0

    @property
    def difference(self) -> float:
        return self.steered_accuracy - self.base_accuracy

    def difference_interval(
        self, resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = CONFIDENCE
    ) -> tuple[float, float]:
        """Paired bootstrap over queries: resample queries (with all their samples), percentile interval."""
        per_query: dict[int, list[float]] = {}
        for p in self.pairs:
            per_query.setdefault(p.task_index, []).append(float(bool(p.steered_correct)) - float(bool(p.base_correct)))
        groups = [(sum(d), len(d)) for d in per_query.values()]
        return paired_bootstrap_interval(groups, resamples=resamples, confidence=confidence, seed=self.seed)

    def format(self) -> str:
        b_lo, b_hi = wilson_interval(self.base_correct, self.n, CONFIDENCE)
        s_lo, s_hi = wilson_interval(self.steered_correct, self.n, CONFIDENCE)
        d_lo, d_hi = self.difference_interval()
        fixed = sum(bool(p.steered_correct) and not p.base_correct for p in self.pairs)
        broke = sum(bool(p.base_correct) and not p.steered_correct for p in self.pairs)
        changed = sum(p.base.token_ids != p.steered.token_ids for p in self.pairs)
        fired = sum(p.steered.steered_positions > 0 for p in self.pairs)
        positions = sum(p.steered.steered_positions for p in self.pairs)
        pct = int(CONFIDENCE * 100)
        lines = [
            f"steering: {self.description}",
            f"model: {self.model_id}   dataset: {self.dataset_id}",
            (
                f"{self.queries} queries x {self.samples} samples = {self.n} paired completions (same prompt and seed "
                f"with and without steering), max {self.max_new_tokens} new tokens, temperature {self.temperature:g}, "
                f"seed {self.seed}"
            ),
            "",
            f"{'':12}{'correct':>9}  {'accuracy':>8}  {pct}% CI",
            (
                f"{'base':12}{f'{self.base_correct}/{self.n}':>9}  {self.base_accuracy:8.3f}  "
                f"[{b_lo:.3f}, {b_hi:.3f}] Wilson"
            ),
            (
                f"{'steered':12}{f'{self.steered_correct}/{self.n}':>9}  {self.steered_accuracy:8.3f}  "
                f"[{s_lo:.3f}, {s_hi:.3f}] Wilson"
            ),
            (
                f"{'difference':12}{'':9}  {self.difference:+8.3f}  [{d_lo:+.3f}, {d_hi:+.3f}] paired bootstrap over "
                f"queries ({BOOTSTRAP_RESAMPLES} resamples)"
            ),
            "",
            f"steering fixed {fixed} and broke {broke} of {self.n} pairs; {changed} completions changed",
            f"steering fired in {fired}/{self.n} completions ({positions} positions)",
        ]
        if self.layer_norms:
            parts = []
            for n, v in sorted(self.layer_norms.items()):
                add = self.added_norms.get(n)
                share = f", added {add:.3g} ({100 * add / v:.1f}%)" if add is not None and v > 0 else ""
                parts.append(f"layer {n}: {v:.1f}{share}")
            lines.append(f"mean residual norm at the steered layers: {'; '.join(parts)}")
        if self.output_path:
            lines.append(f"output: {self.output_path}")
        lines.append(f"time: {self.seconds:.1f} s")
        return "\n".join(lines)


@dataclass
class QueryReport:
    """The unsteered and steered replies to one free query (not judged: it has no oracle)."""

    description: str
    query: str
    pairs: list[PairedSample]

    def format(self) -> str:
        return format_query_pairs(self.description, self.query, self.pairs)


def format_query_pairs(description: str, query: str, pairs: Sequence[PairedSample]) -> str:
    """The steered and unsteered replies to one query, side by side in reading order."""
    lines = [f"steering: {description}", f"query: {query}"]
    for p in pairs:
        note = f"vector added at {p.steered.steered_positions} positions"
        if p.base.token_ids == p.steered.token_ids:
            note += "; identical to the unsteered reply"
        lines += [
            "",
            f"=== sample {p.sample + 1} (seed {p.seed}) ===",
            f"--- unsteered ({len(p.base.token_ids)} tokens, {p.base.finish_reason}) ---",
            p.base.text,
            f"--- steered ({len(p.steered.token_ids)} tokens, {p.steered.finish_reason}; {note}) ---",
            p.steered.text,
        ]
    return "\n".join(lines)


def pair_record(
    pair: PairedSample, steering: Steering, task: Task | None = None, query: str | None = None
) -> dict[str, Any]:
    """One line of the pairs JSONL (``--output-path``): both replies, their verdicts, and the vectors that fired."""
    return {
        "dataset_id": task.dataset_id if task else None,
        "item_id": task.item_id if task else None,
        "query": task.query if task else query,
        "answer": task.answer if task else None,
        "sample": pair.sample,
        "seed": pair.seed,
        "base_completion": pair.base.text,
        "base_correct": pair.base_correct,
        "base_finish_reason": pair.base.finish_reason,
        "base_tokens": len(pair.base.token_ids),
        "steered_completion": pair.steered.text,
        "steered_correct": pair.steered_correct,
        "steered_finish_reason": pair.steered.finish_reason,
        "steered_tokens": len(pair.steered.token_ids),
        "steered_positions": pair.steered.steered_positions,
        "vectors": _vector_info(steering, pair.steered),
    }


def _vector_info(steering: Steering, gen: Generation) -> list[dict[str, Any]]:
    if not isinstance(steering, ContextSteering):
        return []
    out = []
    for k in gen.vectors:
        v = steering.vectors[k]
        out.append(
            {
                "row": v.line,
                "layer": steering.layers_of[k],
                "is_positive": v.is_positive,
                "pivot_token": v.pivot_token,
                "reasoning_pattern": v.reasoning_pattern,
                "cluster_id": v.cluster_id,
            }
        )
    return out
