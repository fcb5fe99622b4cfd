// The agent desk: the chat-channels indicator and panel (log in, pause with a reason, resume, each
// channel's clock), the conversation list (offers first, with their countdown; then the agent's
// conversations with unread counts, last message and wait), the thread with its composer, and new
// WhatsApp conversations — all through the public /v1 API and the agent's event stream.
"use strict";

(() => {
  const { api, el, fmtDuration, fmtShort } = chatgate;
  const { t } = i18n;
  const $ = (id) => document.getElementById(id);
  const channelNames = { whatsapp: "WhatsApp", webchat: "WebChat" };
  const channelName = (ch) => channelNames[ch] || ch;
  const stateIcons = { offline: "○", online: "●", paused: "❚❚", wrapup: "◐" };

  let presence = null;       // the last GET /v1/agents/me/presence
  let queues = new Map();    // queue id → {dispositions, require_disposition} (GET /v1/queues)
  let reasons = [];          // the pause catalogue: {id, label, labels}
  const cards = new Map();   // card id → entry {card, node, messages: Map, loaded, unread, seen}
  let selected = "";         // the card id whose thread is open
  let lastEventId = "";
  let started = false;       // start() ran: signing in again resumes instead
  let expired = false;       // the token expired: waiting for the agent to sign in again
  let streamGeneration = 0;  // a stream loop from before a new sign-in stops itself
  let streamState = "";      // "live", "reconnecting", "signedOut": said in the current language

  // notify shows a sentence over the page's corner; a click dismisses it, and an informative one
  // leaves by itself after a while.
  let noticeTimer = 0;
  function notify(text, info) {
    const n = $("notice");
    n.classList.toggle("info", !!info);
    n.textContent = text;
    clearTimeout(noticeTimer);
    if (text && info) noticeTimer = setTimeout(() => { if (n.textContent === text) n.textContent = ""; }, 12000);
  }
  $("notice").addEventListener("click", () => notify(""));
  function announce(text) { $("announcer").textContent = text; }
  function fail(err) {
    if (err.status === 401 && err.code === "invalid_token") { sessionExpired(); return; }
    notify(i18n.errorText(err));
  }

  // ---- the agent's place, kept for this tab ----
  // Signing in again after the token expired (or reloading) goes on from here: the stream's last
  // event id, the conversation being answered and its unsent draft. Only for the same agent.
  const placeKey = "chatgate.console.place";
  function readPlace() {
    try { return JSON.parse(sessionStorage.getItem(placeKey)) || {}; } catch (_) { return {}; }
  }
  function savePlace(change) {
    sessionStorage.setItem(placeKey, JSON.stringify(Object.assign(readPlace(), change)));
  }
  function tokenSubject() {
    try {
      const claims = chatgate.token().split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(claims)).sub || "";
    } catch (_) { return ""; }
  }

  function setStreamState(s) {
    streamState = s;
    $("stream-state").textContent = s ? t("stream." + s) : "";
  }

  // sessionExpired stops the stream and shows the sign-in again, leaving the page as it is.
  function sessionExpired() {
    if (expired) return;
    expired = true;
    streamGeneration++;
    setStreamState("signedOut");
    $("signin").hidden = false;
    notify(t("session.expired"));
  }

  // ---- confirmation ----

  // confirmAction asks before an action that drops customers; it resolves true only on the OK button.
  const confirmAction = chatgate.confirm;

  // ---- presence: the indicator and the channel panel ----

  function reasonLabel(id) {
    const r = reasons.find((x) => x.id === id);
    return r ? i18n.label(r) : id;
  }

  function renderIndicator() {
    const ind = $("indicator");
    if (!presence) return;
    const p = presence;
    ind.className = "indicator " + p.status;
    ind.dataset.status = p.status;
    ind.querySelector("[data-icon]").textContent = stateIcons[p.status] || "";
    ind.querySelector("[data-label]").textContent = p.status === "offline" ? t("indicator.offline") :
      t(p.status === "paused" ? "indicator.paused" : "indicator.online", { n: p.logged, m: p.enabled });
    ind.setAttribute("aria-label", t("indicator.label") + ": " + ind.querySelector("[data-label]").textContent);
  }

  // channelRow builds a channel's row once; renderPresence updates it in place, so focus stays on
  // the control and nothing moves under the pointer.
  function channelRow(channel) {
    let li = $("channels").querySelector(`li[data-channel="${CSS.escape(channel)}"]`);
    if (li) return li;
    const toggle = el("button", { type: "button", class: "switch", role: "switch", "data-toggle": channel, "aria-checked": "false" },
      el("span", { class: "track", "aria-hidden": "true" }, el("span", { class: "knob" })),
      el("span", { class: "switch-text", "data-switch-text": "" }));
    toggle.addEventListener("click", () => toggleChannel(channel, toggle));
    const action = el("button", { type: "button", "data-channel-action": channel });
    action.addEventListener("click", () => {
      const ch = presence.channels.find((c) => c.channel === channel);
      if (ch.state === "online") openPause(ch);
      else if (ch.state === "paused") setState(channel, "online", "", action);
    });
    li = el("li", { class: "channel", dataset: { channel } },
      el("div", { class: "head" },
        el("span", { class: "state-icon", "aria-hidden": "true", "data-state-icon": "" }),
        el("span", { class: "name" }, channelName(channel)),
        toggle),
      el("div", { class: "clock", "data-clock": "" },
        el("span", { "data-state-text": "" }), " ", el("span", { "data-since": "" })),
      el("div", { class: "action" }, action));
    $("channels").append(li);
    return li;
  }

  function renderPresence(p) {
    // A change of a channel's state is said once through the status region, whoever made it (a
    // supervisor's pause or logout shows only as a colour and words the agent may not be looking at).
    const before = presence ? new Map(presence.channels.map((c) => [c.channel, c.state + "/" + (c.reason || "")])) : null;
    const changed = before ? p.channels.filter((c) => before.has(c.channel) && before.get(c.channel) !== c.state + "/" + (c.reason || "")) : [];
    if (changed.length) {
      announce(changed.map((c) => t("channel.announce", { channel: channelName(c.channel),
        state: c.state === "paused" && c.reason ? t("channel.paused") + " — " + reasonLabel(c.reason) : t("channel." + c.state) })).join("; "));
    }
    presence = p;
    renderIndicator();
    $("indicator").hidden = false;
    $("agent-name").textContent = p.name || p.agent;
    $("new-conversation").hidden = !p.can_start_conversation;
    if (!p.can_start_conversation && $("conversation-dialog").open) $("conversation-dialog").close();
    for (const ch of p.channels) {
      const li = channelRow(ch.channel);
      const logged = ch.state !== "offline";
      li.dataset.state = ch.state;
      li.querySelector("[data-state-icon]").textContent = stateIcons[ch.state] || "";
      const toggle = li.querySelector("[data-toggle]");
      toggle.setAttribute("aria-checked", String(logged));
      toggle.setAttribute("aria-label", t("channel.toggle", { channel: channelName(ch.channel) }));
      toggle.querySelector("[data-switch-text]").textContent = t("channel.loggedIn");
      li.querySelector("[data-state-text]").textContent = t("channel." + ch.state);
      li.querySelector("[data-state-text]").dataset.reason = ch.state === "paused" ? ch.reason : "";
      const since = li.querySelector("[data-since]");
      since.dataset.since = logged && ch.since ? ch.since : "";
      since.dataset.state = ch.state;
      since.dataset.reason = ch.reason || "";
      const action = li.querySelector("[data-channel-action]");
      action.disabled = !logged;
      action.textContent = ch.state === "paused" ? t("channel.resume") : t("channel.pause");
      action.dataset.does = ch.state === "paused" ? "resume" : "pause";
      action.setAttribute("aria-label", action.textContent + " " + channelName(ch.channel));
    }
    renderWrapUps();
    tick();
  }

  // ---- wrap-up: after a close, the channel takes no new offer for a while; the agent may end it ----

  // renderWrapUps keeps one bar per channel wrapping up, updated in place (its button stays put).
  function renderWrapUps() {
    const box = $("wrapups");
    const now = Date.now();
    const want = new Set();
    for (const ch of (presence && presence.channels) || []) {
      if (!ch.wrap_up_until || Date.parse(ch.wrap_up_until) <= now) continue;
      want.add(ch.channel);
      let li = box.querySelector(`li[data-channel="${CSS.escape(ch.channel)}"]`);
      if (!li) {
        const end = el("button", { type: "button", "data-end-wrapup": ch.channel }, t("wrapup.end"));
        end.addEventListener("click", () => endWrapUp(ch.channel, end));
        li = el("li", { dataset: { channel: ch.channel } }, el("span", { role: "timer", "data-wrapup-text": "" }), end);
        box.append(li);
      }
      li.dataset.until = ch.wrap_up_until;
      const end = li.querySelector("[data-end-wrapup]");
      end.textContent = t("wrapup.end");
      end.setAttribute("aria-label", t("wrapup.endLabel", { channel: channelName(ch.channel) }));
    }
    for (const li of [...box.children]) if (!want.has(li.dataset.channel)) li.remove();
    tickWrapUps();
  }

  function tickWrapUps() {
    for (const li of $("wrapups").children) {
      const left = Date.parse(li.dataset.until) - Date.now();
      if (left <= 0) { li.remove(); loadPresence().catch(() => {}); continue; }
      li.querySelector("[data-wrapup-text]").textContent = t("wrapup.text", { channel: channelName(li.dataset.channel), time: fmtShort(left) });
    }
  }

  async function endWrapUp(channel, button) {
    button.disabled = true;
    try {
      await api("POST", "/v1/agents/me/channels/" + encodeURIComponent(channel) + "/wrap-up/end");
      announce(t("wrapup.ended"));
    } catch (err) {
      if (err.code !== "no_wrap_up") fail(err);
    } finally {
      button.disabled = false;
    }
    await loadPresence().catch(() => {});
  }

  function channelClock(node) {
    const since = node.dataset.since;
    if (!since) return t("channel.offlineHint");
    const time = fmtDuration(Date.now() - Date.parse(since));
    return node.dataset.state === "paused" ? t("channel.pausedFor", { time, reason: reasonLabel(node.dataset.reason) }) :
      t("channel.onlineFor", { time });
  }

  async function loadPresence() {
    renderPresence(await api("GET", "/v1/agents/me/presence"));
  }

  // toggleChannel logs in or out; logging out with open conversations on the channel asks first,
  // saying that they go back to the queue.
  async function toggleChannel(channel, toggle) {
    const ch = presence.channels.find((c) => c.channel === channel);
    if (ch.state === "offline") { await setState(channel, "online", "", toggle); return; }
    const open = [...cards.values()].filter((e) => e.card.channel === channel && e.card.state === "accepted").length;
    if (open > 0) {
      const ok = await confirmAction(t("confirm.logout.title", { channel: channelName(channel) }),
        t(open === 1 ? "confirm.logout.text.one" : "confirm.logout.text.other", { n: open, channel: channelName(channel) }), t("confirm.logout.ok"), t("confirm.logout.cancel"));
      if (!ok) { toggle.focus(); return; }
    }
    if (await setState(channel, "offline", "", toggle)) loadCards().catch(() => {});
    toggle.focus();
  }

  async function setState(channel, state, reason, control) {
    if (control) control.setAttribute("aria-busy", "true");
    try {
      const body = { state };
      if (reason) body.reason = reason;
      const res = await api("PUT", "/v1/agents/me/channels/" + encodeURIComponent(channel), body);
      notify("");
      renderPresence(res.presence);
      return true;
    } catch (err) {
      fail(err);
      await loadPresence().catch(() => {});
      return false;
    } finally {
      if (control) control.removeAttribute("aria-busy");
    }
  }

  function openPanel(open) {
    $("channel-panel").hidden = !open;
    $("indicator").setAttribute("aria-expanded", String(open));
  }
  $("indicator").addEventListener("click", () => openPanel($("channel-panel").hidden));
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("channel-panel").hidden && !document.querySelector("dialog[open]")) {
      openPanel(false);
      $("indicator").focus();
    }
  });

  // ---- pause pop-up ----

  let pausing = null;
  function openPause(ch) {
    pausing = ch.channel;
    const d = $("pause-dialog");
    $("pause-title").textContent = t("pause.title", { channel: channelName(ch.channel) });
    const others = (ch.group || []).filter((c) => c !== ch.channel).map(channelName);
    d.querySelector("[data-group]").textContent = others.length ? t("pause.group", { channels: others.join(", ") }) : "";
    const box = d.querySelector("[data-reasons]");
    box.replaceChildren();
    // no_answer is routing's own reason: an agent does not choose it.
    for (const r of reasons.filter((x) => x.id !== "no_answer")) {
      const id = "reason-" + r.id;
      box.append(el("div", { class: "reason-option" }, el("input", { type: "radio", name: "reason", id, value: r.id }),
        el("label", { for: id }, i18n.label(r))));
    }
    d.querySelector("[data-error]").textContent = reasons.length ? "" : t("pause.none");
    d.querySelector("[data-submit]").disabled = true;
    d.showModal();
  }
  $("pause-form").addEventListener("change", () => {
    $("pause-form").querySelector("[data-submit]").disabled = !$("pause-form").querySelector("input[name=reason]:checked");
  });
  $("pause-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const chosen = $("pause-form").querySelector("input[name=reason]:checked");
    if (!chosen) {
      $("pause-form").querySelector("[data-error]").textContent = t("pause.choose");
      return;
    }
    if (await setState(pausing, "paused", chosen.value, e.submitter)) $("pause-dialog").close();
  });
  $("pause-form").querySelector("[data-cancel]").addEventListener("click", () => $("pause-dialog").close());

  // ---- the conversation list ----

  // byName: who transferred, by the name people know (the gateway's by_name), its id only without one.
  const byName = (tr) => (tr && (tr.by_name || tr.by)) || "";

  function contactName(card) {
    const c = card.contact || {};
    return c.name || (c.phone && "+" + c.phone.replace(/^\+/, "")) || (c.username && "@" + c.username) || c.user_id || t("card.customer");
  }

  // Messages are kept in the order they arrived (the server lists them in order): WhatsApp's times
  // are whole seconds, so a customer's message may carry an earlier time than the reply before it.

  // waitingSince is when the customer started waiting for an answer: their first message after the
  // agent's last one; before the messages are read, when the customer last wrote (from the 24-hour
  // window the card carries) or when the card was made. Zero when answered.
  function waitingSince(entry) {
    let since = 0;
    for (const m of entry.messages.values()) {
      if (m.direction === "out") since = 0;
      else if (m.kind !== "system" && !since) since = Date.parse(m.at) || Date.now();
    }
    if (!entry.messages.size) {
      if (entry.card.window_expires_at) since = Date.parse(entry.card.window_expires_at) - 24 * 3600 * 1000;
      else if (entry.card.state === "offered") since = Date.parse(entry.card.created_at) || 0;
    }
    return since;
  }
  function lastMessage(entry) {
    let last = null;
    for (const m of entry.messages.values()) last = m;
    return last ? describe(last) : entry.card.preview || "";
  }

  function ensureEntry(card) {
    let entry = cards.get(card.id);
    if (!entry) {
      entry = { card, node: null, messages: new Map(), loaded: false, unread: 0 };
      cards.set(card.id, entry);
    }
    // Events may carry less than the list does (no contact): keep what is known.
    entry.card = Object.assign({}, entry.card, card, { contact: card.contact || entry.card.contact });
    return entry;
  }

  function renderCard(card) {
    const entry = ensureEntry(card);
    card = entry.card;
    const list = card.state === "offered" ? $("offers") : $("mine");
    if (!entry.node) {
      entry.node = el("li", { class: "item", dataset: { cardId: card.id } });
    }
    const node = entry.node;
    // The item is rebuilt; a keyboard user's focus inside it comes back to the same control.
    const focused = node.contains(document.activeElement) ? (document.activeElement.dataset.action || "open") : "";
    if (node.dataset.state === card.state && node.parentNode === list && node.firstChild) {
      // Same state: only its words change. The buttons stay the same nodes, so a click that is under
      // way (pressed on one render, released on the next) is never lost.
      updateCardText(node, entry);
      refreshCounts();
      tick();
      if (selected === card.id) renderThread();
      return;
    }
    node.dataset.state = card.state;
    node.dataset.conversationId = card.conversation_id;
    node.dataset.channel = card.channel;
    const open = el("button", { type: "button", class: "open", "data-open": "",
      onclick: () => select(card.id), onkeydown: listKeys },
    el("span", { class: "who" }, contactName(card), " ", el("span", { class: "badge" }, channelName(card.channel))),
    card.transfer && card.transfer.by !== (presence && presence.agent) ?
      el("span", { class: "transfer", "data-transfer": "" }, t("transfer.badge", { by: byName(card.transfer) })) : null,
    el("span", { class: "last", "data-last": "" }, lastMessage(entry)),
    el("span", { class: "meta" },
      el("span", { class: "unread", "data-unread": "", "aria-label": entry.unread ? t("card.unread", { n: entry.unread }) : null },
        entry.unread ? String(entry.unread) : ""),
      el("span", { "data-waited": "" })));
    const parts = [open];
    if (card.state === "offered") {
      parts.push(el("div", { class: "offer-row" },
        el("span", { class: "countdown", role: "timer", "data-countdown": card.expires_at || "" }),
        el("button", { type: "button", class: "primary", "data-action": "accept", "aria-keyshortcuts": "Alt+A",
          "aria-label": t("card.accept") + " — " + contactName(card), onclick: (e) => cardAction(card.id, "accept", e.currentTarget) }, t("card.accept")),
        el("button", { type: "button", "data-action": "decline", "aria-label": t("card.decline") + " — " + contactName(card),
          onclick: (e) => cardAction(card.id, "decline", e.currentTarget) }, t("card.decline"))));
    } else if (card.state === "closed") {
      parts.push(el("div", { class: "closed-row" }, el("span", { "data-card-state": "" }, "✕ " + t("card.closed")),
        el("button", { type: "button", "data-action": "dismiss", onclick: () => dismiss(card.id) }, t("card.dismiss"))));
    }
    node.replaceChildren(...parts);
    node.toggleAttribute("aria-current", false);
    if (selected === card.id) node.setAttribute("aria-current", "true");
    if (node.parentNode !== list) {
      if (card.state === "offered") list.append(node); else list.prepend(node);
    }
    if (focused) (node.querySelector(`[data-action="${focused}"]`) || open).focus();
    refreshCounts();
    tick();
    if (selected === card.id) renderThread();
  }

  // updateCardText refreshes what an item says without rebuilding it.
  function updateCardText(node, entry) {
    const card = entry.card;
    node.querySelector(".who").firstChild.textContent = contactName(card);
    node.querySelector("[data-last]").textContent = lastMessage(entry);
    const unread = node.querySelector("[data-unread]");
    unread.textContent = entry.unread ? String(entry.unread) : "";
    if (entry.unread) unread.setAttribute("aria-label", t("card.unread", { n: entry.unread })); else unread.removeAttribute("aria-label");
    const countdown = node.querySelector("[data-countdown]");
    if (countdown) countdown.dataset.countdown = card.expires_at || "";
    for (const b of node.querySelectorAll("[data-action=accept], [data-action=decline]")) {
      b.setAttribute("aria-label", t(b.dataset.action === "accept" ? "card.accept" : "card.decline") + " — " + contactName(card));
    }
  }

  function removeCard(id) {
    const entry = cards.get(id);
    if (!entry) return;
    if (entry.node) entry.node.remove();
    cards.delete(id);
    if (selected === id) { selected = ""; renderThread(); }
    refreshCounts();
  }
  function dismiss(id) {
    removeCard(id);
    const first = document.querySelector("#conversation-list .open");
    if (first) first.focus();
  }

  function refreshCounts() {
    const offers = [...cards.values()].filter((e) => e.card.state === "offered").length;
    const mine = cards.size - offers;
    $("offers-count").textContent = String(offers);
    $("mine-count").textContent = String(mine);
    $("no-offers").hidden = offers > 0;
    $("no-cards").hidden = mine > 0;
    let unread = 0;
    for (const e of cards.values()) unread += e.unread;
    const n = offers + unread;
    document.title = (n ? "(" + n + ") " : "") + t("console.title");
    // On a phone the list is hidden behind the thread: the way back says what waits there.
    const back = $("thread-back");
    back.querySelector("[data-back-count]").textContent = n ? String(n) : "";
    back.setAttribute("aria-label", n ? t("thread.backUnread", { n }) : t("thread.back"));
  }

  // listKeys: arrows move between the list's conversations; Enter or Space opens one.
  function listKeys(e) {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    const all = [...document.querySelectorAll("#conversation-list .open")];
    const i = all.indexOf(e.currentTarget);
    const next = all[i + (e.key === "ArrowDown" ? 1 : -1)];
    if (next) { next.focus(); e.preventDefault(); }
  }
  // Alt+A goes to the oldest offer's Accept button from anywhere.
  document.addEventListener("keydown", (e) => {
    if (e.altKey && (e.key === "a" || e.key === "A" || e.code === "KeyA")) {
      const b = document.querySelector("#offers [data-action=accept]");
      if (b) { e.preventDefault(); b.focus(); }
    }
  });

  // ---- card actions, with the server's refusals turned into a refreshed card and words ----

  async function cardAction(id, action, button) {
    if (action === "close") { openClose(id, button); return; }
    button.disabled = true;
    try {
      const card = await api("POST", "/v1/cards/" + encodeURIComponent(id) + "/" + action);
      notify("");
      button.disabled = false;
      if (action === "decline") removeCard(id);
      else {
        renderCard(card);
        if (action === "accept") { select(id); $("reply").focus(); }
      }
    } catch (err) {
      button.disabled = false;
      if (err.status === 409 || err.status === 403 || err.status === 404) await refreshStale(id, action);
      else fail(err);
    }
  }

  // refreshStale follows a refusal because another tab or a supervisor acted first: the card is read
  // again from the server and the agent is told in words what happened.
  async function refreshStale(id, action) {
    let fresh = null;
    try {
      const res = await api("GET", "/v1/agents/me/cards");
      fresh = (res.cards || []).find((c) => c.id === id) || null;
    } catch (err) { fail(err); return; }
    if (fresh && (fresh.state === "accepted" || fresh.state === "offered")) {
      renderCard(fresh);
      if (fresh.state === "accepted" && action === "accept") select(id);
      notify(t(fresh.state === "accepted" ? "stale.accepted" : "stale.gone"), true);
    } else if (action === "close" || (cards.get(id) && cards.get(id).card.state === "accepted")) {
      renderCard(Object.assign({}, cards.get(id).card, { state: "closed" }));
      notify(t("stale.closed"), true);
    } else {
      removeCard(id);
      notify(t("stale.gone"), true);
    }
  }

  let reloadTimer = 0;
  function reloadCardsSoon() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => loadCards().catch(() => {}), 300);
  }

  async function loadCards() {
    const res = await api("GET", "/v1/agents/me/cards");
    const current = new Set();
    for (const card of res.cards || []) {
      current.add(card.id);
      if (card.state === "offered" || card.state === "accepted") {
        renderCard(card);
        if (card.state === "accepted") loadMessages(cards.get(card.id));
      }
    }
    // What the server no longer lists for this agent went back to the queue (a logout) or elsewhere.
    for (const [id, e] of cards) {
      if (!current.has(id) && (e.card.state === "offered" || e.card.state === "accepted")) removeCard(id);
    }
  }

  // ---- messages and the thread ----

  const statusRank = { queued: 1, sent: 2, delivered: 3, read: 4, played: 5, failed: 6 };
  const ticks = { queued: "…", sent: "✓", delivered: "✓✓", read: "✓✓", played: "✓✓", failed: "!" };

  // describe is what the desk shows of a message: its text, what an order, an ad or a product
  // question carries; else its kind.
  function describe(m) {
    const p = m.payload || {};
    const parts = [];
    if (m.text) parts.push(m.text);
    if (p.order && p.order.items) {
      parts.push(t("msg.order", { items: p.order.items.map((i) => i.quantity + " × " + i.product_retailer_id +
        " (" + i.item_price + " " + (i.currency || "") + ")").join(", ") }));
    }
    if (p.referred_product) parts.push(t("msg.product", { id: p.referred_product.product_retailer_id }));
    if (p.referral) parts.push(t("msg.ad", { headline: p.referral.headline || p.referral.source_url || "" }) +
      (p.referral.welcome_message ? " — " + p.referral.welcome_message : ""));
    if (p.errors) parts.push(p.errors.map((e) => (e.title || "") + (e.details ? ": " + e.details : "")).join("; "));
    if (!parts.length) parts.push(t("msg.kind", { kind: m.kind || "message" }));
    return parts.join(" · ");
  }

  // mergeMessage keeps the newest status of a message: a list read before a status event may answer
  // after it, and a status never goes back (but a failed send that an operator runs again does).
  function mergeMessage(entry, m) {
    const old = entry.messages.get(m.id);
    if (old && old.status && m.status && old.status !== "failed" && statusRank[m.status] < statusRank[old.status]) {
      m = Object.assign({}, m, { status: old.status, error: old.error });
    }
    entry.messages.set(m.id, Object.assign({}, old || {}, m));
  }

  function entryForConversation(id) {
    for (const entry of cards.values()) if (entry.card.conversation_id === id) return entry;
    return null;
  }

  async function loadMessages(entry) {
    if (!entry || entry.loaded) return;
    entry.loaded = true;
    try {
      const res = await api("GET", "/v1/conversations/" + encodeURIComponent(entry.card.conversation_id) + "/messages");
      if (res.conversation) {
        if (res.conversation.contact && !entry.card.contact) entry.card.contact = res.conversation.contact;
        if (res.conversation.window_expires_at) entry.card.window_expires_at = res.conversation.window_expires_at;
      }
      for (const m of res.messages || []) mergeMessage(entry, m);
      entry.fetched = true;
      renderCard(entry.card);
      if (cards.get(selected) === entry) consoleMedia.opened(entry);
    } catch (err) {
      entry.loaded = false;
      fail(err);
    }
  }

  function dayLabel(d) {
    const today = new Date();
    const yesterday = new Date(Date.now() - 86400000);
    if (d.toDateString() === today.toDateString()) return t("day.today");
    if (d.toDateString() === yesterday.toDateString()) return t("day.yesterday");
    return new Intl.DateTimeFormat(i18n.lang(), { day: "numeric", month: "long", year: "numeric" }).format(d);
  }


  // Meta's error codes by what they mean to an agent (Cloud API error codes); the agent reads the
  // meaning, never the code.
  const failureKinds = {
    window: [131047, 470], undeliverable: [131026, 131021, 131030, 131045], engagement: [131049],
    rate: [4, 80007, 130429, 131048, 131056], media: [131052, 131053], invalid: [100, 131008, 131009, 135000],
    template: [132000, 132001, 132005, 132007, 132012, 132015, 132016, 132068, 132069],
    account: [3, 10, 190, 200, 368, 131005, 131031, 131042, 133010], temporary: [1, 2, 131000, 131016, 131057],
  };
  const failureKind = new Map(Object.entries(failureKinds).flatMap(([kind, codes]) => codes.map((c) => [c, kind])));

  // failureWords: a failed send's reason in the page's language. The gateway's own reasons come as
  // one sentence in Portuguese and English ("pt · en", then Meta's words in parentheses when Meta
  // answered): the page's half, without them. Meta's refusals come as its code and title: the code's
  // meaning.
  function failureWords(e) {
    const s = e.summary || "";
    if (s.includes(" · ")) {
      const half = s.split(" · ")[i18n.lang().startsWith("pt") ? 0 : 1] || "";
      const words = half.replace(/\.\s\(.*$/, ".").replace(/^[^—]* — /, "").trim();
      if (words) return words.charAt(0).toUpperCase() + words.slice(1);
    }
    const kind = e.code ? failureKind.get(e.code) : undefined;
    return t("fail." + (kind || "other"));
  }
  function messageNode(m) {
    const cls = m.direction === "out" ? "msg out" : m.kind === "system" ? "msg in system" : "msg in";
    const at = new Date(m.at || Date.now());
    const time = new Intl.DateTimeFormat(i18n.lang(), { hour: "2-digit", minute: "2-digit" }).format(at);
    const foot = el("span", { class: "foot" }, el("time", { datetime: at.toISOString() }, time));
    const li = el("li", { class: cls, dataset: { messageId: m.id } }, el("span", { "data-text": "" }, describe(m)));
    appendMedia(li, m);
    if (m.direction === "out" && m.status) {
      li.dataset.status = m.status;
      const words = [statusRank[m.status] ? t("msg." + m.status) : m.status];
      if (m.deleted_at) words.push(t("msg.deleted"));
      foot.append(el("span", { class: "status" + (m.status === "failed" ? " failed" : ""), "data-status": "" },
        el("span", { class: "tick", "aria-hidden": "true" }, ticks[m.status] || ""), " ", el("span", { "data-status-words": "" }, words.join(" · "))));
      if (m.status === "failed" && m.error) {
        // Words for the agent; Meta's own (code, title) stay on the element for whoever supports them.
        li.append(el("span", { class: "error", "data-error": "", "data-provider": m.error.summary || m.error.title || "" }, failureWords(m.error)));
      }
      if (m.warning) li.append(el("span", { class: "error" }, t("msg.warning", { text: m.warning.title || m.warning.message || "" })));
    }
    const raw = m.payload && m.payload.raw;
    if (raw) {
      li.append(el("details", { "data-raw": "" }, el("summary", {}, t("msg.raw")),
        el("pre", {}, JSON.stringify(raw, null, 2).slice(0, 4000))));
    }
    li.append(foot);
    return li;
  }

  // appendMedia adds what media.js shows of a message (files, places, contacts, buttons, the message
  // a choice answers); a file or card stands in for the "[kind]" label.
  function appendMedia(li, m) {
    const extra = consoleMedia.content(m, entryForConversation(m.conversation_id) || cards.get(selected));
    if (extra.replacesLabel) li.querySelector("[data-text]").textContent = "";
    li.append(...extra.parts);
  }

  // windowClosed: on WhatsApp only a template may follow 24 hours after the customer's last message,
  // or before the customer has written at all (a conversation started with a template).
  function windowClosed(entry) {
    if (entry.windowClosed) return true;
    if (entry.card.channel !== "whatsapp") return false;
    if (entry.card.window_expires_at) return Date.parse(entry.card.window_expires_at) < Date.now();
    return !!entry.fetched && ![...entry.messages.values()].some((m) => m.direction === "in" && m.kind !== "system");
  }

  function renderThread() {
    const entry = cards.get(selected);
    $("desk").classList.toggle("show-thread", !!entry);
    $("thread-empty").hidden = !!entry;
    $("thread-body").hidden = !entry;
    for (const n of document.querySelectorAll("#conversation-list .item")) {
      if (n.dataset.cardId === selected) n.setAttribute("aria-current", "true"); else n.removeAttribute("aria-current");
    }
    if (!entry) return;
    const card = entry.card;
    $("thread").dataset.cardId = card.id;
    $("thread").dataset.state = card.state;
    $("thread-title").textContent = contactName(card);
    const sub = [channelName(card.channel)];
    if (card.contact && card.contact.phone && card.contact.name) sub.push("+" + card.contact.phone.replace(/^\+/, ""));
    $("thread-sub").textContent = sub.join(" · ");
    $("thread-close").hidden = card.state !== "accepted";
    $("thread-transfer").hidden = card.state !== "accepted";
    const tr = card.transfer && card.transfer.by !== (presence && presence.agent) ? card.transfer : null;
    $("thread-transfer-note").hidden = !tr || card.state === "closed";
    $("thread-transfer-note").textContent = !tr ? "" : tr.note ? t("transfer.noteLine", { by: byName(tr), note: tr.note }) : t("transfer.noteLineEmpty", { by: byName(tr) });
    $("thread-unanswered").hidden = !(entry.unanswered && card.state === "accepted");
    $("thread-unanswered").textContent = entry.unanswered ? t("unanswered.warn", { time: fmtShort(entry.unanswered.timeout_seconds * 1000) }) : "";
    const box = $("messages");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    const list = [...entry.messages.values()];
    const nodes = [];
    let day = "";
    for (const m of list) {
      const d = new Date(m.at);
      if (d.toDateString() !== day) {
        day = d.toDateString();
        nodes.push(el("li", { class: "day" }, dayLabel(d)));
      }
      nodes.push(messageNode(m));
    }
    box.replaceChildren(...nodes);
    if (atBottom || box.dataset.shown !== card.id) box.scrollTop = box.scrollHeight;
    box.dataset.shown = card.id;
    const state = card.state === "closed" ? t("thread.closed") : card.state === "offered" ? t("thread.offered") :
      !entry.loaded && card.state === "accepted" ? t("thread.loading") : "";
    $("thread-state").textContent = state;
    const canReply = card.state === "accepted";
    const closedWindow = canReply && windowClosed(entry);
    $("window-closed").hidden = !closedWindow;
    if (closedWindow) {
      const notYet = !entry.windowClosed && !entry.card.window_expires_at;
      $("window-closed").dataset.reason = notYet ? "not-yet" : "expired";
      $("window-text").textContent = t(notYet ? "composer.notYet" : "composer.windowClosed");
    }
    $("composer").hidden = !canReply || closedWindow;
  }

  function select(id) {
    if (selected !== id) {
      const prev = cards.get(selected);
      if (prev) prev.draft = $("reply").value;
      selected = id;
      consoleMedia.conversationChanged();
      const entry = cards.get(id);
      $("reply").value = (entry && entry.draft) || "";
      $("reply-error").textContent = "";
      if (entry) {
        const place = readPlace();
        if (place.conversation === entry.card.conversation_id && place.draft && !$("reply").value) $("reply").value = place.draft;
        savePlace({ conversation: entry.card.conversation_id, draft: $("reply").value });
      }
    }
    const entry = cards.get(id);
    if (entry) {
      entry.unread = 0;
      if (entry.card.state === "accepted") loadMessages(entry);
      renderCard(entry.card);
      if (entry.fetched) consoleMedia.opened(entry);
    }
    renderThread();
  }

  $("thread-back").addEventListener("click", () => {
    const id = selected;
    selected = "";
    renderThread();
    const entry = cards.get(id);
    if (entry && entry.node) entry.node.querySelector(".open").focus();
  });
  $("thread-close").addEventListener("click", (e) => { if (selected) cardAction(selected, "close", e.currentTarget); });
  $("send-template").addEventListener("click", () => {
    const entry = cards.get(selected);
    const phone = entry && entry.card.contact && entry.card.contact.phone;
    openNewConversation(phone ? "+" + phone.replace(/^\+/, "") : "");
  });

  // The composer: Enter sends, Shift+Enter starts a new line.
  // enterSends stays set until the key is released, so that the line break the same key press would
  // type (some input paths deliver it apart from the keydown) is not left in the emptied box.
  let enterSends = false;
  $("reply").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      enterSends = true;
      $("composer").requestSubmit();
    }
  });
  $("reply").addEventListener("keyup", (e) => { if (e.key === "Enter") enterSends = false; });
  $("reply").addEventListener("beforeinput", (e) => {
    if (enterSends && (e.inputType === "insertLineBreak" || e.inputType === "insertParagraph" || (e.data || "").includes("\n") || (e.data || "").includes("\r"))) e.preventDefault();
  });
  $("reply").addEventListener("input", () => {
    const entry = cards.get(selected);
    if (entry) savePlace({ conversation: entry.card.conversation_id, draft: $("reply").value });
  });
  $("composer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const entry = cards.get(selected);
    if (!entry) return;
    const text = $("reply").value;
    const error = $("reply-error");
    if (consoleMedia.sendPending(entry, text)) return; // a chosen file goes with the text as its caption
    if (!text.trim()) { error.textContent = t("composer.empty"); return; }
    const button = $("send");
    button.disabled = true;
    const conv = entry.card.conversation_id;
    try {
      const res = await api("POST", "/v1/conversations/" + encodeURIComponent(conv) + "/messages", { text });
      error.textContent = "";
      if (selected === entry.card.id) $("reply").value = "";
      entry.draft = "";
      savePlace({ draft: "" });
      // The status may already have arrived on the stream; then the message exists and is newer.
      if (!entry.messages.has(res.message_id)) {
        mergeMessage(entry, { id: res.message_id, conversation_id: conv, direction: "out", text, status: res.status || "queued",
          at: new Date().toISOString() });
      }
      renderCard(entry.card);
    } catch (err) {
      if (err.status === 401) fail(err);
      if (err.code === "window_closed") { entry.windowClosed = true; renderThread(); }
      if (err.code === "conversation_closed" || err.code === "not_your_conversation") await refreshStale(entry.card.id, "reply");
      error.textContent = i18n.errorText(err);
    } finally {
      button.disabled = false;
    }
  });

  // ---- attention: sound, desktop notification, the count in the title ----

  const alertsKey = "chatgate.alerts";
  let audio = null;
  function renderAlertsButton() {
    const b = $("alerts");
    if (!("Notification" in window)) { b.hidden = true; return; }
    const perm = Notification.permission;
    b.hidden = !started;
    const text = perm === "granted" && localStorage.getItem(alertsKey) === "on" ? t("alerts.on") :
      perm === "denied" ? t("alerts.blocked") : t("alerts.enable");
    b.querySelector("[data-alerts-text]").textContent = text;
    b.title = text;
    b.disabled = perm === "denied";
    b.setAttribute("aria-pressed", String(perm === "granted" && localStorage.getItem(alertsKey) === "on"));
  }
  $("alerts").addEventListener("click", async () => {
    audio = audio || new AudioContext();
    if (Notification.permission !== "granted") await Notification.requestPermission();
    localStorage.setItem(alertsKey, localStorage.getItem(alertsKey) === "on" && Notification.permission === "granted" ? "off" : "on");
    renderAlertsButton();
  });
  // The browser starts sound only after the page is used: the first click or key prepares it.
  const prepareAudio = () => { try { audio = audio || new AudioContext(); audio.resume(); } catch (_) { /* no audio */ } };
  document.addEventListener("pointerdown", prepareAudio, { once: true });
  document.addEventListener("keydown", prepareAudio, { once: true });

  function beep() {
    if (!audio || localStorage.getItem(alertsKey) === "off") return;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.25);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.25);
    document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
  }

  function alertOffer(card) {
    const who = contactName(card);
    announce(t("alerts.newOffer") + ": " + t("alerts.newOfferBody", { who, channel: channelName(card.channel) }));
    beep();
    if ("Notification" in window && Notification.permission === "granted" && localStorage.getItem(alertsKey) === "on") {
      const n = new Notification(t("alerts.newOffer"), { body: t("alerts.newOfferBody", { who, channel: channelName(card.channel) }), tag: card.id });
      n.onclick = () => { window.focus(); const b = document.querySelector(`#offers li[data-card-id="${CSS.escape(card.id)}"] [data-action=accept]`); if (b) b.focus(); };
    }
  }

  // ---- clocks ----

  // tick refreshes every clock: the channels' time in their state, the offers' countdowns and how
  // long each customer has waited for an answer.
  function tick() {
    for (const c of document.querySelectorAll("#channels [data-since]")) c.textContent = channelClock(c);
    tickWrapUps();
    for (const c of document.querySelectorAll("[data-countdown]")) {
      const left = Date.parse(c.dataset.countdown) - Date.now();
      c.textContent = c.dataset.countdown ? (left > 0 ? t("card.expiresIn", { time: fmtShort(left) }) : t("card.expired")) : "";
    }
    for (const entry of cards.values()) {
      const w = entry.node && entry.node.querySelector("[data-waited]");
      if (!w) continue;
      const since = entry.card.state === "closed" ? 0 : waitingSince(entry);
      w.textContent = since ? t("card.waiting", { time: fmtShort(Date.now() - since) }) :
        entry.card.state === "accepted" && entry.messages.size ? t("card.answered") : "";
    }
    if (selected) {
      const entry = cards.get(selected);
      if (entry && entry.card.state === "accepted" && windowClosed(entry) === $("window-closed").hidden) renderThread();
    }
  }

  // ---- the event stream ----

  function handleEvent(ev) {
    switch (ev.type) {
      case "card.offered": {
        const isNew = !cards.has(ev.card.id) || cards.get(ev.card.id).card.state !== "offered";
        renderCard(ev.card);
        if (isNew) alertOffer(ev.card);
        break;
      }
      case "card.accepted":
        // Accepted here or in another tab of this agent: every tab shows the conversation.
        renderCard(ev.card);
        loadMessages(cards.get(ev.card.id));
        break;
      case "card.declined":
        removeCard(ev.card.id);
        break;
      case "card.revoked":
        if (cards.has(ev.card.id)) {
          const who = contactName(cards.get(ev.card.id).card);
          removeCard(ev.card.id);
          announce(t("card.revoked", { who }));
          if (ev.card.agent && ev.card.agent === presence?.agent) loadCards().catch(() => {});
        }
        break;
      case "conversation.closed":
        if (ev.card) renderCard(Object.assign({}, ev.card, { state: "closed" }));
        break;
      case "message.received":
      case "message.status": {
        const m = ev.message;
        const entry = m && entryForConversation(m.conversation_id);
        if (!entry) {
          // A conversation this tab has not seen (started from another tab): read the list again.
          if (m) reloadCardsSoon();
          break;
        }
        const fresh = !entry.messages.has(m.id);
        mergeMessage(entry, m);
        if (m.direction === "out") entry.unanswered = null;
        // A screen reader hears a customer's new message once: its words in the open conversation,
        // who wrote elsewhere (the thread itself is not a live region: a re-render would repeat it).
        if (ev.type === "message.received" && m.direction === "in" && fresh) {
          const who = contactName(entry.card);
          announce(selected === entry.card.id ? t("msg.announce", { who, text: describe(m) }) : t("msg.announceOther", { who }));
        }
        if (ev.type === "message.received" && m.direction === "in" && selected !== entry.card.id) entry.unread++;
        if (m.direction === "in" && entry.card.channel === "whatsapp" && m.kind !== "system") {
          entry.windowClosed = false;
          entry.card.window_expires_at = new Date(Date.parse(m.at) + 24 * 3600 * 1000).toISOString();
        }
        renderCard(entry.card);
        if (m.direction === "in" && selected === entry.card.id) consoleMedia.opened(entry);
        break;
      }
      case "presence.changed":
      case "wrap_up.started":
      case "wrap_up.ended":
        loadPresence().catch(fail);
        break;
      case "conversation.transferred": {
        const me = presence && presence.agent;
        const who = contactName((cards.get(ev.card.id) || { card: ev.card }).card);
        if (ev.card.agent === me && ev.card.state === "offered") {
          renderCard(ev.card);
          const by = ev.transfer ? ev.transfer.by : "";
          if (by !== me) notify(t("transfer.received", { by: byName(ev.transfer), who }), true);
        } else if (cards.has(ev.card.id)) {
          removeCard(ev.card.id);
          if (ev.transfer && ev.transfer.by !== me) notify(t("transfer.away", { who, by: byName(ev.transfer) }), true);
        }
        break;
      }
      case "conversation.unanswered": {
        const entry = cards.get(ev.card.id);
        const u = ev.unanswered || {};
        const who = contactName((entry || { card: ev.card }).card);
        if (u.action === "requeue") notify(t("unanswered.requeued", { who, time: fmtShort((u.timeout_seconds || 0) * 1000) }));
        else if (entry) {
          entry.unanswered = u;
          notify(t("unanswered.warn", { time: fmtShort((u.timeout_seconds || 0) * 1000) }) + " — " + who);
          if (selected === entry.card.id) renderThread();
        }
        break;
      }
      case "stream.reset":
        loadCards().catch(fail);
        break;
      case "session.expired":
        sessionExpired();
        break;
    }
  }

  // The agent's stream (chatgate.follow): a fresh one starts at the server's now, so what changed
  // between the first read of cards and presence and this moment is read again and the rest arrives
  // live. The server ends it with session.expired when the token expires; it resumes after the next
  // sign-in. What happened while disconnected and is not replayed (presence) is fetched again.
  function streamLoop() {
    const generation = ++streamGeneration;
    return chatgate.follow({
      path: "/v1/agents/me/events",
      lastEventId: () => lastEventId,
      saveEventId: (id) => {
        lastEventId = id;
        $("stream-state").dataset.lastEventId = id; // what a reconnect resumes from
        savePlace({ lastEventId: id });
      },
      wanted: () => generation === streamGeneration,
      onState: setStreamState,
      onOpen: (fresh) => { if (fresh) { loadCards().catch(() => {}); loadPresence().catch(() => {}); } },
      onEvent: handleEvent,
      onUnauthorized: sessionExpired,
      onReconnect: () => loadPresence().catch(() => {}),
    });
  }

  // ---- close with a disposition ("tabulação") ----

  let closing = null; // {id, button}
  async function loadQueues() {
    const res = await api("GET", "/v1/queues");
    queues = new Map((res.queues || []).map((q) => [q.id, q]));
  }

  async function openClose(id, button) {
    const entry = cards.get(id);
    if (!entry) return;
    closing = { id, button };
    if (!queues.has(entry.card.queue)) await loadQueues().catch(() => {});
    const q = queues.get(entry.card.queue) || { dispositions: [] };
    const form = $("close-form");
    for (const s of form.querySelectorAll(".field-error")) s.textContent = "";
    $("close-title").textContent = t("confirm.close.title", { who: contactName(entry.card) });
    $("close-note").value = "";
    const box = form.querySelector("[data-dispositions]");
    box.replaceChildren(...(q.dispositions || []).map((d) => {
      const rid = "dispo-" + d.id;
      return el("div", { class: "reason-option" }, el("input", { type: "radio", name: "disposition", id: rid, value: d.id }),
        el("label", { for: rid }, i18n.label(d)));
    }));
    form.querySelector("[data-dispositions-box]").hidden = !(q.dispositions || []).length;
    form.dataset.required = q.require_disposition ? "true" : "false";
    $("close-dialog").showModal();
  }
  $("close-form").querySelector("[data-cancel]").addEventListener("click", () => {
    $("close-dialog").close();
    if (closing && closing.button) closing.button.focus();
  });
  $("close-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    for (const s of form.querySelectorAll(".field-error")) s.textContent = "";
    const chosen = form.querySelector("input[name=disposition]:checked");
    if (!chosen && form.dataset.required === "true") {
      form.querySelector('[data-field="disposition"]').textContent = t("close.chooseDisposition");
      return;
    }
    const body = { note: $("close-note").value.trim() };
    if (chosen) body.disposition = chosen.value;
    const button = e.submitter;
    if (button) button.disabled = true;
    const id = closing.id;
    try {
      const card = await api("POST", "/v1/cards/" + encodeURIComponent(id) + "/close", body);
      $("close-dialog").close();
      notify("");
      renderCard(card);
    } catch (err) {
      if (err.status === 422 && (err.fields || []).some((f) => f.field === "disposition")) {
        form.querySelector('[data-field="disposition"]').textContent = t(chosen ? "close.unknownDisposition" : "close.chooseDisposition");
        loadQueues().catch(() => {});
      } else if (err.status === 409 || err.status === 403 || err.status === 404) {
        $("close-dialog").close();
        await refreshStale(id, "close");
      } else {
        form.querySelector('[data-field=""]').textContent = i18n.errorText(err);
      }
    } finally {
      if (button) button.disabled = false;
    }
  });

  // ---- transfer: to an agent (offered to that agent only) or first in line in a queue ----

  let transferring = null; // {id, button}
  async function openTransfer(id, button) {
    const entry = cards.get(id);
    if (!entry) return;
    let targets;
    try {
      targets = await api("GET", "/v1/conversations/" + encodeURIComponent(entry.card.conversation_id) + "/transfer-targets");
    } catch (err) { fail(err); return; }
    transferring = { id, button };
    const form = $("transfer-form");
    for (const s of form.querySelectorAll(".field-error")) s.textContent = "";
    $("transfer-title").textContent = t("transfer.title", { who: contactName(entry.card) });
    $("transfer-note").value = "";
    const agents = el("optgroup", { label: t("transfer.agents") }, ...(targets.agents || []).map((a) =>
      el("option", { value: "agent:" + a.id, disabled: !a.available, "data-name": a.name || a.id },
        a.available ? (a.name || a.id) : t("transfer.unavailable", { name: a.name || a.id, why: t("transfer.why." + a.reason) }))));
    const qs = el("optgroup", { label: t("transfer.queues") }, ...(targets.queues || []).map((q) =>
      el("option", { value: "queue:" + q.id, "data-name": t("transfer.queueOption", { name: q.name || q.id }) }, t("transfer.queueOption", { name: q.name || q.id }))));
    $("transfer-to").replaceChildren(el("option", { value: "" }, "—"), agents, qs);
    $("transfer-dialog").showModal();
  }
  $("thread-transfer").addEventListener("click", (e) => { if (selected) openTransfer(selected, e.currentTarget); });
  $("transfer-form").querySelector("[data-cancel]").addEventListener("click", () => {
    $("transfer-dialog").close();
    if (transferring && transferring.button) transferring.button.focus();
  });
  $("transfer-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    for (const s of form.querySelectorAll(".field-error")) s.textContent = "";
    const opt = $("transfer-to").selectedOptions[0];
    if (!opt || !opt.value) { form.querySelector('[data-field="to_agent"]').textContent = t("transfer.choose"); return; }
    const [kind, target] = [opt.value.slice(0, opt.value.indexOf(":")), opt.value.slice(opt.value.indexOf(":") + 1)];
    const to = opt.dataset.name;
    const note = $("transfer-note").value.trim();
    const { id, button } = transferring;
    const entry = cards.get(id);
    const who = entry ? contactName(entry.card) : "";
    $("transfer-dialog").close();
    const ok = await confirmAction(t("confirm.transfer.title", { to }), t("confirm.transfer.text"), t("confirm.transfer.ok"), t("confirm.transfer.cancel"));
    if (!ok) { $("transfer-dialog").showModal(); return; }
    const body = { note };
    body[kind === "agent" ? "to_agent" : "to_queue"] = target;
    try {
      await api("POST", "/v1/conversations/" + encodeURIComponent(entry.card.conversation_id) + "/transfer", body);
      removeCard(id);
      notify(t("transfer.done", { who, to }), true);
    } catch (err) {
      if (err.code === "agent_not_available" || err.status === 422) {
        const why = (err.fields || [])[0];
        form.querySelector('[data-field="to_agent"]').textContent = why && t("transfer.why." + why.message) !== "transfer.why." + why.message ?
          t("transfer.unavailable", { name: to, why: t("transfer.why." + why.message) }) : i18n.errorText(err);
        $("transfer-dialog").showModal();
      } else if (err.status === 409 || err.status === 403 || err.status === 404) {
        await refreshStale(id, "close");
      } else fail(err);
      if (button && !$("transfer-dialog").open) button.focus();
    }
  });

  // ---- new conversation ----

  let templates = [];
  let idempotencyKey = "";

  function renderParams() {
    const box = $("nc-params");
    box.replaceChildren();
    const tpl = templates[$("nc-template").value];
    $("nc-template-text").textContent = tpl ? tpl.text || "" : "";
    if (!tpl) return;
    for (const part of ["header_params", "body_params", "button_params"]) {
      const n = tpl[part] || 0;
      if (!n) continue;
      const fs = el("fieldset", { "data-part": part }, el("legend", {}, t("nc.params", { part: t("nc.part." + part) })));
      for (let i = 0; i < n; i++) {
        const id = "nc-" + part + "-" + i;
        fs.append(el("label", { for: id }, "{{" + (i + 1) + "}}"),
          el("input", { type: "text", id, name: part + "." + i, autocomplete: "off" }));
      }
      fs.append(el("span", { class: "field-error", "data-field": "template." + part }));
      box.append(fs);
    }
  }

  async function openNewConversation(to) {
    const d = $("conversation-dialog");
    clearFieldErrors();
    try {
      templates = (await api("GET", "/v1/templates")).templates || [];
    } catch (err) { fail(err); return; }
    const sel = $("nc-template");
    sel.replaceChildren(...templates.map((tpl, i) => el("option", { value: i }, tpl.name + " (" + tpl.language + ")")));
    renderParams();
    if (typeof to === "string") $("nc-to").value = to;
    idempotencyKey = crypto.randomUUID();
    d.showModal();
  }

  function clearFieldErrors() {
    for (const s of $("conversation-form").querySelectorAll(".field-error")) s.textContent = "";
  }

  // fieldWords says what is wrong with a field in the catalogue's words (the server's own messages
  // are for integrators).
  function fieldWords(field) {
    if (field === "to") return t("field.to");
    if (field === "phone_number_id") return t("field.phone_number_id");
    if (/^template\.(header|body|button)_params/.test(field)) return t("field.params");
    if (field.startsWith("template")) return t("field.template");
    return t("field.general");
  }

  // showFieldErrors puts each error next to its field: the exact data-field, else the longest prefix
  // (template.body_params[1] → template.body_params), else the form's general line.
  function showFieldErrors(fields, fallback) {
    const spans = [...$("conversation-form").querySelectorAll(".field-error[data-field]")];
    const general = spans.find((s) => s.dataset.field === "");
    for (const f of fields) {
      let best = general;
      for (const s of spans) {
        const name = s.dataset.field;
        if (name && (f.field === name || f.field.startsWith(name + "[") || f.field.startsWith(name + ".")) &&
          (best === general || name.length > best.dataset.field.length)) best = s;
      }
      if (!best.textContent.includes(fieldWords(f.field))) best.textContent = (best.textContent ? best.textContent + " " : "") + fieldWords(f.field);
    }
    if (!fields.length) general.textContent = fallback;
  }

  $("new-conversation").addEventListener("click", () => openNewConversation());
  $("nc-template").addEventListener("change", renderParams);
  $("conversation-form").querySelector("[data-cancel]").addEventListener("click", () => $("conversation-dialog").close());
  $("conversation-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    clearFieldErrors();
    const form = e.target;
    const tpl = templates[$("nc-template").value];
    if (!tpl) { showFieldErrors([], t("nc.chooseTemplate")); return; }
    const params = (part) => Array.from({ length: tpl[part] || 0 }, (_, i) => form.elements[part + "." + i].value);
    const body = { channel: "whatsapp", to: form.elements.to.value.trim(), phone_number_id: form.elements.phone_number_id.value.trim(),
      template: { name: tpl.name, language: tpl.language, header_params: params("header_params"), body_params: params("body_params"),
        button_params: params("button_params") } };
    const button = e.submitter;
    if (button) button.disabled = true;
    try {
      await api("POST", "/v1/conversations", body, { "Idempotency-Key": idempotencyKey });
      $("conversation-dialog").close();
      notify(t("nc.started"), true);
      loadCards().catch(() => {});
    } catch (err) {
      showFieldErrors(err.fields || [], i18n.errorText(err));
    } finally {
      if (button) button.disabled = false;
    }
  });

  // ---- language ----

  function rerender() {
    consoleMedia.relabel();
    setStreamState(streamState);
    if (presence) renderPresence(presence);
    // A new language rebuilds every item (its buttons' words included).
    for (const entry of cards.values()) {
      if (entry.node) delete entry.node.dataset.state;
      renderCard(entry.card);
    }
    renderThread();
    renderAlertsButton();
    refreshCounts();
  }

  // ---- start ----

  async function start() {
    if (started) { resume(); return; }
    started = true;
    const place = readPlace();
    if (place.agent === tokenSubject()) lastEventId = place.lastEventId || "";
    else sessionStorage.setItem(placeKey, JSON.stringify({ agent: tokenSubject() }));
    $("signin").hidden = true;
    $("desk").hidden = false;
    $("sign-out").hidden = false;
    renderAlertsButton();
    try {
      reasons = ((await api("GET", "/v1/pause-reasons")).pause_reasons || [])
        .map((r) => ({ id: r.id || r.ID, label: r.label || r.Label, labels: r.labels || {} }));
      if (presence) renderPresence(presence);
      loadQueues().catch(() => {});
      // An agent who arrives offline finds the channel panel open: going online is the first thing to do.
      if (presence && presence.status === "offline") openPanel(true);
      await loadCards();
    } catch (err) { fail(err); }
    setInterval(tick, 1000);
    streamLoop();
    focusPlace();
  }

  // resume follows a sign-in after the token expired: the page stays as it was, what happened
  // meanwhile comes from the stream (from the last event id) and a fresh read of presence and cards.
  // Another agent signing in starts a clean page instead.
  function resume() {
    if (readPlace().agent !== tokenSubject()) { location.reload(); return; }
    expired = false;
    $("signin").hidden = true;
    notify(t("session.resumed"), true);
    loadPresence().catch(fail);
    loadCards().then(focusPlace).catch(fail);
    streamLoop();
  }

  // focusPlace reopens the conversation being answered and puts the cursor back in the reply box.
  function focusPlace() {
    const conv = readPlace().conversation;
    if (!conv) return;
    const entry = entryForConversation(conv);
    if (!entry) return;
    if (selected !== entry.card.id) select(entry.card.id);
    if (!$("composer").hidden) $("reply").focus();
  }

  // media.js: what it sends joins the thread like a typed reply.
  consoleMedia.install({
    current: () => cards.get(selected),
    sent(entry, res, m) {
      if (!entry.messages.has(res.message_id)) {
        mergeMessage(entry, Object.assign({ id: res.message_id, conversation_id: entry.card.conversation_id, direction: "out",
          status: res.status || "queued", at: new Date().toISOString() }, m));
      }
      savePlace({ draft: "" });
      renderCard(entry.card);
    },
  });
  i18n.apply();
  i18n.switcher($("lang"), rerender);
  refreshCounts();
  $("sign-out").addEventListener("click", () => { sessionStorage.removeItem(placeKey); chatgate.signOut(); });
  chatgate.signIn({ form: $("signin-form"), picker: $("dev-picker"), notice: $("notice"), role: "agent",
    check: loadPresence, onReady: start });
})();
