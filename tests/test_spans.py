"""Pivotal spans: runs of 2..max_span tokens that move p(success) when no single token in them does."""

import math

import pytest

from pts.engines.fake import BranchingFakeEngine, PassFailOracle, token
from pts.errors import PTSError
from pts.records import PivotalToken
from pts.search.estimate import Estimate
from pts.search.pivotal import (
    PivotalCandidate,
    PointDecider,
    find_pivots_many,
    possible_positions,
    seam_windows,
    span_bound,
)
from pts.search.searcher import PivotalTokenSearcher, SearchSettings
from pts.tasks.task import Task

PROMPT = "q?"
SCRIPT = [token(c) for c in "abcdefghabcd"]


def exact_decider(values, threshold=0.2):
    """Estimates of exactly ``values[i]`` (1000 samples) at position i; records what was asked."""
    asked = []

    def estimate(keys, samples):
        asked.extend(keys)
        return [Estimate(round(values[i] * 1000), 1000) for _, i in keys]

    return PointDecider(estimate, threshold, 10), asked


def found(values, max_span=4, **kw):
    decide, asked = exact_decider(values)
    (pivots,) = find_pivots_many(
        [list(range(100, 100 + len(values) - 1))], decide, split_at="middle", max_span=max_span, **kw
    )
    return [(p.position, p.length, p.token_id) for p in pivots], asked


@pytest.mark.parametrize(
    "values, span",
    [
        ([0.5] * 6 + [0.62, 0.74] + [0.74] * 5, (5, 2)),  # +0.12 at tokens 5 and 6: the run moves p by 0.24
        ([0.5] * 4 + [0.58, 0.66, 0.74] + [0.74] * 6, (3, 3)),  # +0.08 at tokens 3, 4, 5; no two of them reach 0.2
        ([0.5] * 3 + [0.56, 0.62, 0.68, 0.74] + [0.74] * 6, (2, 4)),  # four steps of 0.06
        ([0.8] * 6 + [0.68, 0.56] + [0.56] * 5, (5, 2)),  # falling
    ],
)
def test_a_run_that_moves_p_when_no_token_in_it_does_is_one_span(values, span):
    got, _ = found(values)
    start, length = span
    assert got == [(start, length, 100 + start)]
    assert found(values, max_span=1)[0] == []  # spans off: today's search finds nothing there
    assert found(values, max_span=length - 1)[0] == [] if length > 2 else True


def test_a_single_pivot_is_a_token_not_a_span():
    values = [0.5] * 4 + [0.9] * 9  # +0.4 at token 3
    assert found(values)[0] == [(3, 1, 103)]
    values = [0.3] * 4 + [0.6] * 3 + [0.72, 0.84] + [0.84] * 4  # a pivot, and a span after it
    assert found(values)[0] == [(3, 1, 103), (6, 2, 106)]


def test_a_change_spread_over_more_tokens_than_max_span_is_no_span():
    values = [0.5 + 0.04 * min(i, 6) for i in range(13)]  # +0.04 at six tokens: 0.24 over six
    assert found(values)[0] == []


def test_the_span_bound_rules_out_runs_before_any_estimate():
    # Tokens 5 and 6 each have pi 0.88: neither can hold a pivot alone (1 - pi = 0.12), together they can
    # (1 - 0.88^2 = 0.23); every other token has pi 0.99 but tokens 1 and 10 (0.5), which can.
    pis = [0.99, 0.5, 0.99, 0.99, 0.99, 0.88, 0.88, 0.99, 0.99, 0.99, 0.5, 0.99]
    lps = [math.log(q) for q in pis]
    values = [0.5] * 6 + [0.6, 0.7] + [0.7] * 5
    kw = dict(possible=[possible_positions(lps, 0.2)], spans_possible=[span_bound(lps, 0.2)])
    got, asked = found(values, **kw)
    assert got == [(5, 2, 105)]
    can = span_bound(lps, 0.2)
    assert not can(4, 6) and can(5, 7) and not can(7, 9)
    for _, i in asked:  # no estimate where neither a token nor a run of up to 4 tokens can move p
        assert any(can(a, b) for a in range(max(0, i - 4), i + 1) for b in range(i, min(12, a + 4) + 1) if b - a >= 1)


