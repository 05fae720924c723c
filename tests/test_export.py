"""`pts export`: reading pts records and the original tool's files; the command: bad input, --hf-push.

Each format's export has its own module: test_export_dpo.py, test_export_steering.py, test_export_control_vector.py;
export_samples.py holds what they share."""

import json

import pytest

from pts.cli import main as cli_main
from pts.errors import PTSError
from pts.export.records import attach_token_ids, read_pivots
from pts.jobs.export import ExportConfig
from pts.jobs.export import run as export

# --- reading records -------------------------------------------------------------------------------------------


def test_reads_pts_records_and_the_original_tools_shape(real, original, embedded_model):
    _, tok, _ = embedded_model
    pts_pivots = read_pivots(real[0])
    assert [p.source for p in pts_pivots] == ["pts"] * len(real[1])
    assert [p.context_ids for p in pts_pivots] == [r["pivot_context_ids"] for r in real[1]]
    old = read_pivots(original[0])
    assert all(p.source == "original" and p.context_ids is None for p in old)
    # is_positive, when missing, comes from the sign of prob_delta
    assert [p.is_positive for p in old] == [r["prob_delta"] > 0 for r in real[1]]
    assert attach_token_ids(old, tok) == len(old)
    for p, r in zip(old, real[1]):
        assert p.retokenized and p.prompt_length == r["prompt_length"]
        assert p.pivot_token_id == r["pivot_token_id"]
        assert tok.decode(p.context_ids, skip_special_tokens=False) == r["pivot_context"]
    # Sampled text is not always tokenized the canonical way: that is why pts records keep the ids.
    same = [p.context_ids == r["pivot_context_ids"] for p, r in zip(old, real[1])]
    assert attach_token_ids(pts_pivots, tok) == 0 and not any(p.retokenized for p in pts_pivots)
    assert any(same)
    # ids that do not decode to the context (another model's tokenizer) are replaced, and the record says so
    wrong = read_pivots(real[0])[:1]
    wrong[0].context_ids = [t + 1 for t in wrong[0].context_ids]
    assert attach_token_ids(wrong, tok) == 1 and wrong[0].retokenized and wrong[0].first_tokens == []
    assert wrong[0].context_ids == tok(real[1][0]["pivot_context"], add_special_tokens=False)["input_ids"]


# --- command line ----------------------------------------------------------------------------------------------


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, real, capsys):
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text(json.dumps(real[1][0]) + "\n{not json\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"}) + "\n")
    src = str(real[0])
    out = tmp_path / "out.jsonl"
    cases = {
        "missing file": ["--input-path", str(tmp_path / "nope.jsonl"), "--format", "dpo"],
        "bad json line": ["--input-path", str(bad_json), "--format", "dpo"],
        "no records": ["--input-path", str(empty), "--format", "steering"],
        "not pivotal tokens": ["--input-path", str(pairs), "--format", "dpo"],
        "unknown format": ["--input-path", src, "--format", "parquet"],
        "unwritable output": [
            "--input-path",
            src,
            "--format",
            "dpo",
            "--output-path",
            str(tmp_path / "no" / "x.jsonl"),
        ],
        "output is a directory": ["--input-path", src, "--format", "dpo", "--output-path", str(tmp_path)],
        "bad layers": ["--input-path", src, "--format", "steering", "--layer-nums", "x"],
        "push without repo": ["--input-path", src, "--format", "dpo", "--hf-push"],
        "bad delta": ["--input-path", src, "--format", "dpo", "--min-prob-delta", "2"],
    }
    for name, args in cases.items():
        if "--output-path" not in args:
            args = [*args, "--output-path", str(out)]
        try:
            code = cli_main(["export", *args])
        except SystemExit as e:  # argparse's own errors
            code = e.code
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, name
        assert len(err) == 1 and "error" in err[0] and "Traceback" not in err[0], (name, err)
        assert not out.exists(), name
    assert not list(tmp_path.glob(".*.tmp"))


def test_hf_push_hands_the_written_file_to_the_hub_module(real, embedded_loaded, tmp_path, monkeypatch):
    from huggingface_hub import constants

    import pts.hub

    calls = []
    monkeypatch.setattr(pts.hub, "push_dataset", lambda *a, **k: calls.append((a, k)) or "https://hub/x")
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    out = tmp_path / "dpo.jsonl"
    # offline (as every test here is): refused before anything is exported
    with pytest.raises(PTSError, match="offline"):
        export(
            ExportConfig(
                input_path=str(real[0]), format="dpo", output_path=str(out), hf_push=True, hf_repo_id="alice/pivots"
            ),
            loaded=embedded_loaded,
        )
    assert not out.exists() and not calls
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    summary = export(
        ExportConfig(
            input_path=str(real[0]),
            format="dpo",
            output_path=str(out),
            hf_push=True,
            hf_repo_id="alice/pivots",
            private=True,
            command="pts export ...",
        ),
        loaded=embedded_loaded,
    )
    assert calls == [
        (
            (str(out), "alice/pivots"),
            {"private": True, "model": real[1][0]["model_id"], "fmt": "dpo", "command": "pts export ..."},
        )
    ]
    assert summary.url == "https://hub/x" and out.exists()
    # from the command line, the card gets the command that made the file
    calls.clear()
    assert (
        cli_main(
            [
                "export",
                "--input-path",
                str(real[0]),
                "--format",
                "dpo",
                "--output-path",
                str(out),
                "--hf-push",
                "--hf-repo-id",
                "alice/pivots",
            ]
        )
        == 0
    )
    assert calls[0][1]["command"] == (
        f"pts export --input-path {real[0]} --format dpo --output-path {out} --hf-push --hf-repo-id alice/pivots"
    )
