"""Critical tokens by rollout sampling ("Critical Tokens Matter", Lin et al., arXiv 2411.19943, section 2).

For an incorrect trajectory t_0..t_{L-1}, the score of token i is the share of
K rollouts from prompt + t_0..t_i (the prefix that *includes* token i) that
the oracle accepts. The paper's critical token is the first token whose score
is 0 and after which no token scores above 5% (3 of 64); when every such
candidate is followed by a higher score, the authors' code falls back to the
last candidate. :func:`critical_position` is that rule on a score list.

Two ways to get the scores:

* ``scan`` (the paper): K rollouts at every position.
* ``search``: success along a failing trajectory is near-monotone, so the first
  zero is found by bisection, a zero needs all K rollouts but a nonzero score
  usually shows itself in the first few (``probe_samples``), and the "later
  tokens stay low" condition is checked with probes only. On a monotone
  (non-increasing) score curve it returns the scan's token and rule.

Both modes draw a position's K rollouts in the same two stages (``probe``
then ``K - probe``) with seeds fixed by the prefix, so every score the search
computes equals the scan's at that position: the modes differ only in which
positions they look at.

Everything here talks to the engine through :class:`StagedEstimator` asks
(prefix -> samples wanted) yielded by generators, so many trajectories (and
queries) share one engine call per round: see :func:`fulfil` and
:func:`run_rounds`.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pts.engines.base import GREEDY_BELOW, Engine, Rollout, RolloutRequest, SamplingParams
from pts.stats import pass_at_k
from pts.records import stable_seed
from pts.search.estimate import Estimate, Prefix, SuccessEstimator

log = logging.getLogger(__name__)

Mode = Literal["scan", "search"]
RULE_FIRST_ZERO = "first_zero_then_low"
RULE_LAST_ZERO = "last_zero"
RULE_NONE = "none"

# Scores are ratios of small integers; 3/64 against 0.05 must not flip on float noise.
_EPS = 1e-9


# --- the paper's rule and the Pass@k estimator -------------------------------------------------------

def critical_position(scores: Sequence[float], low_threshold: float = 0.05) -> tuple[int | None, str]:
    """The critical token of a fully scored trajectory: ``(position, rule)``.

    Reads the authors' released analysis code literally: walking left to right,
    the first zero score opens a candidate; a later score above
    ``low_threshold`` drops it (remembering it as the last dropped candidate)
    and the next zero opens a new one. A candidate still open at the end is
    the paper's critical token (``"first_zero_then_low"``: the first zero after
    which every later score is at most the threshold); otherwise the last
    dropped candidate (``"last_zero"``); with no zero at all, ``(None, "none")``.
    """
    candidate: int | None = None
    dropped: int | None = None
    for i, s in enumerate(scores):
        if s is None:
            raise ValueError(f"position {i} has no score")
        if s == 0 and candidate is None:
            candidate = i
        elif candidate is not None and s > low_threshold + _EPS:
            dropped, candidate = candidate, None
    if candidate is not None:
        return candidate, RULE_FIRST_ZERO
    if dropped is not None:
        return dropped, RULE_LAST_ZERO
    return None, RULE_NONE


def pass_at_k_curve(n: int, c: int) -> list[float]:
    """``[pass_at_k(n, c, k) for k in 1..n]`` (empty when ``n`` is 0)."""
    return [pass_at_k(n, c, k) for k in range(1, n + 1)]


# --- sampling in stages, many asks per engine call ----------------------------------------------------

class StagedEstimator(SuccessEstimator):
    """A :class:`SuccessEstimator` that tops prefixes up to per-prefix targets, in fixed stages.

    ``stages`` (e.g. ``(8, 64)``) are sample counts a prefix always passes
    through: going from 0 to 64 samples sends a request of 8 and one of 56,
    seeded by the prefix and the samples already drawn, so a prefix's first 8
    rollouts are the same whether it was probed first or asked for 64 at once.
    :meth:`plan` and :meth:`absorb` split a top-up in two so that callers can
    merge the requests of many estimators into one engine call.
    """

    def __init__(self, *args: Any, stages: Sequence[int] = (), keep_rollouts: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stages = tuple(sorted(set(stages)))
        self.keep_rollouts = keep_rollouts
        self.drawn: dict[Prefix, list[Rollout]] = {}

    def plan(self, targets: Mapping[Sequence[int], int]) -> list[tuple[Prefix, RolloutRequest]]:
        """Requests that bring every prefix to at least its target samples (terminal ones are judged now)."""
        out: list[tuple[Prefix, RolloutRequest]] = []
        for raw, target in targets.items():
            prefix = tuple(raw)
            est = self.cache.get(prefix)
            text: str | None = None
            if est is None:
                text = self.response_text(prefix)
                if self._is_terminal(prefix, text):
                    self.cache[prefix] = Estimate(int(self._judge(text)), 1, terminal=True)
                    continue
                est = self.cache[prefix] = Estimate(0, 0)
            if est.terminal or est.samples >= target:
                continue
            text = text if text is not None else self.response_text(prefix)
            have = est.samples
            for edge in [s for s in self.stages if have < s < target] + [target]:
                out.append((prefix, self._request(prefix, edge - have, text, have)))
                have = edge
        return out

    def absorb(self, planned: Sequence[tuple[Prefix, RolloutRequest]], results: Sequence[list[Rollout]]) -> None:
        """Score the rollouts the engine returned for :meth:`plan`'s requests."""
        for (prefix, _), rollouts in zip(planned, results):
            self._score(self.cache[prefix], prefix, rollouts)
            if self.keep_rollouts:
                self.drawn.setdefault(prefix, []).extend(rollouts)


