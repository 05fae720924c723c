"""`pts export`: DPO pairs, steering vectors and control vectors, from pts records and the original tool's files."""

import json
import math

import numpy as np
import pytest
import torch
from consumers import optillm_steering, repeng

from pts.cli import main as cli_main
from pts.engines.fake import FakeEngine, PassFailOracle, token
from pts.errors import PTSError
from pts.export.dpo import (
    CounterpartFinder,
    DPOSettings,
    Measured,
    build_pairs,
    match_tasks,
    pick_counterpart,
)
from pts.export.records import PivotRecord, attach_token_ids, chat_messages, read_pivots
from pts.export.steering import (
    PATTERNS,
    UNKNOWN,
    SteeringSettings,
    cluster,
    context_activations,
    context_decision,
    default_layers,
    label_clusters,
    merge_contexts,
    pattern_scores,
    steering_records,
)
from pts.jobs.export import ExportConfig
from pts.jobs.export import run as export
from pts.jobs.run import RunConfig, run
from pts.records import ORIGINAL_FIELDS, FirstToken
from pts.stats import newcombe_interval, wilson_interval
from pts.steering.directions import decision_tokens, optillm_strength
from pts.steering.layers import parse_layers
from pts.steering.vectors import ControlVector
from pts.store import read_jsonl
from pts.tasks.sources import load_tasks
from pts.tasks.task import Oracle, Task

DATASET = "rg:chain_sum?min_terms=2&max_terms=2&min_digits=1&max_digits=1&size=3"


def read_control_vector(path):
    """``(model_hint, {layer: direction})`` of a GGUF control vector, read by the class pts steer uses too."""
    vector = ControlVector.from_gguf(path)
    return vector.model_hint, vector.directions


def write_control_vector(path, directions, model_hint, extra=None):
    ControlVector(dict(directions), model_hint).to_gguf(path, extra)


OPTILLM_FIELDS = (
    "query",
    "pivot_context",
    "pivot_token",
    "pivot_token_id",
    "prob_before",
    "prob_after",
    "prob_delta",
    "is_positive",
    "model_id",
    "task_type",
    "steering_vector",
    "cluster_id",
    "reasoning_pattern",
    "cluster_vector",
    "steering_layer",
)


@pytest.fixture(scope="module")
def real(tmp_path_factory, embedded_engine):
    """One small `pts run` on the embedded model, shared by every test here: (records path, records)."""
    path = tmp_path_factory.mktemp("export") / "pivots.jsonl"
    run(
        RunConfig(
            dataset=DATASET,
            max_examples=2,
            num_samples=4,
            max_new_tokens=48,
            output_path=str(path),
            progress=False,
            min_prob=0.0,
            max_prob=1.0,
        ),
        engine=embedded_engine,
    )
    records = read_jsonl(path)
    assert any(r["is_positive"] for r in records) and any(not r["is_positive"] for r in records), records
    return path, records


@pytest.fixture(scope="module")
def original(real, tmp_path_factory):
    """The same pivots as the original tool wrote them: its fields only, is_positive missing on every other line."""
    path = tmp_path_factory.mktemp("original") / "original.jsonl"
    rows = []
    for i, r in enumerate(real[1]):
        row = {k: r[k] for k in ORIGINAL_FIELDS}
        if i % 2:
            del row["is_positive"]
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


_STATES: dict = {}


@pytest.fixture(scope="module", autouse=True)
def _forget_states():
    yield
    _STATES.clear()


def hidden_states(model, ids):
    """Every layer's residual stream of ``ids`` from an unpadded forward pass alone (memoized):
    ``hidden_states(...)[L + 1][t]`` is the output of decoder layer L at token t."""
    key = (id(model), tuple(ids))
    if key not in _STATES:
        with torch.inference_mode():
            out = model.model(input_ids=torch.tensor([list(ids)]), output_hidden_states=True)
        _STATES[key] = [h[0].float().numpy() for h in out.hidden_states]
    return _STATES[key]


def last_token_state(model, ids, layer):
    """Output of decoder layer ``layer`` at the last token of ``ids``, computed alone."""
    return hidden_states(model, ids)[layer + 1][-1]


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


# --- DPO -------------------------------------------------------------------------------------------------------


def test_dpo_pairs_from_recorded_rollouts_carry_measured_probabilities(real, embedded_loaded, tmp_path):
    out = tmp_path / "dpo.jsonl"
    summary = export(ExportConfig(input_path=str(real[0]), format="dpo", output_path=str(out)), loaded=embedded_loaded)
    rows = read_jsonl(out)
    assert summary.rows == len(rows) >= 2
    by_id = {r["id"]: r for r in real[1]}
    tok = embedded_loaded.tokenizer
    for row in rows:
        m = row["metadata"]
        rec = by_id[m["pivot_id"]]
        assert row["prompt"] == rec["pivot_context"] and m["prompt_token_ids"] == rec["pivot_context_ids"]
        assert m["counterpart_source"] == "first_tokens"
        other = m["rejected_token_id"] if rec["is_positive"] else m["chosen_token_id"]
        first = next(t for t in rec["first_tokens"] if t["token_id"] == other)
        p_other = first["successes"] / first["count"]
        if rec["is_positive"]:
            assert (row["chosen"], m["chosen_token_id"]) == (rec["pivot_token"], rec["pivot_token_id"])
            assert (m["prob_chosen"], m["prob_rejected"]) == (rec["prob_after"], p_other)
            assert m["samples"] == {"chosen": rec["samples_after"], "rejected": first["count"]}
        else:
            assert (row["rejected"], m["rejected_token_id"]) == (rec["pivot_token"], rec["pivot_token_id"])
            assert (m["prob_chosen"], m["prob_rejected"]) == (p_other, rec["prob_after"])
        assert m["prob_chosen"] - m["prob_rejected"] >= 0.1 - 1e-9 and first["count"] >= 2
        # verified only when the gap's interval at the chosen confidence excludes zero, from the recorded counts
        pivot_side = (rec["successes_after"], rec["samples_after"])
        other_side = (first["successes"], first["count"])
        better, worse = (pivot_side, other_side) if rec["is_positive"] else (other_side, pivot_side)
        lo, hi = newcombe_interval(
            worse[0] / worse[1], wilson_interval(*worse, 0.9), better[0] / better[1], wilson_interval(*better, 0.9)
        )
        assert m["gap_confidence"] == 0.9 and m["gap_interval"] == pytest.approx([lo, hi])
        assert m["counterpart_verified"] == (lo > 0)
        assert (
            tok.decode([m["chosen_token_id"]]) == row["chosen"]
            and tok.decode([m["rejected_token_id"]]) == row["rejected"]
        )
        # the flag says whether TRL's own tokenization reproduces these ids (then EOS)
        trl_ids = tok(row["prompt"] + row["chosen"] + tok.eos_token)["input_ids"]
        assert m["trl_tokens_match"] == (
            tok(row["prompt"])["input_ids"] == m["prompt_token_ids"]
            and trl_ids == m["prompt_token_ids"] + [m["chosen_token_id"], tok.eos_token_id]
            and tok(row["prompt"] + row["rejected"] + tok.eos_token)["input_ids"]
            == m["prompt_token_ids"] + [m["rejected_token_id"], tok.eos_token_id]
        )
    positive = sum(r["metadata"]["is_positive"] for r in rows)
    assert 0 < positive < len(rows)
    # --balance: as many from each side; --max-pairs caps
    export(
        ExportConfig(input_path=str(real[0]), format="dpo", output_path=str(out), balance=True), loaded=embedded_loaded
    )
    signs = [r["metadata"]["is_positive"] for r in read_jsonl(out)]
    assert signs.count(True) == signs.count(False) == min(positive, len(rows) - positive)
    export(
        ExportConfig(input_path=str(real[0]), format="dpo", output_path=str(out), max_pairs=1), loaded=embedded_loaded
    )
    assert [r["metadata"]["pivot_id"] for r in read_jsonl(out)] == [rows[0]["metadata"]["pivot_id"]]


