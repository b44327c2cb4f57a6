#!/usr/bin/env python3
"""Cluster scale: N simulated edge nodes speaking the MQTT contract (docs/mqtt.md) into
one aggregating smollama node on one mosquitto, at the default rates.

Each simulated node, on one connection: `online` retained on its status topic, a sync
hello, then three log entries (two observations, one memory) on `smollama/<node>/sync`,
and the default pipeline's batch every 30 s (ten system readings, as if every metric
had moved past its deadband: the most a default node sends). It answers catch-up
requests on `smollama/<node>/sync/request` as a real node does. The aggregator runs the
default pipeline and settings (its broker connection through a relay this script can
cut; no Ollama, so no observation loop).

Measured, for each N in --nodes:
- converge: seconds from the first entry until the aggregator holds every node's
  entries (`/api/cluster/stats` totals);
- RSS (VmRSS) after that, and CPU seconds per minute over a --steady window;
- the partition: the aggregator's link cut for --cut seconds while every node writes
  two more observations; seconds from the link's return until the aggregator is
  connected again (its reconnect backoff), and from then until it holds them all.
- mosquitto's CPU per minute over the steady window.

Usage: python3 benches/cluster_scale.py [--binary target/release/smollama]
         [--nodes 10,50,200] [--steady 60] [--cut 30]
Needs Debian's mosquitto; the MQTT client is a few lines of MQTT 3.1.1 (stdlib only),
as in benches/remote_ingest.py. Build first: cargo build --release
"""
import os
import sys

# benches/http.py would shadow the standard library's http package.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import heapq  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import selectors  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
import uuid  # noqa: E402

