"""Generate with steering vectors or control vectors added to the residual stream, and measure what they do.

Two kinds of vectors, in the formats other tools read:

* **Steering vectors** (JSONL, the optillm autothink dataset shape written by
  ``pts export --format steering``): one vector per pivotal token with its
  ``pivot_context``, ``is_positive``, ``prob_delta`` and ``steering_layer``.
  Applied the way optillm's ``autothink/steering.py`` does: the tokens seen so
  far are matched against the tail of every pivot context (its
  ``pivot_context_ids`` when the row has them, else the re-tokenized
  ``pivot_context`` text as optillm does; the context cut to its last 256
  tokens, plus its last 4, 8 and 12 tokens; a history shorter than a context
  matches on its last ``max(4, len/2)`` tokens; the longest match wins), and
  the matched vector, normalised to unit length and times ``strength``, is
  added to the output of decoder layer ``steering_layer`` at the position being
  processed; a negative pivot's vector (``is_positive: false``) is subtracted,
  unless the row says ``adds_toward_success: true`` (pts export's files: the
  vector already points toward success, so it is always added, as optillm does).
  Where pts differs: optillm hooks one configured layer (``target_layer``) for
  every vector, multiplies the strength by ``|prob_delta|`` clipped to
  [0.1, 2] (``scale_by_delta`` here) and caps the product at 3; pts adds each
  vector at its own ``steering_layer`` with the strength as given. optillm
  matches once, on the prompt, and keeps that vector for the whole reply
  (``match="once"``); by default pts matches again after every generated token
  and keeps the latest match (``"continuous"``), since pivot contexts end
  inside replies; ``"local"`` adds a vector only at positions whose context
  matches it (the position that predicts the pivot token).
* **Control vectors** (GGUF, the format repeng's ``ControlVector.export_gguf``
  writes and llama.cpp loads with ``--control-vector``: architecture
  ``controlvector``, one F32 tensor ``direction.<n>`` per layer). Applied as
  llama.cpp does: ``strength * direction.<n>`` (not normalised) is added to the
  output of layer ``n`` at every position.

Layer numbers, everywhere in pts: layer ``n`` is the decoder block
``model.model.layers[n]`` (0-based), and a vector for layer ``n`` is added to
that block's output, which is ``output_hidden_states[n + 1]`` of a Hugging Face
forward pass. This is repeng's numbering (it reads ``hidden_states[layer + 1]``
and exports ``direction.<layer>``), llama.cpp's (it adds ``direction.<il>``
after block ``il``; it rejects ``direction.0``) and optillm's (``target_layer``
indexes ``model.model.layers``).

Library use::

    from pts.steer import SteerConfig, evaluate
    report = evaluate(SteerConfig(steering_path="steering.jsonl", max_examples=10))
    print(report.format())
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pts import options
from pts.engines.base import SamplingParams
from pts.errors import PTSError
from pts.export.steering import decoder_layers
from pts.records import stable_seed
from pts.runner import DEFAULT_MODEL
from pts.stats import paired_bootstrap_interval
from pts.store import atomic_write, check_output_path, read_jsonl
from pts.tasks.sources import DEFAULT_DATASET

if TYPE_CHECKING:
    import torch

    # What a steering adds at one layer: (to every position, to the last position), each [rows, hidden] or None.
    LayerDelta = tuple[torch.Tensor | None, torch.Tensor | None]

    from pts.models import LoadedModel
    from pts.tasks.task import Task

log = logging.getLogger(__name__)

DEFAULT_STEERING_STRENGTH = 2.0  # optillm's SteeringVectorManager.default_strength
DEFAULT_CONTROL_STRENGTH = 1.0  # llama.cpp's --control-vector scale
MAX_CONTEXT_TOKENS = 256  # optillm keeps the last 256 tokens of each context and of the history
SUFFIX_LENGTHS = (4, 8, 12)  # optillm also indexes these tails of every context
MIN_MATCH = 4  # optillm matches nothing on fewer tokens
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95

MatchMode = Literal["continuous", "once", "local"]
MATCH_MODES = ("continuous", "once", "local")
MATCH_ON = ("auto", "ids", "text")


# ---------------------------------------------------------------------------------------------
# Loading


@dataclass
class SteeringVector:
    """One steering vector from an optillm-style JSONL row.

    ``layer`` is the row's ``steering_layer`` (None when absent); ``context_ids``
    are the exact ``pivot_context_ids`` of a pts record when the row has them.
    """

    vector: list[float]
    layer: int | None
    is_positive: bool = True
    adds_toward_success: bool = False  # the vector already points toward success: add it whatever the pivot's sign
    pivot_context: str = ""
    context_ids: list[int] | None = None
    pivot_token: str = ""
    prob_delta: float = 0.0
    reasoning_pattern: str = "unknown"
    cluster_id: int = -1
    model_id: str = ""
    line: int = 0


@dataclass
class ControlVector:
    """A repeng / llama.cpp control vector: ``directions[n]`` is added to the output of decoder layer ``n``."""

    directions: dict[int, list[float]]
    model_hint: str = ""

    @property
    def dim(self) -> int:
        return len(next(iter(self.directions.values())))


def _as_float_list(value: Any, where: str) -> list[float]:
    """A vector given as a list, a JSON string or a comma-separated string (optillm accepts all three)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            try:
                value = [float(x) for x in value.strip().strip("[]").split(",") if x.strip()]
            except ValueError:
                raise PTSError(f"{where}: the vector is not a list of numbers") from None
    if not isinstance(value, (list, tuple)) or not value:
        raise PTSError(f"{where}: the vector is not a non-empty list of numbers")
    try:
        out = [float(x) for x in value]
    except (TypeError, ValueError):
        raise PTSError(f"{where}: the vector is not a list of numbers") from None
    if not all(math.isfinite(x) for x in out):
        raise PTSError(f"{where}: the vector holds a NaN or infinite value")
    return out


