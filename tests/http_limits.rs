//! The HTTP edge under abuse, through the real binary and real sockets: oversized
//! requests, thousands of idle connections, slow clients, a blocking handler in flight.
//! Each gets its status (or a timeout close), the process's RSS stays within a bound,
//! and `/api/health` keeps answering quickly throughout, with 50 event streams open too.
//! Also: no delayed-ACK stall on keep-alive, the status codes of the route table, and a
//! taken port.
//!
//! Latency bounds: the issue asks for health under 10 ms; the median is held to that and
//! the worst case to 1 s, far below the 5 s a blocking handler takes, so a loaded CI
//! machine does not fail them by chance. Measured figures are printed (`--nocapture`).
//! The tests here run one at a time (`serial`): their latency figures mean something only
//! when seven other attacks are not competing for the same two cores.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Held for the whole of each test, so only one agent here is under attack at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A failed test poisons the lock; the next one still runs.
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A response read off a raw socket.
#[derive(Debug)]
struct Resp {
    code: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One client connection speaking HTTP/1.1 by hand, so the test sees exactly what the
/// server sends (and can send what no well-behaved client would).
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        Client { s, buf: Vec::new() }
    }

    fn send(&mut self, raw: &[u8]) {
        self.s.write_all(raw).unwrap();
    }

    /// Send a request and read its response (no body for HEAD).
    fn request(&mut self, method: &str, target: &str, extra: &str, body: &str) -> Resp {
        let raw = format!(
            "{method} {target} HTTP/1.1\r\nHost: test\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.send(raw.as_bytes());
        self.response(method == "HEAD")
    }

    fn get(&mut self, target: &str) -> Resp {
        self.request("GET", target, "", "")
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.s.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Read one response; panics if the connection closes before it is complete.
    fn response(&mut self, head_only: bool) -> Resp {
        self.try_response(head_only)
            .unwrap_or_else(|| panic!("connection closed; got {:?}", self.buf))
    }

    fn try_response(&mut self, head_only: bool) -> Option<Resp> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill() {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let code = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        self.buf.drain(..head_end);
        let len = if head_only || code == 100 { 0 } else { len };
        while self.buf.len() < len {
            if !self.fill() {
                return None;
            }
        }
        let body = self.buf.drain(..len).collect();
        Some(Resp {
            code,
            headers,
            body,
        })
    }

    /// True when the server has closed the connection (end of input, nothing left).
    fn closed_by_server(&mut self) -> bool {
        self.buf.is_empty() && !self.fill()
    }
}

/// Send `raw` from a second thread (the server may stop reading and close midway,
/// which fails the writer; that is expected) while this one reads the answer.
fn send_and_read(port: u16, raw: Vec<u8>) -> Resp {
    let mut c = Client::connect(port);
    let mut w = c.s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&raw);
    });
    let r = c.response(false);
    let _ = writer.join();
    r
}

fn threads(pid: u32) -> u64 {
    proc_status(pid, "Threads:")
}

/// Growth of RSS allowed by any of the attacks here (the issue saw +478 MiB from one).
const RSS_BOUND_KB: u64 = 8 * 1024;

fn http_status(port: u16) -> Value {
    let mut c = Client::connect(port);
    let r = c.get("/api/status");
    assert_eq!(r.code, 200);
    r.json()["connections"]["http"].clone()
}

/// `/api/health` on a fresh connection, as a monitor would ask it: (status, time taken).
fn health_once(port: u16) -> (u16, Duration) {
    let t0 = Instant::now();
    let mut c = Client::connect(port);
    let r = c.request("GET", "/api/health", "Connection: close\r\n", "");
    (r.code, t0.elapsed())
}

/// Asks `/api/health` every 20 ms from its own thread until finished.
struct HealthProbe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(u16, Duration)>>,
}