def test_dpo_file_trains_in_trl_on_the_pivot_tokens_only(real, tmp_path, capsys, model_cache_dir):
    from datasets import load_dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    from pts.formats.dpo import TRL_IDS_TRAINER
    from pts.models import load_model

    plain, chat = tmp_path / "dpo.jsonl", tmp_path / "dpo_chat.jsonl"
    assert cli_main(["export", "--input-path", str(real[0]), "--format", "dpo", "--output-path", str(plain)]) == 0
    assert (
        cli_main(["export", "--input-path", str(real[0]), "--format", "dpo", "--chat", "--output-path", str(chat)]) == 0
    )
    assert "wrote" in capsys.readouterr().out
    loaded = load_model("smollm2-135m", device="cpu", dtype="float32")  # a private copy: PEFT and Trainer modify it
    tok = loaded.tokenizer
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], task_type="CAUSAL_LM")
    args = DPOConfig(
        output_dir=str(tmp_path / "trl"),
        per_device_train_batch_size=2,
        max_steps=1,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        max_length=None,
    )
    rows = read_jsonl(plain)
    data = load_dataset("json", data_files=str(plain), split="train")

    # Stock DPOTrainer on the same file tokenizes the text again and appends EOS (unless the token is EOS): the
    # trade-off the docs describe.
    stock = DPOTrainer(model=loaded.model, args=args, processing_class=tok, train_dataset=data)
    eos = tok.eos_token_id

    def with_eos(token_id):
        return [token_id] if token_id == eos else [token_id, eos]

    for row, t in zip(rows, stock.train_dataset):
        m = row["metadata"]
        assert t["chosen_ids"][-1] == eos and t["rejected_ids"][-1] == eos
        assert m["trl_tokens_match"] == (
            t["prompt_ids"] == m["prompt_token_ids"]
            and t["chosen_ids"] == with_eos(m["chosen_token_id"])
            and t["rejected_ids"] == with_eos(m["rejected_token_id"])
        )

    trainer = DPOTrainer(
        model=loaded.model,
        args=args,
        processing_class=tok,
        train_dataset=load_dataset("json", data_files=str(chat), split="train"),
    )
    by_id = {r["id"]: r for r in real[1]}
    for row, t in zip(read_jsonl(chat), trainer.train_dataset):
        rec = by_id[row["metadata"]["pivot_id"]]
        ids, n = rec["pivot_context_ids"], rec["prompt_length"]
        assert row["prompt"][-1] == {"role": "user", "content": rec["query"]}
        m = row["metadata"]
        assert m["trl_tokens_match"] == (
            t["prompt_ids"] == ids[:n]
            and t["chosen_ids"][: len(ids) - n + 1] == ids[n:] + [m["chosen_token_id"]]
            and t["rejected_ids"][: len(ids) - n + 1] == ids[n:] + [m["rejected_token_id"]]
        )
    assert any(r["metadata"]["trl_tokens_match"] for r in read_jsonl(chat))

    # The class the docs and every DPO card show, exactly as written there.
    scope = {"DPOTrainer": DPOTrainer}
    exec(TRL_IDS_TRAINER, scope)  # noqa: S102
    trainer = scope["TokenIdsDPOTrainer"](
        model=loaded.model, args=args, processing_class=tok, peft_config=lora, train_dataset=data
    )
    for row, t in zip(rows, trainer.train_dataset, strict=True):
        m = row["metadata"]
        assert t == {
            "prompt_ids": m["prompt_token_ids"],
            "chosen_ids": [m["chosen_token_id"]],
            "rejected_ids": [m["rejected_token_id"]],
        }
    # TRL's loss sums the log-probabilities where completion_mask is 1 (labels are -100 elsewhere): one position per
    # sequence, the measured token right after the measured context, and nothing appended.
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    for i, row in enumerate(rows):
        m = row["metadata"]
        for j, token_id in ((i, m["chosen_token_id"]), (i + len(rows), m["rejected_token_id"])):
            ids, mask = batch["input_ids"][j], batch["completion_mask"][j]
            (at,) = mask.nonzero()[:, 0].tolist()
            assert at == len(m["prompt_token_ids"]) and ids[: at + 1].tolist() == m["prompt_token_ids"] + [token_id]
            assert not batch["attention_mask"][j][at + 1 :].any()  # padding only after it
    result = trainer.train()
    assert trainer.state.global_step == 1 and math.isfinite(result.training_loss)