def test_seam_windows_are_the_runs_not_inside_one_decided_segment():
    assert seam_windows((0, 6), [(0, 3), (3, 6)], 2, None) == [(2, 4)]
    assert seam_windows((0, 6), [(0, 3), (3, 6)], 3, None) == [(1, 4), (2, 4), (2, 5)]
    assert seam_windows((0, 6), [(0, 2), (4, 6)], 2, lambda a, b: a != 3) == [(1, 3), (2, 4)]


def task(item_id="0"):
    return Task(PROMPT, "PASS", item_id, "fake", "fake", PassFailOracle())


# Exact (stratified) branching engines: every count the search sees is known in advance, so the tests below do
# not depend on sampling luck. p rises by 0.15 at tokens 1 and 2 (each under the 0.2 threshold, the pair 0.3).
SPAN_WORLD = ([0.2, 0.2, 0.35, 0.5] + [0.5] * 9, [0.99, 0.5, 0.65] + [0.99] * 9)
# p rises by 0.4 at token 1 alone.
SINGLE_WORLD = ([0.3, 0.3, 0.7, 0.7] + [0.7] * 9, [0.99, 0.4, 0.99] + [0.99] * 9)


def search(world, **kw):
    p_script, follow = world
    eng = BranchingFakeEngine(p_script, SCRIPT, prompt_length=len(PROMPT), follow=follow, exact=True)
    settings = dict(
        num_samples=1000,
        max_generations=10,
        split_at="middle",
        min_prob=0.0,
        max_prob=1.0,
        max_new_tokens=64,
        verify_samples=4096,
        max_span=4,
    )
    settings.update(kw)
    return PivotalTokenSearcher(eng, SearchSettings(**settings)).search(task())


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(bound=False),
        dict(confidence=0.9),
        dict(direct_at_most=2),
        dict(pool=False),
        dict(split_at="logprob"),
    ],
)
def test_search_finds_verifies_and_records_a_planted_span(options):
    result = search(SPAN_WORLD, **options)
    spans = [r for r in result.pivots if r.is_span]
    assert len(spans) == 1
    (r,) = spans
    assert (r.span_start, r.span_end, r.position) == (1, 3, 1)
    assert r.span_token_ids == SCRIPT[1:3] and r.pivot_token_id == SCRIPT[1]
    assert r.pivot_token == "bc" and r.pivot_context_ids == [token(c) for c in PROMPT] + SCRIPT[:1]
    assert r.verified and r.is_positive and r.delta_ci[0] >= 0.2
    assert r.prob_after - r.prob_before == pytest.approx(0.3, abs=0.02)
    assert r.sampling_prob == pytest.approx(0.5 * 0.65)  # pi of the span: the product of its tokens' pi
    assert r.search["max_span"] == 4
    assert SearchSettings().max_span == 1  # spans are asked for: the default searches single tokens only
    # Measured alternatives of the same length: the rollouts from the context that left the script.
    assert r.continuations and all(len(c.token_ids) == 2 for c in r.continuations)
    assert sum(c.count for c in r.continuations) == r.samples_before
    assert any(c.token_ids == SCRIPT[1:3] for c in r.continuations)
    assert PivotalToken.from_dict(r.to_dict()) == r
    # No single token is reported there.
    assert not [t for t in result.pivots if not t.is_span and t.position in (1, 2) and t.pivot_token_id in SCRIPT]


def test_without_verification_the_span_is_written_with_the_searchs_numbers():
    (r,) = [r for r in search(SPAN_WORLD, verify=False).pivots if r.is_span]
    assert (r.span_start, r.span_end, r.verified) == (1, 3, False) and r.span_token_ids == SCRIPT[1:3]
    assert r.prob_after - r.prob_before >= 0.2 and r.continuations


