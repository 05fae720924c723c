"""`pts contrast` (contrastive estimation, arXiv 2411.19943) and `pts eval`: exact unit tests, then one
end-to-end run of each on the embedded model with tiny settings."""

import json
import math

import pytest
import torch

from pts.adapters import load_model_or_adapter
from pts.cli import main as pts_main
from pts.contrast.score import contrastive_scores
from pts.contrast.select import select_training_sets
from pts.contrast.trajectories import Trajectory
from pts.engines.fake import FakeEngine, PassFailOracle
from pts.evaluate import (
    EvalResult,
    EvalSample,
    EvalSettings,
    QueryResult,
    compare,
    evaluate,
)
from pts.stats import pass_at_k, sign_test
from pts.store import read_jsonl
from pts.tasks.answers import canonical_answer
from pts.tasks.sources import load_tasks
from pts.tasks.task import Task

DATASET = "rg:chain_sum?min_terms=2&max_terms=2&min_digits=1&max_digits=1&size=4"


# ---- contrastive estimation score -------------------------------------------------------------


def test_contrastive_scores_hand_computed():
    # Vocabulary of 3, two positions, beta = 1: s = softmax(2 log p_pos - log p_neg) = p_pos^2 / p_neg, normalised.
    # t=0: p_pos = (.5, .25, .25), p_neg = (.25, .5, .25) -> p_pos^2/p_neg = (1, .125, .25), sum 1.375;
    #      actual token 1 -> .125 / 1.375 = 1/11.
    # t=1: p_pos = (.1, .6, .3), p_neg = (.2, .2, .6) -> (.05, 1.8, .15), sum 2.0; actual token 1 -> 0.9.
    p_pos = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.6, 0.3]], dtype=torch.float64)
    p_neg = torch.tensor([[0.25, 0.5, 0.25], [0.2, 0.2, 0.6]], dtype=torch.float64)
    s = contrastive_scores(p_pos.log(), p_neg.log(), [1, 1], beta=1.0)
    assert s.tolist() == pytest.approx([1 / 11, 0.9], abs=1e-6)
    # Token 0 at t=0: 1 / 1.375; token 2 at t=1: .15 / 2.
    assert contrastive_scores(p_pos.log(), p_neg.log(), [0, 2]).tolist() == pytest.approx([1 / 1.375, 0.075], abs=1e-6)
    # beta = 2: p_pos^3 / p_neg^2 at t=0 = (.125/.0625, .015625/.25, .015625/.0625) = (2, .0625, .25), sum 2.3125;
    # token 0 -> 2 / 2.3125 = 32/37.
    assert contrastive_scores(p_pos.log(), p_neg.log(), [0, 1], beta=2.0)[0].item() == pytest.approx(32 / 37, abs=1e-6)


def test_contrastive_scores_properties():
    g = torch.Generator().manual_seed(0)
    logits_pos, logits_neg = torch.randn(5, 50, generator=g), torch.randn(5, 50, generator=g)
    lp_pos, lp_neg = logits_pos.log_softmax(-1), logits_neg.log_softmax(-1)
    ids = torch.tensor([3, 7, 0, 49, 12])
    # beta = 0 is the positive model's probability of the token.
    assert torch.allclose(
        contrastive_scores(lp_pos, lp_neg, ids, beta=0.0), lp_pos.exp()[torch.arange(5), ids], atol=1e-6
    )
    # Two identical models give that probability for any beta.
    assert torch.allclose(
        contrastive_scores(lp_pos, lp_pos, ids, beta=3.0), lp_pos.exp()[torch.arange(5), ids], atol=1e-5
    )
    # Raw logits give the same scores (the authors' code contrasts logits): the softmax removes per-row constants.
    assert torch.allclose(
        contrastive_scores(logits_pos, logits_neg, ids), contrastive_scores(lp_pos, lp_neg, ids), atol=1e-5
    )
    # A scored distribution over the whole vocabulary sums to one.
    total = sum(contrastive_scores(lp_pos, lp_neg, torch.full((5,), v)) for v in range(50))
    assert torch.allclose(total, torch.ones(5), atol=1e-5)
    with pytest.raises(ValueError):
        contrastive_scores(lp_pos, lp_neg[:, :10], ids)


