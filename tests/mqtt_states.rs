//! Retained state messages across a broker outage and a crash, through the real binary,
//! a real mosquitto and a relay the test cuts (the outage is seen only by the agent; the
//! test's subscriber stays connected to the broker). A state is its topic's current
//! value: after the outage the broker gets the newest, not a replay of every stale one;
//! readings batches stay durable QoS 1, also across `kill -9`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::broker::{Broker, Relay, Subscriber};
use common::*;
use serde_json::Value;

const STATE: &str = "smollama/test-node/state/file/probe";
const READINGS: &str = "smollama/test-node/readings";

/// A number from a file the test writes, every 100 ms; the filter passes changes only
/// (and a source's first reading), to a state sink and a one-reading-per-batch sink.
fn pipeline(value: &Path) -> String {
    format!(
        r#"[[source]]
name = "probe"
kind = "file"
every = "100ms"
path = "{}"

[[stage]]
name = "quiet"
kind = "filter"
from = ["probe"]
deadband = {{ probe = 0.5 }}
heartbeat = "1h"

[[sink]]
name = "store"
kind = "store"
from = ["quiet"]

[[sink]]
name = "batch"
kind = "mqtt"
from = ["quiet"]
batch_max = 1

[[sink]]
name = "state"
kind = "mqtt"
format = "state"
from = ["quiet"]
"#,
        value.display()
    )
}

/// Write the file whole (a rename), so the source never reads half a number.
fn write_value(path: &Path, v: u32) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{v}\n")).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Set the value and wait until the source has read it and the sinks have had it.
fn change(agent: &Agent, path: &Path, v: u32) {
    write_value(path, v);
    eventually(10, &format!("file:probe = {v}"), || {
        let (code, r) = get(&agent.url("/api/readings/file:probe")).ok()?;
        (code == 200 && r["value"].as_f64()? == f64::from(v)).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
}

fn states(sub: &Subscriber) -> Vec<f64> {
    sub.on(STATE)
        .iter()
        .filter_map(|s| s["value"].as_f64())
        .collect()
}

fn batched(sub: &Subscriber) -> Vec<f64> {
    sub.on(READINGS)
        .iter()
        .flat_map(|b| b["readings"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["value"].as_f64())
        .collect()
}

fn mqtt(agent: &Agent) -> Value {
    status(agent)["connections"]["mqtt"].clone()
}

#[test]
fn after_an_outage_the_broker_gets_the_newest_state_and_every_batch() {
    let dir = TempDir::new("mqtt-states");
    let broker = Broker::start(dir.path());
    let relay = Relay::start(broker.port);
    let sub = Subscriber::new(broker.port, "states-sub", &[STATE, READINGS]);
    let value = dir.path().join("probe");
    write_value(&value, 1);
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        &pipeline(&value),
        &mqtt_section(relay.port, ""),
    );
    let agent = Agent::start(&cfg, port, &[]);
    eventually(10, "the first state and batch", || {
        (states(&sub) == [1.0] && batched(&sub) == [1.0]).then_some(())
    });
    eventually(10, "the first state acknowledged", || {
        (mqtt(&agent)["states"]["waiting"] == 0).then_some(())
    });
    // A state costs no outbox write: the outbox holds nothing but what is unacknowledged.
    assert_eq!(mqtt(&agent)["outbox"]["messages"], 0);

    relay.cut();
    eventually(10, "disconnected", || {
        (mqtt(&agent)["state"] == "disconnected").then_some(())
    });
    for v in 2..=4 {
        change(&agent, &value, v);
    }
    let m = mqtt(&agent);
    assert_eq!(m["states"]["waiting"], 1, "one state per topic: {m}");
    assert_eq!(m["states"]["replaced"], 2, "{m}");
    assert_eq!(m["outbox"]["messages"], 3, "the batches wait durably: {m}");

    // A crash during the outage: the batches are on disk, the waiting state is not (a
    // newer one replaces it anyway).
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.child.id() as i32, libc::SIGKILL) };
    drop(agent);
    let agent = Agent::start(&cfg, port, &[]);
    // Its first reading (4, the file's value) passes the filter again: a fourth batch.
    eventually(10, "the outbox kept across kill -9", || {
        (mqtt(&agent)["outbox"]["messages"] == 4).then_some(())
    });
    for v in 5..=6 {
        change(&agent, &value, v);
    }
    let before = states(&sub).len();
    assert_eq!(before, 1, "nothing arrived during the outage");

    relay.restore();
    eventually(30, "everything delivered", || {
        let m = mqtt(&agent);
        (m["state"] == "connected" && m["outbox"]["messages"] == 0 && m["states"]["waiting"] == 0)
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    // The newest state, once; none of the four stale ones.
    assert_eq!(states(&sub)[before..], [6.0], "{:?}", states(&sub));
    // Every change went out as a batch, those written before the crash included.
    let mut got = batched(&sub);
    got.dedup();
    assert_eq!(got, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    // The broker's retained state is the newest.
    let late = Subscriber::new(broker.port, "states-late", &[STATE]);
    eventually(10, "the retained state", || {
        (states(&late) == [6.0]).then_some(())
    });
    let (st, _, log) = agent.terminate();
    assert!(st.success(), "{log}");
}
