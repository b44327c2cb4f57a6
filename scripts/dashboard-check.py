#!/usr/bin/env python3
"""Load the dashboard of a running agent in headless chromium (Debian's `chromium`) over
the DevTools protocol, with no library beyond Python's own, and check what a person
would see: the live state, the readings table, a GPIO input set through the API showing
up without a reload, no console error, no request leaving the agent. Writes a
screenshot. Not part of the test suite (it needs chromium); for trying the pages out.

    ./scripts/dashboard-check.py --url http://127.0.0.1:8080 --token TOKEN --pin 17

Exit 0 when every check passed, 1 otherwise.
"""

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request


class Cdp:
    """One DevTools websocket (text frames only, as the protocol uses)."""

    def __init__(self, ws_url):
        host_port, path = ws_url.removeprefix("ws://").split("/", 1)
        host, port = host_port.split(":")
        self.s = socket.create_connection((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(
            f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self.s.recv(4096)
        self.buf = buf.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0
        self.notes = []

    def send(self, obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (
            bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
        )
        self.s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self, timeout):
        self.s.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                n, off = self.buf[1] & 0x7F, 2
                if n == 126:
                    n, off = int.from_bytes(self.buf[2:4], "big"), 4
                elif n == 127:
                    n, off = int.from_bytes(self.buf[2:10], "big"), 10
                if len(self.buf) >= off + n:
                    msg, self.buf = self.buf[off : off + n], self.buf[off + n :]
                    return json.loads(msg)
            try:
                chunk = self.s.recv(1 << 20)
            except socket.timeout:
                return None
            if not chunk:
                return None
            self.buf += chunk

    def call(self, method, params=None):
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params or {}})
        deadline = time.time() + 10
        while time.time() < deadline:
            m = self.recv(1)
            if m is None:
                continue
            if m.get("id") == self.next_id:
                return m.get("result", {})
            self.notes.append(m)
        raise TimeoutError(method)

    def pump(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            m = self.recv(0.1)
            if m:
                self.notes.append(m)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        return r.get("result", {}).get("value")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--token", help="[http] token, to set the pin through the API")
    ap.add_argument("--pin", type=int, help="a mock GPIO input to flip")
    ap.add_argument("--screenshot", default="dashboard.png")
    ap.add_argument("--devtools-port", type=int, default=9333)
    a = ap.parse_args()
    port = a.devtools_port
    chrome = subprocess.Popen(
        ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
         f"--remote-debugging-port={port}", "--window-size=800,600", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    failed = []
    try:
        for _ in range(100):
            try:
                pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
                break
            except OSError:
                time.sleep(0.1)
        page = next(p for p in pages if p["type"] == "page")
        cdp = Cdp(page["webSocketDebuggerUrl"])
        for domain in ("Runtime", "Log", "Network", "Page"):
            cdp.call(f"{domain}.enable")
        cdp.call("Page.navigate", {"url": a.url + "/"})
        cdp.pump(3)
        state = cdp.eval("document.getElementById('link').textContent")
        rows = cdp.eval("document.querySelectorAll('#readings tbody tr').length")
        print(f"state: {state}; {rows} rows")
        if state != "live":
            failed.append(f"state is {state!r}, not live")
        if not rows:
            failed.append("no readings in the table")
        if a.pin is not None and a.token:
            source = f"gpio:{a.pin}"
            now = cdp.eval(
                f"[...document.querySelectorAll('#readings tbody tr')]"
                f".filter(r => r.cells[0].textContent === '{source}')"
                f".map(r => r.cells[1].textContent)[0] || ''"
            )
            want = "false" if now == "true" else "true"
            t0 = time.time()
            req = urllib.request.Request(
                f"{a.url}/api/gpio/{a.pin}", method="PUT",
                data=json.dumps({"value": want == "true"}).encode(),
                headers={"Authorization": f"Bearer {a.token}"},
            )
            urllib.request.urlopen(req).read()
            seen = None
            while time.time() - t0 < 3 and seen is None:
                shown = cdp.eval(
                    f"[...document.querySelectorAll('#readings tbody tr')]"
                    f".filter(r => r.cells[0].textContent === '{source}')"
                    f".map(r => r.cells[1].textContent)[0] || ''"
                )
                if shown == want:
                    seen = time.time() - t0
                else:
                    time.sleep(0.02)
            print(f"{source} {now or '?'} -> {want}: on the page after "
                  f"{'never' if seen is None else f'{seen * 1000:.0f} ms'}")
            if seen is None or seen > 1:
                failed.append(f"{source} did not show {want} within a second")
        shot = cdp.call("Page.captureScreenshot", {"format": "png"})
        with open(a.screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        cdp.pump(0.3)
        errors, outside = [], []
        for m in cdp.notes:
            p = m.get("params", {})
            if m.get("method") == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("text"))
            elif m.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
                errors.append(p["entry"]["text"])
            elif m.get("method") == "Network.requestWillBeSent":
                u = p["request"]["url"]
                if not u.startswith(a.url + "/") and not u.startswith("data:"):
                    outside.append(u)
        print(f"console errors: {errors or 'none'}; requests elsewhere: {outside or 'none'}")
        print(f"screenshot: {a.screenshot}")
        failed += [f"console: {e}" for e in errors] + [f"request to {u}" for u in outside]
    finally:
        chrome.terminate()
        chrome.wait()
    for f in failed:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
