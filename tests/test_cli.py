"""What a user sees from `pts` on bad input: one line, exit code 2, no file written."""

import dataclasses
import json

import pytest
from conftest import run_pts

from pts.cli import build_parser
from pts.jobs.run import RunConfig


def pts(*args, cwd):
    return run_pts(*args, cwd=cwd, timeout=120)


@pytest.fixture
def qa_file(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps({"question": f"What is {i}+1?", "answer": str(i + 1)}) for i in range(3)))
    return path


def bad_inputs(tmp_path, qa_file):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "nofields.jsonl").write_text(json.dumps({"text": "hi", "label": 1}) + "\n")
    return {
        "threshold": ["--dataset", str(qa_file), "--prob-threshold", "1.5"],
        "range": ["--dataset", str(qa_file), "--min-prob", "0.9", "--max-prob", "0.1"],
        "no dataset file": ["--dataset", str(tmp_path / "missing.jsonl")],
        "empty dataset": ["--dataset", str(tmp_path / "empty.jsonl")],
        "missing fields": ["--dataset", str(tmp_path / "nofields.jsonl")],
        "unknown rg task": ["--dataset", "rg:no_such_task"],
        "hub offline": ["--dataset", "nobody/no-such-dataset"],
        "unwritable output": ["--dataset", str(qa_file), "--output-path", str(tmp_path / "nodir" / "out.jsonl")],
        "unknown model": ["--dataset", str(qa_file), "--model", "no-such-model-alias"],
        "missing gguf": ["--dataset", str(qa_file), "--model", str(tmp_path / "nope.gguf")],
        "unknown option value": ["--dataset", str(qa_file), "--split-at", "nowhere"],
        "confidence": ["--dataset", str(qa_file), "--confidence", "1.5"],
        "nan temperature": ["--dataset", str(qa_file), "--temperature", "nan"],
        "infinite threshold": ["--dataset", str(qa_file), "--prob-threshold", "inf"],
        "output is the dataset": ["--dataset", str(qa_file), "--output-path", str(qa_file)],
        "parent is a file": ["--dataset", str(qa_file), "--output-path", str(qa_file / "out.jsonl")],
    }


def test_every_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, qa_file):
    for name, args in bad_inputs(tmp_path, qa_file).items():
        out = tmp_path / "out.jsonl"
        if "--output-path" not in args:
            args = [*args, "--output-path", str(out)]
        proc = pts("run", *args, cwd=tmp_path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (name, proc.stderr)
        assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in proc.stderr, (name, proc.stderr)
        assert not out.exists() and not (tmp_path / "out.jsonl.progress").exists(), name


def test_error_lines_say_what_is_wrong(tmp_path, qa_file):
    cases = {
        "parent is a file": ([str(qa_file / "out.jsonl")], f"{qa_file} is a file, not a directory"),
        "output is the dataset": ([str(qa_file)], "is the dataset file"),
    }
    for name, (out, expected) in cases.items():
        proc = pts("run", "--dataset", str(qa_file), "--output-path", *out, cwd=tmp_path)
        assert expected in proc.stderr, (name, proc.stderr)
    assert json.loads(qa_file.read_text().splitlines()[0])["answer"] == "1"


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--temperature", "nan"],
        ["run", "--min-prob=-inf"],
        ["critical", "--temperature", "inf"],
        ["critical", "--low-threshold", "nan"],
        ["eval", "--model", "m", "--temperature", "nan"],
        ["export", "--input-path", "x.jsonl", "--min-prob-delta", "nan"],
        ["contrast", "--beta", "inf"],
        ["train", "--input-path", "x", "--output-dir", "o", "--learning-rate", "nan"],
    ],
)
def test_every_float_option_refuses_nan_and_inf(tmp_path, command):
    proc = pts(*command, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "must be a finite number" in lines[0], proc.stderr
    assert not any(tmp_path.iterdir())


def test_cli_flags_mirror_the_config_fields():
    parser = build_parser()
    args = parser.parse_args(
        [
            "run",
            "--num-samples",
            "7",
            "--no-chat-template",
            "--split-at",
            "middle",
            "--max-pairs",
            "3",
            "--no-resume",
            "--confidence",
            "0.9",
            "--parallel",
            "2",
        ]
    )
    assert (args.num_samples, args.chat_template, args.split_at, args.max_pairs, args.resume) == (
        7,
        False,
        "middle",
        3,
        False,
    )
    assert (args.confidence, args.parallel) == (0.9, 2)
    defaults = parser.parse_args(["run"])
    for f in dataclasses.fields(RunConfig):
        assert getattr(defaults, f.name) == getattr(RunConfig(), f.name), f.name
    assert (defaults.prob_threshold, defaults.temperature, defaults.top_p, defaults.top_k, defaults.min_p) == (
        0.2,
        0.6,
        0.95,
        20,
        0.0,
    )
    assert defaults.output_path == "pivotal_tokens.jsonl"


def test_shared_option_checks_name_the_flag_and_let_unset_values_pass():
    from pts.errors import PTSError
    from pts.evaluate import EvalSettings
    from pts.export.dpo import DPOSettings

    DPOSettings(max_pairs=None, num_samples=None).validate()  # unset counts pass
    with pytest.raises(PTSError, match=r"^--max-new-tokens must be at least 1, got 0$"):
        EvalSettings(max_new_tokens=0).validate()
    with pytest.raises(PTSError, match=r"^--min-prob-delta must be in \(0, 1\], got 1.5$"):
        DPOSettings(min_prob_delta=1.5).validate()
    good = {"temperature": 0.0, "top_p": 0.0, "top_k": 0, "min_p": 1.0}  # greedy, top-1, no top-k: all allowed
    EvalSettings(**good).validate()
    for bad, flag in [
        ({"temperature": -0.1}, "--temperature"),
        ({"top_p": 1.01}, "--top-p"),
        ({"min_p": -0.5}, "--min-p"),
        ({"top_k": -1}, "--top-k"),
        ({"top_p": float("nan")}, "--top-p"),
    ]:
        with pytest.raises(PTSError, match=f"^{flag} must"):
            EvalSettings(**{**good, **bad}).validate()
