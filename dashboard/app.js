// The live view: readings from /api/readings, then live from /api/events (Server-Sent
// Events); when the event stream cannot be opened or keeps failing (a proxy that
// buffers, no stream free), it polls /api/readings every 5 s instead, and tries the
// stream again after a minute.
"use strict";

const POLL_MS = 5000;
const RETRY_LIVE_MS = 60000;
const HELLO_MS = 5000;
const rows = new Map(); // source -> <tr>
const body = document.querySelector("#readings tbody");
const link = document.getElementById("link");

function show(state, live) {
  link.textContent = state;
  link.classList.toggle("live", live);
}

function cell(tr, i, cls) {
  while (tr.cells.length <= i) tr.insertCell();
  const c = tr.cells[i];
  if (cls) c.className = cls;
  return c;
}

function format(value) {
  if (typeof value === "number") return String(Math.round(value * 10000) / 10000);
  return String(value);
}

function update(r, fresh) {
  const source = r.full_id || r.source;
  let tr = rows.get(source);
  if (!tr) {
    tr = document.createElement("tr");
    rows.set(source, tr);
    const after = [...rows.keys()].sort().indexOf(source);
    const next = [...rows.keys()].sort()[after + 1];
    body.insertBefore(tr, next ? rows.get(next) : null);
  }
  cell(tr, 0).textContent = source;
  cell(tr, 1, "value").textContent = format(r.value);
  cell(tr, 2).textContent = r.unit || "";
  const ts = r.timestamp ? new Date(r.timestamp) : new Date();
  cell(tr, 3, "time").textContent = ts.toLocaleTimeString();
  if (fresh) {
    tr.classList.remove("fresh");
    void tr.offsetWidth; // restart the animation
    tr.classList.add("fresh");
  }
  document.getElementById("empty").hidden = true;
}

async function poll() {
  try {
    const res = await fetch("/api/readings", { cache: "no-store" });
    const data = await res.json();
    document.getElementById("node").textContent = data.node || "";
    for (const r of data.readings || []) update(r, false);
    return true;
  } catch (e) {
    show("node unreachable", false);
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
  // Try the live stream again now and then (the node may have had no stream free).
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
  // The stream's first event; a proxy that buffers holds it back, and then we poll.
  let greeted = false;
  es.addEventListener("hello", () => {
    greeted = true;
    failures = 0;
    show("live", true);
  });
  // Counted from the start: a proxy that buffers holds back the response head too.
  setTimeout(() => {
    if (!greeted && es.readyState !== EventSource.CLOSED) {
      es.close();
      startPolling();
    }
  }, HELLO_MS);
  es.addEventListener("reading", (e) => update(JSON.parse(e.data), true));
  es.onerror = () => {
    // EventSource reconnects by itself (resuming from the last id); after a few
    // failures in a row, poll instead.
    failures += 1;
    show("reconnecting…", false);
    if (failures >= 3 || es.readyState === EventSource.CLOSED) {
      es.close();
      startPolling();
    }
  };
}

poll().then(live);
