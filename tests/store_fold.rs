//! The store's head folded into the per-source table while the real binary is killed
//! (`kill -9`) at random moments: every reading the agent reported stored is there after
//! a restart exactly once, through folds interrupted at any transaction. Readings come
//! from another node over a real mosquitto, 200 sources a batch, with `[store]
//! head_rows` small enough that nearly every commit is followed by a fold.
#![cfg(feature = "mqtt")]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::broker::{Broker, MQTT_TO_STORE as INGEST, Subscriber};
use common::*;

const SOURCES: usize = 200;
const ROUNDS: u64 = 12;

/// Batch `b`: one reading per source, valued `b`, stamped `b` ms after a fixed time (so
/// every batch's rows are distinct and within the last hour).
fn batch(b: u64, t0_ms: u64) -> Vec<u8> {
    let secs = (t0_ms + b) as f64 / 1000.0;
    let items: Vec<String> = (0..SOURCES)
        .map(|i| format!(r#"{{"source":"f{i}","value":{b},"unit":"u"}}"#))
        .collect();
    format!(
        r#"{{"node":"far","timestamp":{secs:.3},"readings":[{}]}}"#,
        items.join(",")
    )
    .into_bytes()
}

/// The value of the last source's newest stored reading.
fn latest_value(agent: &Agent) -> Option<u64> {
    match get(&agent.url("/api/readings/far:f199")) {
        Ok((200, r)) => r["value"].as_f64().map(|v| v as u64),
        _ => None,
    }
}

/// The values stored for source `f<i>`, counted.
fn values_of(agent: &Agent, i: usize) -> BTreeMap<u64, u32> {
    let (code, h) = get(&agent.url(&format!(
        "/api/readings/far:f{i}/history?minutes=600&limit=100000"
    )))
    .unwrap();
    assert_eq!(code, 200, "{h}");
    let mut seen = BTreeMap::new();
    for r in h["readings"].as_array().unwrap() {
        *seen.entry(r["value"].as_f64().unwrap() as u64).or_insert(0) += 1;
    }
    seen
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn kill_9_during_folds_loses_and_duplicates_nothing_stored() {
    let dir = TempDir::new("store-fold");
    let broker = Broker::start(dir.path());
    let port = free_port();
    let extra = format!(
        "{}[store]\nhead_rows = 256\n",
        mqtt_section(
            broker.port,
            "max_sources_per_node = 1000\nclean_session = true\n"
        )
    );
    let cfg = write_config_extra(dir.path(), port, INGEST, &extra);
    let other = Subscriber::new(broker.port, "far", &["nothing/here"]);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("store_fold seed {seed}");
    let mut rng = XorShift(seed);
    let t0_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 10 * 60 * 1000;
    let mut next = 0u64; // batches 0..next were sent
    let mut in_flight = Vec::new(); // batches sent just before a kill
    let mut folds = 0u64;
    for round in 0..ROUNDS {
        let agent = Agent::start(&cfg, port, &[]);
        wait_mqtt_connected(&agent);
        // A few batches, each waited for until the agent reports its last reading
        // stored (a message's readings are committed in order).
        for _ in 0..2 + rng.next() % 5 {
            other.publish("smollama/far/readings", &batch(next, t0_ms), false);
            let end = Instant::now() + Duration::from_secs(20);
            while latest_value(&agent) != Some(next) {
                assert!(
                    Instant::now() < end,
                    "round {round}: batch {next} not stored"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            next += 1;
        }
        folds += status(&agent)["store"]["folds"].as_u64().unwrap_or(0);
        // One more, and the kill a few milliseconds later: in its commit, in the fold
        // after it, or between the fold's transactions.
        other.publish("smollama/far/readings", &batch(next, t0_ms), false);
        in_flight.push(next);
        next += 1;
        std::thread::sleep(Duration::from_micros(rng.next() % 15_000));
        // SAFETY: a plain kill(2) of the child this test started.
        unsafe { libc::kill(agent.child.id() as i32, libc::SIGKILL) };
        drop(agent); // reaps it
    }
    assert!(folds > 0, "no fold ran before a kill");
    let agent = Agent::start(&cfg, port, &[]);
    for i in [0, 1, 127, 128, 199] {
        let seen = values_of(&agent, i);
        for b in (0..next).filter(|b| !in_flight.contains(b)) {
            assert_eq!(seen.get(&b), Some(&1), "f{i}: batch {b} stored {seen:?}");
        }
        // A batch sent just before a kill: there at most once.
        for (b, n) in &seen {
            assert!(*b < next && *n == 1, "f{i}: batch {b} stored {n} times");
        }
    }
    let s = status(&agent);
    let rows = s["store"]["readings"].as_u64().unwrap();
    let acked = next - in_flight.len() as u64;
    assert!(
        rows >= acked * SOURCES as u64 && rows <= next * SOURCES as u64,
        "{rows} rows for {acked} stored and {} in-flight batches of {SOURCES}",
        in_flight.len()
    );
    let _ = agent.terminate();
}
