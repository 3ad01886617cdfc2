// faaso's admin page: plain DOM, no framework. The token lives in sessionStorage (this tab only)
// and goes out as a bearer header; nothing from the server is ever inserted as HTML.
"use strict";

const TOKEN_KEY = "faaso.token";
const $ = (selector) => document.querySelector(selector);

let token = sessionStorage.getItem(TOKEN_KEY);
let eventsAbort = null;
let logsAbort = null;
let refreshTimer = null;

class Unauthorized extends Error {}

/** Calls the admin API; a non-2xx answer becomes an Error carrying the server's message. */
async function api(method, path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${token}` }, options.headers || {});
  const response = await fetch(path, { method, headers, body: options.body, signal: options.signal });
  if (response.status === 401) {
    throw new Unauthorized("the token was refused");
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && body.error) message = body.error;
    } catch (_) { /* not JSON: keep the status line */ }
    throw new Error(message);
  }
  return response;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function setConnection(text) {
  $("#connection").textContent = text;
}

function showError(where, error) {
  if (error instanceof Unauthorized) {
    logOut("The server refused the token; log in again.");
    return;
  }
  $(where).textContent = error ? String(error.message || error) : "";
}

// ---- login ----

async function logIn(candidate) {
  token = candidate;
  try {
    await api("GET", "/admin/funkos");
  } catch (error) {
    token = null;
    $("#login-error").textContent =
      error instanceof Unauthorized ? "That token was refused." : `Cannot reach the server: ${error.message}`;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, candidate);
  $("#login-error").textContent = "";
  $("#token").value = "";
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#logout").hidden = false;
  await Promise.all([refreshFunkos(), refreshSecrets()]);
  followEvents();
}

function logOut(message) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  if (eventsAbort) eventsAbort.abort();
  if (logsAbort) logsAbort.abort();
  $("#app").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  setConnection("");
  $("#token").focus();
}

// ---- funkos ----

function health(funko) {
  if (funko.error) return "error";
  if (funko.desired === null || funko.desired === undefined) return "invalid";
  if (funko.desired === 0) return funko.ready === 0 ? "stopped" : "rolling";
  if (funko.ready === 0) return "down";
  if (funko.outdated > 0) return "rolling";
  if (funko.ready < funko.desired) return "degraded";
  return "healthy";
}

function funkoRow(name) {
  const id = `scale-${name}`;
  const input = el("input", { id, name: "scale", type: "number", min: "0", max: "100", required: "" });
  // Once someone touches the field, live refreshes leave it alone until the form is sent.
  for (const touched of ["focus", "input", "change"]) {
    input.addEventListener(touched, () => { input.dataset.edited = "yes"; });
  }
  const scaleForm = el("form", {
    onsubmit: (event) => {
      event.preventDefault();
      delete input.dataset.edited;
      scale(name, Number(input.value));
    },
  },
    el("label", { for: id, class: "visually-hidden", text: `Instances of ${name}` }),
    input,
    el("button", { type: "submit", text: "Scale" }));
  const actions = el("div", { class: "actions" },
    scaleForm,
    el("button", { type: "button", text: "Logs", "aria-label": `Logs of ${name}`, onclick: () => openLogs(name) }),
    el("button", { type: "button", class: "danger", text: "Delete", "aria-label": `Delete ${name}`, onclick: () => remove(name) }));
  return el("tr", { "data-funko": name },
    el("th", { scope: "row", class: "name", text: name }),
    el("td", { class: "desired number" }),
    el("td", { class: "ready number" }),
    el("td", { class: "health" }),
    el("td", { class: "image" }),
    el("td", { class: "image-age" }),
    el("td", { class: "last-error" }),
    el("td", {}, actions));
}

// An age in its largest whole unit, as `docker ps` says it.
function age(seconds) {
  const s = Math.max(0, seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

function renderFunkos(board) {
  const body = $("#funkos tbody");
  const rows = new Map([...body.rows].map((row) => [row.dataset.funko, row]));
  const seen = new Set();
  for (const funko of board.funkos) {
    seen.add(funko.name);
    let row = rows.get(funko.name);
    if (!row) {
      row = funkoRow(funko.name);
      body.append(row);
    }
    const desired = funko.desired === null || funko.desired === undefined ? "–" : String(funko.desired);
    row.querySelector(".desired").textContent = desired;
    row.querySelector(".ready").textContent = String(funko.ready) + (funko.outdated ? ` (+${funko.outdated} old)` : "");
    const state = health(funko);
    const cell = row.querySelector(".health");
    cell.textContent = state;
    cell.className = `health health-${state}`;
    row.querySelector(".image").textContent = funko.image || "–";
    const built = row.querySelector(".image-age");
    built.textContent = funko.image_created ? `${age(board.updated_at - funko.image_created)} ago` : "–";
    built.title = funko.image_created ? new Date(funko.image_created * 1000).toLocaleString() : "";
    row.querySelector(".last-error").textContent = funko.error || "";
    const input = row.querySelector("input[name=scale]");
    if (!input.dataset.edited && funko.desired !== null && funko.desired !== undefined) {
      input.value = String(funko.desired);
    }
  }
  for (const [name, row] of rows) {
    if (!seen.has(name)) row.remove();
  }
  $("#no-funkos").hidden = board.funkos.length > 0;
  $("#funkos").hidden = board.funkos.length === 0;
  const when = board.updated_at ? new Date(board.updated_at * 1000).toLocaleTimeString() : "never";
  $("#pass").textContent = `Reconcile pass ${board.pass}, finished at ${when}.`;
}

async function refreshFunkos() {
  try {
    const response = await api("GET", "/admin/funkos");
    renderFunkos(await response.json());
  } catch (error) {
    showError("#action-error", error);
  }
}

async function scale(name, count) {
  if (!Number.isInteger(count) || count < 0) {
    $("#action-error").textContent = "The number of instances must be a whole number, 0 or more.";
    return;
  }
  try {
    const response = await api("POST", `/admin/funkos/${encodeURIComponent(name)}/scale`, {
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ scale: count }),
    });
    const answer = await response.json();
    $("#action-error").textContent = "";
    $("#notice").textContent = `${name}: scale ${answer.from} → ${answer.to}; the server is converging.`;
  } catch (error) {
    showError("#action-error", error);
  }
}

async function remove(name) {
  if (!window.confirm(`Delete funko ${name}? Its folder is removed and its instances stop.`)) return;
  try {
    await api("DELETE", `/admin/funkos/${encodeURIComponent(name)}`);
    $("#action-error").textContent = "";
    $("#notice").textContent = `${name} deleted; its instances are stopping.`;
    scheduleRefresh();
  } catch (error) {
    showError("#action-error", error);
  }
}

// ---- secrets ----

async function refreshSecrets() {
  try {
    const response = await api("GET", "/admin/secrets");
    const secrets = await response.json();
    const body = $("#secrets tbody");
    body.replaceChildren(...Object.entries(secrets).map(([funko, keys]) =>
      el("tr", { "data-funko": funko },
        el("th", { scope: "row", text: funko }),
        el("td", { class: "keys", text: keys.join(", ") }))));
    const empty = Object.keys(secrets).length === 0;
    $("#no-secrets").hidden = !empty;
    $("#secrets").hidden = empty;
  } catch (error) {
    showError("#action-error", error);
  }
}

// ---- logs ----

async function openLogs(name) {
  if (logsAbort) logsAbort.abort();
  const abort = new AbortController();
  logsAbort = abort;
  const output = $("#logs-output");
  output.textContent = "";
  $("#logs-funko").textContent = name;
  $("#logs").hidden = false;
  try {
    const response = await api("GET", `/admin/funkos/${encodeURIComponent(name)}/logs?follow=1&tail=200`, { signal: abort.signal });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const stick = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
      output.append(value);
      // Keep the last ~200 kB so a chatty funko cannot grow the page without bound.
      if (output.textContent.length > 200000) output.textContent = output.textContent.slice(-150000);
      if (stick) output.scrollTop = output.scrollHeight;
    }
  } catch (error) {
    if (abort.signal.aborted) return;
    if (error instanceof Unauthorized) return showError("#action-error", error);
    output.append(`\n[${error.message}]\n`);
  }
}

function closeLogs() {
  if (logsAbort) logsAbort.abort();
  logsAbort = null;
  $("#logs").hidden = true;
}

// ---- live events (fetch + stream: EventSource cannot send the Authorization header) ----

function scheduleRefresh(secrets) {
  if (secrets) refreshSecrets();
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshFunkos, 150);
}

function describeEvent(event) {
  switch (event.type) {
    case "pass": return `pass ${event.pass}: ${event.steps} steps` + (event.pending.length ? `, pending ${event.pending.join(", ")}` : "");
    case "instance_ready": return `${event.funko}: ${event.instance} is ready`;
    case "instance_leaving": return `${event.funko}: an instance is leaving`;
    case "deployed": return `${event.funko}: deployed`;
    case "deleted": return `${event.funko}: deleted`;
    case "scaled": return `${event.funko}: scaled to ${event.scale}`;
    case "secret": return `${event.funko}: secret ${event.key} ${event.removed ? "removed" : "set"}`;
    default: return event.type;
  }
}

function onEvent(event) {
  scheduleRefresh(event.type === "secret");
  // A pass that changed nothing is the periodic resync: not news.
  if (event.type === "pass" && event.steps === 0 && event.pending.length === 0) return;
  const list = $("#events");
  list.prepend(el("li", { text: `${new Date().toLocaleTimeString()} ${describeEvent(event)}` }));
  while (list.children.length > 50) list.lastChild.remove();
}

async function followEvents() {
  let delay = 1000;
  while (token) {
    const abort = new AbortController();
    eventsAbort = abort;
    try {
      const response = await api("GET", "/admin/events", { signal: abort.signal, headers: { Accept: "text/event-stream" } });
      setConnection("Live: updates as the server reconciles.");
      delay = 1000;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
          if (!data) continue;
          try { onEvent(JSON.parse(data)); } catch (_) { /* not an event of ours */ }
        }
      }
    } catch (error) {
      if (abort.signal.aborted || !token) return;
      if (error instanceof Unauthorized) return showError("#action-error", error);
    }
    setConnection("Connection lost; reconnecting…");
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 15000);
    await refreshFunkos();
  }
}

// ---- start ----

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const candidate = $("#token").value.trim();
    if (candidate) logIn(candidate);
  });
  $("#logout").addEventListener("click", () => logOut("Logged out."));
  $("#logs-stop").addEventListener("click", closeLogs);
  if (token) logIn(token);
  else $("#token").focus();
});
