//! The `http` source through the real binary, against a scripted HTTP server on
//! loopback: good answers become readings; a slow answer, an error status, a body that is
//! not JSON and a missing field each leave the source degraded with the reason (counted,
//! logged once per change) until the next good poll; a slow device never stalls
//! `/api/health`.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// What the scripted device answers next.
#[derive(Clone, Debug)]
enum Mode {
    Good(&'static str),
    /// Answers only after this long (beyond the source's timeout).
    Slow(Duration),
    Status500,
    Body(&'static str),
    /// A valid JSON answer larger than the source reads (`max_body_kb`).
    Huge,
}

/// A device on 127.0.0.1: one thread per connection, answering by the current mode; it
/// remembers the Authorization header it last saw.
struct Device {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    auth: Arc<Mutex<Option<String>>>,
}

impl Device {
    fn start(mode: Mode) -> Device {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(mode));
        let auth = Arc::new(Mutex::new(None));
        let (m, a) = (mode.clone(), auth.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (m, a) = (m.clone(), a.clone());
                std::thread::spawn(move || answer(conn, &m, &a));
            }
        });
        Device { port, mode, auth }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

fn answer(mut conn: TcpStream, mode: &Mutex<Mode>, auth: &Mutex<Option<String>>) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&req);
    if let Some(l) = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
    {
        *auth.lock().unwrap() = Some(l["authorization:".len()..].trim().to_string());
    }
    let mode = mode.lock().unwrap().clone();
    let huge;
    let (status, body) = match mode {
        Mode::Huge => {
            huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(300 * 1024));
            ("200 OK", huge.as_str())
        }
        Mode::Good(b) => ("200 OK", b),
        Mode::Slow(d) => {
            std::thread::sleep(d);
            ("200 OK", GOOD)
        }
        Mode::Status500 => ("500 Internal Server Error", "{\"error\":\"sensor fault\"}"),
        Mode::Body(b) => ("200 OK", b),
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

const GOOD: &str = r#"{"main": {"temp": 21.5, "humidity": "40"}, "rain": false}"#;
const GOOD_AGAIN: &str = r#"{"main": {"temp": 23.0, "humidity": 38}, "rain": true}"#;
const NO_HUMIDITY: &str = r#"{"main": {"temp": 22.0}, "rain": false}"#;
const SECRET: &str = "Bearer sekrit-token-123";

fn pipeline(device: u16, dead: u16) -> String {
    format!(
        r#"[[source]]
name = "weather"
kind = "http"
every = "200ms"
url = "http://127.0.0.1:{device}/data.json"
timeout = "2s"
max_body_kb = 64
values = {{ temperature = "/main/temp", humidity = "/main/humidity", raining = {{ pointer = "/rain", kind = "boolean" }} }}
units = {{ temperature = "celsius", humidity = "percent" }}
headers = {{ Authorization = "{SECRET}" }}

[[source]]
name = "gone"
kind = "http"
every = "500ms"
url = "http://127.0.0.1:{dead}/"
values = {{ x = "/x" }}

[[sink]]
name = "store"
kind = "store"
from = ["weather", "gone"]
"#
    )
}

fn node(status: &Value, name: &str) -> Value {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {status}"))
        .clone()
}

/// The node once `f` holds for it.
fn node_when(agent: &Agent, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    eventually(15, what, || {
        let (_, s) = get(&agent.url("/api/status")).ok()?;
        let n = node(&s, name);
        f(&n).then_some(n)
    })
}

fn reading(agent: &Agent, id: &str) -> Option<Value> {
    let (_, r) = get(&agent.url("/api/readings")).ok()?;
    r["readings"]
        .as_array()?
        .iter()
        .find(|x| x["full_id"] == id)
        .cloned()
}

fn counter(n: &Value, name: &str) -> u64 {
    n["counters"][name].as_u64().unwrap_or(0)
}