impl HealthProbe {
    fn start(port: u16) -> HealthProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                seen.push(health_once(port));
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        });
        HealthProbe { stop, thread }
    }

    /// Stop and check: every answer 200, median under 10 ms, worst under 1 s.
    fn finish(self, what: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.thread.join().unwrap();
        check_health(&seen, what);
    }
}

fn check_health(seen: &[(u16, Duration)], what: &str) {
    assert!(
        seen.len() >= 3,
        "{what}: only {} health answers",
        seen.len()
    );
    let bad: Vec<_> = seen.iter().filter(|(c, _)| *c != 200).collect();
    assert!(bad.is_empty(), "{what}: health answered {bad:?}");
    let mut t: Vec<Duration> = seen.iter().map(|(_, d)| *d).collect();
    t.sort();
    let (median, worst) = (t[t.len() / 2], t[t.len() - 1]);
    eprintln!(
        "{what}: /api/health x{}: median {:.2} ms, worst {:.2} ms",
        t.len(),
        median.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );
    assert!(
        median < Duration::from_millis(10),
        "{what}: median {median:?}"
    );
    assert!(worst < Duration::from_secs(1), "{what}: worst {worst:?}");
}

/// Touch every endpoint so the allocator and the store's pages are warm before the
/// baseline RSS is taken.
fn warm_up(port: u16) {
    let mut c = Client::connect(port);
    for _ in 0..5 {
        for path in [
            "/api/status",
            "/api/readings",
            "/api/gpio",
            "/api/readings/system:uptime/history?minutes=5",
            "/api/nothing",
        ] {
            c.get(path);
        }
    }
}

/// Raise this process's open-file limit toward `want` (the sockets are the test's; the
/// child needs only its cap). Returns how many the test may open.
fn raise_fd_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < want + 200 {
            lim.rlim_cur = (want + 200).min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    let can = lim.rlim_cur.saturating_sub(200).min(want);
    if can < want {
        eprintln!(
            "note: open-file hard limit {} allows only {can} sockets",
            lim.rlim_max
        );
    }
    can
}

#[test]
fn oversized_requests_are_refused_at_their_bound_without_growing_the_process() {
    let _serial = serial();
    let dir = TempDir::new("http-big");
    let port = free_port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    // Debug logging on: its request lines must not echo what clients sent either.
    let agent = Agent::start(&cfg, port, &["--log-level", "debug"]);
    let pid = agent.child.id();
    warm_up(port);
    let before = rss_kb(pid);
    let probe = HealthProbe::start(port);
    let mib = 1 << 20;
    for _ in 0..3 {
        let line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(mib));
        let r = send_and_read(port, line.into_bytes());
        assert_eq!(r.code, 414, "{r:?}");
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .contains("max_request_line_kb")
        );

        let header = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "v".repeat(mib));
        let r = send_and_read(port, header.into_bytes());
        assert_eq!(r.code, 431, "{r:?}");
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .contains("max_header_kb")
        );

        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(10_000));
        let r = send_and_read(port, many.into_bytes());
        assert_eq!(r.code, 431, "{r:?}");
        assert!(r.json()["error"].as_str().unwrap().contains("max_headers"));

        // 200 MiB declared, 16 MiB of it actually sent: refused from the declaration.
        let mut body = b"PUT /api/gpio/22 HTTP/1.1\r\nContent-Length: 209715200\r\n\r\n".to_vec();
        body.resize(body.len() + 16 * mib, b'x');
        let r = send_and_read(port, body);
        assert_eq!(r.code, 413, "{r:?}");
        assert!(r.json()["error"].as_str().unwrap().contains("max_body_kb"));

        // A path within the bound but long: the 404 repeats only a short prefix.
        let mut c = Client::connect(port);
        let r = c.get(&format!("/{}", "p".repeat(8000)));
        assert_eq!(r.code, 404);
        assert!(r.body.len() < 200, "{} bytes", r.body.len());
        assert_eq!(c.get("/api/gpio").code, 200, "a 404 keeps the connection");
    }
    probe.finish("oversized requests");
    let after = rss_kb(pid);
    eprintln!("oversized requests: RSS {before} -> {after} KiB");
    assert!(after < before + RSS_BOUND_KB, "RSS {before} -> {after} KiB");
    let h = http_status(port);
    let refused = &h["refused"];
    for key in [
        "request_line_too_long",
        "headers_too_large",
        "too_many_headers",
        "body_too_large",
    ] {
        assert_eq!(refused[key], 3, "{key}: {h}");
    }
    let (st, _, log) = agent.terminate();
    assert!(st.success());
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 1000, "a log line of {longest} bytes");
    assert!(
        log.contains("http GET /pppp"),
        "debug lines name the request"
    );
}