def _as_int(value: Any, where: str, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PTSError(f"{where}: {name} must be an integer, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise PTSError(f"{where}: {name} must be an integer, got {value!r}") from None
    if not number.is_integer():
        raise PTSError(f"{where}: {name} must be an integer, got {value!r}")
    return int(number)


def load_steering_vectors(path: str | Path, vector_field: str = "steering_vector",
                          layer: int | None = None) -> list[SteeringVector]:
    """Read steering vectors from a JSONL file in optillm's autothink shape.

    ``vector_field`` names the field that holds the vector (``steering_vector``,
    or e.g. ``cluster_vector``); it may hold a list of floats, a JSON string, or
    an object mapping layer numbers to lists (then ``layer`` or the row's
    ``steering_layer`` picks one). A row without ``is_positive`` (files of the
    original pts tool) takes its sign from ``prob_delta``. Rows whose vector is
    null or all zeros are dropped with a warning (they have no direction). Raises
    PTSError on a missing or malformed file, a row without the vector, or rows
    of different sizes.
    """
    p = Path(path)
    if not p.is_file():
        raise PTSError(f"steering vector file {p} does not exist" if not p.exists() else f"{p} is not a file")
    rows = read_jsonl(p)
    if not rows:
        raise PTSError(f"{p} holds no steering vectors")
    out: list[SteeringVector] = []
    dim = None
    empty = 0
    for n, row in enumerate(rows, 1):
        where = f"{p} row {n}"
        if vector_field not in row:
            raise PTSError(f"{where} has no '{vector_field}' field (fields: {', '.join(sorted(row))[:200]})")
        row_layer = _as_int(row.get("steering_layer"), where, "steering_layer")
        value = row[vector_field]
        if value is None:  # e.g. pts export's contrastive_vector when the export has one side only
            empty += 1
            continue
        if isinstance(value, dict):
            want = layer if layer is not None else row_layer
            by_layer = {_as_int(k, where, "a layer key"): v for k, v in value.items()}
            if want is None or want not in by_layer:
                raise PTSError(f"{where}: '{vector_field}' has vectors for layers {sorted(by_layer)}; "
                               f"pick one with --layer")
            value, row_layer = by_layer[want], want
        vec = _as_float_list(value, where)
        if dim is None:
            dim = len(vec)
        elif len(vec) != dim:
            raise PTSError(f"{where}: vector has {len(vec)} dimensions, earlier rows have {dim}")
        if not any(vec):
            empty += 1
            continue
        prob_delta = row.get("prob_delta")
        numeric = isinstance(prob_delta, (int, float)) and not isinstance(prob_delta, bool)
        prob_delta = float(prob_delta) if numeric else 0.0
        if "is_positive" in row:
            positive = row["is_positive"]
            if isinstance(positive, str):
                positive = positive.strip().lower() in ("true", "1", "yes")
            positive = bool(positive)
        else:
            positive = prob_delta >= 0
        ids = row.get("pivot_context_ids")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(t, int) and not isinstance(t, bool)
                                                                   for t in ids)):
            raise PTSError(f"{where}: pivot_context_ids must be a list of token ids")
        out.append(SteeringVector(
            vector=vec, layer=row_layer, is_positive=positive, adds_toward_success=row.get("adds_toward_success") is True,
            pivot_context=str(row.get("pivot_context") or ""),
            context_ids=ids or None, pivot_token=str(row.get("pivot_token") or ""), prob_delta=prob_delta,
            reasoning_pattern=str(row.get("reasoning_pattern") or "unknown"),
            cluster_id=_as_int(row.get("cluster_id"), where, "cluster_id") if row.get("cluster_id") is not None else -1,
            model_id=str(row.get("model_id") or ""), line=n,
        ))
    if empty:
        log.warning("%s: dropped %d rows whose '%s' is null or all zeros (no direction)", p, empty, vector_field)
    if not out:
        raise PTSError(f"{p}: every '{vector_field}' is null or all zeros")
    return out


def load_control_vector(path: str | Path) -> ControlVector:
    """Read a GGUF control vector (architecture ``controlvector``, tensors ``direction.<layer>``).

    Several tensors for one layer are summed, as llama.cpp does. Raises
    PTSError on a missing file, a file that is not GGUF, another architecture,
    no direction tensors, a bad tensor name, or directions of different sizes.
    """
    p = Path(path)
    if not p.is_file():
        raise PTSError(f"control vector file {p} does not exist" if not p.exists() else f"{p} is not a file")
    try:
        import gguf
    except ImportError:
        raise PTSError("reading GGUF control vectors needs the gguf package: pip install gguf") from None
    try:
        reader = gguf.GGUFReader(str(p))
    except Exception as e:  # noqa: BLE001 - the reader raises ValueError, struct.error, IndexError... on non-GGUF bytes
        reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]}"
        raise PTSError(f"{p} is not a readable GGUF file ({reason})") from None
    arch_field = reader.get_field("general.architecture")
    arch = arch_field.contents() if arch_field is not None else None
    if arch != "controlvector":
        raise PTSError(f"{p} is a GGUF file of architecture {arch!r}, not a control vector ('controlvector')")
    hint_field = reader.get_field("controlvector.model_hint")
    hint = hint_field.contents() if hint_field is not None else ""
    directions: dict[int, list[float]] = {}
    for tensor in reader.tensors:
        if not tensor.name.startswith("direction."):
            log.warning("%s: ignoring tensor %s (not direction.<layer>)", p, tensor.name)
            continue
        try:
            n = int(tensor.name.split(".", 1)[1])
        except ValueError:
            raise PTSError(f"{p}: tensor name {tensor.name!r} is not direction.<layer number>") from None
        if n < 0:
            raise PTSError(f"{p}: tensor {tensor.name} names a negative layer")
        vec = [float(x) for x in tensor.data.reshape(-1).tolist()]
        if not all(math.isfinite(x) for x in vec):
            raise PTSError(f"{p}: tensor {tensor.name} holds a NaN or infinite value")
        if n in directions:
            vec = [a + b for a, b in zip(directions[n], vec)]
        directions[n] = vec
    if not directions:
        raise PTSError(f"{p} has no direction.<layer> tensors")
    dims = {len(v) for v in directions.values()}
    if len(dims) > 1:
        raise PTSError(f"{p}: directions of different sizes {sorted(dims)}")
    if 0 in directions:
        log.warning("%s has direction.0: pts applies it to the output of layer 0, llama.cpp refuses such a file", p)
    return ControlVector(dict(sorted(directions.items())), str(hint))


