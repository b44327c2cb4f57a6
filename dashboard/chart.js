// A small time-series chart on a canvas (uPlot's approach: one canvas, data as plain
// arrays, redrawn whole on every change; no DOM per point). A line of values, an
// optional min–max band (rollups), markers at times (observations), time and value
// axes; drag to pan, wheel (or pinch) to zoom, double-click to see all again.
"use strict";

class TimeChart {
  constructor(canvas) {
    this.c = canvas;
    this.line = [];    // [[ms, value]], sorted by time
    this.band = [];    // [[ms, min, max]]
    this.marks = [];   // [{t: ms, label}]
    this.view = null;  // [x0, x1] when zoomed or panned, else everything
    this.drag = null;
    canvas.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
    canvas.addEventListener("pointerdown", (e) => {
      this.drag = { x: e.clientX, view: this.range() };
      canvas.setPointerCapture(e.pointerId);
    });
    canvas.addEventListener("pointermove", (e) => this.onMove(e));
    canvas.addEventListener("pointerup", () => { this.drag = null; });
    canvas.addEventListener("dblclick", () => { this.view = null; this.draw(); });
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  set(line, band, marks, span) {
    this.line = line;
    this.band = band || [];
    this.marks = marks || [];
    this.span = span; // [from, to] in ms: the window asked for
    this.view = null;
    this.c.dataset.points = String(line.length);
    this.c.dataset.marks = String(this.marks.length);
    this.c.dataset.band = String(this.band.length);
    this.draw();
  }

  push(t, v) {
    this.line.push([t, v]);
    if (this.span) this.span[1] = Math.max(this.span[1], t);
    this.c.dataset.points = String(this.line.length);
    this.draw();
  }

  range() {
    if (this.view) return this.view;
    if (this.span) return this.span;
    const ts = this.line.map((p) => p[0]);
    return ts.length ? [ts[0], ts[ts.length - 1] + 1] : [Date.now() - 3600e3, Date.now()];
  }

  plotWidth() { return this.c.clientWidth - 56; }

  onWheel(e) {
    e.preventDefault();
    const [x0, x1] = this.range();
    const f = e.deltaY > 0 ? 1.25 : 0.8;
    const at = x0 + ((e.offsetX - 48) / this.plotWidth()) * (x1 - x0);
    this.view = [at - (at - x0) * f, at + (x1 - at) * f];
    this.draw();
  }

  onMove(e) {
    if (this.drag) {
      const [x0, x1] = this.drag.view;
      const dt = ((e.clientX - this.drag.x) / this.plotWidth()) * (x1 - x0);
      this.view = [x0 - dt, x1 - dt];
      this.draw();
      return;
    }
    // A marker under the pointer shows its text as the canvas's tooltip.
    const [x0, x1] = this.range();
    const w = this.plotWidth();
    const hit = this.marks.find((m) => Math.abs(48 + ((m.t - x0) / (x1 - x0)) * w - e.offsetX) < 5);
    this.c.title = hit ? hit.label : "";
  }

  draw() {
    const c = this.c, dpr = window.devicePixelRatio || 1;
    const W = c.clientWidth, H = c.clientHeight;
    if (!W || !H) return;
    c.width = W * dpr;
    c.height = H * dpr;
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    const css = getComputedStyle(c);
    const fg = css.color, accent = css.getPropertyValue("--accent") || "#37c";
    const L = 48, R = 8, T = 8, B = 22, w = W - L - R, h = H - T - B;
    const [x0, x1] = this.range();
    c.dataset.from = String(Math.round(x0));
    c.dataset.spanMs = String(Math.round(x1 - x0));
    const inView = (t) => t >= x0 && t <= x1;
    let lo = Infinity, hi = -Infinity;
    for (const [t, v] of this.line) if (inView(t)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    for (const [t, a, b] of this.band) if (inView(t)) { lo = Math.min(lo, a); hi = Math.max(hi, b); }
    if (lo === Infinity) { lo = 0; hi = 1; }
    if (lo === hi) { lo -= 1; hi += 1; }
    const pad = (hi - lo) * 0.05;
    lo -= pad; hi += pad;
    const X = (t) => L + ((t - x0) / (x1 - x0)) * w;
    const Y = (v) => T + (1 - (v - lo) / (hi - lo)) * h;
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = fg;
    g.strokeStyle = "rgba(128,128,128,0.25)";
    g.lineWidth = 1;
    // Value axis: about five round steps.
    const step = niceStep((hi - lo) / 5);
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) {
      g.beginPath(); g.moveTo(L, Y(v)); g.lineTo(L + w, Y(v)); g.stroke();
      g.fillText(fmtNum(v, step), L - 4, Y(v));
    }
    // Time axis.
    const tstep = timeStep((x1 - x0) / Math.max(2, Math.floor(w / 90)));
    g.textAlign = "center";
    g.textBaseline = "top";
    for (let t = Math.ceil(x0 / tstep) * tstep; t <= x1; t += tstep) {
      g.beginPath(); g.moveTo(X(t), T); g.lineTo(X(t), T + h); g.stroke();
      g.fillText(fmtTime(t, x1 - x0), X(t), T + h + 4);
    }
    g.save();
    g.beginPath(); g.rect(L, T, w, h); g.clip();
    if (this.band.length) {
      g.fillStyle = "rgba(80,140,220,0.25)";
      g.beginPath();
      this.band.forEach(([t, , b], i) => (i ? g.lineTo(X(t), Y(b)) : g.moveTo(X(t), Y(b))));
      for (let i = this.band.length - 1; i >= 0; i--) g.lineTo(X(this.band[i][0]), Y(this.band[i][1]));
      g.closePath();
      g.fill();
    }
    g.strokeStyle = accent.trim() || "#37c";
    g.lineWidth = 1.5;
    g.beginPath();
    this.line.forEach(([t, v], i) => (i ? g.lineTo(X(t), Y(v)) : g.moveTo(X(t), Y(v))));
    g.stroke();
    if (this.line.length < 60) {
      g.fillStyle = g.strokeStyle;
      for (const [t, v] of this.line) { g.beginPath(); g.arc(X(t), Y(v), 2, 0, 7); g.fill(); }
    }
    g.strokeStyle = "#d80";
    g.fillStyle = "#d80";
    for (const m of this.marks) {
      if (!inView(m.t)) continue;
      g.beginPath(); g.moveTo(X(m.t), T); g.lineTo(X(m.t), T + h); g.stroke();
      g.beginPath(); g.moveTo(X(m.t) - 4, T); g.lineTo(X(m.t) + 4, T); g.lineTo(X(m.t), T + 7); g.fill();
    }
    g.restore();
  }
}

function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(raw || 1)));
  const n = raw / p;
  return (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * p;
}

