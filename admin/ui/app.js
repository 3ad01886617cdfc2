// faaso's admin page: plain DOM, no framework. The token lives in sessionStorage (this tab only)
// and goes out as a bearer header; nothing from the server is ever inserted as HTML.
"use strict";

const TOKEN_KEY = "faaso.token";
const $ = (selector) => document.querySelector(selector);
const SVG_NS = "http://www.w3.org/2000/svg";
// What the server accepts as a funko name (schema/src: FunkoName).
const FUNKO_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

let token = sessionStorage.getItem(TOKEN_KEY);
let eventsAbort = null;
let logsAbort = null;
let refreshTimer = null;
let trafficTimer = null;
let instancesOf = null;
let instancesTimer = null;

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
  await Promise.all([refreshFunkos(), refreshSecrets(), refreshTraffic()]);
  clearInterval(trafficTimer);
  trafficTimer = setInterval(refreshTraffic, 5000);
  followEvents();
}

function logOut(message) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  if (eventsAbort) eventsAbort.abort();
  if (logsAbort) logsAbort.abort();
  clearInterval(trafficTimer);
  closeInstances();
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
  // An autoscaled funko with nothing ready is asleep, not down: a request wakes it.
  if (funko.autoscaled && funko.ready === 0 && funko.outdated === 0) return "idle";
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
    el("button", { type: "button", text: "Instances", "aria-label": `Instances of ${name}`, onclick: () => openInstances(name) }),
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
    const desiredCell = row.querySelector(".desired");
    if (funko.autoscaled) {
      const bounds = funko.autoscaled;
      const decision = funko.last_decision;
      desiredCell.replaceChildren(
        `${desired} (auto ${bounds.min}–${bounds.max})`,
        el("div", { class: "decision", text: decision ? decision.reason : "no decision yet" }));
    } else {
      desiredCell.textContent = desired;
    }
    const idle = [funko.paused ? `${funko.paused} paused` : "", funko.stopped ? `${funko.stopped} stopped` : ""]
      .filter(Boolean).join(", ");
    row.querySelector(".ready").textContent = String(funko.ready)
      + (funko.outdated ? ` (+${funko.outdated} old)` : "")
      + (idle ? ` (${idle})` : "");
    const state = health(funko);
    const cell = row.querySelector(".health");
    cell.replaceChildren(state);
    cell.className = `health health-${state}`;
    // A funko at work says for how long and where: one stuck for long stands out.
    const work = funko.converging;
    if (work) {
      cell.append(el("div", { class: "converging", text: `converging for ${age(work.seconds)}: ${work.step}` }));
    }
    row.querySelector(".image").textContent = funko.image || "–";
    const built = row.querySelector(".image-age");
    built.textContent = funko.image_created ? `${age(board.updated_at - funko.image_created)} ago` : "–";
    built.title = funko.image_created ? new Date(funko.image_created * 1000).toLocaleString() : "";
    row.querySelector(".last-error").textContent = funko.error || "";
    const input = row.querySelector("input[name=scale]");
    // An autoscaled funko's count follows load; its bounds live in funko.yml.
    input.disabled = Boolean(funko.autoscaled);
    input.title = funko.autoscaled ? "autoscaled: edit scale.min and scale.max in funko.yml" : "";
    if (!input.dataset.edited && funko.desired !== null && funko.desired !== undefined) {
      input.value = String(funko.desired);
    }
  }
  for (const [name, row] of rows) {
    if (!seen.has(name)) row.remove();
  }
  $("#funko-names").replaceChildren(...board.funkos.map((f) => el("option", { value: f.name })));
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

// ---- secrets (values go out once and are never read back: the API has no way to) ----

