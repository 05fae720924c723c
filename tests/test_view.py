"""`pts view`: shapes of every file kind, escaping, the trace's curve, bad input, and --serve (no browser here)."""

import json
import re
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest
from conftest import write_jsonl
from view_samples import (
    CRITICAL_TOKENS,
    ESTIMATES,
    HOSTILE_QUERY,
    HOSTILE_TOKEN,
    PROMPT,
    QUERY,
    SAMPLING_PROBS,
    TOKENS,
    VERIFIED_ANSWER,
    critical_lines,
    pivot_record,
    planted_records,
    trace_line,
    write_planted,
)

from pts.cli import main as pts_main
from pts.errors import PTSError
from pts.formats.critical import critical_split
from pts.view import build_report, render_report
from pts.view.collect import collect, judged_exactly
from pts.view.page import embed_json
from pts.view.serve import make_server
from pts.view.shapes import SHAPES, read_view_file, shape_of
from pts.view.trajectories import PivotPlace, response_start, solutions_from_contexts


def page_data(page: str) -> dict:
    """The JSON block of a rendered page, parsed as the browser's JSON.parse would."""
    block = re.search(r'<script type="application/json" id="pts-data">(.*?)</script>', page, re.S)
    assert block, "no data block"
    return json.loads(block.group(1))


def test_every_kind_is_recognised_by_its_fields(tmp_path):
    files = write_planted(tmp_path)
    assert set(files) == set(SHAPES)
    for kind, path in files.items():
        assert read_view_file(path).shape == kind, kind


def test_unknown_and_mixed_files_are_refused_naming_file_and_record(tmp_path):
    assert shape_of({"question": "q", "answer": "a"}) is None
    unknown = write_jsonl(tmp_path / "rows.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(PTSError, match=r"rows.jsonl: record 1 is of no shape"):
        read_view_file(unknown)
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [pivot_record(1), {"prompt": "p", "chosen": "a", "rejected": "b"}])
    with pytest.raises(PTSError, match=r"record 2 is DPO pairs \(original PTS tool\), but record 1 is pivotal tokens"):
        read_view_file(mixed)


def bad_inputs(tmp_path) -> dict[str, list[str]]:
    good = write_jsonl(tmp_path / "good.jsonl", planted_records())
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "broken.jsonl").write_text(json.dumps(pivot_record(1)) + "\n{not json\n")
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    write_jsonl(tmp_path / "unknown.jsonl", [{"text": "hello"}])
    write_jsonl(tmp_path / "badprob.jsonl", [{**pivot_record(1), "prob_before": 3.5}])
    write_jsonl(tmp_path / "badtrace.jsonl", [{"solution_tokens": ["a"], "estimates": [{"position": 9}]}])
    return {
        "missing file": [str(tmp_path / "nope.jsonl")],
        "empty file": [str(tmp_path / "empty.jsonl")],
        "not json": [str(tmp_path / "broken.jsonl")],
        "not utf-8": [str(tmp_path / "binary.jsonl")],
        "unknown shape": [str(tmp_path / "unknown.jsonl")],
        "probability out of range": [str(tmp_path / "badprob.jsonl")],
        "bad trace": [str(good), str(tmp_path / "badtrace.jsonl")],
        "a directory": [str(tmp_path)],
        "output over an input": [str(good), "--output", str(good)],
        "output in a missing directory": [str(good), "--output", str(tmp_path / "no" / "r.html")],
        "port without serve": [str(good), "--port", "9"],
    }


