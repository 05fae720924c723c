"""What a pts output file holds, and the dataset card that describes it on the Hub.

:func:`inspect_file` reads a file once (JSONL records or a GGUF control
vector), tells its format from its content and counts what a reader of the
card wants to know; :func:`build_card` turns that into a
:class:`huggingface_hub.DatasetCard`: YAML metadata the Hub indexes (license,
tags, task and size categories, a ``configs`` entry naming the data file), a
description, the counts, how the data was made, a glossary of every field in
the file and usage snippets.
"""

from __future__ import annotations

import os
import shlex
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pts.errors import PTSError
from pts.store import read_jsonl

if TYPE_CHECKING:
    from huggingface_hub import DatasetCard

PIVOTAL = "pivotal"
DPO = "dpo"
STEERING = "steering"
CRITICAL = "critical"
CONTROL_VECTOR = "control-vector"
FORMATS = (PIVOTAL, DPO, STEERING, CRITICAL, CONTROL_VECTOR)
_FORMAT_ALIASES = {
    "pivotal-tokens": PIVOTAL, "pivotal_tokens": PIVOTAL, "pivotal-token": PIVOTAL, "pts": PIVOTAL,
    "steering-vectors": STEERING, "steering_vectors": STEERING,
    "critical-tokens": CRITICAL, "critical_tokens": CRITICAL, "critical-token": CRITICAL,
    "control_vector": CONTROL_VECTOR, "controlvector": CONTROL_VECTOR, "gguf": CONTROL_VECTOR,
}

# Fields a record must have to be read as each format (the first rule that matches the first row wins).
_REQUIRED = {
    STEERING: ("steering_vector",),
    DPO: ("prompt", "chosen", "rejected"),
    CRITICAL: (),  # critical_token or critical_position, checked in _row_format
    PIVOTAL: ("pivot_token", "prob_delta"),
}

# Canonical Hub ids of the models behind pts's built-in aliases (records name the quantized alias),
# so that a usage snippet loads a model that exists on the Hub. Keep in step with pts.models.ALIASES,
# which imports torch and is therefore not imported here.
_ALIAS_HUB_IDS = {
    "smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "smollm2-135m-instruct-q4_1": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "gemma3-270m": "google/gemma-3-270m",
    "gemma-3-270m-q4_k_m": "google/gemma-3-270m",
}

PTS_URL = "https://github.com/codelion/pts"
PHI4_URL = "https://arxiv.org/abs/2412.08905"
CDPO_URL = "https://arxiv.org/abs/2411.19943"