Ask = tuple[StagedEstimator, dict[Prefix, int]]
Steps = Generator[list[Ask], None, Any]


def fulfil(engine: Engine, asks: Sequence[Ask]) -> int:
    """Sample everything ``asks`` want, one engine call per distinct sampling params; returns the calls made."""
    merged: dict[int, tuple[StagedEstimator, dict[Prefix, int]]] = {}
    for est, targets in asks:
        slot = merged.setdefault(id(est), (est, {}))[1]
        for prefix, n in targets.items():
            slot[prefix] = max(slot.get(prefix, 0), n)
    groups: dict[SamplingParams, list[tuple[StagedEstimator, list]]] = {}
    for est, targets in merged.values():
        planned = est.plan(targets)
        if planned:
            groups.setdefault(est.params, []).append((est, planned))
    for params, group in groups.items():
        results = engine.sample([r for _, planned in group for _, r in planned], params)
        start = 0
        for est, planned in group:
            est.absorb(planned, results[start:start + len(planned)])
            start += len(planned)
    return len(groups)


def run_rounds(engine: Engine, jobs: Sequence[Steps]) -> list[Any]:
    """Run step generators side by side, one :func:`fulfil` per round, and return their results in order."""
    results: list[Any] = [None] * len(jobs)
    pending: dict[int, list[Ask]] = {}
    for i, job in enumerate(jobs):
        _advance(job, i, pending, results, first=True)
    while pending:
        fulfil(engine, [a for asks in pending.values() for a in asks])
        for i in list(pending):
            _advance(jobs[i], i, pending, results)
    return results


def _advance(job: Steps, i: int, pending: dict[int, list[Ask]], results: list[Any], first: bool = False) -> None:
    try:
        pending[i] = next(job) if first else job.send(None)
    except StopIteration as stop:
        pending.pop(i, None)
        results[i] = stop.value


# --- scoring one trajectory ----------------------------------------------------------------------------

@dataclass
class CriticalSettings:
    """How critical tokens are found and measured.

    ``rollouts`` is K. ``probe_samples`` is the first stage of every score
    (default K/8): enough to see most nonzero scores. ``verify_stride``: the
    search probes every ``verify_stride``-th token after the candidate to
    check that later scores stay low (1 = every token); ``verify_full``
    tokens right after it (not already known zeros) get all K rollouts,
    since on a falling curve the later scores are highest there. ``pass_at_k``: how
    many alternative tokens (and fresh rollouts keeping the critical token)
    measure Pass@k; ``None`` means K, 0 turns it off.
    """

    rollouts: int = 64
    mode: Mode = "search"
    low_threshold: float = 0.05
    probe_samples: int | None = None
    verify_stride: int = 1
    verify_full: int = 2
    pass_at_k: int | None = None

    @property
    def probe(self) -> int:
        n = self.probe_samples if self.probe_samples is not None else self.rollouts // 8
        return max(1, min(n, self.rollouts))

    @property
    def pass_at_k_samples(self) -> int:
        return self.rollouts if self.pass_at_k is None else self.pass_at_k

    def validate(self) -> None:
        if self.rollouts < 1:
            raise ValueError(f"rollouts must be at least 1, got {self.rollouts}")
        if self.mode not in ("scan", "search"):
            raise ValueError(f"mode must be 'scan' or 'search', got {self.mode!r}")
        if not 0.0 <= self.low_threshold < 1.0:
            raise ValueError(f"low_threshold must be in [0, 1), got {self.low_threshold}")
        if self.probe_samples is not None and self.probe_samples < 1:
            raise ValueError(f"probe_samples must be at least 1, got {self.probe_samples}")
        if self.verify_stride < 1:
            raise ValueError(f"verify_stride must be at least 1, got {self.verify_stride}")
        if self.verify_full < 0:
            raise ValueError(f"verify_full must be >= 0, got {self.verify_full}")
        if self.pass_at_k is not None and self.pass_at_k < 0:
            raise ValueError(f"pass_at_k must be >= 0, got {self.pass_at_k}")