async function refreshSecrets() {
  try {
    const response = await api("GET", "/admin/secrets");
    const secrets = await response.json();
    const rows = [];
    for (const [funko, keys] of Object.entries(secrets)) {
      for (const key of keys) {
        const what = `${funko}/${key}`;
        rows.push(el("tr", { "data-secret": what },
          el("th", { scope: "row", text: funko }),
          el("td", { class: "key", text: key }),
          el("td", {}, el("div", { class: "actions" },
            el("button", { type: "button", text: "Replace", "aria-label": `Replace ${what}`, onclick: () => replaceSecret(funko, key) }),
            el("button", { type: "button", class: "danger", text: "Delete", "aria-label": `Delete ${what}`, onclick: () => deleteSecret(funko, key) })))));
      }
    }
    $("#secrets tbody").replaceChildren(...rows);
    $("#no-secrets").hidden = rows.length > 0;
    $("#secrets").hidden = rows.length === 0;
  } catch (error) {
    showError("#secret-error", error);
  }
}

function replaceSecret(funko, key) {
  $("#secret-funko").value = funko;
  $("#secret-key").value = key;
  $("#secret-value").value = "";
  $("#secret-form-title").textContent = `Replace ${funko}/${key}`;
  $("#secret-value").focus();
}

async function saveSecret() {
  const funko = $("#secret-funko").value.trim();
  const key = $("#secret-key").value.trim();
  const value = $("#secret-value");
  if (!FUNKO_NAME.test(funko)) {
    $("#secret-error").textContent = `"${funko}" is not a funko name: lowercase letters, digits and -, at most 40.`;
    return;
  }
  if (value.value === "") {
    $("#secret-error").textContent = "A secret needs a value; Delete removes one.";
    return;
  }
  try {
    await api("PUT", `/admin/secrets/${encodeURIComponent(funko)}/${encodeURIComponent(key)}`, {
      headers: { "Content-Type": "application/octet-stream" },
      body: value.value,
    });
    // Gone from the page the moment the server has it.
    value.value = "";
    $("#secret-key").value = "";
    $("#secret-form-title").textContent = "Set a secret";
    $("#secret-error").textContent = "";
    $("#notice").textContent = `Secret ${funko}/${key} saved; instances that use it are being replaced.`;
    await refreshSecrets();
  } catch (error) {
    showError("#secret-error", error);
  }
}

async function deleteSecret(funko, key) {
  if (!window.confirm(`Delete secret ${funko}/${key}? Instances that use it are replaced without it.`)) return;
  try {
    await api("DELETE", `/admin/secrets/${encodeURIComponent(funko)}/${encodeURIComponent(key)}`);
    $("#secret-error").textContent = "";
    $("#notice").textContent = `Secret ${funko}/${key} deleted.`;
    await refreshSecrets();
  } catch (error) {
    showError("#secret-error", error);
  }
}

// ---- deploy (the archive goes to the upload API as is: the server does every check) ----

function nameFromArchive(fileName) {
  return fileName.replace(/\.(tar\.gz|tgz)$/i, "").toLowerCase();
}

async function deploy() {
  const file = $("#deploy-file").files[0];
  const name = $("#deploy-name").value.trim();
  $("#deploy-status").textContent = "";
  if (!file) {
    $("#deploy-error").textContent = "Pick the funko's .tar.gz first.";
    return;
  }
  if (!FUNKO_NAME.test(name) || name.length > 40) {
    $("#deploy-error").textContent = `"${name}" is not a funko name: lowercase letters, digits and -, at most 40.`;
    return;
  }
  $("#deploy-error").textContent = "";
  $("#deploy-status").textContent = `Uploading ${file.name} as ${name}…`;
  try {
    const response = await api("PUT", `/admin/funkos/${encodeURIComponent(name)}`, {
      headers: { "Content-Type": "application/gzip" },
      body: file,
    });
    const answer = await response.json();
    $("#deploy-status").textContent = `${name} ${answer.replaced ? "replaced" : "deployed"}; the server is building and starting it.`;
    $("#deploy-form").reset();
    scheduleRefresh();
  } catch (error) {
    $("#deploy-status").textContent = "";
    showError("#deploy-error", error);
  }
}

// ---- instances ----