def test_every_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    for name, args in bad_inputs(tmp_path).items():
        out = tmp_path / "report.html"
        if "--output" not in args:
            args = [*args, "--output", str(out)]
        code = pts_main(["view", *args])
        err = capsys.readouterr().err
        assert code == 2, (name, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("pts view: error: "), (name, err)
        assert not out.exists(), name
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_failed_report_leaves_the_previous_one_untouched(tmp_path, capsys):
    good = write_jsonl(tmp_path / "good.jsonl", planted_records())
    out = tmp_path / "report.html"
    assert pts_main(["view", str(good), "--output", str(out)]) == 0
    first = out.read_text()
    write_jsonl(tmp_path / "late.jsonl", [{"text": "?"}])
    assert pts_main(["view", str(good), str(tmp_path / "late.jsonl"), "--output", str(out)]) == 2
    assert out.read_text() == first
    assert "report: 4 pivotal tokens" in capsys.readouterr().out


def test_record_text_cannot_become_markup(tmp_path):
    files = write_planted(tmp_path)
    page, _ = render_report([files["pivotal_tokens"], files["dpo"]])
    # Only the page's own two script elements exist; the hostile text is inside the JSON block, escaped.
    assert page.count("<script") == 2 and "<img" not in page and "</script> What" not in page
    assert "\\u003cscript\\u003ewindow.__pwned" in page
    data = page_data(page)
    assert HOSTILE_QUERY in data["queries"]
    assert any(HOSTILE_TOKEN == p["token"] for p in data["pivots"])
    # The script puts text into the DOM as text only.
    script = page[page.rindex("<script>") :]
    assert not re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML\(|document\.write|eval\(|new Function", script)


def test_embedded_json_round_trips_what_would_end_a_script_block():
    nasty = {"a": "</script><script>alert(1)</script>", "b": "<!-- x", "c": "a\u2028b\u2029c & d"}
    text = embed_json(nasty)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == nasty


def test_the_page_loads_nothing_from_anywhere(tmp_path):
    files = write_planted(tmp_path)
    page, _ = render_report(list(files.values()))
    assert "default-src 'none'" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page


def test_trace_gives_the_exact_solution_and_its_curve(tmp_path):
    files = write_planted(tmp_path)
    data = collect([files["pivotal_tokens"]]).to_dict()
    assert data["files"][0]["trace"].endswith("pivots.jsonl.trace.jsonl")
    planted = next(s for s in data["solutions"] if s["item"] == "0")
    assert planted["curve_source"] == "trace" and planted["length"] == len(TOKENS)
    assert "".join(t for t, _ in planted["segments"]) == "".join(TOKENS)
    marked = {t: data["pivots"][i] for t, i in planted["segments"] if i >= 0}
    assert set(marked) == {" answer", " 7", "."}
    assert (marked[" 7"]["positive"], marked[" answer"]["positive"]) == (True, False)
    assert [(c["position"], c["successes"], c["samples"]) for c in planted["curve"]] == [
        (i, k, n) for i, (k, n) in sorted(ESTIMATES.items())
    ]
    by_position = {c["position"]: c for c in planted["curve"]}
    assert by_position[4]["p"] == pytest.approx(0.9) and by_position[4]["low"] < 0.9 < by_position[4]["high"]
    assert by_position[5]["low"] == by_position[5]["high"] == 1.0  # terminal: judged once, exactly
    assert by_position[5]["terminal"] and not by_position[4]["terminal"]
    assert planted["tokens"] == TOKENS


def test_curve_and_labels_are_the_same_numbers_or_named_apart(tmp_path):
    files = write_planted(tmp_path)
    data = collect([files["pivotal_tokens"]]).to_dict()
    planted = next(s for s in data["solutions"] if s["item"] == "0")
    curve = {c["position"]: c for c in planted["curve"]}
    pivots = {data["pivots"][i]["token"]: data["pivots"][i] for i in planted["pivots"]}
    # every pivot's search estimate is the curve's point at its position and the next, counts and all
    for p in pivots.values():
        for pos, side in ((p["position"], "before"), (p["position"] + 1, "after")):
            assert p["search"][side] == curve[pos]["p"]
            assert (p["search"][f"k_{side}"], p["search"][f"n_{side}"]) == (
                curve[pos]["successes"],
                curve[pos]["samples"],
            )
    # a verified pivot's own numbers are the verification's, which differ from the curve, and are drawn apart
    answer = pivots[" answer"]
    assert answer["verified"] is True and (answer["k_before"], answer["n_before"]) == VERIFIED_ANSWER[0]
    assert abs(answer["before"] - curve[1]["p"]) > 0.01
    assert (answer["k_after"], answer["n_after"]) == VERIFIED_ANSWER[1]
    assert (answer["search"]["before"], answer["search"]["after"]) == (curve[1]["p"], curve[2]["p"])
    # an unverified pivot's own numbers are the search's
    assert pivots[" 7"]["verified"] is False and pivots[" 7"]["before"] == curve[3]["p"]


def test_a_terminal_end_is_judged_exactly(tmp_path):
    files = write_planted(tmp_path)
    data = collect([files["pivotal_tokens"]]).to_dict()
    stop = next(p for p in data["pivots"] if p["token"] == ".")
    assert stop["terminal_after"] and not stop["terminal_before"]
    assert stop["search"]["terminal_after"]  # the trace's estimate after the last token is terminal too
    # one rollout alone is not an exact judgement: pts writes a terminal end as one sample and a point interval
    assert judged_exactly(1, [1.0, 1.0]) and judged_exactly(1, [0.0, 0.0])
    assert not judged_exactly(1, [0.2, 1.0]) and not judged_exactly(10, [1.0, 1.0]) and not judged_exactly(1, None)


def test_the_sampling_bound_is_drawn_only_when_the_run_kept_it(tmp_path):
    files = write_planted(tmp_path)
    data = collect([files["pivotal_tokens"]]).to_dict()
    planted = next(s for s in data["solutions"] if s["item"] == "0")
    assert planted["bound"] == [[i, round(1 - pi, 4)] for i, pi in enumerate(SAMPLING_PROBS)]
    assert planted["threshold"] == 0.2
    assert {p["token"]: p["sampling_prob"] for p in data["pivots"] if p["item"] == "0"} == {
        TOKENS[i]: SAMPLING_PROBS[i] for i in (1, 3, 4)
    }
    # records and trace from before the field: no bound, no sampling_prob
    old = tmp_path / "old"
    old.mkdir()
    records = write_jsonl(old / "p.jsonl", planted_records(sampling=False))
    write_jsonl(old / "p.jsonl.trace.jsonl", [trace_line(sampling=False)])
    data = collect([records]).to_dict()
    assert all(s["bound"] == [] for s in data["solutions"])
    assert all(p["sampling_prob"] is None for p in data["pivots"])
    # records with the field but no trace: the bound at the pivots only
    data = collect([write_jsonl(old / "q.jsonl", planted_records())]).to_dict()
    planted = next(s for s in data["solutions"] if s["item"] == "0")
    assert planted["curve_source"] == "records" and planted["bound"] == [
        [i, round(1 - SAMPLING_PROBS[i], 4)] for i in (1, 3, 4)
    ]


def test_a_bad_sampling_probs_field_is_one_line(tmp_path):
    records = write_jsonl(tmp_path / "p.jsonl", planted_records())
    write_jsonl(tmp_path / "p.jsonl.trace.jsonl", [{**trace_line(), "sampling_probs": [0.5]}])
    with pytest.raises(PTSError, match="sampling_probs must be one probability"):
        collect([records])


def test_a_trace_named_on_the_command_line_serves_records_elsewhere(tmp_path):
    files = write_planted(tmp_path)
    moved = write_jsonl(tmp_path / "moved.jsonl", planted_records())
    data = collect([moved, files["trace"]]).to_dict()
    assert next(s for s in data["solutions"] if s["item"] == "0")["curve_source"] == "trace"


def test_without_a_trace_the_solution_comes_from_the_contexts(tmp_path):
    files = write_planted(tmp_path)
    data = collect([files["original_pivotal_tokens"]]).to_dict()
    planted = next(s for s in data["solutions"] if s["item"] == "0")
    assert planted["curve_source"] == "records"
    # the prompt (query and template markup) is cut off; the text runs to the end of the last pivot
    assert "".join(t for t, _ in planted["segments"]) == "The answer is 7."
    assert [t for t, i in planted["segments"] if i >= 0] == [" answer", " 7", "."]
    # the original tool's records say neither where in the solution a pivot is nor how many rollouts: no curve
    assert planted["curve"] == []


def test_response_start_skips_the_template_after_the_query():
    chatml = PROMPT + "The"
    assert chatml[response_start(chatml, QUERY) :] == "The"
    gemma = "<start_of_turn>user\nWhat?<end_of_turn>\n<start_of_turn>model\nIt is"
    assert gemma[response_start(gemma, "What?") :] == "It is"
    assert response_start("no query here", "What?") == 0


def test_pivots_of_different_solutions_of_one_item_are_kept_apart():
    places = [
        PivotPlace(0, None, PROMPT + "The answer", " is"),
        PivotPlace(1, None, PROMPT + "The", " answer"),
        PivotPlace(2, None, PROMPT + "I think", " 8"),
    ]
    solutions = solutions_from_contexts(places, QUERY)
    texts = sorted("".join(t for t, _ in s.segments) for s in solutions)
    assert texts == ["I think 8", "The answer is"]


def test_critical_tokens_are_placed_in_their_response():
    for record in critical_lines():
        split = critical_split(record["response"], record["critical_context"], record["critical_token"])
        if record["critical_position"] is None:
            continue
        assert split is not None and "".join(split) == record["response"]
        assert split[1] == record["critical_token"]
        assert record["critical_context"].endswith(split[0])


def test_every_kind_reaches_the_page(tmp_path):
    files = write_planted(tmp_path)
    page, summary = render_report(list(files.values()))
    data = page_data(page)
    assert len(data["pairs"]) == 3 and [p["verified"] for p in data["pairs"]] == [True, False, True]
    # measured / gap not established / not measured: the original tool's counterpart was never sampled
    assert [p["counterpart"] for p in data["pairs"]] == ["established", "not established", "not measured"]
    assert data["pairs"][1]["gap"] == [-0.12, 0.71] and data["pairs"][1]["gap_confidence"] == 0.9
    assert len(data["critical"]) == 3 and data["critical"][0]["scores"] == critical_lines()[0]["scores"]
    assert data["contrast"][0]["tokens"][3] == " 8" and data["contrast"][0]["min_position"] == 3
    steering = [p for p in data["pivots"] if p["pattern"] == "numerical_accuracy"]
    assert len(steering) == 1
    assert {p["verified"] for p in data["pivots"]} == {True, False, None}
    assert summary.pivots == 4 + 4 + 1 and summary.pairs == 3
    critical = {c["line"]: c for c in data["critical"]}
    assert critical[1]["tokens"] == CRITICAL_TOKENS and critical[2]["tokens"] is None
    critical_file = next(f for f in data["files"] if f["kind"] == "critical_tokens")
    assert critical_file["progress"].endswith("critical.jsonl.progress")
    assert critical_file["samples_spent"] == sum(r["rollouts"] + r["pass_at_k_rollouts"] for r in critical_lines())


def test_a_run_that_found_nothing_still_gets_a_report(tmp_path):
    records = tmp_path / "run.jsonl"
    records.write_text("")
    with pytest.raises(PTSError, match="holds no records"):
        read_view_file(records)
    write_jsonl(
        tmp_path / "run.jsonl.progress",
        [{"kind": "header", "settings": {"num_samples": 6}}, {"kind": "item", "dataset_item_id": "0", "rollouts": 6}],
    )
    _, summary = render_report([records])
    assert summary.pivots == 0 and summary.format().startswith("report: no records")


def test_run_settings_and_rollouts_come_from_the_progress_file(tmp_path):
    records = write_jsonl(tmp_path / "run.jsonl", planted_records())
    write_jsonl(
        tmp_path / "run.jsonl.progress",
        [
            {"kind": "header", "settings": {"num_samples": 10, "model_id": "m", "confidence": None}},
            {"kind": "item", "dataset_item_id": "0", "rollouts": 120},
            {"kind": "item", "dataset_item_id": "1", "rollouts": 30},
        ],
    )
    entry = collect([records]).to_dict()["files"][0]
    assert entry["samples_spent"] == 150 and entry["queries"] == {"done": 2}
    assert entry["settings"] == {"num_samples": "10", "model_id": "m", "confidence": "null"}


def test_report_is_written_atomically_and_says_what_it_holds(tmp_path):
    files = write_planted(tmp_path)
    out = tmp_path / "report.html"
    summary = build_report([files["pivotal_tokens"]], out)
    assert out.is_file() and summary.output_path == str(out) and summary.bytes == len(out.read_bytes())
    assert "4 pivotal tokens" in summary.format() and "2 solutions" in summary.format()
    assert not list(tmp_path.glob(".report.html.*"))


def fetch(url: str, method: str = "GET", host: str | None = None) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, method=method, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, b"", dict(e.headers)


def test_served_page_is_local_and_read_only(tmp_path):
    files = write_planted(tmp_path)
    page, _ = render_report([files["pivotal_tokens"]])
    server = make_server(page, port=0)
    host, port = server.server_address
    assert host == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        status, body, headers = fetch(base + "/")
        assert status == 200 and body.decode() == page
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert fetch(base + "/../pivots.jsonl")[0] == 404
        assert fetch(base + "/pivots.jsonl")[0] == 404
        assert fetch(base + "/", method="POST")[0] == 405
        assert fetch(base + "/", method="PUT")[0] == 405
        assert fetch(base + "/", host="evil.example:80")[0] == 421  # DNS rebinding
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_pts_view_serve_from_the_command_line(tmp_path):
    files = write_planted(tmp_path)
    with socket.socket() as s:  # a port that is free now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pts", "view", str(files["pivotal_tokens"]), "--serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[0].startswith("report: 4 pivotal tokens") and f"http://127.0.0.1:{port}/" in lines[1], lines
        status, body, _ = fetch(f"http://127.0.0.1:{port}/")
        assert status == 200 and b'id="pts-data"' in body
        assert not (tmp_path / "report.html").exists()  # serving writes no file unless --output is given
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.parametrize("traced", [True, False])
def test_a_pivotal_span_is_one_mark_over_its_tokens(tmp_path, traced):
    from view_samples import span_record

    path = write_jsonl(tmp_path / "spans.jsonl", [span_record()])
    if traced:
        write_jsonl(tmp_path / "spans.jsonl.trace.jsonl", [trace_line()])
    data = collect([path]).to_dict()
    (pivot,) = data["pivots"]
    assert (pivot["position"], pivot["length"], pivot["token"]) == (2, 2, " is 7")
    (solution,) = data["solutions"]
    marked = [(t, i) for t, i in solution["segments"] if i >= 0]
    assert marked == [(" is 7", 0)]  # one run over both tokens, not two marks
    assert "".join(t for t, _ in solution["segments"]).endswith("The answer is 7" + ("." if traced else ""))
    if not traced:  # the record's own numbers: p before the span at 2, after it at 4
        assert [c["position"] for c in solution["curve"]] == [2, 4]


def test_thought_anchor_sentences_are_rows_with_importance_and_interval(tmp_path):
    from view_samples import anchor_trace_lines

    data = collect([write_jsonl(tmp_path / "anchors.jsonl", anchor_trace_lines())]).to_dict()
    rows = sorted(data["anchors"], key=lambda r: r["sentence_id"])
    assert [(r["sentence"], r["importance"], r["ci"]) for r in rows] == [
        ("3 + 4 = 7.", 0.5, [0.3, 0.7]),
        (" So the answer is 7.", -0.05, [-0.2, 0.1]),
    ]
    assert rows[1]["category"] == "final_answer_emission" and rows[0]["level"] == 0.95