class _View:
    """One trajectory's scores as the shared estimator knows them, with decisions that are certain so far."""

    def __init__(self, est: StagedEstimator, response: Sequence[int], settings: CriticalSettings) -> None:
        self.est = est
        self.response = tuple(response)
        self.k = settings.rollouts
        self.tau = settings.low_threshold

    @property
    def length(self) -> int:
        return len(self.response)

    def prefix(self, i: int) -> Prefix:
        return self.response[: i + 1]

    def get(self, i: int) -> Estimate | None:
        return self.est.cache.get(self.prefix(i))

    def need(self, positions: Sequence[int], samples: int,
             more: Sequence[tuple[Sequence[int], int]] = ()) -> Generator[dict[Prefix, int], None, None]:
        """Yield one ask for the positions with fewer than ``samples`` rollouts (none when all have enough).

        ``more`` adds other (positions, samples) pairs to the same ask.
        """
        targets: dict[Prefix, int] = {}
        for group, n in ((positions, samples), *more):
            for i in group:
                e = self.get(i)
                if e is None or (not e.terminal and e.samples < n):
                    targets[self.prefix(i)] = max(n, targets.get(self.prefix(i), 0))
        if targets:
            yield targets

    def full(self, i: int) -> bool:
        e = self.get(i)
        return e is not None and (e.terminal or e.samples >= self.k)

    def zero(self, i: int) -> bool:
        """Score 0 at K rollouts (or judged exactly)."""
        e = self.get(i)
        return self.full(i) and e.successes == 0

    def nonzero(self, i: int) -> bool:
        e = self.get(i)
        return e is not None and e.successes > 0

    def violation(self, i: int) -> bool:
        """Certainly above the threshold: already more successes than the threshold allows of K."""
        e = self.get(i)
        if e is None:
            return False
        if self.full(i):
            return e.successes > self.tau * e.samples + _EPS
        return e.successes > self.tau * self.k + _EPS

    def score(self, i: int) -> float | None:
        e = self.get(i)
        return e.successes / e.samples if self.full(i) else None

    def rollouts(self) -> int:
        """Rollouts behind this trajectory's scores (terminal positions cost none)."""
        total = 0
        for i in range(self.length):
            e = self.get(i)
            if e is not None and not e.terminal:
                total += e.samples
        return total


def _scan(view: _View, s: CriticalSettings) -> Generator[dict[Prefix, int], None, tuple[int | None, str]]:
    yield from view.need(range(view.length), s.rollouts)
    return critical_position([view.score(i) for i in range(view.length)], s.low_threshold)


