"""OriginalStyleEngine (the original PTS tool's sampling) on the embedded model, and a smoke run of bench/end_to_end.py."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pts.engines.base import Engine, RolloutRequest, SamplingParams
from pts.engines.hf import HFEngine


def _bench_module(name: str):
    """A module of bench/ (not part of the pts package), imported from its file."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent.parent / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


OriginalStyleEngine = _bench_module("baseline_engine").OriginalStyleEngine

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
GREEDY = SamplingParams(temperature=0.0)
# Sharp sampling: processed (temperature/top-k) log-probs would differ a lot from the raw ones the contract asks for.
SHARP = SamplingParams(temperature=0.5, top_p=0.95, top_k=5)


@pytest.fixture(scope="module")
def engine(embedded_loaded):
    return OriginalStyleEngine.from_loaded(embedded_loaded)


@pytest.fixture(scope="module")
def prompt(chat_prompt):
    return chat_prompt("A farmer has 17 sheep and buys 8 more. How many sheep does he have now? Explain step by step.")


def teacher_forced(model, prefix, token_ids) -> torch.Tensor:
    """Log-probs of ``token_ids`` after ``prefix`` from one plain forward pass."""
    with torch.inference_mode():
        logits = model(torch.tensor([list(prefix) + list(token_ids)])).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)[len(prefix) - 1 : -1]
    return lp.gather(1, torch.tensor(token_ids)[:, None])[:, 0]


def test_rollout_contract(engine, embedded_loaded, prompt, chat_prompt):
    model, tok = embedded_loaded.model, embedded_loaded.tokenizer
    assert isinstance(engine, Engine) and tok.eos_token_id in engine.eos_token_ids
    short = chat_prompt("What is 3+4? Answer with the number only.")
    reqs = [
        RolloutRequest(prompt, 7, 12, seed=1),
        RolloutRequest(short, 2, 40, seed=2),
        RolloutRequest(prompt, 0, 12, seed=3),
        RolloutRequest(prompt, 2, 0, seed=4),
    ]
    before = engine.calls
    out = engine.sample(reqs, SHARP)
    # 7 samples = generate(num_return_sequences=5) + generate(2); one call for the 2 of the short prompt.
    assert engine.calls - before == 3
    assert [len(rs) for rs in out] == [7, 2, 0, 2]
    assert all(r.token_ids == [] and r.finish_reason == "length" for r in out[3])
    assert len({tuple(r.token_ids) for r in out[0]}) > 1
    reasons = set()
    for req, rs in zip(reqs[:2], out[:2]):
        for r in rs:
            assert r.text == tok.decode(r.token_ids, skip_special_tokens=True)
            assert len(r.logprobs) == len(r.token_ids) <= req.max_new_tokens
            eos_at = [i for i, t in enumerate(r.token_ids) if t in engine.eos_token_ids]
            if r.finish_reason == "eos":
                assert eos_at == [len(r.token_ids) - 1]  # EOS kept, nothing after it (no padding)
            else:
                assert r.finish_reason == "length" and not eos_at and len(r.token_ids) == req.max_new_tokens
            reasons.add(r.finish_reason)
            ref = teacher_forced(model, req.prefix_ids, r.token_ids)
            assert torch.allclose(torch.tensor(r.logprobs), ref, atol=1e-3), (
                (ref - torch.tensor(r.logprobs)).abs().max()
            )
    assert reasons == {"eos", "length"}  # the short prompt ends within 40 tokens, the long one does not in 12


def test_ignores_stop_and_runs_to_eos_or_length(engine, prompt):
    req = RolloutRequest(prompt, 3, 16, seed=5)
    stopped = RolloutRequest(prompt, 3, 16, stop=lambda text: True, seed=5)
    plain, with_stop = engine.sample([req, stopped], SHARP)
    assert [r.token_ids for r in plain] == [r.token_ids for r in with_stop]
    assert all(r.finish_reason in ("eos", "length") for r in with_stop)


