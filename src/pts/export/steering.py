"""Steering vectors from pivotal tokens, in the fields optillm's autothink reads.

For each pivot the residual stream is read at the last context token, the
position whose output predicts the pivot token, as the output of decoder
layer ``L`` (``model.model.layers[L]``, 0-based: the module optillm hooks to
steer at ``steering_layer = L``; HF's ``hidden_states[L + 1]``). The forward
pass runs on the exact token ids of the context (recorded by ``pts run``; the
original tool's text contexts are tokenized again and marked ``retokenized``),
batched with an attention mask and per-row position ids, so padding changes
nothing.

Fields of each output line:

- the original tool's ``query, pivot_context, pivot_token, pivot_token_id,
  prob_before, prob_after, prob_delta, is_positive, model_id, task_type``;
- ``steering_vector``: the activation minus the mean activation of all
  context tokens of the export (first token of each context left out: its
  residual is an attention sink, orders of magnitude larger) at that layer.
  optillm normalises the vector and adds it (subtracts it for a negative
  pivot); a raw activation is dominated by what every position shares, so
  normalised it points nearly the same way for every pivot;
- ``activation``: the raw activation, ``layer_activations``: the raw
  activation at every exported layer (keys are layer numbers as text);
- ``cluster_id`` / ``cluster_vector``: k-means (scikit-learn) on the steering
  vectors after PCA to ``pca_components`` dimensions; the cluster vector is the
  mean steering vector of the cluster (in the full space). Fewer pivots than
  ``num_clusters`` just give fewer clusters;
- ``contrastive_vector``: mean activation of the cluster's positive pivots
  minus that of its negative ones; ``contrastive_scope`` says ``"cluster"``,
  ``"overall"`` (the cluster lacks one side, so the whole export's difference
  is used) or ``"none"`` (the export has only one side: null vector);
- ``reasoning_pattern``: one of :data:`PATTERNS` or ``"unknown"``, the
  cluster's most frequent cue (see :func:`pattern_scores`);
- ``steering_layer`` and ``activation_position`` (index of the token read).
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
from pts.export.records import Pivot

log = logging.getLogger(__name__)

# Default layers, as fractions of the model's depth: the original tool's fixed 19 was for 28-layer models.
DEFAULT_LAYER_FRACTIONS = (0.6, 0.75, 0.9)

# optillm's autothink vocabulary (its pattern_strengths keys; "unknown" is its fallback). Cues are whole
# words or word sequences, matched on word boundaries: "so" never matches inside "also".
PATTERNS: dict[str, tuple[str, ...]] = {
    "depth_and_thoroughness": (
        "therefore", "thus", "hence", "so", "however", "wait", "think", "analyze", "analyse", "furthermore",
        "moreover", "additionally", "consider", "carefully", "careful", "detail", "detailed", "thorough",
        "deeper", "examine", "let's think", "in other words",
    ),
    "numerical_accuracy": (
        "calculate", "calculation", "compute", "computation", "add", "adding", "sum", "total", "subtract",
        "minus", "plus", "multiply", "times", "divide", "divided", "equals", "equal", "number", "digit",
        "result", "answer", "value",
    ),
    "self_correction": (
        "actually", "mistake", "wrong", "incorrect", "error", "oops", "sorry", "reconsider", "recheck",
        "let me reconsider", "double check", "verify", "correction", "revise", "fix",
    ),
    "exploration": (
        "alternatively", "alternative", "instead", "approach", "method", "strategy", "option", "another",
        "different", "what if", "maybe", "perhaps", "possibility", "suppose", "try",
    ),
    "organization": (
        "first", "firstly", "second", "secondly", "third", "next", "then", "finally", "lastly", "step", "steps",
        "begin", "start", "summarize", "summary", "list", "outline", "order",
    ),
}
UNKNOWN = "unknown"
CUE_WINDOW_WORDS = 8  # words of the response before the pivot that count, besides the pivot token itself

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
# Numbers and arithmetic symbols are cues for numerical accuracy.
_NUMERIC = re.compile(r"\d+(?:\.\d+)?|[+*/×÷=]|(?<![^\s\d])-(?=[\s\d])")


@dataclass
class SteeringSettings:
    """Options of the steering and control-vector exports (CLI flags of the same names)."""

    layer_nums: list[int] | None = None
    select_layer: int | None = None
    num_clusters: int = 10
    pca_components: int = 50
    batch_size: int = 8
    min_prob_delta: float = 0.1
    seed: int = 42

    def validate(self) -> None:
        options.finite(self)
        options.at_least_one(self, "num_clusters", "pca_components", "batch_size")
        options.unit_interval(self, "min_prob_delta")


def parse_layers(values: Sequence[str] | str | None) -> list[int] | None:
    """Layer numbers from ``19,23,27``, ``19 23 27`` (several arguments) or ranges like ``10-20``."""
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    out: list[int] = []
    for value in values:
        for part in filter(None, re.split(r"[,\s]+", value.strip())):
            lo, dash, hi = part.partition("-")
            try:
                span = range(int(lo), int(hi) + 1) if dash and lo else [int(part)]
            except ValueError:
                raise PTSError(f"--layer-nums: {part!r} is not a layer number or range (write 19,23,27 or 10-20)") from None
            out.extend(span)
    if not out:
        raise PTSError("--layer-nums is empty")
    return list(dict.fromkeys(out))


def decoder_layers(model: Any) -> Sequence[Any]:
    """The model's decoder blocks, in order (the modules whose outputs are the residual stream)."""
    for path in ("model.layers", "model.language_model.layers", "model.decoder.layers", "transformer.h",
                 "gpt_neox.layers", "layers"):
        obj = model
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if obj is not None and hasattr(obj, "__len__") and len(obj) > 0:
            return obj
    raise PTSError(f"cannot find the decoder layers of {type(model).__name__}")


