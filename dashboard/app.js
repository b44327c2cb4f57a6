// The dashboard: one page, its views chosen by the URL's hash (#/, #/source/<id>,
// #/readings, #/observations, #/memories, #/gpio, #/ask, #/nodes), all from the node's JSON
// endpoints and kept current by /api/events (Server-Sent Events). When the stream
// cannot be opened or its `hello` does not arrive (a proxy that buffers), it polls
// every 5 s and tries the stream again after a minute. Writes (GPIO, ask, logout) go
// with the session cookie and the session's CSRF token in X-CSRF-Token; logged out,
// write controls are disabled. Nothing is loaded from anywhere but this node.
"use strict";

const POLL_MS = 5000;
const RETRY_LIVE_MS = 60000;
const HELLO_MS = 5000;
const $ = (sel, root = document) => root.querySelector(sel);

const state = {
  session: { logged_in: false, writes_enabled: false },
  status: null,
  latest: new Map(),  // source -> {value, unit, t}
  spark: new Map(),   // source -> [[ms, value]] (last hour)
  paused: false,
  live: false,
  page: null,         // the current view: {onReading, onEvent}
  answers: new Map(), // question id -> answer, from the stream
};

// ---- helpers ----

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k.nodeType ? k : String(k));
  return e;
}

function fmt(value) {
  if (typeof value === "number") return String(Math.round(value * 10000) / 10000);
  return String(value);
}

function rel(t) {
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 5) return "just now";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

// A relative time that ticks (see the interval at the end).
function ago(t) {
  return el("span", { class: "ago", "data-t": String(t), title: new Date(t).toLocaleString() }, rel(t));
}

function duration(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

async function api(path, opts = {}) {
  const headers = { ...(opts.headers || {}) };
  if (opts.method && opts.method !== "GET") {
    headers["Content-Type"] = "application/json";
    if (state.session.csrf) headers["X-CSRF-Token"] = state.session.csrf;
  }
  const res = await fetch(path, { cache: "no-store", credentials: "same-origin", ...opts, headers });
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) {
    const err = new Error((body && body.error) || `${res.status}`);
    err.status = res.status;
    throw err;
  }
  return body;
}

// The source's node: `<node>:<type>:<name>` came from another node over MQTT.
function nodeOf(source) {
  const parts = source.split(":");
  return parts.length >= 3 ? parts[0] : null;
}

function nodeState(t) {
  const age = (Date.now() - t) / 1000;
  return age < 30 ? "active" : age < 300 ? "stale" : "offline";
}

function writable() {
  return state.session.logged_in;
}

function applySession() {
  const s = state.session;
  $("#login").hidden = s.logged_in || !s.writes_enabled;
  $("#logout").hidden = !s.logged_in;
  for (const w of document.querySelectorAll(".write")) {
    w.disabled = !s.logged_in;
    w.title = s.logged_in ? "" : (s.writes_enabled ? "log in to change things" : "writes are off: no [http] token is set");
  }
}

async function loadSession() {
  try { state.session = await api("/api/session"); } catch (e) { /* offline: keep */ }
  applySession();
}

// ---- live updates ----

function record(source, value, unit, t) {
  state.latest.set(source, { value, unit, t });
  if (typeof value === "number" || typeof value === "boolean") {
    const s = state.spark.get(source) || [];
    s.push([t, Number(value)]);
    while (s.length && s[0][0] < Date.now() - 3600e3) s.shift();
    if (s.length > 720) s.splice(0, s.length - 720);
    state.spark.set(source, s);
  }
}

function onReading(r) {
  const source = r.source || r.full_id;
  const t = r.timestamp ? Date.parse(r.timestamp) : Date.now();
  record(source, r.value, r.unit, t);
  if (!state.paused && state.page && state.page.onReading) state.page.onReading(source, r.value, t);
}

function onEvent(kind, data) {
  if (kind === "answer" && data.id) state.answers.set(data.id, data);
  if (!state.paused && state.page && state.page.onEvent) state.page.onEvent(kind, data);
}

function show(text, live) {
  $("#link").textContent = text;
  $("#link").classList.toggle("live", live);
  state.live = live;
}

function lost(yes) {
  $("#banner").hidden = !yes;
}

