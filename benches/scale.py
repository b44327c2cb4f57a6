#!/usr/bin/env python3
"""Scale report: how the aggregating node's RSS, CPU, drops and history query latency grow
with the number of remote sources and of sending nodes, side by side with collectd's MQTT
plugin receiving the same values.

Two sweeps, each point a fresh broker and a fresh aggregator, a short warm-up and a steady
window (--seconds):
- sources: one sender with N sources (--sources 10,100,1000,10000), every source one
  reading a second; for smollama in batches of at most 1,000 readings per message
  (`smollama/bench0/readings`, the contract's batch payload), spread over the second.
- nodes: M senders (--nodes 1,10,100,200), each one MQTT connection with ten sources and
  a batch of ten readings every 30 s (the default pipeline's mqtt sink batch: the most a
  default node sends), the nodes' phases spread over the 30 s.

smollama runs `mqtt -> retention -> store` (benches/remote_ingest.py's pipeline). collectd
(Debian's collectd-core) runs only its mqtt plugin (`<Subscribe>`, QoS 1) and the csv
writer into a temp dir. collectd's mqtt plugin takes one value per message in its own
format, so each reading is sent to it as one message `collectd/<node>/bench/gauge-r<k>`
with payload `<time>:<value>` (the same values per second as smollama gets, in the same
sends: the messages of one smollama batch go out in one write). Senders publish QoS 1.

Per point and agent: values sent/s and stored/s over the window (smollama's
`readings_written`, collectd's lines in its CSV files), RSS and its anonymous part at the
window's end, CPU seconds per minute over the window (schedstat, all threads), values lost
(sent minus stored once the backlog has drained, or after 30 s of draining: mosquitto
keeps at most 100,000 queued messages per subscriber and drops the rest), smollama's drop counters from /api/status, the median of five
`GET /api/readings/bench0:r0/history` (collectd has no query API), and the 1-minute load
average (the machine is shared). The two agents' runs of a point follow each other, so
they share the machine's conditions.

Usage: python3 benches/scale.py [--binary target/release/smollama] [--seconds 20]
         [--sources 10,100,1000,10000] [--nodes 1,10,100,200]
Needs Debian's mosquitto and collectd-core. Build first: cargo build --release
Output: a Markdown table on stdout.
"""
import os
import sys

# benches/http.py would shadow the standard library's http package.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

sys.dont_write_bytecode = True  # importing remote_ingest leaves no benches/__pycache__
sys.path.insert(0, HERE)
from remote_ingest import (PIPELINE, connect, cpu_seconds, drops, free_port, mqtt_str,  # noqa: E402
                           rss, status, varint)

sys.path.pop(0)

BATCH_MAX = 1000  # readings per smollama message in the sources sweep
NODE_SOURCES = 10  # sources per node in the nodes sweep
NODE_EVERY = 30.0  # seconds between a node's batches in the nodes sweep

COLLECTD_CONF = """
Hostname "aggregator"
FQDNLookup false
Interval 10
BaseDir "{dir}"
PIDFile "{dir}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin mqtt
LoadPlugin csv
<Plugin csv>
  DataDir "{dir}/csv"
  StoreRates false
</Plugin>
<Plugin mqtt>
  <Subscribe "bench">
    Host "127.0.0.1"
    Port {port}
    ClientId "collectd-aggregator"
    QoS 1
    Topic "collectd/#"
  </Subscribe>
</Plugin>
"""


def publish(topic, payload, pkid):
    body = mqtt_str(topic) + pkid.to_bytes(2, "big") + payload
    return bytes([0x32]) + varint(len(body)) + body


