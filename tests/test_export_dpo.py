"""`pts export --format dpo`: pairs from recorded rollouts and from counterparts measured with the oracle; TRL."""

import json
import math

import pytest
import torch
from conftest import tiny_llama_config
from export_samples import (
    DATASET,
)
from test_export_steering import fake_line_pivot

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
from pts.export.records import PivotalTokenRow, attach_token_ids, chat_messages, read_pivots
from pts.jobs.export import ExportConfig
from pts.jobs.export import run as export
from pts.records import FirstToken
from pts.stats import newcombe_interval, wilson_interval
from pts.store import read_jsonl
from pts.tasks.sources import load_tasks
from pts.tasks.task import Oracle, Task

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


def fake_pivot(tok: str, positive: bool) -> PivotalTokenRow:
    return PivotalTokenRow(
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


def test_chat_pairs_never_double_the_end_of_turn_token_in_trls_tokenization(embedded_loaded, tmp_path):
    """A pivot that ends the turn (`<|im_end|>`): TRL's own tokenization of the --chat row holds it once."""
    from datasets import Dataset
    from transformers import LlamaForCausalLM
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
    config = tiny_llama_config(len(tok))
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


@pytest.fixture(scope="module")
def embedded_tokenizer():
    """The embedded SmolLM2-135M-Instruct's tokenizer alone, read from its GGUF (no model weights are loaded)."""
    from transformers import AutoTokenizer

    from pts.models import resolve_alias

    path = resolve_alias("smollm2-135m").locate()
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def test_span_pairs_train_on_their_exact_ids_in_trl(embedded_tokenizer, tmp_path):
    """A span pair (" 12" vs " 13", two tokens each): TokenIdsDPOTrainer, the class the docs show, trains on the
    context ids and both runs as measured, with every token of the run in the completion and nothing appended;
    ``trl_tokens_match`` says whether stock TRL's re-tokenization would give the same ids."""
    from transformers import LlamaForCausalLM
    from trl import DPOConfig, DPOTrainer

    from pts.formats.dpo import TRL_IDS_TRAINER
    from pts.records import Continuation

    tok = embedded_tokenizer
    messages = [{"role": "user", "content": "5 + 7 ="}]
    prompt = list(
        tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    )
    ids = prompt + tok("The answer is", add_special_tokens=False)["input_ids"]
    span, other = (tok(t, add_special_tokens=False)["input_ids"] for t in (" 12", " 13"))
    assert len(span) == len(other) >= 2 and span != other
    pivot = fake_line_pivot(ids, len(prompt), 0.4, tok.decode(span))
    pivot.pivot_context, pivot.pivot_token_id, pivot.span_token_ids = tok.decode(ids), span[0], list(span)
    pivot.prob_after, pivot.samples_after, pivot.successes_after = 0.9, 10, 9
    pivot.continuations = [
        Continuation(list(span), tok.decode(span), 10, 9),
        Continuation(list(other), tok.decode(other), 6, 1),
    ]
    (row,), report = build_pairs([pivot], tok, DPOSettings())
    assert (row["chosen_ids"], row["rejected_ids"], row["prompt_ids"]) == (span, other, ids)
    assert (row["chosen"], row["rejected"]) == (" 12", " 13") and row["metadata"]["span_token_ids"] == span
    eos = tok.eos_token_id
    stock_ids = [tok(row["prompt"] + row[k] + tok.eos_token)["input_ids"] for k in ("chosen", "rejected")]
    assert row["metadata"]["trl_tokens_match"] == (stock_ids == [ids + span + [eos], ids + other + [eos]])

    config = tiny_llama_config(len(tok))
    args = DPOConfig(
        output_dir=str(tmp_path / "trl"),
        report_to="none",
        use_cpu=True,
        max_length=None,
        max_steps=1,
        save_strategy="no",
    )
    from datasets import Dataset

    scope = {"DPOTrainer": DPOTrainer}
    exec(TRL_IDS_TRAINER, scope)  # noqa: S102
    trainer = scope["TokenIdsDPOTrainer"](
        model=LlamaForCausalLM(config),
        ref_model=LlamaForCausalLM(config),
        args=args,
        processing_class=tok,
        train_dataset=Dataset.from_list([row]),
    )
    assert trainer.train_dataset[0] == {"prompt_ids": ids, "chosen_ids": span, "rejected_ids": other}
    batch = trainer.data_collator([trainer.train_dataset[0]])
    for j, side in ((0, span), (1, other)):
        at = batch["completion_mask"][j].nonzero()[:, 0].tolist()
        assert at == list(range(len(ids), len(ids) + len(side)))  # every token of the run, nothing appended
        assert batch["input_ids"][j][: len(ids) + len(side)].tolist() == ids + side
    assert math.isfinite(trainer.train().training_loss)
