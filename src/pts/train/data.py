"""Preference rows for ``pts train``: reading, validating, and building cDPO pairs.

Two row shapes are accepted for DPO (``pts export --format dpo`` writes both):

* text rows ``{"prompt", "chosen", "rejected"}`` (strings, or lists of chat
  messages): TRL tokenizes them, appending EOS to ``chosen``/``rejected``;
* exact-id rows that carry token ids, either at the top level or in
  ``metadata``: ``prompt_ids``/``chosen_ids``/``rejected_ids`` (TRL's own
  names), ``prompt_input_ids``/``chosen_input_ids``/``rejected_input_ids``,
  ``*_token_ids``, or, as ``pts export --format dpo`` writes them,
  ``prompt_token_ids`` with single ``chosen_token_id``/``rejected_token_id``.
  These are trained on exactly as given: no re-tokenization and no EOS, so a
  single-token pivot pair stays the decision that was measured.

cDPO needs ids, because its weights are per token. A cDPO pair row is::

    {"prompt_ids": [...], "chosen_ids": [...], "rejected_ids": [...],
     "rejected_scores": [s_1, ..., s_n],          # one per rejected id, each in [0, 1]
     "prompt": "...", "chosen": "...", "rejected": "...",   # optional text, for reading
     "metadata": {...}}                                      # optional

where ``s_t`` is the contrastive-estimation score of rejected token ``t``
(``pts contrast``); the loss weights that token's log-ratio by ``1 - s_t``.

:func:`build_cdpo_rows` makes such rows from *scored trajectories*, one JSON
object per sampled response::

    {"query": "...",                 # or "prompt": the question text (for reading)
     "prompt_ids": [...],            # the exact prompt the response was sampled from
     "response_ids": [...],          # the response tokens (or "token_ids")
     "correct": true | false,        # the oracle's verdict
     "scores": [s_1, ..., s_n]}      # CE score per response token; required when correct is false

``pts contrast`` writes exactly these rows (``scores.jsonl``). Trajectories
with the same ``prompt_ids`` are one query; correct ones are paired with
incorrect ones of the most frequent wrong answer first (``answer_key``), up to
``max_pairs_per_query``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pts.errors import PTSError

TEXT_KEYS = ("prompt", "chosen", "rejected")
ID_KEYS = ("prompt_ids", "chosen_ids", "rejected_ids")
# Other names the same ids go by, in the order they are looked up.
_ID_ALIASES = {
    "prompt_ids": ("prompt_ids", "prompt_input_ids", "prompt_token_ids"),
    "chosen_ids": ("chosen_ids", "chosen_input_ids", "chosen_token_ids"),
    "rejected_ids": ("rejected_ids", "rejected_input_ids", "rejected_token_ids"),
}
SCORES_KEY = "rejected_scores"


def check_vocab(rows: Sequence[dict[str, Any]], vocab_size: int, source: str = "input") -> None:
    """Raise PTSError when a row's token id is outside the model's ``vocab_size`` (ids of another tokenizer)."""
    for n, row in enumerate(rows, 1):
        for key in ID_KEYS:
            if key in row:
                _check_ids(row[key], f"{_where(n, source)}: {key}", vocab_size)


@dataclass
class PreferenceData:
    """Rows ready for a trainer: ``exact`` says they carry token ids (``ID_KEYS``), else text (``TEXT_KEYS``)."""

    rows: list[dict[str, Any]]
    exact: bool


def _where(n: int, source: str) -> str:
    return f"{source} row {n}"


def _find_ids(row: dict[str, Any], key: str) -> Any:
    meta = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
    for place in (row, meta):
        for name in _ID_ALIASES[key]:
            if place.get(name) is not None:
                return place[name]
        # `pts export --format dpo` pairs single tokens: metadata.chosen_token_id / rejected_token_id.
        single = place.get(key.replace("_ids", "_token_id"))
        if key != "prompt_ids" and isinstance(single, int) and not isinstance(single, bool):
            return [single]
    return None


def _check_ids(value: Any, what: str, vocab_size: int | None) -> list[int]:
    if not isinstance(value, list) or not value:
        raise PTSError(f"{what} must be a non-empty list of token ids")
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        raise PTSError(f"{what} must hold integers (token ids)")
    bad = [t for t in value if t < 0 or (vocab_size is not None and t >= vocab_size)]
    if bad:
        limit = f" (the model's vocabulary has {vocab_size} ids)" if vocab_size is not None else ""
        raise PTSError(f"{what} has token id {bad[0]} out of range{limit}: were the ids made with another tokenizer?")
    return value


def _check_scores(value: Any, n: int, what: str) -> list[float]:
    if not isinstance(value, list) or len(value) != n:
        got = f"{len(value)} values" if isinstance(value, list) else type(value).__name__
        raise PTSError(f"{what} must be a list with one score per rejected token ({n}), got {got}")
    out = []
    for s in value:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or not 0.0 <= s <= 1.0:
            raise PTSError(f"{what} must hold numbers in [0, 1] (contrastive-estimation scores s_t), got {s!r}")
        out.append(float(s))
    return out


def _text_ok(value: Any) -> bool:
    return (isinstance(value, str) and value != "") or (isinstance(value, list) and bool(value))


def preference_rows(
    raw: Sequence[dict[str, Any]], *, vocab_size: int | None = None, source: str = "input"
) -> PreferenceData:
    """DPO rows from ``pts export --format dpo`` style objects.

    Every row carrying ``prompt/chosen/rejected`` ids -> exact-id rows
    (``{"prompt_ids", "chosen_ids", "rejected_ids"}``); no row carrying ids ->
    text rows (``{"prompt", "chosen", "rejected"}``). A file mixing both, a row
    missing a field, or an id outside ``vocab_size`` raises :class:`PTSError`.
    """
    if not raw:
        raise PTSError(f"{source} has no rows")
    with_ids = [all(_find_ids(r, k) is not None for k in ID_KEYS) for r in raw]
    if all(with_ids):
        rows = []
        for n, r in enumerate(raw, 1):
            rows.append({k: _check_ids(_find_ids(r, k), f"{_where(n, source)}: {k}", vocab_size) for k in ID_KEYS})
        return PreferenceData(rows, exact=True)
    if any(with_ids):
        first = with_ids.index(False) + 1
        raise PTSError(
            f"{source} mixes rows with token ids and rows without (first without: row {first}); "
            "export the file again with ids on every row, or without ids"
        )
    rows = []
    for n, r in enumerate(raw, 1):
        missing = [k for k in TEXT_KEYS if not _text_ok(r.get(k))]
        if missing:
            raise PTSError(
                f"{_where(n, source)} has no {', '.join(missing)} (DPO rows need prompt, chosen and "
                "rejected text, or prompt_ids, chosen_ids and rejected_ids)"
            )
        kinds = {type(r[k]) for k in TEXT_KEYS}
        if len(kinds) != 1:
            raise PTSError(f"{_where(n, source)}: prompt, chosen and rejected must all be text or all be chat messages")
        rows.append({k: r[k] for k in TEXT_KEYS})
    return PreferenceData(rows, exact=False)


def is_trajectory_rows(raw: Sequence[dict[str, Any]]) -> bool:
    """True when ``raw`` looks like scored trajectories (``correct`` + response ids) rather than cDPO pairs."""
    return bool(raw) and "correct" in raw[0] and any(k in raw[0] for k in ("response_ids", "token_ids"))


def cdpo_rows(
    raw: Sequence[dict[str, Any]], *, vocab_size: int | None = None, source: str = "input", max_pairs_per_query: int = 1
) -> list[dict[str, Any]]:
    """Validated cDPO pair rows ``{"prompt_ids", "chosen_ids", "rejected_ids", "rejected_scores"}``.

    ``raw`` holds pair rows (see the module docstring) or scored trajectories,
    which are paired first with :func:`build_cdpo_rows` (``max_pairs_per_query``
    pairs per query at most).
    """
    if not raw:
        raise PTSError(f"{source} has no rows")
    if is_trajectory_rows(raw):
        raw = build_cdpo_rows(raw, max_pairs_per_query=max_pairs_per_query, vocab_size=vocab_size, source=source)
    rows = []
    for n, r in enumerate(raw, 1):
        missing = [k for k in ID_KEYS if _find_ids(r, k) is None]
        if missing:
            raise PTSError(
                f"{_where(n, source)} has no {', '.join(missing)}: cDPO needs token ids, because its "
                "weights are per token"
            )
        row = {k: _check_ids(_find_ids(r, k), f"{_where(n, source)}: {k}", vocab_size) for k in ID_KEYS}
        meta = r.get("metadata") if isinstance(r.get("metadata"), dict) else {}
        scores = r[SCORES_KEY] if r.get(SCORES_KEY) is not None else meta.get(SCORES_KEY)
        if scores is None:
            raise PTSError(
                f"{_where(n, source)} has no {SCORES_KEY} (one contrastive-estimation score per rejected "
                "token, from pts contrast)"
            )
        row[SCORES_KEY] = _check_scores(scores, len(row["rejected_ids"]), f"{_where(n, source)}: {SCORES_KEY}")
        rows.append(row)
    return rows


def build_cdpo_rows(
    trajectories: Iterable[dict[str, Any]],
    *,
    max_pairs_per_query: int = 1,
    vocab_size: int | None = None,
    source: str = "input",
) -> list[dict[str, Any]]:
    """Pair correct with incorrect trajectories of the same prompt into cDPO rows.

    Takes scored trajectories (module docstring; ``pts contrast`` writes them
    to ``scores.jsonl``) and returns rows ``{"prompt", "prompt_ids",
    "chosen_ids", "rejected_ids", "rejected_scores", "metadata"}``. Per query
    (same ``prompt_ids``), incorrect trajectories are taken most frequent
    wrong answer first (their ``answer_key``, as the paper selects; file order
    without it), and the i-th correct trajectory is paired with the i-th
    incorrect one, for i < ``max_pairs_per_query``. Empty responses are
    skipped; queries without both kinds give no pair; no pair at all raises
    PTSError.
    """
    if max_pairs_per_query < 1:
        raise PTSError(f"max_pairs_per_query must be at least 1, got {max_pairs_per_query}")
    groups: OrderedDict[tuple[int, ...], dict[str, Any]] = OrderedDict()
    for n, t in enumerate(trajectories, 1):
        where = _where(n, source)
        prompt_ids = tuple(_check_ids(t.get("prompt_ids"), f"{where}: prompt_ids", vocab_size))
        resp = t.get("response_ids", t.get("token_ids"))
        if resp == []:
            continue  # nothing to weigh or prefer
        resp = _check_ids(resp, f"{where}: response_ids", vocab_size)
        correct = t.get("correct")
        if not isinstance(correct, bool):
            raise PTSError(f"{where}: correct must be true or false (the oracle's verdict), got {correct!r}")
        g = groups.setdefault(prompt_ids, {"query": t.get("query", t.get("prompt", "")), "pos": [], "neg": []})
        if correct:
            if resp not in g["pos"]:
                g["pos"].append(resp)
        else:
            if t.get("scores") is None:
                raise PTSError(f"{where}: an incorrect trajectory needs scores (one CE score per response token)")
            if all(resp != r for r, _, _ in g["neg"]):
                g["neg"].append((resp, _check_scores(t["scores"], len(resp), f"{where}: scores"), t.get("answer_key")))
    rows = []
    for prompt_ids, g in groups.items():
        counts: dict[Any, int] = {}
        for _, _, key in g["neg"]:
            counts[key] = counts.get(key, 0) + 1
        negatives = sorted(g["neg"], key=lambda x: -counts[x[2]] if x[2] is not None else 0)  # stable: file order
        for i, (chosen, (rejected, scores, answer_key)) in enumerate(zip(g["pos"], negatives)):
            if i >= max_pairs_per_query:
                break
            rows.append(
                {
                    "prompt": g["query"],
                    "prompt_ids": list(prompt_ids),
                    "chosen_ids": chosen,
                    "rejected_ids": rejected,
                    SCORES_KEY: scores,
                    "metadata": {
                        "pair_index": i,
                        "rejected_answer": answer_key,
                        "correct": len(g["pos"]),
                        "incorrect": len(g["neg"]),
                    },
                }
            )
    if not rows:
        raise PTSError(
            f"{source}: no query has both a correct and an incorrect trajectory, so there is no cDPO pair "
            "(pts contrast --score all scores both kinds)"
        )
    return rows