const TIME_STEPS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600,
  86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400].map((s) => s * 1000);

function timeStep(raw) {
  return TIME_STEPS.find((s) => s >= raw) || TIME_STEPS[TIME_STEPS.length - 1];
}

// A tick's value with as many decimals as its step needs.
function fmtNum(v, step) {
  if (step >= 1e5 && Math.abs(v) >= 1e6) return (v / 1e6).toFixed(step >= 1e6 ? 0 : 1) + "M";
  return v.toFixed(Math.min(6, Math.max(0, -Math.floor(Math.log10(step)))));
}

function fmtTime(t, span) {
  const d = new Date(t);
  if (span > 2 * 86400e3) return d.toLocaleDateString([], { month: "short", day: "numeric" });
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// A sparkline: an SVG polyline of [[ms, value]] in a small box (made by the HTML
// parser, which puts <svg> in its namespace).
function sparkline(points, w = 120, h = 24) {
  const nums = points.filter((p) => typeof p[1] === "number");
  let line = "";
  if (nums.length > 1) {
    const t0 = nums[0][0], t1 = nums[nums.length - 1][0] || t0 + 1;
    let lo = Infinity, hi = -Infinity;
    for (const p of nums) { lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]); }
    if (lo === hi) { lo -= 1; hi += 1; }
    line = nums.map(([t, v]) =>
      `${(((t - t0) / (t1 - t0 || 1)) * w).toFixed(1)},${(h - 1 - ((v - lo) / (hi - lo)) * (h - 2)).toFixed(1)}`).join(" ");
  }
  const box = document.createElement("span");
  box.innerHTML = `<svg class="spark" viewBox="0 0 ${w} ${h}" data-points="${nums.length}"><polyline points="${line}"/></svg>`;
  return box.firstChild;
}
