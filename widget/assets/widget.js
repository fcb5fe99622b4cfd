// chatgate WebChat widget. One tag on the page:
//   <script src="https://GATEWAY/webchat/widget.js" data-site="shop" async></script>
// Every string from the visitor or an agent is rendered with textContent, never as HTML.
// The widget speaks Brazilian Portuguese or English: data-lang="pt-BR|en" on the tag, else the
// visitor's browser.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var site = script.getAttribute("data-site") || "";
  var catalogue = {
    "pt-BR": {
      title: "Fale com a gente", placeholder: "Escreva uma mensagem…", message: "Mensagem", send: "Enviar",
      open: "Conversar", close: "Fechar conversa", typing: "Um atendente está digitando…",
      closed: "A conversa foi encerrada. Escreva de novo para começar outra.",
      unavailable: "O chat não está disponível agora.", notSent: "A mensagem não foi enviada. Tente de novo.",
      log: "Conversa"
    },
    en: {
      title: "Chat with us", placeholder: "Type a message…", message: "Message", send: "Send",
      open: "Chat", close: "Close chat", typing: "An agent is typing…",
      closed: "The conversation was closed. Write again to start a new one.",
      unavailable: "The chat is not available right now.", notSent: "The message could not be sent. Try again.",
      log: "Conversation"
    }
  };
  var lang = script.getAttribute("data-lang") || "";
  if (!catalogue[lang]) {
    var prefs = navigator.languages || [navigator.language || ""];
    lang = "en";
    for (var i = 0; i < prefs.length; i++) {
      if (/^pt/i.test(prefs[i])) { lang = "pt-BR"; break; }
      if (/^en/i.test(prefs[i])) break;
    }
  }
  var words = catalogue[lang];
  var base = script.getAttribute("data-gateway") || new URL(script.src, location.href).origin;
  var storeKey = "chatgate.webchat." + site;
  var session = null, stream = null, lastId = "", seen = {}, typingTimer = null;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  // The styles come as a stylesheet from the gateway, not an inline <style>: a page whose
  // Content-Security-Policy allows the gateway's scripts allows its styles without 'unsafe-inline'.
  var style = el("link");
  style.rel = "stylesheet";
  style.href = base + "/webchat/widget.css";
  document.head.appendChild(style);

  var root = el("div", "cgw");
  root.setAttribute("lang", lang);
  var box = el("div", "cgw-box");
  // A named region: a screen reader's list of landmarks finds the chat.
  box.setAttribute("role", "region");
  box.setAttribute("aria-label", words.title);
  var head = el("div", "cgw-head", words.title);
  var log = el("div", "cgw-log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-label", words.log);
  log.setAttribute("aria-live", "polite");
  var form = el("form", "cgw-form");
  var input = el("input");
  input.placeholder = words.placeholder;
  input.setAttribute("aria-label", words.message);
  var sendBtn = el("button", "", words.send);
  sendBtn.type = "submit";
  var toggle = el("button", "cgw-toggle", words.open);
  toggle.type = "button";
  toggle.setAttribute("aria-expanded", "false");
  form.appendChild(input); form.appendChild(sendBtn);
  box.appendChild(head); box.appendChild(log); box.appendChild(form);
  root.appendChild(box); root.appendChild(toggle);
  // Shown once styled (or once the stylesheet failed: unstyled beats absent).
  function mount() {
    if (!root.parentNode) (document.body || document.documentElement).appendChild(root);
  }
  style.addEventListener("load", mount);
  style.addEventListener("error", mount);

  function note(text) {
    log.appendChild(el("div", "cgw-msg cgw-note", text));
    log.scrollTop = log.scrollHeight;
  }

  function show(m) {
    if (!m || seen[m.id]) return;
    seen[m.id] = true;
    var who = m.from === "agent" ? "agent" : "visitor";
    var line = el("div", "cgw-msg cgw-" + who, m.text || "");
    line.setAttribute("data-from", who);
    (m.attachments || (m.media ? [m.media] : [])).forEach(function (a) {
      if (a && /^https?:\/\//.test(a.url || "")) {
        var link = el("a", "", a.filename || a.caption || a.url);
        link.href = a.url; link.target = "_blank"; link.rel = "noopener noreferrer";
        line.appendChild(el("br")); line.appendChild(link);
      }
    });
    log.appendChild(line);
    log.scrollTop = log.scrollHeight;
  }

  function api(path, body) {
    return fetch(base + "/webchat/v1/" + path, {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/json" },
        session ? { Authorization: "Bearer " + session.token } : {}),
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) { return { status: r.status, body: j }; });
    });
  }

  function start() {
    try { session = JSON.parse(localStorage.getItem(storeKey) || "null"); } catch (e) { session = null; }
    if (session && new Date(session.expires_at) > new Date(Date.now() + 60000)) return Promise.resolve(session);
    // An expired token renews the same visitor (and its conversation) within the resume window.
    var previous = session && session.token;
    session = null;
    return api("sessions", previous ? { site: site, resume: previous } : { site: site }).then(function (r) {
      if (r.status === 401 && previous) { previous = null; return api("sessions", { site: site }); }
      return r;
    }).then(function (r) {
      // The server's message is for integrators: the visitor reads the catalogue's words.
      if (r.status !== 201) throw new Error(words.unavailable);
      session = r.body;
      try { localStorage.setItem(storeKey, JSON.stringify(session)); } catch (e) { /* private mode */ }
      return session;
    });
  }

  var retryDelay = 2000;
  function connect() {
    if (stream) stream.close();
    var url = base + "/webchat/v1/events?token=" + encodeURIComponent(session.token) +
      (lastId ? "&last_event_id=" + encodeURIComponent(lastId) : "");
    stream = new EventSource(url);
    stream.addEventListener("message", function (e) {
      lastId = e.lastEventId || lastId;
      try { show(JSON.parse(e.data).message); } catch (err) { /* ignore a malformed event */ }
    });
    // Each typing event holds the words for 3 s more (an earlier event's timer does not cut them short).
    stream.addEventListener("typing", function () {
      head.textContent = words.typing;
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () { head.textContent = words.title; }, 3000);
    });
    stream.addEventListener("conversation.closed", function (e) { lastId = e.lastEventId || lastId; note(words.closed); });
    var es = stream;
    es.onopen = function () { retryDelay = 2000; };
    es.onerror = function () {
      // EventSource reconnects by itself with Last-Event-ID; an expired token needs a new session.
      if (session && new Date(session.expires_at) <= new Date()) {
        es.close();
        start().then(connect, function () { note(words.unavailable); });
        return;
      }
      // A refusal (429 or 503 while the gateway is at its stream bounds) closes an EventSource for
      // good: try again later, backing off.
      if (es.readyState === EventSource.CLOSED && es === stream) {
        setTimeout(function () { if (es === stream) connect(); }, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 60000);
      }
    };
  }

  // begin starts the session and its stream once; a failed start is forgotten, so the next open or
  // message tries again instead of failing for good. The visitor reads only the catalogue's words:
  // a failed fetch's own message ("Failed to fetch") is the browser's, in its words.
  var ready = null;
  function begin() {
    if (!ready) ready = start().then(connect).catch(function (err) { ready = null; throw err; });
    return ready;
  }

  function setOpen(open) {
    root.classList.toggle("open", open);
    toggle.textContent = open ? words.close : words.open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open) input.focus();
  }
  toggle.addEventListener("click", function () {
    var open = !root.classList.contains("open");
    setOpen(open);
    if (open) begin().catch(function () { note(words.unavailable); });
  });
  // Escape closes the chat and gives the focus back to the button that opened it.
  root.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && root.classList.contains("open")) {
      setOpen(false);
      toggle.focus();
    }
  });

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value;
    if (!text.trim()) return;
    begin().then(function () {
      return api("messages", { text: text, page_url: location.href }).then(function (r) {
        if (r.status === 202 || r.status === 200) { input.value = ""; return; }
        note(words.notSent);
      }, function () { note(words.notSent); });
    }, function () { note(words.unavailable); });
  });

  window.chatgateWebChat = { open: function () { if (!root.classList.contains("open")) toggle.click(); } };
})();