_SIZE_BOUNDS = [(10 ** 3, "n<1K"), (10 ** 4, "1K<n<10K"), (10 ** 5, "10K<n<100K"), (10 ** 6, "100K<n<1M"),
                (10 ** 7, "1M<n<10M"), (10 ** 8, "10M<n<100M"), (10 ** 9, "100M<n<1B"),
                (10 ** 10, "1B<n<10B"), (10 ** 11, "10B<n<100B"), (10 ** 12, "100B<n<1T")]


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` value for ``n`` rows (``n<1K``, ``1K<n<10K``, ..., ``n>1T``)."""
    for bound, label in _SIZE_BOUNDS:
        if n < bound:
            return label
    return "n>1T"


def normalize_format(fmt: str | None) -> str | None:
    """``fmt`` as one of :data:`FORMATS` (accepting a few spellings), None for None; PTSError if unknown."""
    if fmt is None:
        return None
    key = fmt.strip().lower()
    key = _FORMAT_ALIASES.get(key, key)
    if key not in FORMATS:
        raise PTSError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return key


def hub_model_id(model_id: str | None) -> str | None:
    """The Hub id to load ``model_id`` with: pts aliases map to the model they quantize, others pass through."""
    if not model_id:
        return None
    return _ALIAS_HUB_IDS.get(model_id, model_id)


@dataclass
class FileSummary:
    """What one file holds: its format, size and the counts shown on the card.

    ``rows`` is the number of records (for a control vector, of layer
    directions). ``positives``/``negatives`` count pivots by the sign of their
    effect; ``tasks`` the distinct questions they come from. ``extra`` holds
    format-specific facts (clusters, layers, vector size, GGUF metadata...).
    """

    path: Path
    fmt: str
    rows: int
    fields: list[str] = field(default_factory=list)
    nested: dict[str, list[str]] = field(default_factory=dict)
    samples: dict[str, Any] = field(default_factory=dict)
    positives: int | None = None
    negatives: int | None = None
    tasks: int | None = None
    task_types: Counter = field(default_factory=Counter)
    datasets: Counter = field(default_factory=Counter)
    models: Counter = field(default_factory=Counter)
    search: dict[str, Any] = field(default_factory=dict)
    original_tool: bool = False
    conversational: bool = False
    tokenized: bool = False  # DPO rows carry prompt_ids/chosen_ids/rejected_ids
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model_id(self) -> str | None:
        """The model most records name, if any."""
        return self.models.most_common(1)[0][0] if self.models else None


# --------------------------------------------------------------------------------------------------
# Reading a file

def _is_gguf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"GGUF"


def _row_format(row: dict[str, Any]) -> str | None:
    if "steering_vector" in row:
        return STEERING
    if all(k in row for k in _REQUIRED[DPO]):
        return DPO
    if "critical_token" in row or "critical_position" in row:
        return CRITICAL
    if all(k in row for k in _REQUIRED[PIVOTAL]):
        return PIVOTAL
    return None


def detect_format(path: str | os.PathLike) -> str:
    """The format of the file at ``path``, from its content (see :func:`inspect_file`)."""
    return inspect_file(path).fmt


def inspect_file(path: str | os.PathLike, fmt: str | None = None) -> FileSummary:
    """Read ``path`` and summarise it; PTSError (one line) for a missing, empty or unreadable file.

    The format comes from the content when ``fmt`` is None: a GGUF file is a
    control vector; JSONL rows with ``steering_vector`` are steering vectors,
    with ``prompt``/``chosen``/``rejected`` DPO pairs, with ``critical_token``
    or ``critical_position`` critical tokens, with ``pivot_token`` and
    ``prob_delta`` pivotal tokens (pts records or the original tool's). Every
    row must have the fields of that format.
    """
    p = Path(path)
    if not p.exists():
        raise PTSError(f"input file {p} does not exist")
    if p.is_dir():
        raise PTSError(f"input path {p} is a directory, not a file")
    if p.stat().st_size == 0:
        raise PTSError(f"input file {p} is empty: nothing to push")
    fmt = normalize_format(fmt)
    try:
        gguf = _is_gguf(p)
    except OSError as e:
        raise PTSError(f"cannot read {p}: {e.strerror or e}") from None
    if gguf or fmt == CONTROL_VECTOR:
        if not gguf:
            raise PTSError(f"{p} is not a GGUF file, so it cannot be a control vector")
        if fmt not in (None, CONTROL_VECTOR):
            raise PTSError(f"{p} is a GGUF file, not {fmt} records")
        return _inspect_gguf(p)
    try:
        rows = read_jsonl(p)
    except UnicodeDecodeError:
        raise PTSError(f"{p} is neither JSON lines nor a GGUF file") from None
    except OSError as e:
        raise PTSError(f"cannot read {p}: {e.strerror or e}") from None
    if not rows:
        raise PTSError(f"input file {p} has no records: nothing to push")
    detected = _row_format(rows[0])
    if fmt is None:
        if detected is None:
            raise PTSError(f"cannot tell what {p} holds: its first record has none of the fields of pivotal-token "
                           "records, DPO pairs, steering vectors or critical tokens (pass --format)")
        fmt = detected
    for n, row in enumerate(rows, 1):
        missing = [k for k in _REQUIRED[fmt] if k not in row]
        if fmt == CRITICAL and "critical_token" not in row and "critical_position" not in row:
            missing = ["critical_token"]
        if missing:
            raise PTSError(f"{p} record {n} is not a {fmt} record: it has no {', '.join(missing)}")
    return _summarise(p, fmt, rows)


def _fields(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for k in row:
            seen.setdefault(k, None)
    return list(seen)


def _nested(rows: list[dict[str, Any]], key: str) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        value = row.get(key)
        if isinstance(value, dict):
            for k in value:
                seen.setdefault(k, None)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    for k in item:
                        seen.setdefault(k, None)
    return list(seen)


def _first_value(rows: list[dict[str, Any]], key: str, sub: str | None = None) -> Any:
    for row in rows:
        value = row.get(key)
        if sub is not None:
            if isinstance(value, dict):
                value = value.get(sub)
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                value = value[0].get(sub)
            else:
                value = None
        if value is not None:
            return value
    return None


def _sign(row: dict[str, Any], delta: Any) -> bool | None:
    if isinstance(row.get("is_positive"), bool):
        return row["is_positive"]
    if isinstance(delta, (int, float)) and delta != 0:
        return delta > 0
    return None


def _summarise(path: Path, fmt: str, rows: list[dict[str, Any]]) -> FileSummary:
    s = FileSummary(path=path, fmt=fmt, rows=len(rows), fields=_fields(rows))
    for key in s.fields:
        if key in _OPAQUE:
            continue
        if any(isinstance(r.get(key), dict) for r in rows) or any(
                isinstance(r.get(key), list) and r[key] and isinstance(r[key][0], dict) for r in rows):
            s.nested[key] = _nested(rows, key)
    s.samples = {k: _first_value(rows, k) for k in s.fields}
    for key, subs in s.nested.items():
        for sub in subs:
            s.samples[f"{key}.{sub}"] = _first_value(rows, key, sub)

    meta = [r.get("metadata") if isinstance(r.get("metadata"), dict) else {} for r in rows]

    def get(i: int, key: str) -> Any:
        return rows[i][key] if key in rows[i] else meta[i].get(key)

    signs = [_sign(rows[i] if "is_positive" in rows[i] else meta[i], get(i, "prob_delta")) for i in range(len(rows))]
    if any(v is not None for v in signs):
        s.positives = sum(v is True for v in signs)
        s.negatives = sum(v is False for v in signs)
    task_keys = set()
    for i in range(len(rows)):
        item = get(i, "dataset_item_id")
        query = get(i, "query") or get(i, "original_query")
        if item is not None:
            task_keys.add((get(i, "dataset_id"), str(item)))
        elif query:
            task_keys.add(("", query))
        for key, counter in (("task_type", s.task_types), ("dataset_id", s.datasets), ("model_id", s.models)):
            value = get(i, key)
            if value:
                counter[str(value)] += 1
    s.tasks = len(task_keys) if task_keys else None
    search = _first_value(rows, "search")
    s.search = search if isinstance(search, dict) else {}
    deltas = [abs(d) for i in range(len(rows)) if isinstance(d := get(i, "prob_delta"), (int, float))]
    if deltas:
        s.extra["mean_abs_delta"] = statistics.fmean(deltas)
        s.extra["min_abs_delta"] = min(deltas)
        s.extra["max_abs_delta"] = max(deltas)

    if fmt == PIVOTAL:
        s.original_tool = "pivot_context_ids" not in s.fields
    elif fmt == DPO:
        s.conversational = isinstance(rows[0].get("prompt"), list)
        s.tokenized = all(all(k in r for k in ("prompt_ids", "chosen_ids", "rejected_ids")) for r in rows)
        verified = [m.get("counterpart_verified") for m in meta if "counterpart_verified" in m]
        if verified:
            s.extra["verified"] = sum(bool(v) for v in verified)
        match = [m.get("trl_tokens_match") for m in meta if "trl_tokens_match" in m]
        if match:
            s.extra["trl_match"] = sum(bool(v) for v in match)
    elif fmt == CRITICAL:
        s.extra["found"] = sum(r.get("critical_position") is not None or r.get("critical_token") is not None
                               for r in rows)
        with_ = [r["pass_at_k_with"][0] for r in rows if r.get("pass_at_k_with")]
        without = [r["pass_at_k_without"][0] for r in rows if r.get("pass_at_k_without")]
        if with_ and without:
            s.extra["pass1"] = (statistics.fmean(with_), statistics.fmean(without), len(with_), len(without))
    elif fmt == STEERING:
        dims = Counter(len(r["steering_vector"]) for r in rows if isinstance(r.get("steering_vector"), list))
        if dims:
            s.extra["dim"] = dims.most_common(1)[0][0]
        layers = Counter(r["steering_layer"] for r in rows if isinstance(r.get("steering_layer"), int))
        if layers:
            s.extra["layers"] = sorted(layers)
            s.extra["layer"] = layers.most_common(1)[0][0]
        clusters = {r["cluster_id"] for r in rows if r.get("cluster_id") is not None}
        if clusters:
            s.extra["clusters"] = len(clusters)
        patterns = Counter(str(r["reasoning_pattern"]) for r in rows if r.get("reasoning_pattern"))
        if patterns:
            s.extra["patterns"] = patterns
    return s


def _inspect_gguf(path: Path) -> FileSummary:
    import numpy as np
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as e:  # noqa: BLE001 - gguf raises bare ValueError/struct errors on a damaged file
        raise PTSError(f"{path} is not a readable GGUF file ({type(e).__name__}: {e})") from None

    def field_value(name: str) -> Any:
        f = reader.fields.get(name)
        if f is None:
            return None
        try:
            return f.contents()
        except Exception:  # noqa: BLE001 - older gguf versions lack contents()
            return None

    arch = field_value("general.architecture")
    directions: dict[int, Any] = {}
    for t in reader.tensors:
        name = t.name
        if name.startswith("direction."):
            try:
                directions[int(name.split(".", 1)[1])] = t
            except ValueError:
                continue
    if arch != "controlvector" or not directions:
        raise PTSError(f"{path} is a GGUF file but not a control vector (architecture {arch!r}, "
                       f"{len(directions)} direction.<layer> tensors)")
    s = FileSummary(path=path, fmt=CONTROL_VECTOR, rows=len(directions))
    pts_keys = [name for name in reader.fields if name.startswith("pts.")]
    if isinstance(model_id := field_value("pts.model_id"), str) and model_id:
        s.models[model_id] = 1
    pos, neg = field_value("pts.positive_pivots"), field_value("pts.negative_pivots")
    if isinstance(pos, int) and isinstance(neg, int):
        s.positives, s.negatives = pos, neg
    layers = sorted(directions)
    first = directions[layers[0]]
    s.extra.update({
        "layers": layers,
        "dim": int(first.n_elements),
        "model_hint": field_value("controlvector.model_hint"),
        "layer_count": field_value("controlvector.layer_count"),
        "norms": {layer: float(np.linalg.norm(np.asarray(directions[layer].data, dtype=np.float64)))
                  for layer in layers},
    })
    s.fields = ["general.architecture", "controlvector.model_hint", "controlvector.layer_count", *pts_keys]
    s.fields += [f"direction.{layer}" for layer in layers]
    s.samples = {name: field_value(name) for name in s.fields if not name.startswith("direction.")}
    return s


# --------------------------------------------------------------------------------------------------
# Field glossary

_PIVOTAL_FIELDS = {
    "model_id": "Model whose rollouts were sampled (pts writes its alias or Hub id).",
    "query": "The task's question, before the chat template.",
    "pivot_context": "Exact decoded text the model had seen before the pivot token: the prompt (chat template "
                     "applied) followed by the response so far.",
    "pivot_token": "The pivotal token, decoded.",
    "pivot_token_id": "Id of the pivotal token in the model's tokenizer.",
    "prob_before": "Estimated p(success) of completions sampled from `pivot_context`.",
    "prob_after": "Estimated p(success) of completions sampled from `pivot_context` + `pivot_token`.",
    "prob_delta": "`prob_after - prob_before`: the token's effect on the chance of a correct answer.",
    "is_positive": "True when the token raises p(success) (`prob_delta > 0`).",
    "task_type": "Kind of task (e.g. the oracle or reasoning-gym task that judged the answers).",
    "dataset_id": "Dataset the question came from.",
    "dataset_item_id": "Id of the question within that dataset.",
    "timestamp": "When the record was written (local time, ISO 8601).",
    "pivot_context_ids": "Token ids of `pivot_context`, exactly as fed to the model (no re-tokenization needed).",
    "prompt_length": "How many of `pivot_context_ids` are the prompt; the rest is the model's response.",
    "samples_before": "Rollouts behind `prob_before`.",
    "successes_before": "Correct rollouts among them.",
    "samples_after": "Rollouts behind `prob_after`.",
    "successes_after": "Correct rollouts among them.",
    "first_tokens": "First tokens the rollouts from `pivot_context` actually took, each with how often "
                    "(`count`) and how many of those rollouts succeeded (`successes`): measured alternatives "
                    "to the pivot.",
    "first_tokens.token_id": "Token id.",
    "first_tokens.token": "Decoded token.",
    "first_tokens.count": "Rollouts from `pivot_context` that began with this token.",
    "first_tokens.successes": "How many of them were judged correct.",
    "ci_before": "Wilson score interval `[low, high]` of `prob_before` at the search's confidence level.",
    "ci_after": "Wilson score interval `[low, high]` of `prob_after`.",
    "pooled_before": "How many of `samples_before` were drawn from a shorter context and passed through "
                     "`pivot_context` (the rest were drawn there).",
    "pooled_after": "The same for `samples_after`.",
    "verified": "True when the pivot was measured again, with rollouts drawn after the search flagged it, and "
                "the change held beyond the threshold at `delta_ci_level`; the probabilities and counts are "
                "then the verification's.",
    "delta_ci": "Interval `[low, high]` of `prob_delta` (Newcombe's hybrid score interval).",
    "delta_ci_level": "Confidence level of `delta_ci` (for verified pivots, the Bonferroni-corrected level of "
                      "each verification look).",
    "candidate": "For verified pivots, the search's own estimates that flagged the token.",
    "candidate.prob_before": "p(success) before the token, as the search estimated it.",
    "candidate.prob_after": "p(success) after the token, as the search estimated it.",
    "candidate.samples_before": "Rollouts behind `candidate.prob_before`.",
    "candidate.samples_after": "Rollouts behind `candidate.prob_after`.",
    "answer": "Reference answer the oracle judged against.",
    "position": "Index of the pivot token within the response (0 = first response token).",
    "solution_index": "Which of the sampled solutions to the question was searched.",
    "search": "Search settings that produced the record.",
    "search.prob_threshold": "Minimum |p(success) change| that makes a token pivotal.",
    "search.num_samples": "Rollouts per p(success) estimate (the cap, with adaptive sampling).",
    "search.max_new_tokens": "Token budget of a whole response.",
    "search.split_at": "Where segments were split: cumulative log-prob midpoint (Phi-4) or token middle.",
    "search.temperature": "Sampling temperature of the rollouts.",
    "search.top_p": "Nucleus sampling of the rollouts.",
    "search.top_k": "Top-k sampling of the rollouts (0 = off).",
    "search.min_p": "Min-p sampling of the rollouts.",
    "search.confidence": "Confidence level of the reported intervals (and of adaptive sampling).",
    "search.adaptive": "Whether estimates were sampled in rounds until their interval settled.",
    "search.pool": "Whether estimates counted every rollout that passed through their prefix.",
    "search.verify": "Whether candidates were measured again before being written.",
    "search.verify_samples": "Most rollouts per end spent verifying one candidate.",
    "search.verify_confidence": "Confidence of the verification's decision rule.",
    "id": "Stable id of the record (hash of model, dataset item, context ids and token).",
    "kind": "Record kind (`pivotal_token`).",
    "schema_version": "Version of the pts record schema.",
}

_DPO_FIELDS = {
    "prompt": "Exact decoded context: the prompt (chat template applied) and the response up to the decision.",
    "chosen": "The continuation that measured better: a single token.",
    "rejected": "The continuation that measured worse: a single token.",
    "prompt_ids": "Token ids of `prompt`, exactly as the model saw them (TRL's column name).",
    "chosen_ids": "The chosen token's id, alone: no end-of-sequence token after it.",
    "rejected_ids": "The rejected token's id, alone: no end-of-sequence token after it.",
    "metadata": "Where the pair came from and what was measured.",
    "metadata.original_query": "The task's question, before the chat template.",
    "metadata.prob_chosen": "Estimated p(success) after the chosen token.",
    "metadata.prob_rejected": "Estimated p(success) after the rejected token.",
    "metadata.prob_delta": "The pivot's own `prob_after - prob_before` (positive: the pivot is `chosen`, "
                           "negative: it is `rejected`).",
    "metadata.prob_before": "Estimated p(success) of the context before either token.",
    "metadata.samples": "Rollouts behind `prob_chosen` and `prob_rejected` (keys `chosen`, `rejected`).",
    "metadata.is_positive": "Whether the pivot raised p(success) (then it is `chosen`).",
    "metadata.task_type": "Kind of task.",
    "metadata.model_id": "Model whose rollouts were measured.",
    "metadata.dataset_id": "Dataset the question came from.",
    "metadata.dataset_item_id": "Id of the question within that dataset.",
    "metadata.counterpart_verified": "True when the gap between `prob_chosen` and `prob_rejected` is established: "
                                     "the interval of the difference at `metadata.gap_confidence` excludes zero.",
    "metadata.gap_interval": "Interval of `prob_chosen - prob_rejected` (Newcombe's, from Wilson intervals).",
    "metadata.gap_confidence": "Confidence level of `gap_interval`.",
    "metadata.counterpart_source": "How the counterpart was measured: `first_tokens` (the search's own rollouts "
                                   "from this context, grouped by first token) or `estimated` (the model's top "
                                   "next tokens, each sampled again and judged by the oracle).",
    "metadata.pivot_id": "`id` of the pivotal-token record the pair was built from.",
    "metadata.pivot_token_id": "Token id of the pivotal token.",
    "metadata.chosen_token_id": "Token id of `chosen`.",
    "metadata.rejected_token_id": "Token id of `rejected`.",
    "metadata.prompt_token_ids": "Token ids of the context, exactly as the model saw them (for trainers that "
                                 "take pre-tokenized pairs).",
    "metadata.retokenized": "True when the token ids were not recorded (a file of the original tool) and come "
                            "from tokenizing the text again.",
    "metadata.trl_tokens_match": "Whether TRL's own tokenization of this row reproduces the measured context ids "
                                 "and single tokens (the EOS it appends aside).",
}
_DPO_CHAT_FIELDS = {
    "prompt": "The messages the chat template rendered before the response (user, and system when there was "
              "one).",
    "chosen": "One assistant message: the response so far followed by the token that measured better.",
    "rejected": "One assistant message: the response so far followed by the token that measured worse.",
    "prompt.role": "Message role.",
    "prompt.content": "Message text.",
    "chosen.role": "`assistant`.",
    "chosen.content": "The response so far and the chosen token.",
    "rejected.role": "`assistant`.",
    "rejected.content": "The response so far and the rejected token.",
}

_STEERING_FIELDS = {
    "query": "The task's question, before the chat template.",
    "pivot_context": "Exact decoded context before the pivot token; optillm matches the end of the generated "
                     "text against it to decide when to steer.",
    "pivot_token": "The pivotal token, decoded.",
    "pivot_token_id": "Its token id.",
    "prob_before": "Estimated p(success) before the token.",
    "prob_after": "Estimated p(success) after the token.",
    "prob_delta": "`prob_after - prob_before`.",
    "is_positive": "True when the line's pivots raise p(success) (their summed `prob_delta` is positive). optillm "
                   "ignores it: `steering_vector` already points toward success.",
    "vector_sign": "+1 or -1: the factor applied to the activation so that `steering_vector` points toward "
                   "success (-1 for a negative line).",
    "adds_toward_success": "Always true: adding `steering_vector` (and `cluster_vector`, `contrastive_vector`) "
                           "pushes toward success, as optillm does with every vector; never subtract it.",
    "pivots": "Every pivot at this context (lines merge pivots that share a context).",
    "pivots.pivot_id": "`id` of the pivotal-token record.",
    "pivots.pivot_token": "The pivot token, decoded.",
    "pivots.pivot_token_id": "Its token id.",
    "pivots.prob_after": "Estimated p(success) after it.",
    "pivots.prob_delta": "Its change of p(success).",
    "pivots.is_positive": "Whether it raises p(success).",
    "model_id": "Model the activations were read from.",
    "task_type": "Kind of task.",
    "dataset_id": "Dataset the question came from.",
    "dataset_item_id": "Id of the question within that dataset.",
    "steering_vector": "The vector optillm adds: `vector_sign` times the residual-stream activation at "
                       "`steering_layer` at the position that predicts the pivot token, minus the mean activation "
                       "over the context tokens of the export (what every position shares would otherwise dominate "
                       "its direction).",
    "activation": "The raw residual-stream activation behind `steering_vector`.",
    "layer_activations": "The raw activation at every exported layer, keyed by layer number (as text).",
    "activation_position": "Index, in the context's token ids, of the token whose activation was read (the "
                           "last one, which predicts the pivot token).",
    "cluster_id": "Cluster of the vector (k-means over the steering vectors after PCA).",
    "reasoning_pattern": "Label of the cluster in optillm's vocabulary (depth_and_thoroughness, "
                         "numerical_accuracy, self_correction, exploration, organization, or unknown): the cue "
                         "words at least half its contexts use, more than the other clusters do. optillm picks "
                         "its steering strength by it.",
    "cluster_vector": "Mean steering vector of the cluster.",
    "contrastive_vector": "Mean activation before positive pivots minus before negative ones, within the cluster "
                          "or overall (see `contrastive_scope`); null when the export has only one side.",
    "contrastive_scope": "`cluster`, `overall` (the cluster lacks positive or negative pivots) or `none`.",
    "steering_layer": "Decoder layer (0-based, the output of `model.model.layers[L]`) the vectors were read at. "
                      "optillm ignores it and hooks its `target_layer` (default 19): set that to this number.",
    "retokenized": "True when the context's token ids were not recorded (a file of the original tool) and come "
                   "from tokenizing the text again.",
    "pivot_id": "`id` of the pivotal-token record the vector was read for.",
    "id": "Stable id of the record.",
    "kind": "Record kind.",
    "schema_version": "Version of the pts record schema.",
}

_CRITICAL_FIELDS = {
    "model_id": "Model that wrote the trajectory and whose rollouts were measured.",
    "query": "The task's question, before the chat template.",
    "answer": "Reference answer the oracle judged against.",
    "response": "The incorrect trajectory (the model's response), decoded.",
    "response_ids": "Token ids of `response`.",
    "prompt_ids": "Token ids of the exact prompt (chat template applied).",
    "prompt_length": "Number of prompt tokens.",
    "critical_position": "Index in `response_ids` of the critical token (null when none was found).",
    "critical_token": "The critical token, decoded: the token after which rollouts (almost) never reach a "
                      "correct answer (cDPO).",
    "critical_token_id": "Its token id.",
    "critical_context": "Decoded prompt and response before the critical token.",
    "rule": "How the token was chosen: `first_zero_then_low` (the paper's rule: the first zero-score token "
            "after which no token scores above `low_threshold`), `last_zero` (its fallback) or `none`.",
    "score": "Score of the critical token: share of accepted rollouts from the prefix that includes it.",
    "scores": "Score of every response prefix (the prefix including token i); null where not sampled.",
    "score_samples": "Rollouts behind each score.",
    "score_successes": "Accepted rollouts behind each score.",
    "low_threshold": "Score below which later tokens count as low for the paper's rule.",
    "mode": "How prefixes were scored (every token, or a search over them).",
    "rollouts": "Rollouts spent on this trajectory.",
    "task_type": "Kind of task.",
    "dataset_id": "Dataset the question came from.",
    "dataset_item_id": "Id of the question within that dataset.",
    "trajectory_index": "Which incorrect trajectory of the question this is.",
    "p_initial": "Estimated p(success) of the question from the bare prompt.",
    "pass_at_k_with": "pass@k for k = 1..n of rollouts that keep the critical token.",
    "pass_at_k_without": "pass@k for k = 1..n when the critical token is replaced by another token drawn from "
                         "the model (one rollout each).",
    "samples_with": "Rollouts behind `pass_at_k_with`.",
    "successes_with": "Accepted ones among them.",
    "samples_without": "Rollouts behind `pass_at_k_without`.",
    "successes_without": "Accepted ones among them.",
    "alternatives": "The replacement tokens drawn for `pass_at_k_without`, with draw counts and successes.",
    "alternatives.token_id": "Token id.",
    "alternatives.token": "Decoded token.",
    "alternatives.count": "Times it was drawn.",
    "alternatives.successes": "Accepted rollouts after it.",
    "pass_at_k_rollouts": "Rollouts spent on the pass@k curves.",
    "search": "Settings of the search that produced the record.",
    "timestamp": "When the record was written (local time, ISO 8601).",
    "id": "Stable id of the record.",
    "kind": "Record kind (`critical_token`).",
    "schema_version": "Version of the pts record schema.",
}

_CONTROL_VECTOR_FIELDS = {
    "general.architecture": "`controlvector`: what llama.cpp and repeng expect of a control vector file.",
    "controlvector.model_hint": "Architecture (model type) of the model the vector is for.",
    "controlvector.layer_count": "Number of layer directions in the file.",
    "pts.model_id": "Model the activations were read from.",
    "pts.method": "How the directions were computed (`mean_difference`: mean activation before positive pivots "
                  "minus mean before negative ones, at the position that predicts the pivot token).",
    "pts.positive_pivots": "Positive pivots behind the directions.",
    "pts.negative_pivots": "Negative pivots behind the directions.",
}

# Fields whose values are objects keyed by data (layer numbers), not by field names: not expanded.
_OPAQUE = {"layer_activations", "steering_vectors"}

_GLOSSARIES = {PIVOTAL: _PIVOTAL_FIELDS, DPO: _DPO_FIELDS, STEERING: _STEERING_FIELDS, CRITICAL: _CRITICAL_FIELDS,
               CONTROL_VECTOR: _CONTROL_VECTOR_FIELDS}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        if not value:
            return "list"
        inner = _type_name(value[0])
        if inner in ("float", "int") and len(value) > 8:
            return f"list[{inner}] ({len(value)})"
        if inner == "object":
            return "list[object]"
        return f"list[{inner}]"
    return type(value).__name__


def _describe(s: FileSummary, name: str) -> str:
    glossary = _GLOSSARIES[s.fmt]
    if s.fmt == DPO and s.conversational and name in _DPO_CHAT_FIELDS:
        return _DPO_CHAT_FIELDS[name]
    if s.fmt == STEERING and name == "steering_vector" and "activation" not in s.fields:
        return ("Activation vector at `steering_layer` for the pivot, as the tool that wrote the file computed it "
                "(the original PTS tool stored the raw residual-stream activation); optillm normalises it and "
                "adds it.")
    if name in glossary:
        return glossary[name]
    if s.fmt == CRITICAL and name.startswith("search."):
        return "Search setting."
    if s.fmt == CRITICAL and name in _PIVOTAL_FIELDS:
        return _PIVOTAL_FIELDS[name]
    if s.fmt == CONTROL_VECTOR and name.startswith("direction."):
        layer = name.split(".", 1)[1]
        return (f"Direction llama.cpp adds to the output of decoder block {layer} at every position "
                f"(L2 norm {s.extra['norms'][int(layer)]:.3g}).")
    return "Not described by pts (written by another tool)."


def _glossary_rows(s: FileSummary) -> list[tuple[str, str, str]]:
    out = []
    for name in s.fields:
        if s.fmt == CONTROL_VECTOR:
            value = s.samples.get(name)
            kind = f"float32[{s.extra['dim']}]" if name.startswith("direction.") else (
                "uint32" if isinstance(value, int) else "string")
        else:
            kind = _type_name(s.samples.get(name))
        out.append((name, kind, _describe(s, name)))
        for sub in s.nested.get(name, []):
            full = f"{name}.{sub}"
            out.append((full, _type_name(s.samples.get(full)), _describe(s, full)))
    return out


# --------------------------------------------------------------------------------------------------
# The card

_TITLES = {
    PIVOTAL: "Pivotal tokens",
    DPO: "Pivotal-token DPO pairs",
    STEERING: "Pivotal-token steering vectors",
    CRITICAL: "Critical tokens",
    CONTROL_VECTOR: "Pivotal-token control vector",
}

_TAGS = {
    PIVOTAL: ["reasoning", "interpretability"],
    DPO: ["dpo", "preference", "trl", "reasoning"],
    STEERING: ["steering-vectors", "activation-steering", "optillm", "reasoning", "interpretability"],
    CRITICAL: ["critical-tokens", "cdpo", "reasoning"],
    CONTROL_VECTOR: ["control-vector", "steering-vectors", "gguf", "llama.cpp", "interpretability"],
}


def _md(text: Any) -> str:
    """``text`` safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _description(s: FileSummary, model: str | None) -> str:
    by = f" of `{model}`" if model else ""
    pts = f"[pts]({PTS_URL})"
    phi4 = f"[Phi-4 technical report]({PHI4_URL})"
    if s.fmt == PIVOTAL:
        text = (f"Pivotal tokens found by {pts} in the reasoning{by}. A pivotal token is a single token of a "
                f"model's own response whose choice changes the probability that the response ends in a correct "
                f"answer by at least a threshold (the Pivotal Token Search of the {phi4}). For each one, "
                f"p(success) was estimated by sampling completions from the context before and after the token "
                f"and judging their answers with the task's oracle.")
        if s.original_tool:
            text += (" The records have the shape written by the original PTS tool (no token ids or sample "
                     "counts).")
        return text
    if s.fmt == DPO:
        form = ("TRL's conversational preference form (`prompt`, `chosen`, `rejected` as message lists)"
                if s.conversational else "TRL's standard preference form (`prompt`, `chosen`, `rejected` strings)")
        return (f"Token-level preference pairs{by} built by {pts} from pivotal tokens (the {phi4}), in {form}. "
                f"`prompt` is the exact context before a pivotal decision; `chosen` and `rejected` are single "
                f"tokens. For a positive pivot the pivot is `chosen` and `rejected` is an alternative next token "
                f"measured to succeed less often; for a negative pivot the pivot is `rejected` and `chosen` an "
                f"alternative measured to succeed more often. Counterparts come from measured rollouts, never "
                f"from an assumed oracle; `metadata.counterpart_verified` says whether the gap is established "
                f"at `metadata.gap_confidence`."
                + (" `prompt_ids`, `chosen_ids` and `rejected_ids` are the measured token ids: train on them "
                   "(see Usage), not on the text." if s.tokenized else ""))
    if s.fmt == STEERING:
        return (f"Steering vectors{by} built by {pts} from the residual-stream activation at the position that "
                f"predicts each pivotal token (the {phi4}), clustered into reasoning patterns. The fields are the "
                f"ones [optillm](https://github.com/codelion/optillm)'s AutoThink reads: it adds a vector at its "
                f"`target_layer` when the generated tokens end like the vector's `pivot_context`. Every vector "
                f"already points toward success (`adds_toward_success`), one line per context.")
    if s.fmt == CRITICAL:
        return (f"Critical tokens{by} found by {pts}: tokens of incorrect reasoning trajectories whose choice "
                f"leads to wrong answers, in the sense of [cDPO]({CDPO_URL}).")
    hint = s.extra.get("model_hint")
    return (f"A GGUF control vector built by {pts} from pivotal tokens (the {phi4}): the contrastive direction "
            f"between the residual-stream activations before positive and negative pivotal tokens, one direction "
            f"per layer, in the format repeng writes and llama.cpp loads with `--control-vector`"
            + (f" (model architecture `{hint}`)." if hint else "."))


def _counts(s: FileSummary) -> list[tuple[str, str]]:
    unit = {PIVOTAL: "pivotal tokens", DPO: "preference pairs", STEERING: "steering vectors",
            CRITICAL: "incorrect trajectories", CONTROL_VECTOR: "layer directions"}[s.fmt]
    rows = [(unit.capitalize(), str(s.rows))]
    if s.fmt == CONTROL_VECTOR:
        layers = s.extra["layers"]
        rows.append(("Layers", ", ".join(map(str, layers))))
        rows.append(("Vector size", str(s.extra["dim"])))
        if s.extra.get("model_hint"):
            rows.append(("Model architecture (hint)", f"`{s.extra['model_hint']}`"))
        if s.positives is not None:
            rows.append(("Pivots behind it (positive / negative)", f"{s.positives} / {s.negatives}"))
        if s.models:
            rows.append(("Model", ", ".join(f"`{k}`" for k in s.models)))
        return rows
    if s.positives is not None:
        label = "Pairs from positive / negative pivots" if s.fmt == DPO else "Positive / negative"
        rows.append((label, f"{s.positives} / {s.negatives}"))
    if s.tasks is not None:
        rows.append(("Questions (tasks)", str(s.tasks)))
    if "mean_abs_delta" in s.extra:
        rows.append(("abs(prob_delta): mean (min-max)",
                     f"{s.extra['mean_abs_delta']:.3f} ({s.extra['min_abs_delta']:.3f}-{s.extra['max_abs_delta']:.3f})"))
    if "found" in s.extra:
        rows.append(("Trajectories with a critical token", f"{s.extra['found']} of {s.rows}"))
    if "pass1" in s.extra:
        w, wo, nw, nwo = s.extra["pass1"]
        rows.append(("pass@1 keeping / replacing the critical token (mean)", f"{w:.3f} ({nw}) / {wo:.3f} ({nwo})"))
    if "verified" in s.extra:
        rows.append(("Counterparts verified with the oracle", f"{s.extra['verified']} of {s.rows}"))
    if "trl_match" in s.extra:
        rows.append(("Pairs TRL tokenizes exactly as measured", f"{s.extra['trl_match']} of {s.rows}"))
    if s.fmt == STEERING:
        if "dim" in s.extra:
            rows.append(("Vector size", str(s.extra["dim"])))
        if "layers" in s.extra:
            rows.append(("Steering layer(s)", ", ".join(map(str, s.extra["layers"]))))
        if "clusters" in s.extra:
            rows.append(("Clusters", str(s.extra["clusters"])))
        if "patterns" in s.extra:
            rows.append(("Reasoning patterns", ", ".join(f"{k} ({v})" for k, v in s.extra["patterns"].most_common())))
    for label, counter in (("Task types", s.task_types), ("Source datasets", s.datasets), ("Models", s.models)):
        if counter:
            rows.append((label, ", ".join(f"`{k}` ({v})" for k, v in counter.most_common(10))))
    return rows


def reconstructed_command(s: FileSummary) -> str | None:
    """The ``pts run`` options recorded in pivotal-token records (model, dataset, search settings), or None."""
    if s.fmt != PIVOTAL or not s.search:
        return None
    parts = ["pts", "run"]
    if s.model_id:
        parts += ["--model", s.model_id]
    if len(s.datasets) == 1:
        parts += ["--dataset", next(iter(s.datasets))]
    for key in ("prob_threshold", "num_samples", "max_new_tokens", "split_at", "temperature", "top_p", "top_k",
                "min_p"):
        if s.search.get(key) is not None:
            parts += [f"--{key.replace('_', '-')}", str(s.search[key])]
    if s.search.get("adaptive") and s.search.get("confidence") is not None:
        parts += ["--confidence", str(s.search["confidence"])]
    return shlex.join(parts)


def _provenance(s: FileSummary, model: str | None, command: str | None) -> list[str]:
    lines = []
    if model:
        lines.append(f"- Model: `{model}`")
        hub = hub_model_id(model)
        if hub != model:
            lines.append(f"  (pts's built-in alias for a quantized [`{hub}`](https://huggingface.co/{hub}))")
    if s.datasets:
        lines.append("- Source dataset(s): " + ", ".join(f"`{d}`" for d in s.datasets))
    if command:
        lines += ["- Command:", "", "```bash", command, "```"]
    else:
        guess = reconstructed_command(s)
        if guess:
            note = ("- Command: not recorded; the records carry these `pts run` options (dataset config, "
                    "split and sample size are not recorded):")
            lines += [note, "", "```bash", guess, "```"]
        else:
            lines.append("- Command: not recorded.")
    if s.search and s.fmt in (PIVOTAL, CRITICAL):
        settings = ", ".join(f"`{k}={v}`" for k, v in s.search.items())
        lines += ["", f"Search settings: {settings}."]
    return lines


# TRL 1.16's DPOTrainer always tokenizes a dataset's text again and appends the end-of-sequence token to chosen and
# rejected; it has no option to keep given ids. This subclass skips that step, so the measured ids are trained as
# they are. Cards and docs/exporting.md show it; tests/test_export.py trains with this very text.
TRL_IDS_TRAINER = '''class TokenIdsDPOTrainer(DPOTrainer):
    """DPO on the rows' prompt_ids/chosen_ids/rejected_ids as they are: no re-tokenization, no appended EOS."""

    def _prepare_dataset(self, dataset, *args, **kwargs):
        return dataset.select_columns(["prompt_ids", "chosen_ids", "rejected_ids"])'''

# llama.cpp's control-vector options, as in common/arg.cpp of the llama.cpp that llama-cpp-python 0.3.36 vendors:
# `--control-vector FNAME[,FNAME...]` adds each at scale 1; `--control-vector-scaled FNAME:SCALE[,...]` (one
# argument; older builds took FNAME and SCALE as two, which today's reject) adds it times SCALE.
LLAMA_CPP_COMMANDS = ('llama-cli -m MODEL.gguf --control-vector {file} -p "What is 17 * 23? Think step by step."',
                      'llama-cli -m MODEL.gguf --control-vector-scaled {file}:0.5 -p "..."   # weaker')


def _usage(s: FileSummary, repo_id: str, model: str | None, filename: str) -> list[str]:
    hub = hub_model_id(model) or "MODEL_ID"
    load = ["```python", "from datasets import load_dataset", "",
            f'dataset = load_dataset("{repo_id}", split="train")']
    if s.fmt == PIVOTAL:
        load += ['positive = dataset.filter(lambda r: r["is_positive"])',
                 'print(len(dataset), "pivotal tokens,", len(positive), "positive")',
                 'row = dataset[0]',
                 'print(repr(row["pivot_context"][-80:]), "->", repr(row["pivot_token"]), row["prob_delta"])',
                 "```", "",
                 "Turn them into DPO pairs or steering vectors with pts:", "", "```bash",
                 f"hf download {repo_id} {filename} --repo-type dataset --local-dir .",
                 f"pts export --input-path {filename} --format dpo --output-path dpo_pairs.jsonl",
                 "```"]
        return ["### Load", ""] + load
    if s.fmt == DPO:
        load += ['row = dataset[0]',
                 'print(repr(row["prompt"][-80:]) if isinstance(row["prompt"], str) else row["prompt"][-1])',
                 'print("chosen:", repr(row["chosen"]), "rejected:", repr(row["rejected"]))',
                 "```"]
        trainer = "TokenIdsDPOTrainer" if s.tokenized else "DPOTrainer"
        config = 'DPOConfig(output_dir="dpo-pivotal-tokens"' + (", max_length=None" if s.tokenized else "") + ")"
        train = ["```python", "from datasets import load_dataset",
                 "from transformers import AutoModelForCausalLM, AutoTokenizer",
                 "from trl import DPOConfig, DPOTrainer", ""]
        if s.tokenized:
            train += [*TRL_IDS_TRAINER.splitlines(), "", ""]
        train += [f'model_id = "{hub}"',
                  f'dataset = load_dataset("{repo_id}", split="train")',
                  "model = AutoModelForCausalLM.from_pretrained(model_id)",
                  "tokenizer = AutoTokenizer.from_pretrained(model_id)",
                  f"trainer = {trainer}(",
                  "    model=model,",
                  f"    args={config},  # add use_cpu=True on a machine without a GPU",
                  "    train_dataset=dataset,",
                  "    processing_class=tokenizer,",
                  ")",
                  "trainer.train()",
                  "```", ""]
        if s.tokenized:
            train.append("Stock `DPOTrainer` (TRL 1.16) would tokenize `prompt + chosen` and `prompt + rejected` again "
                         "and append the end-of-sequence token to both: right after a pivot that token carries most "
                         "of each completion's log-probability, so the pair would mostly teach when to stop. "
                         "`TokenIdsDPOTrainer` trains on the measured ids, one token each. `max_length=None`: "
                         "truncation could cut the pivot token off a long context.")
        else:
            train.append("TRL tokenizes the completions again and closes each with an end-of-sequence or end-of-turn "
                         "token, which is trained too; the exact token ids are in `metadata` where the file has them.")
        return ["### Load", ""] + load + ["", "### Train with TRL", ""] + train
    if s.fmt == STEERING:
        layer = s.extra.get("layer", "STEERING_LAYER")
        load += ['print(dataset[0]["reasoning_pattern"], len(dataset[0]["steering_vector"]))', "```"]
        optillm = ["```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
                   "from optillm.autothink import autothink_decode", "",
                   f'model_id = "{hub}"',
                   "model = AutoModelForCausalLM.from_pretrained(model_id)",
                   "tokenizer = AutoTokenizer.from_pretrained(model_id)",
                   'messages = [{"role": "user", "content": "What is 17 * 23? Think step by step."}]',
                   "response = autothink_decode(model, tokenizer, messages, {",
                   f'    "steering_dataset": "{repo_id}",  # or a local folder holding only the JSONL file',
                   f'    "target_layer": {layer},  # the vectors\' steering_layer: optillm ignores that field',
                   "})",
                   "print(response)",
                   "```"]
        return (["### Load", ""] + load + ["", "### Steer generation with optillm AutoThink", ""] + optillm
                + ["", "optillm (0.4.0) reads the vectors with `datasets.load_dataset(steering_dataset)` and adds "
                   "each one (it ignores `is_positive`; these vectors already point toward success) at "
                   "`target_layer`, which must be the layer the vectors were read at (`steering_layer`)."])
    if s.fmt == CRITICAL:
        return ["### Load", ""] + load + ["```"]
    # control vector
    lines = ["### Download", "", "```bash", f"hf download {repo_id} {filename} --repo-type dataset --local-dir .",
             "```", "", "### Steer generation with llama.cpp", "", "```bash",
             *(c.format(file=filename) for c in LLAMA_CPP_COMMANDS),
             "```", "",
             "`MODEL.gguf` must be the model the vector was built from"
             + (f" (`{model}`)" if model else "") + "; a negative scale steers the other way.",
             "", "### Read it in Python", "", "```python", "from gguf import GGUFReader", "",
             f'reader = GGUFReader("{filename}")',
             "directions = {int(t.name.split(\".\")[1]): t.data for t in reader.tensors}",
             "print(sorted(directions))",
             "```"]
    return lines


