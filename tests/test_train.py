"""`pts train`: the cDPO loss, exact-id DPO rows, cDPO pairs, and one training step of each loss on real models."""

import json
import math
import subprocess
import sys

import pytest
import torch

from pts.cli import main as pts_main
from pts.errors import PTSError
from pts.train.cdpo import DataCollatorForWeightedPreference, cdpo_loss
from pts.train.data import build_cdpo_rows, cdpo_rows, preference_rows

# ---------------------------------------------------------------- the loss, by hand


def hand_batch():
    # Pair 0: chosen log-ratios 0.5, -0.2 (the 9.0 is padding, masked out): sum 0.3.
    #         rejected log-ratios 1.0, 2.0, -1.0 with s = 0.5, 1.0, 0.0 -> weights 1-s = 0.5, 0, 1
    #         weighted sum 0.5*1.0 + 0*2.0 + 1*(-1.0) = -0.5; margin 0.3 - (-0.5) = 0.8
    #         gamma 0.5 -> z = 0.4; loss = -log sigmoid(0.4) = log(1 + e^-0.4) = log(1.670320) = 0.513015
    # Pair 1: chosen 0.0 (one token); rejected 0.2 (one token, s = 0): margin -0.2, z = -0.1
    #         loss = log(1 + e^0.1) = log(2.105171) = 0.744397
    chosen = torch.tensor([[0.5, -0.2, 9.0], [0.0, 7.0, 7.0]])
    chosen_mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    rejected = torch.tensor([[1.0, 2.0, -1.0], [0.2, 5.0, 5.0]])
    scores = torch.tensor([[0.5, 1.0, 0.0], [0.0, 0.3, 0.3]])
    rejected_mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    return chosen, rejected, 1 - scores, chosen_mask, rejected_mask


def test_cdpo_loss_matches_a_hand_computed_example():
    losses = cdpo_loss(*hand_batch(), gamma=0.5)
    assert losses.shape == (2,)
    assert losses.tolist() == pytest.approx([0.513015, 0.744397], abs=1e-6)


def test_a_token_with_zero_weight_changes_neither_loss_nor_gradient():
    chosen, rejected, weights, cmask, rmask = hand_batch()
    rejected.requires_grad_(True)
    loss = cdpo_loss(chosen, rejected, weights, cmask, rmask, gamma=0.5).sum()
    loss.backward()
    # dL/dr_t = gamma * w_t * sigmoid(-z): pair 0 has z = 0.4, sigmoid(-0.4) = 0.401312
    assert rejected.grad[0].tolist() == pytest.approx([0.5 * 0.5 * 0.401312, 0.0, 0.5 * 1.0 * 0.401312], abs=1e-6)
    assert rejected.grad[1, 1:].tolist() == [0.0, 0.0]  # masked positions
    # The s_t = 1 token (weight 0) can take any log-ratio: the loss does not move.
    moved = rejected.detach().clone()
    moved[0, 1] = 100.0
    assert torch.equal(cdpo_loss(chosen, moved, weights, cmask, rmask, 0.5), cdpo_loss(*hand_batch(), gamma=0.5))
    # ...while the same change on a weighted token does.
    moved[0, 0] = 100.0
    assert not torch.equal(cdpo_loss(chosen, moved, weights, cmask, rmask, 0.5), cdpo_loss(*hand_batch(), gamma=0.5))


def test_all_zero_scores_reduce_to_sigmoid_dpo():
    chosen, rejected, _, cmask, rmask = hand_batch()
    ones = torch.ones_like(rejected)
    dpo = -torch.nn.functional.logsigmoid(0.1 * ((chosen * cmask).sum(-1) - (rejected * rmask).sum(-1)))
    assert torch.allclose(cdpo_loss(chosen, rejected, ones, cmask, rmask, gamma=0.1), dpo)


