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
    (default K/8): enough to see most nonzero scores. ``verify_stride``: the
    search probes every ``verify_stride``-th token after the candidate to
    check that later scores stay low (1 = every token); ``verify_full``
    tokens right after it (not already known zeros) get all K rollouts,
    since on a falling curve the later scores are highest there. ``pass_at_k``: how
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
        "search: score this many tokens right after the candidate with all K "
        "rollouts (where a falling curve's later scores are highest)",
        check="nonneg",
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
    def pass_at_k_samples(self) -> int:
        return self.rollouts if self.pass_at_k is None else self.pass_at_k

    def validate(self) -> None:
        """Raise PTSError, naming the ``pts critical`` flag, on any setting out of range.

        :class:`pts.jobs.critical.CriticalConfig` runs these same checks on its fields of these names.
        """
        options.check(self)
        if not 0.0 <= self.low_threshold < 1.0:
            raise PTSError(f"--low-threshold must be at least 0 and below 1, got {self.low_threshold}")