def build_card(path: str | os.PathLike, fmt: str | None = None, model: str | None = None,
               command: str | None = None, *, repo_id: str = "USER/NAME", license: str = "apache-2.0",
               path_in_repo: str | None = None, summary: FileSummary | None = None) -> DatasetCard:
    """The dataset card for the file at ``path`` as it will sit in ``repo_id``.

    ``fmt`` overrides format detection; ``model`` the model named in the
    records; ``command`` is the command that generated the file (for pivotal
    records without one, the ``pts run`` options recorded in them are shown).
    ``path_in_repo`` is the data file's name in the repo (default: its base
    name). ``summary`` saves a second read when the caller already has one.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    s = summary or inspect_file(path, fmt)
    filename = path_in_repo or s.path.name
    model = model or s.model_id or (s.extra.get("model_hint") if s.fmt == CONTROL_VECTOR else None)
    title = _TITLES[s.fmt] + (f" ({model})" if model else "")
    extra: dict[str, Any] = {"tags": ["pts", "pivotal-tokens", *_TAGS[s.fmt]]}
    if s.fmt == CONTROL_VECTOR:
        extra["viewer"] = False  # the dataset viewer cannot read GGUF
    else:
        extra["configs"] = [{"config_name": "default", "data_files": [{"split": "train", "path": filename}]}]
    data = DatasetCardData(
        license=license,
        pretty_name=title,
        task_categories=["text-generation"],
        size_categories=[size_category(s.rows)],
        **extra,
    )
    body = [f"# {title}", "", _description(s, model), "",
            "## Contents", "", f"One file, `{filename}`" + ("." if s.fmt == CONTROL_VECTOR else " (JSON lines)."),
            "", "| | |", "|---|---|"]
    body += [f"| {_md(k)} | {_md(v)} |" for k, v in _counts(s)]
    body += ["", "## How it was made", ""] + _provenance(s, model, command)
    body += ["", "## Fields", "", "| Field | Type | Description |", "|---|---|---|"]
    body += [f"| `{_md(n)}` | {_md(t)} | {_md(d)} |" for n, t, d in _glossary_rows(s)]
    body += ["", "## Usage", ""] + _usage(s, repo_id, model, filename)
    body += ["", "## Citation", "", "Pivotal Token Search was introduced in the Phi-4 technical report:", "",
             "```bibtex",
             "@article{abdin2024phi4,",
             "  title   = {Phi-4 Technical Report},",
             "  author  = {Abdin, Marah and others},",
             "  journal = {arXiv preprint arXiv:2412.08905},",
             "  year    = {2024}",
             "}",
             "```", ""]
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)
    return DatasetCard(content)
