//! Helpers for integration tests that start the real `smollama` binary as a process.
#![allow(dead_code)]

pub mod broker;
pub mod netns;
pub mod node;
pub mod raw_http;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_smollama");

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "smollama-test-{tag}-{}-{}",
            std::process::id(),
            rand_u64()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(1);
    h.finish()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running agent with captured stderr.
pub struct Agent {
    pub child: Child,
    pub port: u16,
    pub log: Arc<Mutex<String>>,
}

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// Write a config with mock GPIO pins and the given pipeline into `dir`.
pub fn write_config(dir: &Path, port: u16, pipeline: &str) -> PathBuf {
    write_config_extra(dir, port, pipeline, "")
}

/// The same, with more settings appended (e.g. an `[mqtt]` section).
pub fn write_config_extra(dir: &Path, port: u16, pipeline: &str, extra: &str) -> PathBuf {
    write_config_http(dir, port, pipeline, "", extra)
}

/// The same, with more `[http]` keys too (e.g. `max_connections = 8`).
pub fn write_config_http(
    dir: &Path,
    port: u16,
    pipeline: &str,
    http: &str,
    extra: &str,
) -> PathBuf {
    let pipe = dir.join("pipeline.toml");
    std::fs::write(&pipe, pipeline).unwrap();
    let cfg = dir.join("smollama.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[node]
name = "test-node"
data_dir = "{data}"

[http]
bind = "127.0.0.1:{port}"
token = "{TOKEN}"
{http}

[gpio]
backend = "mock"

[[gpio.pins]]
pin = 17
name = "motion"
mode = "input"

[[gpio.pins]]
pin = 22
name = "fan"
mode = "output"

[pipeline]
files = ["{pipe}"]

{extra}
"#,
            data = dir.join("data").display(),
            pipe = pipe.display()
        ),
    )
    .unwrap();
    cfg
}

/// The smallest pipeline: uptime every 200 ms into the store, for tests of questions,
/// tools and edges rather than of readings.
pub const UPTIME_PIPELINE: &str = r#"
[[source]]
name = "system"
kind = "system"
every = "200ms"
metrics = ["uptime"]

[[sink]]
name = "store"
kind = "store"
from = ["system"]
"#;

/// A fast pipeline for tests: system every 200 ms, pins on events, straight into the store
/// through the three stages.
pub const FAST_PIPELINE: &str = r#"
[[source]]
name = "system"
kind = "system"
every = "200ms"
metrics = ["load_avg", "mem_available_mb", "uptime", "cpu_percent"]

[[source]]
name = "pins"
kind = "gpio"
every = "1s"

[[stage]]
name = "quiet"
kind = "filter"
from = ["system", "pins"]
heartbeat = "1s"

[[stage]]
name = "pace"
kind = "adaptive"
from = ["quiet"]
min = "200ms"
max = "1s"

[[stage]]
name = "keep"
kind = "retention"
from = ["pace"]
raw_for = "1d"
rollups = [{ every = "1m", keep = "30d" }]

[[sink]]
name = "store"
kind = "store"
from = ["keep"]
"#;

impl Agent {
    pub fn start(config: &Path, port: u16, extra: &[&str]) -> Agent {
        Agent::start_env(config, port, extra, &[])
    }

    /// Start with extra environment variables (e.g. NOTIFY_SOCKET).
    pub fn start_env(config: &Path, port: u16, extra: &[&str], env: &[(&str, &str)]) -> Agent {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(config).args(extra);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.env_remove("RUST_LOG")
            .env_remove("SMOLLAMA_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start smollama");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let agent = Agent { child, port, log };
        agent.wait_healthy();
        agent
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok((200, _)) = get(&self.url("/api/health")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("agent never became healthy; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM and wait; returns the exit status and how long it took.
    pub fn terminate(mut self) -> (ExitStatus, Duration, String) {
        let t0 = Instant::now();
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50)); // let the log reader finish
                return (st, t0.elapsed(), self.log());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("agent did not exit after SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// A running agent's `/api/status` (panics if it does not answer).
pub fn status(agent: &Agent) -> serde_json::Value {
    get(&agent.url("/api/status")).unwrap().1
}

/// Waits (10 s at most) until the agent reports its broker connection up.
pub fn wait_mqtt_connected(agent: &Agent) {
    eventually(10, "mqtt connected", || {
        (get(&agent.url("/api/status")).ok()?.1["connections"]["mqtt"]["state"] == "connected")
            .then_some(())
    });
}

/// GET returning (status, parsed JSON body).
pub fn get(url: &str) -> Result<(u16, serde_json::Value), String> {
    let mut r = agent().get(url).call().map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
    let json = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    Ok((status, json))
}

/// PUT a JSON body with an optional bearer token.
pub fn put(url: &str, body: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = agent().put(url).header("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut r = req.send(body).unwrap();
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap())
}

/// POST a JSON body, returning (status, parsed JSON body).
pub fn post(url: &str, body: &str) -> (u16, serde_json::Value) {
    let mut r = agent()
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// POST `body` with an optional bearer token, waiting at most `secs` for the answer;
/// returns (status, parsed JSON body or null).
pub fn post_auth(
    url: &str,
    body: &str,
    token: Option<&str>,
    secs: u64,
) -> (u16, serde_json::Value) {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(secs)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut req = agent.post(url).header("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut r = req.send(body).unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// Poll `f` until it returns Some, or panic after `secs`.
pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run the binary to completion with args; returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("SMOLLAMA_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`run_cli`] for a command that must end by itself (e.g. `run` that should refuse to
/// start): waits at most `secs`, then kills it and fails the test rather than hanging.
/// `cwd` is the working directory (`None`: this one); `remove` lists variables to unset.
pub fn run_cli_within(
    secs: u64,
    args: &[&str],
    env: &[(&str, &str)],
    remove: &[&str],
    cwd: Option<&Path>,
) -> (i32, String, String) {
    use std::io::Read;
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("SMOLLAMA_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for k in remove {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let mut child = cmd.spawn().unwrap();
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{args:?} was still running after {secs}s; stderr:\n{}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code().unwrap_or(-1),
        out.join().unwrap(),
        err.join().unwrap(),
    )
}

/// A number field of /proc/<pid>/status (`"VmRSS:"` in KiB, `"Threads:"`).
pub fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A process's resident memory, KiB.
pub fn rss_kb(pid: u32) -> u64 {
    proc_status(pid, "VmRSS:")
}

/// The `[mqtt]` section for a test broker on `port`, reconnecting quickly, plus `extra`.
pub fn mqtt_section(port: u16, extra: &str) -> String {
    format!(
        "[mqtt]\nbroker = \"127.0.0.1\"\nport = {port}\nreconnect_min = \"200ms\"\nreconnect_max = \"1s\"\n{extra}"
    )
}
