"""Pivotal-token records as exporters read them: from pts, or from the original PTS tool.

pts records (:class:`pts.records.PivotalToken`) carry the exact token ids of the
context, where the prompt ends, and the first tokens that rollouts from the
context took. Files written by the original tool carry only text:
``query, pivot_context, pivot_token, pivot_token_id, prob_before, prob_after,
prob_delta, is_positive`` (sometimes missing: then the sign of ``prob_delta``
decides), ``model_id, task_type, dataset_id, dataset_item_id, timestamp``.
Their context is tokenized again with the export's tokenizer
(:func:`attach_token_ids`), and every such record says so (``retokenized``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pts.errors import PTSError
from pts.formats import pivotal
from pts.records import ORIGINAL_FIELDS, Continuation, FirstToken, PivotalToken, PivotalTokenFields, stable_id
from pts.store import read_jsonl

log = logging.getLogger(__name__)


@dataclass
class PivotalTokenRow(PivotalTokenFields):
    """One pivotal token as exporters and ``pts view`` read it from a file row, whatever wrote it.

    pts's own records (:class:`pts.records.PivotalToken`) and the original
    tool's text-only ones both become one of these (:func:`pivot_from_row`).
    The search's own :class:`pts.search.pivotal.PivotalCandidate` is a pivotal token before it is written
    (a position and the estimates around it). One idea, three stages: candidate, record, row.

    ``context_ids`` are the token ids of ``pivot_context`` (prompt + response up
    to the pivot) and ``prompt_length`` how many of them are the prompt; either
    is None until known. ``retokenized`` is True when the ids were not recorded
    but made by tokenizing ``pivot_context`` again. ``first_tokens`` are the
    first tokens that rollouts from the context took, with success counts
    (empty for the original tool's records). ``source`` is ``"pts"`` or
    ``"original"``; ``line`` the 1-based line in the input file.

    A pivotal span (:attr:`pts.records.PivotalToken.span_token_ids`) has its token ids in ``span_token_ids``
    (None for a single token; ``pivot_token_id`` is then its first token) and its measured alternatives of
    the same length in ``continuations``.
    """

    timestamp: str
    id: str
    source: str
    line: int
    context_ids: list[int] | None = None
    prompt_length: int | None = None
    samples_before: int | None = None
    samples_after: int | None = None
    successes_after: int | None = None
    first_tokens: list[FirstToken] = field(default_factory=list)
    search: dict[str, Any] = field(default_factory=dict)
    retokenized: bool = False
    span_token_ids: list[int] | None = None
    continuations: list[Continuation] = field(default_factory=list)

    @property
    def is_span(self) -> bool:
        """True for a pivotal span (several tokens), False for a single pivotal token."""
        return self.span_token_ids is not None

    def original_fields(self) -> dict[str, Any]:
        """The fields every record of the original tool has, in its order, but where it comes from (the
        dataset item and the time)."""
        where = ("dataset_id", "dataset_item_id", "timestamp")
        return {name: getattr(self, name) for name in ORIGINAL_FIELDS if name not in where}


def read_pivots(path: str | os.PathLike) -> list[PivotalTokenRow]:
    """Every pivotal-token record in the JSONL file ``path`` (pts's or the original tool's).

    Raises PTSError naming the file and line for a missing file, a line that is
    not JSON, a record that is not a pivotal token, or a file with no records.
    """
    p = Path(path)
    if not p.is_file():
        raise PTSError(f"input file {p} does not exist" if not p.exists() else f"input path {p} is not a file")
    try:
        rows = read_jsonl(p)
    except UnicodeDecodeError:
        raise PTSError(f"{p} is not a UTF-8 text file of JSON lines") from None
    pivots = [pivot_from_row(row, p, n) for n, row in enumerate(rows, 1)]
    if not pivots:
        raise PTSError(f"{p} holds no pivotal-token records")
    return pivots


def pivot_from_row(row: dict[str, Any], path: str | os.PathLike, n: int) -> PivotalTokenRow:
    """The pivot in record ``n`` (1-based) of ``path``; PTSError naming them when it is not one."""
    where = f"{path} record {n}"
    if "chosen" in row and "rejected" in row:
        raise PTSError(f"{where} is a DPO pair, not a pivotal token: export from the records `pts run` wrote")
    if "steering_vector" in row and "pivot_context_ids" not in row and "first_tokens" not in row:
        log.info("%s: reading a steering-vector record as a pivotal token", where)
    if row.get("kind") == "critical_token":
        raise PTSError(f"{where} is a critical-token record (`pts critical`), not a pivotal token")
    missing = [k for k in pivotal.FORMAT.keys if not isinstance(row.get(k), str)]
    if missing:
        raise PTSError(f"{where} is not a pivotal-token record (no text field {missing[0]!r})")
    try:
        prob_before = _prob(row, "prob_before", where)
        prob_after = _prob(row, "prob_after", where)
        delta = row.get("prob_delta")
        prob_delta = prob_after - prob_before if delta is None else float(delta)
        if not math.isfinite(prob_delta):
            raise ValueError
    except (TypeError, ValueError):
        raise PTSError(f"{where}: prob_before, prob_after and prob_delta must be numbers") from None
    is_positive = row.get("is_positive")
    if is_positive is None:  # the original tool did not always write it
        is_positive = prob_delta > 0
    token_id = row.get("pivot_token_id", -1)
    if not isinstance(token_id, int) or isinstance(token_id, bool):
        raise PTSError(f"{where}: pivot_token_id must be an integer, got {token_id!r}")
    common = {
        "query": str(row.get("query", "")),
        "pivot_context": row["pivot_context"],
        "pivot_token": row["pivot_token"],
        "pivot_token_id": token_id,
        "prob_before": prob_before,
        "prob_after": prob_after,
        "prob_delta": prob_delta,
        "is_positive": bool(is_positive),
        "model_id": str(row.get("model_id") or ""),
        "task_type": str(row.get("task_type") or ""),
        "dataset_id": str(row.get("dataset_id") or ""),
        "dataset_item_id": "" if row.get("dataset_item_id") is None else str(row["dataset_item_id"]),
        "timestamp": str(row.get("timestamp") or ""),
        "line": n,
    }
    if isinstance(row.get("pivot_context_ids"), list):
        try:
            record = PivotalToken.from_dict(row)
        except TypeError as e:
            raise PTSError(f"{where}: not a valid pts record ({e})") from None
        ids = record.pivot_context_ids
        if not all(isinstance(i, int) for i in ids) or not 0 <= record.prompt_length <= len(ids):
            raise PTSError(f"{where}: pivot_context_ids must be integers and prompt_length within them")
        return PivotalTokenRow(
            **common,
            id=record.id,
            source="pts",
            context_ids=list(ids),
            prompt_length=record.prompt_length,
            samples_before=record.samples_before,
            samples_after=record.samples_after,
            successes_after=record.successes_after,
            first_tokens=list(record.first_tokens),
            search=dict(record.search),
            span_token_ids=None if record.span_token_ids is None else list(record.span_token_ids),
            continuations=list(record.continuations or []),
        )
    record_id = str(
        row.get("id")
        or stable_id(
            "original",
            common["model_id"],
            common["dataset_id"],
            common["dataset_item_id"],
            common["pivot_context"],
            token_id,
        )
    )
    return PivotalTokenRow(**common, id=record_id, source="original")


def _prob(row: dict[str, Any], key: str, where: str) -> float:
    if key not in row:
        raise PTSError(f"{where} has no {key}")
    value = float(row[key])
    if not 0.0 <= value <= 1.0:
        raise PTSError(f"{where}: {key} must be a probability, got {row[key]!r}")
    return value


def default_model(pivots: Sequence[PivotalTokenRow]) -> str | None:
    """The model every record names, when they all name the same one."""
    ids = {p.model_id for p in pivots if p.model_id}
    return ids.pop() if len(ids) == 1 else None


def warn_model(pivots: Sequence[PivotalTokenRow], model_id: str) -> None:
    """Log a warning when records were measured with another model than ``model_id``, the one exporting them."""
    others = sorted({p.model_id for p in pivots if p.model_id and p.model_id != model_id})
    if others:
        log.warning("the records were measured with %s; exporting with %s", ", ".join(others), model_id)


def attach_token_ids(pivots: Sequence[PivotalTokenRow], tokenizer: Any) -> int:
    """Give every pivot token ids under ``tokenizer``; returns how many had to be tokenized again.

    Recorded ids are kept when they decode to ``pivot_context`` with this
    tokenizer (they belong to it). Otherwise the context is tokenized again
    (its special tokens are already in the text, so none are added) and the
    pivot is marked ``retokenized``; so is its ``pivot_token_id`` when the
    recorded id does not decode to ``pivot_token``. The prompt/response split of
    a re-tokenized context is found from the chat template (:func:`prompt_length_of`).
    """
    redone = 0
    for p in pivots:
        if p.context_ids is not None and _decode(tokenizer, p.context_ids) == p.pivot_context:
            continue
        if p.context_ids is not None:
            log.warning(
                "record %d: its token ids do not decode to its pivot_context with this tokenizer "
                "(recorded with another model?); tokenizing the context again",
                p.line,
            )
        ids = list(tokenizer(p.pivot_context, add_special_tokens=False)["input_ids"])
        p.context_ids, p.retokenized = ids, True
        p.prompt_length = prompt_length_of(tokenizer, ids, p.query)
        p.first_tokens = []  # their ids belong to the other tokenizer
        p.continuations = []
        redone += 1
        if p.is_span:
            both = list(tokenizer(p.pivot_context + p.pivot_token, add_special_tokens=False)["input_ids"])
            tail = both[len(ids) :] if both[: len(ids)] == ids else []
            p.span_token_ids = tail if len(tail) > 1 else None
            p.pivot_token_id = tail[0] if tail else -1
        elif p.pivot_token_id < 0 or _decode(tokenizer, [p.pivot_token_id]) != p.pivot_token:
            both = list(tokenizer(p.pivot_context + p.pivot_token, add_special_tokens=False)["input_ids"])
            tail = both[len(ids) :] if both[: len(ids)] == ids else []
            p.pivot_token_id = tail[0] if len(tail) == 1 else -1
    return redone


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=False)


def prompt_length_of(tokenizer: Any, ids: Sequence[int], query: str) -> int | None:
    """How many of ``ids`` are the prompt, for a context recorded as text only; None when unclear.

    The prompt ends where the chat template's generation prompt (e.g.
    ``<|im_end|>\\n<|im_start|>assistant\\n``) first follows the query; without
    a chat template a context that starts with the query has the query as prompt.
    The answer counts only when tokenizing that prompt text gives a prefix of ``ids``.
    """
    text = _decode(tokenizer, ids)
    end = None
    marker = generation_suffix(tokenizer)
    if marker:
        start = text.find(query) if query else -1
        at = text.find(marker, max(start, 0))
        if at >= 0:
            end = at + len(marker)
    elif query and text.startswith(query):
        end = len(query)
    if end is None:
        return None
    for add_special in (False, True):
        prompt = list(tokenizer(text[:end], add_special_tokens=add_special)["input_ids"])
        if list(ids[: len(prompt)]) == prompt:
            return len(prompt)
    return None


_SENTINEL = "\u2402PTS\u2402"


def chat_parts(tokenizer: Any, system: bool = False) -> list[str] | None:
    """The text the chat template puts around one user message (and a system one), with the generation prompt.

    Returns ``[before_user, after_user]`` or, with ``system``,
    ``[before_system, between, after_user]``; None without a chat template.
    """
    if not getattr(tokenizer, "chat_template", None):
        return None
    messages = [{"role": "user", "content": _SENTINEL}]
    if system:
        messages.insert(0, {"role": "system", "content": _SENTINEL})
    try:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception:  # noqa: BLE001 -- a template may refuse a system role in any way it likes
        return None
    parts = text.split(_SENTINEL)
    return parts if len(parts) == len(messages) + 1 else None


def generation_suffix(tokenizer: Any) -> str | None:
    """The template text from the end of the user message to where the assistant's reply starts."""
    parts = chat_parts(tokenizer)
    return parts[-1] if parts else None


def chat_messages(tokenizer: Any, prompt_text: str) -> list[dict[str, str]] | None:
    """The messages that the chat template renders as exactly ``prompt_text``; None if there are none.

    Tries one user message (the template's default system prompt included),
    then a system and a user message.
    """
    for system in (False, True):
        parts = chat_parts(tokenizer, system=system)
        if not parts or not prompt_text.startswith(parts[0]) or not prompt_text.endswith(parts[-1]):
            continue
        body = prompt_text[len(parts[0]) : len(prompt_text) - len(parts[-1])]
        if not system:
            messages = [{"role": "user", "content": body}]
        else:
            sys_text, sep, user = body.partition(parts[1])
            if not sep:
                continue
            messages = [{"role": "system", "content": sys_text}, {"role": "user", "content": user}]
        rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if rendered == prompt_text:
            return messages
    return None
