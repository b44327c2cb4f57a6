#!/usr/bin/env python3
"""The dashboard in a real browser, for tests/dashboard.rs: headless chromium (Debian's)
driven over the DevTools protocol with the stdlib client of scripts/dashboard-check.py.
The agent (started by the Rust test) is at --url; it has a mock GPIO input --pin-in, an
output --pin-out, the token --token, and an Ollama stand-in scripted to answer --answer.

Checks, as a person would see them: every page loads with no console error and no
request leaving the agent; a GPIO input set through the API shows on the open overview
within a second; the source page's chart draws the source's history; logged out the
GPIO toggle is disabled, logged in it works, a write with the cookie but without the
CSRF token is refused (403) and after logout refused (401); the ask box shows the
stand-in's answer. A screenshot of each page goes to --shots. Prints one line per check;
exits 1 naming what failed.
"""

import argparse
import base64
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "dashboard_check", os.path.join(HERE, "..", "scripts", "dashboard-check.py"))
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--remote-debugging-port=0", "--window-size=1000,760"]


def start_chromium(profile):
    chrome = subprocess.Popen(
        ["chromium", *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = os.path.join(profile, "DevToolsActivePort")
    for _ in range(300):
        if os.path.exists(port_file):
            with open(port_file) as f:
                lines = f.read().split()
            if lines:
                port = int(lines[0])
                pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
                page = next(p for p in pages if p["type"] == "page")
                return chrome, check.Cdp(page["webSocketDebuggerUrl"])
        time.sleep(0.1)
    chrome.kill()
    raise SystemExit("chromium did not open its DevTools port within 30 s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--pin-in", type=int, required=True)
    ap.add_argument("--pin-out", type=int, required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--answer", required=True)
    ap.add_argument("--shots", required=True)
    ap.add_argument("--agent-pid", type=int, required=True, help="killed at the end: the banner must show")
    a = ap.parse_args()
    os.makedirs(a.shots, exist_ok=True)
    failed = []

    def ok(cond, what):
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            failed.append(what)

    profile = tempfile.mkdtemp(prefix="smollama-chromium-")
    chrome, cdp = start_chromium(profile)

    def js(expr):
        r = cdp.call("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
        return r.get("result", {}).get("value")

    def until(expr, secs):
        end = time.time() + secs
        while time.time() < end:
            v = js(expr)
            if v:
                return v
            time.sleep(0.05)
        return None

    def shot(name):
        data = cdp.call("Page.captureScreenshot", {"format": "png"})["data"]
        with open(os.path.join(a.shots, f"{name}.png"), "wb") as f:
            f.write(base64.b64decode(data))

    def go(hash_):
        cdp.call("Page.navigate", {"url": f"{a.url}/{hash_}"})
        until("document.readyState === 'complete' && !!document.querySelector('#page').children.length", 10)
        cdp.pump(1.0)

    def api(method, path, value):
        req = urllib.request.Request(
            f"{a.url}{path}", method=method, data=json.dumps({"value": value}).encode(),
            headers={"Authorization": f"Bearer {a.token}", "Content-Type": "application/json"})
        return json.load(urllib.request.urlopen(req))

    try:
        for domain in ("Runtime", "Log", "Network", "Page"):
            cdp.call(f"{domain}.enable")

        # Every page, logged out.
        pages = [("overview", "#/"), ("readings", "#/readings"), ("observations", "#/observations"),
                 ("memories", "#/memories"), ("gpio", "#/gpio"), ("ask", "#/ask"),
                 ("source", f"#/source/{a.source}")]
        for name, h in pages:
            go(h)
            shot(name)
        ok(True, f"{len(pages)} pages loaded, screenshots in {a.shots}")

        # This node's page: the filter bar's Local, with its state.
        go("#/readings?node=local")
        about = until("document.getElementById('about')?.textContent", 5)
        ok(bool(about) and "this node" in about and "active" in about, f"the node page: {about!r}")
        shot("node-local")
        go(f"#/source/{a.source}")

        # The chart draws the source's history, and the observation about it as a marker.
        points = until("Number(document.querySelector('#chart')?.dataset.points || 0)", 5)
        ok((points or 0) > 1, f"the chart of {a.source} draws its history ({points} points)")
        marks = until("Number(document.querySelector('#chart')?.dataset.marks || 0)", 5)
        ok(marks == 1, f"the observation about {a.source} is a marker on its chart ({marks})")
        # Zoom with the wheel, pan by dragging (real input events at the chart).
        box = js("(r => [r.x + r.width / 2, r.y + r.height / 2])(document.querySelector('#chart').getBoundingClientRect())")
        view = lambda: js("[Number(document.querySelector('#chart').dataset.from), Number(document.querySelector('#chart').dataset.spanMs)]")
        x, y = box
        before = view()
        cdp.call("Input.dispatchMouseEvent", {"type": "mouseWheel", "x": x, "y": y, "deltaX": 0, "deltaY": -100})
        time.sleep(0.2)
        zoomed = view()
        ok(zoomed[1] < before[1], f"the wheel zooms in (span {before[1] / 60e3:.1f} -> {zoomed[1] / 60e3:.1f} min)")
        for kind, px in (("mousePressed", x), ("mouseMoved", x + 200), ("mouseReleased", x + 200)):
            cdp.call("Input.dispatchMouseEvent", {"type": kind, "x": px, "y": y, "button": "left", "buttons": 1 if kind != "mouseReleased" else 0, "clickCount": 1})
        time.sleep(0.2)
        panned = view()
        ok(panned[0] < zoomed[0] and panned[1] == zoomed[1], "dragging pans back in time, the span kept")
        js("document.querySelector('.bar button[data-minutes=\"1440\"]').click(); 1")
        band = until("document.querySelector('#page p.dim')?.textContent.includes('rollups') && Number(document.querySelector('#chart').dataset.band)", 5)
        ok((band or 0) > 0, f"beyond the raw window, 24 h shows rollups with a min–max band ({band} buckets)")
        shot("source-24h")

        # Observations: the imported one with its type badge; a search says its mode.
        go("#/observations")
        badge = until("document.querySelector('.item .badge')?.textContent", 5)
        ok(badge == "pattern", f"the observation is listed with its type badge ({badge!r})")
        js("const s = document.querySelector('input[type=search]'); s.value = 'uptime'; s.dispatchEvent(new Event('input')); 1")
        mode = until("(t => t.startsWith('search by') && t)(document.getElementById('mode').textContent)", 5)
        ok(bool(mode) and "words" in mode, f"a search shows its mode: {mode!r}")
        found = until("document.querySelectorAll('.item').length", 5)
        ok(found == 1, f"and finds the observation ({found})")
        shot("observations-search")

        # A GPIO input set through the API shows on the open overview within a second.
        go("#/")
        ok(until("document.getElementById('link').textContent === 'live'", 6), "overview is live")
        src = f"gpio:{a.pin_in}"
        cell = f"document.querySelector('tr[data-source=\"{src}\"] td.value')?.textContent"
        until(cell, 5)
        now = js(cell)
        want = "false" if now == "true" else "true"
        t0 = time.time()
        api("PUT", f"/api/gpio/{a.pin_in}", want == "true")
        seen = until(f"{cell} === '{want}'", 3)
        dt = time.time() - t0
        ok(seen and dt <= 1.0, f"{src} {now} -> {want} on the open overview after {dt * 1000:.0f} ms (no reload)")
        shot("overview-live")
        # On a phone's width (the layout folds; no horizontal scrolling).
        cdp.call("Emulation.setDeviceMetricsOverride",
                 {"width": 390, "height": 800, "deviceScaleFactor": 2, "mobile": True})
        cdp.pump(0.5)
        wide = js("document.documentElement.scrollWidth")
        ok(wide is not None and wide <= 390, f"on a 390 px phone the page is {wide} px wide")
        shot("overview-phone")
        cdp.call("Emulation.clearDeviceMetricsOverride")

        # Paused, the page holds still; resumed, it shows what changed meanwhile.
        js("document.getElementById('pause').click(); 1")
        api("PUT", f"/api/gpio/{a.pin_in}", want != "true")
        time.sleep(1.0)
        held = js(cell)
        js("document.getElementById('pause').click(); 1")
        back = until(f"{cell} === '{now}'", 3)
        ok(held == want and back, f"paused it still shows {held}; resumed, {now}")

        # Logged out: the toggle is there but disabled; a write with no cookie is refused.
        go("#/gpio")
        toggle = "document.querySelector('button.toggle')"
        ok(until(f"{toggle} && {toggle}.disabled", 3), "logged out, the GPIO toggle is disabled")
        code = js(f"fetch('/api/gpio/{a.pin_out}', {{method: 'PUT', body: '{{\"value\": true}}'}}).then(r => r.status)")
        ok(code == 401, f"a write with no cookie is refused ({code})")

        # Log in with the token.
        js(f"document.getElementById('token').value = {json.dumps(a.token)}; document.getElementById('login').requestSubmit(); 1")
        ok(until("!document.getElementById('logout').hidden", 3), "login shows log out")
        ok(until(f"{toggle} && !{toggle}.disabled", 3), "logged in, the GPIO toggle is enabled")
        cookie_visible = js("document.cookie.includes('smollama_session')")
        ok(not cookie_visible, "the session cookie is HttpOnly (not visible to scripts)")
        before = js(f"fetch('/api/gpio').then(r => r.json()).then(g => g.pins.find(p => p.pin === {a.pin_out}).value)")
        js(f"{toggle}.click(); 1")
        after = until(
            f"fetch('/api/gpio').then(r => r.json()).then(g => g.pins.find(p => p.pin === {a.pin_out}).value !== {json.dumps(before)})", 3)
        ok(after, f"the toggle set pin {a.pin_out} from {json.dumps(before)} to {json.dumps(not before)}")
        until(f"document.querySelector('tr[data-pin=\"{a.pin_out}\"] td.level')?.textContent === '{'low' if before else 'high'}'", 3)
        shot("gpio-logged-in")
        code = js(f"fetch('/api/gpio/{a.pin_out}', {{method: 'PUT', body: '{{\"value\": false}}'}}).then(r => r.status)")
        ok(code == 403, f"a write with the cookie but no CSRF token is refused ({code})")
        code = js(f"fetch('/api/gpio/{a.pin_out}', {{method: 'PUT', headers: {{'X-CSRF-Token': 'forged'}}, body: '{{\"value\": false}}'}}).then(r => r.status)")
        ok(code == 403, f"a write with the cookie and a wrong CSRF token is refused ({code})")

        # Ask: the answer from the Ollama stand-in.
        go("#/ask")
        js("document.getElementById('question').value = 'Is the fan on?'; document.querySelector('#page form').requestSubmit(); 1")
        got = until("document.querySelector('#answer .answer-text')?.textContent", 20)
        ok(got == a.answer, f"the ask box shows the answer: {got!r}")
        tools = js("document.querySelector('#answer small')?.textContent")
        ok(bool(tools) and "ms" in tools, f"with tools and timing: {tools!r}")
        shot("ask-answered")

        # Log out: read-only again, and the old session's writes are refused.
        go("#/gpio")
        js("document.getElementById('logout').click(); 1")
        ok(until("!document.getElementById('login').hidden", 3), "logout shows the login form")
        ok(until(f"{toggle} && {toggle}.disabled", 3), "logged out again, the toggle is disabled")
        code = js(f"fetch('/api/gpio/{a.pin_out}', {{method: 'PUT', body: '{{\"value\": true}}'}}).then(r => r.status)")
        ok(code == 401, f"after logout a write is refused ({code})")

        cdp.pump(0.5)
        errors, outside = [], []
        for m in cdp.notes:
            p = m.get("params", {})
            if m.get("method") == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("exception", {}).get("description") or p["exceptionDetails"].get("text"))
            elif m.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
                # The refused writes above are ours, on purpose.
                if p["entry"].get("source") == "network" and "/api/gpio/" in p["entry"].get("url", ""):
                    continue
                errors.append(p["entry"]["text"] + " " + p["entry"].get("url", ""))
            elif m.get("method") == "Network.requestWillBeSent":
                u = p["request"]["url"]
                if not u.startswith(a.url + "/") and not u.startswith("data:"):
                    outside.append(u)
        ok(not errors, f"no console errors {errors or ''}")
        ok(not outside, f"no request leaves {a.url} {outside or ''}")

        # The node goes away: a banner says so.
        go("#/")
        cdp.notes.clear()
        os.kill(a.agent_pid, 9)
        ok(until("!document.getElementById('banner').hidden", 5), "with the node gone, the banner shows")
        shot("connection-lost")
    finally:
        chrome.terminate()
        chrome.wait()
    for f in failed:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
