#!/usr/bin/env python3
"""Process footprint of the release binary running the default pipeline.

Reports: time from spawn to the first 200 from /api/health, RSS (anonymous and file
pages) and PSS (from smaps_rollup) and VmHWM after the idle window, CPU seconds used
during the idle window, thread count, time from SIGTERM to exit, and the binary's size.

Usage: python3 benches/footprint.py [--binary target/release/smollama ...] [--seconds 60]
                                    [--broker] [--smaps] [--sections] [--rounds N]
Build first: ./scripts/build-release (the static musl build README.md installs) or
cargo build --release.

--binary may be given more than once: every binary then runs at the same time (each with
its own data directory and port, the same idle window), so builds compare in one run on
a noisy machine; with --broker they run one after another instead (two nodes on one
broker would disturb each other). --rounds N repeats that N times, the order reversed
every other round (A B, B A, ...: interleaved pairs), and prints each binary's median. --smaps prints each process's resident pages per mapping (RSS and PSS
summed by file, [heap], [stack] and anonymous), largest first: where the RSS is.
--sections prints, for each ELF section of the binary, how much of it is resident
(/proc/PID/pagemap's present bit): which part of the file-backed RSS is code, read-only
data, relocations or unwind tables.

--broker starts a mosquitto (Debian's) and connects the agent to it, as a node with MQTT
on. Each thread's CPU time and wake-ups (schedstat's timeslices) over the window are
printed, so a thread that wakes when it need not shows, and the messages published in
the window (what passes the default pipeline's filter varies with the machine's load),
per topic too when mosquitto_sub is installed (Debian: mosquitto-clients).

With collectd installed (Debian: apt-get install collectd-core), collectd runs alongside
during the same window, sampling the same kind of metrics every 10 s into CSV files, and
its RSS, CPU and threads are printed next to smollama's with the ratio.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def health(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = s.recv(64)
            return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def smaps_rollup(pid):
    """{Pss, Pss_Anon, Pss_File, ...} in KiB (Linux 4.14+; Pss_Anon/File from 5.10)."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if v.strip().endswith("kB"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def smaps_by_mapping(pid):
    """[(name, rss KiB, pss KiB)] summed per mapped file or kind, largest RSS first."""
    sums = {}
    name = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(None, 5)
            if "-" in first[0] and len(first) >= 5 and ":" not in first[0]:
                perms = first[1]
                path = first[5].strip() if len(first) > 5 else "[anon]"
                name = f"{os.path.basename(path) if path.startswith('/') else path} {perms}"
                sums.setdefault(name, [0, 0])
            elif first[0] == "Rss:":
                sums[name][0] += int(first[1])
            elif first[0] == "Pss:":
                sums[name][1] += int(first[1])
    rows = [(n, r, p) for n, (r, p) in sums.items() if r]
    return sorted(rows, key=lambda x: -x[1])


def elf_sections(path):
    """[(name, vaddr, size)] of an ELF64 little-endian file's allocated sections."""
    import struct
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return []
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    heads = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    stroff = heads[shstrndx][4]
    out = []
    for name, _type, flags, addr, _off, size in heads:
        if flags & 2 and size:  # SHF_ALLOC
            end = data.index(b"\0", stroff + name)
            out.append((data[stroff + name:end].decode(), addr, size))
    return out


def resident_by_section(pid, binary):
    """[(section, size KiB, resident KiB)] of the binary's own sections, from
    /proc/PID/pagemap's present bit: which of its pages are mapped in, section by section
    (a page two sections share counts for both)."""
    real = os.path.realpath(binary)
    base = None
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and os.path.realpath(parts[5]) == real and int(parts[2], 16) == 0:
                base = int(parts[0].split("-")[0], 16)
                break
    if base is None:
        return []
    page = os.sysconf("SC_PAGE_SIZE")
    out = []
    with open(f"/proc/{pid}/pagemap", "rb") as pm:
        for name, addr, size in elf_sections(binary):
            first, last = (base + addr) // page, (base + addr + size - 1) // page
            pm.seek(first * 8)
            raw = pm.read((last - first + 1) * 8)
            present = sum(1 for i in range(0, len(raw), 8) if raw[i + 7] & 0x80)
            if name.startswith((".tbss", ".bss")):
                continue
            out.append((name, size / 1024, present * page / 1024))
    return out


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    return out


def cpu_seconds(pid):
    """CPU time of every live thread, in nanoseconds from schedstat (utime/stime in
    /proc/PID/stat only count 10 ms ticks, too coarse for an idle agent)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9


def per_thread(pid):
    """{tid: (name, cpu ns, timeslices)} from schedstat."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns, _, slices = (int(x) for x in f.read().split())
        except OSError:
            continue
        out[tid] = (name, ns, slices)
    return out