class RankedFake(FakeEngine):
    """A fake engine that also ranks next tokens: ``ranks`` maps token id -> log-probability."""

    def __init__(self, ranks, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ranks = ranks

    def next_token_logprobs(self, prefixes):
        out = torch.full((len(prefixes), 200), -50.0)
        for t, lp in self.ranks.items():
            out[:, t] = lp
        return out


PROMPT = [token(c) for c in "q?"]
RESPONSE = (token("a"), token("b"))
P_AFTER = {"x": 0.8, "y": 0.3, "c": 0.9, "d": 0.2, "e": 0.5}


def fake_pivot(tok: str, positive: bool) -> PivotRecord:
    return PivotRecord(
        query="q?",
        pivot_context="q?ab",
        pivot_token=tok,
        pivot_token_id=token(tok),
        prob_before=0.5,
        prob_after=P_AFTER[tok],
        prob_delta=P_AFTER[tok] - 0.5,
        is_positive=positive,
        model_id="fake",
        task_type="pass_fail",
        dataset_id="d",
        dataset_item_id="0",
        timestamp="",
        id=tok,
        source="pts",
        line=1,
        context_ids=PROMPT + list(RESPONSE),
        prompt_length=len(PROMPT),
    )


def fake_p(response):
    if len(response) == 3 and response[:2] == RESPONSE:
        return P_AFTER[chr(response[2] - 16)]
    return 0.5


class Never(Oracle):
    name = "never"

    def judge(self, completion, reference):
        return False


def test_counterparts_measured_with_the_oracle_pick_the_models_likeliest_qualifying_token():
    ranks = {token("c"): -0.5, token("e"): -1.0, token("d"): -2.0}
    engine = RankedFake(ranks, fake_p, prompt_length=len(PROMPT))
    settings = DPOSettings(find_rejected_tokens=True, num_candidates=3, num_samples=10)
    task = Task("q?", "", "0", "d", "pass_fail", PassFailOracle())
    pivots = [fake_pivot("x", True), fake_pivot("y", False)]
    rows, report = build_pairs(
        pivots,
        engine.tokenizer,
        settings,
        finder=CounterpartFinder(engine, settings),
        tasks=match_tasks(pivots, [task]),
    )
    got = [(r["chosen"], r["rejected"], r["metadata"]["prob_chosen"], r["metadata"]["prob_rejected"]) for r in rows]
    # x (0.8) vs qualifying d (0.2) and e (0.5): e is likelier. y (0.3) vs c (0.9) and e (0.5): c is likelier.
    assert got == [("x", "e", 0.8, 0.5), ("c", "y", 0.9, 0.3)]
    assert all(r["metadata"]["counterpart_source"] == "estimated" for r in rows)
    assert all(r["metadata"]["samples"] == {"chosen": 10, "rejected": 10} for r in rows)
    assert report.from_estimates == 2 and report.rollouts == 2 * 4 * 10
    # the same candidates judged by an oracle that never accepts: p = 0 everywhere, so no pair at all
    never = Task("q?", "", "0", "d", "pass_fail", Never())
    rows, report = build_pairs(
        pivots,
        engine.tokenizer,
        settings,
        finder=CounterpartFinder(engine, settings),
        tasks=match_tasks(pivots, [never]),
    )
    assert rows == [] and report.no_counterpart == 2


def test_counterpart_verified_only_when_the_gap_is_established():
    p = fake_pivot("x", True)
    p.prob_after, p.samples_after, p.successes_after = 0.5, 4, 2
    p.first_tokens = [FirstToken(token("d"), "d", 4, 1)]  # one success in four fewer: 0.5 vs 0.25
    (row,), report = build_pairs([p], None, DPOSettings())
    assert row["metadata"]["counterpart_verified"] is False and row["metadata"]["gap_interval"][0] < 0
    assert report.established == 0 and "gap established at 0.9 (counterpart_verified): 0 of 1 pairs" in report.format()
    p.prob_after, p.samples_after, p.successes_after = 0.9, 40, 36
    p.first_tokens = [FirstToken(token("d"), "d", 40, 10)]
    (row,), report = build_pairs([p], None, DPOSettings())
    assert row["metadata"]["counterpart_verified"] is True and report.established == 1
    # a stricter level widens the interval
    (row,), _ = build_pairs([p], None, DPOSettings(gap_confidence=0.9999999))
    assert (
        row["metadata"]["gap_interval"][0] < build_pairs([p], None, DPOSettings())[0][0]["metadata"]["gap_interval"][0]
    )


def test_recorded_first_tokens_need_enough_samples_and_margin():
    p = fake_pivot("x", True)
    p.samples_after = 10
    p.first_tokens = [
        FirstToken(token("x"), "x", 5, 4),
        FirstToken(token("d"), "d", 1, 0),
        FirstToken(token("e"), "e", 3, 2),
        FirstToken(token("f"), "f", 2, 0),
    ]
    rows, _ = build_pairs([p], None, DPOSettings(min_counterpart_samples=2))
    # d has too few rollouts; e (2/3, 0.13 below 0.8) and f (0) qualify, and the model took e more often
    assert (rows[0]["rejected"], rows[0]["metadata"]["prob_rejected"]) == ("e", 2 / 3)
    rows, report = build_pairs([p], None, DPOSettings(min_counterpart_samples=2, min_prob_delta=0.2))
    assert rows[0]["rejected"] == "f" and report.from_first_tokens == 1
    rows, report = build_pairs([p], None, DPOSettings(min_counterpart_samples=4))
    assert rows == [] and report.no_counterpart == 1
    # equally likely alternatives: the larger margin wins
    assert pick_counterpart(True, 0.5, [Measured(1, "a", 4, 10, 3), Measured(2, "b", 1, 10, 3)], 0.1).token == "b"


class Counting(Oracle):
    """Delegates to ``inner`` and keeps every verdict."""

    def __init__(self, inner, verdicts):
        self.inner, self.verdicts = inner, verdicts

    def judge(self, completion, reference):
        ok = self.inner.judge(completion, reference)
        self.verdicts.append(ok)
        return ok

    def answer_complete(self, completion):
        return self.inner.answer_complete(completion)


def test_find_rejected_on_the_real_model_measures_candidates_with_the_oracle(
    embedded_loaded, embedded_engine, tmp_path, chat_prompt
):
    tok = embedded_loaded.tokenizer
    task = load_tasks(DATASET, max_examples=1)[0]
    (answer_id,) = tok(task.answer, add_special_tokens=False)["input_ids"]  # a one-digit sum: one token
    prompt = list(chat_prompt(task.query))
    ids = prompt + tok("The sum is ", add_special_tokens=False)["input_ids"]
    # A hand-made record in the original tool's shape: text only. The pivot is the right digit.
    row = {
        "query": task.query,
        "pivot_context": tok.decode(ids, skip_special_tokens=False),
        "pivot_token": task.answer,
        "pivot_token_id": answer_id,
        "prob_before": 0.5,
        "prob_after": 1.0,
        "prob_delta": 0.5,
        "model_id": embedded_loaded.model_id,
        "task_type": task.task_type,
        "dataset_id": task.dataset_id,
        "dataset_item_id": task.item_id,
        "timestamp": "2025-01-01T00:00:00",
    }
    src = tmp_path / "original.jsonl"
    src.write_text(json.dumps(row) + "\n")
    pivots = read_pivots(src)
    attach_token_ids(pivots, tok)
    assert pivots[0].retokenized and pivots[0].context_ids == ids and pivots[0].prompt_length == len(prompt)

    verdicts = []
    counted = Task(
        task.query,
        task.answer,
        task.item_id,
        task.dataset_id,
        task.task_type,
        Counting(task.oracle, verdicts),
        reference=task.reference,
    )
    settings = DPOSettings(find_rejected_tokens=True, num_candidates=3, num_samples=3, max_new_tokens=24)
    finder = CounterpartFinder(embedded_engine, settings)
    chosen, alternatives = finder.measure(pivots[0], counted)
    top = embedded_engine.next_token_logprobs([ids])[0].topk(40).indices.tolist()
    assert [a.token_id for a in alternatives] == [t for t in top if t != answer_id and t not in finder.excluded][:3]
    measured = [chosen, *alternatives]
    assert all(m.samples in (1, 3) for m in measured)  # 1: a terminal prefix, judged once
    # every probability is the oracle's verdicts and nothing else
    assert sum(m.samples for m in measured) == len(verdicts) and sum(m.successes for m in measured) == sum(verdicts)
    expected = pick_counterpart(True, chosen.p, alternatives, 0.1)
    assert expected is not None and chosen.p - expected.p >= 0.1  # the right digit against a wrong one

    out = tmp_path / "dpo.jsonl"
    cfg = ExportConfig(
        input_path=str(src),
        format="dpo",
        output_path=str(out),
        find_rejected_tokens=True,
        num_candidates=3,
        num_samples=3,
        max_new_tokens=24,
    )
    export(cfg, loaded=embedded_loaded, engine=embedded_engine, tasks=[counted])
    (pair,) = read_jsonl(out)
    m = pair["metadata"]
    assert (pair["chosen"], pair["rejected"]) == (task.answer, expected.token)
    assert (m["prob_chosen"], m["prob_rejected"], m["counterpart_source"]) == (chosen.p, expected.p, "estimated")
    assert m["retokenized"] and m["prompt_token_ids"] == ids and m["rejected_token_id"] == expected.token_id

    # the same with an oracle that never accepts: no pair, an error, and nothing written
    out.unlink()
    never = Task(task.query, task.answer, task.item_id, task.dataset_id, task.task_type, Never())
    with pytest.raises(PTSError, match="no DPO pairs"):
        export(cfg, loaded=embedded_loaded, engine=embedded_engine, tasks=[never])
    assert not out.exists()


def test_find_rejected_refuses_without_an_oracle(tmp_path, original):
    rows = [{k: v for k, v in r.items() if k not in ("dataset_id",)} for r in original[1]]
    src = tmp_path / "nodataset.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(PTSError, match="--dataset"):
        export(
            ExportConfig(
                input_path=str(src), format="dpo", output_path=str(tmp_path / "o.jsonl"), find_rejected_tokens=True
            )
        )
    # the original tool's records have no recorded rollouts: without measuring, no pair
    with pytest.raises(PTSError, match="no DPO pairs.*--find-rejected-tokens"):
        export(ExportConfig(input_path=str(original[0]), format="dpo", output_path=str(tmp_path / "o.jsonl")))
    assert not (tmp_path / "o.jsonl").exists()


def test_chat_messages_recover_the_user_and_system_turns(embedded_model):
    _, tok, _ = embedded_model
    for messages in (
        [{"role": "user", "content": "What is 2+2?"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    ):
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert chat_messages(tok, text) == messages
    assert chat_messages(tok, "no template here") is None


# --- steering --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["left", "right"])
def test_activation_is_read_where_the_pivot_is_predicted_whatever_the_padding(real, embedded_model, side):
    model, _, _ = embedded_model
    seqs = [r["pivot_context_ids"] for r in real[1][:4]] + [real[1][0]["pivot_context_ids"][:3]]
    assert len({len(s) for s in seqs}) > 1
    layers = [3, 18]
    acts, baseline = context_activations(model, seqs, layers, batch_size=5, padding_side=side)
    for layer in layers:
        for i, ids in enumerate(seqs):
            np.testing.assert_allclose(acts[layer][i], last_token_state(model, ids, layer), rtol=1e-4, atol=1e-4)
        # baseline: mean over every token but each context's first
        states = np.concatenate([hidden_states(model, s)[layer + 1][1:] for s in seqs])
        np.testing.assert_allclose(baseline[layer], states.mean(0), rtol=1e-4, atol=1e-4)


def steering_lines(records, tok):
    """What the steering export should write for ``records``: one line per context with a response,
    keyed by context ids, each with the pivots there and its sign (of their summed change)."""
    groups = {}
    for r in records:
        response = tok.decode(r["pivot_context_ids"][r["prompt_length"] :], skip_special_tokens=False)
        if response.strip():
            groups.setdefault(tuple(r["pivot_context_ids"]), []).append(r)
    return {
        ids: (rs, 1 if sum(r["prob_delta"] for r in rs) > 0 else -1)
        for ids, rs in groups.items()
        if sum(r["prob_delta"] for r in rs) != 0
    }


def decision_gradient(model, ids, layer, success_id, failure_id):
    """d(log p(success) - log p(failure)) / d(output of layer ``layer`` at the last position), by autograd on a
    zero vector added there (independent of the export's hooks and batching); a None side is left out."""
    delta = torch.zeros(model.config.hidden_size, requires_grad=True)

    def add(_m, _i, output):
        h = output[0] if isinstance(output, tuple) else output
        h = torch.cat([h[:, :-1], h[:, -1:] + delta], dim=1)
        return (h, *output[1:]) if isinstance(output, tuple) else h

    handle = model.model.layers[layer].register_forward_hook(add)
    try:
        logp = torch.log_softmax(model(input_ids=torch.tensor([list(ids)])).logits[0, -1].float(), -1)
        objective = (logp[success_id] if success_id is not None else 0) - (
            logp[failure_id] if failure_id is not None else 0
        )
        objective.backward()
    finally:
        handle.remove()
    return delta.grad.numpy()


def test_steering_export_one_line_per_context_pointing_toward_success(
    real, original, embedded_loaded, tmp_path, capsys
):
    out = tmp_path / "steer"
    summary = export(
        ExportConfig(input_path=str(real[0]), format="steering", output_path=str(out), num_clusters=4),
        loaded=embedded_loaded,
    )
    assert summary.output_path == str(out / "steering_vectors.jsonl")
    assert sorted(p.name for p in out.iterdir()) == ["steering_vectors.jsonl"]  # a folder of its own
    rows = read_jsonl(out / "steering_vectors.jsonl")
    model, tok = embedded_loaded.model, embedded_loaded.tokenizer
    layer = rows[0]["steering_layer"]
    assert f"target_layer={layer}" in summary.format()
    gains = {int(k): v for k, v in rows[0]["layer_gains"].items()}
    assert sorted(gains) == list(range(1, model.config.num_hidden_layers))  # every layer llama.cpp accepts
    assert layer == max(gains, key=gains.get)  # chosen by measurement: the largest median gain
    expected = steering_lines(real[1], tok)
    assert [tuple(r["pivot_context_ids"]) for r in rows] == list(expected)  # input order, no duplicate context
    by_id = {r["id"]: r for r in real[1]}
    for row in rows:
        members, sign = expected[tuple(row["pivot_context_ids"])]
        lead = max((r for r in members if (r["prob_delta"] > 0) == (sign > 0)), key=lambda r: abs(r["prob_delta"]))
        assert all(k in row for k in OPTILLM_FIELDS)
        assert {k: row[k] for k in ORIGINAL_FIELDS if k in row} == {k: lead[k] for k in ORIGINAL_FIELDS if k in row}
        assert [q["pivot_id"] for q in row["pivots"]] == [r["id"] for r in members]
        assert row["adds_toward_success"] is True and row["is_positive"] == (sign > 0)
        assert row["activation_dtype"] == "float32" and row["direction_method"] == "decision_gradient"
        # the pivot is one side of the decision; the other, when there, is a first token its rollouts took
        side = "success_token_id" if row["is_positive"] else "failure_token_id"
        other = "failure_token_id" if row["is_positive"] else "success_token_id"
        assert row[side] == lead["pivot_token_id"]
        if row[other] is not None:
            firsts = {t["token_id"]: t for t in by_id[lead["id"]]["first_tokens"]}
            assert row[other] in firsts or row[other] in [q["pivot_token_id"] for q in row["pivots"]]
        grad = decision_gradient(
            model, row["pivot_context_ids"], layer, row["success_token_id"], row["failure_token_id"]
        )
        np.testing.assert_allclose(row["steering_vector"], grad / np.linalg.norm(grad), atol=2e-3)
        assert row["gain_per_unit_norm"] == pytest.approx(float(np.linalg.norm(grad)), rel=1e-2)
        np.testing.assert_allclose(
            row["activation"], last_token_state(model, row["pivot_context_ids"], layer), rtol=1e-4, atol=1e-4
        )
    steer = np.array([r["steering_vector"] for r in rows])
    for c in {r["cluster_id"] for r in rows}:
        members = np.array([r["cluster_id"] == c for r in rows])
        np.testing.assert_allclose(
            rows[int(np.flatnonzero(members)[0])]["cluster_vector"], steer[members].mean(0), rtol=1e-4, atol=1e-3
        )
        assert len({r["reasoning_pattern"] for r, m in zip(rows, members) if m}) == 1
    patterns = [r["reasoning_pattern"] for r in rows]
    assert set(patterns) <= set(PATTERNS) | {UNKNOWN}
    assert len(set(patterns)) > 1 or patterns[0] == UNKNOWN  # never one real label on every line

    # the original tool's file: the same contexts, tokenized again (same vectors where the ids agree)
    out2 = tmp_path / "steer_original"
    export(
        ExportConfig(
            input_path=str(original[0]), format="steering", output_path=str(out2), num_clusters=4, select_layer=layer
        ),
        loaded=embedded_loaded,
    )
    rows2 = {r["pivot_context"]: r for r in read_jsonl(out2 / "steering_vectors.jsonl")}
    assert all(r["retokenized"] for r in rows2.values()) and not any(r["retokenized"] for r in rows)
    for r1 in rows:
        if tok(r1["pivot_context"], add_special_tokens=False)["input_ids"] == r1["pivot_context_ids"]:
            np.testing.assert_allclose(r1["activation"], rows2[r1["pivot_context"]]["activation"], atol=1e-4)


def test_steering_export_refuses_a_folder_optillm_would_load_nothing_from(real, tmp_path, capsys):
    shared = real[0].parent  # pts run's folder: it holds the pivotal-token file
    for target in (str(shared), str(shared / "steering_vectors.jsonl")):
        code = cli_main(["export", "--input-path", str(real[0]), "--format", "steering", "--output-path", target])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "folder of its own" in err, err
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.csv").write_text("a,b\n1,2\n")
    code = cli_main(["export", "--input-path", str(real[0]), "--format", "steering", "--output-path", str(other)])
    assert code == 2 and "notes.csv" in capsys.readouterr().err
    assert sorted(p.name for p in other.iterdir()) == ["notes.csv"]


def fake_line_pivot(ids, prompt_length, delta, name):
    return PivotRecord(
        query="q",
        pivot_context=str(ids),
        pivot_token=name,
        pivot_token_id=len(name),
        prob_before=0.5,
        prob_after=0.5 + delta,
        prob_delta=delta,
        is_positive=delta > 0,
        model_id="m",
        task_type="t",
        dataset_id="d",
        dataset_item_id="0",
        timestamp="",
        id=name,
        source="pts",
        line=1,
        context_ids=list(ids),
        prompt_length=prompt_length,
    )


class CharTokenizer:
    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(97 + i) if i < 26 else " " for i in ids)


def test_pivots_sharing_a_context_merge_and_prompt_only_contexts_are_left_out():
    pivots = [
        fake_line_pivot([1, 2, 3], 2, 0.4, "a"),
        fake_line_pivot([1, 2, 3], 2, -0.3, "b"),
        fake_line_pivot([1, 2], 2, 0.5, "prompt"),
        fake_line_pivot([1, 2, 30], 2, 0.5, "blank"),
        fake_line_pivot([1, 2, 4], 2, -0.2, "c"),
        fake_line_pivot([1, 2, 4], 2, 0.2, "d"),
        fake_line_pivot([1, 2, 5], 2, -0.6, "e"),
        fake_line_pivot([1, 2, 5], 2, 0.1, "f"),
    ]
    contexts, skipped = merge_contexts(pivots, CharTokenizer())
    assert skipped == {"prompt_only": 2, "cancelled": 2}
    assert [[p.id for p in c.pivots] for c in contexts] == [["a", "b"], ["e", "f"]]
    assert [c.lead.id for c in contexts] == ["a", "e"]  # the strongest on the side of the net change
    decisions = [context_decision(c) for c in contexts]
    # a context with pivots of both signs steers between them: the positive one is the success side
    assert [(d.success_id, d.failure_id) for d in decisions] == [(1, 1), (1, 1)]  # ids are len(name): a, b, e, f
    grads = np.array([[3.0, 4.0], [0.0, -2.0]], dtype=np.float32)
    rows = steering_records(
        contexts, CharTokenizer(), decisions, grads, np.ones((2, 2), np.float32), 7, SteeringSettings(num_clusters=2)
    )
    assert [r["is_positive"] for r in rows] == [True, False] and rows[1]["prob_delta"] == -0.6
    assert rows[0]["steering_vector"] == pytest.approx([0.6, 0.8]) and rows[1]["steering_vector"] == [0.0, -1.0]
    assert [r["gain_per_unit_norm"] for r in rows] == [5.0, 2.0]


def test_decision_tokens_come_from_the_measured_first_tokens():
    pivot = fake_line_pivot([1, 2, 3], 2, 0.5, "a")  # p(success) after the pivot: 1.0
    pivot.first_tokens = [FirstToken(9, "x", 5, 0), FirstToken(8, "y", 1, 0), FirstToken(1, "a", 3, 3)]
    d = decision_tokens(pivot)
    assert (d.success_id, d.failure_id, d.objective) == (1, 9, "logit_difference")
    assert decision_tokens(pivot, min_samples=6).objective == "success_logprob"  # "x" has too few rollouts
    negative = fake_line_pivot([1, 2, 3], 2, -0.5, "bb")  # p after: 0.0
    negative.first_tokens = [FirstToken(7, "z", 4, 3)]
    d = decision_tokens(negative)
    assert (d.success_id, d.failure_id) == (7, 2)
    negative.first_tokens = []
    assert decision_tokens(negative).objective == "minus_failure_logprob"


def test_optillm_strength_is_optillms_own_clamps():
    # pattern strength clamped to [0.1, 2], |prob_delta| to [0.1, 2], product to [0, 3]
    assert optillm_strength(1.0, 0.3) == pytest.approx(0.3)  # unknown
    assert optillm_strength(3.0, -0.5) == pytest.approx(1.0)  # self_correction 3 -> 2
    assert optillm_strength(2.5, 0.01) == pytest.approx(0.2)


def test_optillm_loads_the_export_and_its_hook_moves_each_decision_toward_success(real, embedded_loaded, tmp_path):
    """optillm 0.4.0's own manager and hook, at its own strengths, on every line's own context."""
    steering = optillm_steering()
    folder = tmp_path / "vectors"  # optillm loads with datasets.load_dataset(NAME): a Hub id or a local folder
    export(
        ExportConfig(input_path=str(real[0]), format="steering", output_path=str(folder), num_clusters=4),
        loaded=embedded_loaded,
    )
    rows = read_jsonl(folder / "steering_vectors.jsonl")
    model, tok = embedded_loaded.model, embedded_loaded.tokenizer
    layer = rows[0]["steering_layer"]
    manager = steering.SteeringVectorManager(str(folder), target_layer=layer, device="cpu")
    assert len(manager.steering_vectors) == len(rows)
    manager.create_tokenized_contexts(tok)
    hooks = steering.install_steering_hooks(model, manager, tok)
    assert len(hooks) == 1
    hook = hooks[0][0]
    seen = {}
    capture = model.model.layers[layer].register_forward_hook(  # after optillm's: sees what it returns
        lambda _m, _i, output: seen.__setitem__("h", (output[0] if isinstance(output, tuple) else output)[0, -1])
    )

    def at(ids):
        """As AutoThink's processor does once a request's tokens are known: reset, feed, match; then a forward."""
        hook.reset()
        hook.update_token_history(list(ids))
        hook.update_context(tok.decode(list(ids)))
        hook.try_match()
        with torch.inference_mode():
            logp = torch.log_softmax(model(input_ids=torch.tensor([list(ids)])).logits[0, -1].float(), -1)
        return seen["h"].float().numpy().copy(), logp.numpy()

    moved = []
    try:
        for row in rows:
            ids = row["pivot_context_ids"]
            hook.reset()  # unsteered: the hook stays installed but has no vector until it matches
            with torch.inference_mode():
                base = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1).numpy()
            steered, logp = at(ids)
            assert hook.current_vector is not None and hook.current_vector["pivot_context"] == row["pivot_context"]
            change = steered - last_token_state(model, ids, layer)
            strength = optillm_strength(manager.get_steering_strength(row["reasoning_pattern"]), row["prob_delta"])
            np.testing.assert_allclose(change, strength * np.array(row["steering_vector"]), atol=1e-3)
            # what it does to the decision: log p(success) - log p(failure) rises (one side alone when only one
            # was measured)
            gain = 0.0
            if row["success_token_id"] is not None:
                gain += logp[row["success_token_id"]] - base[row["success_token_id"]]
            if row["failure_token_id"] is not None:
                gain -= logp[row["failure_token_id"]] - base[row["failure_token_id"]]
            moved.append(gain)
        # first order, the gain is strength x gain_per_unit_norm; every line moves toward success
        assert all(g > 0 for g in moved), moved
        # an unrelated question, with and without AutoThink's "<think>" prefill, is not steered
        for prefill in ("", "<think>\n"):
            messages = [{"role": "user", "content": "Name a primary colour."}]
            text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) + prefill
            ids = tok(text, add_special_tokens=False)["input_ids"]
            unsteered, _ = at(ids)
            assert not hook.match_found and hook.current_vector is None
            np.testing.assert_allclose(unsteered, last_token_state(model, ids, layer), atol=1e-4)
    finally:
        capture.remove()
        steering.remove_steering_hooks(hooks)


