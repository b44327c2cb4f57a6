//! Memory bounded by bytes, not by message size (issue 14, item 2), against a real mosquitto
//! and the real binary: the recent messages kept for the agent stay within `[mqtt]
//! recent_max_kb` whatever the payloads; a long history is streamed, not built whole
//! (100,000 readings of one source fetched over HTTP, with the process's anonymous memory,
//! the heap, staying within 1 MiB of where it was; LMDB's pages are file-backed).
#![cfg(feature = "mqtt")]

mod common;

use std::time::Duration;

use common::broker::{Broker, MQTT_TO_STORE as INGEST, Subscriber};
use common::*;

/// The bound documented in docs/benchmarks.md: what a history answer of any length may
/// add to the heap (one page of rows and its buffer, plus the allocator's slack).
const BOUND_KB: u64 = 1024;

#[test]
fn a_history_of_100000_readings_is_streamed_within_a_small_memory_bound() {
    let dir = TempDir::new("http-history-stream");
    let broker = Broker::start(dir.path());
    let port = free_port();
    let cfg = write_config_extra(dir.path(), port, INGEST, &mqtt_section(broker.port, ""));
    let agent = Agent::start(&cfg, port, &[]);
    eventually(10, "connected", || {
        let s = get(&agent.url("/api/status")).ok()?.1;
        (s["connections"]["mqtt"]["state"] == "connected").then_some(())
    });
    let other = Subscriber::new(broker.port, "history", &["nothing/here"]);
    // 100,000 readings of one source, 10 ms apart, over the last 20 minutes.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = now - 1200.0;
    for b in 0..20 {
        let items: Vec<String> = (0..5000)
            .map(|k| {
                let i = b * 5000 + k;
                format!(
                    r#"{{"source":"t","value":{i},"ts":{:.3}}}"#,
                    start + i as f64 * 0.01
                )
            })
            .collect();
        let payload = format!(r#"{{"node":"h","readings":[{}]}}"#, items.join(","));
        other.publish("smollama/h/readings", payload.as_bytes(), false);
    }
    eventually(60, "100,000 readings stored", || {
        let s = get(&agent.url("/api/status")).ok()?.1;
        (s["store"]["readings_written"] == 100_000).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let pid = agent.child.id();
    let url = agent.url("/api/readings/h:t/history?minutes=60&limit=100000");
    // A first answer warms what any answer needs (the allocator's arenas, LMDB's reader
    // slot); the bound is on what an answer keeps or takes beyond that.
    let first = ureq::get(&url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let before = proc_status(pid, "RssAnon:");
    let mut resp = ureq::get(&url).call().unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .unwrap();
    let after = proc_status(pid, "RssAnon:");
    assert_eq!(body, first, "the same answer twice");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["count"], 100_000);
    assert_eq!(v["resolution"], "raw");
    let rows = v["readings"].as_array().unwrap();
    assert_eq!(rows.len(), 100_000);
    // Newest first, every reading once.
    assert_eq!(rows[0]["value"], 99_999.0);
    assert_eq!(rows[99_999]["value"], 0.0);
    assert_eq!(v["statistics"]["min"], 0.0);
    assert_eq!(v["statistics"]["max"], 99_999.0);
    eprintln!(
        "history: {} bytes streamed; RssAnon {before} -> {after} KiB",
        body.len()
    );
    assert!(
        body.len() > 4 << 20,
        "the answer is larger than the bound it must stay within"
    );
    assert!(
        after <= before + BOUND_KB,
        "a {} byte answer took the heap from {before} to {after} KiB",
        body.len()
    );
}

#[test]
fn recent_messages_for_the_agent_stay_within_their_byte_bound() {
    let dir = TempDir::new("mqtt-recent-bytes");
    let broker = Broker::start(dir.path());
    let port = free_port();
    let pipeline = INGEST.replace("smollama/+/readings", "sensors/#");
    let cfg = write_config_extra(
        dir.path(),
        port,
        &pipeline,
        &mqtt_section(broker.port, "max_payload_kb = 128\nrecent_max_kb = 256\n"),
    );
    let agent = Agent::start(&cfg, port, &[]);
    let mqtt = || get(&agent.url("/api/status")).unwrap().1["connections"]["mqtt"].clone();
    eventually(10, "connected", || {
        (mqtt()["state"] == "connected").then_some(())
    });
    let other = Subscriber::new(broker.port, "big-payloads", &["nothing/here"]);
    // 100 KB payloads on 50 topics, 4 each: 20 MB through a buffer of 256 KiB.
    let payload = vec![b'x'; 100 * 1024];
    for i in 0..200 {
        other.publish(&format!("sensors/big/{}", i % 50), &payload, false);
    }
    let m = eventually(30, "200 messages in", || {
        let m = mqtt();
        (m["messages_in"] == 200).then_some(m)
    });
    let held = m["recent_bytes"].as_u64().unwrap();
    eprintln!("recent messages: {held} bytes held after 200 of 100 KB");
    assert!(held > 0, "{m}");
    assert!(held <= 256 * 1024, "{held} bytes held: {m}");
}
