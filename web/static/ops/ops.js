// The operations view: asynq's queues, tasks and servers (/v1/ops), routing's waiting queues
// (/v1/queues) and agents per channel (/v1/agents), refreshed every few seconds.
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

  async function refresh() {
    clearTimeout(timer);
    try {
      const [tq, servers, rq, agents, kept] = await Promise.all([
        api("GET", "/v1/ops/queues"), api("GET", "/v1/ops/servers"), api("GET", "/v1/queues"), api("GET", "/v1/agents"),
        api("GET", "/v1/ops/retention")]);

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
  i18n.switcher($("lang"), () => { renderUpdated(); if (!$("dashboard").hidden) refresh(); });
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
