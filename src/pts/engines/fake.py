"""A model-free engine whose p(success | prefix) is a known function, for exact tests.

Each rollout continues a fixed ``script`` (the remaining script tokens after a
prefix that follows it), then emits a verdict token, `` PASS`` with probability
``p_success(response prefix)`` or `` FAIL`` otherwise, then end-of-sequence.
With ``exact=True`` the verdicts of the n rollouts of one request are
stratified (exactly round(p*n) pass), so estimates are exact and the pivotal
tokens of any solution are known in advance. Randomness depends only on the
engine seed, the prefix and the request's seed, never on call order or batching.
With ``stratify_per_prefix`` as well, verdicts are stratified over all the
rollouts drawn at a prefix so far (the first m hold round(p*m) passes, however
requests split them): counts then depend on the order of a prefix's requests,
which a staged estimator fixes.

:class:`BranchingFakeEngine` is the one that samples like a language model (the
chain rule holds at every prefix); it reports each token's probability under
its sampling distribution exactly (``Rollout.sampling_logprobs``), can draw a
first token with one token excluded, and gives the next-token distribution at
any prefix without sampling. :class:`FakeEngine` reports no sampling
probabilities (None): its p(success | prefix) is an arbitrary function that no
sampling distribution of its rollouts would produce, so the bound
|p(C + t) - p(C)| <= 1 - pi(t | C) does not hold for it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from pts.engines.base import Rollout, RolloutRequest, SamplingParams, sample_by_steps
from pts.records import stable_id
from pts.tasks.task import Oracle

EOS, PASS, FAIL = 0, 1, 2
_SPECIAL = {EOS: "<eos>", PASS: " PASS", FAIL: " FAIL"}
_CHAR_BASE = 16


class FakeTokenizer:
    """Character-level tokenizer: ids below 16 are special, the rest are ``ord(c) + 16``."""

    chat_template = None
    eos_token_id = EOS
    pad_token_id = EOS

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [ord(c) + _CHAR_BASE for c in text]

    def __call__(self, text: str, add_special_tokens: bool = True, **_: Any) -> dict[str, list[int]]:
        return {"input_ids": self.encode(text)}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False, **_: Any) -> str:
        out = []
        for i in ids:
            if i >= _CHAR_BASE:
                out.append(chr(i - _CHAR_BASE))
            elif i in (PASS, FAIL) or not skip_special_tokens:
                out.append(_SPECIAL.get(i, f"<{i}>"))
        return "".join(out)


def token(c: str) -> int:
    """The fake token id of one character."""
    return ord(c) + _CHAR_BASE


class PassFailOracle(Oracle):
    """Success when the response's last word is PASS."""

    name = "pass_fail"

    def judge(self, completion: str, reference: Any) -> bool:
        words = completion.split()
        return bool(words) and words[-1] == "PASS"

    def answer_complete(self, completion: str) -> bool:
        return completion.rstrip().endswith(("PASS", "FAIL"))