def test_collator_puts_one_minus_score_on_each_rejected_token():
    collator = DataCollatorForWeightedPreference(pad_token_id=0, max_length=5)
    batch = collator(
        [
            {"prompt_ids": [1, 2, 3], "chosen_ids": [4], "rejected_ids": [6, 7], "rejected_scores": [0.25, 1.0]},
            {
                "prompt_ids": [8],
                "chosen_ids": [9, 9],
                "rejected_ids": [10, 11, 12, 13, 14],
                "rejected_scores": [0.5] * 5,
            },
        ]
    )
    # input_ids rows 2 and 3 are prompt+rejected: [1,2,3,6,7] and [8,10,11,12,13] (cut at max_length 5)
    assert batch["input_ids"][2:].tolist() == [[1, 2, 3, 6, 7], [8, 10, 11, 12, 13]]
    assert batch["rejected_weights"].tolist() == [[0, 0, 0, 0.75, 0.0], [0, 0.5, 0.5, 0.5, 0.5]]
    assert batch["completion_mask"][2:].tolist() == [[0, 0, 0, 1, 1], [0, 1, 1, 1, 1]]


# ---------------------------------------------------------------- rows


def test_preference_rows_take_ids_from_metadata_or_top_level_else_text():
    text = [{"prompt": "Q", "chosen": " 7", "rejected": " 8", "metadata": {"pivot": 1}}]
    assert preference_rows(text).exact is False
    meta = [
        {
            "prompt": "Q",
            "chosen": " 7",
            "rejected": " 8",
            "metadata": {"prompt_ids": [1, 2], "chosen_ids": [7], "rejected_ids": [8]},
        }
    ]
    top = [{"prompt_input_ids": [1, 2], "chosen_input_ids": [7], "rejected_input_ids": [8]}]
    exported = [
        {
            "prompt": "Q",
            "chosen": " 7",
            "rejected": " 8",  # what `pts export --format dpo` writes
            "metadata": {"prompt_token_ids": [1, 2], "chosen_token_id": 7, "rejected_token_id": 8},
        }
    ]
    for raw in (meta, top, exported):
        data = preference_rows(raw)
        assert data.exact and data.rows == [{"prompt_ids": [1, 2], "chosen_ids": [7], "rejected_ids": [8]}]
    with pytest.raises(PTSError, match="mixes rows"):
        preference_rows(meta + text)
    with pytest.raises(PTSError, match="row 1 has no rejected"):
        preference_rows([{"prompt": "Q", "chosen": "a"}])
    with pytest.raises(PTSError, match="out of range"):
        preference_rows(top, vocab_size=8)


