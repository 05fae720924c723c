"""HFEngine on the real embedded model (float32): counts, stopping, log-probs, determinism, batching invariance."""

import dataclasses

import pytest
import torch

from pts.engines import Engine, HFEngine
from pts.engines.base import RolloutRequest, SamplingParams
from pts.engines.hf import sample_tokens as _sample

GREEDY = SamplingParams(temperature=0.0)
SEEDED = SamplingParams(temperature=0.8, top_p=0.95, top_k=20, seed=1234)


@pytest.fixture(scope="module")
def prompts(chat_prompt):
    return {
        "add": chat_prompt("What is 3+4? Answer briefly."),
        "poem": chat_prompt("Write a short poem about the sea, with several lines."),
        "long": chat_prompt(
            "A farmer has 17 sheep and buys 8 more, then sells 5 of them at the market on Saturday. "
            "How many sheep does the farmer have now? Explain step by step."
        ),
    }


def teacher_forced(model, prefix, token_ids) -> torch.Tensor:
    """Log-probs of ``token_ids`` after ``prefix`` from one full forward pass."""
    with torch.inference_mode():
        logits = model(torch.tensor([list(prefix) + list(token_ids)])).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)[len(prefix) - 1 : -1]
    return lp.gather(1, torch.tensor(token_ids)[:, None])[:, 0]


def tokens(results):
    return [[r.token_ids for r in rs] for rs in results]


def test_engine_protocol(embedded_engine, embedded_model):
    _, tok, model_id = embedded_model
    assert isinstance(embedded_engine, Engine)
    assert embedded_engine.model_id == model_id
    assert tok.eos_token_id in embedded_engine.eos_token_ids


def test_n_rollouts_per_request_in_order(embedded_engine, embedded_model, prompts):
    _, tok, _ = embedded_model
    reqs = [
        RolloutRequest(prompts["long"], 3, 5),
        RolloutRequest(prompts["poem"], 0, 5),
        RolloutRequest(prompts["add"], 2, 9),
        RolloutRequest(prompts["long"], 1, 0),
    ]
    out = embedded_engine.sample(reqs, SEEDED)
    assert [len(rs) for rs in out] == [3, 0, 2, 1]
    assert all(len(r.token_ids) == 5 and r.finish_reason == "length" for r in out[0])
    assert all(1 <= len(r.token_ids) <= 9 for r in out[2])
    assert out[3][0].token_ids == [] and out[3][0].finish_reason == "length"
    for rs in out:
        for r in rs:
            assert r.text == tok.decode(r.token_ids, skip_special_tokens=True)
            assert len(r.logprobs) == len(r.token_ids)
            assert all(lp <= 0 for lp in r.logprobs)


def test_eos_and_max_new_tokens(embedded_engine, embedded_model, prompts):
    _, tok, _ = embedded_model
    [[done]], [[cut]] = (embedded_engine.sample([RolloutRequest(prompts["add"], 1, m)], GREEDY) for m in (48, 3))
    assert done.finish_reason == "eos"
    assert done.token_ids[-1] in embedded_engine.eos_token_ids  # EOS is kept in token_ids
    assert "7" in done.text and "<|im_end|>" not in done.text
    assert cut.finish_reason == "length" and cut.token_ids == done.token_ids[:3]


def test_stop_callable(embedded_engine, prompts):
    req = RolloutRequest(prompts["poem"], 4, 60, stop=lambda text: "\n" in text)
    [rollouts] = embedded_engine.sample([req], SEEDED)
    for r in rollouts:
        if r.finish_reason == "stop":
            assert "\n" in r.text
            assert "\n" not in embedded_engine.tokenizer.decode(r.token_ids[:-1], skip_special_tokens=True)
    assert sum(r.finish_reason == "stop" for r in rollouts) >= 2


def test_requests_with_different_max_new_tokens_share_a_batch(embedded_engine, prompts):
    reqs = [RolloutRequest(prompts["long"], 2, m) for m in (2, 7, 12)]
    out = embedded_engine.sample(reqs, GREEDY)
    assert [[len(r.token_ids) for r in rs] for rs in out] == [[2, 2], [7, 7], [12, 12]]
    assert out[2][0].token_ids[:7] == out[1][0].token_ids


def test_logprobs_match_teacher_forcing(embedded_engine, embedded_model, prompts):
    model, _, _ = embedded_model
    reqs = [RolloutRequest(prompts["long"], 3, 24), RolloutRequest(prompts["add"], 2, 24)]
    out = embedded_engine.sample(reqs, SEEDED)
    for req, rs in zip(reqs, out):
        for r in rs:
            ref = teacher_forced(model, req.prefix_ids, r.token_ids)
            assert torch.allclose(torch.tensor(r.logprobs), ref, atol=1e-3), (
                (ref - torch.tensor(r.logprobs)).abs().max()
            )