async function poll() {
  if (state.paused) return true;
  try {
    const data = await api("/api/readings");
    $("#node").textContent = data.node || "";
    for (const r of data.readings || []) onReading(r);
    lost(false);
    return true;
  } catch (e) {
    show("node unreachable", false);
    lost(true);
    return false;
  }
}

let polling = null;
function startPolling() {
  if (polling) return;
  show("polling every 5 s", false);
  polling = setInterval(async () => {
    if (await poll()) show("polling every 5 s", false);
  }, POLL_MS);
  setTimeout(() => {
    clearInterval(polling);
    polling = null;
    live();
  }, RETRY_LIVE_MS);
}

function live() {
  if (!("EventSource" in window)) return startPolling();
  const es = new EventSource("/api/events");
  let failures = 0;
  let greeted = false;
  es.addEventListener("hello", () => {
    greeted = true;
    failures = 0;
    show("live", true);
    lost(false);
  });
  setTimeout(() => {
    if (!greeted && es.readyState !== EventSource.CLOSED) {
      es.close();
      startPolling();
    }
  }, HELLO_MS);
  es.addEventListener("reading", (e) => onReading(JSON.parse(e.data)));
  for (const kind of ["answer", "answer_part", "observation", "memory", "edge"]) {
    es.addEventListener(kind, (e) => onEvent(kind, JSON.parse(e.data)));
  }
  es.onerror = () => {
    failures += 1;
    show("reconnecting…", false);
    lost(true);
    if (failures >= 3 || es.readyState === EventSource.CLOSED) {
      es.close();
      startPolling();
    }
  };
}

// The OpenClaw gateway connection (status connections.openclaw): its state, what the
// operator must run while approval is pending, the last error, and a link to the
// gateway's own control UI.
function openclawPanel(oc) {
  const yes = (b) => (b ? "yes" : "no");
  const where = oc.gateway ? `${oc.gateway} at ${oc.url} (found on the LAN)` : oc.url || "none found yet";
  const rows = [
    ["state", oc.state], ["gateway", where], ["connected", yes(oc.connected)], ["paired", yes(oc.paired)],
    ["approved", yes(oc.approved)], ["pending approval", yes(oc.pending_approval)], ["device id", oc.device_id],
  ];
  if (oc.last_error) rows.push(["last error", oc.last_error]);
  const out = [
    el("h2", {}, "OpenClaw gateway"),
    el("table", { id: "openclaw-state" }, el("tbody", {}, rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { "data-key": k }, v))))),
  ];
  if (oc.approve_with) {
    out.push(el("p", {}, "Approve this node on the gateway host (its request is the one of device id ",
      el("code", {}, oc.device_id), "):"),
      el("pre", { id: "openclaw-approve" }, oc.approve_with.split("; ").join("\n")));
  }
  if (oc.control_ui) {
    out.push(el("p", {}, el("a", { id: "openclaw-ui", href: oc.control_ui, target: "_blank", rel: "noopener" }, "Open the gateway's control UI"),
      el("span", { class: "dim" }, ` (${oc.control_ui})`)));
  }
  return out;
}

// ---- views ----

const views = {};

