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

from pts.errors import PTSError
from pts.export.records import PivotRecord
from pts.export.steering import (
    PATTERNS,
    UNKNOWN,
    SteeringSettings,
    cluster,
    context_activations,
    default_layers,
    label_clusters,
    merge_contexts,
    pattern_scores,
    steering_records,
)
from pts.jobs.export import ExportConfig
from pts.jobs.export import run as export
from pts.records import ORIGINAL_FIELDS
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


def test_steering_export_one_line_per_context_pointing_toward_success(
    real, original, embedded_loaded, tmp_path, capsys
):
    out = tmp_path / "steer.jsonl"
    summary = export(
        ExportConfig(input_path=str(real[0]), format="steering", output_path=str(out), num_clusters=4),
        loaded=embedded_loaded,
    )
    assert "target_layer=18" in summary.format()
    rows = read_jsonl(out)
    model, tok = embedded_loaded.model, embedded_loaded.tokenizer
    layers = default_layers(model.config.num_hidden_layers)
    assert layers == [18, 23, 27]
    expected = steering_lines(real[1], tok)
    assert [tuple(r["pivot_context_ids"]) for r in rows] == list(expected)  # input order, no duplicate context
    for row in rows:
        members, sign = expected[tuple(row["pivot_context_ids"])]
        lead = max((r for r in members if (r["prob_delta"] > 0) == (sign > 0)), key=lambda r: abs(r["prob_delta"]))
        assert all(k in row for k in OPTILLM_FIELDS)
        assert {k: row[k] for k in ORIGINAL_FIELDS if k in row} == {k: lead[k] for k in ORIGINAL_FIELDS if k in row}
        assert [q["pivot_id"] for q in row["pivots"]] == [r["id"] for r in members]
        assert row["vector_sign"] == sign and row["adds_toward_success"] is True and row["is_positive"] == (sign > 0)
        assert row["steering_layer"] == 18 and sorted(row["layer_activations"], key=int) == ["18", "23", "27"]
        assert row["activation_position"] == len(row["pivot_context_ids"]) - 1
        np.testing.assert_allclose(
            row["activation"], last_token_state(model, row["pivot_context_ids"], 18), rtol=1e-4, atol=1e-4
        )
    acts = np.array([r["activation"] for r in rows])
    signs = np.array([r["vector_sign"] for r in rows])[:, None]
    steer = np.array([r["steering_vector"] for r in rows])
    offset = acts - steer * signs  # the same baseline for every line: the vector is sign * (activation - baseline)
    np.testing.assert_allclose(offset, np.broadcast_to(offset[0], offset.shape), atol=1e-3)
    positive = signs[:, 0] > 0
    for c in {r["cluster_id"] for r in rows}:
        members = np.array([r["cluster_id"] == c for r in rows])
        np.testing.assert_allclose(
            rows[int(np.flatnonzero(members)[0])]["cluster_vector"], steer[members].mean(0), rtol=1e-4, atol=1e-3
        )
        assert len({r["reasoning_pattern"] for r, m in zip(rows, members) if m}) == 1
        row = rows[int(np.flatnonzero(members)[0])]
        mask = members if row["contrastive_scope"] == "cluster" else np.ones(len(rows), bool)
        if row["contrastive_scope"] != "none":
            want = acts[mask & positive].mean(0) - acts[mask & ~positive].mean(0)
            np.testing.assert_allclose(row["contrastive_vector"], want, rtol=1e-4, atol=1e-3)
    patterns = [r["reasoning_pattern"] for r in rows]
    assert set(patterns) <= set(PATTERNS) | {UNKNOWN}
    assert len(set(patterns)) > 1 or patterns[0] == UNKNOWN  # never one real label on every line

    # the original tool's file: the same contexts, tokenized again (same vectors where the ids agree)
    out2 = tmp_path / "steer_original.jsonl"
    export(
        ExportConfig(input_path=str(original[0]), format="steering", output_path=str(out2), num_clusters=4),
        loaded=embedded_loaded,
    )
    rows2 = {r["pivot_context"]: r for r in read_jsonl(out2)}
    assert all(r["retokenized"] for r in rows2.values()) and not any(r["retokenized"] for r in rows)
    for r1 in rows:
        if tok(r1["pivot_context"], add_special_tokens=False)["input_ids"] == r1["pivot_context_ids"]:
            np.testing.assert_allclose(r1["activation"], rows2[r1["pivot_context"]]["activation"], atol=1e-4)


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
    acts = {7: np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)}
    rows = steering_records(
        contexts, CharTokenizer(), acts, {7: np.zeros(2, np.float32)}, 7, SteeringSettings(num_clusters=2)
    )
    assert [r["vector_sign"] for r in rows] == [1, -1] and [r["is_positive"] for r in rows] == [True, False]
    assert rows[1]["steering_vector"] == [0.0, -1.0] and rows[1]["prob_delta"] == -0.6


def test_optillm_loads_the_export_and_its_hook_steers_the_right_contexts_toward_success(
    real, embedded_loaded, tmp_path
):
    steering = optillm_steering()
    folder = tmp_path / "vectors"  # optillm loads with datasets.load_dataset(NAME): a Hub id or a local folder
    folder.mkdir()
    out = folder / "steering.jsonl"
    export(
        ExportConfig(input_path=str(real[0]), format="steering", output_path=str(out), num_clusters=4),
        loaded=embedded_loaded,
    )
    rows = read_jsonl(out)
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
            model(input_ids=torch.tensor([list(ids)]))
        return seen["h"].float().numpy().copy()

    baseline = np.concatenate([hidden_states(model, r["pivot_context_ids"])[layer + 1][1:] for r in rows]).mean(0)
    try:
        for row in rows:
            ids = row["pivot_context_ids"]
            steered = at(ids)
            assert hook.current_vector is not None and hook.current_vector["pivot_context"] == row["pivot_context"]
            change = steered - last_token_state(model, ids, layer)
            strength = min(max(manager.get_steering_strength(row["reasoning_pattern"]), 0.1), 2.0)
            strength = min(max(strength * min(max(abs(row["prob_delta"]), 0.1), 2.0), 0.0), 3.0)
            unit = np.array(row["steering_vector"]) / np.linalg.norm(row["steering_vector"])
            np.testing.assert_allclose(change, strength * unit, atol=1e-3)
            # toward success: along the context's own state (minus the mean) for a positive line, against it for
            # a negative one; the line's sign is that of its pivots' summed change (checked above)
            assert np.sign(change @ (last_token_state(model, ids, layer) - baseline)) == row["vector_sign"]
        # an unrelated question, with and without AutoThink's "<think>" prefill, is not steered
        for prefill in ("", "<think>\n"):
            messages = [{"role": "user", "content": "Name a primary colour."}]
            text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) + prefill
            ids = tok(text, add_special_tokens=False)["input_ids"]
            unsteered = at(ids)
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


def test_layer_numbers_accept_commas_spaces_and_ranges():
    assert (
        parse_layers("19,23,27") == parse_layers(["19", "23", "27"]) == parse_layers(["19,", "23 27"]) == [19, 23, 27]
    )
    assert parse_layers(["10-12", "12"]) == [10, 11, 12] and parse_layers(None) is None
    with pytest.raises(PTSError):
        parse_layers("a,b")
    assert default_layers(28) == [17, 21, 25] and default_layers(2) == [1]
