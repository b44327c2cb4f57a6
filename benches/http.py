#!/usr/bin/env python3
"""The HTTP edge of one or more release binaries, measured in the same run.

For each binary (default pipeline, mock GPIO, data in a temp dir): threads and RSS after
an idle window; wrk -c64 throughput and latency on /api/health, /api/readings and
/api/status; the latency of sequential requests on one keep-alive connection (a
delayed-ACK stall shows as ~40 ms); /api/health while a POST /api/memory/recall waits on
an embedding server that accepts and never answers; RSS growth from a 200 MiB declared body, a
16 MiB header and 3,000 idle connections; the binary's size.

Usage: python3 benches/http.py --binary OLD --binary target/release/smollama [--seconds 10]
Needs wrk (apt-get install wrk). Binaries are measured one after another, twice over
(A B A B) when --rounds 2, so drift on a shared machine shows.
"""
import argparse
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k == key:
                return int(v.split()[0])
    return None


def request(port, raw, timeout=10):
    """Send raw bytes on a new connection; return (status line, seconds)."""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(raw)
        except OSError:
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
    return data.split(b"\r\n")[0].decode(errors="replace"), time.perf_counter() - t0


def health(port):
    try:
        return request(port, b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    except OSError as e:
        return str(e), 0.0


def keepalive_ms(port, path, n=20):
    """Median ms of n sequential GETs on one keep-alive connection, and the body size."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    times, size = [], 0
    buf = b""
    for _ in range(n):
        t0 = time.perf_counter()
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, _, buf = buf.partition(b"\r\n\r\n")
        size = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(buf) < size:
            buf += s.recv(65536)
        buf = buf[size:]
        times.append(time.perf_counter() - t0)
    s.close()
    return statistics.median(times) * 1e3, size


def silent_server():
    """Accepts and never answers; returns (port, stop)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    ls.settimeout(0.1)
    held, done = [], threading.Event()

    def run():
        while not done.is_set():
            try:
                held.append(ls.accept()[0])
            except OSError:
                pass
        for c in held:
            c.close()
        ls.close()

    t = threading.Thread(target=run)
    t.start()

    def stop():
        done.set()
        t.join()

    return ls.getsockname()[1], stop


def wrk(port, path, seconds):
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{seconds}s", f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = re.search(r"Latency\s+(\S+)", out).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return rps, lat, int(errors.group(1)) if errors else 0, sock.group(1) if sock else ""


def measure(binary, seconds, idle):
    tmp = tempfile.mkdtemp(prefix="smollama-http-")
    port = free_port()
    silent_port, silent_stop = silent_server()
    cfg = os.path.join(tmp, "smollama.toml")
    with open(cfg, "w") as f:
        f.write(
            f'[node]\nname = "bench"\ndata_dir = "{tmp}/data"\n'
            f'[http]\nbind = "127.0.0.1:{port}"\n'
            f'[ollama]\nhost = "127.0.0.1"\nport = {silent_port}\n'
            f"[agent]\nenabled = false\n"
            f'[gpio]\nbackend = "mock"\n'
        )
    p = subprocess.Popen([binary, "--config", cfg], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    r = {"binary": binary, "size": os.path.getsize(binary)}
    try:
        deadline = time.time() + 20
        while not health(port)[0].endswith("200 OK") and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(idle)
        r["threads"], r["rss_idle"] = proc(p.pid, "Threads"), proc(p.pid, "VmRSS")
        for path in ["/api/health", "/api/readings", "/api/status"]:
            r["wrk " + path] = wrk(port, path, seconds)
        r["threads_after_wrk"] = proc(p.pid, "Threads")
        for path in ["/api/status", "/api/readings"]:
            r["keepalive " + path] = keepalive_ms(port, path)
        # Health while recall's embed call hangs (up to 5 s).
        rec = threading.Thread(target=request, args=(port,
            b'POST /api/memory/recall HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{"query": "fan x y"}', 30))
        rec.start()
        time.sleep(0.3)
        lat = []
        t0 = time.time()
        while rec.is_alive() and time.time() - t0 < 4:
            lat.append(health(port)[1] * 1e3)
        rec.join()
        r["health during recall"] = (statistics.median(lat), max(lat), len(lat)) if lat else None
        # A 200 MiB declared body, 16 MiB sent; a 16 MiB header. Growth of RSS and of its
        # high-water mark (memory freed after the request shows only in the latter).
        for name, raw in [
            ("big body", b"PUT /api/gpio/22 HTTP/1.1\r\nContent-Length: 209715200\r\n\r\n" + b"x" * (16 << 20)),
            ("big header", b"GET /api/health HTTP/1.1\r\nX-Big: " + b"v" * (16 << 20) + b"\r\n\r\n"),
        ]:
            rss, hwm = proc(p.pid, "VmRSS"), proc(p.pid, "VmHWM")
            status, _ = request(port, raw)
            r[name] = (status, proc(p.pid, "VmRSS") - rss, proc(p.pid, "VmHWM") - hwm)
        # 3,000 idle connections.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
        before = proc(p.pid, "VmRSS")
        socks = []
        for _ in range(3000):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        time.sleep(1)
        r["3000 idle"] = (len(socks), proc(p.pid, "Threads"), proc(p.pid, "VmRSS") - before,
                          health(port))
        for s in socks:
            s.close()
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
        silent_stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", action="append", required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--idle", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    for _ in range(a.rounds):
        for b in a.binary:
            r = measure(b, a.seconds, a.idle)
            print()
            for k, v in r.items():
                print(f"{k}: {v}")


if __name__ == "__main__":
    main()
