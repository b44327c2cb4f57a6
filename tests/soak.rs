//! A leak check: the default pipeline, MQTT connected to a real mosquitto, a question a
//! minute answered through the Ollama stand-in (`common/fake_ollama.rs`, a real model
//! cannot run here), and the observation loop at its fastest, for
//! `SMOLLAMA_TEST_SOAK_MINUTES` (10 by default); RSS, open file descriptors, threads and
//! the store's file sampled each minute. After three minutes of warm-up the heap,
//! descriptors and threads stay flat, and the store stays within what retention allows
//! (a day of readings raw, the sync log up to `[sync] max_log_mb`). Slow: it runs only with
//! `SMOLLAMA_TEST_SLOW=1` (a `SMOLLAMA_TEST_` name: the binary refuses any other
//! `SMOLLAMA_` variable it does not know, as a mistyped setting); the hour is recorded in
//! docs/reliability.md.

mod common;
#[path = "common/fake_ollama.rs"]
mod fake_ollama;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::*;
use fake_ollama::{FakeOllama, Step};
use serde_json::json;

const MODEL: &str = "gemma4:e2b";
const OBSERVATION: &str = r#"{"observations": [{"text": "Uptime grows steadily", "type": "status", "confidence": 0.9, "related_sources": ["system:uptime"]}], "memories": [{"fact": "This node reports uptime", "confidence": 0.7}]}"#;

/// One minute's sample.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rss_kb: u64,
    /// Of which anonymous (the heap; the rest is the binary's pages and the store's map).
    anon_kb: u64,
    fds: u64,
    threads: u64,
    /// The store's file, and of it the sync log (bounded by `[sync] max_log_mb`).
    store_file: u64,
    sync_log: u64,
}

/// POST a question, the error instead of a panic when it gets no answer in 60 s.
fn ask(agent: &Agent, body: &str) -> Result<(u16, serde_json::Value), String> {
    let http = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut r = http
        .post(&agent.url("/api/ask"))
        .header("Content-Type", "application/json")
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send(body)
        .map_err(|e| e.to_string())?;
    let code = r.status().as_u16();
    let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
    Ok((
        code,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    ))
}

fn sample(agent: &Agent) -> Sample {
    let pid = agent.child.id();
    let s = get(&agent.url("/api/status")).unwrap().1;
    Sample {
        rss_kb: rss_kb(pid),
        anon_kb: proc_status(pid, "RssAnon:"),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count() as u64,
        threads: proc_status(pid, "Threads:"),
        store_file: s["store"]["file_bytes"].as_u64().unwrap_or(0),
        sync_log: s["sync"]["log_bytes"].as_u64().unwrap_or(0),
    }
}

#[test]
fn ten_minutes_of_everything_leak_nothing() {
    if std::env::var("SMOLLAMA_TEST_SLOW").as_deref() != Ok("1") {
        eprintln!("skipped: the soak runs with SMOLLAMA_TEST_SLOW=1");
        return;
    }
    let minutes: u64 = std::env::var("SMOLLAMA_TEST_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10)
        .max(5);
    let dir = TempDir::new("soak");
    let broker = Broker::start(dir.path());
    let ollama = Arc::new(FakeOllama::start(&[MODEL, "all-minilm"]));
    let port = free_port();
    let default = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pipelines/default.toml"
    ))
    .unwrap();
    let cfg = write_config_extra(
        dir.path(),
        port,
        &default,
        &format!(
            "{}\n[ollama]\nhost = \"127.0.0.1\"\nport = {}\nmodel = \"{MODEL}\"\nretries = 0\n\n\
             [memory]\nembedding_model = \"all-minilm\"\nobserve_min = \"100ms\"\nobserve_max = \"1s\"\n",
            mqtt_section(broker.port, ""),
            ollama.port()
        ),
    );
    let agent = Agent::start(&cfg, port, &[]);
    eventually(15, "connected", || {
        let s = get(&agent.url("/api/status")).ok()?.1;
        (s["connections"]["mqtt"]["state"] == "connected").then_some(())
    });
    // Keeps the stand-in's script topped up: every chat (observation or question) gets a
    // well-formed observation answer.
    let stop = Arc::new(AtomicBool::new(false));
    let (o2, s2) = (ollama.clone(), stop.clone());
    // Filled before the first question, which would otherwise race the feeder's start.
    while ollama.steps_left() < 8 {
        ollama.push(Step::Text(OBSERVATION.into()));
    }
    let feeder = std::thread::spawn(move || {
        while !s2.load(Ordering::SeqCst) {
            while o2.steps_left() < 8 {
                o2.push(Step::Text(OBSERVATION.into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });

    let start = Instant::now();
    let mut samples = Vec::new();
    for minute in 1..=minutes {
        let body = json!({ "question": format!("minute {minute}: how is the node?") }).to_string();
        let (code, a) = ask(&agent, &body).unwrap_or_else(|e| {
            let log = agent.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            let status = get(&agent.url("/api/status")).map(|s| s.1.to_string());
            panic!(
                "minute {minute}: the question got no answer: {e}\nstatus: {status:?}\nlog (newest first):\n{}",
                tail.join("\n")
            )
        });
        assert_eq!(code, 200, "minute {minute}: {a}");
        let next = start + Duration::from_secs(60 * minute);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let s = sample(&agent);
        eprintln!("soak minute {minute}: {s:?}");
        samples.push(s);
    }
    stop.store(true, Ordering::SeqCst);
    feeder.join().unwrap();
    let st = get(&agent.url("/api/status")).unwrap().1;
    let observations = st["connections"]["ollama"].clone();

    // Warm-up: bounded buffers (the event ring, recent messages, the allocator's pools)
    // fill in the first minutes. RSS also counts the binary's pages as code paths are
    // first run and the store's map as the file grows, so the heap is what is held flat.
    let warm = samples[2];
    let last = *samples.last().unwrap();
    assert!(
        last.anon_kb <= warm.anon_kb + 512,
        "the heap grew from {} to {} KiB: {samples:?}",
        warm.anon_kb,
        last.anon_kb
    );
    assert!(
        samples.iter().all(|s| s.rss_kb < 64 * 1024),
        "RSS reached the unit's MemoryMax=64M: {samples:?}"
    );
    assert!(last.fds <= warm.fds + 2, "descriptors leak: {samples:?}");
    assert!(
        last.threads <= warm.threads + 1,
        "threads leak: {samples:?}"
    );
    // The store grows with what retention keeps: readings for a day raw (a few KiB an
    // hour here) and the sync log up to its bound, which the fastest observation loop
    // fills (an entry per reinforcement); so the log stays within its bound and the file
    // within twice that (LMDB's copy-on-write pages) plus room for the rest.
    let max_log = st["sync"]["max_log_bytes"].as_u64().unwrap();
    for s in &samples {
        assert!(
            s.sync_log <= max_log,
            "the sync log past its bound: {samples:?}"
        );
        assert!(
            s.store_file <= 2 * max_log + 16 * 1024 * 1024,
            "the store file past what retention allows: {samples:?}"
        );
    }
    let (status, _, log) = agent.terminate();
    assert!(status.success(), "{log}");
    eprintln!("soak done: {samples:?}\nollama: {observations}");
}