views.overview = (main) => {
  const head = el("section", { class: "cards" });
  const queues = el("section", { id: "queues" });
  const gateway = el("section", { id: "openclaw" });
  const body = el("tbody");
  const rows = new Map();
  main.append(head, gateway, queues,
    el("h2", {}, "Sources"),
    el("table", { id: "readings" },
      el("thead", {}, el("tr", {}, el("th", {}, "source"), el("th", {}, "value"), el("th", {}, "unit"),
        el("th", {}, "age"), el("th", {}, "last hour"))),
      body));
  const row = (source) => {
    let tr = rows.get(source);
    if (!tr) {
      tr = el("tr", { "data-source": source },
        el("td", {}, el("a", { href: `#/source/${encodeURIComponent(source)}` }, source)),
        el("td", { class: "value" }), el("td"), el("td", { class: "time" }), el("td", { class: "sparkcell" }));
      rows.set(source, tr);
      const names = [...rows.keys()].sort();
      const next = names[names.indexOf(source) + 1];
      body.insertBefore(tr, next ? rows.get(next) : null);
    }
    return tr;
  };
  const fill = (source, fresh) => {
    const r = state.latest.get(source);
    if (!r) return;
    const tr = row(source);
    tr.cells[1].textContent = fmt(r.value);
    tr.cells[2].textContent = r.unit || "";
    tr.cells[3].replaceChildren(ago(r.t));
    tr.cells[4].replaceChildren(sparkline(state.spark.get(source) || []));
    if (fresh) {
      tr.classList.remove("fresh");
      void tr.offsetWidth;
      tr.classList.add("fresh");
    }
  };
  const status = async () => {
    try {
      const s = await api("/api/status");
      state.status = s;
      const c = s.connections || {};
      const since = Date.now() - s.uptime_s * 1000;
      const card = (title, value, cls) => el("div", { class: `card ${cls || ""}` }, el("small", {}, title), el("b", {}, value));
      const edgeState = (v) => (v === "connected" || v === "ok" || v === "ready" ? "ok" : v ? "warn" : "");
      head.replaceChildren(
        card("node", s.node),
        el("div", { class: "card" }, el("small", {}, "up since"), el("b", {}, ago(since))),
        card("MQTT", c.mqtt ? c.mqtt.state : "off", edgeState(c.mqtt && c.mqtt.state)),
        card("Ollama", c.ollama ? (c.ollama.state || "off") : "off", edgeState(c.ollama && c.ollama.state)),
        card("store", s.store ? s.store.state : "?", edgeState(s.store && s.store.state)),
        ...(c.openclaw ? [card("OpenClaw", c.openclaw.state, edgeState(c.openclaw.state))] : []),
      );
      gateway.replaceChildren(...(c.openclaw ? openclawPanel(c.openclaw) : []));
      const bad = [];
      for (const src of s.sources || []) if (src.drops) bad.push(el("li", {}, `${src.id}: ${src.drops} readings dropped`));
      for (const e of s.edges || []) {
        if (e.drops) bad.push(el("li", {}, `${e.from} → ${e.to}: ${e.drops} dropped`));
        if (e.depth) bad.push(el("li", {}, `${e.from} → ${e.to}: ${e.depth} waiting`));
      }
      queues.replaceChildren(...(bad.length ? [el("h2", {}, "Drops and queues"), el("ul", {}, bad)] : []));
    } catch (e) { /* the banner says it */ }
  };
  status();
  const timer = setInterval(() => { if (!state.paused) status(); }, 10000);
  api("/api/readings").then(async (data) => {
    $("#node").textContent = data.node || "";
    for (const r of data.readings || []) {
      if (!state.latest.has(r.full_id)) record(r.full_id, r.value, r.unit, Date.parse(r.timestamp));
      fill(r.full_id, false);
    }
    // The last hour of each source, for its sparkline (what the stream adds goes on it).
    for (const r of data.readings || []) {
      try {
        const h = await api(`/api/readings/${encodeURIComponent(r.full_id)}/history?minutes=60&limit=720`);
        const pts = (h.readings || []).map((x) => [Date.parse(x.timestamp), Number(x.value)]).reverse();
        const have = state.spark.get(r.full_id) || [];
        const last = pts.length ? pts[pts.length - 1][0] : 0;
        state.spark.set(r.full_id, pts.concat(have.filter((p) => p[0] > last)));
        fill(r.full_id, false);
      } catch (e) { /* a source without history */ }
    }
  }).catch(() => {});
  for (const source of state.latest.keys()) fill(source, false);
  return {
    onReading: (source) => fill(source, true),
    onEvent: (kind) => { if (kind === "edge") status(); },
    close: () => clearInterval(timer),
  };
};

const RANGES = [["1 h", 60], ["24 h", 1440], ["7 d", 10080], ["30 d", 43200], ["1 y", 525600]];