def default_layers(num_layers: int) -> list[int]:
    """:data:`DEFAULT_LAYER_FRACTIONS` of the depth, as layer numbers in 1..num_layers-1."""
    top = max(1, num_layers - 1)
    return list(dict.fromkeys(min(top, max(1, int(f * num_layers + 0.5))) for f in DEFAULT_LAYER_FRACTIONS))


def check_layers(layers: Sequence[int], num_layers: int) -> None:
    bad = [layer for layer in layers if not 0 <= layer < num_layers]
    if bad:
        raise PTSError(f"layer {bad[0]} does not exist: this model has layers 0..{num_layers - 1}")


class _Enough(Exception):
    """Raised by the last hook that is needed: the layers above it are not computed."""


def context_activations(model: Any, sequences: Sequence[Sequence[int]], layers: Sequence[int], *,
                        batch_size: int = 8, padding_side: str = "right",
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
                    base(input_ids=ids.to(device), attention_mask=attn.to(device), position_ids=positions.to(device),
                         use_cache=False)
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


def cue_text(pivot: Pivot, tokenizer: Any) -> str:
    """What a pivot's label is read from: the last words of the response before it, and the pivot token."""
    if pivot.context_ids is not None and pivot.prompt_length is not None:
        response = tokenizer.decode(pivot.context_ids[pivot.prompt_length:], skip_special_tokens=True)
    else:
        response = pivot.pivot_context
    tail = " ".join(response.split()[-CUE_WINDOW_WORDS:])
    return f"{tail} {pivot.pivot_token}" if tail else pivot.pivot_token


def label_clusters(texts: Sequence[str], labels: np.ndarray) -> dict[int, str]:
    """The reasoning pattern of each cluster: its members' most frequent cue; ``unknown`` when none has one."""
    totals: dict[int, Counter] = {}
    for text, c in zip(texts, labels.tolist()):
        totals.setdefault(c, Counter()).update(pattern_scores(text))
    order = list(PATTERNS)
    out = {}
    for c, scores in totals.items():
        best = max(order, key=lambda p: (scores[p], -order.index(p)))
        out[c] = best if scores[best] > 0 else UNKNOWN
    return out


def contrast(acts: np.ndarray, positive: np.ndarray) -> np.ndarray | None:
    """Mean activation of the positive rows minus that of the negative ones; None without both."""
    if positive.all() or not positive.any():
        return None
    return (acts[positive].mean(axis=0) - acts[~positive].mean(axis=0)).astype(np.float32)


def steering_records(pivots: Sequence[Pivot], tokenizer: Any, activations: dict[int, np.ndarray],
                     baseline: dict[int, np.ndarray], layer: int, settings: SteeringSettings) -> list[dict[str, Any]]:
    """The output lines for ``pivots`` from their activations (see the module docstring)."""
    acts = activations[layer]
    steer = acts - baseline[layer]
    labels = cluster(steer, settings.num_clusters, settings.pca_components, settings.seed)
    patterns = label_clusters([cue_text(p, tokenizer) for p in pivots], labels)
    positive = np.array([p.is_positive for p in pivots], dtype=bool)
    overall = contrast(acts, positive)
    records = []
    for c in sorted(set(labels.tolist())):
        members = labels == c
        centre = steer[members].mean(axis=0)
        own = contrast(acts[members], positive[members])
        direction, scope = (own, "cluster") if own is not None else (overall, "overall" if overall is not None else "none")
        for i in np.flatnonzero(members):
            p = pivots[i]
            records.append((i, {
                **p.original_fields(),
                "steering_vector": steer[i].tolist(),
                "cluster_id": int(c),
                "reasoning_pattern": patterns[c],
                "cluster_vector": centre.tolist(),
                "steering_layer": int(layer),
                "activation": acts[i].tolist(),
                "contrastive_vector": None if direction is None else direction.tolist(),
                "contrastive_scope": scope,
                "layer_activations": {str(L): activations[L][i].tolist() for L in sorted(activations)},
                "pivot_context_ids": list(p.context_ids),  # lets `pts steer` match contexts on exact ids
                "activation_position": len(p.context_ids) - 1,
                "retokenized": p.retokenized,
                "pivot_id": p.id,
                "dataset_id": p.dataset_id,
                "dataset_item_id": p.dataset_item_id,
            }))
    return [r for _, r in sorted(records, key=lambda x: x[0])]