def parse_layers(text: str | int | None) -> list[int] | None:
    """``"15"``, ``"3,5,7"``, ``"3 5 7"`` or ``"10-14"`` (inclusive) -> list of ints; None stays None."""
    if text is None or str(text).strip() == "":
        return None
    layers: list[int] = []
    try:
        for part in str(text).replace(",", " ").split():
            lo, sep, hi = part.partition("-")
            layers += list(range(int(lo), int(hi) + 1)) if sep else [int(part)]
    except ValueError:
        raise PTSError(f"--layer must be layer numbers like 15, 3,5,7 or 10-14; got {text!r}") from None
    if not layers:
        raise PTSError(f"--layer names no layer: {text!r}")
    return list(dict.fromkeys(layers))


# ---------------------------------------------------------------------------------------------
# The model side: where to hook, and the hooks


def hidden_size(model: Any) -> int:
    return int(model.get_input_embeddings().weight.shape[1])


def check_layers(model: Any, layers: Sequence[int], what: str) -> None:
    count = len(decoder_layers(model))
    bad = [n for n in layers if not 0 <= n < count]
    if bad:
        raise PTSError(f"{what} layer {bad[0]} is out of range: the model has {count} layers (0..{count - 1})")


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

    def __init__(self, contexts: Sequence[Sequence[int]], max_tokens: int = MAX_CONTEXT_TOKENS,
                 suffix_lengths: Sequence[int] = SUFFIX_LENGTHS, min_history: int = MIN_MATCH):
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


@dataclass
class RowSteer:
    """Steering state of one generated row: its token history and the vector now active (an index, or None)."""

    enabled: bool
    history: list[int]
    active: int | None = None
    positions: int = 0
    used: list[int] = field(default_factory=list)

    def activate(self, index: int | None) -> None:
        self.active = index
        if index is not None and index not in self.used:
            self.used.append(index)


class ContextSteering:
    """Steering vectors applied where the generated context matches their pivot context (see module doc).

    ``vectors[k]`` is added at ``layers_of[k]`` as ``sign * scale * v / |v|``:
    sign -1 for negative pivots, scale ``strength`` (times ``|prob_delta|``
    clipped to [0.1, 2], as optillm does, when ``scale_by_delta``).
    ``contexts[k]`` are the token ids its pivot context is matched on.
    """

    def __init__(self, vectors: Sequence[SteeringVector], contexts: Sequence[Sequence[int]],
                 layers_of: Sequence[int], strength: float, match: MatchMode = "continuous",
                 scale_by_delta: bool = False):
        if match not in MATCH_MODES:
            raise PTSError(f"--match must be one of {', '.join(MATCH_MODES)}, got {match!r}")
        self.vectors = list(vectors)
        self.layers_of = [int(n) for n in layers_of]
        self.strength = float(strength)
        self.mode = match
        self.scale_by_delta = scale_by_delta
        self.matcher = SuffixMatcher(contexts)
        self.layers = sorted(set(self.layers_of))
        self._tables: dict[tuple, tuple] = {}

    def scale(self, k: int) -> float:
        v = self.vectors[k]
        s = self.strength
        if self.scale_by_delta:
            s *= min(max(abs(v.prob_delta), 0.1), 2.0)
        return s if v.is_positive or v.adds_toward_success else -s

    def start(self, prompt_ids: Sequence[int], enabled: bool) -> RowSteer:
        row = RowSteer(enabled, list(prompt_ids))
        if enabled:
            row.activate(self.matcher.match(row.history))
        return row

    def observe(self, row: RowSteer, token: int) -> None:
        row.history.append(int(token))
        if not row.enabled or self.mode == "once":
            return
        found = self.matcher.match(row.history)
        if self.mode == "local" or found is not None:  # local: a non-matching position clears the vector
            row.activate(found)

    def is_active(self, row: RowSteer) -> bool:
        return row.enabled and row.active is not None

    def _table(self, device, dtype):
        import torch

        key = (str(device), dtype)
        if key not in self._tables:
            vecs = torch.tensor([v.vector for v in self.vectors], dtype=torch.float32)
            unit = torch.nn.functional.normalize(vecs, dim=-1)
            scales = torch.tensor([self.scale(k) for k in range(len(self.vectors))], dtype=torch.float32)
            # row 0 is "no vector": rows without an active vector add exact zeros
            table = torch.cat([torch.zeros(1, vecs.shape[1]), unit * scales[:, None]]).to(device=device, dtype=dtype)
            layer_of = torch.tensor([-1, *self.layers_of], device=device)
            self._tables[key] = (table, layer_of)
        return self._tables[key]

    def tensors(self, rows: Sequence[RowSteer], device, dtype) -> dict[int, LayerDelta]:
        """Per steered layer: (added at every position, added at the last position), each [rows, hidden] or None."""
        import torch

        table, layer_of = self._table(device, dtype)
        idx = torch.tensor([r.active + 1 if self.is_active(r) else 0 for r in rows], device=device)
        return {n: (None, table[torch.where(layer_of[idx] == n, idx, 0)]) for n in self.layers}