#[test]
fn thousands_of_idle_connections_cost_no_threads_and_time_out() {
    let _serial = serial();
    let want = raise_fd_limit(3000);
    let dir = TempDir::new("http-idle");
    let port = free_port();
    let cfg = write_config_http(
        dir.path(),
        port,
        FAST_PIPELINE,
        "max_connections = 64\nidle_timeout = \"2s\"",
        "",
    );
    let agent = Agent::start(&cfg, port, &[]);
    let pid = agent.child.id();
    warm_up(port);
    let (rss0, threads0) = (rss_kb(pid), threads(pid));
    let probe = HealthProbe::start(port);
    let t0 = Instant::now();
    let mut idle: Vec<TcpStream> = (0..want)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    eprintln!("opened {want} idle connections in {:?}", t0.elapsed());
    let h = http_status(port);
    // Keep checking while the idle sockets are still held open.
    std::thread::sleep(Duration::from_secs(1));
    probe.finish("idle connections");
    let (rss1, threads1) = (rss_kb(pid), threads(pid));
    eprintln!("idle connections: RSS {rss0} -> {rss1} KiB, threads {threads0} -> {threads1}; {h}");
    assert!(rss1 < rss0 + RSS_BOUND_KB, "RSS {rss0} -> {rss1} KiB");
    assert_eq!(threads1, threads0, "no thread per connection");
    assert!(h["open"].as_u64().unwrap() <= 64, "{h}");
    // All but the newest 64 were closed to make room (the longest idle first).
    assert!(h["evicted_idle"].as_u64().unwrap() >= want - 64, "{h}");
    assert_eq!(
        h["refused_at_cap"], 0,
        "idle ones make room, nobody is refused: {h}"
    );
    // The rest time out: every socket ends closed by the server.
    let h = eventually(20, "idle connections timed out", || {
        let h = http_status(port);
        (h["open"].as_u64()? <= 1).then_some(h)
    });
    assert!(h["timed_out"]["idle"].as_u64().unwrap() >= 60, "{h}");
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 16];
        assert_eq!(s.read(&mut b).unwrap_or(0), 0, "closed without a word");
    }
    drop(idle);
    let (st, _, _) = agent.terminate();
    assert!(st.success());
}