def test_search_without_spans_misses_it_and_costs_less():
    on, off = search(SPAN_WORLD), search(SPAN_WORLD, max_span=1)
    assert not [r for r in off.pivots if r.is_span or r.position in (1, 2)]
    assert off.rollouts < on.rollouts


def test_a_planted_single_pivot_is_still_a_token_record():
    result = search(SINGLE_WORLD)
    tokens = [r for r in result.pivots if r.position == 1 and r.pivot_token_id == SCRIPT[1]]
    assert len(tokens) == 1 and not tokens[0].is_span and tokens[0].span_start is None
    assert not [r for r in result.pivots if r.is_span]
    d = tokens[0].to_dict()
    assert d["span_start"] is None and d["span_token_ids"] is None and d["continuations"] is None


def test_old_records_without_span_fields_still_read():
    r = search(SINGLE_WORLD).pivots[0].to_dict()
    for k in ("span_start", "span_end", "span_token_ids", "continuations"):
        del r[k]
    back = PivotalToken.from_dict(r)
    assert not back.is_span and back.id == r["id"]


@pytest.mark.parametrize("bad", [0, 9])
def test_max_span_range_is_checked(bad):
    from pts import options

    with pytest.raises(PTSError, match="max.span"):
        options.check(SearchSettings(max_span=bad))


def test_dpo_export_writes_a_span_pair_against_a_measured_continuation(tmp_path):
    from pts.engines.fake import FakeTokenizer
    from pts.export.dpo import DPOSettings, build_pairs
    from pts.export.records import read_pivots
    from pts.store import write_jsonl

    result = search(SPAN_WORLD)
    path = tmp_path / "pivots.jsonl"
    write_jsonl(path, [r.to_dict() for r in result.pivots])
    pivots = read_pivots(path)
    (span,) = [p for p in pivots if p.is_span]
    record = next(r for r in result.pivots if r.is_span)
    rows, report = build_pairs(pivots, FakeTokenizer(), DPOSettings())
    (row,) = [r for r in rows if r["metadata"]["span_token_ids"] is not None]
    m = row["metadata"]
    # The prompt is the context before the span; the span is chosen (it raised p) ...
    assert row["prompt"] == record.pivot_context and row["prompt_ids"] == record.pivot_context_ids
    assert row["chosen"] == "bc" and row["chosen_ids"] == SCRIPT[1:3] == m["span_token_ids"]
    assert m["pivot_id"] == span.id and m["prob_chosen"] == record.prob_after
    # ... against the likeliest run of the same length that rollouts from the context took, measured lower.
    others = [c for c in record.continuations if c.token_ids != SCRIPT[1:3] and c.count >= 2]
    best = max(others, key=lambda c: c.count)
    assert row["rejected_ids"] == best.token_ids and len(row["rejected_ids"]) == 2 and row["rejected"] == best.text
    assert m["prob_rejected"] == best.successes / best.count
    assert m["samples"] == {"chosen": record.samples_after, "rejected": best.count}
    assert m["prob_chosen"] - m["prob_rejected"] >= 0.1 and m["counterpart_source"] == "first_tokens"
    # Token pairs from the same file are unchanged: one id each side, no span.
    assert all(len(r["chosen_ids"]) == len(r["rejected_ids"]) == 1 for r in rows if r is not row)
    assert report.pairs == len(rows)


def test_a_span_without_a_measured_continuation_gives_no_pair(tmp_path):
    from pts.engines.fake import FakeTokenizer
    from pts.export.dpo import DPOSettings, build_pairs
    from pts.export.records import read_pivots
    from pts.store import write_jsonl

    record = next(r for r in search(SPAN_WORLD).pivots if r.is_span)
    record.continuations = [c for c in record.continuations if c.token_ids == SCRIPT[1:3]]
    path = tmp_path / "pivots.jsonl"
    write_jsonl(path, [record.to_dict()])
    rows, report = build_pairs(read_pivots(path), FakeTokenizer(), DPOSettings())
    assert rows == [] and report.no_counterpart == 1