async function openInstances(name) {
  instancesOf = name;
  $("#instances-funko").textContent = name;
  $("#instances").hidden = false;
  $("#instance-table tbody").replaceChildren();
  clearInterval(instancesTimer);
  // Uptime moves on its own: re-read every few seconds while the panel is open.
  instancesTimer = setInterval(refreshInstances, 3000);
  await refreshInstances();
}

function closeInstances() {
  instancesOf = null;
  clearInterval(instancesTimer);
  $("#instances").hidden = true;
}

async function refreshInstances() {
  const name = instancesOf;
  if (!name) return;
  try {
    const response = await api("GET", `/admin/funkos/${encodeURIComponent(name)}/instances`);
    const instances = await response.json();
    if (name !== instancesOf) return;
    $("#instance-table tbody").replaceChildren(...instances.map((i) => instanceRow(name, i)));
    $("#no-instances").hidden = instances.length > 0;
    $("#instance-table").hidden = instances.length === 0;
    $("#instances-error").textContent = "";
  } catch (error) {
    showError("#instances-error", error);
  }
}

function instanceRow(funko, instance) {
  const health = instance.health.replace(/ /g, "-");
  return el("tr", { "data-instance": instance.name },
    el("th", { scope: "row", class: "name", text: instance.name, title: instance.id }),
    el("td", { class: "state", text: instance.state }),
    el("td", { class: `health health-${health}`, text: instance.health }),
    el("td", { class: instance.current ? "config" : "config health-rolling", text: instance.current ? "current" : "outdated" }),
    el("td", {
      class: "uptime number",
      text: instance.uptime_s === null ? "–" : age(instance.uptime_s),
      title: instance.started_at ? `started ${new Date(instance.started_at * 1000).toLocaleString()}` : "",
    }),
    el("td", {}, el("div", { class: "actions" },
      el("button", { type: "button", text: "Logs", "aria-label": `Logs of ${instance.name}`, onclick: () => openLogs(funko, instance.name) }),
      el("button", { type: "button", class: "danger", text: "Restart", "aria-label": `Restart ${instance.name}`, onclick: () => restart(funko, instance.name) }))));
}

async function restart(funko, instance) {
  if (!window.confirm(`Restart ${instance}? It stops taking requests until it is ready again.`)) return;
  $("#notice").textContent = `Restarting ${instance}…`;
  try {
    const path = `/admin/funkos/${encodeURIComponent(funko)}/instances/${encodeURIComponent(instance)}/restart`;
    await api("POST", path);
    $("#instances-error").textContent = "";
    $("#notice").textContent = `${instance} restarted.`;
  } catch (error) {
    $("#notice").textContent = "";
    showError("#instances-error", error);
  }
  await refreshInstances();
}

// ---- traffic charts (inline SVG drawn here: no library, nothing fetched but the data) ----

const CHARTS = [
  { metric: "rps", title: "requests/s", lines: [["requests_per_s", "line"]], unit: "", digits: 1 },
  { metric: "latency", title: "latency p50 / p99 (ms)", lines: [["p50_ms", "line"], ["p99_ms", "line line-2"]], unit: " ms", digits: 1 },
  { metric: "errors", title: "error rate (5xx)", lines: [["error_rate", "line line-bad"]], unit: "%", digits: 1, scale: 100 },
  { metric: "instances", title: "ready instances", lines: [["instances", "line"]], unit: "", digits: 0 },
];

function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

function formatValue(chart, value) {
  if (value === null || value === undefined) return "–";
  return `${(value * (chart.scale || 1)).toFixed(chart.digits)}${chart.unit}`;
}

