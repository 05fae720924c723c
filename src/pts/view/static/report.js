// pts view: draws the report from the JSON block #pts-data. Every piece of record text goes into the DOM
// through textContent or setAttribute, never through innerHTML, so a record cannot inject markup or script.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("pts-data").textContent);
  const PAGE_SIZE = { trajectories: 20, pivots: 50, pairs: 50, critical: 20, contrast: 20, anchors: 20, other: 50 };
  const ANCHORS = DATA.anchors || [];
  // Lists that formats from other packages add (each row its format's view_row), drawn as tables of their fields.
  const OTHER = Object.entries(DATA.other_lists || {});
  const VIEWS = [
    ["overview", "Overview", () => true],
    ["trajectories", "Trajectories", () => DATA.solutions.length > 0],
    ["pivots", "Pivotal tokens", () => DATA.pivots.length > 0],
    ["pairs", "Pairs", () => DATA.pairs.length > 0],
    ["critical", "Critical tokens", () => DATA.critical.length > 0],
    ["contrast", "Contrast scores", () => DATA.contrast.length > 0],
    ["anchors", "Thought anchors", () => ANCHORS.length > 0],
    ...OTHER.map(([name, title]) => [name, title.charAt(0).toUpperCase() + title.slice(1), () => DATA[name].length > 0]),
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
  const cell = (v) => (v === null || v === undefined ? "–" : typeof v === "string" ? v : JSON.stringify(v));

  // ---- search text, lower-cased once per row so that filtering 10,000 rows stays a plain loop
  const hay = (parts) => parts.filter((x) => x !== null && x !== undefined).join("\n").toLowerCase();
  DATA.pivots.forEach((p) => { p._hay = hay([query(p.q), p.token, p.tail, p.task, p.item]); });
  DATA.pairs.forEach((p) => { p._hay = hay([query(p.q), p.tail, p.chosen, p.rejected, p.task]); });
  DATA.critical.forEach((c) => { c._hay = hay([query(c.q), c.response, c.token, c.task, c.item]); });
  DATA.contrast.forEach((c) => { c._hay = hay([query(c.q), c.tokens.join(""), c.task, c.item]); });
  ANCHORS.forEach((a) => { a._hay = hay([query(a.q), a.sentence, a.category, a.task, a.item]); });
  OTHER.forEach(([name]) => DATA[name].forEach((r) => { r._hay = hay([query(r.q), ...Object.values(r).map(cell)]); }));
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
        DATA.pivots.length || DATA.pairs.length ? [el("label", {}, "sign", signSel), el("label", {}, "|change| ≥", minInput)] : null,
        TASKS.length > 1 ? el("label", {}, "task", taskSel) : null,
        HAS_VERIFIED ? el("label", {}, "verification", verSel) : null, countLine)),
    main,
    el("footer", {}, "Keys: ", el("kbd", { text: "/" }), " search · ", el("kbd", { text: "1" }), "–",
      el("kbd", { text: String(VIEWS.length) }), " views · ", el("kbd", { text: "j" }), " ", el("kbd", { text: "k" }),
      " next/previous card · ", el("kbd", { text: "n" }), " ", el("kbd", { text: "p" }), " next/previous page",
      DATA.pivots.length ? [" · ", el("kbd", { text: "Tab" }), " and ", el("kbd", { text: "←" }), " ", el("kbd", { text: "→" }),
        " move between pivotal tokens. ▲ solid underline: p(success) rises; ▼ dashed underline: it falls; deeper shade: larger change."] : "."));

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

  // ---- charts (inline SVG); every axis is labelled, and a legend names what each mark is
  const tokenLabel = (t) => { const v = String(t).replace(/\n/g, "⏎").replace(/\t/g, "⇥"); return v.length > 12 ? v.slice(0, 11) + "…" : v; };
  function yLabel(g, text, x, yMid) { g.append(svg("text", { x: x, y: yMid, transform: "rotate(-90 " + x + " " + yMid + ")", "text-anchor": "middle", class: "axis-label", text: text })); }
  // Labels under an x-axis of ``n`` positions: every token when ``tokens`` (all of them) each have room, else a
  // tick every few positions and the ``marked`` ones (a Map position -> token text: pivots, the critical token)
  // by name. Returns the height the labels take.
  function xTokens(g, n, X, y, tokens, marked) {
    const room = X(1) - X(0);
    const at = (i, text, cls, yy = y) => g.append(svg("text", { x: X(i + 0.5) + 3, y: yy, transform: "rotate(-60 " + (X(i + 0.5) + 3) + " " + yy + ")",
      "text-anchor": "end", class: cls, text: tokenLabel(text) }));
    const longest = tokens ? Math.max(1, ...tokens.map((t) => tokenLabel(t).length)) : 0;
    if (tokens && room >= longest * 5.6 + 2) {  // every token fits upright (9px monospace: ~5.4px a character)
      tokens.forEach((t, i) => g.append(svg("text", { x: X(i + 0.5), y: y, "text-anchor": "middle", class: marked.has(i) ? "tick-token marked" : "tick-token", text: tokenLabel(t) })));
      return 14;
    }
    if (tokens && room >= 11) { tokens.forEach((t, i) => at(i, t, marked.has(i) ? "tick-token marked" : "tick-token")); return 58; }
    const step = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].find((k) => k * room >= 28) || 2000;
    for (let i = 0; i <= n; i += step) g.append(svg("text", { x: X(i), y: y + 2, "text-anchor": "middle", class: "tick", text: String(i) }));
    marked.forEach((text, i) => at(i, text, "tick-token marked", y + 12));  // under the position numbers
    const tallest = Math.max(0, ...[...marked.values()].map((t) => tokenLabel(t).length));
    return marked.size ? Math.min(76, 28 + tallest * 5) : 12;
  }
  function legend(items) {
    return el("div", { class: "legend" }, items.map(([mark, text]) => el("span", {}, el("span", { class: "key " + mark, "aria-hidden": "true" }), text)));
  }
  function histogram(deltas) {
    const W = 380, H = 130, L = 40, bins = 20, counts = new Array(bins).fill(0);
    deltas.forEach((d) => { counts[Math.min(bins - 1, Math.max(0, Math.floor((d + 1) / 2 * bins)))] += 1; });
    const top = Math.max(1, ...counts), bw = (W - L - 5) / bins;
    const g = svg("svg", { width: W, height: H + 42, role: "img", "aria-label": "histogram of prob_delta: pivotal tokens by change in p(success)", id: "histogram" });
    counts.forEach((c, i) => {
      const h = c / top * H, lo = -1 + i * 2 / bins;
      const bar = svg("rect", { x: L + i * bw, y: H - h + 5, width: bw - 1, height: h, fill: lo < 0 ? "var(--neg)" : "var(--pos)",
        "fill-opacity": lo < 0 ? 0.55 : 0.85, class: "bin" });
      g.append(tip(bar, "prob_delta in [" + lo.toFixed(1) + ", " + (lo + 0.1).toFixed(1) + "): " + c + " pivotal tokens"));
    });
    g.append(svg("line", { x1: L, y1: H + 5, x2: W - 5, y2: H + 5, class: "axis" }), svg("line", { x1: L, y1: H + 5, x2: L, y2: 5, class: "axis" }));
    [-1, -0.5, 0, 0.5, 1].forEach((x) => g.append(svg("text", { x: L + (x + 1) / 2 * (W - L - 5), y: H + 17, "text-anchor": "middle", class: "tick", text: x })));
    g.append(svg("text", { x: L - 4, y: 12, "text-anchor": "end", class: "tick", text: String(top) }), svg("text", { x: L - 4, y: H + 8, "text-anchor": "end", class: "tick", text: "0" }));
    yLabel(g, "pivotal tokens", 10, H / 2 + 5);
    g.append(svg("text", { x: L + (W - L) / 2, y: H + 36, "text-anchor": "middle", class: "axis-label", text: "prob_delta = p(success) after − before (▼ falls · ▲ rises)" }));
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
  // The verification's numbers as points: p before and after each verified pivot, at its two positions.
  function verifiedPoints(s) {
    const out = [];
    s.pivots.map((i) => DATA.pivots[i]).filter((p) => p.verified === true && p.position !== null).forEach((p) => {
      [["before", p.position], ["after", p.position + (p.length || 1)]].forEach(([side, position]) => {
        const ci = p["ci_" + side] || [p[side], p[side]];
        out.push({ position: position, p: p[side], low: ci[0], high: ci[1], successes: p["k_" + side], samples: p["n_" + side], terminal: p["terminal_" + side] });
      });
    });
    return out;
  }
  function diamond(x, y, r) { return "M" + x + "," + (y - r) + " L" + (x + r) + "," + y + " L" + x + "," + (y + r) + " L" + (x - r) + "," + y + " Z"; }
  function curve(s) {
    const pts = s.curve, ver = verifiedPoints(s);
    if (!pts.length && !ver.length) return null;
    const positions = pts.concat(ver).map((p) => p.position);
    const last = Math.max(s.length || 0, ...positions, 1), tokens = s.tokens;  // every token: a trace's solutions only
    const W = Math.max(560, Math.min(1040, 46 + last * 12)), H = 90, L = 46, R = 8, T = 6;
    const X = (pos) => L + pos / last * (W - L - R), Y = (p) => T + (1 - p) * H;
    const marked = new Map(s.pivots.filter((i) => DATA.pivots[i].position !== null).map((i) => [DATA.pivots[i].position, DATA.pivots[i].token]));
    const g = svg("svg", { width: W, height: 0, role: "img", class: "curve",
      "aria-label": "p(success) along the solution: search estimates (" + (s.curve_source === "trace" ? "search trace" : "the points the records kept") + ")" + (ver.length ? " and verified values" : "") });
    g.append(svg("line", { x1: L, y1: Y(0), x2: W - R, y2: Y(0), class: "axis" }), svg("line", { x1: L, y1: Y(0), x2: L, y2: Y(1), class: "axis" }));
    [1, 0.5, 0].forEach((v) => g.append(svg("text", { x: L - 4, y: Y(v) + 4, "text-anchor": "end", class: "tick", text: v.toFixed(1) })));
    yLabel(g, "p(success)", 10, Y(0.5));
    s.pivots.forEach((i) => {
      const p = DATA.pivots[i];
      if (p.position === null) return;
      const n = p.length || 1, x = X(p.position + n / 2);
      if (n > 1) {  // a pivotal span: one band over its tokens
        g.append(tip(svg("rect", { x: X(p.position), y: Y(1), width: X(p.position + n) - X(p.position), height: Y(0) - Y(1),
          fill: p.positive ? "var(--pos)" : "var(--neg)", "fill-opacity": 0.15, class: "pivot-line pivot-span", "data-length": n }),
          "pivotal span " + showToken(p.token) + " (tokens " + p.position + "–" + (p.position + n - 1) + "): " + signed(p.delta)));
        return;
      }
      g.append(tip(svg("line", { x1: x, y1: Y(1), x2: x, y2: Y(0), stroke: p.positive ? "var(--pos)" : "var(--neg)", class: "pivot-line",
        "stroke-dasharray": p.positive ? "" : "4 3", "stroke-width": 1.5, "stroke-opacity": 0.6 }), "pivot " + showToken(p.token) + " (token " + p.position + "): " + signed(p.delta)));
    });
    const pointText = (p) => p.terminal ? fmt(p.p) + ", judged exactly (the response ends here)"
      : fmt(p.p) + (p.samples ? " (" + (p.successes !== null ? p.successes + "/" : "") + p.samples + " rollouts" + (p.successes !== null ? ", 95% [" + fmt(p.low) + ", " + fmt(p.high) + "]" : "") + ")" : "");
    pts.forEach((p) => { if (!p.terminal) g.append(svg("line", { x1: X(p.position), y1: Y(p.low), x2: X(p.position), y2: Y(p.high), stroke: "#999" })); });
    g.append(svg("polyline", { points: pts.map((p) => X(p.position) + "," + Y(p.p)).join(" "), fill: "none", stroke: "var(--ink)", "stroke-width": 1.2 }));
    pts.forEach((p) => g.append(tip(p.terminal
      ? svg("rect", { x: X(p.position) - 3, y: Y(p.p) - 3, width: 6, height: 6, fill: "var(--ink)", class: "estimate terminal", "data-position": p.position, "data-p": p.p })
      : svg("circle", { cx: X(p.position), cy: Y(p.p), r: 2.5, fill: "var(--ink)", class: "estimate", "data-position": p.position, "data-p": p.p }),
      "search estimate after " + p.position + " tokens: p = " + pointText(p))));
    ver.forEach((p) => {
      const x = X(p.position) + 3;
      if (!p.terminal) g.append(svg("line", { x1: x, y1: Y(p.low), x2: x, y2: Y(p.high), stroke: "var(--ver)", "stroke-width": 1.5 }));
      g.append(tip(svg("path", { d: diamond(x, Y(p.p), 4), fill: "#fff", stroke: "var(--ver)", "stroke-width": 1.8, class: "verified-point", "data-position": p.position, "data-p": p.p }),
        "verified after " + p.position + " tokens: p = " + pointText(p)));
    });
    const below = xTokens(g, last, X, Y(0) + 12, tokens, marked);
    g.setAttribute("height", Y(0) + below + 4);
    const xAxis = el("div", { class: "axis-caption", style: "padding-left:" + L + "px",
      text: tokens && (X(1) - X(0)) >= 11 ? "the solution, token by token (p(success) is marked between tokens: after the first i of them)" : "tokens into the solution (pivot tokens named)" });
    const intervals = pts.some((p) => p.low !== p.high) ? ", 95% interval" : "";
    const items = [["line", pts.length ? "search estimate" + (s.curve_source === "trace" ? " (search trace)" : " (points the records kept)") + intervals : null],
      ["diamond", ver.length ? "verified (fresh rollouts)" : null],
      ["square", pts.concat(ver).some((p) => p.terminal) ? "judged exactly (end of the response)" : null],
      ["pivot-pos", "▲ pivot: p rises"], ["pivot-neg", "▼ pivot: p falls"]].filter((x) => x[1]);
    return el("div", { class: "chart", style: "max-width:" + W + "px" }, g, xAxis, boundChart(s, X, W, last), legend(items));
  }
  // 1 − π for each token of the solution: the most that choosing it can move p(success). Below the search's
  // threshold a token cannot be pivotal. Drawn only when the run kept the sampling probabilities.
  function boundChart(s, X, W, last) {
    if (!s.bound || !s.bound.length) return null;
    const H = 36, T = 4, L = 46, Y = (v) => T + (1 - v) * H, thr = s.threshold;
    const g = svg("svg", { width: W, height: H + 8, role: "img", class: "bound", "aria-label": "the most each token can move p(success): 1 − its sampling probability" });
    g.append(svg("line", { x1: L, y1: Y(0), x2: W - 8, y2: Y(0), class: "axis" }), svg("line", { x1: L, y1: Y(0), x2: L, y2: Y(1), class: "axis" }));
    g.append(svg("text", { x: L - 4, y: Y(1) + 8, "text-anchor": "end", class: "tick", text: "1" }), svg("text", { x: L - 4, y: Y(0), "text-anchor": "end", class: "tick", text: "0" }));
    const w = Math.max(1, (X(1) - X(0)) - 1);
    s.bound.forEach(([i, b]) => {
      const low = thr !== null && thr !== undefined && b < thr;
      g.append(tip(svg("rect", { x: X(i), y: Y(b), width: w, height: Math.max(0.5, b * H), class: low ? "bound-bar low" : "bound-bar" }),
        "token " + i + ": 1 − π = " + fmt(b) + (low ? ", below the threshold: it cannot be pivotal" : "")));
    });
    if (thr !== null && thr !== undefined) g.append(tip(svg("line", { x1: L, y1: Y(thr), x2: W - 8, y2: Y(thr), class: "threshold" }), "threshold " + fmt(thr)));
    yLabel(g, "1 − π", 10, Y(0.5));
    return el("div", {}, g, el("div", { class: "axis-caption", style: "padding-left:" + L + "px",
      text: "bars: 1 − π(token), the most that choosing the token (sampled with probability π) can move p(success)" +
        (thr !== null && thr !== undefined ? "; a token under the dashed threshold (" + fmt(thr) + ", pale) cannot be pivotal" : "") }));
  }

  // ---- text for one pivot: the same words on hover (title), for screen readers and in the details box.
  // Each number is named: "verified" (fresh rollouts after the search flagged the token) or "search estimate"
  // (the rollouts the search itself drew; the curve draws these), and an end that finished the response
  // is "judged exactly" (one exact check, no rollouts).
  function sideText(name, p, ci, k, n, terminal) {
    if (p === null || p === undefined) return name + " –";
    if (terminal) return name + " " + fmt(p) + ", judged exactly (the response ends here)";
    return name + " " + fmt(p) + (ci ? " [" + fmt(ci[0]) + ", " + fmt(ci[1]) + "]" : "") +
      (n ? " from " + (k !== null && k !== undefined ? frac(k, n) : count(n)) + " rollouts" : "");
  }
  // The search's estimates around a pivot: its own numbers for an unverified record (the search wrote them).
  function searchOf(p) {
    if (p.search || p.verified === true) return p.search;
    return { before: p.before, after: p.after, k_before: p.k_before, n_before: p.n_before, k_after: p.k_after, n_after: p.n_after,
      terminal_before: p.terminal_before, terminal_after: p.terminal_after };
  }
  function searchLine(p) {
    const s = searchOf(p);
    if (!s) return null;
    return "search estimate: " + sideText("before", s.before, null, s.k_before, s.n_before, s.terminal_before) +
      " · " + sideText("after", s.after, null, s.k_after, s.n_after, s.terminal_after);
  }
  function boundLine(p) {
    if (p.sampling_prob === null || p.sampling_prob === undefined) return null;
    return "sampling probability π = " + fmt(p.sampling_prob) + ": choosing this token can move p(success) by at most 1 − π = " + fmt(1 - p.sampling_prob);
  }
  function pivotLines(p) {
    const named = p.verified === true ? ", verified" : p.verified === false ? ", search estimate (not verified)" : "";
    const own = sideText("before", p.before, p.ci_before, p.k_before, p.n_before, p.terminal_before) + " · " +
      sideText("after", p.after, p.ci_after, p.k_after, p.n_after, p.terminal_after);
    return [
      "p(success) " + fmt(p.before) + " → " + fmt(p.after) + " (" + signed(p.delta) + ")" + named,
      p.verified === true ? "verified: " + own : (searchOf(p) ? null : own),
      searchLine(p),
      boundLine(p),
    ].filter(Boolean);
  }
  function pivotTitle(p) {
    const lines = pivotLines(p);
    if ((p.length || 1) > 1) lines.unshift("pivotal span of " + p.length + " tokens: no single one of them moved p(success) by the threshold");
    if (p.alternatives.length) lines.push("rollouts took: " + p.alternatives.map((a) => showToken(a[0]) + " " + a[2] + "/" + a[1]).join(", "));
    return lines.join("\n");
  }
  function pivotDetails(p) {
    return el("div", {},
      el("b", { class: p.positive ? "up" : "down", text: (p.positive ? "▲ " : "▼ ") + showToken(p.token) + " " + signed(p.delta) }),
      pivotLines(p).map((line) => el("div", { text: line })),
      p.alternatives.length ? el("table", {}, el("tr", {}, el("th", { text: "first token the rollouts took" }), el("th", { text: "rollouts" }), el("th", { text: "succeeded" }), el("th", { text: "p" })),
        p.alternatives.map((a) => el("tr", {}, el("td", {}, el("span", { class: "tok", text: showToken(a[0]) })), el("td", { text: a[1] }), el("td", { text: a[2] }), el("td", { text: fmt(a[1] ? a[2] / a[1] : null) })))) : null);
  }

  function pivotSpan(text, index, live, details) {
    const p = DATA.pivots[index];
    const span = el("span", { class: "pivot " + (p.positive ? "pos" : "neg") + " " + strength(p.delta) + (live ? "" : " dim") + ((p.length || 1) > 1 ? " span" : ""),
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
  // ---- overview: a paragraph that says what the numbers mean, then one section per kind of record the files
  // hold (a new kind of record adds an entry to ABOUT and to OVERVIEW), then the files themselves.
  const PIVOT_KINDS = ["pivotal_tokens", "original_pivotal_tokens", "steering"];
  const filesOf = (kinds) => DATA.files.filter((f) => kinds.includes(f.kind));
  const ABOUT = [
    [PIVOT_KINDS.concat(["dpo", "original_dpo"]), "p(success) is the share of sampled continuations (rollouts) from a point in " +
      "an answer that end in a correct answer. A pivotal token is one whose choice moves p(success) by at least the search's " +
      "threshold (▲ up, ▼ down). The search estimates p(success) from a few rollouts; verification measures each flagged token " +
      "again with fresh rollouts and keeps it only if the change holds. Both are shown, named: \u201csearch estimate\u201d and " +
      "\u201cverified\u201d. Where the response has already ended, p(success) is judged exactly, once."],
    [["dpo", "original_dpo"], "A DPO pair's counterpart is measured when both tokens were sampled, and its gap established when " +
      "the interval of the difference lies above zero."],
    [["critical_tokens"], "A critical token (cDPO) is a token of a wrong answer after which rollouts almost never succeed; each " +
      "token's score is the share of rollouts from just after it that succeed."],
    [["contrast_scores"], "A contrast score s_t is low where a model tuned on wrong answers prefers the token far more than one " +
      "tuned on right answers."],
  ];
  function about() {
    const kinds = new Set(DATA.files.map((f) => f.kind));
    const text = ABOUT.filter(([ks]) => ks.some((k) => kinds.has(k))).map((a) => a[1]).join(" ");
    return text ? el("p", { id: "about", text: text }) : null;
  }
  function stat(value, label) { return el("div", { class: "stat" }, el("b", { text: value }), el("span", { text: label })); }
  // Rollouts the files' progress files count, or where the count is missing, why.
  function spentStat(files) {
    const spent = files.map((f) => f.samples_spent).filter((x) => x !== null && x !== undefined);
    if (spent.length) return stat(count(spent.reduce((a, b) => a + b, 0)), "rollouts spent" + (spent.length < files.length ? " (" + spent.length + " of " + files.length + " files)" : ""));
    return stat("unknown", "rollouts spent (no " + files.map((f) => f.path.split("/").pop() + ".progress").join(", ") + " beside it)");
  }
  const sectionTitle = (text) => el("h3", { class: "section", text: text });
  const OVERVIEW = [
    [PIVOT_KINDS, () => {
      const rows = DATA.pivots.filter((p) => matches(p, true));
      const pos = rows.filter((p) => p.positive).length;
      const ver = rows.filter((p) => p.verified === true).length, unver = rows.filter((p) => p.verified === false).length;
      put(sectionTitle("Pivotal tokens"), el("div", { class: "stats" },
        stat(count(rows.length), "pivotal tokens" + (rows.length !== DATA.pivots.length ? " (of " + count(DATA.pivots.length) + ")" : "")),
        stat("▲ " + count(pos), "positive"), stat("▼ " + count(rows.length - pos), "negative"),
        HAS_VERIFIED ? stat(count(ver) + " / " + count(unver), "verified / unverified") : null,
        stat(count(DATA.solutions.length), "solutions"),
        filesOf(["pivotal_tokens"]).length ? spentStat(filesOf(["pivotal_tokens"])) : null));
      if (rows.length) put(el("div", { class: "charts" }, el("div", {}, el("h4", { text: "change in p(success)" }), histogram(rows.map((p) => p.delta))),
        el("div", {}, el("h4", { text: "per task" }), taskBars(rows))));
      return rows.length;
    }],
    [["dpo", "original_dpo"], () => {
      const rows = DATA.pairs.filter((p) => matches(p, true));
      const by = (k) => rows.filter((p) => p.counterpart === k).length;
      put(sectionTitle("DPO pairs"), el("div", { class: "stats" },
        stat(count(rows.length), "DPO pairs" + (rows.length !== DATA.pairs.length ? " (of " + count(DATA.pairs.length) + ")" : "")),
        stat("▲ " + count(rows.filter((p) => p.positive === true).length), "from positive pivots"),
        stat("▼ " + count(rows.filter((p) => p.positive === false).length), "from negative pivots"),
        stat(count(by("established")), "measured, gap established"),
        stat(count(by("not established")), "measured, gap not established"),
        stat(count(by("not measured")), "counterpart not measured")));
      return rows.length;
    }],
    [["critical_tokens"], () => {
      const rows = DATA.critical.filter((c) => matches(c, false));
      const found = rows.filter((c) => c.position !== null);
      const mean = (xs) => xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
      const first = (xs) => rows.map((c) => c[xs][0]).filter((x) => x !== null && x !== undefined);
      put(sectionTitle("Critical tokens"), el("div", { class: "stats" },
        stat(count(rows.length), "incorrect trajectories scored" + (rows.length !== DATA.critical.length ? " (of " + count(DATA.critical.length) + ")" : "")),
        stat(count(found.length), "with a critical token"), stat(count(rows.length - found.length), "with none (no token scored 0)"),
        first("pass_with").length ? stat(fmt(mean(first("pass_with"))), "mean Pass@1 keeping the token") : null,
        first("pass_without").length ? stat(fmt(mean(first("pass_without"))), "mean Pass@1 replacing it") : null,
        spentStat(filesOf(["critical_tokens"]))));
      return rows.length;
    }],
    [["contrast_scores"], () => {
      const rows = DATA.contrast.filter((c) => matches(c, false));
      put(sectionTitle("Contrast scores"), el("div", { class: "stats" },
        stat(count(rows.length), "trajectories scored" + (rows.length !== DATA.contrast.length ? " (of " + count(DATA.contrast.length) + ")" : "")),
        stat(count(rows.filter((c) => c.correct === true).length), "correct"), stat(count(rows.filter((c) => c.correct === false).length), "incorrect")));
      return rows.length;
    }],
  ];
  function overview() {
    put(about());
    let n = 0;
    OVERVIEW.forEach(([kinds, draw]) => { if (filesOf(kinds).length) n += draw(); });
    put(sectionTitle("Files"));
    DATA.files.forEach((f) => {
      const keys = Object.keys(f.settings || {});
      put(el("div", { class: "card" }, el("h2", { text: f.path }),
        el("div", { class: "meta", text: f.what + " · " + count(f.records) + " records" + (f.trace ? " · trace " + f.trace : "") +
          (f.samples_spent !== null && f.samples_spent !== undefined ? " · " + count(f.samples_spent) + " rollouts" : "") +
          (f.queries ? " · queries: " + Object.entries(f.queries).map(([k, v]) => v + " " + k).join(", ") : "") +
          (f.progress ? " · progress " + f.progress : "") }),
        keys.length ? el("dl", { class: "settings" }, keys.map((k) => [el("dt", { text: k }), el("dd", { text: f.settings[k] })])) : null));
    });
    return n;
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
        el("td", { text: fmt(p.before) + " → " + fmt(p.after) + (p.verified === true ? " verified" : p.verified === false ? " search estimate" : "") }),
        el("td", { text: [p.terminal_before ? "judged exactly" : frac(p.k_before, p.n_before), p.terminal_after ? "judged exactly" : frac(p.k_after, p.n_after)].filter(Boolean).join(" → ") }),
        el("td", { text: p.task }),
        el("td", { class: "ctx", text: "…" + p.tail }),
        el("td", {}, p.solution !== null ? el("a", { href: hashFor({ view: "trajectories", pivot: p.id, sol: "", page: "1" }), text: "in solution" }) : null))))));
  }

  // measured / gap not established / not measured, with the interval that decided it
  function counterpartText(p) {
    const gap = p.gap ? " (" + (p.gap_confidence ? Math.round(p.gap_confidence * 100) + "% " : "") + "interval [" + fmt(p.gap[0]) + ", " + fmt(p.gap[1]) + "])" : "";
    const text = p.counterpart === "established" ? "measured · gap established" + gap
      : p.counterpart === "not established" ? "measured · gap not established" + gap : "not measured";
    return text + (p.source ? " · " + p.source : "");
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
        el("td", { class: "counterpart", text: counterpartText(p) }))))));
  }

  const scoreColour = (v) => "rgb(" + Math.round(213 - 213 * v) + "," + Math.round(94 + 20 * v) + "," + Math.round(178 * v) + ")";
  function scoreStrip(c) {
    const n = c.scores.length, W = Math.min(1040, 52 + n * Math.min(48, Math.max(c.tokens ? 13 : 8, 600 / Math.max(1, n)))), L = 46, H = 22, T = 12;
    const X = (i) => L + i / Math.max(1, n) * (W - L - 6), cell = X(1) - X(0);
    const g = svg("svg", { width: W, height: 0, role: "img", class: "strip", "aria-label": "score of every response token; the critical one marked" });
    c.scores.forEach((v, i) => {
      const r = svg("rect", { x: X(i), y: T, width: Math.max(1, cell - 1), height: H, fill: v === null ? "#eee" : scoreColour(v),
        class: i === c.position ? "cell critical-cell" : "cell", stroke: i === c.position ? "#000" : "none", "stroke-width": 2 });
      const tok = c.tokens ? " " + showToken(c.tokens[i]) : "";
      g.append(tip(r, "token " + i + tok + ": " + (v === null ? "not sampled" : c.terminal[i] ? "score " + fmt(v) + ", judged exactly (the response ends here)"
        : "score " + fmt(v) + " (" + frac(c.successes[i], c.samples[i]) + " rollouts succeeded)")));
    });
    g.append(svg("text", { x: L - 4, y: T + H / 2 + 4, "text-anchor": "end", class: "axis-label", text: "score" }));
    if (c.position !== null) g.append(svg("text", { x: X(c.position + 0.5), y: T - 2, "text-anchor": "middle", text: "▼" }));
    const marked = new Map(c.position !== null ? [[c.position, c.token || ""]] : []);
    const below = xTokens(g, n, X, T + H + 12, c.tokens, marked);
    g.setAttribute("height", T + H + below + 4);
    const grad = el("span", { class: "key gradient", "aria-hidden": "true" });
    return el("div", { class: "chart", style: "max-width:" + Math.max(W, 600) + "px" }, g,
      el("div", { class: "axis-caption", style: "padding-left:" + L + "px",
        text: c.tokens ? "the response, token by token" : "tokens into the response (this file keeps token ids only, so only the critical token is named)" }),
      el("div", { class: "legend" },
      el("span", {}, "score = share of rollouts from just after the token that succeed: 0 ", grad, " 1"),
      el("span", {}, el("span", { class: "key none", "aria-hidden": "true" }), "not sampled"),
      el("span", {}, el("span", { class: "key crit", "aria-hidden": "true" }), "▼ critical token" + (c.low_threshold !== null ? " (scores 0, and none after it above " + fmt(c.low_threshold) + ")" : ""))));
  }
  function passAtK(c) {
    if (!c.pass_with.length && !c.pass_without.length) return null;
    const W = 320, H = 90, L = 46, n = Math.max(c.pass_with.length, c.pass_without.length), X = (k) => L + (k - 1) / Math.max(1, n - 1) * (W - L - 10), Y = (p) => 6 + (1 - p) * H;
    const line = (ys, dash, colour, label) => tip(svg("polyline", { points: ys.map((p, i) => X(i + 1) + "," + Y(p || 0)).join(" "), fill: "none", stroke: colour, "stroke-width": 2, "stroke-dasharray": dash }), label);
    const g = svg("svg", { width: W, height: H + 44, role: "img", "aria-label": "Pass@k with and without the critical token" },
      svg("line", { x1: L, y1: Y(0), x2: W - 10, y2: Y(0), class: "axis" }), svg("line", { x1: L, y1: Y(0), x2: L, y2: Y(1), class: "axis" }),
      svg("text", { x: L - 4, y: Y(1) + 4, "text-anchor": "end", class: "tick", text: "1.0" }), svg("text", { x: L - 4, y: Y(0) + 4, "text-anchor": "end", class: "tick", text: "0.0" }),
      svg("text", { x: X(1), y: Y(0) + 13, "text-anchor": "middle", class: "tick", text: "1" }), svg("text", { x: X(n), y: Y(0) + 13, "text-anchor": "middle", class: "tick", text: String(n) }),
      line(c.pass_with, "", "var(--neg)", "with the critical token: " + frac(c.successes_with, c.samples_with)),
      line(c.pass_without, "5 3", "var(--pos)", "without it: " + frac(c.successes_without, c.samples_without)),
      svg("text", { x: L + (W - L) / 2, y: H + 24, "text-anchor": "middle", class: "axis-label", text: "k (answers drawn)" }),
      svg("text", { x: L, y: H + 40, class: "axis-label", text: "— with the critical token   - - without it" }));
    yLabel(g, "Pass@k", 10, Y(0.5));
    return g;
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

  function anchors() {
    // One card per searched solution: its sentences in order, each shaded by the size of its importance (blue: keeping
    // the sentence raises p(success), orange: lowers it), its interval in the title.
    const groups = new Map();
    ANCHORS.filter((a) => matches(a, false)).forEach((a) => {
      const key = a.file + "\u0000" + a.item + "\u0000" + a.sol;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(a);
    });
    const interval = (ci) => (ci ? " [" + fmt(ci[0]) + ", " + fmt(ci[1]) + "]" : "");
    return paged([...groups.values()], PAGE_SIZE.anchors, (page) => page.forEach((sentences) => {
      sentences.sort((x, y) => x.sentence_id - y.sentence_id);
      const head = sentences[0];
      const spans = sentences.map((a) => {
        const v = a.importance === null ? 0 : a.importance, alpha = Math.min(0.75, Math.abs(v) * 1.5).toFixed(3);
        return el("span", { class: "shade anchor-sentence", tabindex: "0", "data-importance": a.importance === null ? "" : a.importance,
          style: "background: rgba(" + (v >= 0 ? "0, 114, 178, " : "213, 94, 0, ") + alpha + ")",
          title: "sentence " + a.sentence_id + (a.category ? " (" + a.category + ")" : "") + ": importance " + signed(a.importance) + interval(a.ci) +
            (a.level ? " at " + fmt(a.level) : "") + (a.resampling !== null ? "; resampling importance " + signed(a.resampling) + interval(a.resampling_ci) : "") }, a.sentence);
      });
      put(el("section", { class: "card anchors-card", tabindex: "0" }, el("h2", { text: query(head.q) }),
        el("div", { class: "meta", text: (head.task || "task ?") + " · item " + head.item + " · solution " + head.sol + " · " + sentences.length +
          " sentences · deeper shade: larger importance (blue raises p(success), orange lowers it)" }),
        el("div", { class: "response" }, spans)));
    }));
  }

  

  // A plugin format's rows: the query, then every field its view_row gave, then where the row comes from.
  function otherList(name) {
    const rows = DATA[name].filter((r) => matches(r, false));
    const hidden = ["q", "file", "line", "_hay"];
    const columns = [...new Set(DATA[name].flatMap((r) => Object.keys(r)))].filter((k) => !hidden.includes(k));
    return paged(rows, PAGE_SIZE.other, (page) => put(el("table", { class: "rows other-table", "data-list": name },
      el("tr", {}, ["query", ...columns, "file"].map((h) => el("th", { text: h }))),
      page.map((r) => el("tr", { class: "row" },
        el("td", { class: "ctx", text: r.q === undefined ? "" : query(r.q) }),
        columns.map((k) => el("td", { text: cell(r[k]) })),
        el("td", { text: file(r.file) + ":" + r.line }))))));
  }

  const RENDER = { overview: overview, trajectories: trajectories, pivots: pivots, pairs: pairs, critical: critical, contrast: contrast, anchors: anchors };
  for (const [name] of OTHER) RENDER[name] = () => otherList(name);
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