def test_seeded_per_request(engine, prompt):
    req = RolloutRequest(prompt, 3, 10, seed=11)
    a = engine.sample([req], SHARP)[0]
    b = engine.sample([RolloutRequest(prompt, 2, 10, seed=99), req], SHARP)[1]  # other requests before it
    c = engine.sample([RolloutRequest(prompt, 3, 10, seed=12)], SHARP)[0]
    assert [r.token_ids for r in a] == [r.token_ids for r in b]
    assert [r.logprobs for r in a] == [r.logprobs for r in b]
    assert [r.token_ids for r in a] != [r.token_ids for r in c]


def test_prefix_is_decoded_and_re_encoded(engine, embedded_loaded, prompt):
    tok = embedded_loaded.tokenizer
    text = " First, the farmer buys more sheep"
    canonical = tok.encode(text, add_special_tokens=False)
    split = [t for ch in text for t in tok.encode(ch, add_special_tokens=False)]  # one token per character
    assert split != canonical and tok.decode(split) == tok.decode(canonical)
    assert engine.reencode(prompt + tuple(split)) == list(prompt) + canonical
    # The engine sees text: a token-level split that decodes to the same text samples the same continuations.
    a = engine.sample([RolloutRequest(prompt + tuple(split), 2, 8, seed=3)], SHARP)[0]
    b = engine.sample([RolloutRequest(prompt + tuple(canonical), 2, 8, seed=3)], SHARP)[0]
    assert [r.token_ids for r in a] == [r.token_ids for r in b]


def test_greedy_matches_the_hf_engine(engine, embedded_loaded, prompt):
    hf = HFEngine.from_loaded(embedded_loaded)
    [ours] = engine.sample([RolloutRequest(prompt, 2, 20)], GREEDY)
    [theirs] = hf.sample([RolloutRequest(prompt, 1, 20)], GREEDY)
    assert ours[0].token_ids == ours[1].token_ids == theirs[0].token_ids
    assert torch.allclose(torch.tensor(ours[0].logprobs), torch.tensor(theirs[0].logprobs), atol=1e-3)


def test_bench_end_to_end_smoke(tmp_path):
    """bench/end_to_end.py with tiny settings: both modes, the judge, the table and the JSON result."""
    out = tmp_path / "out"
    result = tmp_path / "result.json"
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "end_to_end.py"),
        "--queries",
        "1",
        "--num-samples",
        "2",
        "--max-new-tokens",
        "24",
        "--max-generations",
        "1",
        "--min-prob",
        "0",
        "--max-prob",
        "1",
        "--judge-samples",
        "2",
        "--no-ceiling",  # the prefill ceiling's forward passes are most of a minute on 2 cores
        "--output-dir",
        str(out),
        "--json",
        str(result),
    ]
    proc = subprocess.run(
        cmd,
        cwd=tmp_path,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(result.read_text())
    assert set(doc["modes"]) == {"pts", "baseline"}
    pts, base = doc["modes"]["pts"], doc["modes"]["baseline"]
    assert (pts["engine"], base["engine"]) == ("HFEngine", "OriginalStyleEngine")
    assert base["dtype"] == "float32" and base["config"]["early_stop"] is False and base["config"]["parallel"] == 1
    assert pts["config"]["early_stop"] is True
    for m in (pts, base):
        assert m["searched"] == 1 and m["rollouts"] > 0 and m["rollout_tokens"] > 0 and m["run_s"] > 0
        assert m["peak_rss_bytes"] > 100 * 2**20 and m["ceiling_tok_s"] is None
        assert len((out / f"{m['mode']}.jsonl").read_text().splitlines()) == m["pivots"]
    assert base["generate_calls"] >= base["engine_calls"]
    assert doc["ratios"]["run_time_baseline_over_pts"] == pytest.approx(base["run_s"] / pts["run_s"])
    if pts["pivots"] or base["pivots"]:
        verify = json.loads((out / "verify.json").read_text())
        for m in (pts, base):
            judged = verify["modes"][m["mode"]]
            assert judged["judged"] == m["pivots"]
            assert all(c["verify_before"][1] >= 1 and c["verify_after"][1] >= 1 for c in judged["pivots"])
            if m["pivots"]:
                assert 0 <= m["precision"] <= 1
    assert "baseline / pts" in proc.stdout and str(result) in proc.stdout