# ---- training-set selection -------------------------------------------------------------------


def _traj(item, correct, answer, n, finish="eos"):
    return Trajectory(
        query=f"q{item}",
        answer="4",
        prompt_ids=[1, 2],
        response_ids=[10 + n, 3],
        response=str(answer),
        correct=correct,
        answer_key=answer,
        dataset_id="d",
        dataset_item_id=str(item),
        sample_index=n,
        finish_reason=finish,
    )


def test_select_training_sets_follows_the_authors_rule():
    # Query 0: 2 correct; wrong answers 5 x3, 6 x2, 7 x1, 8 x1, one without an answer, one cut off (9).
    answers = [
        (True, "4"),
        (True, "4"),
        (False, "5"),
        (False, "5"),
        (False, "5"),
        (False, "6"),
        (False, "6"),
        (False, "7"),
        (False, "8"),
        (False, None),
    ]
    rows = [_traj(0, ok, a, n) for n, (ok, a) in enumerate(answers)] + [_traj(0, False, "9", 10, "length")]
    pos, neg = select_training_sets(rows, negative_top_p=0.5)
    # 7 wrong responses with an answer: cover ceil(3.5) = 4 -> "5" (3) then "6" (2); one trajectory each.
    assert len(pos) == 1 and pos[0].correct
    assert [t.answer_key for t in neg] == ["5", "6"]
    # Cover all of them: singletons after the most frequent answer are skipped; a cut-off response never counts.
    _, neg_all = select_training_sets(rows, negative_top_p=1.0)
    assert [t.answer_key for t in neg_all] == ["5", "6"]
    pos_all, _ = select_training_sets(rows, positives_per_query=0)
    assert len(pos_all) == 2
    # Query 1: only singletons; the most frequent (first) one is still taken.
    single = [_traj(1, False, a, n) for n, a in enumerate(["1", "2", "3"])]
    pos1, neg1 = select_training_sets(single, negative_top_p=0.5)
    assert pos1 == [] and len(neg1) == 1
    # The representative is seeded: same seed, same pick.
    assert select_training_sets(rows, seed=3) == select_training_sets(rows, seed=3)


# ---- pass@k, intervals, comparisons ------------------------------------------------------------


def test_pass_at_k_unbiased_estimator():
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(4, 1, 4) == 1.0
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)  # 1 - C(7,5)/C(10,5)
    assert pass_at_k(5, 0, 3) == 0.0 and pass_at_k(5, 5, 1) == 1.0
    # The numerically stable product form of Chen et al. (2021) gives the same numbers.
    for n, c, k in [(20, 4, 7), (64, 1, 10), (64, 0, 64), (13, 12, 2)]:
        stable = 1.0 if n - c < k else 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))
        assert pass_at_k(n, c, k) == pytest.approx(stable, abs=1e-12)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def _result(model_id, verdicts, task_types=None, k=None):
    settings = EvalSettings(num_samples=len(verdicts[0]), ks=k)
    queries = []
    for i, vs in enumerate(verdicts):
        task = Task(f"q{i}", "1", str(i), "d", (task_types or ["t"] * len(verdicts))[i], PassFailOracle())
        queries.append(QueryResult(task, [1], [EvalSample(j, "", [], "eos", v, None) for j, v in enumerate(vs)]))
    return EvalResult(model_id, settings, queries)


def test_eval_result_metrics():
    r = _result("m", [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]], task_types=["a", "a", "b"])
    assert r.accuracy == pytest.approx(3 / 12)
    low, high = r.interval()
    assert low < 0.25 < high
    p = r.pass_at()
    assert p[1] == pytest.approx(0.25)
    assert p[2] == pytest.approx((0.5 + (1 - 1 / 6) + 0) / 3)
    assert p[4] == pytest.approx(2 / 3)
    types = r.by_task_type()
    assert types["a"]["accuracy"] == pytest.approx(3 / 8) and types["b"]["correct"] == 0
    assert set(_result("m", [[1, 0, 1]], k=(1, 3)).pass_at()) == {1, 3}
    summary = json.loads(json.dumps(r.summary()))
    assert summary["correct"] == 3 and summary["pass_at_k"]["4"] == pytest.approx(2 / 3)


