// The desk's media and interactive messages: customers' photos and stickers inline (click to
// enlarge), voice notes and audio with a player, video, documents as downloads with their name and
// size, locations as a map link, shared contacts as cards, buttons and lists; the attach button and
// drag-and-drop; the buttons-and-list composer; read receipts when the holder opens a WhatsApp
// conversation and the typing notice while they write. Files are fetched with the agent's token and
// shown from blob: URLs; every string from the network is inserted as text.
"use strict";

const consoleMedia = (() => {
  const { api, el, token } = chatgate;
  const { t } = i18n;
  const $ = (id) => document.getElementById(id);
  const fileKinds = ["image", "sticker", "audio", "video", "document"];

  // ---- showing what a message carries ----

  const loads = new Map(); // message id → Promise<{url, size, type}> of its file
  const nodes = new Map(); // message id → its media node, kept across renders so a playing note plays on

  function fetchFile(id) {
    if (!loads.has(id)) {
      const p = fetch("/v1/messages/" + encodeURIComponent(id) + "/media", { headers: { Authorization: "Bearer " + token() } })
        .then(async (res) => {
          if (!res.ok) {
            let code = "";
            try { code = ((await res.json()).error || {}).code || ""; } catch (_) { /* not JSON */ }
            throw Object.assign(new Error(code), { code, status: res.status });
          }
          const blob = await res.blob();
          return { url: URL.createObjectURL(blob), size: blob.size, type: blob.type };
        });
      p.catch(() => loads.delete(id)); // a failed load may be tried again
      loads.set(id, p);
    }
    return loads.get(id);
  }

  function fmtSize(n) {
    if (!(n > 0)) return "";
    const units = ["B", "KB", "MB", "GB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return new Intl.NumberFormat(i18n.lang(), { maximumFractionDigits: i ? 1 : 0 }).format(n) + " " + units[i];
  }

  // fileOf is what the message says of its file: a customer's (payload.media) or the agent's own.
  function fileOf(m) {
    const p = m.payload || {};
    if (!fileKinds.includes(m.kind)) return null;
    const f = p.media || p;
    if (!f || (!f.id && !f.url)) return null;
    return { id: f.id || "", url: f.url || "", type: f.mime_type || "", name: f.filename || "", size: f.size || 0,
      voice: !!f.voice, animated: !!f.animated };
  }

  function failure(node, err, retry) {
    const words = err && err.code === "media_expired" ? t("media.expired") : t("media.failed");
    node.replaceChildren(el("span", { class: "media-error", "data-media-error": "" }, words), " ",
      err && err.code === "media_expired" ? null : el("button", { type: "button", class: "link", onclick: retry }, t("media.retry")));
  }

  function fileNode(m, f) {
    const node = el("div", { class: "media media-" + m.kind, dataset: { media: m.kind } });
    if (!f.id) { // sent by link: the link itself
      node.append(el("a", { href: f.url, target: "_blank", rel: "noopener noreferrer" }, t("media.open")));
      return node;
    }
    const load = () => {
      node.dataset.state = "loading";
      if (m.kind !== "document") node.replaceChildren(el("span", { class: "muted" }, t("media.loading")));
      fetchFile(m.id).then((file) => { node.dataset.state = "ready"; show(node, m, f, file); },
        (err) => { node.dataset.state = "failed"; failure(node, err, load); });
    };
    if (m.kind === "document") {
      // The name is known at once; the size when the file is fetched (or from the agent's upload).
      const name = f.name || t("media.document");
      node.replaceChildren(el("span", { class: "doc" }, el("span", { "aria-hidden": "true" }, "↓ "),
        el("span", { "data-doc-name": "" }, name), " ", el("span", { class: "muted", "data-doc-size": "" }, fmtSize(f.size))));
    }
    load();
    return node;
  }

  function show(node, m, f, file) {
    const caption = m.text || "";
    switch (m.kind) {
      case "image":
      case "sticker": {
        const alt = caption || t(m.kind === "sticker" ? "media.sticker" : "media.image");
        const img = el("img", { src: file.url, alt, class: m.kind === "sticker" ? "sticker" : "thumb" });
        node.replaceChildren(el("button", { type: "button", class: "thumb-button", "aria-label": t("media.enlarge", { what: alt }),
          onclick: () => enlarge(file.url, alt) }, img));
        break;
      }
      case "audio":
        node.replaceChildren(el("audio", { controls: true, preload: "metadata", src: file.url,
          "aria-label": t(f.voice || /ogg/.test(file.type || f.type) ? "media.voice" : "media.audio") }));
        break;
      case "video":
        node.replaceChildren(el("video", { controls: true, preload: "metadata", src: file.url, "aria-label": caption || t("media.video") }));
        break;
      case "document": {
        const name = f.name || t("media.document");
        node.replaceChildren(el("a", { href: file.url, download: name, class: "doc", "data-doc": "" },
          el("span", { "aria-hidden": "true" }, "↓ "), el("span", { "data-doc-name": "" }, name), " ",
          el("span", { class: "muted", "data-doc-size": "" }, fmtSize(f.size || file.size)),
          el("span", { class: "visually-hidden" }, " " + t("media.download"))));
        break;
      }
    }
  }

  function enlarge(url, alt) {
    const d = $("media-viewer");
    const img = d.querySelector("img");
    img.src = url;
    img.alt = alt;
    d.showModal();
  }

  function locationNode(l) {
    const lat = Number(l.latitude), lon = Number(l.longitude);
    const href = "https://www.openstreetmap.org/?mlat=" + lat + "&mlon=" + lon + "#map=17/" + lat + "/" + lon;
    const label = [l.name, l.address].filter(Boolean).join(" — ") || lat.toFixed(5) + ", " + lon.toFixed(5);
    return el("div", { class: "media media-location", dataset: { media: "location" } },
      el("a", { href, target: "_blank", rel: "noopener noreferrer" }, label,
        el("span", { class: "visually-hidden" }, " " + t("media.map"))));
  }

  function contactsNode(list) {
    const cardsOf = (Array.isArray(list) ? list : []).slice(0, 10).map((c) => {
      const name = (c.name && (c.name.formatted_name || [c.name.first_name, c.name.last_name].filter(Boolean).join(" "))) || t("media.contact");
      const lines = [];
      for (const p of c.phones || []) if (p.phone) lines.push(el("li", {}, t("media.phone"), ": ", p.phone));
      for (const e of c.emails || []) if (e.email) lines.push(el("li", {}, t("media.email"), ": ", e.email));
      if (c.org && c.org.company) lines.push(el("li", {}, c.org.company));
      return el("div", { class: "contact-card", "data-contact-card": "" }, el("strong", {}, name), el("ul", {}, ...lines));
    });
    return el("div", { class: "media media-contacts", dataset: { media: "contacts" } }, ...cardsOf);
  }

  function interactiveNode(p) {
    const box = el("div", { class: "interactive", dataset: { media: "interactive" } });
    if (p.header) box.append(el("strong", { class: "i-header" }, p.header));
    if (p.footer) box.append(el("span", { class: "i-footer muted" }, p.footer));
    if (p.type === "button") {
      box.append(el("ul", { class: "i-buttons", "aria-label": t("ic.buttons") }, ...(p.buttons || []).map((b) => el("li", {}, b.title))));
    } else if (p.type === "list") {
      box.append(el("span", { class: "i-list-button" }, "☰ " + (p.button || "")));
      for (const s of p.sections || []) {
        box.append(el("ul", { class: "i-rows", "aria-label": s.title || t("ic.rows") }, ...(s.rows || []).map((r) =>
          el("li", {}, r.title, r.description ? el("span", { class: "muted" }, " — " + r.description) : null))));
      }
    }
    return box;
  }

  // quoteNode links a customer's message (a tapped button, a reply) to the message it answers.
  function quoteNode(m, entry) {
    const p = m.payload || {};
    if (!p.reply_to || !entry) return null;
    const answered = [...entry.messages.values()].find((x) => x.provider_message_id === p.reply_to);
    if (!answered) return null;
    const label = p.reply && p.reply.title ? t("msg.chose", { choice: p.reply.title }) : t("msg.replyTo");
    return el("div", { class: "quote", "data-reply-to": answered.id }, el("span", { class: "muted" }, label), " ",
      el("q", {}, (answered.text || "").slice(0, 120)));
  }

  // content is what messageNode adds for m (kept across renders), or null; and whether it replaces
  // the kind label ("[image]") the text would otherwise be.
  function content(m, entry) {
    const p = m.payload || {};
    const parts = [];
    const quote = quoteNode(m, entry);
    if (quote) parts.push(quote);
    let node = nodes.get(m.id);
    if (!node) {
      const f = fileOf(m);
      if (f) node = fileNode(m, f);
      else if (m.kind === "location" && p.location) node = locationNode(p.location);
      else if (m.kind === "contacts" && p.contacts) node = contactsNode(p.contacts);
      else if (m.kind === "interactive" && m.direction === "out") node = interactiveNode(p);
      if (node) nodes.set(m.id, node);
    }
    if (node) parts.push(node);
    return { parts, replacesLabel: !!node && !m.text };
  }

  // ---- read receipts and typing ----

  const marked = new Map();   // conversation id → newest customer message marked read
  const typedAt = new Map();  // conversation id → when the last typing notice went
  function opened(entry) {
    if (!entry || entry.card.state !== "accepted" || document.hidden) return;
    const last = [...entry.messages.values()].filter((m) => m.direction === "in" && m.kind !== "system").pop();
    if (!last || entry.card.channel !== "whatsapp" || marked.get(entry.card.conversation_id) === last.id) return;
    marked.set(entry.card.conversation_id, last.id);
    api("POST", "/v1/conversations/" + encodeURIComponent(entry.card.conversation_id) + "/read").catch(() => {
      marked.delete(entry.card.conversation_id); // tried again on the next opening
    });
  }

  function typing(entry) {
    if (!entry || entry.card.state !== "accepted") return;
    const id = entry.card.conversation_id;
    const now = Date.now();
    if (now - (typedAt.get(id) || 0) < 10000) return;
    typedAt.set(id, now);
    api("POST", "/v1/conversations/" + encodeURIComponent(id) + "/typing").catch(() => {});
  }

  // ---- sending files and interactive messages ----

  let hooks = null; // {current(): entry, sent(entry, res, message)}
  let pending = null; // the file chosen for the open conversation

  function pick(file) {
    pending = file || null;
    $("reply-error").textContent = "";
    const chip = $("attach-chip");
    chip.hidden = !pending;
    $("attach-name").textContent = pending ? pending.name + " · " + fmtSize(pending.size) : "";
    $("reply").setAttribute("placeholder", t(pending ? "composer.caption" : "composer.placeholder"));
    if (pending) $("reply").focus();
  }

  async function sendFile(entry, caption) {
    const error = $("reply-error");
    const form = new FormData();
    form.append("file", pending, pending.name);
    if (caption.trim()) form.append("caption", caption);
    const conv = entry.card.conversation_id;
    const file = pending;
    $("send").disabled = true;
    try {
      const res = await api("POST", "/v1/conversations/" + encodeURIComponent(conv) + "/messages", form);
      error.textContent = "";
      $("reply").value = "";
      pick(null);
      const kind = kindOf(file);
      // The agent's own file is shown from their computer, not fetched back.
      loads.set(res.message_id, Promise.resolve({ url: URL.createObjectURL(file), size: file.size, type: file.type }));
      hooks.sent(entry, res, { kind, text: caption.trim(), payload: { kind, id: "pending", filename: file.name, mime_type: file.type, size: file.size } });
    } catch (err) {
      error.textContent = fileError(err, file);
    } finally {
      $("send").disabled = false;
    }
  }

  // WhatsApp's limits per kind, to say in the agent's language which one a refused file broke.
  const limits = { image: 5 << 20, audio: 16 << 20, video: 16 << 20, document: 100 << 20, sticker: 500 << 10 };

  function fileError(err, file) {
    const kind = kindOf(file);
    if (err.code === "media_too_large") {
      const limit = kind === "sticker" && file.size <= limits.sticker ? 100 << 10 : limits[kind];
      return t("media.tooLarge", { kind: t("kind." + kind), limit: fmtSize(limit), size: fmtSize(file.size) });
    }
    if (err.code === "media_type_not_accepted") return t("media.typeRefused", { type: file.type || file.name });
    return i18n.errorText(err);
  }

  function kindOf(file) {
    const type = file.type || "";
    if (type === "image/webp") return "sticker";
    if (type === "image/jpeg" || type === "image/png") return "image";
    if (type.startsWith("audio/")) return "audio";
    if (type.startsWith("video/")) return "video";
    return "document";
  }

  function openInteractive() {
    const d = $("interactive-dialog");
    d.querySelector("form").reset();
    clearErrors();
    switchType();
    d.showModal();
  }

  function switchType() {
    const list = $("ic-form").elements.type.value === "list";
    $("ic-buttons").hidden = list;
    $("ic-list").hidden = !list;
  }

  function clearErrors() {
    for (const n of $("ic-form").querySelectorAll(".field-error")) n.textContent = "";
  }

  // built reads the form into the API's interactive message.
  function built() {
    const f = $("ic-form").elements;
    const it = { type: f.type.value, body: f.body.value, header: f.header.value || undefined, footer: f.footer.value || undefined };
    if (it.type === "button") {
      it.buttons = [f.b0, f.b1, f.b2].map((i) => i.value.trim()).filter(Boolean).map((title, i) => ({ id: "b" + (i + 1), title }));
    } else {
      it.button = f.listButton.value;
      const rows = f.rows.value.split("\n").map((l) => l.trim()).filter(Boolean).map((l, i) => {
        const [title, description] = l.split("|").map((s) => s.trim());
        return { id: "r" + (i + 1), title, description: description || undefined };
      });
      it.sections = [{ title: f.section.value || undefined, rows }];
    }
    return it;
  }

  // fieldFor is the form field a server field error names.
  function fieldFor(path) {
    let m;
    if ((m = /^interactive\.buttons\[(\d)\]/.exec(path))) return "b" + m[1];
    if (/^interactive\.buttons/.test(path)) return "b0";
    if (/^interactive\.sections\[\d+\]\.title/.test(path)) return "section";
    if (/^interactive\.sections/.test(path)) return "rows";
    if (path === "interactive.button") return "listButton";
    const name = path.replace(/^interactive\./, "");
    return ["body", "header", "footer"].includes(name) ? name : "body";
  }

  async function sendInteractive(e) {
    e.preventDefault();
    const entry = hooks.current();
    if (!entry) return;
    clearErrors();
    const it = built();
    const submit = $("ic-form").querySelector("[type=submit]");
    submit.disabled = true;
    try {
      const res = await api("POST", "/v1/conversations/" + encodeURIComponent(entry.card.conversation_id) + "/messages", { interactive: it });
      $("interactive-dialog").close();
      hooks.sent(entry, res, { kind: "interactive", text: it.body, payload: it });
    } catch (err) {
      if (err.code === "validation_failed" && err.fields.length) {
        for (const fe of err.fields) {
          const slot = $("ic-form").querySelector('.field-error[data-field="' + fieldFor(fe.field) + '"]');
          if (slot && !slot.textContent) slot.textContent = t("ic.err." + (/^b\d$/.test(slot.dataset.field) ? "button" : slot.dataset.field));
        }
      } else {
        $("ic-form").querySelector('.field-error[data-field=""]').textContent = i18n.errorText(err);
      }
    } finally {
      submit.disabled = false;
    }
  }

  function install(h) {
    hooks = h;
    $("attach").addEventListener("click", () => $("attach-input").click());
    $("attach-input").addEventListener("change", (e) => { pick(e.target.files[0]); e.target.value = ""; });
    $("attach-clear").addEventListener("click", () => { pick(null); $("reply").focus(); });
    $("interactive-open").addEventListener("click", openInteractive);
    $("ic-form").addEventListener("change", (e) => { if (e.target.name === "type") switchType(); });
    $("ic-form").addEventListener("submit", sendInteractive);
    $("ic-form").querySelector("[data-cancel]").addEventListener("click", () => $("interactive-dialog").close());
    $("media-viewer").addEventListener("click", (e) => { if (e.target === e.currentTarget || e.target.closest("[data-close]")) $("media-viewer").close(); });
    // Drag and drop a file anywhere on the open thread.
    const thread = $("thread-body");
    thread.addEventListener("dragover", (e) => {
      if (![...e.dataTransfer.types].includes("Files") || $("composer").hidden) return;
      e.preventDefault();
      thread.classList.add("dropping");
    });
    thread.addEventListener("dragleave", (e) => { if (!thread.contains(e.relatedTarget)) thread.classList.remove("dropping"); });
    thread.addEventListener("drop", (e) => {
      thread.classList.remove("dropping");
      if (!e.dataTransfer.files.length || $("composer").hidden) return;
      e.preventDefault();
      pick(e.dataTransfer.files[0]);
    });
    $("reply").addEventListener("input", () => typing(hooks.current()));
    document.addEventListener("visibilitychange", () => opened(hooks.current()));
  }

  // sendPending sends the chosen file with the reply box as its caption; false when none is chosen.
  function sendPending(entry, caption) {
    if (!pending) return false;
    sendFile(entry, caption);
    return true;
  }

  // conversationChanged forgets a file chosen for another conversation.
  function conversationChanged() { if (pending) pick(null); }

  // relabel rebuilds media nodes in a new language (files already fetched are not fetched again).
  function relabel() { nodes.clear(); }

  return { content, opened, install, sendPending, conversationChanged, relabel, fmtSize };
})();