def test_find_rejected_tokens_measures_a_continuation_of_the_spans_length(tmp_path):
    from pts.engines.fake import FakeTokenizer
    from pts.export.dpo import CounterpartFinder, DPOSettings, build_pairs
    from pts.export.records import read_pivots
    from pts.store import write_jsonl

    record = next(r for r in search(SPAN_WORLD).pivots if r.is_span)
    record.continuations = [c for c in record.continuations if c.token_ids == SCRIPT[1:3]]  # none recorded
    path = tmp_path / "pivots.jsonl"
    write_jsonl(path, [record.to_dict()])
    (pivot,) = read_pivots(path)
    p_script, follow = SPAN_WORLD
    engine = BranchingFakeEngine(p_script, SCRIPT, prompt_length=len(PROMPT), follow=follow, exact=True)
    settings = DPOSettings(find_rejected_tokens=True, num_samples=200, progress=False)
    finder = CounterpartFinder(engine, settings)
    rows, report = build_pairs([pivot], FakeTokenizer(), settings, finder=finder, tasks={pivot.id: task()})
    (row,) = rows
    m = row["metadata"]
    assert report.from_estimates == 1 and m["counterpart_source"] == "estimated"
    assert row["chosen_ids"] == SCRIPT[1:3] and row["prompt_ids"] == record.pivot_context_ids
    # From the context, rollouts write "bc", "b~" (left after b) or "~x" (left at once); the likeliest other run,
    # "~x" (half of them), is the rejected side, measured after it: p = 0.05 there, 0.5 after the span.
    assert row["rejected_ids"] == [token("~"), token("x")] and row["rejected"] == "~x"
    assert m["prob_chosen"] == pytest.approx(0.5, abs=0.01) and m["prob_rejected"] == pytest.approx(0.05, abs=0.01)
    assert m["samples"] == {"chosen": 200, "rejected": 200} and m["counterpart_verified"]
    assert report.rollouts == finder.rollouts == 200 * 4  # the runs drawn, then the span and its two alternatives


def search_flagging_a_span(world, monkeypatch, start=1, end=3, pivot=1, **kw):
    """Search ``world`` as a noisy search can go: the single-token pivot found at ``pivot`` (on script) is handed
    to verification as the span ``[start, end)`` around it (its estimates at the span's ends), as when the
    search's estimate of the token alone fell short of the threshold."""
    import pts.search.searcher as searcher

    real = searcher.find_pivots_many

    def flag_span(solutions, decide, **options):
        found = real(solutions, decide, **options)
        for k, pivots in enumerate(found):
            for n, p in enumerate(pivots):
                if p.position == pivot and p.length == 1 and list(solutions[k][:end]) == SCRIPT[:end]:
                    decide([((k, start), (k, end))])
                    pivots[n] = PivotalCandidate(
                        start, solutions[k][start], decide.known[(k, start)], decide.known[(k, end)], length=end - start
                    )
        return found

    monkeypatch.setattr(searcher, "find_pivots_many", flag_span)
    return search(world, **kw)


@pytest.mark.parametrize("options", [dict(), dict(bound=False), dict(verify_strata=False)])
def test_a_span_whose_change_one_token_carries_is_written_as_that_token(monkeypatch, options):
    # SINGLE_WORLD: +0.4 at token 1, nothing at token 2; the search hands verification the span [1, 3).
    result = search_flagging_a_span(SINGLE_WORLD, monkeypatch, **options)
    assert not [r for r in result.pivots if r.is_span]
    (token_record,) = [r for r in result.pivots if r.position == 1 and r.pivot_token_id == SCRIPT[1]]
    assert token_record.verified and not token_record.is_span and token_record.span_tokens is None
    assert token_record.delta_ci[0] >= 0.2
    assert token_record.prob_after - token_record.prob_before == pytest.approx(0.4, abs=0.05)
    assert result.spans_split == 1 and result.summary()["spans_split"] == 1
    # The token flagged only through the span is written once, with the search's numbers of the token alone.
    assert token_record.candidate["prob_after"] - token_record.candidate["prob_before"] == pytest.approx(0.4, abs=0.1)
    assert len([r for r in result.pivots if r.id == token_record.id]) == 1


