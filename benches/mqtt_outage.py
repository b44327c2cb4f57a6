#!/usr/bin/env python3
"""RSS of the release binary before, during and after a broker outage, with readings
published at 10 per second as QoS 1 (one message per reading).

Usage: python3 benches/mqtt_outage.py [--binary target/release/smollama] [--outage 60]
Needs Debian's mosquitto. Build first: cargo build --release
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

PIPELINE = """
[[source]]
name = "system"
kind = "system"
every = "100ms"
metrics = ["uptime"]

[[sink]]
name = "store"
kind = "store"
from = ["system"]

[[sink]]
name = "batch"
kind = "mqtt"
from = ["system"]
batch_max = 1
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_broker(conf):
    p = subprocess.Popen(["/usr/sbin/mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return p


def status(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5) as r:
        s = json.load(r)
    m = s["connections"]["mqtt"]
    mem = {}
    with open(f"/proc/{s['process']['pid']}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("RssAnon", "RssFile"):
                mem[k] = int(v.split()[0])
    return s["process"]["rss_kb"], m["state"], m["outbox"]["messages"], m["acked"], mem["RssAnon"], mem["RssFile"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/smollama")
    ap.add_argument("--outage", type=float, default=60.0)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="smollama-outage-")
    mport, hport = free_port(), free_port()
    conf = os.path.join(tmp, "m.conf")
    with open(conf, "w") as f:
        f.write(f"listener {mport} 127.0.0.1\nallow_anonymous true\n")
    with open(os.path.join(tmp, "p.toml"), "w") as f:
        f.write(PIPELINE)
    with open(os.path.join(tmp, "c.toml"), "w") as f:
        f.write(f'[node]\nname = "bench"\ndata_dir = "{tmp}/data"\n[http]\nbind = "127.0.0.1:{hport}"\n'
                f'[mqtt]\nbroker = "127.0.0.1"\nport = {mport}\nreconnect_max = "5s"\n'
                f'[pipeline]\nfiles = ["{tmp}/p.toml"]\n')
    broker = start_broker(conf)
    agent = subprocess.Popen([args.binary, "--config", os.path.join(tmp, "c.toml")],
                             stderr=subprocess.DEVNULL)
    time.sleep(10)
    before = status(hport)
    print(f"before outage: rss {before[0]} KiB (anon {before[4]}, file {before[5]}), {before[1]}, outbox {before[2]}, acked {before[3]}")
    broker.send_signal(signal.SIGTERM)
    broker.wait()
    peak = before[0]
    t0 = time.time()
    while time.time() - t0 < args.outage:
        time.sleep(10)
        s = status(hport)
        peak = max(peak, s[0])
        print(f"  outage +{time.time() - t0:4.0f}s: rss {s[0]} KiB (anon {s[4]}, file {s[5]}), {s[1]}, outbox {s[2]}")
    during = status(hport)
    broker = start_broker(conf)
    time.sleep(15)
    after = status(hport)
    print(f"after outage: rss {after[0]} KiB (anon {after[4]}, file {after[5]}), {after[1]}, outbox {after[2]}, acked {after[3]}")
    print(f"rss_growth_during_outage_kib: {peak - before[0]} (anon {during[4] - before[4]}, file-backed {during[5] - before[5]}; outbox held {during[2]} messages in LMDB)")
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=10)
    broker.send_signal(signal.SIGTERM)
    broker.wait()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