def test_paired_comparison_and_sign_test():
    assert sign_test(3, 0) == pytest.approx(0.25)  # 2 * (1/2)^3
    assert sign_test(0, 0) == 1.0 and sign_test(2, 2) == 1.0
    a = _result("a", [[1, 0], [0, 0], [1, 1], [0, 0]])
    b = _result("b", [[1, 1], [1, 0], [1, 1], [0, 0]])
    c = compare(a, b)
    assert (c.better, c.worse, c.tied) == (2, 0, 2)
    assert c.diff == pytest.approx((0.5 + 0.5) / 4)
    assert c.diff_ci[0] < c.diff < c.diff_ci[1]
    assert c.sign_p == pytest.approx(0.5)


def test_canonical_answer():
    assert canonical_answer("1,000") == "1000"
    assert canonical_answer(" 8.0 ") == "8"
    assert canonical_answer("$12.5$") == "12.5"
    assert canonical_answer("  Paris  France ") == "paris france"
    assert canonical_answer(None) is None and canonical_answer("  ") is None


def test_evaluate_on_fake_engine_counts_exactly():
    # p(success) = 0.5 with stratified verdicts: exactly 2 of 4 samples pass for each query.
    engine = FakeEngine(lambda prefix: 0.5, prompt_length=2)
    tasks = [Task(q, "PASS", str(i), "fake", "pass_fail", PassFailOracle()) for i, q in enumerate(["ab", "cd", "ef"])]
    result = evaluate(engine, tasks, EvalSettings(num_samples=4), queries_per_call=2)
    assert engine.calls == 2 and result.samples == 12 and result.correct == 6
    assert result.pass_at()[2] == pytest.approx(1 - 1 / 6)
    for q in result.queries:
        assert [s.correct for s in q.samples] == [s.response.strip().endswith("PASS") for s in q.samples]
    rows = result.rows()
    assert len(rows) == 12 and {r["dataset_item_id"] for r in rows} == {"0", "1", "2"}
    greedy = evaluate(engine, tasks, EvalSettings(num_samples=1, temperature=0.0))
    assert greedy.samples == 3


# ---- end to end on the embedded model -----------------------------------------------------------

CONTRAST_ARGS = [
    "--dataset",
    DATASET,
    "--max-examples",
    "2",
    "--num-trajectories",
    "4",
    "--max-new-tokens",
    "40",
    "--max-steps",
    "1",
    "--lora-r",
    "2",
    "--lora-alpha",
    "4",
    "--dtype",
    "float32",
    "--device",
    "cpu",
    "--seed",
    "42",
    "--no-progress",
]


@pytest.fixture(scope="module")
def contrast_dir(tmp_path_factory, model_cache_dir):
    out = tmp_path_factory.mktemp("contrast") / "ce"
    rc = pts_main(["contrast", *CONTRAST_ARGS, "--output-dir", str(out)])
    assert rc == 0
    return out