def test_the_token_inside_is_found_whichever_token_of_the_span_carries_the_change(monkeypatch):
    # The span [0, 2) holds token 1's change: the second token, not the first, is written.
    result = search_flagging_a_span(SINGLE_WORLD, monkeypatch, start=0, end=2)
    on_script = [r for r in result.pivots if r.pivot_context_ids[len(PROMPT) :] == SCRIPT[: r.position]]
    assert not [r for r in result.pivots if r.is_span or r.position == 0]
    assert [r.is_span for r in on_script if r.position == 1 and r.pivot_token_id == SCRIPT[1]] == [False]
    assert result.spans_split == 1


# p rises by 0.09 at tokens 1, 2 and 3: 0.27 over the three, 0.18 over any two, 0.09 at each.
SPREAD_WORLD = ([0.2, 0.2, 0.29, 0.38, 0.47] + [0.47] * 8, [0.99, 0.6, 0.6, 0.6] + [0.99] * 8)


@pytest.mark.parametrize("world, span", [(SPAN_WORLD, (1, 3)), (SPREAD_WORLD, (1, 4))])
@pytest.mark.parametrize("options", [dict(), dict(bound=False), dict(verify_strata=False)])
def test_a_true_span_is_still_written_with_its_tokens_measured_alone(world, span, options):
    result = search(world, **options)
    (r,) = [r for r in result.pivots if r.is_span]
    assert (r.span_start, r.span_end) == span and r.verified and r.delta_ci[0] >= 0.2
    assert result.spans_split == 0
    # Each token inside was measured alone on the verification's rollouts, and none was kept.
    assert [t["position"] for t in r.span_tokens] == list(range(*span))
    assert [t["token_id"] for t in r.span_tokens] == r.span_token_ids
    for t in r.span_tokens:
        assert t["reason"] in ("small", "futile", "cap")
        assert t["delta_ci"][0] < 0.2 and t["prob_delta"] == pytest.approx(t["prob_after"] - t["prob_before"])
    assert PivotalToken.from_dict(r.to_dict()) == r
    assert not [t for t in result.pivots if not t.is_span and span[0] <= t.position < span[1]]


def test_tokens_the_bound_rules_out_are_not_measured_inside_a_span():
    # +0.18 at token 1, +0.053 at token 2, whose pi is 0.9: it cannot move p by 0.2 - 0.02 alone, so only token 1
    # is measured.
    world = ([0.3, 0.3, 0.48, 0.533] + [0.533] * 9, [0.99, 0.5, 0.9] + [0.99] * 9)
    result = search(world)
    (r,) = [r for r in result.pivots if r.is_span]
    assert [t["reason"] == "bound" for t in r.span_tokens] == [False, True]
    assert r.span_tokens[1]["prob_delta"] is None


def test_find_rejected_tokens_for_single_tokens_still_needs_next_token_logprobs(tmp_path):
    from pts.engines.fake import FakeTokenizer
    from pts.export.dpo import CounterpartFinder, DPOSettings, build_pairs
    from pts.export.records import read_pivots
    from pts.store import write_jsonl

    record = next(r for r in search(SINGLE_WORLD).pivots if not r.is_span)
    record.first_tokens = [t for t in record.first_tokens if t.token_id == record.pivot_token_id]  # none recorded
    path = tmp_path / "pivots.jsonl"
    write_jsonl(path, [record.to_dict()])
    (pivot,) = read_pivots(path)
    p_script, follow = SINGLE_WORLD
    engine = BranchingFakeEngine(p_script, SCRIPT, prompt_length=len(PROMPT), follow=follow, exact=True)
    assert not hasattr(engine, "next_token_logprobs")
    settings = DPOSettings(find_rejected_tokens=True, progress=False)
    finder = CounterpartFinder(engine, settings)
    with pytest.raises(PTSError, match="next-token log-probabilities"):
        build_pairs([pivot], FakeTokenizer(), settings, finder=finder, tasks={pivot.id: task()})
    assert finder.rollouts == engine.rollouts == 0  # refused before sampling anything
