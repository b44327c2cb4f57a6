#!/usr/bin/env python3
"""Where the CPU of one MQTT message goes: CPU microseconds per message on each of the
agent's threads (from /proc/PID/task/*/schedstat, so kernel time such as fsync counts),
for N batch messages of SIZE readings from one sender (QoS 1) at RATE messages a second
(0: all at once), through `mqtt -> retention -> store` (benches/remote_ingest.py's
pipeline), and how many store commits they took.

Usage: python3 benches/ingest_threads.py [--binary target/release/smollama]
         [--messages 300] [--rate 50] [--size 10]
Needs Debian's mosquitto. Build first: cargo build --release
"""
import os
import sys

# benches/http.py would shadow the standard library's http package.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.append(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import remote_ingest as ri  # noqa: E402


def per_thread_ns(pid):
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                out[name] = out.get(name, 0) + int(f.read().split()[0])
        except OSError:
            pass
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/smollama")
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--rate", type=float, default=50.0, help="messages a second; 0: at once")
    ap.add_argument("--size", type=int, default=10, help="readings per message")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="smollama-threads-")
    mport, hport = ri.free_port(), ri.free_port()
    with open(f"{tmp}/m.conf", "w") as f:
        f.write(f"listener {mport} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n")
    with open(f"{tmp}/p.toml", "w") as f:
        f.write(ri.PIPELINE)
    with open(f"{tmp}/c.toml", "w") as f:
        f.write(f'[node]\nname = "sink"\ndata_dir = "{tmp}/data"\n[http]\nbind = "127.0.0.1:{hport}"\n'
                f'[mqtt]\nbroker = "127.0.0.1"\nport = {mport}\n[pipeline]\nfiles = ["{tmp}/p.toml"]\n')
    broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", f"{tmp}/m.conf"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    agent = subprocess.Popen([args.binary, "--config", f"{tmp}/c.toml"], stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            if ri.status(hport)["connections"]["mqtt"]["state"] == "connected":
                break
        except OSError:
            pass
        time.sleep(0.1)
    items = ",".join(f'{{"source":"r{k}","value":{k}.5,"unit":"u"}}' for k in range(args.size))
    payload = f'{{"node":"bench0","readings":[{items}]}}'.encode()
    topic = "smollama/bench0/readings"
    s = ri.connect(mport, "bench0")
    s.setblocking(True)
    # One message first: every name known, the store's pages touched.
    s.sendall(ri.publish_packet(topic, payload, 1))
    while ri.status(hport)["store"]["readings_written"] < args.size:
        time.sleep(0.1)
    time.sleep(1)
    st0, c0 = ri.status(hport), per_thread_ns(agent.pid)
    for i in range(args.messages):
        s.sendall(ri.publish_packet(topic, payload, i % 65000 + 2))
        if args.rate > 0:
            time.sleep(1.0 / args.rate)
    s.setblocking(False)
    while ri.status(hport)["store"]["readings_written"] < args.size * (args.messages + 1):
        try:
            while s.recv(65536):  # PUBACKs
                pass
        except BlockingIOError:
            pass
        time.sleep(0.2)
    time.sleep(1)
    st1, c1 = ri.status(hport), per_thread_ns(agent.pid)
    n = args.messages
    total = 0.0
    print(f"{n} messages of {args.size} readings at {args.rate:g}/s "
          f"({'at once' if args.rate <= 0 else 'spread'}): "
          f"{st1['store']['commits'] - st0['store']['commits']} commits")
    for name in sorted(c1, key=lambda k: c0.get(k, 0) - c1[k]):
        us = (c1[name] - c0.get(name, 0)) / 1e3 / n
        total += us
        if us >= 0.5:
            print(f"  {name:14s} {us:8.1f} us/message")
    print(f"  {'total':14s} {total:8.1f} us/message")
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=30)
    broker.send_signal(signal.SIGTERM)
    broker.wait()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