#[test]
fn slow_clients_time_out_and_at_the_cap_newcomers_get_a_fast_503() {
    let _serial = serial();
    let dir = TempDir::new("http-slow");
    let port = free_port();
    let cfg = write_config_http(
        dir.path(),
        port,
        FAST_PIPELINE,
        "max_connections = 8\nrequest_timeout = \"1s\"",
        "",
    );
    let agent = Agent::start(&cfg, port, &[]);
    // A slowloris client: a header byte every 100 ms, never the end of the head.
    // The first bytes are sent before the next client connects, so none of them is ever
    // an idle connection the server could close to make room.
    let slowloris = |n: usize| -> Vec<JoinHandle<(Option<u16>, Duration)>> {
        (0..n)
            .map(|_| {
                let mut c = Client::connect(port);
                let t0 = Instant::now();
                c.send(b"GET /api/health HTTP/1.1\r\nX-Slow: ");
                std::thread::spawn(move || {
                    c.s.set_read_timeout(Some(Duration::from_millis(100)))
                        .unwrap();
                    let mut chunk = [0u8; 1024];
                    while t0.elapsed() < Duration::from_secs(10) {
                        if c.s.write_all(b"z").is_err() {
                            break;
                        }
                        match c.s.read(&mut chunk) {
                            Ok(0) => break,
                            Ok(n) => {
                                c.buf.extend_from_slice(&chunk[..n]);
                                break;
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                            Err(_) => break,
                        }
                    }
                    let took = t0.elapsed();
                    c.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    (c.try_response(false).map(|r| r.code), took)
                })
            })
            .collect()
    };
    // Below the cap: slow clients get 408 after request_timeout; health is unaffected.
    let probe = HealthProbe::start(port);
    for (code, took) in slowloris(3).into_iter().map(|t| t.join().unwrap()) {
        assert_eq!(code, Some(408));
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }
    probe.finish("slow clients");
    // At the cap, with every connection mid-request (none idle to close): 503 at once.
    let slow = slowloris(8);
    eventually(5, "8 slow clients connected", || {
        let t0 = Instant::now();
        let mut c = Client::connect(port);
        c.send(b"GET /api/health HTTP/1.1\r\n\r\n");
        let r = c.response(false);
        (r.code == 503).then_some(()).inspect(|_| {
            let took = t0.elapsed();
            eprintln!("at the cap: 503 in {:.2} ms", took.as_secs_f64() * 1e3);
            assert!(took < Duration::from_millis(500), "{took:?}");
            assert!(
                r.json()["error"]
                    .as_str()
                    .unwrap()
                    .contains("max_connections")
            );
            assert_eq!(r.header("Connection"), Some("close"));
        })
    });
    for t in slow {
        assert_eq!(t.join().unwrap().0, Some(408));
    }
    // Room again once they are gone.
    let (code, _) = eventually(5, "health after the slow clients", || {
        Some(health_once(port)).filter(|(c, _)| *c == 200)
    });
    assert_eq!(code, 200);
    let h = http_status(port);
    assert!(h["refused_at_cap"].as_u64().unwrap() >= 1, "{h}");
    assert!(h["timed_out"]["request"].as_u64().unwrap() >= 11, "{h}");
    let (st, _, _) = agent.terminate();
    assert!(st.success());
}

#[cfg(feature = "agent")]
/// A stand-in embedding server that accepts connections and never answers (a hung
/// Ollama), recording which paths were asked; `release` closes everything.
struct SilentServer {
    port: u16,
    asked: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

#[cfg(feature = "agent")]
impl SilentServer {
    fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (asked.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                        let mut b = [0u8; 512];
                        let n = c.read(&mut b).unwrap_or(0);
                        let line = String::from_utf8_lossy(&b[..n]);
                        a.lock()
                            .unwrap()
                            .push(line.split(' ').nth(1).unwrap_or("").to_string());
                        held.push(c);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        SilentServer {
            port,
            asked,
            stop,
            thread: Some(thread),
        }
    }

    fn asked(&self, path: &str) -> usize {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }

    /// Close the listener and every held connection: calls in flight fail at once.
    fn release(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

#[cfg(feature = "agent")]
impl Drop for SilentServer {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(feature = "agent")]
fn recall(port: u16) -> JoinHandle<(u16, Value, Duration)> {
    std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut c = Client::connect(port);
        let r = c.request(
            "POST",
            "/api/memory/recall",
            "Content-Type: application/json\r\n",
            r#"{"query": "greenhouse fan"}"#,
        );
        let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        (r.code, body, t0.elapsed())
    })
}

#[cfg(feature = "agent")]
#[test]
fn health_and_reads_answer_while_recall_waits_on_a_silent_embedding_model() {
    let _serial = serial();
    let mut ollama = SilentServer::start();
    let dir = TempDir::new("http-recall");
    let port = free_port();
    // The agent off: the recall endpoint is then the only one to call the model.
    let extra = format!(
        "[ollama]\nhost = \"127.0.0.1\"\nport = {}\n\n[agent]\nenabled = false\n",
        ollama.port
    );
    let cfg = write_config_extra(dir.path(), port, FAST_PIPELINE, &extra);
    let agent = Agent::start(&cfg, port, &[]);
    let first = recall(port);
    eventually(5, "the recall's embed call in flight", || {
        (ollama.asked("/api/embed") == 1).then_some(())
    });
    // Health, and a store read on the other worker, while the embed call blocks.
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen.push(health_once(port));
    }
    check_health(&seen, "recall in flight");
    let t0 = Instant::now();
    let mut c = Client::connect(port);
    assert_eq!(c.get("/api/readings").code, 200);
    assert_eq!(c.get("/api/status").code, 200);
    let reads = t0.elapsed();
    eprintln!("recall in flight: /api/readings + /api/status in {reads:?}");
    assert!(reads < Duration::from_secs(1), "{reads:?}");
    // More recalls than the slow lane queues: the one past it is told so at once.
    let more: Vec<_> = (0..6).map(|_| recall(port)).collect();
    eventually(5, "a recall refused as busy", || {
        more.iter().any(|t| t.is_finished()).then_some(())
    });
    ollama.release();
    let (code, body, took) = first.join().unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["mode"], "lexical", "fell back to words: {body}");
    eprintln!("recall against a silent model answered in {took:?}");
    let results: Vec<(u16, Value, Duration)> =
        more.into_iter().map(|t| t.join().unwrap()).collect();
    let refused: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert!(!refused.is_empty(), "{results:?}");
    for (_, body, took) in &refused {
        assert!(body["error"].as_str().unwrap().contains("busy"), "{body}");
        assert!(*took < Duration::from_secs(1), "503 after {took:?}");
    }
    assert!(
        results.iter().all(|r| r.0 == 200 || r.0 == 503),
        "{results:?}"
    );
    let h = http_status(port);
    assert_eq!(
        h["refused"]["busy"].as_u64(),
        Some(refused.len() as u64),
        "{h}"
    );
    let (st, _, _) = agent.terminate();
    assert!(st.success());
}

