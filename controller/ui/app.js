// Concord dashboard: plain JavaScript, no build step, no outside requests.
// Reads only the controller's HTTP API (docs/dashboard.md), with URLs relative to this
// page (served at <prefix>/ui/), so it works behind a reverse proxy's path prefix.
"use strict";

const API = "../apis/concord.io/v1alpha1";
const SVG_NS = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "concord.token";
const PAGE_SIZE = 200;
const METRICS_EVERY_MS = 2000;
const LOG_EVERY_MS = 2000;
const LOG_TAIL_BYTES = 16384;

// ---------------------------------------------------------------- small helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function age(ts) {
  if (!ts) return "-";
  const secs = Math.max(0, (Date.now() - Date.parse(ts)) / 1000);
  if (secs < 60) return `${Math.floor(secs)}s`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m${Math.floor(secs % 60)}s`;
  if (secs < 86400) return `${Math.floor(secs / 3600)}h${Math.floor((secs % 3600) / 60)}m`;
  return `${Math.floor(secs / 86400)}d${Math.floor((secs % 86400) / 3600)}h`;
}

function rate(v) {
  if (v === null || v === undefined) return "-";
  if (v >= 10000) return `${(v / 1000).toFixed(1)}k`;
  if (v >= 100) return v.toFixed(0);
  return v.toFixed(1);
}

function latency(v) {
  if (v === null || v === undefined) return "-";
  if (v < 0.001) return `${Math.round(v * 1e6)}µs`;
  if (v < 1) return `${(v * 1000).toFixed(1)}ms`;
  return `${v.toFixed(2)}s`;
}

// A record count as `concord graph` writes it: 950, 1.2k, 3.4M.
function count(n) {
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

// `lag 1.2k` for an operator whose tasks report Kafka lag (kafka-source), else null.
function kafkaLag(m) {
  const lag = m && m.kafka ? m.kafka.lagRecords : null;
  return lag === null || lag === undefined ? null : `lag ${count(lag)}`;
}

function short(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function key(ns, name) {
  return `${ns}/${name}`;
}

function topoUrl(ns, name) {
  return `${API}/namespaces/${encodeURIComponent(ns)}/topologies/${encodeURIComponent(name)}`;
}

// ---------------------------------------------------------------- API access and banners

class ApiError extends Error {
  constructor(code, message, reason) {
    super(message);
    this.code = code;
    this.reason = reason || "";
  }
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

const banners = new Map(); // id -> {kind, text}

function setBanner(id, kind, text) {
  const old = banners.get(id);
  if (old && old.kind === kind && old.text === text) return;
  banners.set(id, { kind, text });
  drawBanners();
}

function clearBanner(id) {
  if (banners.delete(id)) drawBanners();
}

function drawBanners() {
  const box = document.getElementById("banners");
  box.replaceChildren(
    ...[...banners.entries()].map(([id, b]) =>
      h("div", { class: `banner ${b.kind}`, role: b.kind === "error" ? "alert" : "status", "data-banner": id }, b.text),
    ),
  );
}

function refused(code, message) {
  const hint = code === 401
    ? "Enter an API token in the field at the top right."
    : "This token may not read this resource; use another token.";
  setBanner("auth", "error", `The API refused the request (${code} ${code === 401 ? "Unauthorized" : "Forbidden"}): ${message}. ${hint}`);
}

async function apiGet(url, { signal } = {}) {
  let resp;
  try {
    resp = await fetch(url, { headers: authHeaders(), signal, cache: "no-store" });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, `the controller does not answer (${e.message})`);
  }
  return checked(resp);
}

async function checked(resp) {
  if (resp.ok) {
    clearBanner("auth");
    return resp;
  }
  let message = `${resp.status} ${resp.statusText}`;
  let reason = "";
  try {
    const body = await resp.json();
    if (body && body.message) message = body.message;
    if (body && body.reason) reason = body.reason;
  } catch (_) {
    // not a Status object
  }
  if (resp.status === 401 || resp.status === 403) refused(resp.status, message);
  throw new ApiError(resp.status, message, reason);
}

async function apiJson(url, opts) {
  return (await apiGet(url, opts)).json();
}

// ---------------------------------------------------------------- state: one watch on every topology

const state = {
  topologies: new Map(), // "ns/name" -> Topology (with status)
  listed: false, // the first list answered
  deleted: new Set(), // keys deleted while this page was open
  revision: null, // last resourceVersion seen
  route: { page: "list" },
  selected: null, // operator name on the topology page
  taskLimit: PAGE_SIZE,
  metrics: null, // last TopologyMetrics for the open topology
  metricsError: null,
  tab: "overview",
  history: null, // {key, generation, body | error}
  log: null, // {taskId, stream, text, nextOffset, error, follow}
};

let watchAbort = null;
let backoffMs = 1000;

async function listTopologies() {
  // The API answers a page at a time; follow `metadata.continue` to the last one.
  let body = await apiJson(`${API}/topologies`);
  const items = [...(body.items || [])];
  while (body.metadata && body.metadata.continue) {
    body = await apiJson(`${API}/topologies?continue=${encodeURIComponent(body.metadata.continue)}`);
    if (!(body.items || []).length) break; // an empty page leads nowhere
    items.push(...body.items);
  }
  const next = new Map();
  for (const t of items) next.set(key(t.metadata.namespace, t.metadata.name), t);
  for (const k of state.topologies.keys()) if (!next.has(k)) state.deleted.add(k);
  state.topologies = next;
  state.revision = body.resourceVersion;
  state.listed = true;
}

function applyEvent(ev) {
  if (ev.type === "ERROR") {
    throw new ApiError(ev.code || 503, ev.message || "watch error");
  }
  if (ev.revision) state.revision = ev.revision;
  const t = ev.object;
  if (!t) return;
  const k = key(t.metadata.namespace, t.metadata.name);
  if (ev.type === "DELETED") {
    state.topologies.delete(k);
    state.deleted.add(k);
  } else {
    state.topologies.set(k, t);
    state.deleted.delete(k);
  }
}

// Lists (when there is no revision to resume from), then follows the watch stream. On a
// lost connection it waits (1 s, 2 s, 4 s … 30 s) and resumes from the last revision; a
// 410 ERROR event (revision compacted) makes it list again.
async function runWatch() {
  for (;;) {
    watchAbort = new AbortController();
    try {
      if (state.revision === null) {
        await listTopologies();
        render();
      }
      const url = `${API}/topologies?watch=true&resourceVersion=${encodeURIComponent(state.revision)}`;
      const resp = await apiGet(url, { signal: watchAbort.signal });
      clearBanner("conn");
      backoffMs = 1000;
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let nl;
        let changed = false;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          applyEvent(JSON.parse(line));
          changed = true;
        }
        if (changed) render();
      }
      throw new ApiError(0, "the watch stream ended (controller restarting?)");
    } catch (e) {
      if (e.name === "AbortError") {
        continue; // restarted on purpose (new token)
      }
      if (e.code === 410) {
        state.revision = null; // too old: list again at once
        continue;
      }
      const wait = backoffMs;
      backoffMs = Math.min(backoffMs * 2, 30000);
      if (e.code === 401 || e.code === 403) {
        setBanner("conn", "warn", `Waiting for a valid token; retrying in ${wait / 1000}s.`);
      } else if (e.code === 503) {
        setBanner("conn", "error", `etcd is unreachable (the controller says: ${e.message}). Showing the last known state; retrying in ${wait / 1000}s.`);
      } else {
        setBanner("conn", "error", `The controller is unreachable: ${e.message}. Showing the last known state; reconnecting in ${wait / 1000}s.`);
      }
      render();
      await sleepOrWake(wait);
    }
  }
}

let wake = null;
function sleepOrWake(ms) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    wake = () => {
      clearTimeout(t);
      resolve();
    };
  });
}

function restartWatch() {
  backoffMs = 1000;
  if (watchAbort) watchAbort.abort();
  if (wake) wake();
}

// /readyz says whether the controller reaches etcd even while the watch looks quiet.
async function checkReady() {
  try {
    const resp = await fetch("../readyz", { cache: "no-store" });
    const text = await resp.text();
    const etcd = text.split("\n").find((l) => l.startsWith("[-] etcd"));
    if (!resp.ok && etcd) setBanner("etcd", "error", `etcd is unreachable: ${etcd.slice(4)}. The dashboard shows the last known state.`);
    else clearBanner("etcd");
  } catch (_) {
    clearBanner("etcd"); // the watch loop reports an unreachable controller
  }
}

// ---------------------------------------------------------------- routing

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "topology" && parts.length >= 3) {
    return { page: "topology", ns: parts[1], name: parts[2] };
  }
  return { page: "list" };
}

function onRoute() {
  const next = parseRoute();
  const same = next.page === state.route.page && next.ns === state.route.ns && next.name === state.route.name;
  state.route = next;
  if (!same) {
    state.selected = null;
    state.taskLimit = PAGE_SIZE;
    state.metrics = null;
    state.metricsError = null;
    state.history = null;
    state.log = null;
    state.tab = "overview";
  }
  render();
  if (!same) document.getElementById("main").focus({ preventScroll: true });
}

// ---------------------------------------------------------------- list page

function condition(t, type) {
  return ((t.status && t.status.conditions) || []).find((c) => c.type === type);
}

function condBadge(t, type) {
  const c = condition(t, type);
  if (!c) return h("span", { class: "cond unknown", title: `${type}: not reported` }, `${type}: -`);
  const text = `${type}: ${c.status}${c.reason ? ` (${c.reason})` : ""}`;
  return h("span", { class: `cond ${c.status.toLowerCase()} ${type}`, title: c.message || text, "data-cond": type }, text);
}

function operatorCounts(t) {
  const ops = (t.status && t.status.operators) || [];
  if (ops.length === 0) {
    const desired = t.spec.operators.reduce((n, o) => n + (o.instances ?? 1), 0);
    return { ready: 0, desired };
  }
  return ops.reduce((a, o) => ({ ready: a.ready + o.ready, desired: a.desired + o.desired }), { ready: 0, desired: 0 });
}

function renderList() {
  const rows = [...state.topologies.values()].sort((a, b) =>
    key(a.metadata.namespace, a.metadata.name).localeCompare(key(b.metadata.namespace, b.metadata.name)),
  );
  const table = h(
    "table",
    { id: "topologies", "aria-label": "Topologies" },
    h(
      "thead",
      {},
      h("tr", {}, h("th", {}, "Name"), h("th", {}, "Namespace"), h("th", { class: "num" }, "Generation / observed"), h("th", {}, "Conditions"), h("th", { class: "num" }, "Instances ready / desired"), h("th", { class: "num" }, "Age")),
    ),
    h(
      "tbody",
      {},
      rows.map((t) => {
        const ns = t.metadata.namespace;
        const name = t.metadata.name;
        const c = operatorCounts(t);
        const observed = t.status ? t.status.observedGeneration : "-";
        return h(
          "tr",
          { "data-topology": key(ns, name) },
          h("td", { class: "name-cell" }, h("a", { href: `#/topology/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`, "aria-label": `Open topology ${name} in namespace ${ns}` }, name), t.metadata.deletionTimestamp ? h("span", { class: "muted" }, " (deleting)") : null),
          h("td", {}, ns),
          h("td", { class: "num", "data-field": "generation" }, `${t.metadata.generation ?? "-"} / ${observed}`),
          h("td", {}, condBadge(t, "Ready"), condBadge(t, "Progressing"), condBadge(t, "Degraded")),
          h("td", { class: "num", "data-field": "instances" }, `${c.ready}/${c.desired}`),
          h("td", { class: "num" }, age(t.metadata.creationTimestamp)),
        );
      }),
    ),
  );
  const empty = state.listed && rows.length === 0 ? h("p", { class: "muted", id: "empty" }, "No topologies yet. Create one with concord apply -f FILE.") : null;
  const loading = !state.listed ? h("p", { class: "muted" }, "Loading topologies…") : null;
  return [h("h1", {}, "Topologies"), loading, empty, rows.length ? table : null];
}