def test_clustering_works_for_any_number_of_pivots():
    rng = np.random.default_rng(0)
    assert cluster(rng.normal(size=(1, 8)), 10, 50, 0).tolist() == [0]
    three = rng.normal(size=(3, 8))
    assert sorted(cluster(three, 10, 50, 0).tolist()) == [0, 1, 2]
    assert cluster(np.repeat(three[:1], 4, axis=0), 10, 50, 0).tolist() == [0, 0, 0, 0]
    groups = np.concatenate([rng.normal(0, 0.01, (5, 8)) + 5, rng.normal(0, 0.01, (5, 8)) - 5])
    labels = cluster(groups, 2, 3, 0)
    assert labels.tolist() == [0] * 5 + [1] * 5


def test_reasoning_patterns_match_whole_words_only():
    assert pattern_scores("we also saw it")["depth_and_thoroughness"] == 0
    assert pattern_scores("so we saw it")["depth_and_thoroughness"] == 1
    assert pattern_scores("Actually, let me reconsider")["self_correction"] == 3  # actually, reconsider, the phrase
    assert pattern_scores("3 + 4 = 7")["numerical_accuracy"] == 5
    assert pattern_scores("firstly")["organization"] == 1  # "first" does not match inside it
    assert not pattern_scores("the cat sat")
    labels = label_clusters(["wait, so", "first step", "then next", "hello"], np.array([0, 1, 1, 2]))
    assert labels == {0: "depth_and_thoroughness", 1: "organization", 2: UNKNOWN}
    # digits in every context label nothing; a cue only one cluster uses labels it; one cluster: nothing to tell
    labels = label_clusters(["3 + 4 =", "so 3 + 4", "5 + 1 =", "7 - 2"], np.array([0, 1, 2, 2]))
    assert labels == {0: UNKNOWN, 1: "depth_and_thoroughness", 2: UNKNOWN}
    assert label_clusters(["first step", "then next"], np.array([0, 0])) == {0: UNKNOWN}
    # a cue the other clusters use almost as often separates nothing: 2/2 against 2/3 is a margin of 1/3
    labels = label_clusters(["so a", "so b", "so c", "so d", "e"], np.array([0, 0, 1, 1, 1]))
    assert labels == {0: UNKNOWN, 1: UNKNOWN}