/** One chart: each line over the window, x from `now - window` to `now`, y from 0 to the max. */
function drawChart(chart, samples, now, window) {
  const width = 300, height = 110, pad = 4;
  const values = chart.lines.flatMap(([field]) => samples.map((s) => s[field]).filter((v) => v !== null));
  // A share tops out at 100 %; other charts leave headroom above their highest point.
  const top = chart.metric === "errors"
    ? 100
    : Math.max(...values.map((v) => v * (chart.scale || 1)), chart.metric === "instances" ? 1 : 0.001) * 1.15;
  const x = (t) => pad + ((t - (now - window)) / window) * (width - 2 * pad);
  const y = (v) => height - pad - (v * (chart.scale || 1) / top) * (height - 2 * pad);
  const picture = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart-plot", role: "img", "aria-label": chart.title });
  picture.append(svg("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: "axis" }));
  const maxLabel = svg("text", { x: pad + 2, y: 12, class: "axis-label" });
  maxLabel.textContent = formatValue(chart, top / (chart.scale || 1));
  picture.append(maxLabel);
  for (const [field, cls] of chart.lines) {
    // A gap (no requests) breaks the line rather than drawing a false zero latency.
    let run = [];
    const flush = () => {
      if (run.length === 1) picture.append(svg("circle", { cx: run[0][0], cy: run[0][1], r: 1.8, class: `${cls} dot` }));
      if (run.length > 1) picture.append(svg("polyline", { points: run.map((p) => p.join(",")).join(" "), class: cls }));
      run = [];
    };
    for (const sample of samples) {
      const value = sample[field];
      if (value === null || value === undefined) flush();
      else run.push([x(sample.t).toFixed(1), y(value).toFixed(1)]);
    }
    flush();
  }
  const last = samples[samples.length - 1];
  // Each latest value in its line's colour, so two lines need no separate legend.
  const latest = el("strong", { class: "value" });
  chart.lines.forEach(([field], i) => {
    if (i > 0) latest.append(" / ");
    latest.append(el("span", { class: `key-${i + 1}`, text: formatValue(chart, last ? last[field] : null) }));
  });
  return el("figure", { class: "chart", "data-metric": chart.metric },
    el("figcaption", {}, el("span", { class: "chart-title", text: chart.title }), " ", latest),
    picture);
}

function renderTraffic(history) {
  const now = Math.floor(Date.now() / 1000);
  const names = Object.keys(history.funkos).sort();
  const blocks = names.map((name) => {
    const samples = history.funkos[name];
    return el("div", { class: "chart-row", "data-funko": name },
      el("h3", { text: name }),
      el("div", { class: "chart-grid" }, ...CHARTS.map((chart) => drawChart(chart, samples, now, history.window_s))));
  });
  $("#charts").replaceChildren(...blocks);
  $("#no-traffic").hidden = names.length > 0;
}

async function refreshTraffic() {
  try {
    const response = await api("GET", "/admin/traffic");
    renderTraffic(await response.json());
  } catch (error) {
    showError("#action-error", error);
  }
}

// ---- logs ----

async function openLogs(name, instance) {
  if (logsAbort) logsAbort.abort();
  const abort = new AbortController();
  logsAbort = abort;
  const output = $("#logs-output");
  output.textContent = "";
  $("#logs-funko").textContent = instance || name;
  $("#logs").hidden = false;
  const path = instance
    ? `/admin/funkos/${encodeURIComponent(name)}/instances/${encodeURIComponent(instance)}/logs`
    : `/admin/funkos/${encodeURIComponent(name)}/logs`;
  try {
    const response = await api("GET", `${path}?follow=1&tail=200`, { signal: abort.signal });
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
  if (instancesOf && event.funko === instancesOf) refreshInstances();
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
  $("#instances-close").addEventListener("click", closeInstances);
  $("#secret-form").addEventListener("submit", (event) => {
    event.preventDefault();
    saveSecret();
  });
  $("#deploy-form").addEventListener("submit", (event) => {
    event.preventDefault();
    deploy();
  });
  $("#deploy-file").addEventListener("change", () => {
    const file = $("#deploy-file").files[0];
    const name = $("#deploy-name");
    if (file && !name.value) name.value = nameFromArchive(file.name);
  });
  if (token) logIn(token);
  else $("#token").focus();
});