def test_cdpo_rows_need_one_score_in_0_1_per_rejected_token():
    row = {"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [3, 4], "rejected_scores": [0.1, 0.9]}
    assert cdpo_rows([row]) == [row]
    for bad, msg in [
        ({"rejected_scores": [0.1]}, "one score per rejected token"),
        ({"rejected_scores": [0.1, 1.5]}, r"in \[0, 1\]"),
        ({"rejected_scores": None}, "no rejected_scores"),
    ]:
        with pytest.raises(PTSError, match=msg):
            cdpo_rows([{**row, **bad}])
    with pytest.raises(PTSError, match="needs token ids"):
        cdpo_rows([{"prompt": "Q", "chosen": "a", "rejected": "b", "rejected_scores": [0.5]}])


def test_build_cdpo_rows_pairs_correct_and_incorrect_trajectories_of_one_prompt():
    trajectories = [
        {"query": "A", "prompt_ids": [1], "response_ids": [4], "correct": False, "scores": [0.1], "answer_key": "9"},
        {"query": "A", "prompt_ids": [1], "response_ids": [], "correct": False, "scores": []},  # empty: skipped
        {
            "query": "A",
            "prompt_ids": [1],
            "response_ids": [5, 6],
            "correct": False,
            "scores": [0.2, 0.3],
            "answer_key": "8",
        },
        {
            "query": "A",
            "prompt_ids": [1],
            "response_ids": [5, 7],
            "correct": False,
            "scores": [0.2, 0.4],
            "answer_key": "8",
        },  # "8" is the most frequent wrong answer: its first trajectory is the rejected one
        {"query": "A", "prompt_ids": [1], "response_ids": [7], "correct": True},
        {"query": "A", "prompt_ids": [1], "response_ids": [8], "correct": True},
        {"query": "B", "prompt_ids": [2], "response_ids": [9], "correct": True},  # no incorrect one: no pair
        {"query": "C", "prompt_ids": [3], "token_ids": [4], "correct": False, "scores": [1.0]},
        {"query": "C", "prompt_ids": [3], "token_ids": [3], "correct": True, "scores": [0.0]},
    ]
    rows = build_cdpo_rows(trajectories)
    assert [(r["prompt"], r["prompt_ids"], r["chosen_ids"], r["rejected_ids"], r["rejected_scores"]) for r in rows] == [
        ("A", [1], [7], [5, 6], [0.2, 0.3]),
        ("C", [3], [3], [4], [1.0]),
    ]
    assert cdpo_rows(trajectories) == [
        {k: r[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids", "rejected_scores")} for r in rows
    ]
    two = build_cdpo_rows(trajectories, max_pairs_per_query=2)
    assert [(r["chosen_ids"], r["rejected_ids"]) for r in two if r["prompt"] == "A"] == [([7], [5, 6]), ([8], [5, 7])]
    assert [len(r["rejected_ids"]) for r in cdpo_rows(trajectories, max_pairs_per_query=2)] == [2, 2, 1]
    with pytest.raises(PTSError, match="needs scores"):
        build_cdpo_rows([{"prompt_ids": [1], "response_ids": [2], "correct": False}])
    with pytest.raises(PTSError, match="no query has both"):
        build_cdpo_rows(trajectories[6:7])


# ---------------------------------------------------------------- trainers on a tiny model


@pytest.fixture(scope="module")
def tokenizer(embedded_model):
    return embedded_model[1]


def tiny_model(vocab_size):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(cfg)


def tiny_trainer(tmp_path, tokenizer, rows, gamma=0.3):
    from datasets import Dataset
    from peft import LoraConfig

    from pts.train.cdpo import CDPOConfig, CDPOTrainer

    args = CDPOConfig(
        output_dir=str(tmp_path / "t"),
        gamma=gamma,
        beta=gamma,
        report_to="none",
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        max_length=64,
    )
    # Random (not zero) LoRA B: the policy differs from the reference (adapter off) before any step.
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    return CDPOTrainer(
        tiny_model(len(tokenizer)),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora,
    )


def random_pairs(scores, seed=0):
    g = torch.Generator().manual_seed(seed)

    def ids(n):
        return torch.randint(10, 5000, (n,), generator=g).tolist()

    rows = []
    for prompt_len, chosen_len, rejected_len in [(5, 3, 4), (8, 2, 6)]:
        rejected = ids(rejected_len)
        s = scores(rejected_len, g)
        rows.append(
            {
                "prompt_ids": ids(prompt_len),
                "chosen_ids": ids(chosen_len),
                "rejected_ids": rejected,
                "rejected_scores": s,
            }
        )
    return rows


def test_cdpo_trainer_with_zero_scores_and_gamma_beta_equals_trl_sigmoid_dpo(tmp_path, tokenizer):
    import copy

    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    trainer = tiny_trainer(tmp_path, tokenizer, random_pairs(lambda n, g: [0.0] * n))
    # Stock TRL, through its public compute_loss: the same policy (the LoRA merged into a copy) against the same
    # reference (a copy without the LoRA). TRL wants a dataset of its own; the loss is taken on pts's batch.
    stock = DPOTrainer(
        copy.deepcopy(trainer.model).merge_and_unload(),
        ref_model=copy.deepcopy(trainer.model).unload(),
        args=DPOConfig(
            output_dir=str(tmp_path / "stock"),
            beta=trainer.gamma,
            report_to="none",
            use_cpu=True,
            bf16=False,
            activation_checkpointing=False,
            max_length=64,
        ),
        train_dataset=Dataset.from_list([{"prompt": "a", "chosen": " b", "rejected": " c"}]),
        processing_class=tokenizer,
    )
    batch = trainer.data_collator(list(trainer.train_dataset))
    trainer.model.eval()
    stock.model.eval()
    with torch.no_grad():
        ours = trainer.compute_loss(trainer.model, batch)
        trl_batch = {k: v for k, v in batch.items() if k != "rejected_weights"}
        theirs = stock.compute_loss(stock.model, trl_batch)  # TRL's own sigmoid DPO
    assert abs(ours.item() - math.log(2)) > 1e-3  # policy != reference, so the check is not 0.6931 == 0.6931
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)


def test_cdpo_trainer_loss_equals_the_formula_on_per_token_log_probs(tmp_path, tokenizer):
    rows = random_pairs(lambda n, g: torch.rand(n, generator=g).tolist(), seed=1)
    trainer = tiny_trainer(tmp_path, tokenizer, rows, gamma=0.7)
    batch = trainer.data_collator(list(trainer.train_dataset))
    model = trainer.model.eval()

    def token_logps(ids, start):
        logits = model(torch.tensor([ids])).logits[0].log_softmax(-1)
        return torch.stack([logits[p - 1, ids[p]] for p in range(start, len(ids))])

    expected = []
    with torch.no_grad():
        loss = trainer.compute_loss(model, batch).item()
        for r in rows:
            n = len(r["prompt_ids"])
            pol_c, pol_r = (
                token_logps(r["prompt_ids"] + r["chosen_ids"], n),
                token_logps(r["prompt_ids"] + r["rejected_ids"], n),
            )
            with model.disable_adapter():
                ref_c, ref_r = (
                    token_logps(r["prompt_ids"] + r["chosen_ids"], n),
                    token_logps(r["prompt_ids"] + r["rejected_ids"], n),
                )
            w = 1 - torch.tensor(r["rejected_scores"])
            z = 0.7 * ((pol_c - ref_c).sum() - (w * (pol_r - ref_r)).sum())
            expected.append(-torch.nn.functional.logsigmoid(z).item())
    assert loss == pytest.approx(sum(expected) / len(expected), abs=1e-5)


def test_exact_id_rows_are_trained_as_given_while_trl_retokenizes_text(tmp_path, tokenizer):
    from datasets import Dataset
    from trl import DPOConfig

    from pts.train.dpo import PreTokenizedDPOTrainer

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "2+5?"}], add_generation_prompt=True, return_dict=False
    )
    seven, eight = tokenizer.encode(" 7", add_special_tokens=False), tokenizer.encode(" 8", add_special_tokens=False)
    args = DPOConfig(
        output_dir=str(tmp_path / "t"), report_to="none", use_cpu=True, bf16=False, activation_checkpointing=False
    )

    def prepared(rows):
        trainer = PreTokenizedDPOTrainer(
            tiny_model(len(tokenizer)),
            ref_model=tiny_model(len(tokenizer)),
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
        )
        return trainer.train_dataset[0]

    exact = prepared([{"prompt_ids": prompt, "chosen_ids": seven, "rejected_ids": eight}])
    assert (exact["prompt_ids"], exact["chosen_ids"], exact["rejected_ids"]) == (prompt, seven, eight)
    text = prepared([{"prompt": tokenizer.decode(prompt), "chosen": " 7", "rejected": " 8"}])
    assert text["chosen_ids"] != seven and text["chosen_ids"][-1] == tokenizer.eos_token_id  # why ids matter