@pytest.mark.slow
def test_contrast_writes_sets_adapters_and_scores(contrast_dir, capsys):
    trajectories = read_jsonl(contrast_dir / "trajectories.jsonl")
    assert len(trajectories) == 8 and {t["dataset_item_id"] for t in trajectories} == {"0", "1"}
    tasks = {t.item_id: t for t in load_tasks(DATASET, max_examples=2, seed=42)}
    for t in trajectories:  # verdicts are the oracle's
        assert t["correct"] == tasks[t["dataset_item_id"]].judge(t["response"])
    positives, negatives = read_jsonl(contrast_dir / "positive.jsonl"), read_jsonl(contrast_dir / "negative.jsonl")
    assert positives and negatives
    assert all(r["correct"] for r in positives) and not any(r["correct"] for r in negatives)
    by_id = {t["id"]: t for t in trajectories}
    for r in positives + negatives:
        assert r["completion_ids"] == by_id[r["trajectory_id"]]["response_ids"]
    for role in ("positive", "negative"):
        adapter = contrast_dir / f"{role}-adapter"
        info = json.loads((adapter / "pts_train.json").read_text())
        assert (adapter / "adapter_config.json").is_file() and info["base_model"] == "smollm2-135m"
        assert info["steps"] == 1 and info["role"] == role
    rows = read_jsonl(contrast_dir / "scores.jsonl")
    assert len(rows) == 8
    for r in rows:
        n = len(r["response_ids"])
        assert n > 0 and len(r["scores"]) == len(r["tokens"]) == len(r["logp_pos"]) == len(r["logp_neg"]) == n
        assert all(0.0 < s < 1.0 for s in r["scores"])
        assert r["prompt_ids"] == by_id[r["trajectory_id"]]["prompt_ids"]
        assert r["scores"][r["min_score_position"]] == min(r["scores"])


@pytest.mark.slow
def test_contrast_scores_match_an_unbatched_forward_pass(contrast_dir, embedded_loaded):
    rows = read_jsonl(contrast_dir / "scores.jsonl")
    rows = sorted(rows, key=lambda r: len(r["response_ids"]))
    check = [rows[0], rows[-1]]  # shortest and longest: the most and least padded rows of the batch
    tok = embedded_loaded.tokenizer
    models = [
        load_model_or_adapter(str(contrast_dir / f"{role}-adapter"), device="cpu", dtype="float32").model
        for role in ("positive", "negative")
    ]
    for r in check:
        assert [tok.decode([i], skip_special_tokens=False) for i in r["response_ids"]] == r["tokens"]
        ids = torch.tensor([r["prompt_ids"] + r["response_ids"]])
        n, m = len(r["response_ids"]), len(r["prompt_ids"])
        with torch.inference_mode():
            lps = [mod(input_ids=ids).logits[0, m - 1 : m - 1 + n].float().log_softmax(-1) for mod in models]
        target = torch.tensor(r["response_ids"])
        expected = contrastive_scores(lps[0], lps[1], target, beta=1.0)
        assert r["scores"] == pytest.approx(expected.tolist(), abs=2e-4)
        assert r["logp_pos"] == pytest.approx(lps[0][torch.arange(n), target].tolist(), abs=2e-4)
        assert r["logp_neg"] == pytest.approx(lps[1][torch.arange(n), target].tolist(), abs=2e-4)
    # The adapters changed the weights (one step), so the two models differ from each other.
    assert not torch.equal(
        models[0].model.layers[0].mlp.down_proj.weight, models[1].model.layers[0].mlp.down_proj.weight
    )


@pytest.mark.slow
def test_shared_prompt_scoring_equals_scoring_each_trajectory_alone(contrast_dir):
    from pts.contrast.score import ContrastiveScorer

    rows = read_jsonl(contrast_dir / "scores.jsonl")
    trajectories = [
        Trajectory("q", "a", r["prompt_ids"], r["response_ids"], "", r["correct"], None, "d", str(n))
        for n, r in enumerate(rows)
    ]
    assert max(sum(t.prompt_ids == u.prompt_ids for u in trajectories) for t in trajectories) > 1  # prompts shared
    models = [
        load_model_or_adapter(str(contrast_dir / f"{role}-adapter"), device="cpu", dtype="float32").model
        for role in ("positive", "negative")
    ]
    scorer = ContrastiveScorer.from_models(*models)
    together = scorer.score(trajectories, batch_size=3)  # prompt keys/values shared, groups split over batches
    alone = [scorer.score([t])[0] for t in trajectories]  # whole sequences, one at a time
    singles = scorer.score(
        [t for t in trajectories if t.prompt_ids == trajectories[0].prompt_ids][:1]
        + [t for t in trajectories if t.prompt_ids != trajectories[0].prompt_ids][:1]
    )
    for got, want, row in zip(together, alone, rows):
        for key in ("scores", "logp_pos", "logp_neg"):
            assert got[key] == pytest.approx(want[key], abs=2e-4) and got[key] == pytest.approx(row[key], abs=2e-4)
    assert singles[0]["scores"] == pytest.approx(alone[0]["scores"], abs=2e-4)