class FakeEngine:
    """Rollouts from a known p(success | response prefix); see the module docstring.

    ``p_success`` receives the response prefix (token ids after the prompt).
    Counters record what the search asked for: ``calls`` (engine calls),
    ``requests`` (prefixes estimated) and ``rollouts``.
    """

    model_id = "fake"

    def __init__(
        self,
        p_success: Callable[[tuple[int, ...]], float],
        script: Sequence[int] = (),
        *,
        prompt_length: int,
        exact: bool = True,
        seed: int = 0,
        stratify_per_prefix: bool = False,
    ) -> None:
        self.p_success = p_success
        self.stratify_per_prefix = stratify_per_prefix
        self.drawn: dict[tuple[int, ...], int] = {}
        self.script = tuple(script)
        self.prompt_length = prompt_length
        self.exact = exact
        self.seed = seed
        self.tokenizer = FakeTokenizer()
        self.eos_token_ids = frozenset({EOS})
        self.calls = 0
        self.requests = 0
        self.rollouts = 0
        self.prefixes: list[tuple[int, ...]] = []

    def sample(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[list[Rollout]]:
        self.calls += 1
        return [self._sample_one(r) for r in requests]

    def _sample_one(self, request: RolloutRequest) -> list[Rollout]:
        self.requests += 1
        self.rollouts += request.n
        response = tuple(request.prefix_ids[self.prompt_length :])
        self.prefixes.append(response)
        p = self.p_success(response)
        rng = random.Random(stable_id(self.seed, response, request.seed))
        if self.exact and self.stratify_per_prefix:
            # The first m rollouts of a prefix hold round(p * m) passes, however requests split them.
            m = self.drawn.get(response, 0)
            self.drawn[response] = m + request.n
            passes = round(p * (m + request.n)) - round(p * m)
            verdicts = [i < passes for i in range(request.n)]
            rng.shuffle(verdicts)
        elif self.exact:
            passes = round(p * request.n)
            verdicts = [i < passes for i in range(request.n)]
            rng.shuffle(verdicts)
        else:
            verdicts = [rng.random() < p for _ in range(request.n)]
        follows = self.script[: len(response)] == response
        rest = list(self.script[len(response) :]) if follows else []
        out = []
        for ok in verdicts:
            ids = (rest + [PASS if ok else FAIL, EOS])[: request.max_new_tokens]
            reason = "eos" if ids and ids[-1] == EOS else "length"
            out.append(Rollout(ids, self.tokenizer.decode(ids, skip_special_tokens=True), [-1.0] * len(ids), reason))
        return out


def verdict_odds(ids: tuple[int, ...]) -> float:
    """p(success) of :func:`create`'s engine: 1 once a PASS token is in ``ids``, 0 once a FAIL is, else 0.5."""
    return 1.0 if PASS in ids else 0.0 if FAIL in ids else 0.5


def create(model: str, *, device: str = "auto", dtype: str = "auto", batch_size: int = 64) -> FakeEngine:
    """The engine factory every engine module has (see :mod:`pts.engines`): a model-free :class:`FakeEngine`.

    ``model``, ``device``, ``dtype`` and ``batch_size`` are accepted and ignored. Every query has p(success) 0.5
    and every rollout is one verdict token: the verdict is the pivotal token (0.5 -> 1 or 0), whatever the prompt
    (verdict ids never occur in text), so ``pts run --engine NAME`` finds it with any dataset and
    :class:`PassFailOracle`.
    """
    return FakeEngine(verdict_odds, prompt_length=0)


class BranchingFakeEngine:
    """Rollouts that leave the solution at random positions, with p(success | prefix) known for every prefix.

    A rollout from an on-script prefix of ``i`` tokens takes ``script[i]`` with
    probability ``follow[i]`` (one number for every step, or one per step) and
    otherwise a ``~`` token, after which it is off script: it writes filler
    letters up to the script's length, then `` PASS`` with probability
    ``deviate_p[i]`` (fixed at the step it left) or `` FAIL``, then
    end-of-sequence. On script to the end it passes with ``p_script[-1]``.
    ``deviate_p[i] = (p_script[i] - f * p_script[i + 1]) / (1 - f)``, f = ``follow[i]``,
    makes ``p_script[i]`` the true p(success | script[:i]): the chain rule holds
    at every prefix, as it does for a language model, so a rollout that passed
    through a prefix is a fair sample of p(success | that prefix). The old
    :class:`FakeEngine` draws every verdict from p(request prefix) whatever the
    rollout then wrote, which breaks that property; search with pooling needs
    this engine. Verdicts are binomial (never stratified).

    Sampling probabilities (``Rollout.sampling_logprobs``, :meth:`next_token_distribution`)
    are exact: ``follow[i]`` for the script token, ``1 - follow[i]`` for ``~``, 1/3 for
    each filler letter, p and 1 - p for `` PASS`` and `` FAIL``, 1 for end-of-sequence.
    With ``filler_like_script`` the filler after step i is ``x`` with probability
    ``follow[i]`` and ``y``/``z`` share the rest: off script, the sampler is as sure
    of its next token as on it (uniform filler makes every off-script position
    one where 1 - pi = 2/3, which no model's text is like).
    A request's ``exclude_first`` draws the first token from that distribution
    without the excluded token (the deviation when the script token is excluded).

    With ``exact=True`` the n rollouts of a request are stratified instead of drawn: at each step exactly
    ``round(follow * count)`` of those still on script follow it, the others deviate (and write ``x`` filler),
    and of each group exactly ``round(p * count)`` pass. Every count an estimate sees is then known in
    advance, up to that rounding, and a test of the search does not depend on sampling luck.
    """

    model_id = "fake-branching"
    DEVIATE = "~"
    excludes_first = True  # honours RolloutRequest.exclude_first

    def __init__(
        self,
        p_script: Sequence[float],
        script: Sequence[int],
        *,
        prompt_length: int,
        follow: float | Sequence[float] = 0.9,
        seed: int = 0,
        filler_like_script: bool = False,
        exact: bool = False,
    ) -> None:
        self.exact = exact
        if len(p_script) != len(script) + 1:
            raise ValueError("p_script needs one value per prefix length 0..len(script)")
        follow = [follow] * len(script) if isinstance(follow, (int, float)) else list(follow)
        if len(follow) != len(script) or not all(0.0 < f < 1.0 for f in follow):
            raise ValueError("follow needs one probability strictly between 0 and 1 per script token")
        self.p_script = list(p_script)
        self.script = tuple(script)
        self.follow = follow
        self.prompt_length = prompt_length
        self.seed = seed
        self.filler_like_script = filler_like_script
        self.deviate_p = [(p_script[i] - f * p_script[i + 1]) / (1 - f) for i, f in enumerate(follow)]
        bad = [i for i, d in enumerate(self.deviate_p) if not -1e-9 <= d <= 1 + 1e-9]
        if bad:
            raise ValueError(
                f"no consistent deviation probability at positions {bad}: lower `follow` there "
                "or make those steps smaller"
            )
        self.deviate_p = [min(1.0, max(0.0, d)) for d in self.deviate_p]
        self.tokenizer = FakeTokenizer()
        self.eos_token_ids = frozenset({EOS})
        self.calls = 0
        self.rollouts = 0

    def true_p(self, response: Sequence[int]) -> float:
        """p(success | response prefix), exactly, for any prefix this engine can produce."""
        response = tuple(response)
        if PASS in response or FAIL in response:
            return 1.0 if PASS in response else 0.0
        off = token(self.DEVIATE)
        if off in response:
            return self.deviate_p[response.index(off)]
        return self.p_script[len(response)]

    def sample(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[list[Rollout]]:
        self.calls += 1
        return [self._sample_one(r) for r in requests]

    def _sample_one(self, request: RolloutRequest) -> list[Rollout]:
        response = tuple(request.prefix_ids[self.prompt_length :])
        salt = () if request.exclude_first is None else (request.exclude_first,)
        rng = random.Random(stable_id(self.seed, response, request.seed, *salt))
        self.rollouts += request.n
        if self.exact:
            return self._stratified(response, request.n, rng, request.max_new_tokens, request.exclude_first)
        return [self._rollout(response, rng, request.max_new_tokens, request.exclude_first) for _ in range(request.n)]

    def _stratified(
        self, response: tuple[int, ...], n: int, rng: random.Random, budget: int, exclude: int | None
    ) -> list[Rollout]:
        """The ``n`` rollouts of one request with ``exact``: see the class docstring."""
        off, length = token(self.DEVIATE), len(self.script)
        bodies: list[tuple[list[int], bool | None]] = []
        if PASS in response or FAIL in response:
            bodies = [([EOS], None)] * n
        elif off in response:
            fill = [token("x")] * (length - len(response))
            bodies = [(fill, ok) for ok in _stratify(self.deviate_p[response.index(off)], n)]
        else:
            count, written = n, []
            for j in range(len(response), length):
                stay = round(self.follow[j] * count)
                if exclude is not None and j == len(response):
                    stay = 0 if exclude == self.script[j] else count
                fill = [off] + [token("x")] * (length - j - 1)
                bodies += [(written + fill, ok) for ok in _stratify(self.deviate_p[j], count - stay)]
                count, written = stay, written + [self.script[j]]
            bodies += [(written, ok) for ok in _stratify(self.p_script[-1], count)]
        rng.shuffle(bodies)
        out = []
        for body, ok in bodies:
            ids = (body + ([] if ok is None else [PASS if ok else FAIL, EOS]))[:budget]
            pis, context = [], response
            for t in ids:
                pis.append(self._distribution(context).get(t, 1.0))
                context += (t,)
            reason = "eos" if ids and ids[-1] == EOS else "length"
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            out.append(Rollout(ids, text, [-1.0] * len(ids), reason, [math.log(q) if q > 0 else -1e9 for q in pis]))
        return out

    def next_token_distribution(
        self, prefixes: Sequence[Sequence[int]], params: SamplingParams | None = None
    ) -> list[dict[int, float]]:
        """The exact sampling distribution of the token after each prefix (prompt included), ``{id: pi}``."""
        out = []
        for p in prefixes:
            out.append({t: q for t, q in self._distribution(tuple(p[self.prompt_length :])).items() if q > 0})
        return out

    def _distribution(self, response: tuple[int, ...]) -> dict[int, float]:
        """The next token's distribution after ``response``; the verdict step keeps a zero-weight side, so that
        every rollout makes the same uniform draws whatever p is (rollouts of earlier versions stay the same)."""
        n, off = len(self.script), token(self.DEVIATE)
        if PASS in response or FAIL in response:
            return {EOS: 1.0}
        if off not in response and len(response) < n:
            f = self.follow[len(response)]
            return {self.script[len(response)]: f, off: 1 - f}
        if len(response) < n:
            if self.filler_like_script:  # as sure of its next letter as the script is at that step
                f = self.follow[len(response)]
                return {token("x"): f, token("y"): (1 - f) / 2, token("z"): (1 - f) / 2}
            return {token(c): 1 / 3 for c in "xyz"}
        p = self.true_p(response)
        return {PASS: p, FAIL: 1 - p}

    def _rollout(self, response: tuple[int, ...], rng: random.Random, budget: int, exclude: int | None) -> Rollout:
        ids: list[int] = []
        pis: list[float] = []
        context = response
        while len(ids) < budget and (not ids or ids[-1] != EOS):
            dist = self._distribution(context)
            choices = dist if exclude is None or ids else {t: q for t, q in dist.items() if t != exclude}
            if not any(choices.values()):
                raise ValueError("exclude_first leaves nothing to sample")
            if len(choices) == 1:
                (t,) = choices
            elif len(choices) == 3 and not self.filler_like_script:  # filler letters, uniform
                t = token(rng.choice("xyz"))
            else:
                t = _draw(rng, choices)
            ids.append(t)
            pis.append(dist[t])
            context += (t,)
        reason = "eos" if ids and ids[-1] == EOS else "length"
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return Rollout(ids, text, [-1.0] * len(ids), reason, [math.log(q) for q in pis])


def _stratify(p: float, n: int) -> list[bool]:
    """Exactly ``round(p * n)`` of ``n`` verdicts pass."""
    passes = round(p * n)
    return [i < passes for i in range(n)]


def _draw(rng: random.Random, dist: dict[int, float]) -> int:
    """One token from ``dist`` (weights need not sum to 1), by one uniform draw in key order."""
    u = rng.random() * sum(dist.values())
    for t, q in dist.items():
        u -= q
        if u < 0:
            return t
    return t


def planted_follow(p: float, delta: float) -> float:
    """The probability of following the script at a step that moves p to ``p + delta``.

    p = f p_after + (1 - f) p_off, with p_off (leaving the script) in [0, 1], can move to p + delta only if
    f <= p / (p + delta) (a rise) or f <= (1 - p) / (1 - p - delta) (a fall); 95% of that, and at most 0.8.
    """
    bound = p / (p + delta) if delta > 0 else (1 - p) / (1 - p - delta)
    return min(0.8, 0.95 * bound)


def planted_scenario(
    rng: random.Random,
    length: int = 24,
    pivots: int = 3,
    delta_range: tuple[float, float] = (0.05, 0.6),
    flat_follow: float | Callable[[random.Random], float] = 0.9,
) -> tuple[list[int], list[float], list[float]]:
    """A random script with ``pivots`` planted steps of p, for :class:`BranchingFakeEngine`.

    Returns ``(script, p_script, follow)``: p starts in [0.3, 0.7] and changes
    only at the planted positions, by a size drawn from ``delta_range`` with a
    random sign (flipped or shrunk to keep p within [0.02, 0.98]). Rollouts leave
    the script with probability ``1 - flat_follow`` at flat steps (harmless:
    p stays the same) and more often at planted ones, where following the
    script must be rare enough for the chain rule to hold. ``flat_follow`` may
    be a function drawing each flat step's probability from ``rng`` (after the
    script and the pivots are drawn, so those stay the same), e.g.
    :func:`realistic_follow`.
    """
    script = [token(rng.choice("abcdefgh")) for _ in range(length)]
    where = set(rng.sample(range(length), pivots))
    p = rng.uniform(0.3, 0.7)
    p_script, follow = [p], []
    for i in range(length):
        if i in where:
            size = rng.uniform(*delta_range)
            sign = rng.choice((-1, 1))
            if not 0.02 <= p + sign * size <= 0.98:
                sign = -sign
            delta = sign * min(size, (0.98 - p) if sign > 0 else (p - 0.02))
            follow.append(planted_follow(p, delta))
            p += delta
        else:
            follow.append(None)
        p_script.append(p)
    draw = flat_follow if callable(flat_follow) else (lambda _: flat_follow)
    follow = [draw(rng) if f is None else f for f in follow]
    return script, p_script, follow


def realistic_follow(rng: random.Random) -> float:
    """pi of a flat step as on the embedded model's solutions: 39% of positions had 1 - pi >= 0.2 there
    (docs/search.md); here 1 - pi is uniform in [0.2, 0.95] for 39% of steps, in [0.001, 0.2) otherwise."""
    if rng.random() < 0.39:
        return 1 - rng.uniform(0.2, 0.95)
    return 1 - rng.uniform(0.001, 0.2)


class SentenceFakeEngine:
    """Rollouts that keep or replace whole sentences, with planted outcomes, for exact tests of thought anchors.

    The response is ``sentences`` (texts, one character per token) then a verdict sentence (``"\\n\\nVerdict:"``
    and `` PASS``/`` FAIL``) and end-of-sequence. From the prefix before sentence i (on script), of n rollouts
    exactly ``round(keep[i] * n)`` write sentence i and go on by the same rule at i+1 (on that count); the
    others write ``alternatives[i]`` and a verdict, of which exactly ``round(p_different[i] * count)`` pass.
    Rollouts that wrote every sentence pass ``round(p_end * count)`` times. So every count an estimator sees
    is known in advance. Prefixes must end at a sentence boundary (or after an alternative). With
    ``exact=False`` every rollout keeps, and passes, independently with those probabilities instead (binomial).
    """

    model_id = "fake-sentences"
    VERDICT = "\n\nVerdict:"

    def __init__(
        self,
        sentences: Sequence[str],
        alternatives: Sequence[str],
        keep: Sequence[float],
        p_different: Sequence[float],
        p_end: float,
        *,
        prompt_length: int,
        seed: int = 0,
        exact: bool = True,
    ) -> None:
        if not len(sentences) == len(alternatives) == len(keep) == len(p_different):
            raise ValueError("sentences, alternatives, keep and p_different need one value per sentence")
        self.tok = FakeTokenizer()
        self.sentences = [tuple(self.tok.encode(s)) for s in sentences]
        self.alternatives = [tuple(self.tok.encode(a)) for a in alternatives]
        self.keep, self.p_different, self.p_end = list(keep), list(p_different), p_end
        self.verdict = tuple(self.tok.encode(self.VERDICT))
        self.exact = exact
        self.prompt_length = prompt_length
        self.seed = seed
        self.tokenizer = self.tok
        self.eos_token_ids = frozenset({EOS})
        self.calls = 0
        self.rollouts = 0
        self.requests: list[tuple[tuple[int, ...], int]] = []

    def solution(self, ok: bool = True) -> list[int]:
        """The scripted response: every sentence, then the verdict (``ok``) and end-of-sequence."""
        return [t for s in self.sentences for t in s] + list(self.verdict) + [PASS if ok else FAIL, EOS]

    def _where(self, response: tuple[int, ...]) -> tuple[str, int]:
        """(``"on"``, i): the prefix before sentence i; (``"off"``, i): after alternative i; (``"done"``, -1)."""
        if PASS in response or FAIL in response:
            return "done", -1
        pos = 0
        for i, (s, a) in enumerate(zip(self.sentences, self.alternatives)):
            if len(response) == pos:
                return "on", i
            if response[pos : pos + len(s)] == s:
                pos += len(s)
            elif response[pos : pos + len(a)] == a and len(response) == pos + len(a):
                return "off", i
            else:
                raise ValueError(f"prefix is not at a sentence boundary: {self.tok.decode(list(response))!r}")
        if len(response) == pos:
            return "on", len(self.sentences)
        raise ValueError(f"prefix is not at a sentence boundary: {self.tok.decode(list(response))!r}")

    def sample(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[list[Rollout]]:
        self.calls += 1
        return [self._sample_one(r) for r in requests]

    def _verdicts(self, p: float, n: int, rng: random.Random) -> list[bool]:
        if not self.exact:
            return [rng.random() < p for _ in range(n)]
        passes = round(p * n)
        return [i < passes for i in range(n)]

    def true_accuracy(self) -> list[float]:
        """p(success | the prefix before sentence i) for i = 0..len(sentences) (the chain rule, exactly)."""
        acc = [self.p_end]
        for keep, p in zip(reversed(self.keep), reversed(self.p_different)):
            acc.insert(0, keep * acc[0] + (1 - keep) * p)
        return acc

    def _sample_one(self, request: RolloutRequest) -> list[Rollout]:
        response = tuple(request.prefix_ids[self.prompt_length :])
        self.rollouts += request.n
        self.requests.append((response, request.n))
        where, i = self._where(response)
        rng = random.Random(stable_id(self.seed, response, request.seed))
        bodies: list[list[int]] = []
        if where == "done":
            bodies = [[EOS]] * request.n
        elif where == "off":
            bodies = [
                list(self.verdict) + [PASS if ok else FAIL, EOS]
                for ok in self._verdicts(self.p_different[i], request.n, rng)
            ]
        else:
            count, written = request.n, []
            for j in range(i, len(self.sentences)):
                kept = (
                    round(self.keep[j] * count)
                    if self.exact
                    else sum(rng.random() < self.keep[j] for _ in range(count))
                )
                for ok in self._verdicts(self.p_different[j], count - kept, rng):
                    bodies.append(
                        written + list(self.alternatives[j]) + list(self.verdict) + [PASS if ok else FAIL, EOS]
                    )
                count, written = kept, written + list(self.sentences[j])
            bodies += [
                written + list(self.verdict) + [PASS if ok else FAIL, EOS]
                for ok in self._verdicts(self.p_end, count, rng)
            ]
        rng.shuffle(bodies)
        out = []
        for body in bodies:
            ids = body[: request.max_new_tokens]
            reason = "eos" if ids and ids[-1] == EOS else "length"
            out.append(Rollout(ids, self.tok.decode(ids, skip_special_tokens=True), [-1.0] * len(ids), reason))
        return out


class SteppedFakeEngine:
    """Any fake engine behind a running batch of ``batch_size`` rows, as :meth:`pts.engines.HFEngine.running`
    offers one: for exact tests of continuous batching (requests joining a running batch) without a model.

    A rollout's tokens come from ``inner`` (one request at a time, so with its own seed), and the rollout
    holds a row for one step per token. :meth:`running` batches admit waiting rows into free slots before
    each step; ``steps`` logs, per step, the handles of the submissions whose rows decoded in it. Everything
    else (sampling probabilities, ``excludes_first``...) is ``inner``'s.
    """

    def __init__(self, inner: Any, batch_size: int = 8) -> None:
        self.inner = inner
        self.batch_size = batch_size
        self.steps: list[list[int]] = []
        self.handles = 0  # submissions so far, numbered across running batches

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def sample(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[list[Rollout]]:
        return sample_by_steps(self.running(params), requests)

    def running(self, params: SamplingParams) -> FakeRunningBatch:
        return FakeRunningBatch(self, params)


class FakeRunningBatch:
    """The running batch of a :class:`SteppedFakeEngine`: ``add`` submissions, ``step`` until none is ``busy``."""

    def __init__(self, engine: SteppedFakeEngine, params: SamplingParams) -> None:
        self.engine = engine
        self.params = params
        self.pending: list[list[Any]] = []  # [submission, steps left]
        self.rows: list[list[Any]] = []
        self.open: list[dict[str, Any]] = []

    @property
    def busy(self) -> bool:
        return bool(self.open)

    def add(self, submissions: Sequence[Sequence[RolloutRequest]]) -> list[int]:
        handles = []
        for requests in submissions:
            results = [self.engine.inner.sample([r], self.params)[0] for r in requests]
            sub = {"handle": self.engine.handles, "results": results, "remaining": 0}
            self.engine.handles += 1
            self.open.append(sub)
            handles.append(sub["handle"])
            for rollouts in results:
                for rollout in rollouts:
                    sub["remaining"] += 1
                    self.pending.append([sub, max(1, len(rollout.token_ids))])
        return handles

    def step(self) -> list[tuple[int, list[list[Rollout]]]]:
        free = self.engine.batch_size - len(self.rows)
        self.rows += self.pending[:free]
        del self.pending[:free]
        if self.rows:
            self.engine.steps.append(sorted({row[0]["handle"] for row in self.rows}))
        for row in self.rows:
            row[1] -= 1
            if row[1] == 0:
                row[0]["remaining"] -= 1
        self.rows = [row for row in self.rows if row[1] > 0]
        done = [s for s in self.open if s["remaining"] == 0]
        self.open = [s for s in self.open if s["remaining"] > 0]
        return [(s["handle"], s["results"]) for s in done]