class Sender:
    """Publishes a point's load on its own thread: `nodes` connections, each with
    `sources` sources; every `every` s a round of one reading per source, cut into sends of
    at most `chunk` readings spread over `spread` s. `fmt` is "smollama" (one batch message
    per send) or "collectd" (one message per reading, a send's messages in one write)."""

    def __init__(self, port, fmt, nodes, sources, every, chunk, spread):
        self.fmt, self.sources, self.every, self.chunk = fmt, sources, every, chunk
        self.socks = [connect(port, f"{fmt}-bench{i}") for i in range(nodes)]
        for s in self.socks:
            s.setblocking(True)
        self.pkid = [0] * nodes
        self.sent = 0
        self.rounds_done = 0
        self.stop = threading.Event()
        # (offset in the round, node, first source, last source + 1)
        self.plan = []
        for i in range(nodes):
            node_phase = (i / nodes) * every if nodes > 1 else 0.0
            parts = list(range(0, sources, chunk))
            for j, lo in enumerate(parts):
                self.plan.append((node_phase + j / len(parts) * spread, i, lo, min(lo + chunk, sources)))
        self.plan.sort()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def packets(self, i, lo, hi, tick):
        name = f"bench{i}"
        self.pkid[i] = self.pkid[i] % 65535 + 1
        if self.fmt == "smollama":
            items = ",".join(f'{{"source":"r{k}","value":{k + tick % 7}.5,"unit":"u"}}' for k in range(lo, hi))
            payload = f'{{"node":"{name}","readings":[{items}]}}'.encode()
            return publish(f"smollama/{name}/readings", payload, self.pkid[i])
        now = f"{time.time():.3f}"
        out = []
        for k in range(lo, hi):
            self.pkid[i] = self.pkid[i] % 65535 + 1
            out.append(publish(f"collectd/{name}/bench/gauge-r{k}", f"{now}:{k + tick % 7}.5".encode(), self.pkid[i]))
        return b"".join(out)

    def one_round(self, start, tick):
        for off, i, lo, hi in self.plan:
            if self.stop.is_set():
                return
            wait = start + off - time.monotonic()
            if wait > 0:
                self.stop.wait(wait)
                if self.stop.is_set():
                    return
            self.socks[i].sendall(self.packets(i, lo, hi, tick))
            self.sent += hi - lo
            try:
                while self.socks[i].recv(65536, socket.MSG_DONTWAIT):  # PUBACKs
                    pass
            except BlockingIOError:
                pass

    def run(self):
        # A first round at once, so every name is known before measuring; then the rounds
        # on their schedule, the nodes' phases spread.
        for _, i, lo, hi in self.plan:
            self.socks[i].sendall(self.packets(i, lo, hi, 0))
            self.sent += hi - lo
        self.rounds_done = 1
        # Not sooner than a second later: collectd refuses a value whose time is not after
        # the previous one of the same source.
        start, tick = time.monotonic() + 1.0, 1
        self.stop.wait(1.0)
        while not self.stop.is_set():
            self.one_round(start, tick)
            self.rounds_done += 1
            tick += 1
            start += self.every
            if start > time.monotonic():
                self.stop.wait(start - time.monotonic())

    def close(self):
        self.stop.set()
        self.thread.join()
        for s in self.socks:
            s.close()