#[test]
fn keep_alive_responses_of_several_kb_have_no_delayed_ack_stall() {
    let _serial = serial();
    let dir = TempDir::new("http-nagle");
    let port = free_port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let agent = Agent::start(&cfg, port, &[]);
    eventually(10, "a history of a few KiB", || {
        let (_, h) = get(&agent.url("/api/readings/system:load_avg/history?minutes=5")).ok()?;
        (h["count"].as_u64()? >= 20).then_some(())
    });
    let mut c = Client::connect(port);
    for path in [
        "/api/status",
        "/api/readings/system:load_avg/history?minutes=5&limit=1000",
    ] {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..20 {
            let t0 = Instant::now();
            let r = c.get(path);
            times.push(t0.elapsed());
            assert_eq!(r.code, 200);
            size = r.body.len();
        }
        times.sort();
        let median = times[times.len() / 2];
        eprintln!(
            "keep-alive {path}: {size} bytes, median {:.2} ms, worst {:.2} ms",
            median.as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3
        );
        assert!((1024..=64 * 1024).contains(&size), "{path}: {size} bytes");
        // A delayed-ACK stall costs about 40 ms per response.
        assert!(
            median < Duration::from_millis(20),
            "{path}: median {median:?}"
        );
    }
    let (st, _, _) = agent.terminate();
    assert!(st.success());
}

