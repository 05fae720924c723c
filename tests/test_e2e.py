"""`pts run` end to end on the real embedded model (SmolLM2-135M-Instruct), with tiny settings."""

import json
import os
import subprocess
import sys

import pytest

from pts.search.searcher import build_prompt_ids
from pts.store import read_jsonl
from pts.tasks.sources import load_tasks

pytestmark = pytest.mark.slow

DATASET = "rg:chain_sum?min_terms=2&max_terms=2&min_digits=1&max_digits=1&size=6"
TINY = ["--dataset", DATASET, "--max-examples", "3", "--num-samples", "6", "--max-new-tokens", "40",
        "--max-generations", "2", "--min-prob", "0.1", "--max-prob", "0.9", "--seed", "1"]


def pts_run(*args, cwd):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "pts", "run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def run_output(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("e2e")
    out = cwd / "pivots.jsonl"
    proc = pts_run(*TINY, "--output-path", str(out), "--no-progress", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, out, proc


def test_run_prints_a_summary_and_writes_valid_records(run_output, embedded_loaded):
    _, out, proc = run_output
    assert "pivotal tokens:" in proc.stdout and "searched" in proc.stdout
    records = read_jsonl(out)
    assert records, "the tiny run found no pivotal token"
    tokenizer = embedded_loaded.tokenizer
    tasks = {t.item_id: t for t in load_tasks(DATASET, max_examples=3, seed=1)}
    for r in records:
        ids = r["pivot_context_ids"]
        assert tokenizer.decode(ids, skip_special_tokens=False) == r["pivot_context"]
        assert tokenizer.decode([r["pivot_token_id"]], skip_special_tokens=False) == r["pivot_token"]
        prompt = build_prompt_ids(tokenizer, tasks[r["dataset_item_id"]].prompt)
        assert ids[: r["prompt_length"]] == prompt and r["prompt_length"] == len(prompt)
        assert r["prob_before"] == r["successes_before"] / r["samples_before"]
        assert r["prob_after"] == r["successes_after"] / r["samples_after"]
        assert abs(r["prob_delta"]) >= 0.2 - 1e-9 and r["is_positive"] == (r["prob_delta"] > 0)
        if r["samples_before"] > 1:  # sampled, not a terminal context judged once
            assert sum(t["count"] for t in r["first_tokens"]) == r["samples_before"]
        assert r["ci_before"][0] <= r["prob_before"] <= r["ci_before"][1]
        for key in ("model_id", "query", "task_type", "dataset_id", "timestamp", "id"):
            assert r[key]
    assert len({r["id"] for r in records}) == len(records)


def test_rerun_resumes_and_adds_nothing(run_output):
    cwd, out, _ = run_output
    before = out.read_text()
    proc = pts_run(*TINY, "--output-path", str(out), "--no-progress", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "3 already done" in proc.stdout
    assert out.read_text() == before
    header = json.loads((cwd / "pivots.jsonl.progress").read_text().splitlines()[0])
    assert header["settings"]["num_samples"] == 6