@pytest.fixture
def tiny_dir(tmp_path, tokenizer):
    """A tiny random Llama with the embedded model's tokenizer, saved as a local model directory."""
    path = tmp_path / "tiny"
    tiny_model(len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_full_fine_tuning_writes_a_model_directory_that_loads(tmp_path, tiny_dir):
    from pts.jobs.train import TrainConfig
    from pts.jobs.train import run as train
    from pts.models import load_model

    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in random_pairs(lambda n, g: [0.5] * n)) + "\n")
    out = tmp_path / "full"
    result = train(
        TrainConfig(
            input_path=str(data),
            output_dir=str(out),
            loss="cdpo",
            model=str(tiny_dir),
            lora=False,
            learning_rate=1e-3,
            max_steps=1,
            device="cpu",
            progress=False,
        )
    )
    assert result.steps == 1 and not result.lora and (out / "config.json").is_file()
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        before = load_model(str(tiny_dir), device="cpu", dtype="float32").model(ids).logits
        after = load_model(str(out), device="cpu", dtype="float32").model(ids).logits
    assert not torch.allclose(before, after)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_rows_whose_prompt_fills_max_length_leave_nothing_to_train(tmp_path, tiny_dir):
    from pts.jobs.train import TrainConfig
    from pts.jobs.train import run as train

    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({"prompt_ids": [5, 6, 7, 8], "chosen_ids": [9], "rejected_ids": [10]}) + "\n")
    with pytest.raises(PTSError, match="no train row is left"):
        train(
            TrainConfig(
                input_path=str(data),
                output_dir=str(tmp_path / "out"),
                model=str(tiny_dir),
                max_length=4,
                max_steps=1,
                device="cpu",
                progress=False,
            )
        )
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".tmp-*"))


