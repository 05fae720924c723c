"""`pts export --format steering`: where activations are read, one line per context, clusters; optillm."""

import numpy as np
import pytest
import torch
from consumers import optillm_steering
from export_samples import (
    OPTILLM_FIELDS,
    hidden_states,
    last_token_state,
)

from pts.cli import main as cli_main
from pts.errors import PTSError
from pts.export.records import PivotalTokenRow
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
from pts.records import ORIGINAL_FIELDS, FirstToken
from pts.steering.directions import decision_tokens, optillm_strength
from pts.steering.layers import parse_layers
from pts.store import read_jsonl

pytestmark = pytest.mark.usefixtures("forget_states")

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
    return PivotalTokenRow(
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
