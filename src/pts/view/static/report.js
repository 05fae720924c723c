// pts view: draws the report from the JSON block #pts-data. Every piece of record text goes into the DOM
// through textContent or setAttribute, never through innerHTML, so a record cannot inject markup or script.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("pts-data").textContent);
  const PAGE_SIZE = { trajectories: 20, pivots: 50, pairs: 50, critical: 20, contrast: 20 };
  const VIEWS = [
    ["overview", "Overview", () => true],
    ["trajectories", "Trajectories", () => DATA.solutions.length > 0],
    ["pivots", "Pivotal tokens", () => DATA.pivots.length > 0],
    ["pairs", "Pairs", () => DATA.pairs.length > 0],
    ["critical", "Critical tokens", () => DATA.critical.length > 0],
    ["contrast", "Contrast scores", () => DATA.contrast.length > 0],
  ].filter((v) => v[2]());
  const DEFAULTS = { view: "overview", q: "", sign: "all", min: "0", task: "", verified: "all", page: "1", sol: "", pivot: "" };
  let state = Object.assign({}, DEFAULTS);

  // ---- small DOM helpers: strings become text nodes, attributes are set one by one
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) if (c !== null && c !== undefined && c !== false) e.append(c);
    return e;
  }
  const NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v; else if (k === "class") e.setAttribute("class", v); else e.setAttribute(k, String(v));
    }
    for (const c of children.flat(Infinity)) if (c) e.append(c);
    return e;
  }
  function tip(node, text) { node.append(svg("title", { text: text })); return node; }
  const fmt = (p) => (p === null || p === undefined ? "–" : Number(p).toFixed(2));
  const signed = (d) => (d === null || d === undefined ? "–" : (d >= 0 ? "+" : "−") + Math.abs(d).toFixed(2));
  const count = (n) => Number(n).toLocaleString("en");
  const strength = (d) => { const a = Math.abs(d); return a < 0.3 ? "s1" : a < 0.5 ? "s2" : a < 0.7 ? "s3" : "s4"; };
  const showToken = (t) => JSON.stringify(t);  // quotes make leading spaces and newlines visible
  const query = (i) => DATA.queries[i] || "";
  const file = (i) => DATA.files[i] ? DATA.files[i].path : "";
  const frac = (k, n) => (n ? k + "/" + n : "");

  // ---- search text, lower-cased once per row so that filtering 10,000 rows stays a plain loop
  const hay = (parts) => parts.filter((x) => x !== null && x !== undefined).join("\n").toLowerCase();
  DATA.pivots.forEach((p) => { p._hay = hay([query(p.q), p.token, p.tail, p.task, p.item]); });
  DATA.pairs.forEach((p) => { p._hay = hay([query(p.q), p.tail, p.chosen, p.rejected, p.task]); });
  DATA.critical.forEach((c) => { c._hay = hay([query(c.q), c.response, c.token, c.task, c.item]); });
  DATA.contrast.forEach((c) => { c._hay = hay([query(c.q), c.tokens.join(""), c.task, c.item]); });
  const TASKS = [...new Set([].concat(DATA.pivots, DATA.pairs, DATA.critical, DATA.contrast).map((r) => r.task).filter(Boolean))].sort();
  const HAS_VERIFIED = DATA.pivots.some((p) => p.verified !== null) || DATA.pairs.some((p) => p.verified !== null);

  function matches(row, signed_) {
    const q = state.q.trim().toLowerCase();
    if (q && !row._hay.includes(q)) return false;
    if (state.task && row.task !== state.task) return false;
    if (!signed_) return true;
    if (state.sign === "pos" && row.positive !== true) return false;
    if (state.sign === "neg" && row.positive !== false) return false;
    const min = parseFloat(state.min) || 0;
    if (min > 0 && !(Math.abs(row.delta || 0) >= min)) return false;
    if (state.verified === "yes" && row.verified !== true) return false;
    if (state.verified === "no" && row.verified !== false) return false;
    return true;
  }
  function solutionKey(s) { return s.file + "/" + s.item + "/" + (s.sol === null ? "" : s.sol); }

  // ---- the URL fragment holds the whole view, so any view can be shared as a link
  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    state = Object.assign({}, DEFAULTS);
    for (const k of Object.keys(DEFAULTS)) if (params.has(k)) state[k] = params.get(k);
    if (!VIEWS.some((v) => v[0] === state.view)) state.view = "overview";
  }
  function hashFor(changes) {
    const next = Object.assign({}, state, changes);
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(next)) if (v !== DEFAULTS[k]) params.set(k, v);
    return "#" + params.toString();
  }
  // Typing waits for a pause before filtering; any other action applies the typed text first, so none is lost.
  let pending = null, debounce = null;
  function later(changes) {
    pending = Object.assign(pending || {}, changes);
    clearTimeout(debounce);
    debounce = setTimeout(() => go({}), 120);
  }
  function go(changes) {
    clearTimeout(debounce);
    state = Object.assign({}, state, pending || {}, changes);
    pending = null;
    history.replaceState(null, "", hashFor({}));
    render();
  }

  // ---- page frame: title, tabs, filters
  const main = el("main", { id: "main", tabindex: "-1" });
  const put = (...nodes) => { for (const n of nodes.flat(Infinity)) if (n) main.append(n); };
  const countLine = el("span", { id: "count", "aria-live": "polite" });
  const search = el("input", { type: "search", id: "q", placeholder: "search query, token, context…", "aria-label": "search" });
  const signSel = el("select", { id: "sign", "aria-label": "sign" },
    el("option", { value: "all", text: "both signs" }), el("option", { value: "pos", text: "▲ positive" }),
    el("option", { value: "neg", text: "▼ negative" }));
  const minInput = el("input", { type: "number", id: "min", min: "0", max: "1", step: "0.05", style: "width:5em", "aria-label": "least |change|" });
  const taskSel = el("select", { id: "task", "aria-label": "task" }, el("option", { value: "", text: "all tasks" }),
    TASKS.map((t) => el("option", { value: t, text: t })));
  const verSel = el("select", { id: "verified", "aria-label": "verified" }, el("option", { value: "all", text: "verified or not" }),
    el("option", { value: "yes", text: "verified" }), el("option", { value: "no", text: "unverified" }));
  const tabs = el("nav", { role: "tablist", "aria-label": "views" },
    VIEWS.map(([name, label], i) => el("button", { role: "tab", id: "tab-" + name, "data-view": name,
      title: label + " (key " + (i + 1) + ")", onclick: () => go({ view: name, page: "1", sol: "", pivot: "" }) }, label)));
  search.addEventListener("input", () => later({ q: search.value, page: "1" }));
  signSel.addEventListener("change", () => go({ sign: signSel.value, page: "1" }));
  minInput.addEventListener("input", () => later({ min: minInput.value || "0", page: "1" }));
  taskSel.addEventListener("change", () => go({ task: taskSel.value, page: "1" }));
  verSel.addEventListener("change", () => go({ verified: verSel.value, page: "1" }));
  document.body.append(
    el("header", {},
      el("h1", { text: "pts view" }), tabs,
      el("div", { id: "filters", role: "search" }, search,
        el("label", {}, "sign", signSel), el("label", {}, "|change| ≥", minInput),
        TASKS.length > 1 ? el("label", {}, "task", taskSel) : null,
        HAS_VERIFIED ? el("label", {}, "verification", verSel) : null, countLine)),
    main,
    el("footer", {}, "Keys: ", el("kbd", { text: "/" }), " search · ", el("kbd", { text: "1" }), "–",
      el("kbd", { text: String(VIEWS.length) }), " views · ", el("kbd", { text: "j" }), " ", el("kbd", { text: "k" }),
      " next/previous card · ", el("kbd", { text: "n" }), " ", el("kbd", { text: "p" }), " next/previous page · ",
      el("kbd", { text: "Tab" }), " and ", el("kbd", { text: "←" }), " ", el("kbd", { text: "→" }),
      " move between pivotal tokens. ▲ solid underline: p(success) rises; ▼ dashed underline: it falls; deeper shade: larger change."));

  // ---- pagination over an array of matching rows
  function pageOf(rows, size) {
    const pages = Math.max(1, Math.ceil(rows.length / size));
    const page = Math.min(Math.max(1, parseInt(state.page, 10) || 1), pages);
    return { rows: rows.slice((page - 1) * size, page * size), page: page, pages: pages };
  }
  // One page of ``rows`` between two pagers; ``draw`` puts the page's rows. Returns how many rows matched.
  function paged(rows, size, draw) {
    const pg = pageOf(rows, size);
    put(pager(pg));
    draw(pg.rows);
    if (!pg.rows.length) put(el("p", { class: "empty", text: "Nothing matches the filters." }));
    put(pager(pg));
    return rows.length;
  }
  function pager(p) {
    if (p.pages <= 1) return null;
    return el("div", { class: "pager" },
      el("button", { text: "◀ previous", disabled: p.page <= 1, onclick: () => go({ page: String(p.page - 1) }) }),
      el("span", { text: "page " + p.page + " of " + p.pages }),
      el("button", { text: "next ▶", disabled: p.page >= p.pages, onclick: () => go({ page: String(p.page + 1) }) }));
  }

  // ---- charts (inline SVG)
  function histogram(deltas) {
    const W = 360, H = 140, bins = 20, counts = new Array(bins).fill(0);
    deltas.forEach((d) => { counts[Math.min(bins - 1, Math.max(0, Math.floor((d + 1) / 2 * bins)))] += 1; });
    const top = Math.max(1, ...counts), bw = (W - 30) / bins;
    const g = svg("svg", { width: W, height: H + 30, role: "img", "aria-label": "histogram of prob_delta", id: "histogram" });
    counts.forEach((c, i) => {
      const h = c / top * H, lo = -1 + i * 2 / bins;
      const bar = svg("rect", { x: 25 + i * bw, y: H - h + 5, width: bw - 1, height: h, fill: lo < 0 ? "var(--neg)" : "var(--pos)",
        "fill-opacity": lo < 0 ? 0.55 : 0.85, class: "bin" });
      g.append(tip(bar, "prob_delta in [" + lo.toFixed(1) + ", " + (lo + 0.1).toFixed(1) + "): " + c));
    });
    g.append(svg("line", { x1: 25, y1: H + 5, x2: W - 5, y2: H + 5, class: "axis" }));
    [-1, -0.5, 0, 0.5, 1].forEach((x) => g.append(svg("text", { x: 25 + (x + 1) / 2 * (W - 30) - 6, y: H + 18, text: x })));
    g.append(svg("text", { x: 0, y: 12, text: String(top) }));
    g.append(svg("text", { x: W / 2 - 70, y: H + 29, text: "prob_delta (▼ falls · ▲ rises)" }));
    return g;
  }
  function taskBars(rows) {
    const by = new Map();
    rows.forEach((p) => { const t = by.get(p.task || "(none)") || [0, 0]; t[p.positive ? 0 : 1] += 1; by.set(p.task || "(none)", t); });
    const tasks = [...by.entries()].sort((a, b) => b[1][0] + b[1][1] - a[1][0] - a[1][1]).slice(0, 12);
    const W = 460, row = 20, top = Math.max(1, ...tasks.map((t) => t[1][0] + t[1][1]));
    const g = svg("svg", { width: W, height: tasks.length * row + 10, role: "img", "aria-label": "pivotal tokens per task" });
    tasks.forEach(([name, [pos, neg]], i) => {
      const y = i * row + 4, scale = (W - 230) / top;
      g.append(svg("text", { x: 0, y: y + 12, text: name.length > 24 ? name.slice(0, 23) + "…" : name }));
      g.append(tip(svg("rect", { x: 150, y: y, width: pos * scale, height: row - 6, fill: "var(--pos)" }), name + ": " + pos + " positive"));
      g.append(tip(svg("rect", { x: 150 + pos * scale, y: y, width: neg * scale, height: row - 6, fill: "var(--neg)", "fill-opacity": 0.6 }), name + ": " + neg + " negative"));
      g.append(svg("text", { x: 154 + (pos + neg) * scale, y: y + 12, text: "▲" + pos + " ▼" + neg }));
    });
    return g;
  }
  function curve(s) {
    const pts = s.curve;
    if (!pts.length) return null;
    const W = 560, H = 80, L = 34, last = Math.max(s.length || 0, ...pts.map((p) => p.position), 1);
    const X = (pos) => L + pos / last * (W - L - 8), Y = (p) => 6 + (1 - p) * H;
    const g = svg("svg", { width: W, height: H + 30, role: "img", class: "curve",
      "aria-label": "p(success) along the solution (" + (s.curve_source === "trace" ? "search trace" : "points the records measured") + ")" });
    g.append(svg("line", { x1: L, y1: Y(0), x2: W - 8, y2: Y(0), class: "axis" }), svg("line", { x1: L, y1: Y(0), x2: L, y2: Y(1), class: "axis" }));
    g.append(svg("text", { x: 2, y: Y(1) + 4, text: "1.0" }), svg("text", { x: 2, y: Y(0.5) + 4, text: "0.5" }), svg("text", { x: 2, y: Y(0) + 4, text: "0.0" }));
    g.append(svg("text", { x: X(0) - 3, y: Y(0) + 12, text: "0" }), svg("text", { x: X(last) - 6, y: Y(0) + 12, text: String(last) }));
    s.pivots.forEach((i) => {
      const p = DATA.pivots[i];
      if (p.position === null) return;
      const x = X(p.position + 0.5);
      g.append(tip(svg("line", { x1: x, y1: Y(1), x2: x, y2: Y(0), stroke: p.positive ? "var(--pos)" : "var(--neg)",
        "stroke-dasharray": p.positive ? "" : "4 3", "stroke-width": 1.5 }), "pivot " + showToken(p.token) + " at token " + p.position + ": " + signed(p.delta)));
    });
    pts.forEach((p) => g.append(svg("line", { x1: X(p.position), y1: Y(p.low), x2: X(p.position), y2: Y(p.high), stroke: "#999" })));
    g.append(svg("polyline", { points: pts.map((p) => X(p.position) + "," + Y(p.p)).join(" "), fill: "none", stroke: "var(--ink)", "stroke-width": 1.2 }));
    pts.forEach((p) => g.append(tip(svg("circle", { cx: X(p.position), cy: Y(p.p), r: 2.5, fill: "var(--ink)", class: "estimate" }),
      "after " + p.position + " tokens: p = " + fmt(p.p) + (p.samples ? " (" + p.successes + "/" + p.samples + ", 95% [" + fmt(p.low) + ", " + fmt(p.high) + "])" : ""))));
    g.append(svg("text", { x: L + 30, y: H + 26, text: "p(success) by token position" + (s.curve_source === "trace" ? " (search trace)" : " (only the points the records measured)") }));
    return g;
  }

  // ---- text for one pivot: the same words on hover (title), for screen readers and in the details box
  function pivotTitle(p) {
    const lines = ["p(success) " + fmt(p.before) + " → " + fmt(p.after) + " (" + signed(p.delta) + ")",
      "before: " + fmt(p.before) + (p.ci_before ? " [" + fmt(p.ci_before[0]) + ", " + fmt(p.ci_before[1]) + "]" : "") + (p.n_before ? " from " + frac(p.k_before, p.n_before) + " rollouts" : ""),
      "after: " + fmt(p.after) + (p.ci_after ? " [" + fmt(p.ci_after[0]) + ", " + fmt(p.ci_after[1]) + "]" : "") + (p.n_after ? " from " + frac(p.k_after, p.n_after) + " rollouts" : "")];
    if (p.verified !== null) lines.push(p.verified ? "verified" : "not verified");
    if (p.alternatives.length) lines.push("rollouts took: " + p.alternatives.map((a) => showToken(a[0]) + " " + a[2] + "/" + a[1]).join(", "));
    return lines.join("\n");
  }
  function pivotDetails(p) {
    return el("div", {},
      el("b", { class: p.positive ? "up" : "down", text: (p.positive ? "▲ " : "▼ ") + showToken(p.token) + " " + signed(p.delta) }),
      " ", pivotTitle(p).split("\n").slice(1, 3).join(" · "),
      p.verified !== null ? " · " + (p.verified ? "verified" : "not verified") : "",
      p.alternatives.length ? el("table", {}, el("tr", {}, el("th", { text: "first token the rollouts took" }), el("th", { text: "rollouts" }), el("th", { text: "succeeded" }), el("th", { text: "p" })),
        p.alternatives.map((a) => el("tr", {}, el("td", {}, el("span", { class: "tok", text: showToken(a[0]) })), el("td", { text: a[1] }), el("td", { text: a[2] }), el("td", { text: fmt(a[1] ? a[2] / a[1] : null) })))) : null);
  }

  function pivotSpan(text, index, live, details) {
    const p = DATA.pivots[index];
    const span = el("span", { class: "pivot " + (p.positive ? "pos" : "neg") + " " + strength(p.delta) + (live ? "" : " dim"),
      tabindex: "0", role: "button", title: pivotTitle(p), "aria-label": (p.positive ? "rises " : "falls ") + pivotTitle(p).replace(/\n/g, "; "),
      "data-pivot": index, "data-id": p.id }, text);
    const show = () => { details.replaceChildren(pivotDetails(p)); document.querySelectorAll(".pivot.current").forEach((x) => x.classList.remove("current")); span.classList.add("current"); };
    span.addEventListener("focus", show);
    span.addEventListener("mouseenter", show);
    span.addEventListener("click", () => { history.replaceState(null, "", hashFor({ view: "trajectories", pivot: p.id })); span.focus(); });
    span.addEventListener("keydown", (ev) => {
      if (ev.key !== "ArrowRight" && ev.key !== "ArrowLeft") return;
      const all = [...span.parentNode.querySelectorAll(".pivot")], i = all.indexOf(span) + (ev.key === "ArrowRight" ? 1 : -1);
      if (all[i]) { all[i].focus(); ev.preventDefault(); }
    });
    return span;
  }

  // ---- views
  function stat(value, label) { return el("div", { class: "stat" }, el("b", { text: value }), el("span", { text: label })); }
  function overview() {
    const rows = DATA.pivots.filter((p) => matches(p, true));
    const pos = rows.filter((p) => p.positive).length;
    const ver = rows.filter((p) => p.verified === true).length, unver = rows.filter((p) => p.verified === false).length;
    const spent = DATA.files.map((f) => f.samples_spent).filter((x) => x !== null);
    put(el("div", { class: "stats" },
      stat(count(rows.length), "pivotal tokens" + (rows.length !== DATA.pivots.length ? " (of " + count(DATA.pivots.length) + ")" : "")),
      stat("▲ " + count(pos), "positive"), stat("▼ " + count(rows.length - pos), "negative"),
      HAS_VERIFIED ? stat(count(ver) + " / " + count(unver), "verified / unverified") : null,
      stat(count(DATA.solutions.length), "solutions"),
      DATA.pairs.length ? stat(count(DATA.pairs.length), "DPO pairs") : null,
      DATA.critical.length ? stat(count(DATA.critical.length), "critical-token records") : null,
      DATA.contrast.length ? stat(count(DATA.contrast.length), "contrast-scored trajectories") : null,
      stat(spent.length ? count(spent.reduce((a, b) => a + b, 0)) : "unknown", "rollouts spent" + (spent.length ? "" : " (no progress file)"))));
    if (rows.length) put(el("div", { class: "charts" }, el("div", {}, el("h3", { text: "prob_delta" }), histogram(rows.map((p) => p.delta))),
      el("div", {}, el("h3", { text: "per task" }), taskBars(rows))));
    put(el("h3", { text: "Files" }));
    DATA.files.forEach((f) => {
      const keys = Object.keys(f.settings);
      put(el("div", { class: "card" }, el("h2", { text: f.path }),
        el("div", { class: "meta", text: f.what + " · " + count(f.records) + " records" + (f.trace ? " · trace " + f.trace : "") +
          (f.samples_spent !== null ? " · " + count(f.samples_spent) + " rollouts" : "") +
          (f.queries ? " · queries: " + Object.entries(f.queries).map(([k, v]) => v + " " + k).join(", ") : "") }),
        keys.length ? el("dl", { class: "settings" }, keys.map((k) => [el("dt", { text: k }), el("dd", { text: f.settings[k] })])) : null));
    });
    return rows.length;
  }

  function trajectories() {
    let sols = DATA.solutions.map((s, i) => [s, i]);
    let live = new Set();
    const focusPivot = state.pivot ? DATA.pivots.findIndex((p) => p.id === state.pivot) : -1;
    if (state.sol) sols = sols.filter(([s]) => solutionKey(s) === state.sol);
    else if (focusPivot >= 0) sols = sols.filter(([, i]) => i === DATA.pivots[focusPivot].solution);
    DATA.pivots.forEach((p, i) => { if (matches(p, true)) live.add(i); });
    if (!state.sol && focusPivot < 0) sols = sols.filter(([s]) => s.pivots.some((i) => live.has(i)));
    if (state.sol || focusPivot >= 0) put(el("p", {}, el("a", { href: hashFor({ sol: "", pivot: "" }), text: "← all trajectories" })));
    return paged(sols, PAGE_SIZE.trajectories, (page) => page.forEach(([s]) => {
      const details = el("div", { class: "details", "aria-live": "polite" }, el("span", { class: "empty", text: "hover or focus a highlighted token" }));
      const text = el("div", { class: "solution" }, s.segments.map(([t, i]) => (i < 0 ? t : pivotSpan(t, i, live.has(i), details))));
      const key = solutionKey(s);
      put(el("section", { class: "card trajectory", tabindex: "0", "data-key": key },
        el("h2", { text: query(s.q) }),
        el("div", { class: "meta" }, (s.task || "task ?") + " · item " + s.item + (s.sol !== null ? " · solution " + s.sol : "") + " · " + file(s.file) + " · ",
          el("a", { href: hashFor({ view: "trajectories", sol: key, pivot: "", page: "1" }), text: "link" })),
        text, el("div", { class: "charts" }, curve(s), details)));
      if (focusPivot >= 0) { const span = text.querySelector('[data-pivot="' + focusPivot + '"]'); if (span) setTimeout(() => span.focus(), 0); }
    }));
  }

  function pivots() {
    const rows = DATA.pivots.map((p, i) => [p, i]).filter(([p]) => matches(p, true));
    return paged(rows, PAGE_SIZE.pivots, (page) => put(el("table", { class: "rows", id: "pivot-table" },
      el("tr", {}, ["token", "change", "p before → after", "rollouts", "task", "context before the token", ""].map((h) => el("th", { text: h }))),
      page.map(([p]) => el("tr", { class: "row", "data-id": p.id },
        el("td", {}, el("span", { class: "tok", text: showToken(p.token) })),
        el("td", { class: p.positive ? "up" : "down", text: (p.positive ? "▲ " : "▼ ") + signed(p.delta) }),
        el("td", { text: fmt(p.before) + " → " + fmt(p.after) }),
        el("td", { text: [frac(p.k_before, p.n_before), frac(p.k_after, p.n_after)].filter(Boolean).join(" → ") }),
        el("td", { text: p.task }),
        el("td", { class: "ctx", text: "…" + p.tail }),
        el("td", {}, p.solution !== null ? el("a", { href: hashFor({ view: "trajectories", pivot: p.id, sol: "", page: "1" }), text: "in solution" }) : null))))));
  }

  function pairs() {
    const rows = DATA.pairs.filter((p) => matches(p, true));
    return paged(rows, PAGE_SIZE.pairs, (page) => put(el("table", { class: "rows", id: "pair-table" },
      el("tr", {}, ["context (tail)", "chosen", "rejected", "p chosen", "p rejected", "task", "counterpart"].map((h) => el("th", { text: h }))),
      page.map((p) => el("tr", { class: "row" },
        el("td", { class: "ctx", text: "…" + p.tail }),
        el("td", {}, el("span", { class: "tok up", text: showToken(p.chosen) })),
        el("td", {}, el("span", { class: "tok down", text: showToken(p.rejected) })),
        el("td", { text: fmt(p.p_chosen) + (p.n_chosen ? " (" + p.n_chosen + ")" : "") }),
        el("td", { text: fmt(p.p_rejected) + (p.n_rejected ? " (" + p.n_rejected + ")" : "") }),
        el("td", { text: p.task }),
        el("td", { text: (p.verified === true ? "measured" : p.verified === false ? "not measured" : "–") + (p.source ? " · " + p.source : "") }))))));
  }

  function scoreStrip(c) {
    const n = c.scores.length, W = Math.min(900, Math.max(200, n * 8)), cell = (W - 4) / Math.max(1, n), H = 22;
    const g = svg("svg", { width: W, height: H + 16, role: "img", class: "strip", "aria-label": "score of every response position; the critical one marked" });
    c.scores.forEach((s, i) => {
      const r = svg("rect", { x: 2 + i * cell, y: 10, width: Math.max(1, cell - 1), height: H,
        fill: s === null ? "#eee" : "rgb(" + Math.round(213 - 213 * s) + "," + Math.round(94 + 20 * s) + "," + Math.round(0 + 178 * s) + ")",
        class: i === c.position ? "cell critical-cell" : "cell", stroke: i === c.position ? "#000" : "none", "stroke-width": 2 });
      g.append(tip(r, "position " + i + ": " + (s === null ? "not sampled" : "score " + fmt(s) + " (" + frac(c.successes[i], c.samples[i]) + (c.terminal[i] ? ", judged exactly" : "") + ")")));
    });
    if (c.position !== null) g.append(svg("text", { x: 2 + c.position * cell + cell / 2 - 4, y: 9, text: "▼" }));
    return g;
  }
  function passAtK(c) {
    if (!c.pass_with.length && !c.pass_without.length) return null;
    const W = 300, H = 90, n = Math.max(c.pass_with.length, c.pass_without.length), X = (k) => 30 + (k - 1) / Math.max(1, n - 1) * (W - 40), Y = (p) => 6 + (1 - p) * H;
    const line = (ys, dash, colour, label) => tip(svg("polyline", { points: ys.map((p, i) => X(i + 1) + "," + Y(p || 0)).join(" "), fill: "none", stroke: colour, "stroke-width": 2, "stroke-dasharray": dash }), label);
    return svg("svg", { width: W, height: H + 30, role: "img", "aria-label": "Pass@k with and without the critical token" },
      svg("line", { x1: 30, y1: Y(0), x2: W - 10, y2: Y(0), class: "axis" }), svg("line", { x1: 30, y1: Y(0), x2: 30, y2: Y(1), class: "axis" }),
      svg("text", { x: 4, y: Y(1) + 4, text: "1.0" }), svg("text", { x: 4, y: Y(0) + 4, text: "0.0" }),
      line(c.pass_with, "", "var(--neg)", "with the critical token: " + frac(c.successes_with, c.samples_with)),
      line(c.pass_without, "5 3", "var(--pos)", "without it: " + frac(c.successes_without, c.samples_without)),
      svg("text", { x: 30, y: H + 20, text: "Pass@k, k = 1…" + n + ": — with   - - without" }));
  }
  function critical() {
    const rows = DATA.critical.filter((c) => matches(c, false));
    return paged(rows, PAGE_SIZE.critical, (page) => page.forEach((c) => {
      const text = c.split ? [c.split[0], el("span", { class: "critical", title: "critical token at position " + c.position + (c.score !== null ? ", score " + fmt(c.score) : ""), tabindex: "0" }, c.split[1]), c.split[2]] : [c.response];
      put(el("section", { class: "card critical-card", tabindex: "0" },
        el("h2", { text: query(c.q) }),
        el("div", { class: "meta", text: (c.task || "task ?") + " · item " + c.item + " · trajectory " + c.trajectory + " · answer " + c.answer + " · rule " + c.rule +
          (c.position !== null ? " · critical token " + showToken(c.token) + " at " + c.position : " · no critical token") + " · " + c.mode + " · " + c.rollouts + " rollouts" }),
        el("div", { class: "response" }, text), scoreStrip(c),
        el("div", { class: "charts" }, passAtK(c), el("div", { class: "details" },
          "with the token: " + frac(c.successes_with, c.samples_with) + " succeeded · without: " + frac(c.successes_without, c.samples_without),
          c.alternatives.length ? el("div", {}, "alternatives drawn: ", c.alternatives.map((a) => [el("span", { class: "tok", text: showToken(a[0]) }), " " + a[2] + "/" + a[1] + " "])) : null))));
    }));
  }

  function contrast() {
    const rows = DATA.contrast.filter((c) => matches(c, false));
    return paged(rows, PAGE_SIZE.contrast, (page) => page.forEach((c) => {
      // Low s_t: the negative model prefers this token more than the positive one does; shaded deeper.
      const spans = c.tokens.map((t, i) => el("span", { class: "shade" + (i === c.min_position ? " critical" : ""),
        style: "background: rgba(213, 94, 0, " + (c.scores[i] === null ? 0 : (0.75 * (1 - c.scores[i])).toFixed(3)) + ")",
        title: "position " + i + ": s = " + fmt(c.scores[i]) }, t));
      put(el("section", { class: "card contrast-card", tabindex: "0" }, el("h2", { text: query(c.q) }),
        el("div", { class: "meta", text: (c.task || "task ?") + " · item " + c.item + " · " + (c.correct ? "correct" : "incorrect") + " · beta " + fmt(c.beta) +
          (c.min_position !== null ? " · lowest score at " + c.min_position : "") + " · deeper shade: lower s_t" }),
        el("div", { class: "response" }, spans)));
    }));
  }

  const RENDER = { overview: overview, trajectories: trajectories, pivots: pivots, pairs: pairs, critical: critical, contrast: contrast };
  function render() {
    const started = performance.now();
    search.value = state.q; signSel.value = state.sign; minInput.value = state.min === "0" ? "" : state.min;
    taskSel.value = state.task; verSel.value = state.verified;
    tabs.querySelectorAll("button").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.view === state.view)));
    main.replaceChildren();
    const n = RENDER[state.view]();
    countLine.textContent = count(n) + " matching";
    document.body.dataset.renderMs = (performance.now() - started).toFixed(1);
  }

  // ---- keyboard: never while typing in a field
  document.addEventListener("keydown", (ev) => {
    const t = ev.target;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) {
      if (ev.key === "Escape") t.blur();
      return;
    }
    if (ev.key === "/") { search.focus(); ev.preventDefault(); return; }
    const digit = parseInt(ev.key, 10);
    if (digit >= 1 && digit <= VIEWS.length) { go({ view: VIEWS[digit - 1][0], page: "1", sol: "", pivot: "" }); return; }
    if (ev.key === "n" || ev.key === "p") {
      const b = [...main.querySelectorAll(".pager button")].find((x) => x.textContent.startsWith(ev.key === "n" ? "next" : "◀"));
      if (b && !b.disabled) b.click();
      return;
    }
    if (ev.key === "j" || ev.key === "k") {
      const cards = [...main.querySelectorAll(".card, tr.row")];
      const at = cards.findIndex((c) => c === document.activeElement || c.contains(document.activeElement));
      const next = cards[at < 0 ? 0 : Math.min(cards.length - 1, Math.max(0, at + (ev.key === "j" ? 1 : -1)))];
      if (next) { if (!next.hasAttribute("tabindex")) next.setAttribute("tabindex", "0"); next.focus(); next.scrollIntoView({ block: "nearest" }); }
    }
  });
  window.addEventListener("hashchange", () => { readHash(); render(); });
  readHash();
  render();
  document.body.dataset.ready = "true";
})();