views.source = (main, id) => {
  const canvas = el("canvas", { id: "chart" });
  const chart = new TimeChart(canvas);
  const info = el("p", { class: "dim" });
  const bar = el("div", { class: "bar" });
  let minutes = 60;
  const load = async () => {
    for (const b of bar.children) b.classList.toggle("on", Number(b.dataset.minutes) === minutes);
    const now = Date.now();
    try {
      const h = await api(`/api/readings/${encodeURIComponent(id)}/history?minutes=${minutes}&limit=10000`);
      let line, band = [];
      if (h.rollups) {
        const rs = h.rollups.slice().sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
        line = rs.map((r) => [Date.parse(r.timestamp), r.mean]);
        band = rs.map((r) => [Date.parse(r.timestamp), r.min, r.max]);
      } else {
        line = (h.readings || []).filter((r) => typeof r.value === "number" || typeof r.value === "boolean")
          .map((r) => [Date.parse(r.timestamp), Number(r.value)]).sort((a, b) => a[0] - b[0]);
      }
      let marks = [];
      try {
        const o = await api(`/api/observations?hours=${Math.ceil(minutes / 60)}&limit=500`);
        marks = (o.observations || [])
          .filter((x) => (x.related_sources || []).includes(id) || x.text.includes(id))
          .map((x) => ({ t: Date.parse(x.timestamp), label: `${x.type}: ${x.text}` }));
      } catch (e) { /* a lean build has no observations */ }
      chart.set(line, band, marks, [now - minutes * 60e3, now]);
      const st = h.statistics || {};
      info.textContent = `${h.count} ${h.rollups ? `rollups of ${h.resolution} (mean, with the min–max band)` : "raw readings"}` +
        (st.min !== undefined ? ` · min ${st.min} · avg ${st.avg} · max ${st.max} ${h.unit || ""}` : "") +
        (marks.length ? ` · ${marks.length} observations marked` : "") +
        " · drag to pan, wheel to zoom, double-click to reset";
    } catch (e) {
      info.textContent = `cannot load the history: ${e.message}`;
    }
  };
  for (const [label, m] of RANGES) {
    bar.append(el("button", { type: "button", "data-minutes": String(m), onclick: () => { minutes = m; load(); } }, label));
  }
  main.append(el("h2", {}, id), bar, canvas, info);
  load();
  return {
    onReading: (source, value, t) => {
      if (source === id && minutes === 60 && (typeof value === "number" || typeof value === "boolean")) chart.push(t, Number(value));
    },
  };
};

// The node filter bar of the readings and observations pages: "All", then one link per
// node (`[value, label, health]`), the current one marked.
function nodeLinks(base, filter, nodes) {
  const link = (value, label, dot) => el("a", {
    href: `#/${base}${value ? `?node=${encodeURIComponent(value)}` : ""}`,
    class: filter === value ? "on" : "",
  }, dot ? el("span", { class: `dot ${dot}`, title: dot }) : null, label);
  return [link("", "All"), ...nodes.map(([value, label, dot]) => link(value, label, dot))];
}