// ---------------------------------------------------------------- topology page: graph

// Layers: the longest path from a source, so every edge points right (as concord graph).
function layers(spec) {
  const names = spec.operators.map((o) => o.name);
  const byName = new Map(spec.operators.map((o) => [o.name, o]));
  const layer = new Map();
  const visiting = new Set();
  const depth = (n) => {
    if (layer.has(n)) return layer.get(n);
    if (visiting.has(n)) return 0; // a cycle cannot pass validation; be safe
    visiting.add(n);
    const op = byName.get(n);
    const ins = (op && op.inputs) || [];
    const d = ins.length ? 1 + Math.max(...ins.map((i) => (byName.has(i.from) ? depth(i.from) : 0))) : 0;
    visiting.delete(n);
    layer.set(n, d);
    return d;
  };
  names.forEach(depth);
  return layer;
}

function opState(opStatus, op) {
  const now = Date.now();
  const tasks = (opStatus && opStatus.tasks) || [];
  const backoff = tasks.filter((t) => t.backoffUntil && Date.parse(t.backoffUntil) > now);
  if (backoff.length) {
    const until = Math.max(...backoff.map((t) => Date.parse(t.backoffUntil)));
    return { cls: "backoff", text: `back-off: ${backoff.length} waiting (${Math.ceil((until - now) / 1000)}s)` };
  }
  const desired = opStatus ? opStatus.desired : op.instances ?? 1;
  if (!opStatus) return { cls: "rolling", text: "pending" };
  if (opStatus.updated < desired || opStatus.running !== desired) {
    return { cls: "rolling", text: opStatus.updated < desired ? `rolling out ${opStatus.updated}/${desired} updated` : `scaling ${opStatus.running}→${desired}` };
  }
  if (opStatus.ready < desired) return { cls: "rolling", text: `${opStatus.ready}/${desired} ready` };
  return { cls: "ready", text: "ready" };
}

