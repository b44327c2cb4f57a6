#!/usr/bin/env python3
"""The dashboard's OpenClaw panel in a real browser, for tests/openclaw_dashboard.rs:
headless chromium (Debian's) driven over the DevTools protocol with the stdlib client of
scripts/dashboard-check.py, as tests/dashboard.py does. The node (started by the Rust
test, connected to a real gateway) is at --url; --expect says which phase the test is in:

  pending   the panel says "pending approval", shows the two commands to run with the
            node's device id (--device), and links to the gateway's control UI
            (--control-ui); following the link opens the gateway's own page
  approved  the panel says connected and approved, no approval commands
  lost      the gateway is gone: disconnected, and the last error says why

Prints one line per check; exits 1 naming what failed. A screenshot per phase goes to
--shots.
"""

import argparse
import base64
import importlib.util
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("dashboard", os.path.join(HERE, "dashboard.py"))
dashboard = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dashboard)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--expect", required=True, choices=["pending", "approved", "lost"])
    ap.add_argument("--device", required=True)
    ap.add_argument("--control-ui", required=True)
    ap.add_argument("--shots", required=True)
    a = ap.parse_args()
    os.makedirs(a.shots, exist_ok=True)
    failed = []

    def ok(cond, what):
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            failed.append(what)

    chrome, cdp = dashboard.start_chromium(tempfile.mkdtemp(prefix="smollama-chromium-"))

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

    def cell(key):
        return js(f"document.querySelector('#openclaw-state td[data-key=\"{key}\"]')?.textContent")

    try:
        for domain in ("Runtime", "Page"):
            cdp.call(f"{domain}.enable")
        cdp.call("Page.navigate", {"url": f"{a.url}/#/"})
        panel = until("document.querySelector('#openclaw h2')?.textContent", 10)
        ok(panel == "OpenClaw gateway", f"the overview has the OpenClaw panel ({panel!r})")
        card = js("[...document.querySelectorAll('.card')].find(c => c.querySelector('small')?.textContent === 'OpenClaw')?.querySelector('b')?.textContent")
        state = cell("state")
        if a.expect == "pending":
            ok(state == "pending approval" and card == state, f"state: {state!r}, card: {card!r}")
            ok(cell("connected") == "yes" and cell("approved") == "no" and cell("pending approval") == "yes",
               "connected yes, approved no, pending yes")
            cmds = js("document.getElementById('openclaw-approve')?.textContent") or ""
            lines = cmds.split("\n")
            ok(lines == ["openclaw nodes pending", "openclaw nodes approve <requestId>"], f"the commands to run: {cmds!r}")
            said = js("document.getElementById('openclaw-approve')?.previousElementSibling?.textContent") or ""
            ok(a.device in said, f"with the device id to look for: {said!r}")
            href = js("document.getElementById('openclaw-ui')?.href")
            ok(href == a.control_ui, f"the control UI link: {href!r}")
            dashboard_shot(cdp, a.shots, "openclaw-pending")
            # Following it opens the gateway's own control UI (served on its WS port).
            cdp.call("Page.navigate", {"url": href})
            title = until("document.readyState === 'complete' && document.title", 15)
            ok(bool(title) and "openclaw" in title.lower(), f"the link opens the gateway's control UI (title {title!r})")
        elif a.expect == "approved":
            ok(state == "connected" and card == state, f"state: {state!r}, card: {card!r}")
            ok(cell("approved") == "yes" and cell("pending approval") == "no", "approved yes, pending no")
            ok(js("document.getElementById('openclaw-approve') === null"), "no approval commands once approved")
            ok(cell("device id") == a.device, "the device id is shown")
            dashboard_shot(cdp, a.shots, "openclaw-approved")
        else:
            ok(state == "disconnected" and card == state, f"state: {state!r}, card: {card!r}")
            err = cell("last error") or ""
            ok(bool(err), f"the last error says why: {err!r}")
            ok(js("document.getElementById('openclaw-ui')?.href") == a.control_ui, "the control UI link stays")
            dashboard_shot(cdp, a.shots, "openclaw-lost")
    finally:
        chrome.terminate()
        chrome.wait()
    for f in failed:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if failed else 0


def dashboard_shot(cdp, shots, name):
    data = cdp.call("Page.captureScreenshot", {"format": "png"})["data"]
    with open(os.path.join(shots, f"{name}.png"), "wb") as f:
        f.write(base64.b64decode(data))


if __name__ == "__main__":
    sys.exit(main())
