#!/usr/bin/env python3
"""Remote ingest: N simulated nodes publish batches of readings over MQTT (QoS 1) to a
mosquitto the agent reads from, into the store through a retention stage (the default
pipeline's path for other nodes' readings).

Reports, over the measuring window: readings sent/s, stored/s, drops (per source and per
edge, from /api/status), times the MQTT worker was held back by the graph, the agent's
CPU seconds and CPU microseconds per stored reading, bytes the agent wrote to storage
per second (/proc/PID/io write_bytes: what reaches the card), and RSS, split by mapping
(anonymous, the store's data.mdb map, the binary, the rest) after the flood and after
--settle.

Usage: python3 benches/remote_ingest.py [--binary target/release/smollama]
         [--nodes 200] [--rate 50000] [--seconds 30] [--sizes 1,10,100,1000,5000]
Node i publishes batches of sizes[i % len(sizes)] readings (names r0.., one source per
reading and node) at rate/nodes readings a second. Needs Debian's mosquitto; the MQTT
client is a few lines of MQTT 3.1.1 here (stdlib only). Build first: cargo build --release
"""
import os
import sys

# benches/http.py would shadow the standard library's http package.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

PIPELINE = """
[[source]]
name = "nodes"
kind = "mqtt"
topics = ["smollama/+/readings"]

[[stage]]
name = "keep"
kind = "retention"
from = ["nodes"]
raw_for = "7d"
rollups = [{ every = "1m", keep = "30d" }, { every = "1h", keep = "1y" }]

[[sink]]
name = "store"
kind = "store"
from = ["keep"]
"""


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