def mqtt_out(port):
    """Messages the agent has published (0 without a broker or HTTP), from /api/status."""
    import json
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        body = json.loads(data.split(b"\r\n\r\n", 1)[1])
        return body["connections"]["mqtt"].get("messages_out", 0)
    except (OSError, ValueError, KeyError, IndexError):
        return 0


def thread_names(pid):
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            names.append(f.read().strip())
    return sorted(names)


COLLECTD_CONF = """
Interval 10
BaseDir "{dir}"
PIDFile "{dir}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin cpu
LoadPlugin memory
LoadPlugin load
LoadPlugin df
LoadPlugin uptime
LoadPlugin thermal
LoadPlugin csv
<Plugin csv>
  DataDir "{dir}/csv"
</Plugin>
"""


def start_collectd(tmp):
    exe = shutil.which("collectd") or ("/usr/sbin/collectd" if os.path.exists("/usr/sbin/collectd") else None)
    if not exe or not os.path.exists("/usr/share/collectd/types.db"):
        return None
    d = tempfile.mkdtemp(prefix="collectd-", dir=tmp)
    conf = os.path.join(d, "collectd.conf")
    with open(conf, "w") as f:
        f.write(COLLECTD_CONF.format(dir=d))
    return subprocess.Popen([exe, "-f", "-C", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Agent:
    """One smollama binary running the default pipeline in its own temporary HOME."""

    def __init__(self, binary, tmp, extra_env):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="agent-", dir=tmp)
        self.port = free_port()
        env = dict(os.environ)
        env.pop("RUST_LOG", None)
        env.update(extra_env)
        env.update({
            "HOME": self.dir,
            "SMOLLAMA_NODE_DATA_DIR": os.path.join(self.dir, "data"),
            "SMOLLAMA_HTTP_BIND": f"127.0.0.1:{self.port}",
        })
        t0 = time.perf_counter()
        self.p = subprocess.Popen([binary], env=env, stderr=subprocess.DEVNULL)
        while not health(self.port):
            if self.p.poll() is not None:
                raise SystemExit(f"{binary} exited with {self.p.returncode}")
            time.sleep(0.0002)
        self.startup_ms = (time.perf_counter() - t0) * 1000


def start_sub(port):
    """mosquitto_sub on every topic, live messages only (-R: not the retained ones the broker
    hands over at subscribe), so the window's messages can be counted per topic."""
    exe = shutil.which("mosquitto_sub")
    if not exe:
        return None
    return subprocess.Popen([exe, "-p", str(port), "-v", "-R", "-t", "#"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def stop_sub(sub):
    """{topic: messages} that `sub` received."""
    if not sub:
        return {}
    sub.terminate()
    out, _ = sub.communicate(timeout=10)
    counts = {}
    for line in out.splitlines():
        topic = line.split(" ", 1)[0]
        if topic:
            counts[topic] = counts.get(topic, 0) + 1
    return counts


def window(binaries, args, tmp, extra, mport, label):
    """Start `binaries` (one after another), measure one idle window, stop them, print;
    {binary: (cpu s, messages out)}."""
    agents = [Agent(b, tmp, extra) for b in binaries]

    c = start_collectd(tmp)

    # Let start-up work settle, then measure an idle window.
    time.sleep(min(5.0, args.seconds / 4))
    sub = start_sub(mport) if mport else None
    for a in agents:
        a.out0 = mqtt_out(a.port) if mport else 0
        a.cpu0 = cpu_seconds(a.p.pid)
        a.t_before = per_thread(a.p.pid)
    ccpu0 = cpu_seconds(c.pid) if c else 0
    time.sleep(args.seconds)
    for a in agents:
        a.cpu1 = cpu_seconds(a.p.pid)
        a.t_after = per_thread(a.p.pid)
        a.out1 = mqtt_out(a.port) if mport else 0
        a.st = proc_status(a.p.pid)
        a.pss = smaps_rollup(a.p.pid)
        a.maps = smaps_by_mapping(a.p.pid) if args.smaps else []
        a.sections = resident_by_section(a.p.pid, a.binary) if args.sections else []
        a.names = thread_names(a.p.pid)
    topics = stop_sub(sub)
    if c:
        ccpu = cpu_seconds(c.pid) - ccpu0
        cst = proc_status(c.pid)
        cpss = smaps_rollup(c.pid)
        c.terminate()
        c.wait(timeout=10)

    for a in agents:
        t1 = time.perf_counter()
        a.p.send_signal(signal.SIGTERM)
        a.code = a.p.wait(timeout=30)
        a.stop_ms = (time.perf_counter() - t1) * 1000

    if label:
        print(f"=== {label} (load average {os.getloadavg()[0]:.2f})")
    for a in agents:
        st = a.st
        if len(agents) > 1 or label:
            print(f"== {a.binary}")
        print(f"start_to_healthy_ms: {a.startup_ms:.2f}")
        print(f"rss_kib: {st['VmRSS']} (anon {st.get('RssAnon', 0)}, file {st.get('RssFile', 0)})")
        print(f"pss_kib: {a.pss.get('Pss', 0)} (anon {a.pss.get('Pss_Anon', 0)}, file {a.pss.get('Pss_File', 0)})")
        print(f"vmhwm_kib: {st['VmHWM']}")
        print(f"cpu_s_over_{args.seconds:.0f}s_idle: {a.cpu1 - a.cpu0:.5f}")
        if mport:
            # The default pipeline publishes what passes its filter: a busy machine's changing
            # CPU load means more messages, so compare runs per message as well.
            print(f"mqtt_messages_out_in_window: {a.out1 - a.out0}")
        print(f"threads: {st['Threads']} ({', '.join(a.names)})")
        for tid, (name, ns, slices) in sorted(a.t_after.items(), key=lambda kv: kv[1][0]):
            b = a.t_before.get(tid, (name, 0, 0))
            print(f"  thread {name:<12} cpu_ms {(ns - b[1]) / 1e6:8.3f}  wakeups {slices - b[2]}")
        print(f"sigterm_to_exit_ms: {a.stop_ms:.1f} (exit code {a.code})")
        print(f"binary_bytes: {os.path.getsize(a.binary)}")
        for name, rss, pss in a.maps:
            print(f"  smaps {name:<40} rss_kib {rss:6}  pss_kib {pss:6}")
        for name, size, res in a.sections:
            print(f"  section {name:<20} size_kib {size:8.1f}  resident_kib {res:6.0f}")
        if c:
            print(f"  smollama/collectd rss: {st['VmRSS'] / cst['VmRSS']:.2f}"
                  f"  cpu: {(a.cpu1 - a.cpu0) / ccpu if ccpu else float('nan'):.2f}")
    if len(agents) == 1:
        for topic, n in sorted(topics.items()):
            print(f"  topic {topic:<60} messages {n}")
    if c:
        print("collectd (same window, 10 s interval, cpu/memory/load/df/uptime/thermal -> csv):")
        print(f"  collectd_rss_kib: {cst['VmRSS']} (anon {cst.get('RssAnon', 0)}, file {cst.get('RssFile', 0)})")
        print(f"  collectd_pss_kib: {cpss.get('Pss', 0)}")
        print(f"  collectd_cpu_s: {ccpu:.5f}")
        print(f"  collectd_threads: {cst['Threads']}")
    return {a.binary: (a.cpu1 - a.cpu0, a.out1 - a.out0) for a in agents}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", action="append",
                    help="a binary to measure (repeatable; default target/release/smollama)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--broker", action="store_true", help="connect the agent to a local mosquitto")
    ap.add_argument("--smaps", action="store_true", help="print resident pages per mapping")
    ap.add_argument("--sections", action="store_true",
                    help="print the binary's resident pages per ELF section (pagemap)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat, the binaries' order reversed every other round; then medians")
    args = ap.parse_args()
    binaries = args.binary or ["target/release/smollama"]

    tmp = tempfile.mkdtemp(prefix="smollama-footprint-")
    extra = {}
    broker = None
    mport = None
    if args.broker:
        mport = free_port()
        conf = os.path.join(tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {mport} 127.0.0.1\nallow_anonymous true\n")
        broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", conf],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        extra = {"SMOLLAMA_MQTT_BROKER": "127.0.0.1", "SMOLLAMA_MQTT_PORT": str(mport)}
    results = {b: [] for b in binaries}
    for r in range(args.rounds):
        order = binaries if r % 2 == 0 else binaries[::-1]
        # With a broker, one binary per window: two nodes of one name on one broker would
        # take each other's client id, and two of different names ingest each other's
        # batches. Without one they share the window.
        groups = [[b] for b in order] if broker and len(binaries) > 1 else [order]
        for g in groups:
            label = f"round {r + 1}: {', '.join(g)}" if args.rounds > 1 or len(groups) > 1 else ""
            for b, res in window(g, args, tmp, extra, mport, label).items():
                results[b].append(res)
    if broker:
        broker.terminate()
        broker.wait(timeout=10)
    shutil.rmtree(tmp, ignore_errors=True)
    if args.rounds > 1:
        print("=== summary: CPU s per window (messages out), in round order; median")
        for b, res in results.items():
            cpus = sorted(c for c, _ in res)
            mid = len(cpus) // 2
            median = cpus[mid] if len(cpus) % 2 else (cpus[mid - 1] + cpus[mid]) / 2
            runs = " ".join(f"{c:.5f} ({m})" for c, m in res)
            print(f"  {b}: {runs}; median {median:.5f}")


if __name__ == "__main__":
    main()
