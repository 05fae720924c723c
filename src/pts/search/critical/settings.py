"""How critical tokens are found and measured, and the one place their bounds are checked."""

from __future__ import annotations

from typing import Literal

from pts import options
from pts.errors import PTSError

Mode = Literal["scan", "search"]


@options.config(group="critical-token search")
class CriticalSettings:
    """How critical tokens are found and measured.

    ``rollouts`` is K. ``probe_samples`` is the first stage of every score
    (default K/8): enough to see most nonzero scores; the stages then double up
    to K (:attr:`stages`). ``verify_stride``: the
    search probes every ``verify_stride``-th token after the candidate to
    check that later scores stay low (1 = every token); ``verify_full``
    tokens right after it (not already known zeros) need ``verify_samples``
    rollouts through them (default K/2), since on a falling curve the later
    scores are highest there. ``pool``: rollouts drawn at an earlier token that
    went through a later one count there in those checks. ``pass_at_k``: how
    many alternative tokens (and fresh rollouts keeping the critical token)
    measure Pass@k; ``None`` means K, 0 turns it off.
    """

    rollouts: int = options.option(64, "K: rollouts behind each token's score (the paper uses 64)", check="count")
    mode: Mode = options.option(
        "search",
        "scan (the paper: K rollouts at every token) or search (bisection with "
        "early stopping: the same token as the scan when scores fall "
        "monotonically, far fewer rollouts)",
    )
    low_threshold: float = options.option(
        0.05, "the most a token after the critical one may score (the paper: 3 of 64)"
    )
    probe_samples: int | None = options.option(
        None,
        "first-stage rollouts of every score; a success there settles "
        "'not zero' without the rest (default: rollouts/8)",
        check="count",
    )
    verify_stride: int = options.option(
        1, "search: probe every N-th token after the candidate to check later scores stay low", check="count"
    )
    verify_full: int = options.option(
        2,
        "search: check this many tokens right after the candidate with --verify-samples "
        "rollouts each (where a falling curve's later scores are highest)",
        check="nonneg",
    )
    verify_samples: int | None = options.option(
        None,
        "search: rollouts without a success that must have gone through each of the first --verify-full "
        "tokens after the candidate (default: rollouts/2)",
        check="count",
    )
    pool: bool = options.option(
        True,
        "search: count a rollout drawn at an earlier token that then wrote the trajectory's tokens as a draw "
        "at the later tokens it went through, when checking them (--no-pool: only rollouts drawn there)",
    )
    pass_at_k: int | None = options.option(
        None,
        "alternative tokens sampled at the critical position (one rollout "
        "each) and fresh rollouts keeping it, for Pass@k with vs without "
        "(default: --rollouts; 0 turns it off)",
        check="nonneg",
    )

    @property
    def probe(self) -> int:
        n = self.probe_samples if self.probe_samples is not None else self.rollouts // 8
        return max(1, min(n, self.rollouts))

    @property
    def band_samples(self) -> int:
        n = self.verify_samples if self.verify_samples is not None else self.rollouts // 2
        return max(1, min(n, self.rollouts))

    @property
    def stages(self) -> tuple[int, ...]:
        """Sample counts every score passes through, in both modes: a quarter and a half of the probe, the
        probe, then doubling up to K (K = 64: 2, 4, 8, 16, 32, 64).

        A score is drawn stage by stage with seeds fixed by the prefix and the samples already drawn, so the
        search can stop a score as soon as its question is settled and still hold the scan's samples. The
        stages below the probe let "not zero" stop at the first successes (measured on
        bench/critical_cost.py, K = 64: 9.7% of the scan's rollouts, against 10.3% with the probe first).
        """
        out = [n for n in (self.probe // 4, self.probe // 2) if n >= 1 and n < self.probe]
        n = self.probe
        while n < self.rollouts:
            out.append(n)
            n *= 2
        return (*sorted(set(out)), self.rollouts)

    @property
    def pass_at_k_samples(self) -> int:
        return self.rollouts if self.pass_at_k is None else self.pass_at_k

    def validate(self) -> None:
        """Raise PTSError, naming the ``pts critical`` flag, on any setting out of range.

        :class:`pts.jobs.critical.CriticalConfig` runs these same checks on its fields of these names.
        """
        options.check(self)
        if not 0.0 <= self.low_threshold < 1.0:
            raise PTSError(f"--low-threshold must be at least 0 and below 1, got {self.low_threshold}")