#[test]
fn unknown_paths_404_wrong_methods_405_head_and_unknown_query_parameters_400() {
    let _serial = serial();
    let dir = TempDir::new("http-codes");
    let port = free_port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let agent = Agent::start(&cfg, port, &[]);
    // All on one kept-alive connection: each answer must leave it usable.
    let mut c = Client::connect(port);
    for path in [
        "/api/readings/x/history/extra",
        "/api/readings/../health",
        "/api/health/",
        "/api//status",
        "/nothing",
    ] {
        let r = c.get(path);
        let want = if path == "/api/health/" { 200 } else { 404 };
        assert_eq!(r.code, want, "{path}: {r:?}");
    }
    let r = c.request("PUT", "/api/status", "", "{}");
    assert_eq!(r.code, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    let r = c.request("DELETE", "/api/gpio/22", "", "");
    assert_eq!(r.code, 405);
    assert_eq!(r.header("Allow"), Some("PUT, POST"));
    assert!(r.json()["error"].as_str().unwrap().contains("PUT, POST"));
    // HEAD: the GET's headers, no body (the next response parses, so none was sent).
    let head = c.request("HEAD", "/api/gpio", "", "");
    assert_eq!(head.code, 200);
    assert!(head.body.is_empty());
    let get = c.get("/api/gpio");
    assert_eq!(get.code, 200);
    assert_eq!(
        head.header("Content-Length"),
        Some(get.body.len().to_string().as_str())
    );
    assert_eq!(head.header("Content-Type"), get.header("Content-Type"));
    assert_eq!(c.request("HEAD", "/api/health", "", "").code, 200);
    assert_eq!(c.request("HEAD", "/api/nothing", "", "").code, 404);
    // Unknown query parameters name the valid ones.
    let r = c.get("/api/readings/system:uptime/history?minute=5");
    assert_eq!(r.code, 400);
    let j = r.json();
    assert!(j["error"].as_str().unwrap().contains("'minute'"), "{j}");
    assert_eq!(j["valid"], serde_json::json!(["minutes", "limit"]));
    let r = c.get("/api/status?verbose=1");
    assert_eq!(r.code, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("takes none"));
    assert_eq!(
        c.get("/api/readings/system:uptime/history?minutes=5&limit=3")
            .code,
        200
    );
    // Expect: 100-continue gets the go-ahead, then the answer.
    let body = r#"{"value": true}"#;
    c.send(
        format!(
            "PUT /api/gpio/22 HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(c.response(false).code, 100);
    c.send(body.as_bytes());
    assert_eq!(c.response(false).code, 200);
    // Chunked request bodies are refused clearly, and that connection is closed.
    let r = c.request("POST", "/api/gpio/22", "Transfer-Encoding: chunked\r\n", "");
    assert_eq!(r.code, 411);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("Content-Length")
    );
    assert!(c.closed_by_server());
    // HTTP/1.0 without keep-alive: answered, then closed; `Connection: close` too.
    let mut c = Client::connect(port);
    c.send(b"GET /api/health HTTP/1.0\r\n\r\n");
    assert_eq!(c.response(false).code, 200);
    assert!(c.closed_by_server());
    let mut c = Client::connect(port);
    let r = c.request("GET", "/api/health", "Connection: close\r\n", "");
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed_by_server());
    let (st, _, _) = agent.terminate();
    assert!(st.success());
}

#[test]
fn a_taken_port_fails_start_up_naming_the_setting() {
    let _serial = serial();
    let dir = TempDir::new("http-taken");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let (code, _, err) = run_cli(&["--config", cfg.to_str().unwrap()], &[]);
    assert_ne!(code, 0, "{err}");
    for want in [
        format!("cannot listen on 127.0.0.1:{port}: address already in use"),
        "[http] bind".to_string(),
        "SMOLLAMA_HTTP_BIND".to_string(),
        "[http] enabled = false".to_string(),
    ] {
        assert!(err.contains(&want), "{want:?} missing from:\n{err}");
    }
    drop(taken);
}

#[test]
fn a_burst_of_health_checks_shares_one_ping_and_all_get_200() {
    let _serial = serial();
    let dir = TempDir::new("http-burst");
    let port = free_port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let agent = Agent::start(&cfg, port, &[]);
    // 48 monitors at once (the event loop's ping queue holds 16), 20 times over.
    let n = 48;
    for _ in 0..20 {
        let start = Arc::new(std::sync::Barrier::new(n));
        let checks: Vec<_> = (0..n)
            .map(|_| {
                let start = start.clone();
                std::thread::spawn(move || {
                    let mut c = Client::connect(port);
                    start.wait();
                    c.request("GET", "/api/health", "Connection: close\r\n", "")
                        .code
                })
            })
            .collect();
        let codes: Vec<u16> = checks.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    }
    let (st, _, _) = agent.terminate();
    assert!(st.success());
}

/// The attacks above with 50 event streams open: streams are counted apart from
/// `max_connections`, so oversized requests are still refused at their bounds, a flood
/// of idle connections is evicted without touching a stream, health stays fast, the
/// process does not grow, and every stream still gets events afterwards.
#[test]
fn the_bounds_hold_with_fifty_event_streams_open() {
    use common::raw_http::SseClient;
    let _serial = serial();
    let want = raise_fd_limit(1000);
    let dir = TempDir::new("http-streams");
    let port = free_port();
    let pipeline = format!(
        "{FAST_PIPELINE}\n[[sink]]\nname = \"live\"\nkind = \"events\"\nfrom = [\"quiet\"]\n"
    );
    let cfg = write_config_http(
        dir.path(),
        port,
        &pipeline,
        "max_connections = 64\nmax_streams = 64\nidle_timeout = \"2s\"",
        "",
    );
    let agent = Agent::start(&cfg, port, &[]);
    let pid = agent.child.id();
    warm_up(port);
    let mut streams: Vec<SseClient> = (0..50)
        .map(|_| SseClient::open(port, "/api/events", ""))
        .collect();
    for s in &mut streams {
        assert!(s.next_event(Duration::from_secs(10)).is_some());
    }
    let (rss0, threads0) = (rss_kb(pid), threads(pid));
    let probe = HealthProbe::start(port);
    let mib = 1 << 20;
    let line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(mib));
    assert_eq!(send_and_read(port, line.into_bytes()).code, 414);
    let header = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "v".repeat(mib));
    assert_eq!(send_and_read(port, header.into_bytes()).code, 431);
    let mut body = b"PUT /api/gpio/22 HTTP/1.1\r\nContent-Length: 209715200\r\n\r\n".to_vec();
    body.resize(body.len() + 4 * mib, b'x');
    assert_eq!(send_and_read(port, body).code, 413);
    let mut c = Client::connect(port);
    assert_eq!(c.get("/api/nothing").code, 404);
    assert_eq!(c.request("PUT", "/api/status", "", "").code, 405);
    // A flood of idle connections: the oldest idle ones make room, never a stream.
    let idle: Vec<TcpStream> = (0..want)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    probe.finish("50 streams open");
    let h = http_status(port);
    let (rss1, threads1) = (rss_kb(pid), threads(pid));
    eprintln!("50 streams: RSS {rss0} -> {rss1} KiB, threads {threads0} -> {threads1}; {h}");
    assert!(rss1 < rss0 + RSS_BOUND_KB, "RSS {rss0} -> {rss1} KiB");
    assert_eq!(threads1, threads0, "no thread per connection or stream");
    assert!(h["open"].as_u64().unwrap() <= 64, "{h}");
    assert!(h["evicted_idle"].as_u64().unwrap() >= want - 64, "{h}");
    assert_eq!(h["refused_at_cap"], 0, "{h}");
    assert_eq!(h["streams"]["open"], 50, "{h}");
    drop(idle);
    // Past the idle timeout too, every stream is open and still gets events.
    std::thread::sleep(Duration::from_secs(3));
    for (i, s) in streams.iter_mut().enumerate() {
        assert!(
            s.next_event(Duration::from_secs(10)).is_some(),
            "stream {i} got nothing after the attacks"
        );
    }
    let h = http_status(port);
    assert_eq!(h["streams"]["open"], 50, "{h}");
    assert_eq!(h["events"]["clients"].as_array().unwrap().len(), 50, "{h}");
    drop(streams);
    let (st, _, _) = agent.terminate();
    assert!(st.success());
}
