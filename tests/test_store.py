"""Output that survives interruption: resume, idempotence, repair, refusal to mix settings."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import run_pts

from pts.engines.fake import (
    BranchingFakeEngine,
    FakeEngine,
    PassFailOracle,
    planted_scenario,
    token,
)
from pts.errors import PTSError
from pts.jobs.run import RunConfig, run
from pts.store import (
    OutputLock,
    RunStore,
    check_writable,
    lock_path,
    progress_path,
    read_jsonl,
)
from pts.tasks.task import Task

PROMPT = "q?"
SCRIPT = [token(c) for c in "abcXdefYgh"]


def step_p(response):
    text = "".join(chr(t - 16) for t in response if t >= 16)
    return 0.1 if "Y" in text else 0.9 if "X" in text else 0.5


def tasks(n=6):
    return [Task(PROMPT, "PASS", str(i), "fake", "fake", PassFailOracle()) for i in range(n)]


class Interrupting(FakeEngine):
    """Raises KeyboardInterrupt at the first engine call of the ``at``-th query."""

    def __init__(self, at, **kw):
        super().__init__(step_p, SCRIPT, prompt_length=len(PROMPT), **kw)
        self.at, self.queries = at, 0

    def sample(self, requests, params):
        if requests[0].prefix_ids == tuple(token(c) for c in PROMPT):
            self.queries += 1
            if self.queries == self.at:
                raise KeyboardInterrupt
        return super().sample(requests, params)


def config(path, **kw):
    # FakeEngine's verdicts ignore a rollout's path, so these store tests search without pooling or verification
    # (tests/test_verify.py resumes a verified run on the path-consistent BranchingFakeEngine).
    options = dict(num_samples=10, max_generations=3, split_at="middle", progress=False, pool=False, verify=False)
    return RunConfig(output_path=str(path), **{**options, **kw})


def engine():
    return FakeEngine(step_p, SCRIPT, prompt_length=len(PROMPT), exact=False, seed=1)


def test_interrupted_run_resumes_without_duplicates_or_losses(tmp_path):
    full = tmp_path / "full.jsonl"
    run(config(full), engine(), tasks())
    expected = sorted(r["id"] for r in read_jsonl(full))
    assert expected

    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run(config(out, parallel=1), Interrupting(at=4, exact=False, seed=1), tasks())
    partial = read_jsonl(out)
    assert {r["dataset_item_id"] for r in partial} <= {"0", "1", "2"} and partial

    summary = run(config(out), engine(), tasks())
    assert summary.resumed == 3 and summary.searched + summary.skipped == 3
    ids = [r["id"] for r in read_jsonl(out)]
    assert len(ids) == len(set(ids)), "duplicate records after resume"
    assert sorted(ids) == expected

    again = run(config(out), engine(), tasks())
    assert again.resumed == 6 and again.pivots == 0
    assert sorted(r["id"] for r in read_jsonl(out)) == expected


def test_torn_last_line_and_unfinished_item_are_repaired(tmp_path):
    out = tmp_path / "out.jsonl"
    run(config(out), engine(), tasks(2))
    good = read_jsonl(out)
    orphan = dict(good[0], id="orphan", dataset_item_id="5")
    with open(out, "a") as f:
        f.write(json.dumps(orphan) + "\n")
        f.write('{"id": "torn", "query": "cut off mid-wri')
    run(config(out), engine(), tasks(2))
    rows = read_jsonl(out)  # parses: the torn line is gone
    assert "orphan" not in {r["id"] for r in rows} and len(rows) == len(good)


def test_overwrite_starts_again(tmp_path):
    out = tmp_path / "out.jsonl"
    run(config(out), engine(), tasks(2))
    summary = run(config(out, overwrite=True), engine(), tasks(2))
    assert summary.resumed == 0 and summary.searched == 2


def test_resuming_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "out.jsonl"
    run(config(out), engine(), tasks(2))
    with pytest.raises(PTSError, match="different settings.*prob_threshold"):
        run(config(out, prob_threshold=0.3), engine(), tasks(2))


def test_records_are_idempotent_by_id(tmp_path):
    out = tmp_path / "out.jsonl"
    rec = {"id": "x", "dataset_item_id": "0"}
    with RunStore(out, {"a": 1}) as store:
        assert store.write_item("0", [rec, rec], {}) == 1
    with RunStore(out, {"a": 1}) as store:
        assert store.write_item("1", [rec], {}) == 0
    assert len(read_jsonl(out)) == 1


ORIGINAL = {"query": "q", "pivot_token": "x", "dataset_item_id": "7", "dataset_id": "gsm8k", "model_id": "m"}


def test_original_tool_file_without_progress_is_resumed_not_clobbered(tmp_path):
    out = tmp_path / "old.jsonl"
    out.write_text(json.dumps(ORIGINAL) + "\n")
    with RunStore(out, {"dataset_id": "gsm8k", "model_id": "m"}) as store:
        assert store.is_done("7") and len(read_jsonl(out)) == 1 and progress_path(out).exists()


@pytest.mark.parametrize(
    "row, why",
    [
        ({"question": "What is 1+1?", "answer": "2"}, "no 'dataset_item_id'"),  # a dataset, not records
        ({**ORIGINAL, "dataset_id": "math"}, "dataset_id is 'math'"),
        ({**ORIGINAL, "model_id": "other"}, "model_id is 'other'"),
    ],
)
def test_a_file_without_progress_is_adopted_only_when_it_holds_this_runs_records(tmp_path, row, why):
    out = tmp_path / "old.jsonl"
    text = json.dumps(ORIGINAL) + "\n" + json.dumps(row) + "\n"
    out.write_text(text)
    with pytest.raises(PTSError, match=why):
        RunStore(out, {"dataset_id": "gsm8k", "model_id": "m"})
    assert out.read_text() == text and not progress_path(out).exists()


@pytest.mark.parametrize("bad", ["missing_dir/out.jsonl", "."])
def test_unwritable_output_is_refused_before_anything_is_created(tmp_path, bad):
    with pytest.raises(PTSError):
        check_writable(tmp_path / bad)
    assert not (tmp_path / "missing_dir").exists()


def test_bad_options_fail_before_any_file_exists(tmp_path):
    out = tmp_path / "out.jsonl"
    for kw in ({"prob_threshold": 1.5}, {"min_prob": 0.9, "max_prob": 0.1}, {"num_samples": 0}):
        with pytest.raises(PTSError):
            run(config(out, **kw), engine(), tasks(1))
    assert not out.exists() and not progress_path(out).exists()


def test_max_pairs_stops_the_run(tmp_path):
    out = tmp_path / "out.jsonl"
    summary = run(config(out, max_pairs=2), engine(), tasks())
    assert summary.pivots == 2 and summary.stopped_at_max_pairs
    assert len(read_jsonl(out)) == 2


def test_parallel_queries_merge_engine_calls_without_changing_results(tmp_path):
    outputs, calls = [], []
    for parallel in (1, 3):
        eng = engine()
        out = tmp_path / f"p{parallel}.jsonl"
        run(config(out, parallel=parallel), eng, tasks())
        outputs.append(sorted((r["id"], r["prob_before"], r["prob_after"]) for r in read_jsonl(out)))
        calls.append(eng.calls)
    assert outputs[0] == outputs[1] and outputs[0]
    assert calls[1] < calls[0]


# A writer that holds its output until the file <output>.go exists, however slowly the test's other processes start.
SLOW_WRITER = """
import os, sys, time
from pts.engines.fake import FakeEngine, PassFailOracle, token
from pts.jobs.run import RunConfig, run
from pts.tasks.task import Task

