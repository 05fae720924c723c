"""`pts run` end to end on the real embedded model (SmolLM2-135M-Instruct), with tiny settings."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import run_pts

from pts.search.searcher import build_prompt_ids
from pts.store import read_jsonl
from pts.tasks.sources import load_tasks

pytestmark = pytest.mark.slow

DATASET = "rg:chain_sum?min_terms=2&max_terms=2&min_digits=1&max_digits=1&size=6"
# Every query is searched (whatever its initial estimate), so the run's mechanics are exercised whatever the
# samples turn out to be; float32 keeps the samples the same across batch compositions.
TINY = [
    "--dataset",
    DATASET,
    "--max-examples",
    "3",
    "--num-samples",
    "6",
    "--max-new-tokens",
    "40",
    "--max-generations",
    "2",
    "--min-prob",
    "0.0",
    "--max-prob",
    "1.0",
    "--seed",
    "1",
    "--dtype",
    "float32",
    "--verify-samples",
    "16",
]


def pts_run(*args, cwd):
    return run_pts("run", *args, cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def run_output(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("e2e")
    out = cwd / "pivots.jsonl"
    proc = pts_run(*TINY, "--output-path", str(out), "--no-progress", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, out, proc


def test_run_prints_a_summary_and_writes_valid_records(run_output, embedded_loaded):
    cwd, out, proc = run_output
    assert "pivotal tokens:" in proc.stdout and "3 searched" in proc.stdout and "candidates:" in proc.stdout
    assert "Warning" not in proc.stderr, proc.stderr  # no library warning reaches the terminal
    tokenizer = embedded_loaded.tokenizer
    tasks = {t.item_id: t for t in load_tasks(DATASET, max_examples=3, seed=1)}
    # The trace of every searched solution: exact ids, and the estimates the search made along it.
    traces = read_jsonl(cwd / "pivots.jsonl.trace.jsonl")
    assert {t["dataset_item_id"] for t in traces} == set(tasks)
    for t in traces:
        prompt = build_prompt_ids(tokenizer, tasks[t["dataset_item_id"]].prompt)
        assert t["prompt_length"] == len(prompt) and t["solution_ids"]
        assert t["solution_tokens"] == [tokenizer.decode([i], skip_special_tokens=False) for i in t["solution_ids"]]
        # the bound closes segments with no possible pivot unsampled, so the ends need not be estimated
        ends = [e["position"] for e in t["estimates"]]
        assert ends == sorted(set(ends)) and all(0 <= i <= len(t["solution_ids"]) for i in ends)
        assert len(t["sampling_probs"]) == len(t["solution_ids"])
        assert all(p is None or 0 < p <= 1 for p in t["sampling_probs"])
        assert all(0 <= e["successes"] <= e["samples"] for e in t["estimates"])
    progress = [json.loads(line) for line in (cwd / "pivots.jsonl.progress").open()][1:]
    records = read_jsonl(out)
    assert sum(p["pivots"] for p in progress) == len(records)
    assert sum(p["candidates"] for p in progress) == len(records) + sum(p["dropped"] for p in progress)
    for r in records:
        ids = r["pivot_context_ids"]
        assert tokenizer.decode(ids, skip_special_tokens=False) == r["pivot_context"]
        assert tokenizer.decode([r["pivot_token_id"]], skip_special_tokens=False) == r["pivot_token"]
        prompt = build_prompt_ids(tokenizer, tasks[r["dataset_item_id"]].prompt)
        assert ids[: r["prompt_length"]] == prompt and r["prompt_length"] == len(prompt)
        pi, measured_before = r["sampling_prob"], r["successes_before"] / r["samples_before"]
        stratified = pi is not None and r["ci_before"][0] != r["ci_before"][1]
        if stratified:  # measured by strata: the counts before are the alternative stratum's (docs/search.md)
            assert 0 < pi < 1 and r["prob_before"] == pytest.approx(pi * r["prob_after"] + (1 - pi) * measured_before)
        else:
            assert r["prob_before"] == measured_before
        assert r["prob_after"] == r["successes_after"] / r["samples_after"]
        assert r["verified"] and (r["delta_ci"][0] >= 0.2 - 1e-9 or r["delta_ci"][1] <= -0.2 + 1e-9)
        assert abs(r["prob_delta"]) >= 0.2 - 1e-9 and r["is_positive"] == (r["prob_delta"] > 0)
        if r["samples_before"] > 1 and not stratified:  # sampled, not a terminal context judged once
            assert sum(t["count"] for t in r["first_tokens"]) == r["samples_before"]
        assert r["ci_before"][0] <= measured_before <= r["ci_before"][1]
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


def test_killed_run_leaves_a_valid_file_and_resumes(tmp_path):
    out = tmp_path / "killed.jsonl"
    progress = tmp_path / "killed.jsonl.progress"
    args = [
        sys.executable,
        "-m",
        "pts",
        "run",
        *TINY,
        "--max-examples",
        "4",
        "--parallel",
        "1",
        "--output-path",
        str(out),
        "--no-progress",
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        # Kill once the first item is finished, while later ones are being searched.
        while time.monotonic() < deadline and proc.poll() is None:
            if progress.exists() and sum(1 for _ in progress.open()) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = [json.loads(line) for line in progress.open()][1:]
    assert 1 <= len(done_before) < 4
    read_jsonl(out)  # every line parses
    rerun = pts_run(*TINY, "--max-examples", "4", "--output-path", str(out), "--no-progress", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{len(done_before)} already done" in rerun.stdout
    records = read_jsonl(out)
    assert len({r["id"] for r in records}) == len(records)
    items = [json.loads(line) for line in progress.open()][1:]
    assert sorted(i["dataset_item_id"] for i in items) == [str(i) for i in range(4)]