views.readings = (main, _, params) => {
  const filter = params.get("node") || "";
  let local = state.status ? state.status.node : $("#node").textContent;
  const bar = el("div", { class: "bar", id: "nodes" });
  const about = el("p", { id: "about" });
  const grid = el("section", { class: "grid" });
  main.append(el("h2", {}, "Readings across nodes"), bar, about, grid);
  // Every node's latest readings, as this node received them (/api/cluster/readings:
  // other nodes' batches arrive every 30 s by default); this node's own also live.
  let cluster = new Map(); // full id -> {node, source, value, unit, t}
  const rows = () => {
    const out = new Map(cluster);
    for (const [s, r] of state.latest) {
      const have = out.get(s);
      if (have && have.t >= r.t) continue;
      const n = nodeOf(s);
      out.set(s, { node: n || local, source: n ? s.slice(n.length + 1) : s, value: r.value, unit: r.unit, t: r.t });
    }
    return out;
  };
  const isLocal = (node) => node === local;
  const draw = () => {
    const all = rows();
    const nodes = new Map(); // other node -> newest ms
    let newestLocal = 0;
    for (const r of all.values()) {
      if (isLocal(r.node)) newestLocal = Math.max(newestLocal, r.t);
      else nodes.set(r.node, Math.max(nodes.get(r.node) || 0, r.t));
    }
    const wanted = filter === "local" ? local : filter;
    bar.replaceChildren(...nodeLinks("readings", filter, [
      ["local", `Local · ${local || "this node"}`, null],
      ...[...nodes].sort().map(([n, t]) => [n, n, nodeState(t)])]));
    const cards = [];
    for (const [s, r] of [...all].sort((x, y) => (x[1].node + x[1].source).localeCompare(y[1].node + y[1].source))) {
      if (wanted && r.node !== wanted) continue;
      cards.push(el("a", { class: "card reading", href: `#/source/${encodeURIComponent(s)}`, "data-source": s, "data-node": r.node },
        el("small", {}, r.source), el("b", {}, fmt(r.value), " ", el("small", {}, r.unit || "")),
        el("small", {}, isLocal(r.node) ? "Local" : r.node, " · ", ago(r.t))));
    }
    grid.replaceChildren(...(cards.length ? cards : [el("p", { class: "dim" }, "No readings.")]));
    // A node's page: its state, when it was last heard of, how many sources.
    const newest = isLocal(wanted) ? newestLocal : nodes.get(wanted);
    about.replaceChildren(...(wanted && newest ? [
      el("span", { class: `dot ${nodeState(newest)}` }), `${isLocal(wanted) ? `${local} (this node)` : wanted} · `,
      nodeState(newest), " · last seen ", ago(newest), ` · ${cards.length} sources`] : []));
  };
  const load = async () => {
    try {
      const c = await api("/api/cluster/readings");
      local = c.node || local;
      cluster = new Map((c.readings || []).map((r) => [r.full_id,
        { node: r.node, source: r.source_id, value: r.value, unit: r.unit, t: Date.parse(r.timestamp) }]));
    } catch (e) { /* unreachable: the banner says it; live readings still show */ }
    if (!state.paused) draw();
  };
  draw();
  load();
  const timer = setInterval(load, 10000);
  return { onReading: draw, close: () => clearInterval(timer) };
};

const HOURS = [["All", 0], ["7d", 168], ["24h", 24], ["6h", 6], ["1h", 1]];

function searchView(main, kind, params) {
  const box = el("input", { type: "search", placeholder: `search ${kind}`, "aria-label": "search" });
  const bar = el("div", { class: "bar" });
  // Observations of every node (merged by sync), or of one: ?node=.
  const node = kind === "observations" ? (params.get("node") || "") : "";
  const nodes = el("div", { class: "bar", id: "nodes" });
  const mode = el("p", { class: "dim", id: "mode" });
  const list = el("section", { class: "list" });
  let hours = 0, timer = null;
  const card = (x) => el("article", { class: "card item" },
    el("p", {}, x.text),
    el("small", {},
      x.type ? el("span", { class: `badge ${x.type}` }, x.type) : null,
      x.times_confirmed > 1 ? el("span", { class: "badge" }, `confirmed ${x.times_confirmed}×`) : null,
      ` ${Math.round((x.confidence || 0) * 100)}% confidence`,
      x.similarity ? ` · ${Math.round(x.similarity * 100)}% match` : "",
      x.node ? ` · ${x.node}` : "",
      " · ", ago(Date.parse(x.timestamp || x.updated_at))),
    (x.related_sources || []).length ? el("div", {}, ...x.related_sources.map((s) =>
      el("a", { class: "chip", href: `#/source/${encodeURIComponent(s)}` }, s))) : null);
  const load = async () => {
    const q = box.value.trim();
    try {
      let items;
      if (q) {
        // By meaning when the embedding model answers, else by words: the node says which.
        const r = await api("/api/memory/recall", { method: "POST", body: JSON.stringify({ query: q, limit: 50 }) });
        mode.textContent = r.mode === "vector" ? "search by meaning (embeddings)"
          : "search by words (BM25: the embedding model is not available or has no vectors yet)";
        items = r[kind];
        if (kind === "observations" && hours) items = items.filter((x) => Date.parse(x.timestamp) > Date.now() - hours * 3600e3);
        if (node) items = items.filter((x) => x.node === node);
      } else {
        mode.textContent = "newest first";
        const only = node ? `&node=${encodeURIComponent(node)}` : "";
        const r = await api(kind === "observations" ? `/api/cluster/observations?hours=${hours}&limit=50${only}` : "/api/memories?limit=50");
        items = r[kind];
      }
      list.replaceChildren(...(items.length ? items.map(card) : [el("p", { class: "dim" }, `No ${kind}.`)]));
    } catch (e) {
      list.replaceChildren(el("p", { class: "dim" }, e.message));
    }
  };
  box.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(load, 300); });
  if (kind === "observations") {
    for (const [label, h] of HOURS) {
      bar.append(el("button", { type: "button", class: h === hours ? "on" : "", onclick: (e) => {
        hours = h;
        for (const b of bar.children) b.classList.toggle("on", b === e.target);
        load();
      } }, label));
    }
  }
  if (kind === "observations") {
    // The nodes whose observations this node holds (/api/cluster/stats).
    api("/api/cluster/stats").then((st) => {
      const known = (st.nodes || []).filter((n) => n.observations_count > 0 || n.node === node);
      nodes.replaceChildren(...nodeLinks("observations", node, known.map((n) =>
        [n.node, `${n.local ? "Local · " : ""}${n.node} (${n.observations_count})`, null])));
    }).catch(() => {});
  }
  main.append(el("h2", {}, kind[0].toUpperCase() + kind.slice(1)), ...(kind === "observations" ? [nodes] : []), box, bar, mode, list);
  load();
  return { onEvent: (k) => { if (k === kind.slice(0, -1) && !box.value.trim()) load(); } };
}

