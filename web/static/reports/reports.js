// The Reports page for supervisors: filters, the conversations' summary and listing, presence per
// agent, CSV downloads, and three charts drawn as SVG (no library, nothing to build): conversations
// per hour stacked by outcome, the wait-time distribution, and each agent's day as coloured bars.
"use strict";

(() => {
  const { api, el } = chatgate;
  const { t } = i18n;
  const $ = (id) => document.getElementById(id);
  const NS = "http://www.w3.org/2000/svg";
  const outcomes = ["handled", "abandoned", "closed_max_wait", "closed_out_of_hours", "closed_idle"];
  // Colour and word together: the legend and each shape's title say what a colour means.
  const outcomeColour = { handled: "#15803d", abandoned: "#b91c1c", closed_max_wait: "#c2410c", closed_out_of_hours: "#6b7280", closed_idle: "#6d28d9" };
  const pauseShades = ["#c2410c", "#f97316", "#9a3412", "#fb923c", "#7c2d12"];
  const stateColour = { online: "#15803d", wrap_up: "#6d28d9", offline: "#d1d5db" };
  const pageSize = 50;
  let offset = 0;
  let last = null; // the query of the reports shown
  let reasons = [];
  // People read names, not ids: the agents', queues' and dispositions' from the API, the channels' here.
  const channelNames = { whatsapp: "WhatsApp", webchat: "WebChat" };
  const names = { agent: new Map(), queue: new Map(), disposition: new Map() };
  const nameOf = (kind, id) => {
    const n = kind === "channel" ? channelNames[id] : names[kind] && names[kind].get(id);
    return (n && typeof n === "object" ? i18n.label(n) : n) || id; // a disposition has a label per language
  };

  function notify(text) { $("notice").textContent = text; }

  function svg(tag, attrs, ...children) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
    for (const c of children) if (c) n.append(typeof c === "string" ? document.createTextNode(c) : c);
    return n;
  }
  const titled = (node, text) => { node.append(svg("title", {}, text)); return node; };
  const swatch = (colour) => svg("svg", { class: "swatch", viewBox: "0 0 10 10", width: 12, height: 12, "aria-hidden": "true" },
    svg("rect", { width: 10, height: 10, rx: 2, fill: colour }));
  const legend = (entries) => el("ul", { class: "legend" }, ...entries.map(([colour, label]) => el("li", {}, swatch(colour), label)));

  const pad = (n) => String(n).padStart(2, "0");
  const isoDate = (d) => d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
  const dur = (s) => (s === null || s === undefined) ? "—" : chatgate.fmtShort(s * 1000);
  // Times are shown in the reports' time zone (the header's), not the browser's.
  let zone = undefined;
  const hhmm = (iso) => iso ? new Date(iso).toLocaleTimeString(i18n.lang(), { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: zone }) : "—";
  const when = (iso) => iso ? new Date(iso).toLocaleString(i18n.lang(), { dateStyle: "short", timeStyle: "short", timeZone: zone }) : "—";
  const hourOf = (ms) => new Date(ms).toLocaleTimeString("en-GB", { hour: "2-digit", hourCycle: "h23", timeZone: zone }).slice(0, 2);
  const dayOf = (ms) => new Date(ms).toLocaleDateString("en-CA", { timeZone: zone }).slice(5);
  const reasonLabel = (id) => { const r = reasons.find((x) => x.id === id); return r ? i18n.label(r) : id; };
  const num = (v, cls) => el("td", { class: "num " + (cls || "") }, String(v));

  function query(extra) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(Object.assign({}, last, extra || {}))) if (v !== "" && v !== undefined) p.set(k, v);
    return p.toString();
  }

  // ---- tables -----------------------------------------------------------------------------------
  function renderSummary(s) {
    const head = ["rep.col.group", "rep.col.total", ...outcomes.map((o) => "rep.outcome." + o), "rep.col.waitAvg", "rep.col.waitP90",
      "rep.col.handleAvg", "rep.col.answerAvg", "rep.col.sl"];
    $("summary").tHead.replaceChildren(el("tr", {}, ...head.map((k) => el("th", { scope: "col" }, t(k)))));
    const row = (g, total) => el("tr", { dataset: { key: g.key } },
      el("th", { scope: "row" }, total ? t("rep.total") : groupLabel(g.key)), num(g.total),
      ...outcomes.map((o) => num(g.outcomes[o] + " (" + g.percent[o] + "%)")),
      num(dur(g.wait.avg)), num(dur(g.wait.p90)), num(g.handle.count ? dur(g.handle.avg) : "—"),
      num(g.first_response.count ? dur(g.first_response.avg) : "—"), num(g.service_level + "%"));
    $("summary").tBodies[0].replaceChildren(...s.groups.map((g) => row(g, false)));
    $("summary").tFoot.replaceChildren(row(s.total, true));
  }

  function groupLabel(key) {
    if (key === "") return "—";
    if (last.group_by === "outcome") return t("rep.outcome." + key);
    if (last.group_by === "hour") return key + " h";
    return nameOf(last.group_by, key);
  }

  function renderPresence(p) {
    const head = ["rep.col.agent", "rep.col.logged", "rep.col.online", "rep.col.paused", "rep.col.pauses", "rep.col.wrapUp",
      "rep.col.firstLogin", "rep.col.lastLogout"];
    $("presence").tHead.replaceChildren(el("tr", {}, ...head.map((k) => el("th", { scope: "col" }, t(k))),
      ...reasons.map((r) => el("th", { scope: "col" }, t("rep.col.pausedFor", { reason: i18n.label(r) })))));
    $("presence").tBodies[0].replaceChildren(...p.groups.map((g) => el("tr", { dataset: { key: g.key } },
      el("th", { scope: "row" }, nameOf("agent", g.key)), num(dur(g.logged_seconds)), num(dur(g.online_seconds)), num(dur(g.paused_seconds)),
      num(g.pauses), num(dur(g.wrap_up_seconds)), el("td", {}, when(g.first_login)), el("td", {}, when(g.last_logout)),
      ...reasons.map((r) => num(dur(g.paused_by_reason[r.id] || 0))))));
  }

  function renderListing(c) {
    const head = ["rep.col.created", "rep.col.channel", "rep.col.queue", "rep.col.agents", "rep.col.contact", "rep.col.wait",
      "rep.col.handle", "rep.col.answer", "rep.col.offers", "rep.col.declines", "rep.col.timeouts", "rep.col.transfers",
      "rep.col.disposition", "rep.col.outcome"];
    $("listing").tHead.replaceChildren(el("tr", {}, ...head.map((k) => el("th", { scope: "col" }, t(k)))));
    $("listing").tBodies[0].replaceChildren(...c.rows.map((r) => el("tr", { dataset: { id: r.id } },
      el("td", {}, when(r.created_at)), el("td", {}, nameOf("channel", r.channel)), el("td", {}, nameOf("queue", r.queue)),
      el("td", {}, r.agents.map((a) => nameOf("agent", a)).join(", ") || "—"),
      el("td", {}, r.contact), num(dur(r.wait_seconds)), num(dur(r.handle_seconds)), num(dur(r.first_response_seconds)),
      num(r.offers), num(r.declines), num(r.timeouts), num(r.transfers), el("td", {}, r.disposition ? nameOf("disposition", r.disposition) : "—"),
      el("td", { "data-outcome": r.outcome }, t("rep.outcome." + r.outcome)))));
    const to = Math.min(c.offset + c.rows.length, c.total);
    $("page").textContent = c.total ? t("rep.page", { from: c.offset + 1, to, total: c.total }) : t("rep.none");
    $("prev").disabled = c.offset === 0;
    $("next").disabled = to >= c.total;
  }

  // ---- charts -----------------------------------------------------------------------------------
  function chart(id, node, caption, legendNode) {
    const body = $(id).querySelector(".chart-body");
    node.setAttribute("role", "img");
    node.setAttribute("aria-label", caption);
    body.replaceChildren(node, legendNode || "");
  }

  // niceMax is the axis' top: five steps of 1, 2 or 5 times a power of ten, so every tick is whole.
  function niceMax(v) {
    const raw = Math.max(1, v / 5);
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
    return step * 5;
  }

  function axisY(g, max, x0, y0, h, w) {
    for (let i = 0; i <= 5; i++) {
      const v = Math.round(max * i / 5);
      const y = y0 - h * i / 5;
      g.append(svg("line", { x1: x0, x2: x0 + w, y1: y, y2: y, stroke: "#e2e8f0" }),
        svg("text", { x: x0 - 6, y: y + 4, "text-anchor": "end" }, String(v)));
    }
  }

  function drawHours(byHour) {
    const W = 560, H = 240, x0 = 36, y0 = 210, w = W - x0 - 8, h = 190, bw = w / 24;
    const counts = {};
    for (const g of byHour.groups) counts[g.key] = g;
    const max = niceMax(Math.max(0, ...byHour.groups.map((g) => g.total)));
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H });
    const grid = svg("g", {});
    axisY(grid, max, x0, y0, h, w);
    root.append(grid);
    let peak = null;
    for (let hr = 0; hr < 24; hr++) {
      const g = counts[pad(hr)];
      const x = x0 + hr * bw;
      if (hr % 3 === 0) root.append(svg("text", { x: x + bw / 2, y: y0 + 16, "text-anchor": "middle" }, pad(hr) + "h"));
      if (!g) continue;
      if (!peak || g.total > peak.total) peak = g;
      let y = y0;
      const bar = svg("g", { "data-hour": pad(hr) });
      for (const o of outcomes) {
        const n = g.outcomes[o];
        if (!n) continue;
        const bh = h * n / max;
        y -= bh;
        bar.append(titled(svg("rect", { x: x + 2, y, width: bw - 4, height: bh, fill: outcomeColour[o], "data-outcome": o }),
          t("rep.hourTip", { hour: pad(hr), n, outcome: t("rep.outcome." + o) })));
      }
      root.append(bar);
    }
    root.append(svg("line", { x1: x0, x2: x0 + w, y1: y0, y2: y0, stroke: "#475569" }));
    const total = byHour.total.total;
    chart("chart-hours", root, t("rep.hoursAlt", { n: total, hour: peak ? peak.key : "—" }),
      legend(outcomes.map((o) => [outcomeColour[o], t("rep.outcome." + o)])));
  }

  function drawWait(s) {
    const W = 560, H = 240, x0 = 36, y0 = 200, w = W - x0 - 8, h = 180;
    const b = s.wait_buckets, counts = s.wait_histogram, bw = w / counts.length;
    const max = niceMax(Math.max(0, ...counts));
    const label = (i) => i === b.length - 1 ? "≥ " + dur(b[i]) : dur(b[i]) + "–" + dur(b[i + 1]);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H });
    const grid = svg("g", {});
    axisY(grid, max, x0, y0, h, w);
    root.append(grid);
    counts.forEach((n, i) => {
      const x = x0 + i * bw, bh = h * n / max;
      root.append(titled(svg("rect", { x: x + 4, y: y0 - bh, width: bw - 8, height: bh, fill: "#1d4ed8", "data-bucket": i }),
        t("rep.waitTip", { n, range: label(i) })));
      root.append(svg("text", { x: x + bw / 2, y: y0 + 16, "text-anchor": "middle" }, label(i)));
    });
    root.append(svg("line", { x1: x0, x2: x0 + w, y1: y0, y2: y0, stroke: "#475569" }));
    chart("chart-wait", root, t("rep.waitAlt", { n: s.total.total, p50: dur(s.total.wait.p50), p90: dur(s.total.wait.p90) }));
  }

  function stateText(seg) {
    if (seg.state === "paused") return t("rep.state.paused") + " — " + reasonLabel(seg.reason);
    return t("rep.state." + seg.state);
  }

  function drawTimeline(tl) {
    const from = new Date(tl.header.from).getTime(), to = new Date(tl.header.to).getTime();
    const rowH = 26, x0 = 110, W = 900, w = W - x0 - 10, top = 20;
    const H = top + tl.agents.length * rowH + 10;
    const x = (ms) => x0 + w * (Math.min(Math.max(ms, from), to) - from) / (to - from);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H });
    const span = to - from, step = span <= 86400000 * 1.01 ? 3 * 3600000 : 86400000;
    for (let ms = from; ms <= to; ms += step) {
      root.append(svg("line", { x1: x(ms), x2: x(ms), y1: top - 4, y2: H - 8, stroke: "#e2e8f0" }),
        svg("text", { x: x(ms), y: top - 8, "text-anchor": "middle" }, step < 86400000 ? hourOf(ms) + "h" : dayOf(ms)));
    }
    const shade = new Map();
    const colour = (seg) => {
      if (seg.state !== "paused") return stateColour[seg.state] || stateColour.offline;
      if (!shade.has(seg.reason)) shade.set(seg.reason, pauseShades[shade.size % pauseShades.length]);
      return shade.get(seg.reason);
    };
    tl.agents.forEach((a, i) => {
      const y = top + i * rowH;
      const row = svg("g", { "data-agent": a.agent });
      row.append(svg("text", { x: x0 - 8, y: y + rowH / 2 + 4, "text-anchor": "end" }, a.name || a.agent));
      for (const seg of a.segments) {
        const s = new Date(seg.start).getTime(), e = new Date(seg.end).getTime();
        row.append(titled(svg("rect", { x: x(s), y: y + 4, width: Math.max(1, x(e) - x(s)), height: rowH - 8, fill: colour(seg),
          "data-state": seg.state }), (a.name || a.agent) + ": " + stateText(seg) + " " + hhmm(seg.start) + "–" + hhmm(seg.end)));
      }
      root.append(row);
    });
    const entries = [[stateColour.online, t("rep.state.online")], ...[...shade.entries()].map(([r, c]) => [c, t("rep.state.paused") + " — " + reasonLabel(r)]),
      [stateColour.wrap_up, t("rep.state.wrap_up")], [stateColour.offline, t("rep.state.offline")]];
    chart("chart-timeline", root, t("rep.timelineAlt", { n: tl.agents.length }), legend(entries));
  }

  // ---- loading ----------------------------------------------------------------------------------
  async function listing() {
    const c = await api("GET", "/v1/reports/conversations?" + query({ limit: pageSize, offset, group_by: "" }));
    renderListing(c);
  }

  async function load() {
    const f = $("filters").elements;
    last = { from: f.from.value, to: f.to.value, agent: f.agent.value, queue: f.queue.value, channel: f.channel.value, group_by: f.group_by.value };
    offset = 0;
    try {
      const [s, hours, p, tl] = await Promise.all([
        api("GET", "/v1/reports/summary?" + query()),
        api("GET", "/v1/reports/summary?" + query({ group_by: "hour" })),
        api("GET", "/v1/reports/presence?" + query({ group_by: "agent" })),
        api("GET", "/v1/reports/presence/timeline?" + query({ group_by: "" })),
      ]);
      zone = s.header.timezone;
      renderSummary(s);
      drawHours(hours);
      drawWait(s);
      renderPresence(p);
      drawTimeline(tl);
      await listing();
      $("period").textContent = t("rep.period", { from: when(s.header.from), to: when(s.header.to), tz: s.header.timezone });
      $("updated").textContent = t("rep.generated", { time: when(s.header.generated_at) });
      notify("");
    } catch (err) {
      notify(i18n.errorText(err));
    }
  }

  async function download(report) {
    try {
      const extra = report === "summary" ? {} : { group_by: report === "presence" ? "agent" : "" };
      const res = await fetch("/v1/reports/" + report + "?" + query(Object.assign(extra, { format: "csv" })),
        { headers: { Authorization: "Bearer " + chatgate.token() }, cache: "no-store" });
      if (!res.ok) throw new chatgate.ApiError(res.status, await res.json().catch(() => null));
      const name = (/filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "") || [])[1] || "report.csv";
      const a = el("a", { href: URL.createObjectURL(await res.blob()), download: name });
      document.body.append(a);
      a.click();
      a.remove();
    } catch (err) { notify(i18n.errorText(err)); }
  }

  function option(value, text) { return el("option", { value }, text); }
  // An option in the page's words carries its key, so a switch of language (i18n.apply) rewords it.
  function worded(value, key) { return el("option", { value, "data-i18n": key }, t(key)); }

  async function start() {
    const [agents, queues, pr] = await Promise.all([api("GET", "/v1/agents"), api("GET", "/v1/queues"), api("GET", "/v1/pause-reasons")]);
    reasons = pr.pause_reasons;
    for (const a of agents.agents) names.agent.set(a.agent, a.name || a.agent);
    for (const q of queues.queues) {
      names.queue.set(q.id, q.name || q.id);
      for (const d of q.dispositions || []) if (!names.disposition.has(d.id)) names.disposition.set(d.id, d);
    }
    const f = $("filters").elements;
    f.agent.replaceChildren(worded("", "rep.all"), ...agents.agents.map((a) => option(a.agent, a.name || a.agent)));
    f.queue.replaceChildren(worded("", "rep.all"), ...queues.queues.map((q) => option(q.id, q.name || q.id)));
    const channels = [...new Set(queues.queues.flatMap((q) => q.channels.map((c) => c.channel)))].sort();
    f.channel.replaceChildren(worded("", "rep.all"), ...channels.map((c) => option(c, nameOf("channel", c))));
    f.group_by.replaceChildren(...["queue", "agent", "channel", "day", "hour", "disposition", "outcome"].map((g) => worded(g, "rep.group." + g)));
    const today = isoDate(new Date());
    const params = new URLSearchParams(location.search);
    f.from.value = params.get("from") || today;
    f.to.value = params.get("to") || params.get("from") || today;
    await load();
  }

  $("filters").addEventListener("submit", (e) => { e.preventDefault(); load(); });
  $("prev").addEventListener("click", () => { offset = Math.max(0, offset - pageSize); listing().catch((err) => notify(i18n.errorText(err))); });
  $("next").addEventListener("click", () => { offset += pageSize; listing().catch((err) => notify(i18n.errorText(err))); });
  for (const b of document.querySelectorAll("[data-csv]")) b.addEventListener("click", () => download(b.dataset.csv));
  i18n.apply();
  i18n.switcher($("lang"), () => { if (last) load(); });
  $("sign-out").addEventListener("click", chatgate.signOut);
  chatgate.signIn({ form: $("signin-form"), picker: $("dev-picker"), notice: $("notice"), role: "supervisor",
    check: () => api("GET", "/v1/agents"),
    onReady: () => {
      $("signin").hidden = true;
      $("dashboard").hidden = false;
      $("sign-out").hidden = false;
      start().catch((err) => notify(i18n.errorText(err)));
    } });
})();