def test_layer_numbers_accept_commas_spaces_and_ranges():
    assert (
        parse_layers("19,23,27") == parse_layers(["19", "23", "27"]) == parse_layers(["19,", "23 27"]) == [19, 23, 27]
    )
    assert parse_layers(["10-12", "12"]) == [10, 11, 12] and parse_layers(None) is None
    with pytest.raises(PTSError):
        parse_layers("a,b")
    assert default_layers(28) == [17, 21, 25] and default_layers(2) == [1]


# --- control vector --------------------------------------------------------------------------------------------


def test_control_vector_reads_back_with_gguf(real, original, embedded_loaded, tmp_path):
    import gguf

    out = tmp_path / "vector.gguf"
    summary = export(
        ExportConfig(input_path=str(real[0]), format="control-vector", output_path=str(out), layer_nums=[5, 18]),
        loaded=embedded_loaded,
    )
    assert "norm 1" in summary.format()
    reader = gguf.GGUFReader(str(out))
    field = reader.get_field("general.architecture")
    assert bytes(field.parts[-1]).decode() == "controlvector"
    assert bytes(reader.get_field("controlvector.model_hint").parts[-1]).decode() == "llama"
    assert int(reader.get_field("controlvector.layer_count").parts[-1][0]) == 2
    assert bytes(reader.get_field("pts.activation_dtype").parts[-1]).decode() == "float32"
    norms = dict(x.split(":") for x in bytes(reader.get_field("pts.residual_norms").parts[-1]).decode().split(","))
    assert sorted(norms, key=int) == ["5", "18"] and all(float(v) > 1 for v in norms.values())
    assert sorted(t.name for t in reader.tensors) == ["direction.18", "direction.5"]
    model = embedded_loaded.model
    pivots = read_pivots(real[0])
    pairs = [(p.context_ids, d) for p in pivots if (d := decision_tokens(p)).objective == "logit_difference"]
    assert pairs
    for t in reader.tensors:
        layer = int(t.name.split(".")[1])
        assert t.tensor_type == gguf.GGMLQuantizationType.F32 and list(t.shape) == [model.config.hidden_size]
        # the mean over pairs of (residual after the success-side token - after the failure-side one), unit length
        diff = np.mean(
            [
                last_token_state(model, [*ids, d.success_id], layer)
                - last_token_state(model, [*ids, d.failure_id], layer)
                for ids, d in pairs
            ],
            axis=0,
        )
        np.testing.assert_allclose(t.data, diff / np.linalg.norm(diff), atol=1e-3)
        assert np.linalg.norm(t.data) == pytest.approx(1.0, abs=1e-5)  # repeng's normalisation
    hint, directions = read_control_vector(out)
    assert hint == "llama" and sorted(directions) == [5, 18]

    # the original tool's file has no rollouts' first tokens: no pair to contrast, refused before loading a model
    with pytest.raises(PTSError, match="measured counterpart"):
        export(ExportConfig(input_path=str(original[0]), format="control-vector", output_path=str(tmp_path / "o.gguf")))
    with pytest.raises(PTSError, match="layer 0"):
        export(
            ExportConfig(
                input_path=str(real[0]),
                format="control-vector",
                output_path=str(tmp_path / "x.gguf"),
                layer_nums=[0, 5],
            ),
            loaded=embedded_loaded,
        )
    assert not (tmp_path / "x.gguf").exists() and not (tmp_path / "o.gguf").exists()