def _search(view: _View, s: CriticalSettings) -> Generator[dict[Prefix, int], None, tuple[int | None, str]]:
    """The scan's answer from far fewer positions; exact when scores do not increase along the trajectory.

    1. The last zero: walk back from the end (free when the response ends in a
       terminal token, which is judged exactly).
    2. Bisection between the start and a known zero for a nonzero -> zero step.
    3. Walk left from that step through low scores to the last score above the
       threshold, keeping the leftmost zero passed (catches zeros that the
       bisection jumped over).
    4. Check that later scores stay low: the first ``verify_full`` tokens after
       the candidate with all K rollouts, every ``verify_stride``-th one after
       that with a probe (escalated only when it sees a success). A score above
       the threshold there moves the search after it (back to 2).
    """
    k, probe = s.rollouts, s.probe

    def decide(i: int, stop_at_violation: bool):
        # Probe first; escalate to K only when the probe cannot settle the question asked.
        yield from view.need([i], probe)
        settled = view.violation(i) if stop_at_violation else view.nonzero(i)
        if not settled:
            yield from view.need([i], k)

    last_zero, late_violation = None, False
    for i in range(view.length - 1, -1, -1):
        yield from decide(i, stop_at_violation=False)
        if view.zero(i):
            last_zero = i
            break
        if not view.violation(i):
            yield from view.need([i], k)
        late_violation |= view.violation(i)
    if last_zero is None:
        return None, RULE_NONE
    rule = RULE_LAST_ZERO if late_violation else RULE_FIRST_ZERO

    lo, hi = -1, last_zero  # lo: a nonzero score (or the start), hi: a zero
    while True:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            yield from decide(mid, stop_at_violation=False)
            if view.zero(mid):
                hi = mid
            else:
                lo = mid
        answer = hi
        for j in range(hi - 1, -1, -1):
            yield from decide(j, stop_at_violation=True)
            if view.violation(j):
                break
            if view.zero(j):
                answer = j
        # On a falling curve the tail's highest scores sit right after the candidate: score the first few
        # not already known to be zero fully, probe the rest.
        band = [p for p in range(answer + 1, last_zero) if not view.zero(p)][: s.verify_full]
        probes = [p for p in range(answer + s.verify_stride, last_zero, s.verify_stride) if p not in band]
        yield from view.need(probes, probe, more=[(band, k)])
        unsure = [p for p in probes if view.nonzero(p) and not view.violation(p)]
        yield from view.need(unsure, k)
        later = [p for p in range(answer + 1, last_zero) if view.violation(p)]
        if not later:
            return answer, rule
        lo, hi = max(later), last_zero


# --- Pass@k with and without the critical token ---------------------------------------------------------

class NextTokenLogprobs(Protocol):
    """Log-probabilities of the next token after each prefix (full token ids): one row per prefix, over the vocabulary.

    :meth:`pts.engines.hf.HFEngine.next_token_logprobs` is one; tests pass a function.
    """

    def __call__(self, prefixes: Sequence[Sequence[int]]) -> Sequence[Sequence[float]]: ...


def next_token_source(engine: Any) -> NextTokenLogprobs | None:
    """The engine's next-token distribution, or None when it cannot give one."""
    fn = getattr(engine, "next_token_logprobs", None)
    return fn if callable(fn) else None


def alternative_distribution(logprobs: Sequence[float], exclude: int, params: SamplingParams
                             ) -> tuple[list[int], list[float], str]:
    """The next-token distribution the sampler uses, without token ``exclude``, renormalised.

    Applies temperature, top-k, top-p and min-p in that order (as the HF engine
    samples), then drops ``exclude``. If nothing is left (the sampler would
    always pick ``exclude``), falls back to the untruncated distribution at the
    same temperature (1 when greedy). Returns ``(token_ids, probs, support)``
    with ``support`` ``"sampler"`` or ``"full"``.
    """
    row = logprobs.tolist() if hasattr(logprobs, "tolist") else list(logprobs)
    vocab = len(row)
    greedy = params.temperature < GREEDY_BELOW
    temp = 1.0 if greedy else params.temperature
    if greedy:
        ids = [max(range(vocab), key=row.__getitem__)]
    elif 0 < params.top_k < vocab:
        ids = heapq.nlargest(params.top_k, range(vocab), key=row.__getitem__)
    else:
        ids = sorted(range(vocab), key=row.__getitem__, reverse=True)
    probs = _softmax([row[i] / temp for i in ids])
    if not greedy and params.top_p < 1.0:
        keep, mass = 0, 0.0
        while keep < len(ids) and mass < params.top_p:
            mass += probs[keep]
            keep += 1
        ids, probs = ids[:keep], probs[:keep]
    if not greedy and params.min_p > 0.0:
        floor = params.min_p * max(probs)
        kept = [(i, p) for i, p in zip(ids, probs) if p >= floor]
        ids, probs = [i for i, _ in kept], [p for _, p in kept]
    kept = [(i, p) for i, p in zip(ids, probs) if i != exclude]
    support = "sampler"
    if not kept or sum(p for _, p in kept) <= 0.0:
        full = [i for i in range(vocab) if i != exclude and row[i] > -math.inf]
        kept = list(zip(full, _softmax([row[i] / temp for i in full])))
        support = "full"
    total = sum(p for _, p in kept)
    return [i for i, _ in kept], [p / total for _, p in kept], support