def start_broker(tmp):
    port = free_port()
    conf = os.path.join(tmp, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n")
    p = subprocess.Popen(["/usr/sbin/mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return p, port


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


class Smollama:
    def __init__(self, binary, tmp, mport, names, per_node):
        self.hport = free_port()
        with open(os.path.join(tmp, "p.toml"), "w") as f:
            f.write(PIPELINE)
        with open(os.path.join(tmp, "c.toml"), "w") as f:
            f.write(f'[node]\nname = "sink"\ndata_dir = "{tmp}/data"\n[http]\nbind = "127.0.0.1:{self.hport}"\n'
                    f'[mqtt]\nbroker = "127.0.0.1"\nport = {mport}\nmax_payload_kb = 512\n'
                    f'max_remote_sources = {names + 1000}\nmax_sources_per_node = {per_node + 100}\n'
                    f'[pipeline]\nfiles = ["{tmp}/p.toml"]\n')
        self.p = subprocess.Popen([binary, "--config", os.path.join(tmp, "c.toml")], stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                if status(self.hport)["connections"]["mqtt"]["state"] == "connected":
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit("smollama did not connect to the broker")

    def stored(self):
        return status(self.hport)["store"]["readings_written"]

    def drops(self):
        return drops(status(self.hport))

    def history_ms(self):
        url = f"http://127.0.0.1:{self.hport}/api/readings/bench0%3Ar0/history"
        times = []
        for _ in range(5):
            t = time.perf_counter()
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
            times.append((time.perf_counter() - t) * 1000)
        return statistics.median(times), len(body["readings"])


class Collectd:
    def __init__(self, tmp, mport):
        self.dir = os.path.join(tmp, "collectd")
        os.makedirs(self.dir)
        conf = os.path.join(self.dir, "collectd.conf")
        with open(conf, "w") as f:
            f.write(COLLECTD_CONF.format(dir=self.dir, port=mport))
        exe = shutil.which("collectd") or "/usr/sbin/collectd"
        self.p = subprocess.Popen([exe, "-f", "-C", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Subscribed once a probe value reaches its CSV files (not counted in stored()).
        probe = connect(mport, "probe")
        probe.setblocking(True)
        deadline, k = time.monotonic() + 20, 0
        while not os.path.isdir(os.path.join(self.dir, "csv", "probe")):
            if time.monotonic() > deadline:
                raise SystemExit("collectd stored no value from the broker")
            k += 1
            probe.sendall(publish("collectd/probe/bench/gauge", f"{time.time():.3f}:1".encode(), k))
            time.sleep(0.2)
        probe.close()

    def stored(self):
        """Values in the CSV files: every line but each file's header."""
        n = 0
        for root, _, files in os.walk(os.path.join(self.dir, "csv")):
            if os.path.basename(os.path.dirname(root)) == "probe":
                continue
            for name in files:
                try:
                    with open(os.path.join(root, name), "rb") as f:
                        n += f.read().count(b"\n") - 1
                except OSError:
                    pass
        return n

    def drops(self):
        return None

    def history_ms(self):
        return None


def run_point(args, agent_kind, nodes, sources, every, chunk, spread):
    tmp = tempfile.mkdtemp(prefix="smollama-scale-")
    broker, mport = start_broker(tmp)
    names = nodes * sources
    if agent_kind == "smollama":
        agent = Smollama(args.binary, tmp, mport, names, sources)
    else:
        agent = Collectd(tmp, mport)
    sender = Sender(mport, agent_kind, nodes, sources, every, chunk, spread)
    sender.thread.start()
    # Warm-up: every source has sent once and been stored (names known, files created).
    deadline = time.monotonic() + 30
    while (sender.rounds_done < 1 or agent.stored() < names * 0.99) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3)
    pid = agent.p.pid
    load = os.getloadavg()[0]
    n0, c0, t0 = sender.sent, cpu_seconds(pid), time.monotonic()
    w0 = agent.stored()
    time.sleep(args.seconds)
    c1, t1, n1 = cpu_seconds(pid), time.monotonic(), sender.sent
    w1 = agent.stored()
    vm, anon = rss(pid)
    hist = agent.history_ms()
    sender.close()
    # Drain: wait until the stored count reaches what was sent or stops moving.
    last, still, rising = -1, 0, False
    deadline = time.monotonic() + 30
    while True:
        got = agent.stored()
        if got >= sender.sent:
            break
        still = still + 1 if got == last else 0
        if still >= 3:
            break
        if time.monotonic() > deadline:
            rising = True  # gave up with the backlog still draining
            break
        last = got
        time.sleep(1)
    stored = agent.stored()
    d = agent.drops()
    alive = agent.p.poll() is None
    stop(agent.p)
    stop(broker)
    shutil.rmtree(tmp, ignore_errors=True)
    dt = t1 - t0
    return {
        "agent": agent_kind, "sent_s": (n1 - n0) / dt, "stored_s": (w1 - w0) / dt, "rising": rising, "rss": vm, "anon": anon,
        "cpu_min": (c1 - c0) / dt * 60, "sent": sender.sent, "lost": max(sender.sent - stored, 0),
        "drops": d, "hist": hist, "load": load, "window": dt, "alive": alive,
    }


def row(label, r):
    lost = f"{r['lost']:,} ({r['lost'] / max(r['sent'], 1) * 100:.1f} %)" if r["lost"] else "0"
    if r["rising"]:
        lost += ", still draining after 30 s"
    drops_ = "—" if r["drops"] is None else f"{r['drops']:,}"
    hist = "—" if r["hist"] is None else f"{r['hist'][0]:.1f} ms ({r['hist'][1]} rows)"
    note = "" if r["alive"] else " (exited)"
    return (f"| {label} | {r['agent']}{note} | {r['sent_s']:,.0f} | {r['stored_s']:,.0f} | {r['rss']:,} kB ({r['anon']:,}) | "
            f"{r['cpu_min']:.3f} s | {lost} of {r['sent']:,} | {drops_} | {hist} | {r['load']:.2f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/smollama")
    ap.add_argument("--seconds", type=float, default=20.0, help="steady window per point")
    ap.add_argument("--sources", default="10,100,1000,10000")
    ap.add_argument("--nodes", default="1,10,100,200")
    args = ap.parse_args()
    points = []
    for n in (int(x) for x in args.sources.split(",") if x):
        points.append((f"{n:,} sources, 1 node", 1, n, 1.0, BATCH_MAX, 1.0))
    for m in (int(x) for x in args.nodes.split(",") if x):
        points.append((f"{m} nodes, {m * NODE_SOURCES:,} sources", m, NODE_SOURCES, NODE_EVERY, NODE_SOURCES, 0.0))
    print(f"window {args.seconds:.0f} s per point; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print()
    print("| point | agent | values sent/s | stored/s | RSS (anon) | CPU per minute | lost (sent − stored) | drops (/api/status) "
          "| history query, median of 5 | load (1 min) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, nodes, sources, every, chunk, spread in points:
        for kind in ("smollama", "collectd"):
            r = run_point(args, kind, nodes, sources, every, chunk, spread)
            print(row(label, r), flush=True)


if __name__ == "__main__":
    main()