# ---------------------------------------------------------------- one real step on the embedded model


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([list(ids)])).logits[0, -1]


@pytest.mark.slow
def test_dpo_on_exact_ids_one_step_writes_an_adapter_that_changes_the_model(
    tmp_path, embedded_model, chat_prompt, capsys
):
    from pts.train import load_trained

    model, tok, _ = embedded_model
    rows = []
    for a, b in [(2, 5), (1, 2)]:
        # Shaped like `pts export --format dpo`: the pivot's context ids and one token id per side.
        context = list(chat_prompt(f"What is {a}+{b}?")) + tok.encode(f"{a}+{b}=", add_special_tokens=False)
        good, bad = tok.convert_tokens_to_ids(str(a + b)), tok.convert_tokens_to_ids(str(a + b + 1))
        rows.append(
            {
                "prompt": tok.decode(context),
                "chosen": str(a + b),
                "rejected": str(a + b + 1),
                "metadata": {"prompt_token_ids": context, "chosen_token_id": good, "rejected_token_id": bad},
            }
        )
    data = tmp_path / "dpo.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "dpo-lora"
    rc = pts_main(
        [
            "train",
            "--loss",
            "dpo",
            "--input-path",
            str(data),
            "--output-dir",
            str(out),
            "--max-steps",
            "1",
            "--batch-size",
            "2",
            "--learning-rate",
            "1e-3",
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert rc == 0 and "1 steps" in capsys.readouterr().out
    info = json.loads((out / "pts_train.json").read_text())
    assert info["exact_token_ids"] and info["steps"] == 1 and info["base_model"] == "smollm2-135m"
    assert (out / "adapter_config.json").is_file() and not (out / "config.json").exists()
    trained = load_trained(str(out), device="cpu", dtype="float32")
    probe = rows[0]["metadata"]["prompt_token_ids"]
    before, after = logits_of(model, probe), logits_of(trained.model, probe)
    assert torch.isfinite(after).all() and (after - before).abs().max() > 1e-3


@pytest.mark.slow
def test_cdpo_from_scored_trajectories_one_step_with_merge(tmp_path, embedded_model, chat_prompt, capsys):
    from pts.models import load_model
    from pts.train import load_trained

    model, tok, _ = embedded_model
    trajectories = []
    for a, b in [(2, 5), (3, 4)]:
        prompt = list(chat_prompt(f"What is {a}+{b}?"))
        right = tok.encode(f"{a}+{b}={a + b}", add_special_tokens=False)
        wrong = tok.encode(f"{a}+{b}={a + b + 2}", add_special_tokens=False)
        # CE scores: every token looks fine (s = 0.9) but the wrong result (s = 0.05), the critical token.
        trajectories += [
            {"query": f"{a}+{b}", "prompt_ids": prompt, "response_ids": right, "correct": True},
            {
                "query": f"{a}+{b}",
                "prompt_ids": prompt,
                "response_ids": wrong,
                "correct": False,
                "scores": [0.9] * (len(wrong) - 1) + [0.05],
            },
        ]
    data = tmp_path / "scored.jsonl"
    data.write_text("\n".join(json.dumps(t) for t in trajectories) + "\n")
    out = tmp_path / "cdpo-lora"
    rc = pts_main(
        [
            "train",
            "--loss",
            "cdpo",
            "--input-path",
            str(data),
            "--output-dir",
            str(out),
            "--max-steps",
            "1",
            "--batch-size",
            "2",
            "--learning-rate",
            "1e-3",
            "--gamma",
            "0.5",
            "--lora-targets",
            "q_proj,v_proj",
            "--merge",
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert rc == 0 and "merged model written" in capsys.readouterr().out
    info = json.loads((out / "pts_train.json").read_text())
    assert info["loss"] == "cdpo" and info["rows"] == 2 and info["config"]["gamma"] == 0.5
    assert json.loads((out / "adapter_config.json").read_text())["target_modules"] in (
        ["q_proj", "v_proj"],
        ["v_proj", "q_proj"],
    )
    probe = chat_prompt("What is 2+5?")
    adapter = logits_of(load_trained(str(out), device="cpu", dtype="float32").model, probe)
    merged = logits_of(load_model(str(out / "merged"), device="cpu", dtype="float32").model, probe)
    assert torch.allclose(adapter, merged, atol=1e-4)
    assert (merged - logits_of(model, probe)).abs().max() > 1e-3
    assert "quantization_config" not in json.loads((out / "merged" / "config.json").read_text())


# ---------------------------------------------------------------- bad input


def bad_inputs(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text(
        json.dumps({"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [3], "rejected_scores": [0.5]}) + "\n"
    )
    text = tmp_path / "text.jsonl"
    text.write_text(json.dumps({"prompt": "Q", "chosen": "a", "rejected": "b"}) + "\n")
    files = {
        "empty.jsonl": "",
        "broken.jsonl": '{"prompt": "Q", "chosen"\n',
        "mixed.jsonl": json.dumps({"prompt": "Q", "chosen": "a", "rejected": "b"})
        + "\n"
        + json.dumps({"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [3]})
        + "\n",
        "short_scores.jsonl": json.dumps(
            {"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [3, 4], "rejected_scores": [0.5]}
        )
        + "\n",
    }
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    return {
        "missing input": ["--input-path", str(tmp_path / "nope.jsonl")],
        "empty input": ["--input-path", str(tmp_path / "empty.jsonl")],
        "invalid json": ["--input-path", str(tmp_path / "broken.jsonl")],
        "mixed rows": ["--input-path", str(tmp_path / "mixed.jsonl")],
        "cdpo on text rows": ["--input-path", str(text), "--loss", "cdpo"],
        "scores misaligned": ["--input-path", str(tmp_path / "short_scores.jsonl"), "--loss", "cdpo"],
        "lora rank": ["--input-path", str(good), "--lora-r", "0"],
        "pairs per query": ["--input-path", str(good), "--loss", "cdpo", "--pairs-per-query", "0"],
        "merge without lora": ["--input-path", str(good), "--no-lora", "--merge"],
        "negative gamma": ["--input-path", str(good), "--loss", "cdpo", "--gamma", "-1"],
        "unknown loss": ["--input-path", str(good), "--loss", "kto"],
        "output exists": ["--input-path", str(good), "--output-dir", str(tmp_path / "taken")],
        "no output parent": ["--input-path", str(good), "--output-dir", str(tmp_path / "no" / "out")],
    }


def run_cli(args):
    try:
        return pts_main(args)
    except SystemExit as e:  # argparse's own errors (an unknown --loss choice)
        return e.code


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    for name, args in bad_inputs(tmp_path).items():
        if "--output-dir" not in args:
            args = [*args, "--output-dir", str(tmp_path / "out")]
        rc = run_cli(["train", *args, "--device", "cpu"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and "error" in err[0], (name, err)
        assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".tmp-*")), name
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]


def test_token_ids_outside_the_model_vocabulary_are_refused_before_training(tmp_path, model_cache_dir):
    data = tmp_path / "far.jsonl"
    data.write_text(json.dumps({"prompt_ids": [1], "chosen_ids": [10**7], "rejected_ids": [3]}) + "\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pts",
            "train",
            "--input-path",
            str(data),
            "--output-dir",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2 and "out of range" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".tmp-*"))
