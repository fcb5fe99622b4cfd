// Shared by the pages (console, wallboard, reports, operations view): the API helper, sign-in, the
// event-stream reader and safe DOM building.
// Every string that comes from the network is inserted with textContent, never as HTML; every
// string of the page's own comes from the catalogue (i18n.js).
"use strict";

const chatgate = (() => {
  // The token lives for this tab only; it is sent in the Authorization header, never in a URL.
  const storageKey = "chatgate.token";
  let token = sessionStorage.getItem(storageKey) || "";

  class ApiError extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(e.message || "request failed with status " + status);
      this.status = status;
      this.code = e.code || "http_" + status;
      this.fields = e.fields || [];
    }
  }

  async function api(method, path, body, headers) {
    const h = Object.assign({ Authorization: "Bearer " + token }, headers || {});
    const init = { method, headers: h, cache: "no-store" };
    if (body instanceof FormData) {
      init.body = body; // multipart: the browser writes the Content-Type with its boundary
    } else if (body !== undefined) {
      h["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (_) {
      const e = new ApiError(0, null);
      e.network = true;
      throw e;
    }
    let data = null;
    const text = await res.text();
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }

  // el("li", {class: "x", dataset: {id: "1"}}, "text", child…) builds elements; strings become text nodes.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "dataset") Object.assign(node.dataset, v);
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      node.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }

  function setToken(t) {
    token = t;
    if (t) sessionStorage.setItem(storageKey, t); else sessionStorage.removeItem(storageKey);
  }

  // signIn wires the sign-in form and, in development, the picker of configured agents. onReady runs
  // once a token is accepted (check is an API call that proves it).
  function signIn({ form, picker, notice, role, check, onReady }) {
    async function tryToken(t) {
      setToken(t);
      try {
        await check();
      } catch (err) {
        setToken("");
        notice.textContent = err.code === "invalid_token" ? i18n.t("signin.invalid") :
          err.code === "role_required" ? i18n.t("signin.role") : i18n.errorText(err);
        return;
      }
      notice.textContent = "";
      onReady();
    }
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const t = form.elements.token.value.trim();
      if (t) tryToken(t);
    });
    // The picker exists only where the gateway runs in development (the endpoints are 404 otherwise).
    fetch("/console/dev-agents", { cache: "no-store" }).then((r) => r.ok ? r.json() : null).then((data) => {
      if (!data) return;
      const list = picker.querySelector("[data-agents]");
      // Only agent tokens come from the picker; the operations view shows how to mint an admin token.
      const entries = role === "agent" ? data.agents : [];
      for (const a of entries) {
        list.append(el("li", {}, el("button", {
          type: "button", "data-agent": a.id,
          onclick: async () => {
            try {
              const res = await fetch("/console/dev-token", { method: "POST", headers: { "Content-Type": "application/json" },
                body: JSON.stringify({ agent: a.id }) });
              const body = await res.json();
              if (!res.ok) throw new ApiError(res.status, body);
              tryToken(body.token);
            } catch (err) { notice.textContent = i18n.errorText(err); }
          },
        }, a.name ? a.name + " (" + a.id + ")" : a.id)));
      }
      picker.hidden = false;
    }).catch(() => {});
    if (token) tryToken(token);
  }

  function signOut() {
    setToken("");
    location.reload();
  }

  // fmtShort is a wait or a countdown as people say it: 45 s, 3 min, 2 h 05.
  function fmtShort(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  }

  function fmtDuration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const pad = (n) => String(n).padStart(2, "0");
    return pad(Math.floor(s / 3600)) + ":" + pad(Math.floor((s % 3600) / 60)) + ":" + pad(s % 60);
  }

  // parseBlock turns one Server-Sent Events block (lines up to a blank line) into {id, data}.
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

  // follow reads a Server-Sent Events stream with fetch, so that the token travels in a header
  // (EventSource cannot send one), and after a drop resumes from the last event id, so nothing is
  // missed or seen twice. It goes on until wanted() turns false or the server answers 401.
  // o: path; lastEventId() and saveEventId(id); wanted(); onState("live" | "reconnecting");
  // onOpen(fresh) — fresh: no id to resume from, the stream starts at the server's now; onEvent(event);
  // onUnauthorized(); onReconnect() (optional, after the wait that follows a drop).
  async function follow(o) {
    let delay = 1000;
    while (o.wanted()) {
      const last = o.lastEventId();
      const headers = { Authorization: "Bearer " + token, Accept: "text/event-stream" };
      if (last) headers["Last-Event-ID"] = last;
      try {
        const res = await fetch(o.path, { headers, cache: "no-store" });
        if (res.status === 401) { o.onUnauthorized(); return; }
        if (!res.ok || !res.body) throw new Error("stream answered " + res.status);
        o.onState("live");
        o.onOpen(!last);
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
            if (id) o.saveEventId(id);
            if (!data) continue;
            try { o.onEvent(JSON.parse(data)); } catch (err) { console.error("event", err); }
            if (!o.wanted()) { reader.cancel().catch(() => {}); return; }
          }
        }
      } catch (err) {
        console.warn("event stream", o.path, err);
      }
      if (!o.wanted()) return;
      o.onState("reconnecting");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
      if (o.onReconnect) o.onReconnect();
    }
  }

  // confirm asks a yes-or-no question in the page's #confirm-dialog before an action that changes
  // someone's work; it resolves true only on the OK button. A dialog's close event is a queued task:
  // a click may ask again before the previous answer's event arrives. So the pending question is
  // settled when the dialog closes, or when the next one is asked, with its own answer; a close
  // event arriving while the next one is open is stale.
  let confirmPending = null;
  let confirmWired = false;
  function settleConfirm() {
    if (!confirmPending) return;
    const resolve = confirmPending;
    confirmPending = null;
    resolve(document.getElementById("confirm-dialog").returnValue === "ok");
  }
  function confirm(title, text, ok, cancel) {
    const d = document.getElementById("confirm-dialog");
    if (!confirmWired) {
      d.addEventListener("close", () => { if (!d.open) settleConfirm(); });
      confirmWired = true;
    }
    settleConfirm();
    d.querySelector("#confirm-title").textContent = title;
    d.querySelector("#confirm-text").textContent = text;
    const error = d.querySelector("[data-error]");
    if (error) error.textContent = "";
    d.querySelector("[data-confirm-ok]").textContent = ok;
    d.querySelector("[data-confirm-cancel]").textContent = cancel;
    d.returnValue = "";
    return new Promise((resolve) => {
      confirmPending = resolve;
      d.showModal();
    });
  }

  return { api, el, ApiError, signIn, signOut, follow, confirm, fmtDuration, fmtShort, token: () => token };
})();
