"""Output paths of the resumable commands (`pts run`, `pts critical`), checked in their one driver
(pts.resumable): no input is ever written, two spellings of one file are one output, a setting that changes
results is never mixed on resume, and every bad path is one line before anything is created."""

import json
import os
import subprocess
import sys

import pytest

from pts.engines.fake import FakeEngine, FakeTokenizer, PassFailOracle, token
from pts.errors import PTSError
from pts.jobs.critical import CriticalConfig
from pts.jobs.critical import run as critical
from pts.jobs.run import RunConfig
from pts.jobs.run import run as search
from pts.store import OutputLock, lock_path, progress_path, read_jsonl, trace_path
from pts.tasks.task import Task

PROMPT = "q?"
SCRIPT = [token(c) for c in "abcXdefYgh"]
SIDECARS = {"progress": progress_path, "trace": trace_path, "lock": lock_path}


def step_p(response):
    text = "".join(chr(t - 16) for t in response if t >= 16)
    return 0.1 if "Y" in text else 0.9 if "X" in text else 0.5


def engine():
    return FakeEngine(step_p, SCRIPT, prompt_length=len(PROMPT), exact=False, seed=1)


def tasks(n=3):
    return [Task(PROMPT, "PASS", str(i), "fake", "fake", PassFailOracle()) for i in range(n)]


def run_config(out, **kw):
    settings = dict(num_samples=10, max_generations=3, split_at="middle", progress=False, pool=False, verify=False)
    return RunConfig(output_path=str(out), **{**settings, **kw})


def critical_config(out, **kw):
    settings = dict(num_trajectories=4, rollouts=8, pass_at_k=0, max_new_tokens=24, seed=1, progress=False)
    return CriticalConfig(output_path=str(out), **{**settings, **kw})


COMMANDS = {
    "run": lambda out, eng=None, tasks=None, **kw: search(run_config(out, **kw), eng or engine(), tasks),
    "critical": lambda out, eng=None, tasks=None, **kw: critical(critical_config(out, **kw), eng or engine(), tasks),
}


def qa_file(path, ids=None):
    rows = [{"question": f"What is {i}+1?", "answer": str(i + 1)} for i in range(3)]
    for row, item_id in zip(rows, ids or ()):
        row["id"] = item_id
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def files(directory):
    return sorted(p.name for p in directory.iterdir())


# --- no input is ever an output or one of its sidecars ---------------------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("sidecar", sorted(SIDECARS))
def test_a_sidecar_of_the_output_that_is_the_dataset_is_refused(tmp_path, command, sidecar):
    out = tmp_path / "ds"
    data = qa_file(SIDECARS[sidecar](out))  # e.g. ds.trace.jsonl, which a run on ds would delete as stale
    before = data.read_text()
    # Only ds.trace.jsonl has a suffix a dataset loads from; the others are checked all the same.
    given = {} if sidecar == "trace" else {"tasks": tasks()}
    with pytest.raises(PTSError, match=f"its {sidecar} file .* is the dataset file given to --dataset"):
        COMMANDS[command](out, dataset=str(data), **given)
    assert data.read_text() == before and files(tmp_path) == [data.name]


def test_critical_refuses_an_output_whose_trace_file_is_its_input_file(tmp_path):
    out = tmp_path / "cd"
    rows = trace_path(out)
    rows.write_text(json.dumps({"question": "q?", "answer": "PASS", "response": "abc FAIL"}) + "\n")
    with pytest.raises(PTSError, match="is the dataset file given to --input-path"):
        critical(critical_config(out, input_path=str(rows)), engine())
    assert files(tmp_path) == [rows.name]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_overwrite_onto_the_dataset_is_refused_by_every_command(tmp_path, command):
    data = qa_file(tmp_path / "cd.jsonl")
    before = data.read_text()
    for overwrite in (False, True):
        with pytest.raises(PTSError, match="is the dataset file given to --dataset"):
            COMMANDS[command](data, dataset=str(data), overwrite=overwrite)
    assert data.read_text() == before and files(tmp_path) == ["cd.jsonl"]


def test_an_output_that_is_a_symlink_to_the_dataset_is_refused(tmp_path):
    data = qa_file(tmp_path / "qa.jsonl")
    (tmp_path / "out.jsonl").symlink_to(data)
    for command in COMMANDS.values():
        with pytest.raises(PTSError, match="is the dataset file"):
            command(tmp_path / "out.jsonl", dataset=str(data), overwrite=True)
    assert files(tmp_path) == ["out.jsonl", "qa.jsonl"]


