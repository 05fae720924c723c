"""`pts view` in a real browser: Debian's Chromium driven by Playwright, with every network request refused.

`make test` installs Chromium (apt) when /usr/bin/chromium is missing. Under CI (CI=true) a missing browser
or Playwright fails these tests; elsewhere they are skipped with the reason.
"""

import json
import os
import random
import re
import time

import pytest
from conftest import write_jsonl
from view_samples import (
    CRITICAL_TOKENS,
    HOSTILE_QUERY,
    HOSTILE_TOKEN,
    SAMPLING_PROBS,
    TOKENS,
    critical_lines,
    planted_records,
    trace_line,
    write_planted,
)

from pts.store import read_jsonl
from pts.view import build_report

CHROMIUM = os.environ.get("PTS_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package is not installed (pip install -e '.[test]')"
    if missing is None and not os.access(CHROMIUM, os.X_OK):
        missing = f"no Chromium at {CHROMIUM} (make test installs it: apt-get install -y chromium)"
    if missing:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(missing)
        pytest.skip(missing)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


class Opened:
    """A report open in a fresh page that may load nothing but the file itself; what went wrong is collected."""

    def __init__(self, browser, path, fragment=""):
        self.context = browser.new_context(viewport={"width": 1200, "height": 900})
        self.page = self.context.new_page()
        self.blocked, self.dialogs, self.errors = [], [], []
        self.page.route("**/*", self._only_the_file)
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        started = time.perf_counter()
        self.page.goto(path.as_uri() + fragment)
        self.page.wait_for_selector("body[data-ready]", timeout=60_000)
        self.load_seconds = time.perf_counter() - started

    def _only_the_file(self, route):
        if route.request.url.startswith(("file://", "data:")):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def render_ms(self) -> float:
        return float(self.page.evaluate("document.body.dataset.renderMs"))

    def close(self):
        self.context.close()


def wait_until(condition, timeout=10.0):
    """Poll ``condition`` (which should ask the page, so that Playwright's events run) from Python: the report's
    CSP forbids the string evaluation that ``wait_for_function`` uses."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def opened(browser):
    pages = []

    def open_report(path, fragment=""):
        pages.append(Opened(browser, path, fragment))
        return pages[-1]

    yield open_report
    for o in pages:
        assert not o.blocked, f"the report tried to reach the network: {o.blocked}"
        assert not o.dialogs, f"a dialog opened: {o.dialogs}"
        assert not o.errors, f"script errors: {o.errors}"
        o.close()


def test_planted_report_marks_pivots_filters_and_keeps_hostile_text_inert(opened, tmp_path):
    files = write_planted(tmp_path)
    out = tmp_path / "report.html"
    build_report(
        [files[k] for k in ("pivotal_tokens", "dpo", "original_dpo", "critical_tokens", "contrast_scores")], out
    )
    view = opened(out, "#view=trajectories")
    page = view.page

    assert page.locator(".solution .pivot").count() == 4
    rise = page.locator('.pivot[data-id]:has-text(" 7")').first
    assert "pos" in rise.get_attribute("class").split() and "s4" in rise.get_attribute("class").split()
    assert rise.get_attribute("title").startswith("p(success) 0.20 → 0.90 (+0.70), search estimate (not verified)")
    assert "from 2/10 rollouts" in rise.get_attribute("title") and '" 8" 0/3' in rise.get_attribute("title")
    fall = page.locator('.pivot:has-text(" answer")').first
    assert "neg" in fall.get_attribute("class").split() and "(−0.50), verified" in fall.get_attribute("title")
    # the traced solution draws the search's estimates (the end of the response as an exact square) and,
    # apart from them, the verified values of the two verified pivots
    card = page.locator(".trajectory").filter(has=page.locator('.pivot:has-text(" answer")')).first
    assert card.locator('svg.curve[aria-label*="search trace"] circle.estimate').count() == 5
    assert card.locator("svg.curve rect.estimate.terminal").count() == 1
    assert card.locator("svg.curve path.verified-point").count() == 4
    legend = card.locator(".legend").inner_text()
    assert "search estimate" in legend and "verified" in legend and "judged exactly" in legend

    # focus by keyboard shows the details: p before/after and the alternatives the rollouts took
    rise.focus()
    details = rise.locator("xpath=ancestor::section").locator(".details")
    assert "▲" in details.inner_text() and "first token the rollouts took" in details.inner_text()
    page.keyboard.press("ArrowLeft")
    assert "answer" in page.evaluate("document.activeElement.textContent")

    # the hostile record: its text is on the page as text, and nothing it holds ran
    hostile = page.locator(".trajectory h2", has_text="window.__pwned")
    assert hostile.count() == 1 and hostile.first.text_content() == HOSTILE_QUERY
    assert page.locator(".solution .pivot", has_text="onerror").first.text_content() == HOSTILE_TOKEN
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("window.__pwned") is None

    # a filter hides rows: negative pivots only, then a search
    cards = page.locator(".trajectory")
    before = cards.count()
    page.select_option("#sign", "neg")
    assert "sign=neg" in page.url
    assert page.locator(".solution .pivot.pos:not(.dim)").count() == 0
    page.select_option("#sign", "all")
    page.select_option("#verified", "yes")  # " answer" and "." were verified
    assert [
        page.locator(".solution .pivot:not(.dim)").nth(i).text_content()
        for i in range(page.locator(".solution .pivot:not(.dim)").count())
    ] == [" answer", "."]
    page.select_option("#verified", "all")
    page.fill("#q", "pwned")
    wait_until(lambda: "q=pwned" in page.evaluate("location.hash"))
    assert cards.count() == 1 < before and "q=pwned" in page.url

    # the filtered view is a link: opening it again shows the same thing
    again = opened(out, "#" + page.url.split("#", 1)[1])
    assert again.page.locator(".trajectory").count() == 1
    assert again.page.input_value("#q") == "pwned"

    # the other views by key: pairs, critical tokens (strip with the critical position marked), contrast
    page.fill("#q", "")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("4")
    assert page.locator("#pair-table tr.row").count() == 3
    assert [page.locator("#pair-table td.counterpart").nth(i).text_content() for i in range(3)] == [
        "measured · gap established (90% interval [0.45, 1.00]) · first_tokens",
        "measured · gap not established (90% interval [-0.12, 0.71]) · first_tokens",
        "not measured",
    ]
    page.keyboard.press("5")
    strip = page.locator("svg.strip").first
    assert strip.locator("rect.critical-cell").count() == 1 and page.locator(".critical-card .critical").count() >= 1
    page.keyboard.press("6")
    assert page.locator(".contrast-card .shade").count() == 4
    page.keyboard.press("1")
    assert page.locator("#histogram rect.bin").count() == 20
    page.screenshot(path=str(tmp_path / "planted.png"), full_page=True)
    assert (tmp_path / "planted.png").stat().st_size > 10_000


def shown(title: str, name: str) -> dict[str, str]:
    """The before/after values a pivot's title gives on its line ``name`` ("verified" or "search estimate")."""
    line = next(x for x in title.split("\n") if x.startswith(name + ": "))
    return dict(re.findall(r"(before|after) ([\d.]+)", line))


def test_the_report_explains_itself_and_names_every_number(opened, tmp_path):
    files = write_planted(tmp_path)
    out = tmp_path / "report.html"
    build_report([files["pivotal_tokens"], files["dpo"]], out)
    page = opened(out).page
    about = page.locator("#about").inner_text()
    assert "p(success) is" in about and "A pivotal token is" in about and "verification" in about
    assert "search estimate" in about and "judged exactly" in about
    # the histogram's axes are labelled
    labels = page.locator("#histogram text.axis-label").all_text_contents()
    assert "pivotal tokens" in labels and any(x.startswith("prob_delta = p(success) after − before") for x in labels)

    page.keyboard.press("2")
    card = page.locator(".trajectory").filter(has=page.locator('.pivot:has-text(" answer")')).first
    curve = card.locator("svg.curve")
    assert "p(success)" in curve.locator("text.axis-label").all_text_contents()
    # tokens along the x-axis, the pivots' in bold
    assert curve.locator("text.tick-token").all_text_contents() == ["The", " answer", " is", " 7", "."]
    assert curve.locator("text.tick-token.marked").all_text_contents() == [" answer", " 7", "."]
    assert "token by token" in card.locator(".axis-caption").first.inner_text()

    def drawn(selector):
        marks = curve.locator(selector)
        return {
            (m.get_attribute("data-position"), round(float(m.get_attribute("data-p")), 2))
            for m in (marks.nth(i) for i in range(marks.count()))
        }

    estimates = drawn(".estimate")
    verified = drawn("path.verified-point")
    spans = card.locator(".solution .pivot")
    for i in range(spans.count()):
        span = spans.nth(i)
        title = span.get_attribute("title")
        position = TOKENS.index(span.text_content())
        # the label's search estimate is the curve's point, at the pivot's position and the next
        search = shown(title, "search estimate")
        assert (str(position), float(search["before"])) in estimates, (title, estimates)
        assert (str(position + 1), float(search["after"])) in estimates, (title, estimates)
        if "verified: " in title:  # and the verified values are the diamonds
            ver = shown(title, "verified")
            assert {(str(position), float(ver["before"])), (str(position + 1), float(ver["after"]))} <= verified
    # a verified pivot whose numbers differ from the search's shows both, named
    answer = card.locator('.pivot:has-text(" answer")').get_attribute("title")
    assert shown(answer, "verified") == {"before": "0.65", "after": "0.15"}
    assert shown(answer, "search estimate") == {"before": "0.60", "after": "0.20"}
    # the end of the response is judged exactly, not "1.00 [1.00, 1.00] from 1/1 rollouts"
    stop = card.locator('.pivot:has-text(".")').get_attribute("title")
    assert "after 1.00, judged exactly (the response ends here)" in stop
    assert "1/1 rollouts" not in stop and "[1.00, 1.00]" not in stop

    # the bound 1 - pi: a bar per token, the two under the 0.2 threshold pale, and pi in the pivot's details
    bound = card.locator("svg.bound")
    assert bound.locator("rect.bound-bar").count() == len(SAMPLING_PROBS) == 5
    assert bound.locator("rect.bound-bar.low").count() == sum(1 - pi < 0.2 for pi in SAMPLING_PROBS) == 2
    assert bound.locator("line.threshold").count() == 1
    card.locator('.pivot:has-text(" 7")').focus()
    details = card.locator(".details").inner_text()
    assert "sampling probability π = 0.30" in details and "at most 1 − π = 0.70" in details
    assert "search estimate: before 0.20 from 2/10 rollouts" in details

    # the table names its numbers too
    page.keyboard.press("3")
    rows = {r.locator("td").first.text_content(): r.inner_text() for r in page.locator("#pivot-table tr.row").all()}
    assert "0.65 → 0.15 verified" in rows['" answer"'] and "26/40 → 6/40" in rows['" answer"']
    assert "0.20 → 0.90 search estimate" in rows['" 7"']
    assert "30/40 → judged exactly" in rows['"."'] and "1/1" not in rows['"."']


def test_without_sampling_probabilities_no_bound_is_drawn(opened, tmp_path):
    records = write_jsonl(tmp_path / "p.jsonl", planted_records(sampling=False))
    write_jsonl(tmp_path / "p.jsonl.trace.jsonl", [trace_line(sampling=False)])
    out = tmp_path / "old.html"
    build_report([records], out)
    page = opened(out, "#view=trajectories").page
    assert page.locator("svg.curve").count() == 2 and page.locator("svg.bound").count() == 0
    titles = [page.locator(".pivot").nth(i).get_attribute("title") for i in range(page.locator(".pivot").count())]
    assert titles and not any("sampling probability" in t for t in titles)


def test_a_pivotal_span_is_one_mark_in_the_text_and_one_band_on_the_curve(opened, tmp_path):
    from view_samples import span_record

    records = write_jsonl(tmp_path / "s.jsonl", [span_record()])
    write_jsonl(tmp_path / "s.jsonl.trace.jsonl", [trace_line()])
    out = tmp_path / "spans.html"
    build_report([records], out)
    page = opened(out, "#view=trajectories").page
    marks = page.locator(".solution .pivot")
    assert marks.count() == 1 and marks.first.inner_text().endswith(" is 7")
    assert "span" in marks.first.get_attribute("class") and "pivotal span of 2 tokens" in marks.first.get_attribute(
        "title"
    )
    band = page.locator("svg.curve rect.pivot-span")
    assert band.count() == 1 and band.first.get_attribute("data-length") == "2"
    assert page.locator("svg.curve line.pivot-line").count() == 0


def test_thought_anchor_sentences_are_shaded_by_importance_with_their_intervals(opened, tmp_path):
    from view_samples import anchor_trace_lines

    records = write_jsonl(tmp_path / "anchors.jsonl", anchor_trace_lines())
    out = tmp_path / "anchors.html"
    build_report([records], out)
    page = opened(out, "#view=anchors").page
    sentences = page.locator(".anchors-card .anchor-sentence")
    assert sentences.count() == 2
    assert [sentences.nth(i).inner_text() for i in range(2)] == ["3 + 4 = 7.", " So the answer is 7."]
    first, second = (sentences.nth(i).get_attribute("title") for i in range(2))
    assert "importance +0.50 [0.30, 0.70] at 0.95" in first and "active_computation" in first
    assert "importance −0.05 [−0.20, 0.10]" in second or "importance −0.05 [-0.20, 0.10]" in second
    alpha = [float(sentences.nth(i).get_attribute("style").split(",")[-1].strip(" );")) for i in range(2)]
    assert alpha[0] > alpha[1]  # the important sentence is shaded deeper


def test_a_critical_tokens_report_has_its_own_overview_legend_and_tokens(opened, tmp_path):
    files = write_planted(tmp_path)
    out = tmp_path / "critical.html"
    build_report([files["critical_tokens"]], out)
    page = opened(out).page
    overview = page.locator("main").inner_text()
    assert "pivotal" not in overview.lower()  # no pivotal-token counters on a report of critical tokens
    assert page.locator("#count").text_content() == "3 matching"
    stats = dict(zip(page.locator(".stat span").all_text_contents(), page.locator(".stat b").all_text_contents()))
    assert stats["incorrect trajectories scored"] == "3" and stats["with a critical token"] == "3"
    lines = critical_lines()
    assert stats["rollouts spent"] == f"{sum(r['rollouts'] + r['pass_at_k_rollouts'] for r in lines):,}"
    assert "unknown" not in overview and "critical.jsonl.progress" in overview
    assert "A critical token (cDPO)" in page.locator("#about").inner_text()
    assert page.locator("#sign").count() == 0  # no pivot, no pair: no sign filter

    page.keyboard.press("2")
    first = page.locator(".critical-card").first
    legend = first.locator(".legend").inner_text()
    assert "score = share of rollouts" in legend and "not sampled" in legend and "critical token" in legend
    strip = first.locator("svg.strip")
    assert strip.locator("text.tick-token").all_text_contents() == CRITICAL_TOKENS  # none longer than 12
    assert strip.locator("text.tick-token.marked").all_text_contents() == [lines[0]["critical_token"]]
    # a record without response_tokens (older pts critical) names positions and its critical token only
    second = page.locator(".critical-card").nth(1).locator("svg.strip")
    assert second.locator("text.tick").count() > 0
    assert second.locator("text.tick-token.marked").all_text_contents() == [lines[1]["critical_token"]]
    assert "Pass@k" in first.locator("svg[aria-label^='Pass@k'] text.axis-label").all_text_contents()


def test_rows_of_a_format_from_another_package_get_a_view_of_their_own(opened, tmp_path):
    """A format that says only ``view_list`` and ``view_row``, as a plugin's would, is drawn as a table of the
    fields its rows have, with their text kept inert."""
    from pts import formats

    class TokenEffects(formats.Format):
        name = "token-effects"
        what = "token effects"
        shapes = {"token_effects": "token effects (a plugin)"}
        keys = ("token", "delta")
        view_list = "effects"

        def view_row(self, record, where, query):
            return {"q": query(record["query"]), "token": record["token"], "delta": record["delta"]}

    rows = [
        {"query": "question 0", "token": " 7", "delta": 0.5},
        {"query": HOSTILE_QUERY, "token": HOSTILE_TOKEN, "delta": -0.25},
    ]
    write_jsonl(tmp_path / "effects.jsonl", rows)
    kept = formats.FORMATS.snapshot()
    formats.register(TokenEffects())
    try:
        build_report([tmp_path / "effects.jsonl"], tmp_path / "effects.html")
    finally:
        formats.FORMATS.restore(kept)
    page = opened(tmp_path / "effects.html").page
    page.locator("#tab-effects").click()
    assert page.locator("#tab-effects").inner_text() == "Token effects"
    table = page.locator("table.other-table[data-list='effects']")
    assert table.locator("th").all_text_contents() == ["query", "token", "delta", "file"]
    cells = [r.locator("td").all_text_contents() for r in table.locator("tr.row").all()]
    assert [c[:3] for c in cells] == [["question 0", " 7", "0.5"], [HOSTILE_QUERY, HOSTILE_TOKEN, "-0.25"]]
    assert cells[1][3].endswith("effects.jsonl:2")
    assert page.locator("#count").text_content() == "2 matching"
    page.fill("#q", "question 0")
    wait_until(lambda: page.locator("#count").text_content() == "1 matching")


@pytest.mark.slow
def test_report_of_a_real_tiny_run(opened, tmp_path, real):
    """The report of a real `pts run` (the export tests' run on the embedded model: positive and negative
    pivots, with its progress file)."""
    out, _ = real
    records = read_jsonl(out)
    report = tmp_path / "report.html"
    summary = build_report([out], report)
    assert summary.pivots == len(records)
    view = opened(report)
    page = view.page
    progress = [r for r in read_jsonl(f"{out}.progress") if r.get("kind") == "item"]
    assert page.locator(".stat b").first.text_content() == str(len(records))
    # the run's settings, the queries and the rollouts spent, from its progress file
    assert "chain_sum" in page.locator("dl.settings").inner_text()
    meta = page.locator(".card .meta").first.text_content()
    assert f"{sum(r['rollouts'] for r in progress):,} rollouts" in meta
    assert f"{sum(r['status'] == 'searched' for r in progress)} searched" in meta
    assert records  # the fixture checks that the run found pivots of both signs
    page.keyboard.press("2")
    spans = page.locator(".solution .pivot")
    assert spans.count() == len(records)
    by_id = {r["id"]: r for r in records}
    for i in range(spans.count()):
        span = spans.nth(i)
        r = by_id[span.get_attribute("data-id")]
        assert span.text_content() == r["pivot_token"]
        assert ("pos" if r["is_positive"] else "neg") in span.get_attribute("class").split()
        shown = re.match(r"p\(success\) ([\d.]+) → ([\d.]+)", span.get_attribute("title"))
        assert shown, span.get_attribute("title")
        assert abs(float(shown[1]) - r["prob_before"]) <= 0.0051 and abs(float(shown[2]) - r["prob_after"]) <= 0.0051
    page.screenshot(path=str(tmp_path / "real.png"), full_page=True)


def many_records(n: int, seed: int = 0) -> list[dict]:
    """``n`` pivotal-token records over n/10 solutions, with contexts of a realistic length."""
    rng = random.Random(seed)
    words = "so the total is then we add carry one and get answer step first next".split()
    rows = []
    for s in range(n // 10):
        item, query = str(s // 2), f"Question {s // 2}: what is {s} + {2 * s}?"
        prompt = f"<|im_start|>user\n{query}<|im_end|>\n<|im_start|>assistant\n"
        tokens = [" " + rng.choice(words) for _ in range(120)]
        for position in sorted(rng.sample(range(120), 10)):
            before = rng.random()
            after = min(1.0, max(0.0, before + rng.choice([-1, 1]) * rng.uniform(0.2, 0.8)))
            rows.append(
                {
                    "model_id": "m",
                    "query": query,
                    "pivot_context": prompt + "".join(tokens[:position]),
                    "pivot_token": tokens[position],
                    "pivot_token_id": position,
                    "prob_before": before,
                    "prob_after": after,
                    "prob_delta": after - before,
                    "is_positive": after > before,
                    "task_type": f"task{s % 7}",
                    "dataset_id": "d",
                    "dataset_item_id": item,
                    "solution_index": s % 2,
                    "position": position,
                    "samples_before": 10,
                    "samples_after": 10,
                    "verified": rng.random() < 0.5,
                }
            )
    return rows


def test_ten_thousand_records_open_and_filter_without_freezing(opened, tmp_path):
    path = write_jsonl(tmp_path / "many.jsonl", many_records(10_000))
    out = tmp_path / "many.html"
    started = time.perf_counter()
    summary = build_report([path], out)
    build_seconds = time.perf_counter() - started
    assert summary.pivots == 10_000
    view = opened(out)
    page = view.page
    timings = {
        "build_s": round(build_seconds, 2),
        "html_mb": round(out.stat().st_size / 1e6, 1),
        "open_s": round(view.load_seconds, 2),
        "first_render_ms": view.render_ms(),
    }

    def key(name):
        page.evaluate("document.activeElement.blur()")  # keys go to the page, not to a field
        page.keyboard.press(name)

    for name, action in [
        ("sign_filter_ms", lambda: page.select_option("#sign", "neg")),
        ("task_filter_ms", lambda: page.select_option("#task", "task3")),
        ("pivot_table_ms", lambda: key("3")),
        ("next_page_ms", lambda: (key("n"), wait_until(lambda: "page=2" in page.evaluate("location.hash")))),
        ("trajectories_ms", lambda: key("2")),
        (
            "search_ms",
            lambda: (page.fill("#q", "question 7"), wait_until(lambda: "q=question" in page.evaluate("location.hash"))),
        ),
    ]:
        action()
        timings[name] = view.render_ms()
    print("\n10,000 records:", json.dumps(timings))
    assert timings["open_s"] < 15
    assert all(v < 1000 for k, v in timings.items() if k.endswith("_ms")), timings
    assert page.locator(".trajectory").count() > 0