class ControlSteering:
    """A control vector: ``strength * directions[n]`` added to the output of layer ``n`` at every position."""

    def __init__(self, control: ControlVector, strength: float, layers: Sequence[int] | None = None):
        self.control = control
        self.strength = float(strength)
        self.layers = sorted(layers if layers is not None else control.directions)
        self._tables: dict[tuple, dict] = {}

    def start(self, prompt_ids: Sequence[int], enabled: bool) -> RowSteer:
        return RowSteer(enabled, [], active=0 if enabled else None)

    def observe(self, row: RowSteer, token: int) -> None:
        pass

    def is_active(self, row: RowSteer) -> bool:
        return row.enabled

    def tensors(self, rows: Sequence[RowSteer], device, dtype) -> dict[int, LayerDelta]:
        """Per layer of the vector: (``strength * direction`` for steered rows, zeros for others; None)."""
        import torch

        key = (str(device), dtype)
        if key not in self._tables:
            self._tables[key] = {n: (self.strength * torch.tensor(self.control.directions[n], dtype=torch.float32))
                                 .to(device=device, dtype=dtype) for n in self.layers}
        gate = torch.tensor([r.enabled for r in rows], device=device, dtype=dtype)[:, None]
        return {n: (gate * d[None, :], None) for n, d in self._tables[key].items()}


Steering = ContextSteering | ControlSteering


class SteeringHooks:
    """Forward hooks on decoder layers that add the tensors of :meth:`set` to the layer outputs.

    Use as a context manager; the hooks are removed on exit. ``norms[n]`` keeps
    the mean L2 norm of layer ``n``'s unsteered output at the last position of
    every forward (the scale a strength should be compared with).
    """

    def __init__(self, model: Any, layers: Sequence[int]):
        self.blocks = decoder_layers(model)
        self.layers = list(layers)
        self.current: dict[int, tuple] = {}
        self.norms: dict[int, list[float]] = {n: [0.0, 0] for n in self.layers}
        self._handles: list = []

    def __enter__(self) -> SteeringHooks:  # noqa: PYI034 (typing.Self needs 3.11)
        for n in self.layers:
            self._handles.append(self.blocks[n].register_forward_hook(self._hook(n)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def set(self, tensors: dict[int, tuple]) -> None:
        self.current = tensors

    def mean_norm(self, n: int) -> float:
        total, count = self.norms[n]
        return float(total) / count if count else float("nan")

    def _hook(self, n: int) -> Callable:
        def hook(module, args, output):
            every, last = self.current.get(n, (None, None))
            h = output[0] if isinstance(output, tuple) else output
            stats = self.norms[n]
            stats[0] = stats[0] + h[:, -1].float().norm(dim=-1).sum()  # a tensor: no device sync per layer
            stats[1] += h.shape[0]
            if every is None and last is None:
                return None
            if every is not None:
                h = h + every[:, None, :].to(h.dtype)
            else:
                h = h.clone()
            if last is not None:
                h[:, -1, :] += last.to(h.dtype)
            return (h, *output[1:]) if isinstance(output, tuple) else h
        return hook


# ---------------------------------------------------------------------------------------------
# Generation


@dataclass(frozen=True)
class GenerationRequest:
    """One row to generate: the prompt, the seed of its sampling stream, whether it is steered.

    Two requests with the same prompt and seed draw the same random numbers, so a
    steered row and its unsteered twin differ only where steering changed the
    model's distribution. ``stop`` is an early-stop test on the decoded reply.
    """

    prompt_ids: tuple[int, ...]
    seed: int
    steer: bool = True
    stop: Callable[[str], bool] | None = field(default=None, compare=False)


@dataclass
class Generation:
    """A generated reply: its token ids (EOS kept when emitted), text, why it ended, and where it was steered.

    ``steered_positions`` counts the positions (last prompt position included)
    whose layer output had a vector added; ``vectors`` are the indices of the
    steering vectors that were active at some point, in order.
    """

    token_ids: list[int]
    text: str
    finish_reason: str
    steered_positions: int = 0
    vectors: list[int] = field(default_factory=list)


def generate(model: Any, tokenizer: Any, requests: Sequence[GenerationRequest], steering: Steering | None = None, *,
             max_new_tokens: int, params: SamplingParams, batch_size: int = 64,
             on_done: Callable[[int], None] | None = None, hooks: SteeringHooks | None = None) -> list[Generation]:
    """Sample one reply per request, with ``steering`` added on rows whose ``steer`` is True.

    Rows decode together in batches of ``batch_size`` (left-padded, per-row
    positions); each distinct (prompt, steer) pair is prefilled once and its
    cache shared by its rows; finished rows leave the batch. Each row samples
    from its own generator seeded with its request's seed (temperature, top-k,
    top-p, min-p as in :mod:`pts.engines.hf`). ``on_done(k)`` is called as rows
    finish. Returns the generations in request order.
    """
    import torch

    layers = steering.layers if steering is not None else []
    own = hooks is None
    hooks = hooks or SteeringHooks(model, layers)
    results: list[Generation | None] = [None] * len(requests)
    # keep rows of one prompt together so they share a prefill; otherwise request order
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault((tuple(r.prompt_ids), r.steer), []).append(i)
    order = [i for g in groups.values() for i in g]
    try:
        if own:
            hooks.__enter__()
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                for i, gen in zip(chunk, _generate_batch(model, tokenizer, [requests[i] for i in chunk], steering,
                                                         hooks, max_new_tokens, params)):
                    results[i] = gen
                if on_done:
                    on_done(len(chunk))
    finally:
        if own:
            hooks.__exit__()
            hooks.set({})
    return results  # type: ignore[return-value]


@dataclass
class _Live:
    req: GenerationRequest
    gen: Any
    steer: RowSteer
    tokens: list[int] = field(default_factory=list)
    done: Generation | None = None


def _generate_batch(model, tokenizer, requests: Sequence[GenerationRequest], steering: Steering | None,
                    hooks: SteeringHooks, max_new_tokens: int, params: SamplingParams) -> list[Generation]:
    import torch
    from transformers import DynamicCache

    from pts.engines.hf import GREEDY_BELOW, cache_keyword, eos_ids, sample_tokens

    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    eos = frozenset(eos_ids(model, tokenizer))
    greedy = params.temperature < GREEDY_BELOW

    def start_row(r: GenerationRequest) -> RowSteer:
        if steering is None:
            return RowSteer(False, [])
        return steering.start(r.prompt_ids, r.steer)

    rows = [_Live(r, None if greedy else torch.Generator().manual_seed(int(r.seed) & (2**63 - 1)), start_row(r))
            for r in requests]
    for r in requests:
        if not r.prompt_ids:
            raise ValueError("a prompt must have at least one token")

    # Prefill each distinct (prompt, steer) once, left-padded, then give every row its copy.
    first_row: dict[tuple, _Live] = {}
    for r in rows:
        first_row.setdefault((r.req.prompt_ids, r.req.steer), r)
    keys = list(first_row)
    key_index = {k: j for j, k in enumerate(keys)}
    width = max(len(k[0]) for k in keys)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(keys), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(keys), width), dtype=torch.long)
    for j, (prompt, _) in enumerate(keys):
        ids[j, width - len(prompt):] = torch.tensor(prompt)
        mask[j, width - len(prompt):] = 1
    ids, mask = ids.to(device), mask.to(device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    if steering is not None:
        hooks.set(steering.tensors([first_row[k].steer for k in keys], device, dtype))
    cache = DynamicCache()
    cache_kw = cache_keyword(model)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, **{cache_kw: cache}, use_cache=True,
                logits_to_keep=1)
    index = torch.tensor([key_index[(r.req.prompt_ids, r.req.steer)] for r in rows], device=device)
    if len(keys) != len(rows) or index.tolist() != list(range(len(rows))):
        cache.batch_select_indices(index)
    logits = out.logits[:, -1].float()[index]
    mask, next_pos = mask[index], pos[index, -1] + 1
    if steering is not None:
        for r in rows:
            if steering.is_active(r.steer):
                r.steer.positions += len(r.req.prompt_ids) if isinstance(steering, ControlSteering) else 1

    live = rows
    while True:
        tok, _ = sample_tokens(logits, params, [r.gen for r in live])
        for r, t in zip(live, tok.tolist()):
            _append(r, t, eos, max_new_tokens, tokenizer, steering)
        keep = [i for i, r in enumerate(live) if r.done is None]
        if not keep:
            break
        if len(keep) < len(live):
            sel = torch.tensor(keep, device=device)
            cache.batch_select_indices(sel)
            live, tok, mask, next_pos = [live[i] for i in keep], tok[sel], mask[sel], next_pos[sel]
        mask = torch.cat([mask, mask.new_ones(len(live), 1)], dim=1)
        if steering is not None:
            hooks.set(steering.tensors([r.steer for r in live], device, dtype))
            for r in live:
                r.steer.positions += steering.is_active(r.steer)
        out = model(input_ids=tok[:, None], attention_mask=mask, position_ids=next_pos[:, None],
                    **{cache_kw: cache}, use_cache=True)
        logits = out.logits[:, -1].float()
        next_pos = next_pos + 1
    hooks.set({})
    return [r.done for r in rows]  # type: ignore[misc]