def test_same_seed_same_rollouts(embedded_engine, prompts):
    reqs = [RolloutRequest(prompts["poem"], 3, 12)]
    a, b = embedded_engine.sample(reqs, SEEDED), embedded_engine.sample(reqs, SEEDED)
    c = embedded_engine.sample(reqs, SamplingParams(temperature=0.8, top_p=0.95, top_k=20, seed=99))
    assert tokens(a) == tokens(b) and [r.logprobs for r in a[0]] == [r.logprobs for r in b[0]]
    assert tokens(a) != tokens(c)
    assert len({tuple(t) for t in tokens(a)[0]}) > 1  # the n samples of one request differ


def test_duplicate_requests_get_independent_samples(embedded_engine, prompts):
    out = embedded_engine.sample([RolloutRequest(prompts["poem"], 2, 12)] * 2, SEEDED)
    assert tokens(out)[0] != tokens(out)[1]


def test_request_seed_fixes_its_rollouts_in_any_company(embedded_engine, prompts):
    own = RolloutRequest(prompts["poem"], 2, 10, seed=7)
    [alone] = embedded_engine.sample([own], SEEDED)
    others = [RolloutRequest(prompts["poem"], 3, 10), RolloutRequest(prompts["add"], 2, 10)]
    merged = embedded_engine.sample([*others, own], SEEDED)
    assert tokens([merged[2]]) == tokens([alone])
    as_params = embedded_engine.sample([RolloutRequest(prompts["poem"], 2, 10)], dataclasses.replace(SEEDED, seed=7))
    assert tokens(as_params) == tokens([alone])  # a request's seed replaces params.seed


def test_greedy_is_padding_invariant(embedded_engine, prompts):
    alone = embedded_engine.sample([RolloutRequest(prompts["add"], 1, 20)], GREEDY)[0][0]
    longer, shorter = prompts["long"], prompts["add"][:-3]
    reqs = [RolloutRequest(longer, 2, 20), RolloutRequest(prompts["add"], 1, 20), RolloutRequest(shorter, 1, 20)]
    mixed = embedded_engine.sample(reqs, GREEDY)
    assert len(longer) > len(prompts["add"]) > len(shorter)
    assert mixed[1][0].token_ids == alone.token_ids
    assert torch.allclose(torch.tensor(mixed[1][0].logprobs), torch.tensor(alone.logprobs), atol=1e-4)


def test_results_do_not_depend_on_batch_size(embedded_loaded, prompts):
    # batch_size 3 forces chunking and rows joining a running batch (continuous batching).
    reqs = [
        RolloutRequest(prompts["add"], 4, 10),
        RolloutRequest(prompts["long"], 3, 6),
        RolloutRequest(prompts["poem"], 2, 8),
    ]
    small, large = (
        HFEngine.from_loaded(embedded_loaded, batch_size=3),
        HFEngine.from_loaded(embedded_loaded, batch_size=64),
    )
    for params in (GREEDY, SEEDED):
        a, b = small.sample(reqs, params), large.sample(reqs, params)
        assert tokens(a) == tokens(b)
        assert [[r.finish_reason for r in rs] for rs in a] == [[r.finish_reason for r in rs] for rs in b]


def test_requests_joining_a_running_batch_get_what_a_call_of_their_own_gives(embedded_loaded, prompts):
    # Submissions join a running batch while others' rows decode (continuous batching across calls); in
    # float32, each row with its own generator and positions, what each gets does not depend on that.
    engine = HFEngine.from_loaded(embedded_loaded, batch_size=4)
    reqs = [
        [RolloutRequest(prompts["long"], 3, 14, seed=1)],
        [RolloutRequest(prompts["poem"], 2, 10, seed=2), RolloutRequest(prompts["add"], 1, 6)],
        [RolloutRequest(prompts["add"], 2, 12, seed=3)],
    ]
    for params in (GREEDY, SEEDED):
        alone = [engine.sample(r, params) for r in reqs]
        run = engine.running(params)
        handles, got, joined_beside = run.add([reqs[0]]), {}, []
        for step in range(1000):
            if step in (2, 5):  # later submissions join the running batch
                joined_beside.append(run.rows)
                handles += run.add([reqs[len(handles)]])
            got.update(run.step())
            if not run.busy and len(handles) == len(reqs):
                break
        assert all(rows > 0 for rows in joined_beside)
        assert [tokens(got[h]) for h in handles] == [tokens(a) for a in alone]
        lp = [torch.tensor(r.logprobs) for h in handles for rs in got[h] for r in rs]
        lp_alone = [torch.tensor(r.logprobs) for a in alone for rs in a for r in rs]
        assert all(torch.allclose(x, y, atol=1e-4) for x, y in zip(lp, lp_alone, strict=True))


