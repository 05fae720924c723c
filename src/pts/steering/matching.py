"""optillm autothink's matching of the tokens seen so far against the tails of pivot contexts.

A steering vector fires where the recent history ends like its pivot context
(see :class:`SuffixMatcher`); :mod:`pts.steering.apply` decides, per match
mode, how long it stays active.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_CONTEXT_TOKENS = 256  # optillm keeps the last 256 tokens of each context and of the history
SUFFIX_LENGTHS = (4, 8, 12)  # optillm also indexes these tails of every context
MIN_MATCH = 4  # optillm matches nothing on fewer tokens


class SuffixMatcher:
    """optillm autothink's token matching of the recent history against pivot-context tails.

    Built like ``SteeringVectorManager.create_tokenized_contexts``: each context
    is cut to its last ``max_tokens`` tokens and indexed whole (a later vector
    with the same context replaces an earlier one) and by its last 4, 8 and 12
    tokens (the first vector to claim a tail keeps it). :meth:`match` is
    ``SteeringHook._try_token_match``: a history of at least 4 tokens matches a
    context it ends with (longest wins, a later one on ties), or, when the
    history is shorter than the context, one whose last ``max(4, len // 2)``
    tokens it ends with (longest wins, the first on ties). Patterns are bucketed
    by their last token, which every match must share, so a step costs only the
    patterns ending in the new token.
    """

    def __init__(
        self,
        contexts: Sequence[Sequence[int]],
        max_tokens: int = MAX_CONTEXT_TOKENS,
        suffix_lengths: Sequence[int] = SUFFIX_LENGTHS,
        min_history: int = MIN_MATCH,
    ):
        self.max_tokens = max_tokens
        self.min_history = min_history
        patterns: dict[tuple[int, ...], int] = {}
        for k, context in enumerate(contexts):
            ctx = tuple(int(t) for t in context)[-max_tokens:]
            if not ctx:
                continue
            patterns[ctx] = k
            for n in suffix_lengths:
                if len(ctx) > n:
                    patterns.setdefault(ctx[-n:], k)
        self.patterns = patterns
        self._by_last: dict[int, list[tuple[list[int], int]]] = {}
        for pat, k in patterns.items():
            self._by_last.setdefault(pat[-1], []).append((list(pat), k))

    def match(self, history: Sequence[int]) -> int | None:
        """Index of the context that ``history`` (token ids, oldest first) matches best, or None."""
        n = min(len(history), self.max_tokens)
        if n < self.min_history:
            return None
        best_len, best = 0, None
        for pat, k in self._by_last.get(int(history[-1]), ()):
            size = len(pat)
            if n < size:
                m = min(n, max(self.min_history, size // 2))
                if m > best_len and list(history[-m:]) == pat[-m:]:
                    best_len, best = m, k
            elif size >= best_len and list(history[-size:]) == pat:
                best_len, best = size, k
        return best