def _append(row: _Live, token: int, eos: frozenset[int], max_new_tokens: int, tokenizer, steering) -> None:
    row.tokens.append(token)
    reason = None
    text = None
    if token in eos:
        reason = "eos"
    elif row.req.stop is not None:
        text = tokenizer.decode(row.tokens, skip_special_tokens=True)
        if row.req.stop(text):
            reason = "stop"
    if reason is None and len(row.tokens) >= max_new_tokens:
        reason = "length"
    if reason is None:
        if steering is not None:
            steering.observe(row.steer, token)
        return
    if text is None:
        text = tokenizer.decode(row.tokens, skip_special_tokens=True)
    row.done = Generation(list(row.tokens), text, reason, row.steer.positions, list(row.steer.used))


# ---------------------------------------------------------------------------------------------
# pts steer: configuration, evaluation, report


@dataclass
class SteerConfig:
    """Every option of ``pts steer``; the CLI flags are these field names with dashes."""

    steering_path: str | None = None
    control_vector: str | None = None
    strength: float | None = None
    layer: str | None = None
    match: str = "continuous"
    match_on: str = "auto"
    vector_field: str = "steering_vector"
    scale_by_delta: bool = False
    query: str | None = None
    model: str = DEFAULT_MODEL
    dataset: str = DEFAULT_DATASET
    config: str | None = None
    split: str = "train"
    query_key: str | None = None
    answer_key: str | None = None
    oracle: str | None = None
    sample_size: int | None = None
    max_examples: int | None = 10
    num_samples: int = 4
    max_new_tokens: int = 512
    system_prompt: str | None = None
    chat_template: bool = True
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    min_p: float = 0.0
    seed: int = 42
    early_stop: bool = True
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 64
    output_path: str | None = None
    progress: bool = True

    def validate(self) -> None:
        """Raise PTSError on options out of range, before anything is loaded."""
        options.finite(self)
        if bool(self.steering_path) == bool(self.control_vector):
            raise PTSError("give exactly one of --steering-path FILE.jsonl and --control-vector FILE.gguf")
        if self.strength is not None and not math.isfinite(self.strength):
            raise PTSError(f"--strength must be a finite number, got {self.strength}")
        if self.match not in MATCH_MODES:
            raise PTSError(f"--match must be one of {', '.join(MATCH_MODES)}, got {self.match!r}")
        if self.match_on not in MATCH_ON:
            raise PTSError(f"--match-on must be one of {', '.join(MATCH_ON)}, got {self.match_on!r}")
        layers = parse_layers(self.layer)
        if layers is not None and any(n < 0 for n in layers):
            raise PTSError(f"--layer must be non-negative layer numbers, got {self.layer!r}")
        if layers is not None and self.steering_path and len(layers) != 1:
            raise PTSError("--layer takes one layer for steering vectors")
        options.at_least_one(self, "num_samples", "max_new_tokens", "batch_size", "sample_size", "max_examples")
        options.sampling(self)
        if self.query is not None and not self.query.strip():
            raise PTSError("--query is empty")

    def sampling(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, min_p=self.min_p)

    @property
    def source(self) -> str:
        return str(self.steering_path or self.control_vector)