def test_top_k_1_and_min_p_1_are_greedy(embedded_engine, prompts):
    req = [RolloutRequest(prompts["long"], 2, 10)]
    greedy = tokens(embedded_engine.sample(req, GREEDY))
    assert tokens(embedded_engine.sample(req, SamplingParams(temperature=1.0, top_k=1, seed=0))) == greedy
    assert (
        tokens(embedded_engine.sample(req, SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=1.0, seed=0)))
        == greedy
    )


def test_next_token_logprobs(embedded_engine, embedded_model, prompts):
    model, tok, _ = embedded_model
    prefixes = [prompts["add"], prompts["long"]]
    lp = embedded_engine.next_token_logprobs(prefixes)
    assert lp.shape == (2, model.config.vocab_size)
    for row, prefix in zip(lp, prefixes):
        with torch.inference_mode():
            ref = torch.log_softmax(model(torch.tensor([prefix])).logits[0, -1].float(), -1)
        assert torch.allclose(row, ref, atol=1e-4)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(2), atol=1e-4)


def test_sample_truncation_rules():
    # probs 0.5, 0.3, 0.15, 0.05 for tokens 3, 1, 0, 2
    logits = torch.log(torch.tensor([[0.15, 0.3, 0.05, 0.5]])).repeat(4000, 1)
    gens = [torch.Generator().manual_seed(i) for i in range(4000)]

    def freq(params):
        tok, lp = _sample(logits.clone(), params, gens)
        assert torch.allclose(lp, torch.log(torch.tensor([0.15, 0.3, 0.05, 0.5]))[tok], atol=1e-5)  # raw log-probs
        return torch.bincount(tok, minlength=4).float() / len(tok)

    full = freq(SamplingParams(temperature=1.0, top_k=0, top_p=1.0))
    assert torch.allclose(full, torch.tensor([0.15, 0.3, 0.05, 0.5]), atol=0.03)
    top2 = freq(SamplingParams(temperature=1.0, top_k=2, top_p=1.0))
    assert torch.allclose(top2, torch.tensor([0.0, 0.375, 0.0, 0.625]), atol=0.03)
    top_p = freq(SamplingParams(temperature=1.0, top_k=0, top_p=0.75))  # 0.5 + 0.3 reaches 0.75
    assert top_p[0] == 0 and top_p[2] == 0
    min_p = freq(SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.5))  # keeps p >= 0.25
    assert min_p[0] == 0 and min_p[2] == 0 and min_p[1] > 0.3
    cold = freq(SamplingParams(temperature=0.25, top_k=0, top_p=1.0))  # 0.5^4 : 0.3^4 : ...
    assert cold[3] > 0.85


def test_block_prefill_matches_a_plain_forward_and_ignores_cache_history(embedded_loaded, prompts):
    model = embedded_loaded.model
    prefix = prompts["long"] + tuple(embedded_loaded.tokenizer.encode(" First, 17 + 8 = 25 sheep. Then 25 - 5 = 20."))
    warm = HFEngine.from_loaded(embedded_loaded, prefill_block=16)
    warm.next_token_logprobs([prefix[:17], prefix[: len(prefix) - 3]])  # fills the block cache along the way
    assert warm.prefix_cache.hits > 0 and len(warm.prefix_cache) >= (len(prefix) - 4) // 16
    for n in (16, 17, 33, len(prefix)):
        with torch.inference_mode():
            plain = torch.log_softmax(model(input_ids=torch.tensor([prefix[:n]])).logits[0, -1].float(), dim=-1)
        warm_lp = warm.next_token_logprobs([prefix[:n]])[0]
        cold_lp = HFEngine.from_loaded(embedded_loaded, prefill_block=16).next_token_logprobs([prefix[:n]])[0]
        assert torch.equal(warm_lp, cold_lp)  # bit-identical whatever was cached before
        assert torch.allclose(warm_lp, plain, atol=1e-3)
    # Rollouts decode on the cached keys and values: the same tokens and log-probs as from a cold engine.
    request = RolloutRequest(prefix_ids=prefix, n=3, max_new_tokens=12, seed=5)
    params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0)
    cold = HFEngine.from_loaded(embedded_loaded, prefill_block=16)
    (warm_rollouts,), (cold_rollouts,) = warm.sample([request], params), cold.sample([request], params)
    assert [(r.token_ids, r.logprobs) for r in warm_rollouts] == [(r.token_ids, r.logprobs) for r in cold_rollouts]
    off = HFEngine.from_loaded(embedded_loaded, prefill_block=16, prefix_cache_mb=0)
    off.next_token_logprobs([prefix])
    assert len(off.prefix_cache) == 0
    assert torch.equal(off.next_token_logprobs([prefix]), cold.next_token_logprobs([prefix]))


