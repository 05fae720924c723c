"""Steering vectors from pivotal tokens, in the fields optillm's autothink reads.

Each pivot is a decision at one context between a success-side and a
failure-side token (:mod:`pts.steering.directions`). Its line's
``steering_vector`` is the unit gradient, with respect to the residual stream
(the output of decoder layer ``L``, ``model.model.layers[L]``, 0-based: the
module optillm hooks; HF's ``hidden_states[L + 1]``) at the position that
predicts the pivot, of ``log p(success token) - log p(failure token)``: the
direction in which a small addition moves the decision most. The forward
pass runs on the exact token ids of the context (recorded by ``pts run``; the
original tool's text contexts are tokenized again and marked ``retokenized``).

Written for optillm's AutoThink as it is (optillm 0.4.0,
``autothink/steering.py``): it adds every vector it loads (it drops
``is_positive``), normalised, times a strength of at most 3, at one
``target_layer``, once the generated tokens end like the vector's
``pivot_context``. So:

- the vector already points toward success (``adds_toward_success: true``);
- the layer is measured, not fixed: every layer's median gain per unit norm
  (the gradient's norm) is computed and the largest wins (``--select-layer``
  overrides), since optillm's strength cannot make up for a layer where a
  unit vector does little;
- pivots that share a context (the same token ids) are merged into one line;
  the line's pivot fields are those of its strongest pivot on the side of the
  net change (sum of ``prob_delta``), and ``pivots`` lists every merged pivot;
  a side the lead pivot's rollouts did not measure is taken from a pivot of
  the other sign there. Contexts whose pivots cancel exactly are left out;
- a context that is only the prompt (no response token yet) is left out: its
  ending is the chat template's, which every prompt shares, so optillm would
  steer every question with it;
- ``reasoning_pattern`` (which picks optillm's strength) is a label only when
  its cue words separate the cluster from the others (:func:`label_clusters`),
  else ``unknown`` (strength 1.0 in optillm 0.4.0).

Fields of each output line: the original tool's ``query, pivot_context,
pivot_token, pivot_token_id, prob_before, prob_after, prob_delta, is_positive,
model_id, task_type``; ``steering_vector``, ``adds_toward_success``,
``direction_method``, ``objective``, ``success_token(_id)``,
``failure_token(_id)``, ``gain_per_unit_norm``, ``residual_norm``,
``activation`` (the residual itself), ``activation_dtype``; ``cluster_id`` /
``cluster_vector`` (k-means after PCA on the steering vectors; the cluster's
mean vector); ``reasoning_pattern``; ``steering_layer`` (optillm ignores it:
its ``target_layer`` must be set to this number) and ``layer_gains``;
``activation_position``; ``pivots``. The field glossary is
:data:`pts.formats.steering.FIELDS`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pts import options
from pts.errors import PTSError
from pts.export.records import PivotalTokenRow
from pts.steering.directions import Decision, unit_rows
from pts.steering.layers import check_layers, decoder_layers

log = logging.getLogger(__name__)

# Default layers, as fractions of the model's depth: the original tool's fixed 19 was for 28-layer models.
DEFAULT_LAYER_FRACTIONS = (0.6, 0.75, 0.9)

# optillm's autothink vocabulary (its pattern_strengths keys; "unknown" is its fallback). Cues are whole
# words or word sequences, matched on word boundaries: "so" never matches inside "also".
PATTERNS: dict[str, tuple[str, ...]] = {
    "depth_and_thoroughness": (
        "therefore",
        "thus",
        "hence",
        "so",
        "however",
        "wait",
        "think",
        "analyze",
        "analyse",
        "furthermore",
        "moreover",
        "additionally",
        "consider",
        "carefully",
        "careful",
        "detail",
        "detailed",
        "thorough",
        "deeper",
        "examine",
        "let's think",
        "in other words",
    ),
    "numerical_accuracy": (
        "calculate",
        "calculation",
        "compute",
        "computation",
        "add",
        "adding",
        "sum",
        "total",
        "subtract",
        "minus",
        "plus",
        "multiply",
        "times",
        "divide",
        "divided",
        "equals",
        "equal",
        "number",
        "digit",
        "result",
        "answer",
        "value",
    ),
    "self_correction": (
        "actually",
        "mistake",
        "wrong",
        "incorrect",
        "error",
        "oops",
        "sorry",
        "reconsider",
        "recheck",
        "let me reconsider",
        "double check",
        "verify",
        "correction",
        "revise",
        "fix",
    ),
    "exploration": (
        "alternatively",
        "alternative",
        "instead",
        "approach",
        "method",
        "strategy",
        "option",
        "another",
        "different",
        "what if",
        "maybe",
        "perhaps",
        "possibility",
        "suppose",
        "try",
    ),
    "organization": (
        "first",
        "firstly",
        "second",
        "secondly",
        "third",
        "next",
        "then",
        "finally",
        "lastly",
        "step",
        "steps",
        "begin",
        "start",
        "summarize",
        "summary",
        "list",
        "outline",
        "order",
    ),
}
UNKNOWN = "unknown"
# A label needs its cue in at least this much larger a share of the cluster than of the other clusters.
MIN_LABEL_MARGIN = 0.5
CUE_WINDOW_WORDS = 8  # words of the response before the pivot that count, besides the pivot token itself

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
# Numbers and arithmetic symbols are cues for numerical accuracy.
_NUMERIC = re.compile(r"\d+(?:\.\d+)?|[+*/×÷=]|(?<![^\s\d])-(?=[\s\d])")


@dataclass
class SteeringSettings:
    """Options of the steering and control-vector exports (CLI flags of the same names)."""

    layer_nums: list[int] | None = None
    select_layer: int | None = None
    num_clusters: int = options.checked(10, "count")
    pca_components: int = options.checked(50, "count")
    batch_size: int = options.checked(8, "count")
    min_prob_delta: float = options.checked(0.1, "unit")
    seed: int = 42

    def validate(self) -> None:
        options.check(self)


def default_layers(num_layers: int) -> list[int]:
    """:data:`DEFAULT_LAYER_FRACTIONS` of the depth, as layer numbers in 1..num_layers-1."""
    top = max(1, num_layers - 1)
    return list(dict.fromkeys(min(top, max(1, int(f * num_layers + 0.5))) for f in DEFAULT_LAYER_FRACTIONS))


class _Enough(Exception):
    """Raised by the last hook that is needed: the layers above it are not computed."""


def context_activations(
    model: Any,
    sequences: Sequence[Sequence[int]],
    layers: Sequence[int],
    *,
    batch_size: int = 8,
    padding_side: str = "right",
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Residual-stream activations at the last token of each sequence, and a baseline.

    Returns ``(last, baseline)``: ``last[L]`` is a float32 array [len(sequences),
    hidden] of the output of decoder layer ``L`` at each sequence's last token;
    ``baseline[L]`` the mean of that output over every token of every sequence
    but its first. Sequences are batched ``batch_size`` at a time (sorted by
    length), padded on ``padding_side`` with an attention mask and position ids
    counted over real tokens only, so each row computes what it would alone.
    """
    import torch

    if padding_side not in ("left", "right"):
        raise ValueError("padding_side must be 'left' or 'right'")
    blocks = decoder_layers(model)
    check_layers(layers, len(blocks))
    device = next(model.parameters()).device
    pad_id = 0
    last = {layer: [None] * len(sequences) for layer in layers}
    sums = {layer: None for layer in layers}
    count = 0
    state: dict[str, Any] = {}
    top = max(layers)

    def hook(layer: int):
        def capture(_module, _inputs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            rows, at, mask = state["rows"], state["at"], state["mask"]
            last_rows = hidden[torch.arange(len(rows), device=hidden.device), at].float().cpu().numpy()
            for j, i in enumerate(rows):
                last[layer][i] = last_rows[j]
            summed = torch.where(mask[..., None], hidden.float(), 0.0).sum(dim=(0, 1)).cpu().numpy()
            sums[layer] = summed if sums[layer] is None else sums[layer] + summed
            if layer == top:
                raise _Enough

        return capture

    handles = [blocks[layer].register_forward_hook(hook(layer)) for layer in layers]
    base = model.get_decoder() if hasattr(model, "get_decoder") else model
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                width = max(len(sequences[i]) for i in rows)
                ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
                attn = torch.zeros((len(rows), width), dtype=torch.long)
                at = []
                for j, i in enumerate(rows):
                    seq = torch.tensor(list(sequences[i]), dtype=torch.long)
                    if not len(seq):
                        raise PTSError("a pivot has an empty context")
                    lo = width - len(seq) if padding_side == "left" else 0
                    ids[j, lo : lo + len(seq)] = seq
                    attn[j, lo : lo + len(seq)] = 1
                    at.append(lo + len(seq) - 1)
                positions = (attn.cumsum(-1) - 1).clamp(min=0)
                # Every real token but each row's first goes into the baseline.
                mask = attn.bool()
                first = width - attn.sum(-1) if padding_side == "left" else torch.zeros(len(rows), dtype=torch.long)
                mask[torch.arange(len(rows)), first] = False
                count += int(mask.sum())
                state.update(rows=rows, at=torch.tensor(at, device=device), mask=mask.to(device))
                try:
                    base(
                        input_ids=ids.to(device),
                        attention_mask=attn.to(device),
                        position_ids=positions.to(device),
                        use_cache=False,
                    )
                except _Enough:
                    pass
    finally:
        for h in handles:
            h.remove()
    out = {layer: np.stack(rows_).astype(np.float32) for layer, rows_ in last.items()}
    baseline = {layer: (s / max(count, 1)).astype(np.float32) for layer, s in sums.items()}
    return out, baseline


def cluster(vectors: np.ndarray, num_clusters: int, pca_components: int, seed: int) -> np.ndarray:
    """Cluster ids (0..k-1) for the rows of ``vectors``: PCA then k-means, k at most the distinct rows."""
    n = len(vectors)
    if n == 0:
        return np.zeros(0, dtype=int)
    k = min(num_clusters, len(np.unique(vectors, axis=0)))
    if k <= 1:
        return np.zeros(n, dtype=int)
    try:
        from sklearn.cluster import KMeans
        from sklearn.decomposition import PCA
    except ImportError:
        raise PTSError("clustering steering vectors needs scikit-learn: pip install scikit-learn") from None

    x = vectors.astype(np.float64)
    dims = min(pca_components, n, x.shape[1])
    if dims < x.shape[1]:
        x = PCA(n_components=dims, random_state=seed).fit_transform(x)
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    # Number clusters by first appearance, so ids do not depend on k-means' internal order.
    remap = {c: i for i, c in enumerate(dict.fromkeys(labels.tolist()))}
    return np.array([remap[c] for c in labels.tolist()], dtype=int)


def pattern_scores(text: str) -> Counter:
    """Cue counts per pattern in ``text``: whole words and word sequences, plus numbers and arithmetic symbols."""
    words = _WORD.findall(text.lower())
    joined = " " + " ".join(words) + " "
    scores: Counter = Counter()
    for pattern, cues in PATTERNS.items():
        for cue in cues:
            n = joined.count(" " + cue + " ")
            if n:
                scores[pattern] += n
    numeric = len(_NUMERIC.findall(text))
    if numeric:
        scores["numerical_accuracy"] += numeric
    return scores


def cue_text(pivot: PivotalTokenRow, tokenizer: Any) -> str:
    """What a pivot's label is read from: the last words of the response before it, and the pivot token."""
    if pivot.context_ids is not None and pivot.prompt_length is not None:
        response = tokenizer.decode(pivot.context_ids[pivot.prompt_length :], skip_special_tokens=True)
    else:
        response = pivot.pivot_context
    tail = " ".join(response.split()[-CUE_WINDOW_WORDS:])
    return f"{tail} {pivot.pivot_token}" if tail else pivot.pivot_token


def label_clusters(texts: Sequence[str], labels: np.ndarray) -> dict[int, str]:
    """The reasoning pattern of each cluster: the cue its members use more than the rest of the export does.

    A pattern's share in a group is the fraction of its members whose cue text
    has at least one of the pattern's cues. A cluster is labelled with the
    pattern whose share in it is at least one half and exceeds its share among
    the other clusters' members by at least :data:`MIN_LABEL_MARGIN` (the cue
    separates this cluster from the rest), the largest such margin winning;
    ``unknown`` when none does (optillm 0.4.0 then adds at strength 1.0), and
    always with a single cluster (there is nothing to tell it from). A cue that
    every context has, such as digits in arithmetic, therefore labels nothing,
    and no label can cover every record: no cluster can be above the export's
    own share in all of them.
    """
    has = [set(pattern_scores(t)) for t in texts]
    clusters = sorted(set(labels.tolist()))
    out = {c: UNKNOWN for c in clusters}
    if len(clusters) < 2:
        return out
    for c in clusters:
        inside = [h for h, lab in zip(has, labels.tolist()) if lab == c]
        outside = [h for h, lab in zip(has, labels.tolist()) if lab != c]
        best, margin = UNKNOWN, MIN_LABEL_MARGIN - 1e-12
        for pattern in PATTERNS:
            share = sum(pattern in h for h in inside) / len(inside)
            rest = sum(pattern in h for h in outside) / len(outside)
            if share >= 0.5 and share - rest > margin:
                best, margin = pattern, share - rest
        out[c] = best
    return out


def prompt_only(pivot: PivotalTokenRow, tokenizer: Any) -> bool:
    """Is the pivot's context only the prompt (its response so far empty or blank)?"""
    if pivot.prompt_length is not None and pivot.context_ids is not None:
        response = tokenizer.decode(pivot.context_ids[pivot.prompt_length :], skip_special_tokens=False)
        return not response.strip()
    from pts.export.records import generation_suffix

    suffix = generation_suffix(tokenizer)
    return bool(suffix) and pivot.pivot_context.rstrip().endswith(suffix.rstrip())


@dataclass
class Context:
    """The pivots that share one context (the same token ids), merged into one steering line."""

    pivots: list[PivotalTokenRow]
    index: int  # position of the first of them in the export's input

    @property
    def net_delta(self) -> float:
        return sum(p.prob_delta for p in self.pivots)

    @property
    def lead(self) -> PivotalTokenRow:
        """The strongest pivot on the side of the net change: its fields describe the line."""
        side = [p for p in self.pivots if (p.prob_delta > 0) == (self.net_delta > 0)]
        return max(side, key=lambda p: abs(p.prob_delta))


def merge_contexts(pivots: Sequence[PivotalTokenRow], tokenizer: Any) -> tuple[list[Context], dict[str, int]]:
    """One :class:`Context` per distinct context of ``pivots``, and how many pivots were left out and why.

    Left out: pivots whose context is only the prompt (:func:`prompt_only`),
    and contexts whose pivots' changes sum to zero (no side to steer toward).
    """
    groups: dict[tuple[int, ...], Context] = {}
    skipped = {"prompt_only": 0, "cancelled": 0}
    for i, p in enumerate(pivots):
        if prompt_only(p, tokenizer):
            skipped["prompt_only"] += 1
            continue
        groups.setdefault(tuple(p.context_ids), Context([], i)).pivots.append(p)
    kept = []
    for ctx in groups.values():
        if abs(ctx.net_delta) < 1e-12:
            skipped["cancelled"] += len(ctx.pivots)
        else:
            kept.append(ctx)
    return kept, skipped


def context_decision(ctx: Context, min_samples: int = 2, min_delta: float = 0.1) -> Decision:
    """The decision a context's line steers: its lead pivot's (:func:`pts.steering.directions.decision_tokens`);
    a side the lead's rollouts did not measure is taken from a pivot of the other sign at the same context."""
    from pts.steering.directions import decision_tokens

    d = decision_tokens(ctx.lead, min_samples, min_delta)
    for q in ctx.pivots:
        if q.is_positive and d.success_id is None:
            d.success_id, d.success_token = q.pivot_token_id, q.pivot_token
        elif not q.is_positive and d.failure_id is None:
            d.failure_id, d.failure_token = q.pivot_token_id, q.pivot_token
    return d


def steering_records(
    contexts: Sequence[Context],
    tokenizer: Any,
    decisions: Sequence[Decision],
    grads: np.ndarray,
    residuals: np.ndarray,
    layer: int,
    settings: SteeringSettings,
    *,
    dtype: str = "float32",
    gains: dict[int, float] | None = None,
) -> list[dict[str, Any]]:
    """The output lines for ``contexts`` (row i of ``grads`` / ``residuals`` belongs to context i).

    ``grads`` are the decision gradients at ``layer``
    (:func:`pts.steering.directions.decision_gradients`), ``residuals`` the
    residual stream there; ``dtype`` is the dtype they were computed in;
    ``gains`` the median gain per unit norm of each layer measured (written on
    every line so the choice of layer can be checked). See the module docstring.
    """
    steer = unit_rows(grads)
    labels = cluster(steer, settings.num_clusters, settings.pca_components, settings.seed)
    patterns = label_clusters([cue_text(c.lead, tokenizer) for c in contexts], labels)
    records = []
    for c in sorted(set(labels.tolist())):
        members = labels == c
        centre = steer[members].mean(axis=0)
        for i in np.flatnonzero(members):
            ctx, d = contexts[i], decisions[i]
            p = ctx.lead
            records.append(
                (
                    i,
                    {
                        **p.original_fields(),
                        "steering_vector": steer[i].tolist(),
                        "adds_toward_success": True,
                        "direction_method": "decision_gradient",
                        "objective": d.objective,
                        "success_token_id": d.success_id,
                        "success_token": d.success_token if d.success_id is not None else None,
                        "failure_token_id": d.failure_id,
                        "failure_token": d.failure_token if d.failure_id is not None else None,
                        "gain_per_unit_norm": float(np.linalg.norm(grads[i])),
                        "residual_norm": float(np.linalg.norm(residuals[i])),
                        "cluster_id": int(c),
                        "reasoning_pattern": patterns[c],
                        "cluster_vector": centre.tolist(),
                        "steering_layer": int(layer),
                        "layer_gains": {str(k): v for k, v in sorted((gains or {}).items())},
                        "activation_dtype": dtype,
                        "activation": residuals[i].tolist(),
                        "pivot_context_ids": list(p.context_ids),  # lets `pts steer` match contexts on exact ids
                        "activation_position": len(p.context_ids) - 1,
                        "retokenized": p.retokenized,
                        "pivot_id": p.id,
                        "dataset_id": p.dataset_id,
                        "dataset_item_id": p.dataset_item_id,
                        "pivots": [
                            {
                                "pivot_id": q.id,
                                "pivot_token": q.pivot_token,
                                "pivot_token_id": q.pivot_token_id,
                                "prob_after": q.prob_after,
                                "prob_delta": q.prob_delta,
                                "is_positive": q.is_positive,
                            }
                            for q in ctx.pivots
                        ],
                    },
                )
            )
    return [r for _, r in sorted(records, key=lambda x: x[0])]