def read_vectors(config: SteerConfig) -> list[SteeringVector] | ControlVector:
    """Load the file named by the config (no model needed): steering vectors or a control vector."""
    layers = parse_layers(config.layer)
    if config.steering_path:
        return load_steering_vectors(config.steering_path, config.vector_field, layers[0] if layers else None)
    return load_control_vector(config.control_vector)  # type: ignore[arg-type]


def build_steering(vectors: list[SteeringVector] | ControlVector, model: Any, tokenizer: Any, *,
                   strength: float | None = None, layer: str | int | Sequence[int] | None = None,
                   match: MatchMode = "continuous", match_on: str = "auto", scale_by_delta: bool = False,
                   model_id: str | None = None) -> Steering:
    """Check vectors against the model (hidden size, layer range) and build the steering to generate with.

    Steering vectors are applied at their ``steering_layer``, or at ``layer``
    when given (a file with vectors at several layers keeps only that layer's);
    a control vector is applied at all its layers, or only at ``layer``
    (one or more). ``match_on``: ``ids`` matches on ``pivot_context_ids``
    (exact, pts records), ``text`` re-tokenizes ``pivot_context`` as optillm
    does, ``auto`` uses ids where a row has them. Raises PTSError on any mismatch.
    """
    size = hidden_size(model)
    wanted = [layer] if isinstance(layer, int) else parse_layers(layer) if isinstance(layer, (str, type(None))) \
        else list(layer)
    if isinstance(vectors, ControlVector):
        if vectors.dim != size:
            raise PTSError(f"the control vector has {vectors.dim} dimensions but the model's hidden size is {size}")
        if wanted is not None:
            missing = [n for n in wanted if n not in vectors.directions]
            if missing:
                raise PTSError(f"the control vector has no direction for layer {missing[0]} "
                               f"(it has layers {', '.join(map(str, vectors.directions))})")
        use = wanted if wanted is not None else list(vectors.directions)
        check_layers(model, use, "control vector")
        return ControlSteering(vectors, DEFAULT_CONTROL_STRENGTH if strength is None else strength, use)

    dims = len(vectors[0].vector)
    if dims != size:
        raise PTSError(f"the steering vectors have {dims} dimensions but the model's hidden size is {size}")
    if wanted is not None and len(wanted) != 1:
        raise PTSError("--layer takes one layer for steering vectors")
    override = wanted[0] if wanted else None
    file_layers = sorted({v.layer for v in vectors if v.layer is not None})
    if override is not None and override in file_layers and len(file_layers) > 1:
        vectors = [v for v in vectors if v.layer == override]
    if override is None:
        unplaced = [v for v in vectors if v.layer is None]
        if unplaced:
            raise PTSError(f"steering vector on row {unplaced[0].line} has no steering_layer; pass --layer")
        if len(file_layers) > 1:
            log.warning("steering vectors at layers %s: each is added at its own layer (pass --layer to pick one)",
                        file_layers)
    layers_of = [override if override is not None else int(v.layer) for v in vectors]  # type: ignore[arg-type]
    check_layers(model, sorted(set(layers_of)), "steering")
    ids_of = [v.context_ids if match_on != "text" else None for v in vectors]
    if match_on == "ids" and any(c is None for c in ids_of):
        raise PTSError("--match-on ids needs pivot_context_ids in every row (pts records); use --match-on text")
    contexts = [ids if ids is not None else tokenizer.encode(v.pivot_context, add_special_tokens=False)
                for v, ids in zip(vectors, ids_of)]
    others = sorted({v.model_id for v in vectors if v.model_id and model_id and v.model_id != model_id})
    if others:
        log.warning("steering vectors were made with %s, not %s", ", ".join(others), model_id)
    return ContextSteering(vectors, contexts, layers_of, DEFAULT_STEERING_STRENGTH if strength is None else strength,
                           match=match, scale_by_delta=scale_by_delta)  # type: ignore[arg-type]


def added_norm(steering: Steering, layer: int) -> float:
    """L2 norm of what the steering adds at ``layer`` (before any ``|prob_delta|`` scaling)."""
    if isinstance(steering, ControlSteering):
        return abs(steering.strength) * math.sqrt(sum(x * x for x in steering.control.directions[layer]))
    return abs(steering.strength)


def describe(steering: Steering, source: str) -> str:
    if isinstance(steering, ControlSteering):
        return (f"control vector {source}: layers {_ranges(steering.layers)}, strength {steering.strength:g} "
                f"(added at every position)")
    pos = sum(v.is_positive for v in steering.vectors)
    return (f"{len(steering.vectors)} steering vectors from {source} ({pos} positive, {len(steering.vectors) - pos} "
            f"negative): layer {_ranges(steering.layers)}, strength {steering.strength:g}"
            f"{' x |prob_delta|' if steering.scale_by_delta else ''}, match {steering.mode}")


def _ranges(layers: Sequence[int]) -> str:
    out, run = [], []
    for n in sorted(layers):
        if run and n == run[-1] + 1:
            run.append(n)
        else:
            if run:
                out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
            run = [n]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)


@dataclass
class PairedSample:
    """One (query, sample) pair: the same prompt and random stream, generated without and with steering."""

    task_index: int
    sample: int
    seed: int
    base: Generation
    steered: Generation
    base_correct: bool | None = None
    steered_correct: bool | None = None


