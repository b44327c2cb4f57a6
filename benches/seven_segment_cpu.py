#!/usr/bin/env python3
"""CPU use of the 4-digit 7-segment multiplexer (the `7seg-<name>` thread).

Runs the binary on the mock GPIO with an sh5461as sink, twice: showing a value (the
thread lights each digit for ~1 ms in turn) and blank (the thread parks). For each run
it reports the thread's CPU time over the window (schedstat, in ns; utime+stime from
/proc/<pid>/task/<tid>/stat in clock ticks beside it), as a percentage of one core, its
wake-ups per second (voluntary context switches), and the whole process's CPU.

On the mock each line write also runs the LED-digit model (a mutex and a few array
writes); on a Pi a write is one store to the GPIO registers, so the Pi's figure for the
writes themselves is lower, while the sleeps and wake-ups (the bulk) are the same.

Usage: python3 benches/seven_segment_cpu.py [--binary target/debug/smollama] [--seconds 10]
Build first: cargo build
"""
import argparse
import os
import signal
import socket
import subprocess
import tempfile
import time

PIPELINE = """
[[source]]
name = "value"
kind = "file"
every = "10s"
path = "{path}"

[[sink]]
name = "store"
kind = "store"
from = ["value"]

[[sink]]
name = "clock"
kind = "sh5461as"
from = ["value"]
{template}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def healthy(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def thread(pid, name):
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            if f.read().strip() == name:
                return tid
    raise SystemExit(f"no thread {name} in {pid}")


def sample(pid, tid):
    base = f"/proc/{pid}/task/{tid}"
    with open(f"{base}/schedstat") as f:
        ns = int(f.read().split()[0])
    with open(f"{base}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    with open(f"{base}/status") as f:
        vol = next(int(l.split()[1]) for l in f if l.startswith("voluntary_ctxt_switches"))
    with open(f"/proc/{pid}/stat") as f:
        p = f.read().rsplit(")", 1)[1].split()
    proc_ticks = int(p[11]) + int(p[12])
    return ns, ticks, vol, proc_ticks


def run(binary, seconds, showing):
    with tempfile.TemporaryDirectory() as d:
        value = os.path.join(d, "value")
        with open(value, "w") as f:
            f.write("12.3\n")
        template = 'template = "{file:value|.1}"' if showing else ""
        pipe = os.path.join(d, "pipeline.toml")
        with open(pipe, "w") as f:
            f.write(PIPELINE.format(path=value, template=template))
        port = free_port()
        cfg = os.path.join(d, "smollama.toml")
        with open(cfg, "w") as f:
            f.write(
                f'[node]\ndata_dir = "{d}/data"\n\n[http]\nbind = "127.0.0.1:{port}"\n\n'
                f'[gpio]\nbackend = "mock"\n\n[agent]\nenabled = false\n\n'
                f'[pipeline]\nfiles = ["{pipe}"]\n'
            )
        proc = subprocess.Popen(
            [binary, "--config", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.time() + 20
            while not healthy(port):
                if time.time() > deadline:
                    raise SystemExit("the agent never became healthy")
                time.sleep(0.05)
            time.sleep(1)  # past start-up
            tid = thread(proc.pid, "7seg-clock")
            hz = os.sysconf("SC_CLK_TCK")
            t0, a = time.monotonic(), sample(proc.pid, tid)
            time.sleep(seconds)
            t1, b = time.monotonic(), sample(proc.pid, tid)
            wall = t1 - t0
            ns = b[0] - a[0]
            print(
                f"{'showing 12.3' if showing else 'blank':>12}: 7seg-clock {ns / 1e6:.1f} ms CPU in {wall:.1f} s "
                f"= {100 * ns / 1e9 / wall:.2f} % of a core (utime+stime {b[1] - a[1]} ticks of 1/{hz} s), "
                f"{(b[2] - a[2]) / wall:.0f} wake-ups/s; whole process {(b[3] - a[3]) / hz:.2f} s CPU"
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/debug/smollama")
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    run(args.binary, args.seconds, True)
    run(args.binary, args.seconds, False)


if __name__ == "__main__":
    main()
