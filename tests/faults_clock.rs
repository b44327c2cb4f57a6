//! The wall clock stepped under the real binary: Debian's libfaketime (`LD_PRELOAD`,
//! `FAKETIME_TIMESTAMP_FILE` re-read on every call with `FAKETIME_NO_CACHE=1`) stands in
//! for a clock that NTP steps, or that a Pi without a real-time clock starts in 1970.
//! Only the wall clock moves (`FAKETIME_DONT_FAKE_MONOTONIC=1`), as on a real system.
//!
//! - stepped back an hour, then forward a day, while running: no reading lost, age-off
//!   deletes nothing early (readings stamped 6.5 days ago, under the default 7-day
//!   `raw_for`, survive the forward day), the outbox keeps its order (the broker gets
//!   every message, uptime never going back), and the observation loop neither stops for
//!   the hour nor fires a storm after the day;
//! - a boot with the clock in 1970 until "NTP" sets it: status says the clock is not set,
//!   the readings taken meanwhile are kept (not aged off as 56 years old when the clock
//!   jumps) and then moved to their true times (the history shows them where they
//!   happened, none lost or doubled, in the order they were taken, their rollups too;
//!   status says how many), and the observation loop runs on, once per interval.

mod common;
#[path = "common/fake_ollama.rs"]
mod fake_ollama;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::broker::{Broker, Subscriber};
use common::*;
use fake_ollama::{FakeOllama, Step};
use serde_json::Value;

const MODEL: &str = "gemma4:e2b";
const OBSERVATION: &str = r#"{"observations": [{"text": "Uptime grows steadily", "type": "status", "confidence": 0.9, "related_sources": ["system:uptime"]}], "memories": []}"#;

/// Readings every 100 ms through the default retention (7 days raw, age-off every
/// second here), stored and published in batches of 5 s (so a lost message is a gap of
/// seconds in uptime).
const PIPELINE: &str = r#"
[[source]]
name = "system"
kind = "system"
every = "100ms"
metrics = ["uptime", "load_avg"]

[[stage]]
name = "keep"
kind = "retention"
from = ["system"]
raw_for = "7d"
prune_every = "1s"

[[sink]]
name = "store"
kind = "store"
from = ["keep"]

[[sink]]
name = "publish"
kind = "mqtt"
from = ["system"]
batch_every = "5s"
"#;

fn libfaketime() -> PathBuf {
    for arch in [
        "x86_64-linux-gnu",
        "aarch64-linux-gnu",
        "arm-linux-gnueabihf",
    ] {
        let p = PathBuf::from(format!("/usr/lib/{arch}/faketime/libfaketimeMT.so.1"));
        if p.exists() {
            return p;
        }
    }
    panic!(
        "libfaketime is not installed (Debian: apt-get install faketime; ./scripts/test installs it as root)"
    );
}

/// The agent's clock: an offset from the real one, in seconds, that the test moves.
struct FakeClock(PathBuf);

impl FakeClock {
    fn new(dir: &Path, offset_s: i64) -> FakeClock {
        let c = FakeClock(dir.join("faketime"));
        c.set(offset_s);
        c
    }

    fn set(&self, offset_s: i64) {
        // Written whole then renamed: the agent re-reads it on every clock call.
        let tmp = self.0.with_extension("tmp");
        std::fs::write(&tmp, format!("{offset_s:+}\n")).unwrap();
        std::fs::rename(&tmp, &self.0).unwrap();
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LD_PRELOAD", libfaketime().display().to_string()),
            ("FAKETIME_TIMESTAMP_FILE", self.0.display().to_string()),
            ("FAKETIME_NO_CACHE", "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
        ]
    }
}

fn start(cfg: &Path, port: u16, clock: &FakeClock) -> Agent {
    let env = clock.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Agent::start_env(cfg, port, &[], &env)
}

fn config(dir: &Path, port: u16, broker: u16, ollama: &FakeOllama) -> PathBuf {
    write_config_extra(
        dir,
        port,
        PIPELINE,
        &format!(
            "{}\n[ollama]\nhost = \"127.0.0.1\"\nport = {}\nmodel = \"{MODEL}\"\nretries = 0\n\n\
             [memory]\nembedding_model = \"all-minilm\"\nobserve_min = \"1s\"\nobserve_max = \"2s\"\n",
            mqtt_section(broker, ""),
            ollama.port()
        ),
    )
}