def test_repeng_reads_the_control_vector_and_steers_as_llama_cpp_does(real, embedded_loaded, tmp_path):
    repeng_module = repeng()
    out = tmp_path / "vector.gguf"
    export(
        ExportConfig(input_path=str(real[0]), format="control-vector", output_path=str(out), layer_nums=[5, 18]),
        loaded=embedded_loaded,
    )
    hint, directions = read_control_vector(out)
    vector = repeng_module.ControlVector.import_gguf(str(out))
    assert vector.model_type == hint and sorted(vector.directions) == [5, 18]
    for layer, direction in directions.items():
        np.testing.assert_array_equal(vector.directions[layer], direction)

    model = embedded_loaded.model
    ids = torch.tensor([real[1][0]["pivot_context_ids"]])
    coeff = 2.0
    # llama.cpp's semantics: coeff * direction.L added to the output of decoder layer L at every position
    added = [
        model.model.layers[layer].register_forward_hook(
            lambda _m, _i, output, d=torch.tensor(direction): (
                (output[0] + coeff * d,) + tuple(output[1:]) if isinstance(output, tuple) else output + coeff * d
            )
        )
        for layer, direction in directions.items()
    ]
    try:
        with torch.inference_mode():
            expected = model(input_ids=ids).logits
    finally:
        for h in added:
            h.remove()
    controlled = repeng_module.ControlModel(model, [5, 18])
    try:
        controlled.set_control(vector, coeff)
        with torch.inference_mode():
            got = controlled(input_ids=ids).logits
            controlled.reset()
            plain = controlled(input_ids=ids).logits
    finally:
        controlled.unwrap()
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-3)
    assert not np.allclose(got.numpy(), plain.numpy(), atol=1e-2)  # it does steer