def connect(port, client_id):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = mqtt_str("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 60) + mqtt_str(client_id)
    s.sendall(bytes([0x10]) + varint(len(body)) + body)
    ack = s.recv(4)
    assert ack[:1] == b"\x20" and ack[3] == 0, ack
    s.setblocking(False)
    return s


def publish_packet(topic, payload, pkid):
    body = mqtt_str(topic) + struct.pack("!H", pkid) + payload
    return bytes([0x32]) + varint(len(body)) + body


def node(port, i, size, rate, go, stop, sent):
    """One simulated node: one batch (so every name is known before measuring), then on
    `go` a batch of `size` readings every size/rate seconds."""
    name = f"bench{i}"
    topic = f"smollama/{name}/readings"
    items = ",".join(f'{{"source":"r{k}","value":{k}.5,"unit":"u"}}' for k in range(size))
    payload = f'{{"node":"{name}","readings":[{items}]}}'.encode()
    s = connect(port, name)
    s.setblocking(True)
    s.sendall(publish_packet(topic, payload, 1))
    s.setblocking(False)
    sent[i] += size
    go.wait()
    period = size / rate
    nxt = time.monotonic() + (i % 100) / 100.0 * period  # spread the nodes' phases
    pkid = 1
    while not stop.is_set():
        now = time.monotonic()
        if now < nxt:
            time.sleep(min(nxt - now, 0.05))
            continue
        pkid = pkid % 65535 + 1
        s.setblocking(True)
        s.sendall(publish_packet(topic, payload, pkid))
        s.setblocking(False)
        try:
            while s.recv(65536):  # PUBACKs: read so they never fill our socket
                pass
        except BlockingIOError:
            pass
        sent[i] += size
        nxt += period
    s.close()


def status(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10) as r:
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


def rss(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon"):
                out[k] = int(v.split()[0])
    return (out["VmRSS"], out["RssAnon"])


def rss_by_mapping(pid, binary):
    """Where the resident memory is: {"anon": kB, "data.mdb": kB, "binary": kB, "other": kB}
    from /proc/PID/smaps (the store's map is file-backed: the kernel reclaims it first)."""
    out = {"anon": 0, "data.mdb": 0, "binary": 0, "other": 0}
    name = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):
                parts = line.split()
                name = parts[5] if len(parts) > 5 else ""
            elif first == "Rss:":
                kb = int(line.split()[1])
                if name.endswith("data.mdb"):
                    out["data.mdb"] += kb
                elif name and os.path.basename(name) == os.path.basename(binary):
                    out["binary"] += kb
                elif name == "" or name.startswith("["):
                    out["anon"] += kb
                else:
                    out["other"] += kb
    return out


def write_bytes(pid):
    """Bytes this process caused to be sent to storage (/proc/PID/io)."""
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k == "write_bytes":
                return int(v)
    return 0


def drops(s):
    return (sum(x.get("drops", 0) for x in s.get("sources", []))
            + sum(e.get("drops", 0) for e in s.get("edges", [])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/smollama")
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--rate", type=float, default=50000.0, help="readings per second, all nodes")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--sizes", default="1,10,100,1000,5000")
    ap.add_argument("--warmup", type=float, default=3.0,
                    help="seconds between every name known and the pre-burst RSS figure; past 60 "
                         "the retention stage's first minute rollup of every source is in it")
    ap.add_argument("--settle", type=float, default=60.0,
                    help="seconds to wait after the flood before reading RSS again")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    tmp = tempfile.mkdtemp(prefix="smollama-ingest-")
    mport, hport = free_port(), free_port()
    conf = os.path.join(tmp, "m.conf")
    with open(conf, "w") as f:
        f.write(f"listener {mport} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n")
    with open(os.path.join(tmp, "p.toml"), "w") as f:
        f.write(PIPELINE)
    names = sum(sizes[i % len(sizes)] for i in range(args.nodes))
    with open(os.path.join(tmp, "c.toml"), "w") as f:
        f.write(f'[node]\nname = "sink"\ndata_dir = "{tmp}/data"\n[http]\nbind = "127.0.0.1:{hport}"\n'
                f'[mqtt]\nbroker = "127.0.0.1"\nport = {mport}\nmax_payload_kb = 512\n'
                f'max_remote_sources = {names + 1000}\nmax_sources_per_node = {max(sizes) + 100}\n'
                f'[pipeline]\nfiles = ["{tmp}/p.toml"]\n')
    broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", conf],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    agent = subprocess.Popen([args.binary, "--config", os.path.join(tmp, "c.toml")],
                             stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            if status(hport)["connections"]["mqtt"]["state"] == "connected":
                break
        except OSError:
            pass
        time.sleep(0.1)
    pid = agent.pid
    stop, go = threading.Event(), threading.Event()
    sent = [0] * args.nodes
    per_node = args.rate / args.nodes
    threads = [threading.Thread(target=node, args=(mport, i, sizes[i % len(sizes)], per_node, go, stop, sent),
                                daemon=True) for i in range(args.nodes)]
    for t in threads:
        t.start()
    # Every node's first batch stored: every name known, the store's pages touched.
    while status(hport)["store"]["readings_written"] < names:
        time.sleep(0.2)
    time.sleep(args.warmup)
    rss_before = rss(pid)
    go.set()
    time.sleep(3)  # warm-up: every node sending
    s0, c0, t0, n0 = status(hport), cpu_seconds(pid), time.monotonic(), sum(sent)
    w0 = write_bytes(pid)
    time.sleep(args.seconds)
    s1, c1, t1, n1 = status(hport), cpu_seconds(pid), time.monotonic(), sum(sent)
    w1 = write_bytes(pid)
    stop.set()
    for t in threads:
        t.join()
    total_sent = sum(sent)
    # Everything sent is stored eventually (the broker and the socket held the rest).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        s2 = status(hport)
        if s2["connections"]["mqtt"]["readings_in"] >= total_sent and \
                s2["store"]["readings_written"] >= s2["connections"]["mqtt"]["readings_in"]:
            break
        time.sleep(0.5)
    rss_end = rss(pid)
    by_map = rss_by_mapping(pid, args.binary)
    time.sleep(args.settle)
    rss_settled = rss(pid)
    by_map_settled = rss_by_mapping(pid, args.binary)
    dt = t1 - t0
    stored = s1["store"]["readings_written"] - s0["store"]["readings_written"]
    cpu = c1 - c0
    m = s2["connections"]["mqtt"]
    print(f"nodes {args.nodes}, batch sizes {sizes}, target {args.rate:.0f} readings/s, window {dt:.1f} s")
    print(f"sent_per_s: {(n1 - n0) / dt:.0f}")
    print(f"stored_per_s: {stored / dt:.0f}")
    print(f"cpu_s_per_s: {cpu / dt:.3f}")
    print(f"cpu_us_per_reading: {cpu / max(stored, 1) * 1e6:.2f}")
    print(f"write_bytes_per_s: {(w1 - w0) / dt:.0f}")
    print(f"rss_kb: {s1['process']['rss_kb']}")
    print(f"sent_total: {total_sent}, received: {m['readings_in']}, stored_total: {s2['store']['readings_written']}")
    print(f"rss_kb (VmRSS, RssAnon): before {rss_before}, after the flood {rss_end}, {args.settle:.0f} s later {rss_settled}")
    print("rss_kb by mapping after the flood: " + ", ".join(f"{k} {v}" for k, v in by_map.items()))
    print(f"rss_kb by mapping {args.settle:.0f} s later: "
          + ", ".join(f"{k} {v}" for k, v in by_map_settled.items()))
    st = s2["store"]
    if "folds" in st:
        print(f"store: folds {st['folds']}, folded {st['folded']}, head_readings {st.get('head_readings')}, "
              f"last_fold_us {st['last_fold_us']}")
    print(f"drops: {drops(s2)}, held_back: {m['held_back']}, reconnects: {m['reconnects']}, refused names: {m['remote_sources']['names_refused']}")
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=30)
    broker.send_signal(signal.SIGTERM)
    broker.wait()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