views.observations = (main, _, params) => searchView(main, "observations", params);
views.memories = (main, _, params) => searchView(main, "memories", params);

views.gpio = (main) => {
  const body = el("tbody");
  const note = el("p", { class: "dim" });
  main.append(el("h2", {}, "GPIO"), note,
    el("table", { id: "pins" }, el("thead", {}, el("tr", {}, el("th", {}, "pin"), el("th", {}, "name"),
      el("th", {}, "mode"), el("th", {}, "level"), el("th"))), body));
  const load = async () => {
    try {
      const g = await api("/api/gpio");
      note.textContent = `backend: ${g.backend}`;
      body.replaceChildren(...g.pins.map((p) => el("tr", { "data-pin": String(p.pin) },
        el("td", {}, p.pin), el("td", {}, p.name), el("td", {}, p.mode),
        el("td", { class: "level" }, p.error ? p.error : p.value ? "high" : "low"),
        el("td", {}, p.mode === "output" ? el("button", {
          type: "button", class: "write toggle",
          onclick: async () => {
            try {
              await api(`/api/gpio/${p.pin}`, { method: "PUT", body: JSON.stringify({ value: !p.value }) });
            } catch (e) { note.textContent = `not changed: ${e.message}`; }
            load();
          },
        }, p.value ? "turn off" : "turn on") : null))));
      applySession();
    } catch (e) { note.textContent = e.message; }
  };
  load();
  return { onReading: (source) => { if (source.startsWith("gpio:")) load(); } };
};

