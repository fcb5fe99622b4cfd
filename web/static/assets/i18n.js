// Every string the console and the operations view show, in Brazilian Portuguese and English.
// The language comes from the browser the first time and then from the agent's switch, remembered
// in localStorage. Error codes from the API are turned into words here: an agent never reads a code
// or a path.
"use strict";

const i18n = (() => {
  const languages = { "pt-BR": "Português", en: "English" };
  const storageKey = "chatgate.lang";

  const catalogue = {
    "pt-BR": {
      "lang.label": "Idioma",
      "console.title": "chatgate — atendimento",
      "console.brand": "chatgate atendimento",
      "ops.title": "chatgate — operações",
      "ops.brand": "chatgate operações",
      "signin.title": "Entrar",
      "signin.token": "Token do atendente (JWT Bearer)",
      "signin.tokenAdmin": "Token de administrador (JWT Bearer com papel admin)",
      "signin.submit": "Entrar",
      "signin.dev": "Desenvolvimento: entrar como um atendente configurado",
      "signin.devOps": "O acesso de desenvolvimento cria só tokens de atendente. Crie um token de administrador no servidor com o comando abaixo e cole-o acima.",
      "signin.invalid": "Esse token não vale aqui.",
      "signin.role": "O papel desse token não pode abrir esta página.",
      "signout": "Sair",
      "stream.live": "● ao vivo",
      "stream.reconnecting": "○ reconectando…",
      "stream.signedOut": "○ desconectado",
      "session.expired": "Sua sessão expirou: entre de novo para continuar de onde parou.",
      "session.resumed": "Você entrou de novo: tudo continua de onde parou.",
      "indicator.label": "Canais de chat",
      "indicator.offline": "Offline",
      "indicator.online": "Online {n}/{m}",
      "indicator.paused": "Em pausa {n}/{m}",
      "channels.title": "Canais de chat",
      "channels.close": "Fechar painel",
      "channel.loggedIn": "Conectado",
      "channel.toggle": "Conectado no {channel}",
      "channel.offline": "Offline",
      "channel.online": "Online",
      "channel.paused": "Em pausa",
      "channel.onlineFor": "há {time}",
      "channel.pausedFor": "há {time} — {reason}",
      "channel.offlineHint": "— ligue para receber conversas",
      "channel.pause": "Pausar",
      "channel.resume": "Retomar",
      "pause.title": "Pausar {channel}",
      "pause.group": "Compartilha uma fila com {channels}: pausam juntos.",
      "pause.reason": "Motivo",
      "pause.submit": "Pausar",
      "pause.choose": "Escolha um motivo.",
      "pause.none": "Nenhum motivo de pausa está configurado.",
      "cancel": "Cancelar",
      "newConversation": "Nova conversa",
      "nc.title": "Nova conversa no WhatsApp",
      "nc.to": "Número do cliente (com código do país, ex.: +5511999990001)",
      "nc.phone": "Número da empresa (vazio: o número da sua fila)",
      "nc.template": "Modelo de mensagem",
      "nc.params": "Parâmetros: {part}",
      "nc.part.header_params": "cabeçalho",
      "nc.part.body_params": "corpo",
      "nc.part.button_params": "botão",
      "nc.send": "Enviar",
      "nc.started": "Conversa iniciada: o modelo está na fila de envio.",
      "nc.chooseTemplate": "Escolha um modelo.",
      "field.to": "Digite o número no formato internacional, com + e código do país (E.164), ex.: +5511999990001.",
      "field.phone_number_id": "Esse número da empresa não é de uma das suas filas.",
      "field.template": "Esse modelo não está disponível.",
      "field.params": "Preencha cada parâmetro, sem quebras de linha nem tabulações.",
      "field.general": "Confira os campos marcados.",
      "alerts.enable": "Ativar alertas",
      "alerts.on": "Alertas ativos",
      "alerts.blocked": "Alertas bloqueados no navegador",
      "alerts.newOffer": "Nova conversa oferecida",
      "alerts.newOfferBody": "{who} em {channel}",
      "list.offers": "Ofertas",
      "list.mine": "Minhas conversas",
      "list.empty": "Nenhuma conversa ainda. Elas aparecem aqui quando clientes escrevem.",
      "list.noOffers": "Nenhuma oferta agora.",
      "card.accept": "Aceitar",
      "card.decline": "Recusar",
      "card.expiresIn": "expira em {time}",
      "card.expired": "expirando…",
      "card.unread": "{n} não lidas",
      "card.waiting": "aguarda há {time}",
      "card.answered": "respondida",
      "card.closed": "Encerrada",
      "card.revoked": "A oferta de {who} expirou e foi para outro atendente.",
      "card.dismiss": "Remover da lista",
      "card.customer": "Cliente",
      "thread.empty": "Escolha uma conversa na lista.",
      "thread.back": "Voltar à lista",
      "thread.backUnread": "Voltar à lista ({n} não lidas)",
      "thread.close": "Encerrar conversa",
      "thread.messages": "Mensagens",
      "thread.closed": "Esta conversa foi encerrada.",
      "thread.offered": "Aceite a oferta para responder.",
      "thread.loading": "Carregando mensagens…",
      "composer.label": "Resposta",
      "composer.placeholder": "Escreva uma resposta… (Enter envia, Shift+Enter quebra a linha)",
      "composer.send": "Enviar",
      "composer.empty": "Escreva algo primeiro.",
      "composer.windowClosed": "Passaram-se mais de 24 horas desde a última mensagem do cliente: o WhatsApp só permite um modelo aprovado agora.",
      "composer.sendTemplate": "Enviar um modelo",
      "composer.notYet": "O cliente ainda não escreveu nesta conversa: pelo WhatsApp só um modelo aprovado pode ser enviado até ele responder.",
      "msg.queued": "na fila",
      "msg.sent": "enviada",
      "msg.delivered": "entregue",
      "msg.read": "lida",
      "msg.played": "reproduzida",
      "msg.failed": "não enviada",
      "msg.deleted": "apagada da conversa",
      "msg.warning": "aviso do WhatsApp: {text}",
      "msg.raw": "como o WhatsApp enviou",
      "msg.order": "pedido: {items}",
      "msg.product": "sobre o produto {id}",
      "msg.ad": "veio do anúncio \"{headline}\"",
      "msg.kind": "[{kind}]",
      "day.today": "Hoje",
      "day.yesterday": "Ontem",
      "confirm.logout.title": "Sair do {channel}?",
      "confirm.logout.text.one": "Você tem 1 conversa aberta no {channel}. Ao sair, ela volta para a fila, em primeiro lugar, e outro atendente vai assumi-la.",
      "confirm.logout.text.other": "Você tem {n} conversas abertas no {channel}. Ao sair, elas voltam para a fila, em primeiro lugar, e outros atendentes vão assumi-las.",
      "confirm.logout.ok": "Sair e devolver à fila",
      "confirm.logout.cancel": "Continuar conectado",
      "confirm.close.title": "Encerrar a conversa com {who}?",
      "confirm.close.text": "A conversa sai da sua lista e não pode ser reaberta; se o cliente escrever de novo, começa uma nova conversa.",
      "confirm.close.ok": "Encerrar",
      "confirm.close.cancel": "Manter aberta",
      "stale.accepted": "Esta conversa já foi aceita em outra aba: a lista foi atualizada.",
      "stale.closed": "Esta conversa já foi encerrada (em outra aba ou por um supervisor): a lista foi atualizada.",
      "stale.gone": "Esta oferta não é mais sua: expirou ou foi tratada em outra aba. A lista foi atualizada.",
      "err.generic": "Não foi possível concluir. Tente de novo em instantes.",
      "err.network": "Sem conexão com o servidor. Tente de novo em instantes.",
      "err.invalid_token": "Sua sessão não vale mais: entre de novo.",
      "err.channel_not_enabled": "Esse canal não está habilitado para você.",
      "err.invalid_reason": "Escolha um motivo da lista.",
      "err.channel_offline": "Esse canal está offline: conecte-se antes.",
      "err.not_your_card": "Essa oferta não é sua.",
      "err.card_state": "Essa conversa mudou em outro lugar.",
      "err.not_your_conversation": "Essa conversa não é sua.",
      "err.conversation_closed": "Essa conversa foi encerrada.",
      "err.card_not_accepted": "Aceite a oferta antes de responder.",
      "err.window_closed": "Passaram-se mais de 24 horas desde a última mensagem do cliente: envie um modelo.",
      "err.whatsapp_not_logged_in": "Conecte-se no WhatsApp para iniciar uma conversa.",
      "err.agent_at_capacity": "Você já está no limite de conversas do WhatsApp.",
      "err.conversation_taken": "Esse cliente já está conversando com outro atendente nesse número.",
      "err.validation_failed": "Confira os campos marcados.",
      "err.idempotency_in_progress": "O envio anterior ainda está em andamento.",
      "err.rate_limited": "Muitas ações seguidas: espere um pouco.",
      "err.queue_not_found": "Essa fila não existe mais.",
      "err.task_not_found": "Essa tarefa não existe mais.",
      "err.task_state": "Essa tarefa está em execução ou já está para ser executada.",
      "err.role_required": "Seu papel não permite isso.",
      "ops.updated": "atualizado às {time}",
      "ops.refresh": "Atualizar",
      "ops.taskQueues": "Filas de envio (asynq)",
      "ops.history": "Processadas / com falha por dia (UTC)",
      "ops.tasks": "Tarefas aguardando nova tentativa ou arquivadas",
      "ops.none": "Nenhuma.",
      "ops.servers": "Servidores e workers conectados",
      "ops.routingQueues": "Filas de conversas",
      "ops.agents": "Atendentes por canal",
      "ops.metrics": "Métricas",
      "ops.metricsText": "O Prometheus lê /metrics com um token de administrador.",
      "ops.showMetrics": "Mostrar aqui",
      "ops.col.queue": "fila", "ops.col.size": "total", "ops.col.pending": "pendentes", "ops.col.active": "em execução",
      "ops.col.scheduled": "agendadas", "ops.col.retry": "nova tentativa", "ops.col.archived": "arquivadas",
      "ops.col.processed_today": "processadas hoje", "ops.col.failed_today": "falhas hoje", "ops.col.latency": "latência",
      "ops.col.state": "estado", "ops.col.type": "tipo", "ops.col.id": "id", "ops.col.retried": "tentativas",
      "ops.col.lastError": "último erro", "ops.col.actions": "ações", "ops.col.host": "host", "ops.col.pid": "pid",
      "ops.col.status": "situação", "ops.col.concurrency": "concorrência", "ops.col.busy": "workers ocupados",
      "ops.col.started": "início", "ops.col.channel": "canal", "ops.col.waiting": "aguardando", "ops.col.oldest": "espera mais longa",
      "ops.col.available": "atendentes livres", "ops.col.online": "online", "ops.col.paused": "em pausa", "ops.col.offline": "offline",
      "ops.idle": "ocioso",
      "ops.retry": "Tentar agora",
      "ops.delete": "Excluir",
      "ops.state.retry": "nova tentativa", "ops.state.archived": "arquivada",
    },
    en: {
      "lang.label": "Language",
      "console.title": "chatgate — agent desk",
      "console.brand": "chatgate desk",
      "ops.title": "chatgate — operations",
      "ops.brand": "chatgate operations",
      "signin.title": "Sign in",
      "signin.token": "Agent token (Bearer JWT)",
      "signin.tokenAdmin": "Admin token (Bearer JWT with role admin)",
      "signin.submit": "Sign in",
      "signin.dev": "Development: sign in as a configured agent",
      "signin.devOps": "The development sign-in mints agent tokens only. Mint an admin token on the gateway's host with the command below and paste it above.",
      "signin.invalid": "That token is not valid here.",
      "signin.role": "That token's role may not open this page.",
      "signout": "Sign out",
      "stream.live": "● live",
      "stream.reconnecting": "○ reconnecting…",
      "stream.signedOut": "○ signed out",
      "session.expired": "Your session has expired: sign in again to go on where you were.",
      "session.resumed": "Signed in again: going on where you were.",
      "indicator.label": "Chat channels",
      "indicator.offline": "Offline",
      "indicator.online": "Online {n}/{m}",
      "indicator.paused": "Paused {n}/{m}",
      "channels.title": "Chat channels",
      "channels.close": "Close panel",
      "channel.loggedIn": "Logged in",
      "channel.toggle": "Logged in on {channel}",
      "channel.offline": "Offline",
      "channel.online": "Online",
      "channel.paused": "Paused",
      "channel.onlineFor": "for {time}",
      "channel.pausedFor": "for {time} — {reason}",
      "channel.offlineHint": "— switch on to receive conversations",
      "channel.pause": "Pause",
      "channel.resume": "Resume",
      "pause.title": "Pause {channel}",
      "pause.group": "Shares a queue with {channels}: they pause together.",
      "pause.reason": "Reason",
      "pause.submit": "Pause",
      "pause.choose": "Choose a reason.",
      "pause.none": "No pause reasons are configured.",
      "cancel": "Cancel",
      "newConversation": "New conversation",
      "nc.title": "New WhatsApp conversation",
      "nc.to": "Customer's number (with country code, e.g. +5511999990001)",
      "nc.phone": "Business number (empty: your queue's number)",
      "nc.template": "Message template",
      "nc.params": "Parameters: {part}",
      "nc.part.header_params": "header",
      "nc.part.body_params": "body",
      "nc.part.button_params": "button",
      "nc.send": "Send",
      "nc.started": "Conversation started: the template is on its way.",
      "nc.chooseTemplate": "Choose a template.",
      "field.to": "Enter the number in international format, with + and the country code (E.164), e.g. +5511999990001.",
      "field.phone_number_id": "That business number is not one of your queues'.",
      "field.template": "That template is not available.",
      "field.params": "Fill in every parameter, without line breaks or tabs.",
      "field.general": "Check the marked fields.",
      "alerts.enable": "Turn on alerts",
      "alerts.on": "Alerts on",
      "alerts.blocked": "Alerts blocked in the browser",
      "alerts.newOffer": "New conversation offered",
      "alerts.newOfferBody": "{who} on {channel}",
      "list.offers": "Offers",
      "list.mine": "My conversations",
      "list.empty": "No conversations yet. They appear here as customers write.",
      "list.noOffers": "No offers right now.",
      "card.accept": "Accept",
      "card.decline": "Decline",
      "card.expiresIn": "expires in {time}",
      "card.expired": "expiring…",
      "card.unread": "{n} unread",
      "card.waiting": "waiting {time}",
      "card.answered": "answered",
      "card.closed": "Closed",
      "card.revoked": "The offer from {who} timed out and went to another agent.",
      "card.dismiss": "Remove from the list",
      "card.customer": "Customer",
      "thread.empty": "Choose a conversation from the list.",
      "thread.back": "Back to the list",
      "thread.backUnread": "Back to the list ({n} unread)",
      "thread.close": "Close conversation",
      "thread.messages": "Messages",
      "thread.closed": "This conversation is closed.",
      "thread.offered": "Accept the offer to reply.",
      "thread.loading": "Loading messages…",
      "composer.label": "Reply",
      "composer.placeholder": "Write a reply… (Enter sends, Shift+Enter for a new line)",
      "composer.send": "Send",
      "composer.empty": "Write something first.",
      "composer.windowClosed": "More than 24 hours have passed since the customer's last message: WhatsApp allows only an approved template now.",
      "composer.sendTemplate": "Send a template",
      "composer.notYet": "The customer has not written in this conversation yet: on WhatsApp only an approved template may be sent until they answer.",
      "msg.queued": "queued",
      "msg.sent": "sent",
      "msg.delivered": "delivered",
      "msg.read": "read",
      "msg.played": "played",
      "msg.failed": "not sent",
      "msg.deleted": "deleted from the chat",
      "msg.warning": "WhatsApp's warning: {text}",
      "msg.raw": "as WhatsApp sent it",
      "msg.order": "order: {items}",
      "msg.product": "about product {id}",
      "msg.ad": "came from the ad \"{headline}\"",
      "msg.kind": "[{kind}]",
      "day.today": "Today",
      "day.yesterday": "Yesterday",
      "confirm.logout.title": "Log out of {channel}?",
      "confirm.logout.text.one": "You have 1 open conversation on {channel}. Logging out gives it back to the queue, first in line, and another agent will take it.",
      "confirm.logout.text.other": "You have {n} open conversations on {channel}. Logging out gives them back to the queue, first in line, and other agents will take them.",
      "confirm.logout.ok": "Log out and give them back",
      "confirm.logout.cancel": "Stay logged in",
      "confirm.close.title": "Close the conversation with {who}?",
      "confirm.close.text": "It leaves your list and cannot be reopened; if the customer writes again, a new conversation starts.",
      "confirm.close.ok": "Close it",
      "confirm.close.cancel": "Keep it open",
      "stale.accepted": "This conversation was already accepted in another tab: the list is up to date now.",
      "stale.closed": "This conversation was already closed (in another tab or by a supervisor): the list is up to date now.",
      "stale.gone": "This offer is no longer yours: it timed out or was handled in another tab. The list is up to date now.",
      "err.generic": "That did not work. Try again in a moment.",
      "err.network": "The server cannot be reached. Try again in a moment.",
      "err.invalid_token": "Your session is no longer valid: sign in again.",
      "err.channel_not_enabled": "That channel is not enabled for you.",
      "err.invalid_reason": "Choose a reason from the list.",
      "err.channel_offline": "That channel is offline: log in first.",
      "err.not_your_card": "That offer is not yours.",
      "err.card_state": "That conversation changed elsewhere.",
      "err.not_your_conversation": "That conversation is not yours.",
      "err.conversation_closed": "That conversation is closed.",
      "err.card_not_accepted": "Accept the offer before replying.",
      "err.window_closed": "More than 24 hours have passed since the customer's last message: send a template.",
      "err.whatsapp_not_logged_in": "Log in on WhatsApp to start a conversation.",
      "err.agent_at_capacity": "You already have as many WhatsApp conversations as you may.",
      "err.conversation_taken": "This customer is already talking to another agent on that number.",
      "err.validation_failed": "Check the marked fields.",
      "err.idempotency_in_progress": "The previous send is still under way.",
      "err.rate_limited": "Too many actions in a row: wait a moment.",
      "err.queue_not_found": "That queue no longer exists.",
      "err.task_not_found": "That task no longer exists.",
      "err.task_state": "That task is running or already due.",
      "err.role_required": "Your role does not allow that.",
      "ops.updated": "updated at {time}",
      "ops.refresh": "Refresh",
      "ops.taskQueues": "Outbound task queues (asynq)",
      "ops.history": "Processed / failed per day (UTC)",
      "ops.tasks": "Tasks waiting for a retry or archived",
      "ops.none": "None.",
      "ops.servers": "Connected servers and workers",
      "ops.routingQueues": "Conversation queues (routing)",
      "ops.agents": "Agents per channel",
      "ops.metrics": "Metrics",
      "ops.metricsText": "Prometheus scrapes /metrics with an admin Bearer token.",
      "ops.showMetrics": "Show them here",
      "ops.col.queue": "queue", "ops.col.size": "size", "ops.col.pending": "pending", "ops.col.active": "active",
      "ops.col.scheduled": "scheduled", "ops.col.retry": "retry", "ops.col.archived": "archived",
      "ops.col.processed_today": "processed today", "ops.col.failed_today": "failed today", "ops.col.latency": "latency",
      "ops.col.state": "state", "ops.col.type": "type", "ops.col.id": "id", "ops.col.retried": "retried",
      "ops.col.lastError": "last error", "ops.col.actions": "actions", "ops.col.host": "host", "ops.col.pid": "pid",
      "ops.col.status": "status", "ops.col.concurrency": "concurrency", "ops.col.busy": "busy workers",
      "ops.col.started": "started", "ops.col.channel": "channel", "ops.col.waiting": "waiting", "ops.col.oldest": "oldest wait",
      "ops.col.available": "agents available", "ops.col.online": "online", "ops.col.paused": "paused", "ops.col.offline": "offline",
      "ops.idle": "idle",
      "ops.retry": "Retry now",
      "ops.delete": "Delete",
      "ops.state.retry": "retry", "ops.state.archived": "archived",
    },
  };

  function pick() {
    const saved = localStorage.getItem(storageKey);
    if (saved && catalogue[saved]) return saved;
    for (const l of navigator.languages || [navigator.language || ""]) {
      if (/^pt/i.test(l)) return "pt-BR";
      if (/^en/i.test(l)) return "en";
    }
    return "pt-BR"; // the product's agents are Brazilian
  }

  let lang = pick();
  const listeners = [];

  // t looks a key up in the chosen language, then in English, and fills {name} placeholders.
  function t(key, params) {
    let s = catalogue[lang][key];
    if (s === undefined) s = catalogue.en[key];
    if (s === undefined) s = key;
    return s.replace(/\{(\w+)\}/g, (m, name) => (params && params[name] !== undefined ? String(params[name]) : m));
  }

  // errorText turns an API error into words: the code's sentence, never the code or the path.
  function errorText(err) {
    if (err && err.code && catalogue.en["err." + err.code]) return t("err." + err.code);
    if (err && err.network) return t("err.network");
    return t("err.generic");
  }

  // apply fills the static page: data-i18n (text), data-i18n-aria-label, data-i18n-placeholder, data-i18n-title.
  function apply(root) {
    root = root || document;
    document.documentElement.lang = lang;
    for (const n of root.querySelectorAll("[data-i18n]")) n.textContent = t(n.dataset.i18n);
    for (const n of root.querySelectorAll("[data-i18n-aria-label]")) n.setAttribute("aria-label", t(n.dataset.i18nAriaLabel));
    for (const n of root.querySelectorAll("[data-i18n-placeholder]")) n.setAttribute("placeholder", t(n.dataset.i18nPlaceholder));
    for (const n of root.querySelectorAll("[data-i18n-title]")) n.setAttribute("title", t(n.dataset.i18nTitle));
    const title = document.querySelector("title[data-i18n]");
    if (title) document.title = t(title.dataset.i18n);
  }

  function set(l) {
    if (!catalogue[l]) return;
    lang = l;
    localStorage.setItem(storageKey, l);
    apply();
    for (const f of listeners) f(l);
  }

  // switcher wires a <select> to the languages; onChange runs after every switch (pages re-render).
  function switcher(select, onChange) {
    select.replaceChildren(...Object.entries(languages).map(([code, name]) => {
      const o = document.createElement("option");
      o.value = code;
      o.lang = code;
      o.textContent = name;
      return o;
    }));
    select.value = lang;
    select.addEventListener("change", () => set(select.value));
    if (onChange) listeners.push(onChange);
  }

  // label picks a configured label in the current language (labels: {pt-BR, en}), else the default.
  function label(entry) {
    return (entry.labels && entry.labels[lang]) || entry.label || entry.id;
  }

  return { t, errorText, apply, set, switcher, label, lang: () => lang, languages };
})();