BATCH_EVERY = 30.0  # the default pipeline's mqtt sink
METRICS = ["cpu_temp", "cpu_percent", "cpu_freq", "load_avg", "mem_available_mb",
           "mem_percent", "disk_percent", "uptime", "throttled", "under_voltage"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_str(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def publish_packet(topic, payload, pkid=None, retain=False):
    """QoS 1 when pkid is given, else QoS 0."""
    if pkid is None:
        return bytes([0x30 | retain]) + varint(len(mqtt_str(topic)) + len(payload)) + mqtt_str(topic) + payload
    body = mqtt_str(topic) + struct.pack("!H", pkid) + payload
    return bytes([0x32 | retain]) + varint(len(body)) + body


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".000Z"


class SimNode:
    """One edge node: its log, its connection, its next batch."""

    def __init__(self, port, i):
        self.name = f"edge{i:03d}"
        self.lamport = 0
        self.entries = []
        self.pkid = 0
        self.buf = b""
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        will = f"smollama/{self.name}/status"
        # Clean session, will: offline retained QoS 1 (flags: will, will QoS 1, retain, clean).
        body = (mqtt_str("MQTT") + bytes([4, 0x02 | 0x04 | 0x08 | 0x20]) + struct.pack("!H", 60)
                + mqtt_str(self.name) + mqtt_str(will) + mqtt_str("offline"))
        self.sock.sendall(bytes([0x10]) + varint(len(body)) + body)
        ack = self.sock.recv(4)
        assert ack[:1] == b"\x20" and ack[3] == 0, ack
        sub = struct.pack("!H", 1) + mqtt_str(f"smollama/{self.name}/sync/request") + b"\x00"
        self.sock.sendall(bytes([0x82]) + varint(len(sub)) + sub)
        self.send(f"smollama/{self.name}/status", b"online", qos1=True, retain=True)
        self.send(f"smollama/{self.name}/sync", json.dumps(
            {"node_id": self.name, "prev": 0, "entries": []}).encode())

    def next_pkid(self):
        self.pkid = self.pkid % 65535 + 1
        return self.pkid

    def send(self, topic, payload, qos1=False, retain=False):
        self.sock.sendall(publish_packet(topic, payload, self.next_pkid() if qos1 else None, retain))

    def entry(self, event_type, payload):
        self.lamport += 1
        eid = str(uuid.uuid4())
        payload["ref"] = eid
        e = {"id": eid, "lamport_ts": self.lamport, "node_id": self.name, "event_type": event_type,
             "payload": payload, "created_at": iso(time.time()), "synced_at": None}
        self.entries.append(e)
        return e

    def observe(self, text):
        now_us = int(time.time() * 1e6)
        return self.entry("observation", {"node": self.name, "text": text, "type": "pattern",
                                          "confidence": 0.8, "related_sources": ["system:cpu_temp"],
                                          "ts_us": now_us})

    def remember(self, fact):
        now_us = int(time.time() * 1e6)
        return self.entry("memory", {"node": self.name, "fact": fact, "confidence": 0.8,
                                     "times_confirmed": 1, "active": True,
                                     "first_seen_us": now_us, "last_seen_us": now_us})

    def publish_entries(self, new):
        prev = self.lamport - len(new)
        self.send(f"smollama/{self.name}/sync",
                  json.dumps({"node_id": self.name, "prev": prev, "entries": new}).encode(), qos1=True)

    def batch(self):
        t = time.time()
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "+00:00"
        readings = [{"source": f"system:{m}", "value": round(random.uniform(1, 90), 2), "unit": "u", "ts": ts}
                    for m in METRICS]
        self.send(f"smollama/{self.name}/readings",
                  json.dumps({"node": self.name, "timestamp": t, "readings": readings}).encode(), qos1=True)

    def on_bytes(self, data):
        """Parse whole packets; answer catch-up requests."""
        self.buf += data
        while len(self.buf) >= 2:
            n, mult, i = 0, 1, 1
            while True:
                if i >= len(self.buf):
                    return
                b = self.buf[i]
                n += (b & 0x7F) * mult
                mult *= 128
                i += 1
                if not b & 0x80:
                    break
            if len(self.buf) < i + n:
                return
            head, body = self.buf[0], self.buf[i:i + n]
            self.buf = self.buf[i + n:]
            if head >> 4 != 3:
                continue  # CONNACK, SUBACK, PUBACK
            tlen = struct.unpack("!H", body[:2])[0]
            topic = body[2:2 + tlen].decode()
            rest = body[2 + tlen:]
            qos = (head >> 1) & 3
            if qos:
                pkid = rest[:2]
                rest = rest[2:]
                self.sock.sendall(b"\x40\x02" + pkid)
            if topic.endswith("/sync/request"):
                req = json.loads(rest)
                since, limit = int(req.get("since", 0)), int(req.get("limit", 100))
                mine = [e for e in self.entries if e["lamport_ts"] > since]
                ans = {"node_id": self.name, "since": since, "entries": mine[:limit], "more": len(mine) > limit}
                self.send(f"smollama/{req['node_id']}/sync/response", json.dumps(ans).encode())


class Fleet:
    """Every simulated node on one thread: a selector for what arrives, a heap of batches."""

    def __init__(self, port, n):
        self.nodes = [SimNode(port, i) for i in range(n)]
        self.sel = selectors.DefaultSelector()
        for nd in self.nodes:
            self.sel.register(nd.sock, selectors.EVENT_READ, nd)
        now = time.monotonic()
        # Phases spread over the batch period, as independent nodes would be.
        self.due = [(now + i * BATCH_EVERY / n, i) for i in range(n)]
        heapq.heapify(self.due)
        self.lock = threading.Lock()
        self.jobs = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def later(self, f):
        with self.lock:
            self.jobs.append(f)

    def run(self):
        while not self.stop.is_set():
            with self.lock:
                jobs, self.jobs = self.jobs, []
            for f in jobs:
                f()
            now = time.monotonic()
            while self.due and self.due[0][0] <= now:
                t, i = heapq.heappop(self.due)
                self.nodes[i].batch()
                heapq.heappush(self.due, (t + BATCH_EVERY, i))
            wait = max(0.0, min(0.05, self.due[0][0] - now)) if self.due else 0.05
            for key, _ in self.sel.select(wait):
                try:
                    data = key.data.sock.recv(65536)
                except OSError:
                    data = b""
                if data:
                    key.data.on_bytes(data)

    def write(self, k_obs, memory):
        """Each node: k_obs new observations (and a memory), published as one batch."""
        def go():
            for nd in self.nodes:
                new = [nd.observe(f"{nd.name} saw pattern {nd.lamport + j} in its sensors") for j in range(k_obs)]
                if memory:
                    new.append(nd.remember(f"{nd.name} keeps its fan on pin {len(nd.entries)}"))
                nd.publish_entries(new)
        self.later(go)


class Relay:
    """A TCP relay between the aggregator and the broker that can be cut (a partition)."""

    def __init__(self, broker_port):
        self.broker_port = broker_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.open = True
        self.pairs = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.lsock.accept()
            if not self.open:
                c.close()
                continue
            b = socket.create_connection(("127.0.0.1", self.broker_port))
            self.pairs.append((c, b))
            for x, y in ((c, b), (b, c)):
                threading.Thread(target=self.pump, args=(x, y), daemon=True).start()

    @staticmethod
    def pump(src, dst):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                dst.sendall(d)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.open = False
        for c, b in self.pairs:
            for s in (c, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.pairs = []

    def restore(self):
        self.open = True


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return json.load(r)


def cpu_seconds(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_totals(hport, observations, memories, timeout):
    """Seconds until the aggregator holds this many observations and memories."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            t = get(hport, "/api/cluster/stats")["totals"]
            if t["observations_count"] >= observations and t["memories_count"] >= memories:
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.2)
    return None


def run(binary, n, steady, cut):
    tmp = tempfile.mkdtemp(prefix="smollama-cluster-")
    mport, hport, oport = free_port(), free_port(), free_port()
    conf = os.path.join(tmp, "m.conf")
    with open(conf, "w") as f:
        # A queue per persistent session deep enough for a cut aggregator.
        f.write(f"listener {mport} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n")
    broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", conf],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    relay = Relay(mport)
    with open(os.path.join(tmp, "c.toml"), "w") as f:
        f.write(f'[node]\nname = "llm"\ndata_dir = "{tmp}/data"\n[http]\nbind = "127.0.0.1:{hport}"\n'
                f'[mqtt]\nbroker = "127.0.0.1"\nport = {relay.port}\n'
                f'[ollama]\nport = {oport}\n')
    agent = subprocess.Popen([binary, "--config", os.path.join(tmp, "c.toml")], stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                if get(hport, "/api/status")["connections"]["mqtt"]["state"] == "connected":
                    break
            except OSError:
                pass
            time.sleep(0.1)
        idle_rss = rss_kb(agent.pid)
        fleet = Fleet(mport, n)
        fleet.write(2, True)
        first = wait_totals(hport, 2 * n, n, 300)
        # Steady state: batches every 30 s from every node, nothing new to sync.
        a0, b0, t0 = cpu_seconds(agent.pid), cpu_seconds(broker.pid), time.monotonic()
        time.sleep(steady)
        dt = time.monotonic() - t0
        cpu_min = (cpu_seconds(agent.pid) - a0) / dt * 60
        broker_min = (cpu_seconds(broker.pid) - b0) / dt * 60
        rss = rss_kb(agent.pid)
        stats = get(hport, "/api/cluster/stats")
        readings = stats["totals"]["readings_count"]
        # The partition: the aggregator's link cut while every node writes.
        relay.cut()
        time.sleep(1)
        fleet.write(2, False)
        time.sleep(cut)
        relay.restore()
        t_restore = time.monotonic()
        # The aggregator's reconnect backoff (1 s doubling to 60 s by default) decides
        # when it is back; then the catch-up and the broker's queue do the rest.
        while time.monotonic() - t_restore < 120:
            try:
                if get(hport, "/api/status")["connections"]["mqtt"]["state"] == "connected":
                    break
            except OSError:
                pass
            time.sleep(0.05)
        reconnect = time.monotonic() - t_restore
        back = wait_totals(hport, 4 * n, n, 300)
        sync = get(hport, "/api/status").get("sync", {})
        out = {
            "nodes": n,
            "first_converge_s": round(first, 1) if first is not None else None,
            "idle_rss_kib": idle_rss,
            "rss_kib": rss,
            "rss_after_kib": rss_kb(agent.pid),
            "cpu_s_per_min": round(cpu_min, 2),
            "mosquitto_cpu_s_per_min": round(broker_min, 2),
            "reconnect_after_cut_s": round(reconnect, 1),
            "converge_after_reconnect_s": round(back, 2) if back is not None else None,
            "cluster_nodes": stats["node_count"],
            "sources": stats["totals"]["source_count"],
            "readings_received": readings,
            "sync": {k: sync.get(k) for k in ("merged", "duplicates", "catchup_sent", "catchup_answered", "log_entries")},
        }
        fleet.stop.set()
        return out
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        broker.terminate()
        broker.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/smollama")
    ap.add_argument("--nodes", default="10,50,200")
    ap.add_argument("--steady", type=float, default=60.0, help="seconds of steady state measured")
    ap.add_argument("--cut", type=float, default=30.0, help="seconds the aggregator is cut off")
    args = ap.parse_args()
    for n in [int(x) for x in args.nodes.split(",")]:
        print(json.dumps(run(args.binary, n, args.steady, args.cut)), flush=True)


if __name__ == "__main__":
    main()
