"""`pts steer`: loading steering/control vectors, the hooks' exact arithmetic, suffix matching, generation, CLI."""

import json
import random

import numpy as np
import pytest
import torch
from conftest import run_pts, write_jsonl

from pts.engines.base import SamplingParams
from pts.errors import PTSError
from pts.jobs.steer import SteerConfig, steer_dataset, steer_query
from pts.steering.apply import ContextSteering, ControlSteering, build_steering
from pts.steering.generate import Generation, GenerationRequest, generate
from pts.steering.hooks import SteeringHooks
from pts.steering.layers import parse_layers
from pts.steering.matching import SuffixMatcher
from pts.steering.report import PairedSample, SteerReport, format_query_pairs
from pts.steering.vectors import ControlVector, SteeringVector, load_steering_vectors
from pts.store import read_jsonl

load_control_vector = ControlVector.from_gguf  # the GGUF reader shared with pts export

DATASET = "rg:chain_sum?min_terms=2&max_terms=2&min_digits=1&max_digits=1&size=2"
HIDDEN = 576  # SmolLM2-135M
LAYERS = 30


def pts(*args, cwd):
    return run_pts(*args, cwd=cwd)


def write_control_vector(path, directions, arch="controlvector", hint="llama"):
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_string(f"{arch}.model_hint", hint)
    writer.add_uint32(f"{arch}.layer_count", len(directions))
    for name, vec in directions.items():
        writer.add_tensor(name if isinstance(name, str) else f"direction.{name}", np.asarray(vec, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def rand_vec(seed, dim=HIDDEN):
    return torch.randn(dim, generator=torch.Generator().manual_seed(seed)).tolist()


# ------------------------------------------------------------------------------------------- loading


def test_load_steering_vectors_optillm_shape_and_pts_extras(tmp_path):
    rows = [
        {
            "query": "q",
            "pivot_context": "ctx one",
            "pivot_token": " 7",
            "pivot_token_id": 7,
            "prob_before": 0.2,
            "prob_after": 0.8,
            "prob_delta": 0.6,
            "is_positive": True,
            "model_id": "m",
            "task_type": "math",
            "steering_vector": [1.0, 2.0, 3.0],
            "cluster_id": 2,
            "reasoning_pattern": "numerical_accuracy",
            "cluster_vector": [0.0, 1.0, 0.0],
            "steering_layer": 4,
            "pivot_context_ids": [5, 6, 7],
        },
        # optillm also accepts the vector as a JSON string; no is_positive (original tool): sign from prob_delta
        {
            "pivot_context": "ctx two",
            "prob_delta": -0.4,
            "steering_vector": "[3, 2, 1]",
            "steering_layer": "4",
            "cluster_vector": [1, 0, 0],
        },
        {"pivot_context": "zero", "prob_delta": 0.3, "steering_vector": [0, 0, 0], "cluster_vector": [0, 0, 1]},
        {"pivot_context": "null", "prob_delta": 0.3, "steering_vector": None, "cluster_vector": None},
    ]
    path = write_jsonl(tmp_path / "v.jsonl", rows)
    vecs = load_steering_vectors(path)
    assert len(vecs) == 2  # the all-zero and the null vector have no direction and are dropped
    a, b = vecs
    assert a.vector == [1.0, 2.0, 3.0] and a.layer == 4 and a.is_positive and a.context_ids == [5, 6, 7]
    assert a.reasoning_pattern == "numerical_accuracy" and a.cluster_id == 2 and a.pivot_token == " 7"
    assert b.vector == [3.0, 2.0, 1.0] and b.layer == 4 and not b.is_positive and b.context_ids is None
    by_cluster = load_steering_vectors(path, vector_field="cluster_vector")
    assert [v.vector for v in by_cluster] == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    assert by_cluster[2].layer is None


def test_load_steering_vectors_per_layer_object(tmp_path):
    path = write_jsonl(
        tmp_path / "v.jsonl",
        [{"pivot_context": "c", "is_positive": False, "steering_vector": {"3": [1, 0], "7": [0, 1]}}],
    )
    (v,) = load_steering_vectors(path, layer=7)
    assert v.vector == [0.0, 1.0] and v.layer == 7 and not v.is_positive
    with pytest.raises(PTSError, match="pick one with --layer"):
        load_steering_vectors(path)


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"pivot_context": "c"}], "no 'steering_vector' field"),
        ([{"steering_vector": [1, 2]}, {"steering_vector": [1, 2, 3]}], "3 dimensions, earlier rows have 2"),
        ([{"steering_vector": ["a", 1]}], "not a list of numbers"),
        ([{"steering_vector": [1, float("nan")]}], "NaN"),
        ([{"steering_vector": [0, 0]}, {"steering_vector": None}], "null or all zeros"),
        ([], "holds no steering vectors"),
    ],
)
def test_bad_steering_files(tmp_path, rows, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(PTSError, match=message):
        load_steering_vectors(path)


def test_missing_files_raise(tmp_path):
    with pytest.raises(PTSError, match="does not exist"):
        load_steering_vectors(tmp_path / "nope.jsonl")
    with pytest.raises(PTSError, match="does not exist"):
        load_control_vector(tmp_path / "nope.gguf")


def test_load_control_vector_gguf(tmp_path):
    path = write_control_vector(tmp_path / "cv.gguf", {1: [1, 2, 3], 5: [4, 5, 6]}, hint="llama")
    cv = load_control_vector(path)
    assert cv.directions == {1: [1.0, 2.0, 3.0], 5: [4.0, 5.0, 6.0]} and cv.model_hint == "llama" and cv.dim == 3


def test_bad_control_vectors(tmp_path):
    not_gguf = tmp_path / "x.gguf"
    not_gguf.write_bytes(b"this is not a gguf file at all" * 4)
    with pytest.raises(PTSError, match="not a readable GGUF"):
        load_control_vector(not_gguf)
    model_file = write_control_vector(tmp_path / "model.gguf", {"blk.0.attn_q.weight": [1, 2]}, arch="llama")
    with pytest.raises(PTSError, match="architecture 'llama', not a control vector"):
        load_control_vector(model_file)
    bad_name = write_control_vector(tmp_path / "badname.gguf", {"direction.x": [1, 2]})
    with pytest.raises(PTSError, match="not direction.<layer number>"):
        load_control_vector(bad_name)
    sizes = write_control_vector(tmp_path / "sizes.gguf", {1: [1, 2], 2: [1, 2, 3]})
    with pytest.raises(PTSError, match="different sizes"):
        load_control_vector(sizes)


def test_parse_layers():
    assert parse_layers(None) is None and parse_layers("15") == [15] and parse_layers(7) == [7]
    assert parse_layers("3,5 7") == [3, 5, 7] and parse_layers("10-12,12") == [10, 11, 12]
    with pytest.raises(PTSError, match="--layer must be layer numbers"):
        parse_layers("five")


# ------------------------------------------------------------------------------------------- matching


def optillm_match(contexts, history, max_tokens=256):
    """A literal rendering of optillm autothink's create_tokenized_contexts + _try_token_match."""
    table = {}
    for k, ctx in enumerate(contexts):
        ctx = list(ctx)
        if not ctx:
            continue
        if len(ctx) > max_tokens:
            ctx = ctx[-max_tokens:]
        table[tuple(ctx)] = k
        for n in [4, 8, 12]:
            if len(ctx) > n and tuple(ctx[-n:]) not in table:
                table[tuple(ctx[-n:])] = k
    history = list(history)[-max_tokens:]
    if len(history) < 4:
        return None
    best_length, best = 0, None
    for key, k in table.items():
        tokens = list(key)
        if len(history) < len(tokens):
            match_len = min(len(history), max(4, len(tokens) // 2))
            if history[-match_len:] == tokens[-match_len:] and match_len > best_length:
                best_length, best = match_len, k
        elif history[-len(tokens) :] == tokens and len(tokens) >= best_length:
            best_length, best = len(tokens), k
    return best


def test_suffix_matching_examples():
    a = list(range(1, 11))  # 10 tokens
    b = [50, 51, 52, 53, 7, 8, 9, 10]  # shares a's last 4 tokens
    m = SuffixMatcher([a, b])
    assert m.match([99] + a) == 0  # the whole of a
    assert m.match([99, 98] + b) == 1  # the whole of b, longer than the shared 4-token tail
    assert m.match([60, 61, 62, 7, 8, 9, 10]) == 0  # only the 4-token tail: a claimed it first
    assert m.match([8, 9, 10]) is None  # fewer than 4 tokens never match
    assert m.match([1, 2, 3, 4, 5]) is None  # a prefix, not a suffix
    # a history shorter than a context matches on the context's last max(4, len // 2) tokens (here 15),
    # which beats a whole context of 13 tokens; when that fails, the 13-token context beats the 12-token tail
    long = list(range(100, 130))  # 30 tokens
    m2 = SuffixMatcher([long, long[-13:]])
    assert m2.match(long[-15:]) == 0
    assert m2.match([999] + long[-14:]) == 1
    # a later vector with the same full context replaces the earlier one (dict semantics, as in optillm)
    assert SuffixMatcher([a, a]).match(a) == 1


def test_suffix_matching_equals_optillm_on_random_cases():
    rng = random.Random(0)
    for _ in range(400):
        vocab = rng.choice([3, 5, 8])
        contexts = [[rng.randrange(vocab) for _ in range(rng.randrange(1, 40))] for _ in range(rng.randrange(1, 6))]
        if rng.random() < 0.5:  # plant a context at the end of the history
            pick = rng.choice(contexts)
            history = [rng.randrange(vocab) for _ in range(rng.randrange(0, 10))] + pick[rng.randrange(len(pick)) :]
        else:
            history = [rng.randrange(vocab) for _ in range(rng.randrange(0, 60))]
        if not history:
            continue
        assert SuffixMatcher(contexts).match(history) == optillm_match(contexts, history), (contexts, history)


# ------------------------------------------------------------------------------------------- hooks


def capture(model, layers):
    """Forward hooks recording the outputs of ``layers`` (registered after any steering hook: they see its result)."""
    seen, handles = {}, []
    for n in layers:

        def hook(module, args, output, n=n):
            seen[n] = (output[0] if isinstance(output, tuple) else output).detach().clone()

        handles.append(model.model.layers[n].register_forward_hook(hook))
    return seen, handles


def forward_with(model, steering, rows, ids):
    with SteeringHooks(model, steering.layers) as hooks:
        hooks.set(steering.tensors(rows, "cpu", torch.float32))
        seen, handles = capture(model, [steering.layers[0], steering.layers[0] + 1])
        try:
            with torch.inference_mode():
                logits = model(input_ids=torch.tensor([ids])).logits
        finally:
            for h in handles:
                h.remove()
    return seen, logits


@pytest.mark.parametrize("positive", [True, False])
def test_steering_hook_adds_strength_times_unit_vector_at_the_last_position(embedded_model, chat_prompt, positive):
    model, _, _ = embedded_model
    layer, strength = 11, 3.5
    ids = list(chat_prompt("What is 4 + 5?"))
    vec = rand_vec(1)
    steering = ContextSteering([SteeringVector(vec, layer, is_positive=positive)], [ids], [layer], strength)
    row = steering.start(ids, True)
    assert row.active == 0  # the prompt is the pivot context: matched before the first forward
    with torch.inference_mode():
        base = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    seen, logits = forward_with(model, steering, [row], ids)
    expected = base.hidden_states[layer + 1][0].clone()  # output of model.layers[layer]
    delta = torch.nn.functional.normalize(torch.tensor(vec), dim=0) * strength
    expected[-1] += delta if positive else -delta
    torch.testing.assert_close(seen[layer][0], expected, rtol=0, atol=1e-6)
    assert torch.equal(seen[layer][0, :-1], base.hidden_states[layer + 1][0, :-1])  # earlier positions untouched
    assert not torch.allclose(seen[layer + 1][0, -1], base.hidden_states[layer + 2][0, -1], atol=1e-3)  # it propagates
    assert not torch.allclose(logits[0, -1], base.logits[0, -1], atol=1e-3)


def test_steering_is_per_row_and_at_each_vectors_own_layer(chat_prompt):
    ids = list(chat_prompt("Name a colour."))
    other = list(chat_prompt("Name an animal."))
    vecs = [SteeringVector(rand_vec(2), 5), SteeringVector(rand_vec(3), 9, is_positive=False)]
    steering = ContextSteering(vecs, [ids, other], [5, 9], 2.0)
    rows = [steering.start(ids, True), steering.start(other, True), steering.start(ids, False)]
    assert [r.active for r in rows] == [0, 1, None]
    tensors = steering.tensors(rows, "cpu", torch.float32)
    unit = [torch.nn.functional.normalize(torch.tensor(v.vector), dim=0) for v in vecs]
    every5, last5 = tensors[5]
    every9, last9 = tensors[9]
    assert every5 is None and every9 is None
    torch.testing.assert_close(last5, torch.stack([2 * unit[0], torch.zeros(HIDDEN), torch.zeros(HIDDEN)]))
    torch.testing.assert_close(last9, torch.stack([torch.zeros(HIDDEN), -2 * unit[1], torch.zeros(HIDDEN)]))


def test_scale_by_delta_follows_optillm(embedded_model):
    vecs = [
        SteeringVector([1.0, 0.0], 0, prob_delta=0.05),
        SteeringVector([0.0, 2.0], 0, prob_delta=-0.5, is_positive=False),
    ]
    steering = ContextSteering(vecs, [[1], [2]], [0, 0], 2.0, scale_by_delta=True)
    assert steering.scale(0) == pytest.approx(2.0 * 0.1) and steering.scale(1) == pytest.approx(-2.0 * 0.5)


def test_control_vector_adds_strength_times_direction_at_every_position(embedded_model, chat_prompt):
    model, tok, _ = embedded_model
    ids = list(chat_prompt("What is 4 + 5?"))
    directions = {3: rand_vec(4), 20: rand_vec(5)}
    steering = build_steering(ControlVector(directions), model, tok, strength=0.75)
    assert isinstance(steering, ControlSteering) and steering.layers == [3, 20]
    with torch.inference_mode():
        base = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    hooks_before = len(model.model.layers[3]._forward_hooks)
    with SteeringHooks(model, steering.layers) as hooks:
        hooks.set(steering.tensors([steering.start(ids, True)], "cpu", torch.float32))
        seen, handles = capture(model, [3])
        with torch.inference_mode():
            model(input_ids=torch.tensor([ids]))
        for h in handles:
            h.remove()
    expected = base.hidden_states[4][0] + 0.75 * torch.tensor(directions[3])
    torch.testing.assert_close(seen[3][0], expected, rtol=0, atol=1e-6)
    assert len(model.model.layers[3]._forward_hooks) == hooks_before  # the steering hook is removed on exit


# ------------------------------------------------------------------------------------------- generation


def test_zero_strength_is_exactly_unsteered(embedded_model, chat_prompt):
    model, tok, _ = embedded_model
    ids = tuple(chat_prompt("What is 6 + 7?"))
    params = SamplingParams(temperature=0.8, top_p=0.95, top_k=20)
    requests = [GenerationRequest(ids, seed) for seed in (11, 12)]
    base = generate(model, tok, requests, None, max_new_tokens=16, params=params)
    context = ContextSteering([SteeringVector(rand_vec(6), 8)], [ids], [8], 0.0)
    control = ControlSteering(ControlVector({2: rand_vec(7), 14: rand_vec(8)}), 0.0)
    for steering in (context, control):
        steered = generate(model, tok, requests, steering, max_new_tokens=16, params=params)
        assert [g.token_ids for g in steered] == [g.token_ids for g in base]
        assert all(g.steered_positions > 0 for g in steered)  # the hooks ran, adding exact zeros
    assert base[0].token_ids != base[1].token_ids  # two seeds, two streams: the comparison is not vacuous


def test_context_steering_fires_where_the_pivot_context_matches(embedded_model, chat_prompt):
    model, tok, _ = embedded_model
    prompt = tuple(chat_prompt("Write one sentence about the sea."))
    greedy = SamplingParams(temperature=0.0)
    (base,) = generate(model, tok, [GenerationRequest(prompt, 0)], None, max_new_tokens=12, params=greedy)
    k = 5
    assert len(base.token_ids) > k + 2
    pivot_context = list(prompt) + base.token_ids[:k]  # the context before reply token k
    vec = SteeringVector(rand_vec(9), 10)
    runs = {}
    for mode in ("continuous", "local", "once"):
        # the residual norm at layer 10 is about 125 here: a random direction needs a large strength to show
        steering = ContextSteering([vec], [pivot_context], [10], 400.0, match=mode)
        (runs[mode],) = generate(model, tok, [GenerationRequest(prompt, 0)], steering, max_new_tokens=12, params=greedy)
    for mode in ("continuous", "local"):
        g = runs[mode]
        assert g.token_ids[:k] == base.token_ids[:k], mode  # nothing changes before the match
        assert g.token_ids != base.token_ids, mode  # the vector at the pivot position changes the reply
        assert g.vectors == [0]
    assert runs["local"].steered_positions == 1  # only the matching position
    assert runs["continuous"].steered_positions > 1  # from the match on
    # optillm's "once" matches the prompt only; the pivot context ends inside the reply, so nothing fires
    assert runs["once"].token_ids == base.token_ids and runs["once"].steered_positions == 0


def test_batched_rows_match_single_rows(embedded_model, chat_prompt):
    model, tok, _ = embedded_model
    prompts = [tuple(chat_prompt("What is 2 + 2?")), tuple(chat_prompt("Name three fruits, please, in a list."))]
    greedy = SamplingParams(temperature=0.0)
    steering = ControlSteering(ControlVector({6: rand_vec(10)}), 4.0)
    requests = [
        GenerationRequest(prompts[0], 0, False),
        GenerationRequest(prompts[0], 0, True),
        GenerationRequest(prompts[1], 0, True),
    ]
    together = generate(model, tok, requests, steering, max_new_tokens=8, params=greedy)
    alone = [generate(model, tok, [r], steering, max_new_tokens=8, params=greedy)[0] for r in requests]
    assert [g.token_ids for g in together] == [g.token_ids for g in alone]
    assert together[0].steered_positions == 0 and together[1].steered_positions > len(prompts[0])


# ------------------------------------------------------------------------------------------- model checks


def test_vectors_are_checked_against_the_model(embedded_model):
    model, tok, _ = embedded_model
    with pytest.raises(PTSError, match="4 dimensions but the model's hidden size is 576"):
        build_steering([SteeringVector([1.0, 2.0, 3.0, 4.0], 3)], model, tok)
    with pytest.raises(PTSError, match="layer 30 is out of range: the model has 30 layers"):
        build_steering([SteeringVector(rand_vec(1), 30)], model, tok)
    with pytest.raises(PTSError, match="layer 40 is out of range"):
        build_steering([SteeringVector(rand_vec(1), 3)], model, tok, layer="40")
    with pytest.raises(PTSError, match="no steering_layer; pass --layer"):
        build_steering([SteeringVector(rand_vec(1), None)], model, tok)
    assert build_steering([SteeringVector(rand_vec(1), None)], model, tok, layer="7").layers == [7]
    with pytest.raises(PTSError, match="control vector has 3 dimensions"):
        build_steering(ControlVector({1: [1.0, 2.0, 3.0]}), model, tok)
    with pytest.raises(PTSError, match="control vector layer 31 is out of range"):
        build_steering(ControlVector({31: rand_vec(1)}), model, tok)
    with pytest.raises(PTSError, match="no direction for layer 4"):
        build_steering(ControlVector({1: rand_vec(1)}), model, tok, layer="4")
    # a file with vectors at several layers: --layer keeps that layer's vectors
    mixed = [SteeringVector(rand_vec(1), 3), SteeringVector(rand_vec(2), 9)]
    picked = build_steering(mixed, model, tok, layer="9")
    assert picked.layers == [9] and len(picked.vectors) == 1


# ------------------------------------------------------------------------------------------- report


def test_report_accuracies_and_paired_interval():
    def gen(ids):
        return Generation(ids, "", "eos", steered_positions=1)

    verdicts = [
        (0, False, True),
        (0, False, True),
        (1, True, True),
        (1, False, False),
        (2, True, False),
        (2, False, True),
    ]
    pairs = [PairedSample(t, j, 0, gen([1]), gen([2]), b, s) for j, (t, b, s) in enumerate(verdicts)]
    report = SteerReport("desc", "m", "d", 3, 2, 32, 0.6, 0, pairs, {5: 12.5}, {5: 2.5})
    assert (report.base_correct, report.steered_correct) == (2, 4)
    assert report.difference == pytest.approx(2 / 6)
    lo, hi = report.difference_interval()
    assert lo <= report.difference <= hi and -1 <= lo and hi <= 1
    text = report.format()
    assert "2/6" in text and "4/6" in text and "+0.333" in text and "fixed 3 and broke 1" in text
    assert "layer 5: 12.5, added 2.5 (20.0%)" in text


# ------------------------------------------------------------------------------------------- end to end


def prompt_vectors(tokenizer, layer=12, n=2):
    """Steering rows whose pivot context is each dataset prompt (the position that predicts the first reply token)."""
    from pts.search.searcher import build_prompt_ids
    from pts.tasks.sources import load_tasks

    rows = []
    for i, task in enumerate(load_tasks(DATASET, max_examples=n)):
        ids = build_prompt_ids(tokenizer, task.prompt)
        rows.append(
            {
                "query": task.query,
                "pivot_context": tokenizer.decode(ids, skip_special_tokens=False),
                "pivot_token": "x",
                "pivot_token_id": 0,
                "prob_before": 0.3,
                "prob_after": 0.8,
                "prob_delta": 0.5,
                "is_positive": i % 2 == 0,
                "model_id": "smollm2",
                "task_type": "math",
                "steering_vector": rand_vec(20 + i),
                "cluster_id": 0,
                "reasoning_pattern": "unknown",
                "cluster_vector": rand_vec(30),
                "steering_layer": layer,
            }
        )
    return rows


@pytest.mark.slow
def test_cli_dataset_mode_prints_both_accuracies(tmp_path, embedded_model):
    _, tok, _ = embedded_model
    vectors = write_jsonl(tmp_path / "steering.jsonl", prompt_vectors(tok))
    out = tmp_path / "pairs.jsonl"
    proc = pts(
        "steer",
        "--steering-path",
        str(vectors),
        "--dataset",
        DATASET,
        "--max-examples",
        "2",
        "--num-samples",
        "2",
        "--max-new-tokens",
        "32",
        "--strength",
        "8",
        "--dtype",
        "float32",
        "--device",
        "cpu",
        "--output-path",
        str(out),
        "--no-progress",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("base ") and "/4" in line for line in lines), proc.stdout
    assert any(line.startswith("steered ") and "/4" in line for line in lines), proc.stdout
    assert any(line.startswith("difference") and "paired bootstrap" in line for line in lines), proc.stdout
    assert "2 queries x 2 samples = 4 paired completions" in proc.stdout
    rows = read_jsonl(out)
    assert len(rows) == 4 and {r["sample"] for r in rows} == {0, 1}
    for r in rows:
        assert isinstance(r["base_correct"], bool) and isinstance(r["steered_correct"], bool)
        assert r["steered_positions"] > 0 and r["vectors"]  # the prompt is each vector's pivot context
        assert r["base_tokens"] <= 32 and r["steered_tokens"] <= 32
    reported = next(line for line in lines if line.startswith("base "))
    assert f"{sum(r['base_correct'] for r in rows)}/4" in reported


def test_control_vector_evaluation_and_query_mode(tmp_path, embedded_loaded):
    cv = write_control_vector(tmp_path / "cv.gguf", {8: rand_vec(40), 9: rand_vec(41)})
    config = SteerConfig(
        control_vector=str(cv),
        strength=6.0,
        dataset=DATASET,
        max_examples=2,
        num_samples=1,
        max_new_tokens=24,
        output_path=str(tmp_path / "cv.jsonl"),
        progress=False,
    )
    report = steer_dataset(config, loaded=embedded_loaded)
    assert report.n == 2 and report.queries == 2
    assert all(p.steered.steered_positions > 0 and p.base.steered_positions == 0 for p in report.pairs)
    rows = read_jsonl(tmp_path / "cv.jsonl")
    assert [r["steered_correct"] for r in rows] == [p.steered_correct for p in report.pairs]
    assert "control vector" in report.format() and "layers 8-9" in report.format()
    assert report.added_norms[8] == pytest.approx(6.0 * float(torch.tensor(rand_vec(40)).norm()), rel=1e-5)

    query = SteerConfig(control_vector=str(cv), strength=6.0, query="Say hello.", num_samples=1, max_new_tokens=16)
    description, pairs = steer_query(query, loaded=embedded_loaded)
    assert len(pairs) == 1
    text = format_query_pairs(description, "Say hello.", pairs)
    assert "--- unsteered" in text and "--- steered" in text and pairs[0].base.text in text


@pytest.mark.slow
def test_cli_bad_inputs_one_line_exit_2(tmp_path):
    good = write_jsonl(
        tmp_path / "good.jsonl", [{"pivot_context": "x", "steering_vector": rand_vec(1), "steering_layer": 3}]
    )
    small = write_jsonl(
        tmp_path / "small.jsonl", [{"pivot_context": "x", "steering_vector": [1.0, 2.0], "steering_layer": 3}]
    )
    cases = {
        "missing file": ["--steering-path", str(tmp_path / "missing.jsonl")],
        "missing gguf": ["--control-vector", str(tmp_path / "missing.gguf")],
        "neither": [],
        "wrong dims": ["--steering-path", str(small)],
        "layer out of range": ["--steering-path", str(good), "--layer", "99"],
        "bad layer": ["--steering-path", str(good), "--layer", "five"],
    }
    out = tmp_path / "out.jsonl"
    for name, args in cases.items():
        proc = pts(
            "steer",
            *args,
            "--dataset",
            DATASET,
            "--max-examples",
            "1",
            "--num-samples",
            "1",
            "--max-new-tokens",
            "4",
            "--device",
            "cpu",
            "--output-path",
            str(out),
            cwd=tmp_path,
        )
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (name, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("pts steer: error:"), (name, proc.stderr)
        assert not out.exists(), name


def test_steering_vectors_load_from_the_folder_pts_export_writes(tmp_path):
    folder = tmp_path / "steering_vectors"
    folder.mkdir()
    row = {"pivot_context": "a b", "steering_vector": [1.0, 0.0], "steering_layer": 1, "prob_delta": 0.5}
    (folder / "steering_vectors.jsonl").write_text(json.dumps(row) + "\n")
    assert [v.vector for v in load_steering_vectors(folder)] == [[1.0, 0.0]]
    (folder / "other.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(PTSError, match="2 .jsonl files"):
        load_steering_vectors(folder)
