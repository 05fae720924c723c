"""`pts run --dataset humaneval` end to end on the embedded models (a chat and a base model), tiny settings."""

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("model", ["smollm2-135m", "gemma3-270m"])
def test_humaneval_run_end_to_end(tmp_path, model):
    out = tmp_path / "pivots.jsonl"
    args = [
        "--model",
        model,
        "--dataset",
        "humaneval",
        "--max-examples",
        "2",
        "--num-samples",
        "2",
        "--max-new-tokens",
        "48",
        "--max-generations",
        "1",
        "--seed",
        "3",
        "--debug",
        "--no-progress",
        "--output-path",
        str(out),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "pts", "run", *args],
        cwd=tmp_path,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    # Every rollout was judged; a query the model never solves is skipped, not an error.
    verdicts = re.findall(r"^--- rollout \[(PASS|FAIL), ", proc.stderr, re.MULTILINE)
    assert len(verdicts) >= 4
    searched, skipped = map(int, re.search(r"queries: (\d+) searched, (\d+) skipped", proc.stdout).groups())
    assert searched + skipped == 2
    if "PASS" not in verdicts:
        assert skipped == 2
    assert out.with_name(out.name + ".progress").exists()
