#!/usr/bin/env python3
"""The cluster pages in a real browser, for tests/cluster.rs: headless chromium driven
with tests/dashboard.py's launcher (the stdlib DevTools client of
scripts/dashboard-check.py). The aggregating node is at --url; --node is another node
whose readings and observation (--observation) it holds.

Checks: the Readings page lists the other node's sources beside this node's, with the
node in the filter bar; filtered to that node it shows only its sources and the node's
line; the Observations page, filtered to it, shows its observation, and filtered to
this node, none. Prints one line per check; exits 1 naming what failed.
"""

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("dashboard_test", os.path.join(HERE, "dashboard.py"))
dash = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dash)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--local", required=True)
    ap.add_argument("--observation", required=True)
    a = ap.parse_args()
    failed = []

    def ok(cond, what):
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            failed.append(what)

    profile = tempfile.mkdtemp(prefix="smollama-chromium-")
    chrome, cdp = dash.start_chromium(profile)

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

    def go(hash_):
        cdp.call("Page.navigate", {"url": f"{a.url}/{hash_}"})
        until("document.readyState === 'complete' && !!document.querySelector('#page').children.length", 10)

    nodes_of_cards = "[...document.querySelectorAll('.card.reading')].map(c => c.dataset.node)"
    try:
        cdp.call("Runtime.enable")
        go("#/readings")
        seen = until(f"(n => n.includes({json.dumps(a.node)}) && n.includes({json.dumps(a.local)}) && n)({nodes_of_cards})", 10)
        ok(bool(seen), f"Readings shows {a.node}'s sources beside {a.local}'s ({seen})")
        bar = js("document.getElementById('nodes').textContent")
        ok(bool(bar) and a.node in bar and "All" in bar, f"the filter bar names {a.node}: {bar!r}")

        go(f"#/readings?node={a.node}")
        only = until(f"(n => n.length && n.every(x => x === {json.dumps(a.node)}) && n)({nodes_of_cards})", 10)
        ok(bool(only), f"filtered to {a.node}, only its sources ({only})")
        about = until("document.getElementById('about')?.textContent", 5)
        ok(bool(about) and a.node in about and "last seen" in about, f"and its line: {about!r}")

        go(f"#/observations?node={a.node}")
        texts = until("(t => t.length && t)([...document.querySelectorAll('.item p')].map(p => p.textContent))", 10)
        ok(texts == [a.observation], f"Observations of {a.node}: {texts}")
        meta = js("document.querySelector('.item small')?.textContent || ''")
        ok(a.node in meta, f"each marked with its node: {meta!r}")
        links = until("document.getElementById('nodes')?.textContent", 5)
        ok(bool(links) and a.node in links, f"the node filter lists {a.node}: {links!r}")

        go(f"#/observations?node={a.local}")
        empty = until("document.querySelector('#page .list')?.textContent", 10)
        ok(empty == "No observations.", f"filtered to {a.local}: {empty!r}")
    finally:
        chrome.kill()
        chrome.wait()
        shutil.rmtree(profile, ignore_errors=True)
    if failed:
        print(f"{len(failed)} failed: " + "; ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