@dataclass
class SteerReport:
    """Accuracy without and with steering on the same prompts and seeds."""

    description: str
    model_id: str
    dataset_id: str
    queries: int
    samples: int
    max_new_tokens: int
    temperature: float
    seed: int
    pairs: list[PairedSample]
    layer_norms: dict[int, float]
    added_norms: dict[int, float] = field(default_factory=dict)
    output_path: str | None = None
    seconds: float = 0.0

    @property
    def n(self) -> int:
        return len(self.pairs)

    @property
    def base_correct(self) -> int:
        return sum(bool(p.base_correct) for p in self.pairs)

    @property
    def steered_correct(self) -> int:
        return sum(bool(p.steered_correct) for p in self.pairs)

    @property
    def base_accuracy(self) -> float:
        return self.base_correct / self.n if self.n else 0.0

    @property
    def steered_accuracy(self) -> float:
        return self.steered_correct / self.n if self.n else 0.0

    @property
    def difference(self) -> float:
        return self.steered_accuracy - self.base_accuracy

    def difference_interval(self, resamples: int = BOOTSTRAP_RESAMPLES,
                            confidence: float = CONFIDENCE) -> tuple[float, float]:
        """Paired bootstrap over queries: resample queries (with all their samples), percentile interval."""
        per_query: dict[int, list[float]] = {}
        for p in self.pairs:
            per_query.setdefault(p.task_index, []).append(float(bool(p.steered_correct)) - float(bool(p.base_correct)))
        groups = [(sum(d), len(d)) for d in per_query.values()]
        return paired_bootstrap_interval(groups, resamples=resamples, confidence=confidence, seed=self.seed)

    def format(self) -> str:
        from pts.stats import wilson_interval

        b_lo, b_hi = wilson_interval(self.base_correct, self.n, CONFIDENCE)
        s_lo, s_hi = wilson_interval(self.steered_correct, self.n, CONFIDENCE)
        d_lo, d_hi = self.difference_interval()
        fixed = sum(bool(p.steered_correct) and not p.base_correct for p in self.pairs)
        broke = sum(bool(p.base_correct) and not p.steered_correct for p in self.pairs)
        changed = sum(p.base.token_ids != p.steered.token_ids for p in self.pairs)
        fired = sum(p.steered.steered_positions > 0 for p in self.pairs)
        positions = sum(p.steered.steered_positions for p in self.pairs)
        pct = int(CONFIDENCE * 100)
        lines = [
            f"steering: {self.description}",
            f"model: {self.model_id}   dataset: {self.dataset_id}",
            (f"{self.queries} queries x {self.samples} samples = {self.n} paired completions (same prompt and seed "
             f"with and without steering), max {self.max_new_tokens} new tokens, temperature {self.temperature:g}, "
             f"seed {self.seed}"),
            "",
            f"{'':12}{'correct':>9}  {'accuracy':>8}  {pct}% CI",
            (f"{'base':12}{f'{self.base_correct}/{self.n}':>9}  {self.base_accuracy:8.3f}  "
             f"[{b_lo:.3f}, {b_hi:.3f}] Wilson"),
            (f"{'steered':12}{f'{self.steered_correct}/{self.n}':>9}  {self.steered_accuracy:8.3f}  "
             f"[{s_lo:.3f}, {s_hi:.3f}] Wilson"),
            (f"{'difference':12}{'':9}  {self.difference:+8.3f}  [{d_lo:+.3f}, {d_hi:+.3f}] paired bootstrap over "
             f"queries ({BOOTSTRAP_RESAMPLES} resamples)"),
            "",
            f"steering fixed {fixed} and broke {broke} of {self.n} pairs; {changed} completions changed",
            f"steering fired in {fired}/{self.n} completions ({positions} positions)",
        ]
        if self.layer_norms:
            parts = []
            for n, v in sorted(self.layer_norms.items()):
                add = self.added_norms.get(n)
                share = f", added {add:.3g} ({100 * add / v:.1f}%)" if add is not None and v > 0 else ""
                parts.append(f"layer {n}: {v:.1f}{share}")
            lines.append(f"mean residual norm at the steered layers: {'; '.join(parts)}")
        if self.output_path:
            lines.append(f"output: {self.output_path}")
        lines.append(f"time: {self.seconds:.1f} s")
        return "\n".join(lines)


def _judge_prefix(tokenizer, prompt_ids: Sequence[int]) -> str:
    from pts.search.searcher import opens_think_block

    return "<think>" if opens_think_block(tokenizer.decode(list(prompt_ids), skip_special_tokens=False)) else ""


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="completions", unit="row", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True)


def _load(config: SteerConfig, loaded: LoadedModel | None) -> LoadedModel:
    if loaded is not None:
        return loaded
    from pts.models import load_model

    return load_model(config.model, device=config.device, dtype=config.dtype)


def evaluate(config: SteerConfig, loaded: LoadedModel | None = None, tasks: list[Task] | None = None) -> SteerReport:
    """Accuracy on the dataset without and with steering: same prompts, same seeds, judged by each task's oracle.

    ``loaded`` replaces loading ``config.model``; ``tasks`` replaces the dataset.
    Writes one JSON line per (query, sample) pair to ``config.output_path`` when
    set (atomically). Bad options, files or vectors raise PTSError before any
    generation.
    """
    import time

    from pts.search.searcher import build_prompt_ids
    from pts.tasks.sources import load_tasks

    config.validate()
    vectors = read_vectors(config)
    if config.output_path:
        check_output_path(config.output_path)
    if tasks is None:
        tasks = load_tasks(config.dataset, config=config.config, split=config.split, query_key=config.query_key,
                           answer_key=config.answer_key, sample_size=config.sample_size,
                           max_examples=config.max_examples, seed=config.seed, oracle=config.oracle)
    if not tasks:
        raise PTSError("the dataset has no rows to evaluate")
    loaded = _load(config, loaded)
    steering = build_steering(vectors, loaded.model, loaded.tokenizer, strength=config.strength, layer=config.layer,
                              match=config.match, match_on=config.match_on,  # type: ignore[arg-type]
                              scale_by_delta=config.scale_by_delta, model_id=loaded.model_id)
    tok = loaded.tokenizer
    requests: list[GenerationRequest] = []
    meta: list[tuple[int, int, int]] = []
    prefixes: list[str] = []
    for ti, task in enumerate(tasks):
        prompt = tuple(build_prompt_ids(tok, task.prompt, config.system_prompt, config.chat_template, task.raw_prompt))
        head = _judge_prefix(tok, prompt)
        prefixes.append(head)
        stop = None
        if config.early_stop:
            stop = (lambda text, t=task, h=head: t.oracle.answer_complete(h + text))
        for j in range(config.num_samples):
            seed = stable_seed(config.seed, task.dataset_id, task.item_id, j)
            meta.append((ti, j, seed))
            for steer in (False, True):
                requests.append(GenerationRequest(prompt, seed, steer, stop))
    start = time.perf_counter()
    bar = _progress(len(requests), config.progress)
    with SteeringHooks(loaded.model, steering.layers) as hooks:
        try:
            gens = generate(loaded.model, tok, requests, steering, max_new_tokens=config.max_new_tokens,
                            params=config.sampling(), batch_size=config.batch_size, on_done=bar.update, hooks=hooks)
        finally:
            bar.close()
        norms = {n: hooks.mean_norm(n) for n in steering.layers}
    pairs = []
    for k, (ti, j, seed) in enumerate(meta):
        base, steered = gens[2 * k], gens[2 * k + 1]
        task = tasks[ti]
        pairs.append(PairedSample(ti, j, seed, base, steered, task.judge(prefixes[ti] + base.text),
                                  task.judge(prefixes[ti] + steered.text)))
    report = SteerReport(describe(steering, config.source), loaded.model_id, tasks[0].dataset_id, len(tasks),
                         config.num_samples, config.max_new_tokens, config.temperature, config.seed, pairs, norms,
                         {n: added_norm(steering, n) for n in steering.layers}, config.output_path,
                         time.perf_counter() - start)
    if config.output_path:
        _write_pairs(config.output_path, pairs, tasks, steering)
    return report


