// The operations view: asynq's queues, tasks and servers (/v1/ops), routing's waiting queues
// (/v1/queues), agents per channel (/v1/agents) and the event subscriptions with their dead letters
// (/v1/ops/integrations), refreshed every few seconds.
"use strict";

(() => {
  const { api, el } = chatgate;
  const { t } = i18n;
  const $ = (id) => document.getElementById(id);
  const refreshEvery = 3000;
  let timer = null;

  function notify(text) { $("notice").textContent = text; }
  let updatedAt = null;
  function renderUpdated() { $("updated").textContent = updatedAt ? t("ops.updated", { time: updatedAt.toLocaleTimeString(i18n.lang()) }) : ""; }
  const td = (v, cls) => el("td", { class: cls }, String(v));
  const seconds = (s) => s ? (s < 60 ? s.toFixed(1) + " s" : Math.round(s / 60) + " min") : "—";

  function fillTable(id, rows) {
    $(id).querySelector("tbody").replaceChildren(...rows);
  }

  async function taskAction(q, id, action, button) {
    button.disabled = true;
    try {
      if (action === "run") await api("POST", "/v1/ops/queues/" + encodeURIComponent(q) + "/tasks/" + encodeURIComponent(id) + "/run");
      else await api("DELETE", "/v1/ops/queues/" + encodeURIComponent(q) + "/tasks/" + encodeURIComponent(id));
      notify("");
    } catch (err) {
      notify(i18n.errorText(err));
    }
    refresh();
  }

  // ---- confirmation (the console's dialog: resolves true only on the OK button) ----
  const confirmAction = chatgate.confirm;

  // ---- integrations ----

  // ago says how long since an instant, in the page's language.
  function ago(iso) {
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 60) return t("ops.int.ago.s", { n: Math.floor(s) });
    if (s < 3600) return t("ops.int.ago.min", { n: Math.floor(s / 60) });
    if (s < 86400) return t("ops.int.ago.h", { n: Math.floor(s / 3600) });
    return t("ops.int.ago.d", { n: Math.floor(s / 86400) });
  }

  // errorWords puts a delivery error into words: what the receiver answered, or that it was not reached.
  function errorWords(e) {
    if (!e) return "";
    let m = /answered (\d{3})/.exec(e);
    if (m && m[1] === "410") return t("ops.int.err.gone");
    if (m) return t("ops.int.err.status", { code: m[1] });
    if (/max_age/.test(e)) return t("ops.int.err.maxAge");
    if (/expired/.test(e)) return t("ops.int.err.expired");
    if (/timeout|deadline/i.test(e)) return t("ops.int.err.timeout");
    if (/POST failed/.test(e)) return t("ops.int.err.unreachable");
    return e;
  }

  const subPath = (id) => "/v1/ops/integrations/" + encodeURIComponent(id);
  let intSig = "";

  async function deadAction(sub, d, action, button) {
    if (action === "delete") {
      const ok = await confirmAction(t("ops.int.confirmDelete.title", { type: d.type }), t("ops.int.confirmDelete.text"),
        t("ops.int.confirmDelete.ok"), t("ops.int.confirmDelete.cancel"));
      if (!ok) { button.focus(); return; }
    }
    button.disabled = true;
    try {
      if (action === "retry") await api("POST", subPath(sub) + "/dead-letters/" + encodeURIComponent(d.id) + "/retry");
      else if (action === "delete") await api("DELETE", subPath(sub) + "/dead-letters/" + encodeURIComponent(d.id));
      else await api("POST", subPath(sub) + "/enable");
      notify(t(action === "enable" ? "ops.int.enabled" : action === "retry" ? "ops.int.retried" : "ops.int.deleted"));
    } catch (err) {
      button.disabled = false;
      notify(i18n.errorText(err));
      return;
    }
    // The section's heading keeps the keyboard's place: the row with the button is gone.
    refresh().then(() => document.querySelector(`[data-subscription="${CSS.escape(sub)}"] h3`)?.focus());
  }

  function renderIntegrations(st, dead) {
    const held = st.held.conversations;
    $("integrations-summary").textContent = st.subscriptions.length === 0 ? t("ops.int.none")
      : t("ops.int.summary", { outbox: st.outbox, held }) + (held && st.held.oldest_since ? " " + t("ops.int.heldSince", { age: ago(st.held.oldest_since) }) : "");
    $("integrations").replaceChildren(...st.subscriptions.map((s, i) => {
      const dl = dead[i];
      const facts = [t("ops.int.pending", { n: s.pending }), t("ops.int.deadCount", { n: s.dead_letters })];
      if (s.state !== "healthy" && s.failures) facts.push(t("ops.int.failures", { n: s.failures }));
      if (s.failing_since) facts.push(t("ops.int.failingSince", { age: ago(s.failing_since) }));
      if (s.last_success_at) facts.push(t("ops.int.lastSuccess", { age: ago(s.last_success_at) }));
      return el("article", { class: "subscription", dataset: { subscription: s.id, state: s.state }, "aria-labelledby": "sub-" + i },
        el("h3", { id: "sub-" + i, tabindex: "-1" }, s.id + " → " + s.host),
        el("p", {}, el("strong", { class: "sub-state " + s.state, "data-col": "state" }, t("ops.int.state." + s.state)), " · ", facts.join(" · ")),
        s.state !== "healthy" && s.last_error ? el("p", { "data-col": "last_error" }, t("ops.int.lastError", { error: errorWords(s.last_error) })) : null,
        s.state !== "healthy" ? el("p", {}, el("button", { type: "button", "data-enable": s.id, onclick: (e) => deadAction(s.id, null, "enable", e.target) },
          t("ops.int.enable")), " ", el("span", { class: "muted" }, t(s.state === "disabled" ? "ops.int.enableDisabled" : "ops.int.enableUnhealthy"))) : null,
        dl.length === 0 ? el("p", { class: "muted" }, t("ops.int.noDead")) :
          el("table", { class: "dead-letters" },
            el("caption", {}, t("ops.int.deadCaption", { id: s.id })),
            el("thead", {}, el("tr", {}, ...["type", "conversation", "age", "error", "attempts", "actions"].map((c) => el("th", { scope: "col" }, t("ops.int.col." + c))))),
            el("tbody", {}, ...dl.map((d) => el("tr", { dataset: { deadLetter: d.id } },
              el("th", { scope: "row" }, d.type || "—"), el("td", {}, d.conversation_id ? el("code", {}, d.conversation_id) : "—"),
              el("td", { "data-dead-at": d.dead_at }, ago(d.dead_at)), el("td", { "data-col": "error" }, errorWords(d.error)), td(d.attempts, "num"),
              el("td", {}, el("div", { class: "row" },
                el("button", { type: "button", "data-retry-dead": d.id, "aria-label": t("ops.int.retryOf", { type: d.type, id: d.id }),
                  onclick: (e) => deadAction(s.id, d, "retry", e.target) }, t("ops.retry")),
                el("button", { type: "button", class: "danger", "data-delete-dead": d.id, "aria-label": t("ops.int.deleteOf", { type: d.type, id: d.id }),
                  onclick: (e) => deadAction(s.id, d, "delete", e.target) }, t("ops.delete")))))))));
    }));
  }

  async function refreshIntegrations() {
    const st = await api("GET", "/v1/ops/integrations");
    const dead = await Promise.all(st.subscriptions.map((s) => s.dead_letters
      ? api("GET", subPath(s.id) + "/dead-letters?limit=100").then((r) => r.dead_letters) : Promise.resolve([])));
    // Rebuilt only when something changed, so a focused button stays under the keyboard; the ages
    // are updated in place. Never while a confirmation is open.
    const sig = JSON.stringify([st, dead, i18n.lang()]);
    if ($("confirm-dialog").open) return;
    if (sig !== intSig) {
      intSig = sig;
      renderIntegrations(st, dead);
    } else {
      for (const c of $("integrations").querySelectorAll("[data-dead-at]")) c.textContent = ago(c.dataset.deadAt);
    }
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const [tq, servers, rq, agents, kept] = await Promise.all([
        api("GET", "/v1/ops/queues"), api("GET", "/v1/ops/servers"), api("GET", "/v1/queues"), api("GET", "/v1/agents"),
        api("GET", "/v1/ops/retention"), refreshIntegrations()]);

      $("retention").dataset.held = String(kept.held);
      $("retention").textContent = kept.held ? t("ops.retentionHeld", { n: kept.held, age: seconds(kept.oldest_hold_seconds) }) : t("ops.retentionNone");

      fillTable("task-queues", tq.queues.map((q) => el("tr", { dataset: { queue: q.queue } },
        el("th", { scope: "row" }, q.queue), ...["size", "pending", "active", "scheduled", "retry", "archived", "processed_today",
          "failed_today"].map((k) => el("td", { class: "num", "data-col": k }, String(q[k]))), td(seconds(q.latency_seconds)))));

      const days = tq.queues.find((q) => q.history.length)?.history.map((d) => d.date) || [];
      $("history").querySelector("thead").replaceChildren(el("tr", {}, el("th", { scope: "col" }, t("ops.col.queue")),
        ...days.map((d) => el("th", { scope: "col" }, d))));
      fillTable("history", tq.queues.filter((q) => q.history.length).map((q) => el("tr", { dataset: { queue: q.queue } },
        el("th", { scope: "row" }, q.queue), ...q.history.map((d) => el("td", { class: "num", "data-date": d.date }, d.processed + " / " + d.failed)))));

      const lists = [];
      for (const q of tq.queues) {
        if (q.retry) lists.push(api("GET", "/v1/ops/queues/" + encodeURIComponent(q.queue) + "/tasks?state=retry"));
        if (q.archived) lists.push(api("GET", "/v1/ops/queues/" + encodeURIComponent(q.queue) + "/tasks?state=archived"));
      }
      const tasks = (await Promise.all(lists)).flatMap((l) => l.tasks);
      $("no-tasks").hidden = tasks.length > 0;
      $("tasks").hidden = tasks.length === 0;
      fillTable("tasks", tasks.map((t) => el("tr", { dataset: { taskId: t.id, state: t.state } },
        td(t.queue), el("td", { "data-col": "state" }, i18n.t("ops.state." + t.state)), td(t.type), el("td", {}, el("code", {}, t.id)), td(t.retried + "/" + t.max_retry, "num"),
        td(t.last_error || ""),
        el("td", {}, el("div", { class: "row" },
          el("button", { type: "button", "data-run": t.id, onclick: (e) => taskAction(t.queue, t.id, "run", e.target) }, i18n.t("ops.retry")),
          el("button", { type: "button", class: "danger", "data-delete": t.id, onclick: (e) => taskAction(t.queue, t.id, "delete", e.target) }, i18n.t("ops.delete")))))));

      fillTable("servers", servers.servers.map((s) => el("tr", {},
        td(s.host), td(s.pid, "num"), td(s.status), td(s.concurrency, "num"),
        td(s.active_workers.length ? s.active_workers.map((w) => w.task_type + " (" + w.queue + ")").join(", ") : t("ops.idle")),
        td(new Date(s.started).toLocaleString(i18n.lang())))));

      fillTable("routing-queues", rq.queues.flatMap((q) => q.channels.map((c) => el("tr", { dataset: { queue: q.id, channel: c.channel } },
        el("th", { scope: "row" }, q.name || q.id), td(c.channel), el("td", { class: "num", "data-col": "waiting" }, String(c.waiting)),
        td(seconds(c.oldest_wait_seconds)), el("td", { class: "num", "data-col": "agents_available" }, String(c.agents_available))))));

      const perChannel = new Map();
      for (const a of agents.agents) {
        for (const ch of a.channels) {
          const row = perChannel.get(ch.channel) || { online: 0, paused: 0, offline: 0 };
          row[ch.state] = (row[ch.state] || 0) + 1;
          perChannel.set(ch.channel, row);
        }
      }
      fillTable("agents-online", [...perChannel.entries()].sort().map(([ch, r]) => el("tr", { dataset: { channel: ch } },
        el("th", { scope: "row" }, ch), ...["online", "paused", "offline"].map((k) => el("td", { class: "num", "data-col": k }, String(r[k]))))));

      updatedAt = new Date();
      renderUpdated();
      notify("");
    } catch (err) {
      notify(i18n.errorText(err));
    }
    timer = setTimeout(refresh, refreshEvery);
  }

  $("show-metrics").addEventListener("click", async () => {
    try {
      const res = await fetch("/metrics", { headers: { Authorization: "Bearer " + chatgate.token() }, cache: "no-store" });
      $("metrics").textContent = await res.text();
      $("metrics").hidden = false;
    } catch (err) { notify(i18n.errorText(err)); }
  });
  $("refresh").addEventListener("click", refresh);
  i18n.apply();
  i18n.switcher($("lang"), () => { renderUpdated(); intSig = ""; if (!$("dashboard").hidden) refresh(); });
  $("sign-out").addEventListener("click", chatgate.signOut);
  chatgate.signIn({ form: $("signin-form"), picker: $("dev-picker"), notice: $("notice"), role: "admin",
    check: () => api("GET", "/v1/ops/queues"),
    onReady: () => {
      $("signin").hidden = true;
      $("dashboard").hidden = false;
      $("refresh").hidden = false;
      $("sign-out").hidden = false;
      refresh();
    } });
})();