/// Keeps an observation answer scripted, so every loop run gets one.
fn feed(ollama: &Arc<FakeOllama>) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (o, s) = (ollama.clone(), stop.clone());
    let t = std::thread::spawn(move || {
        while !s.load(Ordering::SeqCst) {
            while o.steps_left() < 4 {
                o.push(Step::Text(OBSERVATION.into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    (stop, t)
}

fn observation_runs(ollama: &FakeOllama) -> usize {
    ollama.bodies("/api/chat").len()
}

/// Age-off runs of the retention stage so far (three prunes a run: raw and the default
/// two rollup levels).
fn prunes(agent: &Agent) -> u64 {
    let st = status(agent);
    let keep = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "keep")
        .cloned()
        .unwrap();
    keep["counters"]["prunes_emitted"].as_u64().unwrap() / 3
}

fn store(agent: &Agent) -> Value {
    status(agent)["store"].clone()
}

/// Uptime values in the order the broker delivered them, duplicates (re-sends) removed.
fn uptimes(sub: &Subscriber) -> Vec<f64> {
    let mut v: Vec<f64> = Vec::new();
    for b in sub.on("smollama/test-node/readings") {
        for r in b["readings"].as_array().cloned().unwrap_or_default() {
            if r["source"] == "system:uptime"
                && let Some(x) = r["value"].as_f64()
                && v.last() != Some(&x)
            {
                v.push(x);
            }
        }
    }
    v
}

/// The outbox kept its order and lost nothing: uptime (whole seconds since boot, read
/// ten times a second) never goes back and never skips more than a stall would.
fn check_order(sub: &Subscriber) {
    let v = uptimes(sub);
    assert!(v.len() > 5, "too few readings arrived: {v:?}");
    for w in v.windows(2) {
        assert!(w[1] >= w[0], "out of order: {} after {}: {v:?}", w[1], w[0]);
        assert!(
            w[1] - w[0] <= 2.0,
            "a gap (lost message?): {} -> {}: {v:?}",
            w[0],
            w[1]
        );
    }
}

fn drained(agent: &Agent) {
    eventually(30, "connected, the outbox drained", || {
        let m = status(agent)["connections"]["mqtt"].clone();
        (m["state"] == "connected" && m["outbox"]["messages"] == 0).then_some(())
    });
}

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

#[test]
fn the_clock_stepped_back_an_hour_and_forward_a_day_loses_and_deletes_nothing() {
    let dir = TempDir::new("faults-clock-steps");
    let broker = Broker::start(dir.path());
    let ollama = Arc::new(FakeOllama::start(&[MODEL, "all-minilm"]));
    let port = free_port();
    let cfg = config(dir.path(), port, broker.port, &ollama);

    // Readings stamped 6.5 days ago (a run with the clock there): within raw_for.
    let clock = FakeClock::new(dir.path(), -(6 * DAY + 12 * HOUR));
    let agent = start(&cfg, port, &clock);
    eventually(15, "old readings committed", || {
        (store(&agent)["readings"].as_u64()? > 20).then_some(())
    });
    let (st, _, log) = agent.terminate();
    assert!(st.success(), "{log}");

    clock.set(0);
    let sub = Subscriber::new(broker.port, "clock-sub", &["smollama/test-node/readings"]);
    let agent = start(&cfg, port, &clock);
    // What the earlier run left (this run may have committed its first readings).
    let s = store(&agent);
    let old = s["readings"].as_u64().unwrap() - s["readings_written"].as_u64().unwrap();
    let (stop, feeder) = feed(&ollama);
    eventually(15, "observations running", || {
        (observation_runs(&ollama) >= 2).then_some(())
    });
    drained(&agent);

    // Back an hour; a question then wakes the loop, which plans its next look anew.
    let prunes_before = prunes(&agent);
    clock.set(-HOUR);
    let runs = observation_runs(&ollama);
    let body = serde_json::json!({ "question": "what time is it?" }).to_string();
    let (code, a) = post_auth(&agent.url("/api/ask"), &body, Some(TOKEN), 30);
    assert_eq!(code, 200, "{a}");
    let runs = runs + 1; // the question's own chat
    std::thread::sleep(Duration::from_secs(6));
    let during_back = observation_runs(&ollama) - runs;

    let prunes_back = prunes(&agent) - prunes_before;
    // Forward a day.
    clock.set(DAY);
    let runs = observation_runs(&ollama);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(6));
    let during_fwd = observation_runs(&ollama) - runs;
    let secs = t0.elapsed().as_secs() as usize;
    drained(&agent);
    stop.store(true, Ordering::SeqCst);
    feeder.join().unwrap();

    let s = store(&agent);
    eprintln!(
        "clock steps: {prunes_back} age-off runs and {during_back} observations in the hour \
         back, {during_fwd} observations in the day forward; store {s}"
    );
    assert_eq!(
        s["pruned"], 0,
        "age-off deleted readings that were not old: {s}"
    );
    assert!(
        s["readings"].as_u64().unwrap() >= old + s["readings_written"].as_u64().unwrap(),
        "readings lost: {old} old, then {s}"
    );
    assert_eq!(s["state"], "ok", "{s}");
    check_order(&sub);
    // Age-off (every second) goes on while the clock is an hour behind...
    assert!(
        prunes_back >= 3,
        "age-off stopped when the clock went back: {prunes_back} runs"
    );
    // observe_max is 2 s: so does the observation loop...
    assert!(
        during_back >= 1,
        "the observation loop stopped when the clock went back"
    );
    // ...and runs at most once per observe_min (1 s) after the day forward, plus one.
    assert!(
        during_fwd <= secs + 2,
        "an observation storm: {during_fwd} runs in {secs} s"
    );
    let (st, _, log) = agent.terminate();
    assert!(st.success(), "{log}");
}

/// A source's raw history over the last `minutes` by the agent's clock, oldest first:
/// (time in µs, value).
fn history(agent: &Agent, source: &str, minutes: u64) -> Vec<(i64, f64)> {
    let url = agent.url(&format!(
        "/api/readings/{source}/history?minutes={minutes}&limit=1000000"
    ));
    let (code, h) = get(&url).unwrap();
    assert_eq!(code, 200, "{h}");
    let mut v: Vec<(i64, f64)> = h["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let ts = r["timestamp"].as_str().unwrap();
            let us = smollama::edges::mqtt::payload::parse_iso8601(ts).unwrap();
            (us, r["value"].as_f64().unwrap())
        })
        .collect();
    v.sort_by_key(|r| r.0);
    v
}

/// Rollup buckets of `source` at the finest level (a window past the 7-day raw one):
/// (bucket start in µs, count).
fn rollups(agent: &Agent, source: &str) -> Vec<(i64, u64)> {
    let url = agent.url(&format!(
        "/api/readings/{source}/history?minutes=20000&limit=100000"
    ));
    let (code, h) = get(&url).unwrap();
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["resolution"], "1m", "{h}");
    h["rollups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let ts = r["timestamp"].as_str().unwrap();
            let us = smollama::edges::mqtt::payload::parse_iso8601(ts).unwrap();
            (us, r["count"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn a_boot_in_1970_until_ntp_sets_the_clock_keeps_its_readings_at_their_true_times() {
    let dir = TempDir::new("faults-clock-1970");
    let broker = Broker::start(dir.path());
    let sub = Subscriber::new(broker.port, "epoch-sub", &["smollama/test-node/readings"]);
    let ollama = Arc::new(FakeOllama::start(&[MODEL, "all-minilm"]));
    let port = free_port();
    let cfg = config(dir.path(), port, broker.port, &ollama);
    let real = smollama::clock::now_us() / 1_000_000;
    // 1970-01-01 00:10 UTC, as a Pi without a real-time clock and without
    // fake-hwclock may start.
    let clock = FakeClock::new(dir.path(), -(real - 600));
    let started_real = smollama::clock::now_us();
    let agent = start(&cfg, port, &clock);
    let (stop, feeder) = feed(&ollama);
    eventually(15, "readings committed in 1970", || {
        (store(&agent)["readings"].as_u64()? > 20).then_some(())
    });
    let st = status(&agent);
    assert!(
        st["timestamp"].as_str().unwrap().starts_with("1970-01-01"),
        "the agent runs in 1970: {}",
        st["timestamp"]
    );
    assert_eq!(
        st["clock"]["set"], false,
        "status says the clock is not set: {}",
        st["clock"]
    );
    drained(&agent);
    let before = store(&agent)["readings"].as_u64().unwrap();
    let in_1970 = history(&agent, "system:uptime", 60);
    assert!(
        in_1970.len() > 10 && in_1970[0].0 < 86_400_000_000,
        "uptime readings stamped in 1970: {in_1970:?}"
    );

    // "NTP" answers.
    clock.set(0);
    let runs = observation_runs(&ollama);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let after_ntp = observation_runs(&ollama) - runs;
    let secs = t0.elapsed().as_secs() as usize;
    drained(&agent);
    stop.store(true, Ordering::SeqCst);
    feeder.join().unwrap();

    let st = status(&agent);
    let s = st["store"].clone();
    eprintln!(
        "1970 boot: {after_ntp} observations in {secs} s after NTP; clock {}; store {s}",
        st["clock"]
    );
    assert_eq!(st["clock"]["set"], true, "{}", st["clock"]);
    assert_eq!(
        s["pruned"], 0,
        "the readings taken before NTP were aged off: {s}"
    );
    assert!(
        s["readings"].as_u64().unwrap() > before,
        "{before} then {s}"
    );
    assert!(after_ntp >= 1, "the observation loop stopped");
    assert!(
        after_ntp <= secs + 2,
        "an observation storm: {after_ntp} runs in {secs} s"
    );
    check_order(&sub);

    // The 1970 readings move to their true times: the last ten minutes of history hold
    // every reading in the store, the oldest where the agent really started.
    let (hist, s) = eventually(40, "every reading within the last ten minutes", || {
        let s1 = store(&agent)["readings"].as_u64()?;
        let up = history(&agent, "system:uptime", 10);
        let load = history(&agent, "system:load_avg", 10);
        let s2 = store(&agent);
        let n = (up.len() + load.len()) as u64;
        (s1 <= n && n <= s2["readings"].as_u64()? && st_restamped(&agent) > 0).then_some((up, s2))
    });
    let restamped = st_restamped(&agent);
    eprintln!(
        "1970 boot: {restamped} readings re-stamped, {} uptime readings in the last ten minutes, store {s}",
        hist.len()
    );
    assert!(
        restamped >= before,
        "{restamped} re-stamped, {before} stored before NTP"
    );
    // None lost, none doubled: the store holds what this run wrote.
    let (n, written) = (
        s["readings"].as_u64().unwrap() as i64,
        s["readings_written"].as_u64().unwrap() as i64,
    );
    assert!(
        (n - written).abs() <= 20,
        "{n} readings in the store, {written} written"
    );
    let first = hist[0].0;
    assert!(
        first >= started_real - 2_000_000 && first <= started_real + 15_000_000,
        "the first reading at {first}, the agent started at {started_real}"
    );
    // In the order they were taken: uptime never goes back across the step.
    for w in hist.windows(2) {
        assert!(
            w[1].1 >= w[0].1 && w[1].1 - w[0].1 <= 2.0,
            "uptime {} at {} after {} at {}",
            w[1].1,
            w[1].0,
            w[0].1,
            w[0].0
        );
    }
    // Their rollups too: no bucket left in 1970, the moved readings counted.
    let buckets = rollups(&agent, "system:uptime");
    assert!(
        buckets.iter().all(|b| b.0 >= started_real - 60_000_000),
        "rollup buckets left in 1970: {buckets:?}"
    );
    let counted: u64 = buckets.iter().map(|b| b.1).sum();
    assert!(
        counted >= in_1970.len() as u64 && counted <= hist.len() as u64,
        "{counted} readings in rollups, {} taken in 1970, {} in all: {buckets:?}",
        in_1970.len(),
        hist.len()
    );
    let (st, _, log) = agent.terminate();
    assert!(st.success(), "{log}");
}

fn st_restamped(agent: &Agent) -> u64 {
    status(agent)["clock"]["restamped"].as_u64().unwrap_or(0)
}