def sample_alternatives(logprobs: Sequence[float], exclude: int, n: int, params: SamplingParams,
                        rng: random.Random) -> tuple[list[int], str]:
    """``n`` next tokens drawn with replacement from :func:`alternative_distribution`; and its support."""
    ids, probs, support = alternative_distribution(logprobs, exclude, params)
    return rng.choices(ids, weights=probs, k=n), support


def _softmax(xs: Sequence[float]) -> list[float]:
    top = max(xs)
    ex = [math.exp(x - top) for x in xs]
    total = sum(ex)
    return [e / total for e in ex]


# --- one query's trajectories ---------------------------------------------------------------------------

@dataclass
class CriticalResult:
    """What scoring one incorrect trajectory found.

    ``estimates[i]`` is the estimate behind the score of ``response_ids[i]``
    (``None`` where not sampled). ``rollouts`` counts the rollouts behind these
    scores (as if the trajectory were scored alone). ``alternatives`` maps
    each alternative token drawn at the critical position to ``[count,
    successes]``.
    """

    response_ids: tuple[int, ...]
    position: int | None
    rule: str
    estimates: list[Estimate | None]
    rollouts: int
    low_threshold: float
    samples_with: int = 0
    successes_with: int = 0
    alternatives: dict[int, list[int]] = field(default_factory=dict)
    alternatives_support: str = ""
    pass_at_k_rollouts: int = 0

    @property
    def token_id(self) -> int | None:
        return None if self.position is None else self.response_ids[self.position]

    @property
    def scores(self) -> list[float | None]:
        return [None if e is None else e.successes / e.samples for e in self.estimates]

    @property
    def score(self) -> float | None:
        return None if self.position is None else self.scores[self.position]

    @property
    def samples_without(self) -> int:
        return sum(c for c, _ in self.alternatives.values())

    @property
    def successes_without(self) -> int:
        return sum(k for _, k in self.alternatives.values())

    @property
    def pass_at_k_with(self) -> list[float]:
        return pass_at_k_curve(self.samples_with, self.successes_with)

    @property
    def pass_at_k_without(self) -> list[float]:
        return pass_at_k_curve(self.samples_without, self.successes_without)


