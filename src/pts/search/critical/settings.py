"""How critical tokens are found and measured, and the one place their bounds are checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pts import options
from pts.errors import PTSError

Mode = Literal["scan", "search"]


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
        """Raise PTSError, naming the ``pts critical`` flag, on any setting out of range.

        :class:`pts.jobs.critical.CriticalConfig` runs these same checks on its fields of these names.
        """
        options.finite(self)
        if not 0.0 <= self.low_threshold < 1.0:
            raise PTSError(f"--low-threshold must be at least 0 and below 1, got {self.low_threshold}")
        if self.mode not in ("scan", "search"):
            raise PTSError(f"--mode must be 'scan' or 'search', got {self.mode!r}")
        options.at_least_one(self, "rollouts", "verify_stride", "probe_samples")
        if self.pass_at_k is not None and self.pass_at_k < 0:
            raise PTSError(f"--pass-at-k must be >= 0 (0 turns it off), got {self.pass_at_k}")
        if self.verify_full < 0:
            raise PTSError(f"--verify-full must be >= 0, got {self.verify_full}")