def steer_query(config: SteerConfig, loaded: LoadedModel | None = None) -> tuple[str, list[PairedSample]]:
    """Generate ``config.num_samples`` replies to ``config.query`` without and with steering.

    Returns the steering description and the pairs (not judged: a free query has no oracle).
    """
    from pts.search.searcher import build_prompt_ids

    config.validate()
    if config.query is None:
        raise PTSError("no --query given")
    vectors = read_vectors(config)
    if config.output_path:
        check_output_path(config.output_path)
    loaded = _load(config, loaded)
    steering = build_steering(vectors, loaded.model, loaded.tokenizer, strength=config.strength, layer=config.layer,
                              match=config.match, match_on=config.match_on,  # type: ignore[arg-type]
                              scale_by_delta=config.scale_by_delta, model_id=loaded.model_id)
    prompt = tuple(build_prompt_ids(loaded.tokenizer, config.query, config.system_prompt, config.chat_template))
    requests, seeds = [], []
    for j in range(config.num_samples):
        seed = stable_seed(config.seed, "query", config.query, j)
        seeds.append(seed)
        requests += [GenerationRequest(prompt, seed, False), GenerationRequest(prompt, seed, True)]
    gens = generate(loaded.model, loaded.tokenizer, requests, steering, max_new_tokens=config.max_new_tokens,
                    params=config.sampling(), batch_size=config.batch_size)
    pairs = [PairedSample(0, j, seeds[j], gens[2 * j], gens[2 * j + 1]) for j in range(config.num_samples)]
    if config.output_path:
        _write_pairs(config.output_path, pairs, None, steering, query=config.query)
    return describe(steering, config.source), pairs


def _vector_info(steering: Steering, gen: Generation) -> list[dict[str, Any]]:
    if not isinstance(steering, ContextSteering):
        return []
    out = []
    for k in gen.vectors:
        v = steering.vectors[k]
        out.append({"row": v.line, "layer": steering.layers_of[k], "is_positive": v.is_positive,
                    "pivot_token": v.pivot_token, "reasoning_pattern": v.reasoning_pattern,
                    "cluster_id": v.cluster_id})
    return out


def _write_pairs(path: str, pairs: Sequence[PairedSample], tasks: Sequence[Task] | None, steering: Steering,
                 query: str | None = None) -> None:
    with atomic_write(path) as f:
        for p in pairs:
            task = tasks[p.task_index] if tasks is not None else None
            row = {
                "dataset_id": task.dataset_id if task else None,
                "item_id": task.item_id if task else None,
                "query": task.query if task else query,
                "answer": task.answer if task else None,
                "sample": p.sample,
                "seed": p.seed,
                "base_completion": p.base.text,
                "base_correct": p.base_correct,
                "base_finish_reason": p.base.finish_reason,
                "base_tokens": len(p.base.token_ids),
                "steered_completion": p.steered.text,
                "steered_correct": p.steered_correct,
                "steered_finish_reason": p.steered.finish_reason,
                "steered_tokens": len(p.steered.token_ids),
                "steered_positions": p.steered.steered_positions,
                "vectors": _vector_info(steering, p.steered),
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def format_query_pairs(description: str, query: str, pairs: Sequence[PairedSample]) -> str:
    """The steered and unsteered replies to one query, side by side in reading order."""
    lines = [f"steering: {description}", f"query: {query}"]
    for p in pairs:
        note = f"vector added at {p.steered.steered_positions} positions"
        if p.base.token_ids == p.steered.token_ids:
            note += "; identical to the unsteered reply"
        lines += ["", f"=== sample {p.sample + 1} (seed {p.seed}) ===",
                  f"--- unsteered ({len(p.base.token_ids)} tokens, {p.base.finish_reason}) ---", p.base.text,
                  f"--- steered ({len(p.steered.token_ids)} tokens, {p.steered.finish_reason}; {note}) ---",
                  p.steered.text]
    return "\n".join(lines)


__all__ = [
    "ContextSteering", "ControlSteering", "ControlVector", "Generation", "GenerationRequest", "SteerConfig",
    "SteerReport", "SteeringHooks", "SteeringVector", "SuffixMatcher", "build_steering", "decoder_layers",
    "evaluate", "format_query_pairs", "generate", "load_control_vector", "load_steering_vectors", "parse_layers",
    "read_vectors", "steer_query",
]