class Slow(FakeEngine):
    def sample(self, requests, params):
        while not os.path.exists(sys.argv[1] + ".go"):
            time.sleep(0.05)
        return super().sample(requests, params)

script = [token(c) for c in "abcXdefYgh"]
engine = Slow(lambda r: 0.5, script, prompt_length=2, exact=False, seed=1)
tasks = [Task("q?", "PASS", str(i), "fake", "fake", PassFailOracle()) for i in range(int(sys.argv[2]))]
run(RunConfig(output_path=sys.argv[1], num_samples=10, max_generations=3, split_at="middle", progress=False,
              pool=False, verify=False, parallel=1), engine, tasks)
"""


def _pts(*args, cwd):
    return run_pts(*args, cwd=cwd, timeout=120)


def test_a_second_writer_of_the_same_output_is_refused(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(SLOW_WRITER)
    out = tmp_path / "out.jsonl"
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"question": "What is 1+1?", "answer": "2"}) + "\n")
    first = subprocess.Popen(
        [sys.executable, str(script), str(out), "8"], env=dict(os.environ), stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not progress_path(out).exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, first.stderr.read()
        for extra in ([], ["--overwrite"]):
            second = _pts("run", "--dataset", str(data), "--output-path", str(out), *extra, cwd=tmp_path)
            lines = second.stderr.strip().splitlines()
            assert second.returncode == 2 and len(lines) == 1, second.stderr
            assert "being written by another pts process" in lines[0] and f"pid {first.pid}" in lines[0]
        (tmp_path / "out.jsonl.go").touch()
        assert first.wait(timeout=120) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
    done = [r for r in read_jsonl(progress_path(out)) if r.get("kind") == "item"]
    assert sorted(r["dataset_item_id"] for r in done) == [str(i) for i in range(8)]
    ids = [r["id"] for r in read_jsonl(out)]
    assert len(ids) == len(set(ids))
    assert not lock_path(out).exists()  # released with the run; a later run may write at once
    run(config(out), engine(), tasks(8))


def test_the_lock_of_a_killed_writer_does_not_block_the_next_run(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(SLOW_WRITER)
    out = tmp_path / "out.jsonl"
    first = subprocess.Popen([sys.executable, str(script), str(out), "50"], env=dict(os.environ))
    deadline = time.monotonic() + 60
    while not progress_path(out).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert lock_path(out).exists()  # left behind by the kill, but no longer locked
    with OutputLock(out):
        with pytest.raises(PTSError, match=f"pid {os.getpid()}"):
            OutputLock(out)


def test_no_resume_refuses_to_discard_finished_items(tmp_path):
    out = tmp_path / "out.jsonl"
    run(config(out), engine(), tasks(2))
    before = out.read_text(), progress_path(out).read_text()
    with pytest.raises(PTSError, match="2 finished item.*--no-resume would discard: pass --overwrite"):
        run(config(out, resume=False), engine(), tasks(2))
    assert (out.read_text(), progress_path(out).read_text()) == before
    assert run(config(out, resume=False, overwrite=True), engine(), tasks(2)).searched == 2
    assert run(config(tmp_path / "fresh.jsonl", resume=False), engine(), tasks(2)).searched == 2


def test_the_dataset_file_is_never_the_output(tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"question": "What is 1+1?", "answer": "2"}) + "\n")
    before = data.read_text()
    with pytest.raises(PTSError, match="is the dataset file"):
        run(config(data, dataset=str(data)), engine())
    with pytest.raises(PTSError, match="is the dataset file"):
        run(config(tmp_path / "." / "qa.jsonl", dataset=str(data)), engine())
    assert data.read_text() == before and not progress_path(data).exists()


def test_tasks_sharing_an_id_are_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "out.jsonl"
    twins = tasks(2) + tasks(1)
    with pytest.raises(PTSError, match="share the item id '0'"):
        run(config(out), engine(), twins)
    assert not out.exists()


def test_too_little_free_space_is_refused_before_the_search(tmp_path, monkeypatch):
    import pts.store

    monkeypatch.setattr(pts.store, "MIN_FREE_BYTES", 2**60)
    eng = engine()
    with pytest.raises(PTSError, match="MiB free on the disk of"):
        run(config(tmp_path / "out.jsonl"), eng, tasks())
    assert eng.calls == 0 and not (tmp_path / "out.jsonl").exists()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 96 KiB tmpfs: a real full disk (needs root, as in CI)."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the full-disk test mounts a tmpfs and needs root")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_real_full_disk_stops_with_one_line_and_a_valid_file_and_resumes_once_there_is_room(
    tiny_disk, tmp_path, monkeypatch
):
    import pts.store

    out = tiny_disk / "out.jsonl"
    settings = dict(max_generations=10, num_samples=20)
    monkeypatch.setattr(pts.store, "MIN_FREE_BYTES", 0)
    with pytest.raises(PTSError, match="^the disk is full: cannot write .*run the same command again"):
        run(config(out, **settings), engine(), tasks(400))
    # Every file is whole JSON lines, and the lock is released.
    read_jsonl(out)
    done = [r for r in read_jsonl(progress_path(out)) if r.get("kind") == "item"]
    read_jsonl(tiny_disk / "out.jsonl.trace.jsonl")
    assert 0 < len(done) < 400 and not lock_path(out).exists()
    monkeypatch.undo()
    eng = engine()
    with pytest.raises(PTSError, match="MiB free"):  # a resume on the still-full disk is refused before sampling
        run(config(out, **settings), eng, tasks(400))
    assert eng.calls == 0
    # Given room, the same command finishes the run: nothing lost, nothing written twice.
    subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_disk)], check=True)
    summary = run(config(out, **settings), engine(), tasks(400))
    reference = tmp_path / "reference.jsonl"
    run(config(reference, **settings), engine(), tasks(400))
    assert summary.resumed == len(done)
    assert sorted(r["id"] for r in read_jsonl(out)) == sorted(r["id"] for r in read_jsonl(reference))


def test_nan_and_inf_are_refused_in_every_float_option():
    for name in ("temperature", "top_p", "prob_threshold", "min_prob", "ray_num_cpus"):
        for bad in (float("nan"), float("inf"), float("-inf")):
            with pytest.raises(PTSError, match=f"--{name.replace('_', '-')} must be a finite number"):
                config("x.jsonl", **{name: bad}).validate()


class LongContext(FakeEngine):
    context_length = 40


def test_prompts_too_long_for_the_context_are_skipped_before_sampling(tmp_path, caplog):
    eng = LongContext(step_p, SCRIPT, prompt_length=len(PROMPT), exact=False, seed=1)
    long = Task("x" * 35, "PASS", "long", "fake", "fake", PassFailOracle())
    summary = run(config(tmp_path / "out.jsonl", max_new_tokens=10), eng, [long, *tasks(2)])
    assert summary.too_long == 1 and summary.searched + summary.skipped == 2
    assert "1 too long for the model's context" in summary.format()
    assert all(len(p) < 35 for p in eng.prefixes)  # never sampled
    assert "item long: its prompt and --max-new-tokens 10 do not fit the model's context of 40" in caplog.text


def test_each_prompt_is_tokenized_once_with_a_context_length(tmp_path, monkeypatch):
    eng = LongContext(step_p, SCRIPT, prompt_length=len(PROMPT), exact=False, seed=1)
    texts, tokenize = [], type(eng.tokenizer).__call__

    def counted(self, text, *args, **kwargs):
        texts.append(text)
        return tokenize(self, text, *args, **kwargs)

    monkeypatch.setattr(type(eng.tokenizer), "__call__", counted)
    queries = tasks(3)
    summary = run(config(tmp_path / "out.jsonl", max_new_tokens=10), eng, queries)
    assert summary.searched + summary.skipped == 3
    assert sorted(texts) == sorted(t.prompt for t in queries)  # the length check's ids are the search's


def _records(path):
    """Records without their write time: what must not depend on how the run was scheduled."""
    return sorted(
        json.dumps({k: v for k, v in r.items() if k != "timestamp"}, sort_keys=True) for r in read_jsonl(path)
    )


def test_same_records_whatever_the_concurrency_the_selection_or_an_interruption(tmp_path):
    # The path-consistent engine with pooling and verification on (the defaults): every search feature.
    script, p_script, follow = planted_scenario(random.Random(3), length=16, pivots=2)

    def branching():
        return BranchingFakeEngine(p_script, script, prompt_length=3, follow=follow, seed=0)

    queries = [Task(f"q{i}?", "PASS", str(i), "fake", "fake", PassFailOracle()) for i in range(8)]
    settings = dict(num_samples=8, max_generations=3, progress=False, min_prob=0.0, max_prob=1.0)
    reference = tmp_path / "p1.jsonl"
    run(RunConfig(output_path=str(reference), parallel=1, **settings), branching(), queries)
    expected = _records(reference)
    assert expected
    for parallel in (3, 8):
        out = tmp_path / f"p{parallel}.jsonl"
        run(RunConfig(output_path=str(out), parallel=parallel, **settings), branching(), queries)
        assert _records(out) == expected, parallel
    alone = tmp_path / "alone.jsonl"
    run(RunConfig(output_path=str(alone), parallel=4, **settings), branching(), queries[:1])
    assert _records(alone) == [r for r in expected if json.loads(r)["dataset_item_id"] == "0"]

    class Stopping(BranchingFakeEngine):
        def sample(self, requests, params):
            self.calls_left = getattr(self, "calls_left", 12) - 1
            if self.calls_left == 0:
                raise KeyboardInterrupt
            return super().sample(requests, params)

    resumed = tmp_path / "resumed.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run(
            RunConfig(output_path=str(resumed), parallel=3, **settings),
            Stopping(p_script, script, prompt_length=3, follow=follow, seed=0),
            queries,
        )
    run(RunConfig(output_path=str(resumed), parallel=3, **settings), branching(), queries)
    assert _records(resumed) == expected
