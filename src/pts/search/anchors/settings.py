"""How thought anchors are measured, and the one place their bounds are checked."""

from __future__ import annotations

from typing import Literal

from pts import options
from pts.errors import PTSError

Similarity = Literal["auto", "minilm", "exact"]


@options.config(group="thought-anchor search")
class AnchorSettings:
    """How the sentences of a response are measured (see docs/anchors.md).

    Each sentence's boundary is sampled in looks of ``first_rollouts``, doubling
    up to ``rollouts`` draws; with ``sequential`` a sentence stops once the
    interval of its counterfactual importance lies wholly beyond or wholly
    inside ``prob_threshold``. Sentences whose importance reaches the
    threshold are candidates; with ``verify`` each is measured again on fresh
    rollouts (up to ``verify_samples`` draws per end) and kept only when the
    interval clears the threshold.
    """

    rollouts: int = options.option(
        100, "most draws (fresh or pooled) from the prefix before each sentence (the paper: 100)", check="count"
    )
    first_rollouts: int = options.option(16, "draws per sentence at the first look", check="count")
    sequential: bool = options.option(
        True,
        "stop sampling a sentence once its importance is settled (--no-sequential: every sentence to --rollouts)",
    )
    prob_threshold: float = options.option(
        0.2, "counterfactual importance (p with - p without the sentence) that makes an anchor", check="unit"
    )
    similarity: Similarity = options.option(
        "auto",
        "when a resampled sentence counts as the same: minilm (all-MiniLM-L6-v2 cosine, as the paper), exact "
        "(identical text), auto (minilm when installed, else exact with a warning)",
        choices=("auto", "minilm", "exact"),
    )
    similarity_threshold: float = options.option(
        0.8, "cosine similarity from which a resample counts as the same sentence (the paper: 0.8)", check="unit"
    )
    confidence: float = options.option(0.95, "level of the importance intervals (over all looks)", check="unit")
    verify: bool = options.option(
        True,
        "measure every candidate anchor again on fresh rollouts and keep it only when its interval clears "
        "--prob-threshold (--no-verify: write the search's numbers)",
    )
    verify_samples: int = options.option(64, "most draws per end when verifying an anchor", check="count")

    def validate(self) -> None:
        """Raise PTSError, naming the flag, on any setting out of range."""
        options.check(self)
        if not 0.0 < self.prob_threshold < 1.0:
            raise PTSError(f"--prob-threshold must be above 0 and below 1, got {self.prob_threshold}")
        if not 0.0 < self.confidence < 1.0:
            raise PTSError(f"--confidence must be above 0 and below 1, got {self.confidence}")
        if self.first_rollouts > self.rollouts:
            raise PTSError(f"--first-rollouts ({self.first_rollouts}) must be at most --rollouts ({self.rollouts})")