#[test]
fn polls_a_device_degrades_on_each_kind_of_failure_and_recovers_without_stalling_the_loop() {
    let dir = TempDir::new("http-source");
    let device = Device::start(Mode::Good(GOOD));
    let port = free_port();
    let cfg = write_config(dir.path(), port, &pipeline(device.port, free_port()));
    let agent = Agent::start(&cfg, port, &[]);

    // Good: readings with their values and units; the header reached the device.
    let t = eventually(15, "the temperature reading", || {
        reading(&agent, "http:weather:temperature")
    });
    assert_eq!(t["value"], 21.5, "{t}");
    assert_eq!(t["unit"], "celsius", "{t}");
    let h = eventually(15, "humidity", || reading(&agent, "http:weather:humidity"));
    assert_eq!(h["value"], 40.0, "numeric text is a number: {h}");
    let r = eventually(15, "rain", || reading(&agent, "http:weather:raining"));
    assert_eq!(r["value"], false, "{r}");
    assert_eq!(device.auth.lock().unwrap().as_deref(), Some(SECRET));
    let w = node_when(&agent, "weather", "weather running", |n| {
        n["state"] == "running"
    });
    assert_eq!(w["kind"], "http");
    // Nothing listens on the other source's port.
    let g = node_when(&agent, "gone", "gone degraded", |n| {
        n["state"] == "degraded"
    });
    assert!(
        g["reason"].as_str().unwrap().contains("cannot reach"),
        "{g}"
    );
    assert!(counter(&g, "unreachable") >= 1, "{g}");

    // Slow (beyond the 2s timeout): degraded, and health stays quick meanwhile.
    device.set(Mode::Slow(Duration::from_secs(4)));
    let mut slowest = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(15);
    let w = loop {
        let t0 = Instant::now();
        let (code, body) = get(&agent.url("/api/health")).expect("health answers");
        slowest = slowest.max(t0.elapsed());
        assert_eq!((code, &body["status"]), (200, &Value::from("ok")), "{body}");
        let (_, s) = get(&agent.url("/api/status")).unwrap();
        let n = node(&s, "weather");
        if n["state"] == "degraded" && counter(&n, "timeouts") >= 2 {
            break n;
        }
        assert!(Instant::now() < deadline, "no timeout reported: {n}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        w["reason"]
            .as_str()
            .unwrap()
            .contains("no complete answer within 2s"),
        "{w}"
    );
    assert!(
        slowest < Duration::from_millis(1000),
        "health took {slowest:?} while the device was slow"
    );

    // An error status, several polls long: degraded with the status, logged once.
    device.set(Mode::Status500);
    let w = node_when(&agent, "weather", "three 500s", |n| {
        counter(n, "http_errors") >= 3
    });
    assert_eq!(w["state"], "degraded");
    assert_eq!(w["reason"], "HTTP status 500", "{w}");
    assert_eq!(
        agent
            .log()
            .matches("http source 'weather': HTTP status 500")
            .count(),
        1,
        "{}",
        agent.log()
    );

    // A body that is not JSON.
    device.set(Mode::Body("{\"main\": {\"temp\": 2"));
    let w = node_when(&agent, "weather", "not JSON", |n| {
        counter(n, "not_json") >= 1
    });
    assert!(
        w["reason"]
            .as_str()
            .unwrap()
            .contains("the answer is not JSON"),
        "{w}"
    );

    // An answer beyond the body bound.
    device.set(Mode::Huge);
    let w = node_when(&agent, "weather", "too large", |n| {
        counter(n, "too_large") >= 1
    });
    assert_eq!(w["reason"], "the answer is larger than 64 KiB", "{w}");

    // A pointer that matches nothing: the other values still arrive.
    device.set(Mode::Good(NO_HUMIDITY));
    let w = node_when(&agent, "weather", "a missing value", |n| {
        counter(n, "missing") >= 1
    });
    assert_eq!(
        w["reason"], "weather:humidity: /main/humidity matches nothing in the answer",
        "{w}"
    );
    eventually(15, "the temperature of the partial answer", || {
        (reading(&agent, "http:weather:temperature")?["value"] == 22.0).then_some(())
    });

    // Good again: recovers by itself, with the new values.
    device.set(Mode::Good(GOOD_AGAIN));
    let w = node_when(&agent, "weather", "recovered", |n| n["state"] == "running");
    assert!(w["reason"].is_null(), "{w}");
    eventually(15, "the new values", || {
        let t = reading(&agent, "http:weather:temperature")?;
        let r = reading(&agent, "http:weather:raining")?;
        (t["value"] == 23.0 && r["value"] == true).then_some(())
    });
    let status = get(&agent.url("/api/status")).unwrap().1;
    let ids: Vec<&str> = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(ids.contains(&"http:weather:temperature"), "{ids:?}");

    let (exit, _, log) = agent.terminate();
    assert!(exit.success(), "{log}");
    assert!(
        log.contains("http source 'weather': answering again"),
        "{log}"
    );
    assert!(!log.contains("sekrit"), "a header value was logged: {log}");
}

#[test]
fn pipeline_check_explains_bad_http_parameters() {
    let dir = TempDir::new("http-source-check");
    let good = pipeline(8080, 8081);
    for (from, to, expect) in [
        (
            "url = \"http://127.0.0.1:8080/data.json\"",
            "url = \"https://api.example.com/weather\"",
            "TLS, which this build leaves out",
        ),
        (
            "url = \"http://127.0.0.1:8080/data.json\"",
            "url = \"weather station\"",
            "is not a URL",
        ),
        (
            "temperature = \"/main/temp\"",
            "temperature = \"main/temp\"",
            "must start with /",
        ),
    ] {
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, good.replace(from, to)).unwrap();
        let (code, _, err) = run_cli(&["pipeline", "check", bad.to_str().unwrap()], &[]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(expect), "{to}: {err}");
        assert!(err.contains("bad.toml:"), "{err}");
    }
    let ok = dir.path().join("ok.toml");
    std::fs::write(&ok, &good).unwrap();
    let (code, _, err) = run_cli(&["pipeline", "check", ok.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn plugins_list_shows_the_http_source_and_its_parameters() {
    let (code, out, err) = run_cli(&["plugins", "list", "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let all: Value = serde_json::from_str(&out).unwrap();
    let k = all
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "source" && k["name"] == "http")
        .unwrap_or_else(|| panic!("no http source in {out}"));
    assert_eq!(k["status"], "built in");
    let params: Vec<&str> = k["params"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for p in ["url", "values", "units", "timeout", "headers", "every"] {
        assert!(params.contains(&p), "{p} missing from {params:?}");
    }
}

/// The adaptive stage's feedback reaches the source: calm values are polled less often.
#[test]
fn the_adaptive_stage_slows_the_polling_of_calm_values() {
    let dir = TempDir::new("http-source-adaptive");
    let device = Device::start(Mode::Good(GOOD));
    let port = free_port();
    let pipeline = format!(
        r#"[[source]]
name = "weather"
kind = "http"
every = "200ms"
url = "http://127.0.0.1:{}/data.json"
values = {{ temperature = "/main/temp", humidity = "/main/humidity" }}

[[stage]]
name = "pace"
kind = "adaptive"
from = ["weather"]
window = 2
hysteresis = 1
min = "200ms"
max = "800ms"

[[sink]]
name = "store"
kind = "store"
from = ["pace"]
"#,
        device.port
    );
    let cfg = write_config(dir.path(), port, &pipeline);
    let agent = Agent::start(&cfg, port, &[]);
    let intervals = || -> Option<(u64, Vec<String>)> {
        let (_, s) = get(&agent.url("/api/status")).ok()?;
        let polls = node(&s, "weather")["counters"]["polls"].as_u64()?;
        let iv = s["sources"]
            .as_array()?
            .iter()
            .filter(|x| {
                x["id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("http:weather:"))
            })
            .filter_map(|x| x["interval"].as_str().map(str::to_string))
            .collect();
        Some((polls, iv))
    };
    eventually(20, "both values at the longest interval", || {
        let (_, iv) = intervals()?;
        (iv == ["800ms", "800ms"]).then_some(())
    });
    let (before, _) = intervals().unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let (after, _) = intervals().unwrap();
    // 800ms apart: about 5 polls in 4 s (20 at the starting 200ms).
    assert!(
        (3..=8).contains(&(after - before)),
        "{} polls in 4 s at 800ms",
        after - before
    );
    let (exit, _, log) = agent.terminate();
    assert!(exit.success(), "{log}");
}

/// A device that hangs does not hold up a stop: the agent exits while a poll is in flight.
#[test]
fn a_poll_in_flight_does_not_delay_shutdown() {
    let dir = TempDir::new("http-source-stop");
    let device = Device::start(Mode::Slow(Duration::from_secs(30)));
    let port = free_port();
    let pipeline = format!(
        r#"[[source]]
name = "hung"
kind = "http"
every = "1s"
timeout = "20s"
url = "http://127.0.0.1:{}/"
values = {{ x = "/x" }}

[[sink]]
name = "store"
kind = "store"
from = ["hung"]
"#,
        device.port
    );
    let cfg = write_config(dir.path(), port, &pipeline);
    let agent = Agent::start(&cfg, port, &[]);
    node_when(&agent, "hung", "a poll in flight", |n| {
        n["counters"]["polls"].as_u64() == Some(1)
    });
    let (exit, took, log) = agent.terminate();
    assert!(exit.success(), "{log}");
    assert!(
        took < Duration::from_secs(5),
        "stopping took {took:?} with a poll in flight"
    );
}
