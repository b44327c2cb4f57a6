#!/usr/bin/env python3
"""The Python original's own sync client against a running smollama node (issue 15).

Usage: sync-python-check.py <dir holding the original's smollama/sync/*.py> <base URL> <token>

The original's `CRDTLog` and `SyncClient` (JamesMcDougallJr/smollama,
`smollama/sync/`; they need only `httpx` from PyPI) append a memory and a reading to a
SQLite log, `full_sync()` with the node (push, then pull), and check what came back:
every pushed id accepted, the node's own entries pulled and merged (from 0: the
original's `full_sync` pulls since its own highest Lamport time and so misses entries
stamped below it), a second sync pushing nothing. The original's client sends no Authorization header; smollama
requires the token, so the client's `httpx.AsyncClient` is given it here (the one change).
Exits 1 on any mismatch. The node must hold an entry of its own first, e.g. one memory
given by `smollama memory import` before `smollama run` (a line such as
`{"kind":"memory","fact":"The rust node keeps the greenhouse log","confidence":0.8}`).
"""
import asyncio
import importlib.util
import sys
import tempfile
import types
from pathlib import Path

import httpx


def load(src: Path):
    pkg = types.ModuleType("origsync")
    pkg.__path__ = [str(src)]
    sys.modules["origsync"] = pkg
    mods = {}
    for name in ("crdt_log", "sync_client"):
        spec = importlib.util.spec_from_file_location(f"origsync.{name}", src / f"{name}.py")
        m = importlib.util.module_from_spec(spec)
        sys.modules[f"origsync.{name}"] = m
        spec.loader.exec_module(m)
        mods[name] = m
    return mods["crdt_log"], mods["sync_client"]


def main() -> int:
    src, url, token = Path(sys.argv[1]), sys.argv[2].rstrip("/"), sys.argv[3]
    real = httpx.AsyncClient

    class WithToken(real):
        def __init__(self, *a, **kw):
            kw.setdefault("headers", {})["Authorization"] = f"Bearer {token}"
            super().__init__(*a, **kw)

    httpx.AsyncClient = WithToken
    crdt_log, sync_client = load(src)
    with tempfile.TemporaryDirectory() as d:
        log = crdt_log.CRDTLog(Path(d) / "crdt.db", "python-node")
        log.connect()
        ref = "python-memory-1"
        mem = log.append("memory", {
            "ref": ref, "node": "python-node", "fact": "The Python node watches the pond",
            "confidence": 0.6, "times_confirmed": 1, "active": True,
            "first_seen_us": 1795771723000000, "last_seen_us": 1795771723000000,
        })
        reading = log.append("reading", {"source": "pond:temp", "value": 14.5})
        client = sync_client.SyncClient(log, url, batch_size=100, max_retries=3)
        r = asyncio.run(client.full_sync())
        print("full_sync:", r)
        problems = []
        if r.status.value != "success":
            problems.append(f"status {r.status.value}: {r.error}")
        if r.entries_pushed != 2:
            problems.append(f"pushed {r.entries_pushed}, expected 2")
        # The original pulls `since` its own highest Lamport time, so the node's entries
        # stamped below it never come (its bug, not the server's): pull from 0 as well.
        full = asyncio.run(client.pull_entries(since_ts=0))
        print("pull since 0:", full)
        if full.entries_pulled < 1:
            problems.append("pulled nothing of the node's own entries")
        stats = log.get_stats()
        print("python log:", stats)
        if stats["unsynced_entries"] != 0:
            problems.append("entries left unsynced")
        again = asyncio.run(client.full_sync())
        print("again:", again)
        if again.entries_pushed != 0:
            problems.append("the second sync pushed again")
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as h:
            back = h.get(f"{url}/api/sync/pull", params={"since": 0, "limit": 1000}).json()
            ids = {e["id"] for e in back["entries"]}
            for e in (mem, reading):
                if e.id not in ids:
                    problems.append(f"{e.event_type} {e.id} not in the node's log")
            facts = [m["text"] for m in h.get(f"{url}/api/memories", params={"limit": 100}).json()["memories"]]
            print("node's memories:", facts)
            if "The Python node watches the pond" not in facts:
                problems.append("the pushed memory is not among the node's memories")
        log.close()
    for p in problems:
        print("FAIL:", p)
    if not problems:
        print("OK: the original's client pushed to and pulled from smollama")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