@pytest.mark.slow
def test_contrast_scores_text_trajectories_with_given_models(contrast_dir, tmp_path, capsys):
    query = "State the final answer to the following arithmetic problem: 2 + 3 ="
    path = tmp_path / "traj.jsonl"
    path.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {"query": query, "answer": "5", "response": "2 + 3 = 5. The answer is 5."},
                {"query": query, "answer": "5", "response": "The answer is 6."},
            ]
        )
    )
    out = tmp_path / "scored"
    rc = pts_main(
        [
            "contrast",
            "--input-path",
            str(path),
            "--positive-model",
            str(contrast_dir / "positive-adapter"),
            "--negative-model",
            str(contrast_dir / "negative-adapter"),
            "--dtype",
            "float32",
            "--device",
            "cpu",
            "--beta",
            "0.5",
            "--score",
            "incorrect",
            "--output-dir",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["scores.jsonl"]  # nothing sampled or trained
    (row,) = read_jsonl(out / "scores.jsonl")
    assert row["correct"] is False and row["answer_key"] == "6" and row["beta"] == 0.5
    assert row["response_ids"][-1] == 2  # <|im_end|> appended to a text response
    assert len(row["scores"]) == len(row["response_ids"])


@pytest.mark.slow
def test_eval_base_and_adapter_paired(contrast_dir, tmp_path, embedded_loaded, capsys):
    adapter, other = str(contrast_dir / "positive-adapter"), str(contrast_dir / "negative-adapter")
    rows_path, summary_path = tmp_path / "eval.jsonl", tmp_path / "summary.json"
    rc = pts_main(
        [
            "eval",
            "--dataset",
            DATASET,
            "--max-examples",
            "2",
            "--num-samples",
            "2",
            "--max-new-tokens",
            "32",
            "--dtype",
            "float32",
            "--device",
            "cpu",
            "--compare",
            adapter,
            other,
            "--output-path",
            str(rows_path),
            "--summary-path",
            str(summary_path),
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "paired comparison" in captured.out and "pass@2" in captured.out
    summary = json.loads(summary_path.read_text())
    base, tuned, _ = summary["results"]
    assert base["model_id"] == "smollm2-135m-instruct-q4_1" and tuned["model_id"] == adapter
    assert base["samples"] == tuned["samples"] == 4
    for s in summary["results"]:
        assert s["accuracy"] == pytest.approx(s["correct"] / 4)
        assert s["accuracy_ci"][0] <= s["accuracy"] <= s["accuracy_ci"][1]
        assert s["pass_at_k"]["1"] == pytest.approx(s["accuracy"]) and s["pass_at_k"]["2"] >= s["pass_at_k"]["1"]
    # each --compare model against --model, then against each other
    assert [(c["model_a"], c["model_b"]) for c in summary["comparisons"]] == [
        (base["model_id"], adapter),
        (base["model_id"], other),
        (adapter, other),
    ]
    accuracy = {s["model_id"]: s["accuracy"] for s in summary["results"]}
    for c in summary["comparisons"]:
        assert c["diff"] == pytest.approx(accuracy[c["model_b"]] - accuracy[c["model_a"]])
    rows = read_jsonl(rows_path)
    assert len(rows) == 12
    tasks = {t.item_id: t for t in load_tasks(DATASET, max_examples=2, seed=42)}
    tok = embedded_loaded.tokenizer
    for r in rows:
        assert r["correct"] == tasks[r["dataset_item_id"]].judge(r["response"])
        assert tok.decode(r["response_ids"], skip_special_tokens=True) == r["response"]
        assert len(r["response_ids"]) <= 32
    # The adapter is really applied: its merged weights differ from the base model's.
    merged = load_model_or_adapter(adapter, device="cpu", dtype="float32").model
    base_w = embedded_loaded.model.model.layers[0].mlp.down_proj.weight
    assert not torch.equal(merged.model.layers[0].mlp.down_proj.weight, base_w)


@pytest.mark.slow
def test_eval_greedy_takes_the_argmax(embedded_engine):
    tasks = load_tasks(DATASET, max_examples=1, seed=42)
    settings = EvalSettings(num_samples=1, temperature=0.0, max_new_tokens=12, early_stop=False)
    first, again = evaluate(embedded_engine, tasks, settings), evaluate(embedded_engine, tasks, settings)
    (sample,) = first.queries[0].samples
    assert sample.response_ids == again.queries[0].samples[0].response_ids
    prompt = first.queries[0].prompt_ids
    # Every greedy token is the argmax of the model's next-token distribution after the tokens before it.
    prefixes = [prompt + sample.response_ids[:i] for i in range(len(sample.response_ids))]
    assert embedded_engine.next_token_logprobs(prefixes).argmax(-1).tolist() == sample.response_ids


# ---- bad input: one line, exit 2, nothing written -----------------------------------------------


def _fails(argv, capsys, needle):
    rc = pts_main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and needle in err, err


def test_eval_bad_inputs(tmp_path, capsys):
    _fails(["eval", "--num-samples", "0"], capsys, "--num-samples")
    _fails(["eval", "--greedy", "--num-samples", "3"], capsys, "greedy")
    _fails(["eval", "--num-samples", "2", "--k", "3"], capsys, "--k 3")
    _fails(["eval", "--temperature", "-1"], capsys, "--temperature")
    _fails(["eval", "--output-path", str(tmp_path / "missing" / "x.jsonl")], capsys, "does not exist")
    _fails(["eval", "--dataset", "rg:no_such_task"], capsys, "no_such_task")
    _fails(["eval", "--model", str(tmp_path / "nope"), "--max-examples", "1"], capsys, "does not exist")
    orphan = tmp_path / "orphan-adapter"
    orphan.mkdir()
    (orphan / "adapter_config.json").write_text("{}")
    _fails(["eval", "--model", str(orphan), "--max-examples", "1"], capsys, "base model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orphan-adapter"]


def test_contrast_bad_inputs(tmp_path, capsys):
    out = str(tmp_path / "out")
    _fails(["contrast", "--negative-top-p", "0", "--output-dir", out], capsys, "--negative-top-p")
    _fails(["contrast", "--num-trajectories", "0", "--output-dir", out], capsys, "--num-trajectories")
    _fails(["contrast", "--temperature", "0", "--output-dir", out], capsys, "--temperature")
    _fails(["contrast", "--lora-r", "0", "--output-dir", out], capsys, "--lora-r")
    _fails(["contrast", "--max-steps", "0", "--output-dir", out], capsys, "--max-steps")
    _fails(["contrast", "--input-path", str(tmp_path / "none.jsonl"), "--output-dir", out], capsys, "does not exist")
    _fails(["contrast", "--positive-model", str(tmp_path / "nope"), "--output-dir", out], capsys, "does not exist")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _fails(["contrast", "--output-dir", str(blocker)], capsys, "is a file")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_contrast_refuses_to_overwrite_and_rejects_bad_rows(contrast_dir, tmp_path, capsys):
    before = (contrast_dir / "scores.jsonl").read_text()
    _fails(["contrast", *CONTRAST_ARGS, "--output-dir", str(contrast_dir)], capsys, "already exists")
    assert (contrast_dir / "scores.jsonl").read_text() == before
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"query": "q", "answer": "1"}) + "\n")
    _fails(
        [
            "contrast",
            "--input-path",
            str(bad),
            "--positive-model",
            str(contrast_dir / "positive-adapter"),
            "--negative-model",
            str(contrast_dir / "negative-adapter"),
            "--dtype",
            "float32",
            "--device",
            "cpu",
            "--output-dir",
            str(tmp_path / "o"),
        ],
        capsys,
        "no response",
    )
    assert not (tmp_path / "o" / "scores.jsonl").exists()