views.ask = (main) => {
  const q = el("textarea", { id: "question", rows: "3", placeholder: "Ask the agent…" });
  const send = el("button", { type: "submit", class: "write" }, "ask");
  const out = el("section", { id: "answer" });
  let waiting = null;
  const showAnswer = (a, ms) => {
    waiting = null;
    out.replaceChildren(
      el("p", { class: a.error ? "error" : "answer-text" }, a.answer || a.error || ""),
      el("small", { class: "dim" },
        `tools: ${(a.tools_used || []).join(", ") || "none"} · ${a.rounds || 0} rounds · ` +
        `${Math.round(a.duration_ms || ms)} ms${a.model ? ` · ${a.model}` : ""}`));
    send.disabled = !writable();
  };
  const form = el("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      const question = q.value.trim();
      if (!question) return;
      const id = `web-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
      waiting = id;
      send.disabled = true;
      const t0 = performance.now();
      out.replaceChildren(el("p", { class: "dim" }, "thinking…"));
      try {
        const a = await api("/api/ask", { method: "POST", body: JSON.stringify({ question, id }) });
        if (waiting === id) showAnswer(a, performance.now() - t0);
      } catch (err) {
        if (waiting === id) { out.replaceChildren(el("p", { class: "error" }, err.message)); send.disabled = !writable(); }
      }
    },
  }, q, send);
  main.append(el("h2", {}, "Ask"), form, out);
  applySession();
  return {
    // The stream brings the answer as the model writes it, and may bring the whole
    // answer before the response does.
    onEvent: (kind, a) => {
      if (a.id !== waiting) return;
      if (kind === "answer") showAnswer(a, 0);
      else if (kind === "answer_part") {
        let p = out.querySelector(".answer-text");
        if (!p) { p = el("p", { class: "answer-text partial" }, ""); out.replaceChildren(p); }
        p.textContent += a.text;
      }
    },
  };
};

// Every node this one knows (GET /api/nodes: mDNS and MQTT), refreshed every 5 s while
// shown; health from the node's status topic and its last traffic.
views.nodes = (main, _, params) => {
  const body = el("tbody");
  const note = el("p", { class: "dim" });
  const health = params.get("health") || "";
  const filter = el("select", {
    id: "node-health", "aria-label": "health",
    onchange: (e) => { location.hash = `#/nodes${e.target.value ? `?health=${e.target.value}` : ""}`; },
  }, ...["", "active", "stale", "offline"].map((h) =>
    el("option", { value: h, selected: h === health }, h || "any health")));
  main.append(el("h2", {}, "Nodes"), filter, note,
    el("table", { id: "nodes" }, el("thead", {}, el("tr", {}, ...["node", "role", "health", "address",
      "last seen", "via", "version", "offers"].map((h) => el("th", {}, h)))), body));
  const load = async () => {
    if (state.paused) return;
    try {
      const d = await api("/api/nodes");
      const c = d.counts;
      note.textContent = `${c.known} other nodes known: ${c.active} active, ${c.stale} stale, ${c.offline} offline`;
      body.replaceChildren(...d.nodes.filter((n) => !health || n.health === health).map((n) => {
        const caps = n.capabilities;
        return el("tr", { "data-node": n.name, class: `health-${n.health}` },
          el("td", {}, n.self ? `${n.name} (this node)` : n.name),
          el("td", {}, n.node_type || "–"),
          el("td", { class: "health" }, n.health),
          el("td", {}, n.url && !n.self ? el("a", { href: n.url }, n.addresses.join(", ")) : (n.addresses.join(", ") || "–")),
          el("td", {}, ago(Date.now() - n.seen_s_ago * 1000)),
          el("td", {}, n.via.join(", ")),
          el("td", {}, n.version || "–"),
          el("td", {}, caps ? `${caps.sources} sources, ${caps.tools} tools${caps.llm ? ", LLM" : ""}` : "–"));
      }));
    } catch (e) { note.textContent = e.message; }
  };
  load();
  const timer = setInterval(load, POLL_MS);
  return { close: () => clearInterval(timer) };
};

// ---- routing ----

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, query] = hash.split("?");
  const [name, ...rest] = path.split("/");
  const view = views[name || "overview"] || views.overview;
  if (state.page && state.page.close) state.page.close();
  const main = $("#page");
  main.replaceChildren();
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("on", a.getAttribute("href") === `#/${name || ""}`);
  }
  state.page = view(main, decodeURIComponent(rest.join("/")), new URLSearchParams(query || "")) || {};
  applySession();
}

$("#pause").addEventListener("click", () => {
  state.paused = !state.paused;
  $("#pause").textContent = state.paused ? "resume" : "pause";
  $("#pause").classList.toggle("on", state.paused);
  if (!state.paused) route(); // redraw with what arrived meanwhile
});

$("#login").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    state.session = await api("/api/login", { method: "POST", body: JSON.stringify({ token: $("#token").value }) });
    state.session.writes_enabled = true;
    $("#token").value = "";
  } catch (err) {
    $("#token").value = "";
    $("#token").placeholder = err.status === 401 ? "wrong token" : err.message;
  }
  applySession();
});

$("#logout").addEventListener("click", async () => {
  try { await api("/api/logout", { method: "POST", body: "{}" }); } catch (e) { /* ends anyway */ }
  await loadSession();
});

// Relative times tick.
setInterval(() => {
  for (const s of document.querySelectorAll(".ago")) s.textContent = rel(Number(s.dataset.t));
}, 1000);

window.addEventListener("hashchange", route);
loadSession().then(() => {
  route();
  poll().then(live);
});