function renderGraph(t) {
  const spec = t.spec;
  const layer = layers(spec);
  const statusOps = new Map(((t.status && t.status.operators) || []).map((o) => [o.name, o]));
  const metricsOps = new Map(((state.metrics && state.metrics.operators) || []).map((o) => [o.name, o]));
  const W = 230;
  const H = 92;
  const GX = 90;
  const GY = 30;
  const rows = new Map();
  const pos = new Map();
  for (const op of spec.operators) {
    const l = layer.get(op.name) || 0;
    const r = rows.get(l) || 0;
    rows.set(l, r + 1);
    pos.set(op.name, { x: 20 + l * (W + GX), y: 20 + r * (H + GY) });
  }
  const width = 40 + (Math.max(0, ...layer.values()) + 1) * (W + GX) - GX;
  const height = 40 + Math.max(1, ...rows.values()) * (H + GY) - GY;
  const svg = s("svg", { class: "dag", width, height, viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": `Operator graph of ${t.metadata.name}` });
  svg.append(
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse" }, s("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8a96a8" }))),
  );
  for (const op of spec.operators) {
    for (const input of op.inputs || []) {
      const a = pos.get(input.from);
      const b = pos.get(op.name);
      if (!a || !b) continue;
      const x1 = a.x + W;
      const y1 = a.y + H / 2;
      const x2 = b.x;
      const y2 = b.y + H / 2;
      const mx = (x1 + x2) / 2;
      svg.append(s("path", { class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)" }));
      svg.append(s("text", { class: "edge-label", x: mx, y: (y1 + y2) / 2 - 4, "text-anchor": "middle", "data-edge": `${input.from}->${op.name}` }, input.partitioning || "shuffle"));
    }
  }
  for (const op of spec.operators) {
    const p = pos.get(op.name);
    const st = statusOps.get(op.name);
    const m = metricsOps.get(op.name);
    const desired = st ? st.desired : op.instances ?? 1;
    const counts = `${st ? st.running : 0}/${desired} running · ${st ? st.updated : 0} updated`;
    const rates = `in ${rate(m && m.recordsInPerSecond)}/s · out ${rate(m && m.recordsOutPerSecond)}/s`;
    const lat = `p99 ${latency(m && m.p99LatencySeconds)} · drops ${m && m.droppedTotal !== null && m.droppedTotal !== undefined ? m.droppedTotal : "-"}`;
    const os = opState(st, op);
    const lag = kafkaLag(m);
    const stateLine = lag ? `${os.text} · ${lag}` : os.text;
    const selected = state.selected === op.name;
    const select = () => selectOperator(op.name);
    const g = s(
      "g",
      {
        class: `node ${os.cls}${selected ? " selected" : ""}`,
        transform: `translate(${p.x},${p.y})`,
        tabindex: 0,
        role: "button",
        "aria-pressed": selected ? "true" : "false",
        "aria-label": `Operator ${op.name}: ${counts}, ${rates}, ${lat}, ${stateLine}. Show its tasks.`,
        "data-op": op.name,
        "data-focus": `node:${op.name}`,
        onclick: select,
        onkeydown: (e) => {
          if (e.key === "Enter" || e.key === " ") {
            e.preventDefault();
            select();
          }
        },
      },
      s("title", {}, op.name),
      s("rect", { width: W, height: H, rx: 6 }),
      s("text", { class: "name", x: 10, y: 18 }, short(op.name, 28)),
      s("text", { class: "counts", x: 10, y: 36 }, counts),
      s("text", { class: "rates", x: 10, y: 52 }, rates),
      s("text", { class: "latency", x: 10, y: 68 }, lat),
      s("text", { class: "state", x: 10, y: 84, "data-kafka-lag": lag ? m.kafka.lagRecords : null }, stateLine),
    );
    svg.append(g);
  }
  return h("div", { class: "graph-wrap", id: "graph" }, svg);
}

// ---------------------------------------------------------------- topology page: tasks and logs

function selectOperator(name) {
  state.selected = state.selected === name ? null : name;
  state.taskLimit = PAGE_SIZE;
  render();
}

function renderTasks(t) {
  if (!state.selected) {
    return h("section", { class: "card", "aria-label": "Tasks" }, h("h2", {}, "Tasks"), h("p", { class: "muted" }, "Select an operator in the graph or the table above to list its tasks."));
  }
  const st = ((t.status && t.status.operators) || []).find((o) => o.name === state.selected);
  const tasks = (st && st.tasks) || [];
  const shown = tasks.slice(0, state.taskLimit);
  const rows = shown.map((task) =>
    h(
      "tr",
      { "data-task": task.taskId },
      h("td", { class: "mono name-cell" }, task.taskId),
      h("td", { class: "num" }, task.instance),
      h("td", {}, task.host || task.agentId || "-"),
      h("td", { class: `state-${task.state}` }, task.state, task.backoffUntil && Date.parse(task.backoffUntil) > Date.now() ? ` (back-off until ${new Date(task.backoffUntil).toLocaleTimeString()})` : ""),
      h("td", { class: "num" }, task.restarts),
      h("td", {}, task.lastExitReason || "-"),
      h("td", { title: task.since || "" }, task.since ? `${age(task.since)} ago` : "-"),
      h(
        "td",
        {},
        h("button", { type: "button", "aria-label": `stdout of task ${task.taskId}`, "data-focus": `log:${task.taskId}:stdout`, onclick: () => openLog(t, task.taskId, "stdout") }, "stdout"),
        " ",
        h("button", { type: "button", "aria-label": `stderr of task ${task.taskId}`, "data-focus": `log:${task.taskId}:stderr`, onclick: () => openLog(t, task.taskId, "stderr") }, "stderr"),
      ),
    ),
  );
  const more = tasks.length > shown.length
    ? h("button", { type: "button", id: "show-more", "data-focus": "show-more", onclick: () => { state.taskLimit += PAGE_SIZE; render(); } }, `Show ${Math.min(PAGE_SIZE, tasks.length - shown.length)} more (${shown.length} of ${tasks.length} shown)`)
    : null;
  return h(
    "section",
    { class: "card", id: "tasks", "aria-label": `Tasks of ${state.selected}` },
    h("h2", {}, `Tasks of ${state.selected}`, h("span", { class: "muted" }, ` (${tasks.length})`)),
    tasks.length === 0 ? h("p", { class: "muted" }, "No tasks.") : null,
    tasks.length
      ? h(
          "table",
          { "aria-label": `Tasks of operator ${state.selected}` },
          h("thead", {}, h("tr", {}, h("th", {}, "Task"), h("th", { class: "num" }, "Instance"), h("th", {}, "Host"), h("th", {}, "State"), h("th", { class: "num" }, "Restarts"), h("th", {}, "Last exit reason"), h("th", {}, "Since"), h("th", {}, "Logs"))),
          h("tbody", {}, rows),
        )
      : null,
    more,
    renderLog(),
  );
}

let logTimer = null;

function openLog(t, taskId, stream) {
  state.log = { ns: t.metadata.namespace, name: t.metadata.name, taskId, stream, text: "", nextOffset: null, error: null, follow: true, loading: true };
  render();
  pollLog();
}

function closeLog() {
  state.log = null;
  clearTimeout(logTimer);
  render();
}

async function pollLog() {
  clearTimeout(logTimer);
  const log = state.log;
  if (!log) return;
  const base = `${topoUrl(log.ns, log.name)}/tasks/${encodeURIComponent(log.taskId)}/logs?stream=${log.stream}`;
  try {
    if (log.nextOffset === null) {
      const size = await apiJson(`${base}&offset=-1`);
      log.nextOffset = Math.max(0, size.offset - LOG_TAIL_BYTES);
      log.truncated = log.nextOffset > 0;
    }
    for (let i = 0; i < 8; i++) {
      const chunk = await apiJson(`${base}&offset=${log.nextOffset}&length=65536`);
      if (state.log !== log) return;
      log.text += chunk.data;
      log.nextOffset = chunk.nextOffset;
      if (!chunk.data) break;
    }
    if (log.text.length > 262144) log.text = log.text.slice(-196608);
    log.error = null;
  } catch (e) {
    if (state.log !== log) return;
    log.error = e.code === 404 ? `The logs are gone: ${e.message}` : `Cannot read the log: ${e.message}`;
  }
  log.loading = false;
  if (state.log !== log) return;
  render();
  if (log.follow && !(log.error && log.error.startsWith("The logs are gone"))) logTimer = setTimeout(pollLog, LOG_EVERY_MS);
}

function renderLog() {
  const log = state.log;
  if (!log) return null;
  return h(
    "div",
    { id: "log", role: "region", "aria-label": `${log.stream} of task ${log.taskId}` },
    h("h2", {}, `${log.stream} of `, h("span", { class: "mono" }, log.taskId)),
    h(
      "div",
      { class: "controls" },
      h("label", {}, h("input", { type: "checkbox", id: "log-follow", checked: log.follow, "data-focus": "log-follow", onchange: (e) => { log.follow = e.target.checked; if (log.follow) pollLog(); else clearTimeout(logTimer); } }), " follow (every 2 s)"),
      h("button", { type: "button", "data-focus": "log-close", onclick: closeLog }, "Close log"),
    ),
    log.error ? h("p", { class: "banner error", role: "alert" }, log.error) : null,
    log.loading ? h("p", { class: "muted" }, "Loading…") : null,
    h("pre", { class: "log", id: "log-text", tabindex: 0, "aria-label": "log text" }, log.truncated ? "[… earlier output not shown]\n" : "", log.text || (log.loading ? "" : "(empty)")),
  );
}

// ---------------------------------------------------------------- topology page: metrics polling

let metricsTimer = null;

async function pollMetrics() {
  clearTimeout(metricsTimer);
  const r = state.route;
  if (r.page !== "topology" || !state.topologies.has(key(r.ns, r.name))) {
    metricsTimer = setTimeout(pollMetrics, METRICS_EVERY_MS);
    return;
  }
  try {
    const m = await apiJson(`${topoUrl(r.ns, r.name)}/metrics`);
    if (state.route === r) {
      state.metrics = m;
      state.metricsError = null;
    }
  } catch (e) {
    if (state.route === r) state.metricsError = e.message;
  }
  if (state.route === r) render();
  metricsTimer = setTimeout(pollMetrics, METRICS_EVERY_MS);
}

// ---------------------------------------------------------------- topology page: events and spec

function renderEvents(t) {
  const events = ((t.status && t.status.events) || []).slice().reverse();
  return h(
    "section",
    { class: "card", "aria-label": "Events" },
    h("h2", {}, "Events", h("span", { class: "muted" }, " (newest first)")),
    events.length === 0 ? h("p", { class: "muted" }, "No events yet.") : null,
    h(
      "ol",
      { class: "events", id: "events", tabindex: 0, "aria-label": "Events timeline" },
      events.map((e) => h("li", {}, h("time", { datetime: e.time, title: e.time }, new Date(e.time).toLocaleTimeString()), h("span", { class: `reason ${e.reason}` }, e.reason), e.operator ? h("span", { class: "mono" }, `${e.operator}: `) : null, e.message)),
    ),
  );
}

function yamlScalar(v) {
  if (v === null) return "null";
  if (typeof v === "string") return /^[\w./:@-][\w ./:@-]*$/.test(v) && !/^(true|false|null|yes|no|[\d.]+)$/i.test(v) ? v : JSON.stringify(v);
  return String(v);
}

function toYaml(v, indent = "") {
  if (Array.isArray(v)) {
    if (v.length === 0) return " []";
    return v.map((item) => {
      const inner = toYaml(item, `${indent}  `);
      return `\n${indent}- ${inner.replace(/^\n\s*/, "")}`;
    }).join("");
  }
  if (v && typeof v === "object") {
    const entries = Object.entries(v);
    if (entries.length === 0) return " {}";
    return entries.map(([k, val]) => `\n${indent}${k}:${val && typeof val === "object" ? toYaml(val, `${indent}  `) : ` ${yamlScalar(val)}`}`).join("");
  }
  return ` ${yamlScalar(v)}`;
}

function yaml(v) {
  return toYaml(v).replace(/^\n/, "");
}

async function loadHistory(t) {
  const k = key(t.metadata.namespace, t.metadata.name);
  const generation = t.metadata.generation;
  if (state.history && state.history.key === k && state.history.generation === generation) return;
  state.history = { key: k, generation, body: null, error: null };
  const mine = state.history;
  try {
    mine.body = await apiJson(`${topoUrl(t.metadata.namespace, t.metadata.name)}/history?limit=5`);
  } catch (e) {
    mine.error = e.message;
  }
  if (state.history === mine) render();
}

function describeChange(c) {
  switch (c.type) {
    case "added": return `added (${c.instances} instances)`;
    case "removed": return `removed (${c.instances} instances)`;
    case "scaled": return `scaled ${c.from} → ${c.to}`;
    case "replaced": return `replaced (${c.fields.join(", ")} changed)${c.from !== c.to ? `, scaled ${c.from} → ${c.to}` : ""}`;
    case "settingsChanged": return `settings changed (${c.fields.join(", ")})`;
    default: return "unchanged";
  }
}

function lineDiff(oldText, newText) {
  const a = oldText.split("\n");
  const b = newText.split("\n");
  // Longest common subsequence; operator specs are short.
  const n = a.length;
  const m = b.length;
  const dp = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) dp[i][j] = a[i] === b[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { out.push(h("span", {}, `  ${a[i]}\n`)); i++; j++; }
    else if (i < n && (j >= m || dp[i + 1][j] >= dp[i][j + 1])) { out.push(h("span", { class: "del" }, `- ${a[i]}\n`)); i++; }
    else { out.push(h("span", { class: "add" }, `+ ${b[j]}\n`)); j++; }
  }
  return out;
}

function renderSpec(t) {
  loadHistory(t);
  const hist = state.history;
  let diff;
  if (!hist || (!hist.body && !hist.error)) diff = h("p", { class: "muted" }, "Loading history…");
  else if (hist.error) diff = h("p", { class: "banner error", role: "alert" }, `Cannot load the history: ${hist.error}`);
  else {
    const items = hist.body.items || [];
    const cur = items[0];
    const prev = items[1];
    if (!prev) {
      const why = hist.body.end === "compacted" ? "etcd has compacted the revisions of earlier generations" : "this is the first generation";
      diff = h("p", { class: "muted", id: "spec-diff" }, `No previous generation to compare with (${why}).`);
    } else {
      const prevOps = new Map(prev.spec.operators.map((o) => [o.name, o]));
      const curOps = new Map(cur.spec.operators.map((o) => [o.name, o]));
      const changes = (cur.changes && cur.changes.operators) || [];
      diff = h(
        "div",
        { class: "diff", id: "spec-diff" },
        h("p", {}, `Generation ${prev.generation} → ${cur.generation}`, cur.changes && cur.changes.topologyFields && cur.changes.topologyFields.length ? ` (topology fields changed: ${cur.changes.topologyFields.join(", ")})` : ""),
        h(
          "ul",
          {},
          changes.map((c) =>
            h(
              "li",
              { "data-change": c.name },
              h("strong", { class: "mono" }, c.name), `: ${describeChange(c.change)}`,
              c.change.type !== "unchanged" ? h("pre", {}, lineDiff(prevOps.has(c.name) ? yaml(prevOps.get(c.name)) : "", curOps.has(c.name) ? yaml(curOps.get(c.name)) : "")) : null,
            ),
          ),
        ),
      );
    }
  }
  const stored = { apiVersion: t.apiVersion, kind: t.kind, metadata: Object.fromEntries(Object.entries(t.metadata).filter(([k]) => k !== "resourceVersion")), spec: t.spec };
  return h(
    "div",
    { class: "grid2" },
    h("section", { class: "card", "aria-label": "Stored spec" }, h("h2", {}, `Stored spec (generation ${t.metadata.generation ?? "-"})`), h("pre", { class: "spec", id: "spec-yaml", tabindex: 0, "aria-label": "Stored spec as YAML" }, yaml(stored))),
    h("section", { class: "card", "aria-label": "Changes from the previous generation" }, h("h2", {}, "Changes from the previous generation"), diff),
  );
}

// ---------------------------------------------------------------- topology page

function renderOperatorTable(t) {
  const statusOps = new Map(((t.status && t.status.operators) || []).map((o) => [o.name, o]));
  const metricsOps = new Map(((state.metrics && state.metrics.operators) || []).map((o) => [o.name, o]));
  return h(
    "table",
    { id: "operators", "aria-label": "Operators" },
    h("thead", {}, h("tr", {}, h("th", {}, "Operator"), h("th", { class: "num" }, "Running / desired"), h("th", { class: "num" }, "Updated"), h("th", { class: "num" }, "Ready"), h("th", { class: "num" }, "In/s"), h("th", { class: "num" }, "Out/s"), h("th", { class: "num" }, "p99"), h("th", { class: "num" }, "Drops"), h("th", {}, "State"))),
    h(
      "tbody",
      {},
      t.spec.operators.map((op) => {
        const st = statusOps.get(op.name);
        const m = metricsOps.get(op.name);
        const desired = st ? st.desired : op.instances ?? 1;
        return h(
          "tr",
          { "data-op-row": op.name },
          h("td", { class: "name-cell" }, h("button", { type: "button", class: "link", "aria-pressed": state.selected === op.name ? "true" : "false", "aria-label": `Show tasks of operator ${op.name}`, "data-focus": `row:${op.name}`, onclick: () => selectOperator(op.name) }, op.name)),
          h("td", { class: "num" }, `${st ? st.running : 0}/${desired}`),
          h("td", { class: "num" }, st ? st.updated : 0),
          h("td", { class: "num" }, st ? st.ready : 0),
          h("td", { class: "num" }, rate(m && m.recordsInPerSecond)),
          h("td", { class: "num" }, rate(m && m.recordsOutPerSecond)),
          h("td", { class: "num" }, latency(m && m.p99LatencySeconds)),
          h("td", { class: "num" }, m && m.droppedTotal !== null ? m.droppedTotal : "-"),
          h("td", {}, opState(st, op).text),
        );
      }),
    ),
  );
}

function renderTopology() {
  const { ns, name } = state.route;
  const k = key(ns, name);
  const t = state.topologies.get(k);
  const title = h("h1", {}, h("span", { class: "muted" }, `${ns} / `), name);
  if (!t) {
    if (state.deleted.has(k)) {
      return [title, h("div", { class: "banner deleted", role: "alert", id: "deleted" }, `Topology ${k} was deleted. `, h("a", { href: "#/" }, "Back to all topologies"))];
    }
    if (state.listed) {
      return [title, h("div", { class: "banner deleted", role: "alert", id: "deleted" }, `Topology ${k} does not exist (it may have been deleted). `, h("a", { href: "#/" }, "Back to all topologies"))];
    }
    return [title, h("p", { class: "muted" }, "Loading…")];
  }
  const tab = (id, label) => h("button", { type: "button", role: "tab", id: `tab-${id}`, "aria-selected": state.tab === id ? "true" : "false", "aria-controls": "tab-panel", "data-focus": `tab:${id}`, onclick: () => { state.tab = id; render(); } }, label);
  const header = h(
    "div",
    { class: "controls" },
    condBadge(t, "Ready"), condBadge(t, "Progressing"), condBadge(t, "Degraded"),
    h("span", { class: "muted" }, `generation ${t.metadata.generation ?? "-"}, observed ${t.status ? t.status.observedGeneration : "-"}, age ${age(t.metadata.creationTimestamp)}`),
    t.metadata.deletionTimestamp ? h("strong", {}, "being deleted") : null,
    state.metricsError ? h("span", { class: "muted", role: "status" }, `metrics: ${state.metricsError}`) : null,
  );
  const degraded = condition(t, "Degraded");
  const degradedMsg = degraded && degraded.status === "True" && degraded.message ? h("p", { class: "banner warn", role: "status" }, degraded.message) : null;
  let panel;
  if (state.tab === "spec") panel = renderSpec(t);
  else panel = [
    h("section", { class: "card", "aria-label": "Graph" }, h("h2", {}, "Graph"), renderGraph(t)),
    h("section", { class: "card", "aria-label": "Operators" }, h("h2", {}, "Operators"), renderOperatorTable(t)),
    renderTasks(t),
    renderEvents(t),
  ];
  return [title, header, degradedMsg, h("div", { class: "tabs", role: "tablist", "aria-label": "Views" }, tab("overview", "Overview"), tab("spec", "Spec and changes")), h("div", { id: "tab-panel", role: "tabpanel" }, panel)];
}

// ---------------------------------------------------------------- render

function render() {
  const main = document.getElementById("main");
  const focused = document.activeElement && document.activeElement.getAttribute ? document.activeElement.getAttribute("data-focus") : null;
  const logEl = document.getElementById("log-text");
  const logAtBottom = logEl ? logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 4 : true;
  // Live re-renders keep scrolled boxes (spec, events, graph, log) where the user left them.
  const scrolls = [...main.querySelectorAll("[id]")].filter((e) => e.scrollTop || e.scrollLeft).map((e) => [e.id, e.scrollTop, e.scrollLeft]);
  const crumbs = document.getElementById("crumbs");
  if (state.route.page === "topology") {
    crumbs.replaceChildren(h("a", { href: "#/" }, "Topologies"), h("span", {}, "›"), h("span", {}, `${state.route.ns}/${state.route.name}`));
    main.replaceChildren(...renderTopology().filter(Boolean));
  } else {
    crumbs.replaceChildren(h("span", {}, "Topologies"));
    main.replaceChildren(...renderList().filter(Boolean));
  }
  if (focused) {
    const el = [...main.querySelectorAll("[data-focus]")].find((e) => e.getAttribute("data-focus") === focused);
    if (el) el.focus({ preventScroll: true });
  }
  for (const [id, top, left] of scrolls) {
    const el = document.getElementById(id);
    if (el) {
      el.scrollTop = top;
      el.scrollLeft = left;
    }
  }
  const newLog = document.getElementById("log-text");
  if (newLog && logAtBottom) newLog.scrollTop = newLog.scrollHeight;
}

// ---------------------------------------------------------------- start

function start() {
  const input = document.getElementById("token-input");
  input.value = sessionStorage.getItem(TOKEN_KEY) || "";
  document.getElementById("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = input.value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    else sessionStorage.removeItem(TOKEN_KEY);
    clearBanner("auth");
    restartWatch();
  });
  document.getElementById("token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    input.value = "";
    restartWatch();
  });
  window.addEventListener("hashchange", onRoute);
  onRoute();
  runWatch();
  pollMetrics();
  checkReady();
  setInterval(checkReady, 10000);
  setInterval(() => { if (state.route.page === "list") render(); }, 5000); // ages
}

start();