class CriticalTokenFinder:
    """Critical tokens of one query's incorrect trajectories, scanned or searched, plus Pass@k.

    ``prompt_ids`` is the exact prompt; trajectories are response token ids
    after it. Rollouts are capped so prefix + continuation stays within
    ``max_new_tokens`` (as in :class:`SuccessEstimator`). ``seed`` fixes every
    rollout (scan and search draw the same ones at the positions both look
    at). ``distribution`` gives next-token log-probs for the alternatives of
    Pass@k (default: the engine's ``next_token_logprobs``; without one, only
    the Pass@k that keeps the critical token is measured).
    """

    def __init__(self, engine: Engine, task: Any, prompt_ids: Sequence[int], params: SamplingParams,
                 settings: CriticalSettings, *, max_new_tokens: int, seed: int | None = None,
                 judge_prefix: str = "", early_stop: bool = True,
                 distribution: NextTokenLogprobs | None = None) -> None:
        settings.validate()
        self.engine = engine
        self.task = task
        self.prompt_ids = tuple(prompt_ids)
        self.params = params
        self.settings = settings
        self.seed = seed
        self.distribution = distribution if distribution is not None else next_token_source(engine)
        self._kw = {"max_new_tokens": max_new_tokens, "judge_prefix": judge_prefix, "early_stop": early_stop}
        k = settings.rollouts
        self.scores = self._estimator(seed, stages=(settings.probe, k))
        self.with_critical = self._estimator(self._salted("with"))
        self.alternatives: list[StagedEstimator] = []

    @property
    def pass_at_k_estimators(self) -> list[StagedEstimator]:
        """The estimators whose rollouts measured Pass@k (fresh ones keeping the token, then alternatives)."""
        return [self.with_critical, *self.alternatives]

    def _salted(self, *salt: Any) -> int | None:
        return None if self.seed is None else stable_seed(self.seed, *salt)

    def _estimator(self, seed: int | None, **kw: Any) -> StagedEstimator:
        return StagedEstimator(self.engine, self.task, self.prompt_ids, self.params,
                               num_samples=self.settings.rollouts, seed=seed, **self._kw, **kw)

    def steps(self, trajectories: Sequence[Sequence[int]]) -> Generator[list[Ask], None, list[CriticalResult]]:
        """Step generator (see :func:`run_rounds`) scoring every trajectory side by side; returns their results."""
        s = self.settings
        views = [_View(self.scores, t, s) for t in trajectories]
        algorithm = _scan if s.mode == "scan" else _search
        found = yield from _lockstep(self.scores, [algorithm(v, s) for v in views])
        results = [CriticalResult(v.response, pos, rule, [v.get(i) for i in range(v.length)], v.rollouts(),
                                  s.low_threshold) for v, (pos, rule) in zip(views, found)]
        if s.pass_at_k_samples > 0:
            yield from self._pass_at_k(results)
        return results

    def find(self, trajectories: Sequence[Sequence[int]]) -> list[CriticalResult]:
        """Score ``trajectories`` now, alone on the engine."""
        return run_rounds(self.engine, [self.steps(trajectories)])[0]

    def _pass_at_k(self, results: list[CriticalResult]) -> Generator[list[Ask], None, None]:
        """Fresh rollouts that keep each critical token, and one rollout from each of n alternatives."""
        n = self.settings.pass_at_k_samples
        found = [r for r in results if r.position is not None]
        if not found:
            return
        asks: list[Ask] = [(self.with_critical, {r.response_ids[: r.position + 1]: n for r in found})]
        alt_estimators: list[StagedEstimator | None] = []
        if self.distribution is None:
            alt_estimators = [None] * len(found)
        else:
            contexts = [r.response_ids[: r.position] for r in found]
            rows = self.distribution([self.prompt_ids + c for c in contexts])
            for r, context, row in zip(found, contexts, rows):
                rng = random.Random(self._salted("alternatives", context, r.token_id))
                tokens, r.alternatives_support = sample_alternatives(row, r.token_id, n, self.params, rng)
                counts = Counter(tokens)
                r.alternatives = {t: [c, 0] for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}
                # Own estimator per trajectory: each alternative needs exactly its own draw count.
                est = self._estimator(self._salted("alternatives", context, r.token_id))
                alt_estimators.append(est)
                self.alternatives.append(est)
                asks.append((est, {context + (t,): c for t, c in counts.items()}))
        yield asks
        for r, est in zip(found, alt_estimators):
            e = self.with_critical.cache[r.response_ids[: r.position + 1]]
            r.samples_with, r.successes_with = n, (n * e.successes if e.terminal else e.successes)
            r.pass_at_k_rollouts = 0 if e.terminal else e.samples
            if est is None:
                continue
            context = r.response_ids[: r.position]
            for t, counts in r.alternatives.items():
                a = est.cache[context + (t,)]
                counts[1] = counts[0] * a.successes if a.terminal else a.successes
            r.pass_at_k_rollouts += est.rollouts


def _lockstep(est: StagedEstimator, gens: list[Generator[dict[Prefix, int], None, Any]]
              ) -> Generator[list[Ask], None, list[Any]]:
    """Advance per-trajectory generators together: their asks of each round go out as one."""
    results: list[Any] = [None] * len(gens)
    pending: dict[int, dict[Prefix, int]] = {}
    for i, g in enumerate(gens):
        try:
            pending[i] = next(g)
        except StopIteration as stop:
            results[i] = stop.value
    while pending:
        merged: dict[Prefix, int] = {}
        for targets in pending.values():
            for prefix, n in targets.items():
                merged[prefix] = max(merged.get(prefix, 0), n)
        yield [(est, merged)]
        for i in list(pending):
            try:
                pending[i] = next(gens[i])
            except StopIteration as stop:
                del pending[i]
                results[i] = stop.value
    return results


def incorrect_trajectories(task: Any, rollouts: Sequence[Rollout], judge_prefix: str = "",
                           decode: Callable[[Sequence[int]], str] | None = None) -> list[tuple[int, ...]]:
    """Distinct non-empty rollouts that the task's oracle rejects, in sampling order."""
    seen: set[tuple[int, ...]] = set()
    out = []
    for r in rollouts:
        ids = tuple(r.token_ids)
        text = decode(ids) if decode is not None else r.text
        if ids and ids not in seen and not task.judge(judge_prefix + text):
            seen.add(ids)
            out.append(ids)
    return out
