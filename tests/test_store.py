"""Output that survives interruption: resume, idempotence, repair, refusal to mix settings."""

import json

import pytest

from pts.engines.fake import FakeEngine, PassFailOracle, token
from pts.errors import PTSError
from pts.runner import RunConfig, run
from pts.store import RunStore, check_writable, progress_path, read_jsonl
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
    store = RunStore(out, {"a": 1})
    rec = {"id": "x", "dataset_item_id": "0"}
    assert store.write_item("0", [rec, rec], {}) == 1
    assert RunStore(out, {"a": 1}).write_item("1", [rec], {}) == 0
    assert len(read_jsonl(out)) == 1


def test_original_tool_file_without_progress_is_resumed_not_clobbered(tmp_path):
    out = tmp_path / "old.jsonl"
    out.write_text(json.dumps({"query": "q", "pivot_token": "x", "dataset_item_id": "7"}) + "\n")
    store = RunStore(out, {})
    assert store.is_done("7") and len(read_jsonl(out)) == 1 and progress_path(out).exists()


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