# --- one file, one lock, whatever its spelling -------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_symlink_alias_of_an_output_being_written_is_refused(tmp_path, command):
    real = tmp_path / "real.jsonl"
    alias = tmp_path / "alias.jsonl"
    real.touch()
    alias.symlink_to(real)
    with OutputLock(real):  # another run writing real.jsonl
        with pytest.raises(PTSError, match="being written by another pts process"):
            COMMANDS[command](alias, tasks=tasks())
    assert real.read_text() == "" and files(tmp_path) == ["alias.jsonl", "real.jsonl"]


def test_runs_through_an_alias_and_the_file_share_one_progress(tmp_path):
    real = tmp_path / "real.jsonl"
    alias = tmp_path / "alias.jsonl"
    real.touch()
    alias.symlink_to(real)
    first = COMMANDS["run"](alias, tasks=tasks())
    assert first.searched + first.skipped == 3 and progress_path(real).exists()
    again = COMMANDS["run"](real, tasks=tasks())
    assert again.resumed == 3 and again.pivots == 0
    ids = [r["id"] for r in read_jsonl(real)]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("kind", ["dangling", "loop"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_dangling_symlink_or_a_loop_as_output_is_refused(tmp_path, command, kind):
    out = tmp_path / "out.jsonl"
    if kind == "dangling":
        out.symlink_to(tmp_path / "nowhere" / "x.jsonl")
    else:
        (tmp_path / "other.jsonl").symlink_to(out)
        out.symlink_to(tmp_path / "other.jsonl")
    with pytest.raises(PTSError, match="symlink to .* which does not exist" if kind == "dangling" else "symlink loop"):
        COMMANDS[command](out, tasks=tasks())
    assert out.is_symlink() and not (tmp_path / "nowhere").exists()
    assert sorted(files(tmp_path)) == (["out.jsonl"] if kind == "dangling" else ["other.jsonl", "out.jsonl"])


# --- settings that change results, on resume ---------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_records_made_with_another_temperature_are_not_resumed_without_their_progress(tmp_path, command):
    out = tmp_path / "out.jsonl"
    COMMANDS[command](out, tasks=tasks(), temperature=1.3)
    assert read_jsonl(out)
    progress_path(out).unlink()
    before = out.read_text()
    with pytest.raises(PTSError, match="made with temperature 1.3, this run's is 0.6"):
        COMMANDS[command](out, tasks=tasks())
    assert out.read_text() == before
    assert COMMANDS[command](out, tasks=tasks(), temperature=1.3).resumed == len(
        {r["dataset_item_id"] for r in read_jsonl(out)}
    )


# --- bad paths: one line, nothing created ------------------------------------------------------------------------


@pytest.fixture
def dev_null_sidecars():
    """/dev/null's would-be sidecars; the test fails if one appears (and removes it)."""
    paths = [f(os.devnull) for f in SIDECARS.values()]
    yield paths
    for p in paths:
        if p.exists():
            p.unlink()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_dev_null_as_output_is_one_line_and_leaves_nothing_in_dev(command, dev_null_sidecars):
    with pytest.raises(PTSError, match="is not a regular file") as err:
        COMMANDS[command](os.devnull, tasks=tasks())
    assert "\n" not in str(err.value)
    assert not any(p.exists() for p in dev_null_sidecars)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_output_name_too_long_for_its_sidecars_is_one_line(tmp_path, command):
    for length in (300, 250):  # too long itself; fits, but its .progress temporary file would not
        with pytest.raises(PTSError, match=f"name is {length} bytes long") as err:
            COMMANDS[command](tmp_path / ("o" * length), tasks=tasks())
        assert "\n" not in str(err.value)
    assert files(tmp_path) == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("sidecar", ["lock", "progress", "trace"])
def test_a_sidecar_that_is_a_directory_is_one_line(tmp_path, command, sidecar):
    out = tmp_path / "out.jsonl"
    SIDECARS[sidecar](out).mkdir()
    with pytest.raises(PTSError, match=f"the {sidecar} file of --output-path .* is a directory"):
        COMMANDS[command](out, tasks=tasks())
    assert files(tmp_path) == [SIDECARS[sidecar](out).name]


def test_a_progress_line_without_its_item_id_is_one_line(tmp_path):
    out = tmp_path / "out.jsonl"
    COMMANDS["run"](out, tasks=tasks())
    lines = progress_path(out).read_text().splitlines()
    lines.append(json.dumps({"kind": "item", "status": "searched"}))
    progress_path(out).write_text("\n".join(lines) + "\n")
    with pytest.raises(PTSError, match="has no dataset_item_id, so it is not a progress file pts wrote"):
        COMMANDS["run"](out, tasks=tasks())


def pts(*args, cwd):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-m", "pts", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_command_line_gives_one_line_for_each_bad_output(tmp_path, command, dev_null_sidecars):
    """Refused before any model loads: these commands never start the default model."""
    data = qa_file(tmp_path / "qa.jsonl")
    (tmp_path / "locked.jsonl.lock").mkdir()
    (tmp_path / "dangling.jsonl").symlink_to(tmp_path / "missing.jsonl")
    cases = {
        os.devnull: "is not a regular file",
        str(tmp_path / ("o" * 300)): "name is 300 bytes long",
        str(tmp_path / "locked.jsonl"): "is a directory",
        str(tmp_path / "dangling.jsonl"): "which does not exist",
        str(tmp_path / "qa"): "would write its trace file",  # qa.trace.jsonl would be written: the dataset
    }
    data = data.rename(tmp_path / "qa.trace.jsonl")
    before = data.read_text()
    runs = [([out], expected) for out, expected in cases.items()]
    runs.append(([str(data), "--overwrite"], "is the dataset file given to --dataset"))
    for args, expected in runs:
        proc = pts(command, "--dataset", str(data), "--output-path", *args, cwd=tmp_path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], (args, proc.stderr)
    assert data.read_text() == before
    assert files(tmp_path) == ["dangling.jsonl", "locked.jsonl.lock", "qa.trace.jsonl"]
    assert not any(p.exists() for p in dev_null_sidecars)


# --- pts critical behind pts run ---------------------------------------------------------------------------------


def test_critical_refuses_repeated_item_ids_like_run(tmp_path):
    data = qa_file(tmp_path / "qa.jsonl", ids=["x", "x@row2", "x"])  # the third is renamed x@row2: a collision
    for command in COMMANDS.values():
        with pytest.raises(PTSError, match="share the item id 'x@row2'"):
            command(tmp_path / "out.jsonl", dataset=str(data))
    assert files(tmp_path) == ["qa.jsonl"]


class ShortContext(FakeEngine):
    context_length = 40


def test_critical_skips_a_prompt_too_long_for_the_context_with_a_warning(tmp_path, caplog):
    eng = ShortContext(step_p, SCRIPT, prompt_length=len(PROMPT), exact=False, seed=1)
    long = Task("x" * 35, "PASS", "long", "fake", "fake", PassFailOracle())
    summary = critical(critical_config(tmp_path / "out.jsonl", max_new_tokens=10), eng, [long, *tasks(2)])
    assert summary.too_long == 1 and summary.analysed + summary.no_incorrect == 2
    assert "1 too long for the model's context" in summary.format()
    assert all(len(p) < 35 for p in eng.prefixes)  # never sampled
    assert "item long: its prompt and --max-new-tokens 10 do not fit the model's context of 40" in caplog.text
    done = [r for r in read_jsonl(progress_path(tmp_path / "out.jsonl")) if r.get("kind") == "item"]
    assert {r["dataset_item_id"]: r["status"] for r in done}["long"] == "too_long"


class Vocabulary(FakeTokenizer):
    def __len__(self):
        return 144


@pytest.mark.parametrize("bad", [2**70, 144, -1])
def test_critical_response_ids_outside_the_vocabulary_are_one_line(tmp_path, bad):
    rows = tmp_path / "rows.jsonl"
    ids = [token("a"), bad, 0]
    rows.write_text(json.dumps({"question": "q?", "answer": "PASS", "response": "a", "response_ids": ids}) + "\n")
    eng = engine()
    eng.tokenizer = Vocabulary()
    from pts.tasks.oracles import ORACLES, register_oracle

    register_oracle("pass_fail", PassFailOracle)
    try:
        with pytest.raises(PTSError, match=f"item 0: response_ids holds {bad}, which is not a token id") as err:
            critical(critical_config(tmp_path / "out.jsonl", input_path=str(rows), oracle="pass_fail"), eng)
    finally:
        ORACLES.unregister("pass_fail")
    assert "\n" not in str(err.value) and eng.calls == 0
