// The agent console: presence toggles and clocks, pause reasons, cards from the event stream,
// conversations, replies and new WhatsApp conversations — all through the public /v1 API.
"use strict";

(() => {
  const { api, el, fmtDuration } = chatgate;
  const $ = (id) => document.getElementById(id);
  const channelNames = { whatsapp: "WhatsApp", webchat: "WebChat" };
  const channelName = (ch) => channelNames[ch] || ch;

  let presence = null;       // the last GET /v1/agents/me/presence
  let reasons = [];          // the pause catalogue
  const cards = new Map();   // card id → {card, node, messages (ol), loaded}
  const messageNodes = new Map(); // message id → li (for message.status)
  let lastEventId = "";
  let started = false;       // start() ran: signing in again resumes instead
  let expired = false;       // the token expired: waiting for the agent to sign in again
  let streamGeneration = 0;  // a stream loop from before a new sign-in stops itself

  function notify(text, info) {
    const n = $("notice");
    n.classList.toggle("info", !!info);
    n.textContent = text;
  }
  function fail(err) {
    if (err.status === 401 && err.code === "invalid_token") { sessionExpired(); return; }
    notify(err.message + (err.code ? " (" + err.code + ")" : ""));
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

  // sessionExpired stops the stream and shows the sign-in again, leaving the page as it is.
  function sessionExpired() {
    if (expired) return;
    expired = true;
    streamGeneration++;
    $("stream-state").textContent = "○ signed out";
    $("signin").hidden = false;
    notify("Your session has expired: sign in again to go on where you were.");
  }

  // ---- presence ----

  function renderPresence(p) {
    presence = p;
    const ind = $("indicator");
    ind.className = "indicator " + p.status;
    const label = p.status === "offline" ? "Offline" : (p.status === "paused" ? "Paused" : "Online") + " " + p.logged + "/" + p.enabled;
    ind.textContent = label;
    ind.dataset.status = p.status;
    $("agent-name").textContent = p.name ? p.name + " (" + p.agent + ")" : p.agent;
    $("new-conversation").hidden = !p.can_start_conversation;
    if (!p.can_start_conversation && $("conversation-dialog").open) $("conversation-dialog").close();

    const list = $("channels");
    list.replaceChildren();
    for (const ch of p.channels) {
      const logged = ch.state !== "offline";
      const toggle = el("input", { type: "checkbox", role: "switch", "aria-label": channelName(ch.channel) + " logged in",
        "data-toggle": ch.channel });
      toggle.checked = logged;
      toggle.addEventListener("change", () => setState(ch.channel, toggle.checked ? "online" : "offline", "", toggle));
      let action = null;
      if (ch.state === "online") {
        action = el("button", { type: "button", "data-pause": ch.channel, onclick: () => openPause(ch) }, "Pause");
      } else if (ch.state === "paused") {
        action = el("button", { type: "button", "data-resume": ch.channel, onclick: (e) => setState(ch.channel, "online", "", e.target) }, "Resume");
      }
      const stateText = ch.state === "paused" ? "paused — " + (ch.reason_label || ch.reason) : ch.state;
      list.append(el("li", { class: "channel", dataset: { channel: ch.channel, state: ch.state } },
        el("span", { class: "dot " + ch.state, "aria-hidden": "true" }),
        el("span", { class: "name" }, channelName(ch.channel)),
        el("span", {}, el("span", { "data-state-text": "" }, stateText), " ",
          el("span", { class: "clock", "data-since": logged && ch.since ? ch.since : "" })),
        el("label", { class: "switch" }, toggle, "Logged in"),
        action || el("span")));
    }
    tick();
  }

  // tick refreshes every running clock from its channel's since (the time it entered its state).
  function tick() {
    for (const c of document.querySelectorAll(".clock[data-since]")) {
      const since = c.dataset.since;
      c.textContent = since ? fmtDuration(Date.now() - Date.parse(since)) : "";
    }
  }

  async function loadPresence() {
    renderPresence(await api("GET", "/v1/agents/me/presence"));
  }

  async function setState(channel, state, reason, control) {
    if (control) control.disabled = true;
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
      if (control) control.disabled = false;
    }
  }

  // ---- pause pop-up ----

  let pausing = null;
  function openPause(ch) {
    pausing = ch.channel;
    const d = $("pause-dialog");
    d.querySelector("[data-channel]").textContent = channelName(ch.channel);
    const others = (ch.group || []).filter((c) => c !== ch.channel).map(channelName);
    d.querySelector("[data-group]").textContent = others.length ? "Shares a queue with " + others.join(", ") + ": they pause together." : "";
    const box = d.querySelector("[data-reasons]");
    box.replaceChildren();
    for (const r of reasons) {
      const id = "reason-" + r.id;
      box.append(el("div", {}, el("input", { type: "radio", name: "reason", id, value: r.id }), " ",
        el("label", { for: id, class: "switch" }, r.label)));
    }
    d.querySelector("[data-error]").textContent = reasons.length ? "" : "No pause reasons are configured.";
    d.querySelector("[data-submit]").disabled = true;
    d.showModal();
  }
  $("pause-form").addEventListener("change", () => {
    $("pause-form").querySelector("[data-submit]").disabled = !$("pause-form").elements.reason ||
      !$("pause-form").querySelector("input[name=reason]:checked");
  });
  $("pause-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const chosen = $("pause-form").querySelector("input[name=reason]:checked");
    if (!chosen) {
      $("pause-form").querySelector("[data-error]").textContent = "Choose a reason.";
      return;
    }
    if (await setState(pausing, "paused", chosen.value, e.submitter)) $("pause-dialog").close();
  });
  $("pause-form").querySelector("[data-cancel]").addEventListener("click", () => $("pause-dialog").close());

  // ---- cards and conversations ----

  function statusText(m) {
    let s = m.status || "";
    // The gateway's sentence (Meta's code, title and details, or plain words); older records have none.
    if (m.status === "failed" && m.error) s = "failed: " + (m.error.summary || ((m.error.title || "error") + " (" + m.error.code + ")"));
    // Marks beside the status: Meta's warning about a sent message, and its deletion from the chat.
    if (m.warning) s += " · warning: " + (m.warning.title || m.warning.message || "") + " (" + m.warning.code + ")";
    if (m.deleted_at) s += " · deleted";
    return s;
  }

  // describe is what the console shows of a message: its text, what an order, an ad or a product
  // question carries, and Meta's errors in Meta's words; else its kind.
  function describe(m) {
    const p = m.payload || {};
    const parts = [];
    if (m.text) parts.push(m.text);
    if (p.order && p.order.items) {
      parts.push("order: " + p.order.items.map((i) => i.quantity + " × " + i.product_retailer_id +
        " (" + i.item_price + " " + (i.currency || "") + ")").join(", "));
    }
    if (p.referred_product) parts.push("about product " + p.referred_product.product_retailer_id);
    if (p.referral) parts.push("from the ad \"" + (p.referral.headline || p.referral.source_url || "") + "\"" +
      (p.referral.welcome_message ? " (greeting: " + p.referral.welcome_message + ")" : ""));
    if (p.errors) parts.push(p.errors.map((e) => e.code + " " + (e.title || "") + (e.details ? ": " + e.details : "")).join("; "));
    if (!parts.length) parts.push("[" + (m.kind || "message") + "]");
    return parts.join(" · ");
  }

  const statusRank = { queued: 1, sent: 2, delivered: 3, read: 4, failed: 5 };

  function renderMessage(m) {
    let li = messageNodes.get(m.id);
    if (!li) {
      // A system message (a changed number, say) is WhatsApp's note about the customer, not theirs.
      li = el("li", { class: m.direction === "out" ? "out" : m.kind === "system" ? "in system" : "in", dataset: { messageId: m.id } },
        el("span", { "data-text": "" }), el("span", { class: "status", "data-status": "" }));
      messageNodes.set(m.id, li);
    }
    li.querySelector("[data-text]").textContent = describe(m);
    const raw = m.payload && m.payload.raw;
    if (raw && !li.querySelector("[data-raw]")) {
      // What the gateway could not normalize is shown as Meta sent it.
      li.append(el("details", { "data-raw": "" }, el("summary", {}, "as WhatsApp sent it"),
        el("pre", {}, JSON.stringify(raw, null, 2).slice(0, 4000))));
    }
    const st = li.querySelector("[data-status]");
    // A list read before a status event may answer after it: a status never goes back (but a
    // failed send that an operator runs again does).
    const older = li.dataset.status !== "failed" && statusRank[m.status] < (statusRank[li.dataset.status] || 0);
    if (m.direction === "out" && m.status && !older) {
      st.textContent = statusText(m);
      st.classList.toggle("failed", m.status === "failed");
      li.dataset.status = m.status;
    }
    return li;
  }

  function cardTitle(card) {
    const c = card.contact || {};
    return (c.name || c.phone || (c.username && "@" + c.username) || c.user_id || "Customer") + " · " + channelName(card.channel);
  }

  function renderCard(card) {
    let entry = cards.get(card.id);
    if (!entry) {
      entry = { card, node: el("article", { class: "card", dataset: { cardId: card.id } }), loaded: false };
      cards.set(card.id, entry);
      $("cards").prepend(entry.node);
    }
    // Events may carry less than the list does (no contact): keep what is known.
    entry.card = Object.assign({}, entry.card, card, { contact: card.contact || entry.card.contact });
    card = entry.card;
    const node = entry.node;
    node.dataset.state = card.state;
    node.dataset.conversationId = card.conversation_id;
    const buttons = el("div", { class: "row" });
    const act = (label, path, cls) => el("button", { type: "button", class: cls, "data-action": path,
      onclick: (e) => cardAction(card.id, path, e.target) }, label);
    if (card.state === "offered") buttons.append(act("Accept", "accept", "primary"), act("Decline", "decline"));
    if (card.state === "accepted") buttons.append(act("Close", "close", "danger"));
    if (card.state === "closed" || card.state === "revoked") {
      buttons.append(el("button", { type: "button", onclick: () => { node.remove(); cards.delete(card.id); emptyState(); } }, "Dismiss"));
    }
    const parts = [el("h3", {}, cardTitle(card)),
      el("p", { class: "muted" }, el("span", { "data-card-state": "" }, card.state), card.preview ? " — " + card.preview : ""),
      buttons];
    if (card.state === "accepted" || (card.state === "closed" && entry.messages)) {
      if (!entry.messages) entry.messages = el("ol", { class: "messages", "aria-label": "Messages" });
      parts.push(entry.messages);
      if (card.state === "accepted") parts.push(replyForm(card));
      if (!entry.loaded) loadMessages(entry);
    }
    node.replaceChildren(...parts);
    emptyState();
  }

  function emptyState() { $("no-cards").hidden = cards.size > 0; }

  function replyForm(card) {
    const input = el("input", { type: "text", name: "text", "aria-label": "Reply", placeholder: "Write a reply…", autocomplete: "off" });
    const error = el("span", { class: "field-error", "data-reply-error": "" });
    const form = el("form", { class: "row", "data-reply": card.conversation_id }, input,
      el("button", { type: "submit", class: "primary" }, "Send"), error);
    const place = readPlace();
    if (place.conversation === card.conversation_id && place.draft) input.value = place.draft;
    input.addEventListener("focus", () => savePlace({ conversation: card.conversation_id, draft: input.value }));
    input.addEventListener("input", () => savePlace({ conversation: card.conversation_id, draft: input.value }));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const text = input.value;
      if (!text.trim()) { error.textContent = "Write something first."; return; }
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        const res = await api("POST", "/v1/conversations/" + encodeURIComponent(card.conversation_id) + "/messages", { text });
        error.textContent = "";
        input.value = "";
        savePlace({ draft: "" });
        // The status may already have arrived on the stream; then the node exists and is newer.
        if (!messageNodes.has(res.message_id)) {
          appendMessage(card.conversation_id, { id: res.message_id, conversation_id: card.conversation_id, direction: "out",
            text, status: res.status || "queued" });
        }
      } catch (err) {
        if (err.status === 401) fail(err);
        error.textContent = err.message + " (" + err.code + ")";
      } finally {
        button.disabled = false;
      }
    });
    return form;
  }

  function entryForConversation(id) {
    for (const entry of cards.values()) if (entry.card.conversation_id === id) return entry;
    return null;
  }

  function appendMessage(conversationId, m) {
    const entry = entryForConversation(conversationId);
    if (!entry || !entry.messages) return;
    const li = renderMessage(m);
    if (li.parentNode !== entry.messages) entry.messages.append(li);
    entry.messages.scrollTop = entry.messages.scrollHeight;
  }

  async function loadMessages(entry) {
    entry.loaded = true;
    try {
      const res = await api("GET", "/v1/conversations/" + encodeURIComponent(entry.card.conversation_id) + "/messages");
      if (res.conversation && res.conversation.contact && !entry.card.contact) {
        entry.card.contact = res.conversation.contact;
        entry.node.querySelector("h3").textContent = cardTitle(entry.card);
      }
      for (const m of res.messages || []) appendMessage(entry.card.conversation_id, m);
    } catch (err) {
      entry.loaded = false;
      fail(err);
    }
  }

  async function cardAction(id, action, button) {
    button.disabled = true;
    try {
      const card = await api("POST", "/v1/cards/" + encodeURIComponent(id) + "/" + action);
      notify("");
      if (action === "decline") {
        cards.get(id).node.remove();
        cards.delete(id);
        emptyState();
      } else {
        renderCard(card);
      }
    } catch (err) {
      fail(err);
      button.disabled = false;
    }
  }

  async function loadCards() {
    const res = await api("GET", "/v1/agents/me/cards");
    for (const card of res.cards || []) {
      if (card.state === "offered" || card.state === "accepted" || cards.has(card.id)) renderCard(card);
    }
  }

  // ---- the event stream ----

  function handleEvent(ev) {
    switch (ev.type) {
      case "card.offered":
        renderCard(ev.card);
        break;
      case "card.revoked":
        if (cards.has(ev.card.id)) renderCard(Object.assign({}, ev.card, { state: "revoked" }));
        break;
      case "conversation.closed":
        if (ev.card) renderCard(Object.assign({}, ev.card, { state: "closed" }));
        break;
      case "message.received":
      case "message.status":
        if (ev.message) {
          if (messageNodes.has(ev.message.id)) renderMessage(ev.message);
          else appendMessage(ev.message.conversation_id, ev.message);
        }
        break;
      case "presence.changed":
        loadPresence().catch(fail);
        break;
      case "stream.reset":
        loadCards().catch(fail);
        break;
      case "session.expired":
        sessionExpired();
        break;
    }
  }

  // parseBlock turns one SSE block (lines up to a blank line) into {id, data}.
  function parseBlock(block) {
    let id = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? "" : line.slice(i + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id") id = value;
      else if (field === "data") data.push(value);
    }
    return { id, data: data.join("\n") };
  }

  // The stream is read with fetch so that the token travels in a header (EventSource cannot send
  // one); after a drop it resumes from the last event id, so nothing is missed or seen twice. The
  // server ends it with session.expired when the token expires; it resumes after the next sign-in.
  async function streamLoop() {
    const generation = ++streamGeneration;
    let delay = 1000;
    while (generation === streamGeneration) {
      const headers = { Authorization: "Bearer " + chatgate.token(), Accept: "text/event-stream" };
      if (lastEventId) headers["Last-Event-ID"] = lastEventId;
      try {
        const res = await fetch("/v1/agents/me/events", { headers, cache: "no-store" });
        if (res.status === 401) { sessionExpired(); return; }
        if (!res.ok || !res.body) throw new Error("stream answered " + res.status);
        $("stream-state").textContent = "● live";
        delay = 1000;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, "\n");
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const { id, data } = parseBlock(buf.slice(0, cut));
            buf = buf.slice(cut + 2);
            if (id) {
              lastEventId = id;
              $("stream-state").dataset.lastEventId = id; // what a reconnect resumes from
              savePlace({ lastEventId: id });
            }
            if (!data) continue;
            try { handleEvent(JSON.parse(data)); } catch (err) { console.error("event", err); }
            if (generation !== streamGeneration) { reader.cancel().catch(() => {}); return; }
          }
        }
      } catch (err) {
        console.warn("event stream", err);
      }
      if (generation !== streamGeneration) return;
      $("stream-state").textContent = "○ reconnecting…";
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
      // What happened while disconnected and was not replayed (presence) is fetched again.
      loadPresence().catch(() => {});
    }
  }

  // ---- new conversation ----

  let templates = [];
  let idempotencyKey = "";
  const partLabels = { header_params: "Header", body_params: "Body", button_params: "Button" };

  function renderParams() {
    const box = $("nc-params");
    box.replaceChildren();
    const t = templates[$("nc-template").value];
    $("nc-template-text").textContent = t ? t.text || "" : "";
    if (!t) return;
    for (const part of ["header_params", "body_params", "button_params"]) {
      const n = t[part] || 0;
      if (!n) continue;
      const fs = el("fieldset", { "data-part": part }, el("legend", {}, partLabels[part] + " parameters"));
      for (let i = 0; i < n; i++) {
        const id = "nc-" + part + "-" + i;
        fs.append(el("label", { for: id }, "{{" + (i + 1) + "}}"),
          el("input", { type: "text", id, name: part + "." + i, autocomplete: "off" }));
      }
      fs.append(el("span", { class: "field-error", "data-field": "template." + part }));
      box.append(fs);
    }
  }

  async function openNewConversation() {
    const d = $("conversation-dialog");
    clearFieldErrors();
    try {
      templates = (await api("GET", "/v1/templates")).templates || [];
    } catch (err) { fail(err); return; }
    const sel = $("nc-template");
    sel.replaceChildren(...templates.map((t, i) => el("option", { value: i }, t.name + " (" + t.language + ")")));
    renderParams();
    idempotencyKey = crypto.randomUUID();
    d.showModal();
  }

  function clearFieldErrors() {
    for (const s of $("conversation-form").querySelectorAll(".field-error")) s.textContent = "";
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
      best.textContent = (best.textContent ? best.textContent + " " : "") + (best === general && f.field ? f.field + ": " : "") + f.message;
    }
    if (!fields.length) general.textContent = fallback;
  }

  $("new-conversation").addEventListener("click", openNewConversation);
  $("nc-template").addEventListener("change", renderParams);
  $("conversation-form").querySelector("[data-cancel]").addEventListener("click", () => $("conversation-dialog").close());
  $("conversation-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    clearFieldErrors();
    const form = e.target;
    const t = templates[$("nc-template").value];
    if (!t) { showFieldErrors([{ field: "template.name", message: "choose a template" }]); return; }
    const params = (part) => Array.from({ length: t[part] || 0 }, (_, i) => form.elements[part + "." + i].value);
    const body = { channel: "whatsapp", to: form.elements.to.value.trim(), phone_number_id: form.elements.phone_number_id.value.trim(),
      template: { name: t.name, language: t.language, header_params: params("header_params"), body_params: params("body_params"),
        button_params: params("button_params") } };
    const button = e.submitter;
    if (button) button.disabled = true;
    try {
      const res = await api("POST", "/v1/conversations", body, { "Idempotency-Key": idempotencyKey });
      $("conversation-dialog").close();
      notify("Conversation started: message " + res.message_id + " is " + res.status + ".", true);
      loadCards().catch(() => {});
    } catch (err) {
      showFieldErrors(err.fields || [], err.message + " (" + err.code + ")");
    } finally {
      if (button) button.disabled = false;
    }
  });

  // ---- start ----

  async function start() {
    if (started) { resume(); return; }
    started = true;
    const place = readPlace();
    if (place.agent === tokenSubject()) lastEventId = place.lastEventId || "";
    else sessionStorage.setItem(placeKey, JSON.stringify({ agent: tokenSubject() }));
    $("signin").hidden = true;
    $("presence").hidden = false;
    $("inbox").hidden = false;
    $("sign-out").hidden = false;
    try {
      // The catalogue's keys are read in either case (id or ID) so the console does not depend on it.
      reasons = ((await api("GET", "/v1/pause-reasons")).pause_reasons || [])
        .map((r) => ({ id: r.id || r.ID, label: r.label || r.Label || r.id || r.ID }));
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
    notify("Signed in again: going on where you were.", true);
    loadPresence().catch(fail);
    loadCards().then(focusPlace).catch(fail);
    streamLoop();
  }

  // focusPlace puts the cursor back in the reply box of the conversation being answered.
  function focusPlace() {
    const conv = readPlace().conversation;
    if (!conv) return;
    for (const f of document.querySelectorAll("form[data-reply]")) {
      if (f.dataset.reply === conv) f.elements.text.focus();
    }
  }

  $("sign-out").addEventListener("click", () => { sessionStorage.removeItem(placeKey); chatgate.signOut(); });
  chatgate.signIn({ form: $("signin-form"), picker: $("dev-picker"), notice: $("notice"), role: "agent",
    check: loadPresence, onReady: start });
})();