def test_block_cache_is_lru_and_bounded():
    from pts.engines.hf import BlockCache

    block = [(torch.zeros(1, 1, 4, 8), torch.zeros(1, 1, 4, 8))]  # 256 bytes
    cache = BlockCache(max_bytes=3 * 256)
    for k in range(3):
        cache.put((k,), block)
    assert cache.get((0,)) is block  # 0 is now the most recent
    cache.put((3,), block)
    assert cache.get((1,)) is None and cache.get((0,)) is block and len(cache) == 3 and cache.bytes == 3 * 256
    cache.put((9,), [(torch.zeros(1, 1, 64, 8), torch.zeros(1, 1, 64, 8))])  # larger than the whole budget
    assert cache.get((9,)) is None and len(cache) == 3


@pytest.mark.parametrize(
    "params, pi",
    [
        (SamplingParams(temperature=1.0, top_k=0, top_p=1.0), [0.15, 0.3, 0.05, 0.5]),
        (SamplingParams(temperature=1.0, top_k=2, top_p=1.0), [0.0, 0.375, 0.0, 0.625]),
        (SamplingParams(temperature=1.0, top_k=0, top_p=0.75), [0.0, 0.375, 0.0, 0.625]),
        (SamplingParams(temperature=1.0, top_k=3, top_p=1.0, min_p=0.5), [0.0, 0.375, 0.0, 0.625]),
        (SamplingParams(temperature=0.0), [0.0, 0.0, 0.0, 1.0]),
    ],
    ids=["full", "top2", "top_p", "min_p", "greedy"],
)
def test_sampling_logprobs_are_pi_under_the_processed_distribution_and_exclusion_renormalizes(params, pi):
    """Model-free: the sampling log-prob of every pick is log pi (exact, whatever the rows' draws); a row with an
    excluded token never picks it, and the pick keeps its pi under the whole distribution."""
    from pts.engines.hf import sample_tokens_pi, sampling_distribution

    probs = torch.tensor([0.15, 0.3, 0.05, 0.5])
    logits = torch.log(probs).repeat(400, 1)
    gens = [torch.Generator().manual_seed(i) for i in range(400)]
    tok, lp, slp = sample_tokens_pi(logits.clone(), params, gens)
    plain, plain_lp = _sample(logits.clone(), params, [torch.Generator().manual_seed(i) for i in range(400)])
    assert torch.equal(tok, plain) and torch.allclose(lp, plain_lp)  # the same picks as sample_tokens
    assert torch.allclose(slp.exp(), torch.tensor(pi)[tok], atol=1e-6)
    if params.temperature > 0:
        support, idx = sampling_distribution(logits[:1].clone(), params)
        ids = idx[0] if idx is not None else torch.arange(4)
        got = {int(i): float(q) for i, q in zip(ids, support[0] / support[0].sum()) if q > 0}
        assert got == pytest.approx({i: q for i, q in enumerate(pi) if q > 0})
    top = int(torch.tensor(pi).argmax())
    gens = [torch.Generator().manual_seed(i) for i in range(400)]
    tok, _, slp = sample_tokens_pi(logits.clone(), params, gens, torch.full((400,), top))
    assert not (tok == top).any()
    assert torch.allclose(slp.exp(), torch.tensor(pi)[tok], atol=1e-6)
    if params.temperature > 0:  # only tokens of the support are drawn
        assert all(pi[t] > 0 for t in tok.tolist())


def test_excluding_the_only_token_of_the_support_takes_the_likeliest_other():
    from pts.engines.hf import sample_tokens_pi

    logits = torch.log(torch.tensor([[0.15, 0.3, 0.05, 0.5]])).repeat(8, 1)
    params = SamplingParams(temperature=1.0, top_k=1, top_p=1.0)  # the support is token 3 alone
    tok, _, slp = sample_tokens_pi(
        logits.clone(), params, [torch.Generator().manual_seed(i) for i in range(8)], torch.full((8,), 3)
    )
    assert tok.tolist() == [1] * 8 and torch.isinf(slp).all()