def test_control_vector_writer_matches_repengs_layout(tmp_path):
    directions = {3: np.arange(4, dtype=np.float32), 1: -np.ones(4, dtype=np.float32)}
    write_control_vector(tmp_path / "v.gguf", directions, "llama", extra={"method": "mean_difference"})
    hint, back = read_control_vector(tmp_path / "v.gguf")
    assert hint == "llama" and sorted(back) == [1, 3]
    for k, v in directions.items():
        np.testing.assert_array_equal(back[k], v)
    with pytest.raises(PTSError):
        write_control_vector(tmp_path / "w.gguf", {1: np.zeros(4), 2: np.zeros(5)}, "llama")
    assert not (tmp_path / "w.gguf").exists()


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


def tiny_llama(seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=50,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config).eval().requires_grad_(False)


def test_decision_gradients_are_each_rows_own_gradient_whatever_the_batch():
    from pts.steering.directions import Decision, choose_layer, decision_gradients, layer_gains

    model = tiny_llama()
    seqs = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10], [11, 12, 13, 14]]
    decisions = [Decision(3, 4), Decision(5, None), Decision(None, 6), Decision(7, 8)]
    grads, residuals = decision_gradients(model, seqs, decisions, [1, 2], batch_size=3)
    for layer in (1, 2):  # not the last layer: HF's last hidden state has the final norm applied
        for i, (ids, d) in enumerate(zip(seqs, decisions)):
            want = decision_gradient(model, ids, layer, d.success_id, d.failure_id)
            np.testing.assert_allclose(grads[layer][i], want, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(residuals[layer][i], last_token_state(model, ids, layer), atol=1e-5)
    gains = layer_gains(grads)
    assert choose_layer(grads) == max(gains, key=gains.get)
    assert not any(p.requires_grad for p in model.parameters())  # the weights are left as they were


def test_chat_pairs_never_double_the_end_of_turn_token_in_trls_tokenization(embedded_loaded, tmp_path):
    """A pivot that ends the turn (`<|im_end|>`): TRL's own tokenization of the --chat row holds it once."""
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import DPOConfig, DPOTrainer

    tok = embedded_loaded.tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    messages = [{"role": "user", "content": "2 + 3 ="}]
    prompt = list(
        tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    )
    response = tok("The answer is 5", add_special_tokens=False)["input_ids"]
    ids = prompt + response
    more = tok(".", add_special_tokens=False)["input_ids"]  # the other first token: go on with a full stop
    assert len(more) == 1
    pivot = fake_line_pivot(ids, len(prompt), 0.6, "<|im_end|>")
    pivot.pivot_token_id, pivot.pivot_context, pivot.prob_after = end, tok.decode(ids), 1.0
    pivot.samples_after, pivot.successes_after = 8, 8
    pivot.first_tokens = [FirstToken(more[0], ".", 6, 0), FirstToken(end, "<|im_end|>", 8, 8)]
    rows, _ = build_pairs([pivot], tok, DPOSettings(chat=True))
    assert len(rows) == 1 and rows[0]["chosen"][0]["content"] == "The answer is 5"  # the template writes the end
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
    )
    args = DPOConfig(output_dir=str(tmp_path / "trl"), report_to="none", use_cpu=True, max_length=None)
    trainer = DPOTrainer(
        model=LlamaForCausalLM(config),
        ref_model=LlamaForCausalLM(config),  # a model built from a config has no path TRL could load a copy from
        args=args,
        processing_class=tok,
        train_dataset=Dataset.from_list(rows),
    )
    t = trainer.train_dataset[0]
    assert t["prompt_ids"] == prompt
    assert t["chosen_ids"][: len(response) + 1] == response + [end] and t["chosen_ids"].count(end) == 1
    assert t["rejected_ids"][: len(response) + 2] == response + more + [end] and t["rejected_ids"].count(end) == 1
    assert rows[0]["metadata"]["trl_tokens_match"] is True
