// The supervisor's wallboard: every agent with each channel's state in its colour (grey offline,
// green online, orange paused with the reason, violet wrap-up), its clock, its load against capacity
// and its conversations; every queue with its waiting customers, longest wait, agents available and
// business hours. Live from the supervisors' stream; a supervisor may pause an agent with a reason,
// log it out of a channel, or transfer a conversation, each after a confirmation.
"use strict";

(() => {
  const { api, el, fmtDuration, fmtShort } = chatgate;
  const { t } = i18n;
  const $ = (id) => document.getElementById(id);
  const channelNames = { whatsapp: "WhatsApp", webchat: "WebChat" };
  const channelName = (ch) => channelNames[ch] || ch;
  const stateIcons = { offline: "○", online: "●", paused: "❚❚", wrapup: "◐" };

  const agents = new Map();  // agent id → row (agent.updated), in the snapshot's order
  const queues = new Map();  // queue id → counters (queue.updated), with receivedAt
  const unanswered = new Set(); // conversation ids reported unanswered
  let reasons = [];
  let lastEventId = "";
  let streamGeneration = 0;
  let streamState = "";
  let started = false;

  function notify(text, info) {
    const n = $("notice");
    n.classList.toggle("info", !!info);
    n.textContent = text;
  }
  $("notice").addEventListener("click", () => notify(""));
  function announce(text) { $("announcer").textContent = text; }
  function setStreamState(s) {
    streamState = s;
    $("stream-state").textContent = s ? t("stream." + s) : "";
  }
  function tokenSubject() {
    try {
      const claims = chatgate.token().split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(claims)).sub || "";
    } catch (_) { return ""; }
  }
  function errorWords(err) {
    // The floor's refusals in the wallboard's words; the rest in the shared catalogue's.
    if (err && err.code && i18n.t("wb.err." + err.code) !== "wb.err." + err.code) return t("wb.err." + err.code);
    return i18n.errorText(err);
  }
  function reasonLabel(id, fallback) {
    const r = reasons.find((x) => x.id === id);
    return r ? i18n.label(r) : (fallback || id);
  }
  function agentName(id) {
    const a = agents.get(id);
    return (a && a.name) || id;
  }

  // ---- state of a channel, as the wallboard shows it ----

  function channelState(ch) {
    const until = ch.wrap_up_until ? Date.parse(ch.wrap_up_until) : 0;
    if (ch.state === "wrap_up" || ch.state === "wrapup" || (until && until > Date.now() && ch.state !== "offline")) return "wrapup";
    return ch.state || "offline";
  }

  function clockText(ch, state) {
    const now = Date.now();
    if (state === "wrapup" && ch.wrap_up_until) return t("wb.wrapupLeft", { time: fmtShort(Date.parse(ch.wrap_up_until) - now) });
    if (!ch.since || state === "offline") return "";
    return fmtDuration(now - Date.parse(ch.since));
  }

  function stateWords(ch, state) {
    if (state === "paused") return t("channel.paused") + " — " + reasonLabel(ch.reason, ch.reason_label);
    if (state === "wrapup") return t("wb.wrapup");
    return t("channel." + state);
  }

  // ---- rendering ----

  function renderQueues() {
    const rows = [];
    for (const q of queues.values()) {
      const hours = q.open ? (q.closes_at ? t("wb.openUntil", { time: when(q.closes_at) }) : t("wb.open")) :
        (q.opens_at ? t("wb.closedUntil", { time: when(q.opens_at) }) : t("wb.closed"));
      for (const c of q.channels || []) {
        rows.push(el("tr", { dataset: { queue: q.id, channel: c.channel, open: q.open ? "true" : "false" } },
          el("th", { scope: "row" }, q.name || q.id), el("td", {}, channelName(c.channel)),
          el("td", { "data-col": "hours", class: q.open ? "" : "closed-queue" }, hours),
          el("td", { class: "num", "data-col": "waiting" }, String(c.waiting)),
          el("td", { class: "num", "data-col": "longest", dataset: { oldest: String(c.oldest_wait_seconds || 0), at: String(q.receivedAt) } },
            longest(c.oldest_wait_seconds || 0, q.receivedAt, c.waiting)),
          el("td", { class: "num", "data-col": "available" }, String(c.agents_available)),
          el("td", { class: "num", "data-col": "online" }, String(c.agents_online)),
          el("td", { class: "num", "data-col": "paused" }, String(c.agents_paused))));
      }
    }
    $("queues").querySelector("tbody").replaceChildren(...rows);
  }

  function when(iso) {
    const d = new Date(iso);
    const sameDay = d.toDateString() === new Date().toDateString();
    return sameDay ? d.toLocaleTimeString(i18n.lang(), { hour: "2-digit", minute: "2-digit" }) :
      d.toLocaleString(i18n.lang(), { weekday: "short", hour: "2-digit", minute: "2-digit" });
  }
  function longest(seconds, at, waiting) {
    if (!waiting) return "—";
    return fmtShort(seconds * 1000 + (Date.now() - at));
  }

  function renderAgent(row) {
    const list = $("agents");
    let node = list.querySelector(`li.board-agent[data-agent="${CSS.escape(row.agent)}"]`);
    const fresh = el("li", { class: "board-agent", dataset: { agent: row.agent, status: row.status }, "aria-labelledby": "agent-" + row.agent },
      el("div", { class: "board-agent-head" },
        el("h3", { id: "agent-" + row.agent }, row.name || row.agent),
        el("span", { class: "dot " + row.status, "aria-hidden": "true" }),
        el("span", { class: "muted", "data-status": "" }, t("wb.status." + row.status))),
      el("ul", { class: "board-channels plain" }, ...row.channels.map((ch) => channelRow(row, ch))),
      el("h4", { class: "sr-only", id: "cards-of-" + row.agent }, t("wb.conversationsOf", { name: row.name || row.agent })),
      // The conversations scroll within a box of fixed height (the newest last), so a card arriving
      // grows no tile and moves no tile below it; focusable, as a scrolling box must be for the keyboard.
      el("div", { class: "board-cards-box", tabindex: "0", role: "group", "aria-labelledby": "cards-of-" + row.agent },
        row.cards.length ? el("ul", { class: "board-cards plain" }, ...row.cards.map((c) => cardRow(row, c))) :
          el("p", { class: "muted empty-cards" }, t("wb.noConversations")),
        (row.cards_total || 0) > row.cards.length ?
          el("p", { class: "muted more-cards" }, t("wb.moreConversations", { n: row.cards_total - row.cards.length })) : false));
    if (node) node.replaceWith(fresh); else list.append(fresh);
  }

  function channelRow(row, ch) {
    const state = channelState(ch);
    const load = (row.loads || []).find((l) => l.channel === ch.channel) || { load: 0, capacity: 0 };
    const logged = state !== "offline";
    return el("li", { class: "board-channel", dataset: { channel: ch.channel, state } },
      el("span", { class: "state-icon", "aria-hidden": "true" }, stateIcons[state] || ""),
      el("span", { class: "name" }, channelName(ch.channel)),
      el("span", { class: "words", "data-words": "" }, stateWords(ch, state)),
      el("span", { class: "clock", "data-clock": "", title: t("wb.clock") }, clockText(ch, state)),
      el("span", { class: "load", "data-load": "", title: t("wb.load") }, t("wb.loadValue", { n: load.load, m: load.capacity })),
      el("span", { class: "actions" },
        el("button", { type: "button", "data-pause": ch.channel, disabled: state !== "online" && state !== "wrapup",
          "aria-label": t("wb.pauseLabel", { name: row.name || row.agent, channel: channelName(ch.channel) }),
          onclick: () => openPause(row.agent, ch.channel) }, t("wb.pause")),
        el("button", { type: "button", class: "danger", "data-logout": ch.channel, disabled: !logged,
          "aria-label": t("wb.logoutLabel", { name: row.name || row.agent, channel: channelName(ch.channel) }),
          onclick: () => logout(row.agent, ch.channel) }, t("wb.logout"))));
  }

  function cardRow(row, c) {
    return el("li", { class: "board-card", dataset: { card: c.id, conversation: c.conversation_id, state: c.state,
      unanswered: unanswered.has(c.conversation_id) ? "true" : undefined } },
      el("span", { class: "who" }, c.contact || t("wb.customer")),
      el("span", { class: "muted meta" }, channelName(c.channel) + " · " + t("wb.card." + c.state)),
      el("span", { class: "clock", "data-since": c.accepted_at || c.created_at }, fmtShort(Date.now() - Date.parse(c.accepted_at || c.created_at))),
      unanswered.has(c.conversation_id) ? el("span", { class: "flag" }, t("wb.unanswered")) : null,
      el("button", { type: "button", "data-transfer": c.conversation_id, disabled: c.state !== "accepted",
        "aria-label": t("wb.transferLabel", { who: c.contact || t("wb.customer"), name: row.name || row.agent }),
        onclick: () => openTransfer(row.agent, c) }, t("wb.transfer")));
  }

  function renderAll() {
    renderQueues();
    for (const row of agents.values()) renderAgent(row);
  }

  // tick moves the clocks without rebuilding anything (nothing moves under the pointer).
  function tick() {
    for (const li of document.querySelectorAll("li.board-channel")) {
      const row = agents.get(li.closest("li.board-agent").dataset.agent);
      const ch = row && row.channels.find((c) => c.channel === li.dataset.channel);
      if (!ch) continue;
      const state = channelState(ch);
      if (state !== li.dataset.state) { renderAgent(row); continue; }
      li.querySelector("[data-clock]").textContent = clockText(ch, state);
    }
    for (const s of document.querySelectorAll(".board-card .clock[data-since]")) s.textContent = fmtShort(Date.now() - Date.parse(s.dataset.since));
    for (const td of document.querySelectorAll('#queues td[data-col="longest"]')) {
      const waiting = Number(td.parentElement.querySelector('[data-col="waiting"]').textContent);
      td.textContent = longest(Number(td.dataset.oldest), Number(td.dataset.at), waiting);
    }
  }

  // ---- actions ----

  let pauseTarget = null;
  function openPause(agent, channel) {
    pauseTarget = { agent, channel };
    const d = $("pause-dialog");
    const row = agents.get(agent);
    const ch = row.channels.find((c) => c.channel === channel);
    d.querySelector("#pause-title").textContent = t("wb.pauseTitle", { name: agentName(agent), channel: channelName(channel) });
    const others = (ch.group || []).filter((c) => c !== channel).map(channelName);
    d.querySelector("[data-group]").textContent = others.length ? t("pause.group", { channels: others.join(", ") }) : "";
    d.querySelector("[data-error]").textContent = "";
    const box = d.querySelector("[data-reasons]");
    box.replaceChildren(...reasons.filter((r) => r.id !== "no_answer").map((r, i) => el("div", { class: "reason-option" },
      el("input", { type: "radio", name: "reason", id: "wb-reason-" + r.id, value: r.id, checked: i === 0 }),
      el("label", { for: "wb-reason-" + r.id }, i18n.label(r)))));
    if (!box.children.length) d.querySelector("[data-error]").textContent = t("pause.none");
    d.showModal();
  }
  $("pause-form").querySelector("[data-cancel]").addEventListener("click", () => $("pause-dialog").close());
  $("pause-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const d = $("pause-dialog");
    const reason = d.querySelector("input[name=reason]:checked")?.value;
    if (!reason) { d.querySelector("[data-error]").textContent = t("pause.choose"); return; }
    const { agent, channel } = pauseTarget;
    const button = d.querySelector("[data-submit]");
    button.disabled = true;
    try {
      await api("PUT", "/v1/agents/" + encodeURIComponent(agent) + "/channels/" + encodeURIComponent(channel), { state: "paused", reason });
      d.close();
      announce(t("wb.paused", { name: agentName(agent), channel: channelName(channel), reason: reasonLabel(reason) }));
    } catch (err) {
      d.querySelector("[data-error]").textContent = errorWords(err);
    } finally { button.disabled = false; }
  });

  // confirmAction asks before an action that changes an agent's work; true only on the OK button.
  const confirmAction = (title, text, ok) => chatgate.confirm(title, text, ok, t("cancel"));

  async function logout(agent, channel) {
    const row = agents.get(agent);
    const load = (row.loads || []).find((l) => l.channel === channel);
    const ok = await confirmAction(t("wb.logoutTitle", { name: agentName(agent), channel: channelName(channel) }),
      load && load.load ? t("wb.logoutTextBusy", { n: load.load }) : t("wb.logoutText"), t("wb.logout"));
    if (!ok) return;
    try {
      await api("PUT", "/v1/agents/" + encodeURIComponent(agent) + "/channels/" + encodeURIComponent(channel), { state: "offline" });
      announce(t("wb.loggedOut", { name: agentName(agent), channel: channelName(channel) }));
    } catch (err) { notify(errorWords(err)); }
  }

  let transferTarget = null;
  function openTransfer(agent, card) {
    transferTarget = { agent, card };
    const d = $("transfer-dialog");
    d.querySelector("#transfer-title").textContent = t("wb.transferTitle", { who: card.contact || t("wb.customer"), name: agentName(agent) });
    $("tr-agent").replaceChildren(...[...agents.values()].filter((a) => a.agent !== agent && a.channels.some((c) => c.channel === card.channel))
      .map((a) => el("option", { value: a.agent }, (a.name || a.agent) + " — " + t("wb.status." + a.status))));
    $("tr-queue").replaceChildren(...[...queues.values()].filter((q) => (q.channels || []).some((c) => c.channel === card.channel))
      .map((q) => el("option", { value: q.id }, q.name || q.id)));
    $("tr-note").value = "";
    d.querySelector("[data-error]").textContent = "";
    d.showModal();
  }
  for (const r of document.querySelectorAll("#transfer-form input[name=kind]")) {
    r.addEventListener("change", () => {
      const toAgent = $("tr-kind-agent").checked;
      $("tr-agent").disabled = !toAgent;
      $("tr-queue").disabled = toAgent;
    });
  }
  $("transfer-form").querySelector("[data-cancel]").addEventListener("click", () => $("transfer-dialog").close());
  $("transfer-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const d = $("transfer-dialog");
    const body = { note: $("tr-note").value.trim() || undefined };
    if ($("tr-kind-agent").checked) body.to_agent = $("tr-agent").value; else body.to_queue = $("tr-queue").value;
    if (!body.to_agent && !body.to_queue) { d.querySelector("[data-error]").textContent = t("wb.chooseTarget"); return; }
    const button = d.querySelector("[data-submit]");
    button.disabled = true;
    try {
      await api("POST", "/v1/conversations/" + encodeURIComponent(transferTarget.card.conversation_id) + "/transfer", body);
      d.close();
      announce(t("wb.transferDone", { who: transferTarget.card.contact || t("wb.customer") }));
    } catch (err) {
      d.querySelector("[data-error]").textContent = errorWords(err);
    } finally { button.disabled = false; }
  });

  // ---- data ----

  async function loadBoard() {
    const b = await api("GET", "/v1/supervisor/wallboard");
    const at = Date.now();
    agents.clear();
    for (const a of b.agents) agents.set(a.agent, a);
    queues.clear();
    for (const q of b.queues) queues.set(q.id, Object.assign(q, { receivedAt: at }));
    $("agents").replaceChildren();
    renderAll();
  }

  function handleEvent(ev) {
    switch (ev.type) {
      case "agent.updated":
        if (ev.row) { agents.set(ev.row.agent, ev.row); renderAgent(ev.row); }
        break;
      case "queue.updated":
        if (ev.queue) { queues.set(ev.queue.id, Object.assign(ev.queue, { receivedAt: Date.now() })); renderQueues(); }
        break;
      case "presence.changed": {
        const c = ev.presence;
        const row = c && agents.get(ev.agent);
        const ch = row && row.channels.find((x) => x.channel === c.channel);
        if (ch) {
          Object.assign(ch, { state: c.to, since: c.at, reason: c.reason || "" });
          renderAgent(row);
        }
        break;
      }
      case "conversation.unanswered": {
        const conv = ev.conversation || {};
        if (conv.id) unanswered.add(conv.id);
        const row = agents.get(ev.agent);
        if (row) renderAgent(row);
        notify(t("wb.unansweredNotice", { name: agentName(ev.agent) }), true);
        break;
      }
      case "conversation.transferred":
        announce(t("wb.transferredNotice", { name: agentName(ev.agent) }));
        break;
      case "stream.reset":
        loadBoard().catch((err) => notify(errorWords(err)));
        break;
      case "session.expired":
        streamGeneration++;
        setStreamState("signedOut");
        $("signin").hidden = false;
        notify(t("session.expired"));
        break;
    }
  }

  // The supervisors' stream (chatgate.follow): a stream that starts fresh reads the whole board again.
  function streamLoop() {
    const generation = ++streamGeneration;
    return chatgate.follow({
      path: "/v1/supervisor/events",
      lastEventId: () => lastEventId,
      saveEventId: (id) => { lastEventId = id; $("stream-state").dataset.lastEventId = id; },
      wanted: () => generation === streamGeneration,
      onState: setStreamState,
      onOpen: (fresh) => { if (fresh) loadBoard().catch(() => {}); },
      onEvent: handleEvent,
      onUnauthorized: () => handleEvent({ type: "session.expired" }),
    });
  }

  async function start() {
    $("signin").hidden = true;
    $("board").hidden = false;
    $("sign-out").hidden = false;
    $("supervisor-name").textContent = tokenSubject();
    if (started) { streamLoop(); return; } // signed in again after the token expired: resume
    started = true;
    try {
      reasons = ((await api("GET", "/v1/pause-reasons")).pause_reasons || [])
        .map((r) => ({ id: r.id || r.ID, label: r.label || r.Label, labels: r.labels || {} }));
    } catch (err) { notify(errorWords(err)); }
    setInterval(tick, 1000);
    streamLoop();
  }

  i18n.apply();
  i18n.switcher($("lang"), () => { setStreamState(streamState); renderAll(); });
  $("sign-out").addEventListener("click", () => chatgate.signOut());
  chatgate.signIn({ form: $("signin-form"), picker: $("dev-picker"), notice: $("notice"), role: "supervisor",
    check: () => api("GET", "/v1/supervisor/wallboard"), onReady: start });
})();
