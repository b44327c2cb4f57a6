//! The MQTT edge against a real broker (Debian's mosquitto, started per test on a free
//! loopback port) and the real binary. GPIO is the mock backend (no Pi here).

mod common;

use std::time::Duration;

use common::broker::{Broker, Relay, Subscriber, readings_received, readings_stored};
use common::*;
use serde_json::Value;

/// System readings every 100 ms, stored and published: one batch message per reading
/// (QoS 1) and retained state messages.
const PUBLISHING: &str = r#"
[[source]]
name = "system"
kind = "system"
every = "100ms"
metrics = ["uptime", "load_avg"]

[[source]]
name = "pins"
kind = "gpio"

[[source]]
name = "nodes"
kind = "mqtt"
topics = ["smollama/+/readings", "sensors/#"]

[[source]]
name = "json"
kind = "mqtt"
topics = ["devices/+/json"]
pointer = "/sensor/temperature"
unit = "celsius"

[[sink]]
name = "store"
kind = "store"
from = ["system", "pins", "nodes", "json"]

[[sink]]
name = "batch"
kind = "mqtt"
from = ["system"]
batch_max = 1

[[sink]]
name = "state"
kind = "mqtt"
format = "state"
from = ["system", "pins"]
"#;

fn iso_now() -> String {
    smollama::clock::iso8601(smollama::clock::now_us())
}

fn mqtt_status(agent: &Agent) -> Value {
    status(agent)["connections"]["mqtt"].clone()
}

#[test]
fn publishes_the_documented_topics_and_payloads() {
    let dir = TempDir::new("mqtt-contract");
    let broker = Broker::start(dir.path());
    let sub = Subscriber::new(
        broker.port,
        "contract-sub",
        &["smollama/#", "homeassistant/#"],
    );
    let port = free_port();
    let cfg = write_config_extra(dir.path(), port, PUBLISHING, &mqtt_section(broker.port, ""));
    let agent = Agent::start(&cfg, port, &[]);

    // Node status: online, retained.
    eventually(10, "status online", || {
        sub.raw("smollama/test-node/status")
            .contains(&b"online".to_vec())
            .then_some(())
    });
    // The batch topic in the original's edge format.
    let batch = eventually(10, "a batch", || {
        sub.on("smollama/test-node/readings").pop()
    });
    assert_eq!(batch["node"], "test-node");
    assert!(batch["timestamp"].as_f64().unwrap() > 1.7e9);
    let r = &batch["readings"][0];
    assert!(
        r["source"].as_str().unwrap().starts_with("system:"),
        "{batch}"
    );
    assert!(r["value"].is_number());
    assert!(r["unit"].is_string());
    assert!(r["ts"].as_str().unwrap().ends_with("+00:00"), "{r}");
    // Per-source state topics.
    let state = eventually(10, "a state message", || {
        sub.on("smollama/test-node/state/system/uptime").pop()
    });
    assert!(state["value"].is_number());
    assert_eq!(state["unit"], "seconds");
    assert!(state["time"].as_str().unwrap().ends_with("+00:00"));
    let pin = eventually(10, "pin state", || {
        sub.on("smollama/test-node/state/gpio/17").pop()
    });
    assert_eq!(pin["value"], false);
    // State messages are retained: a new subscriber gets the latest at once.
    let late = Subscriber::new(broker.port, "late-sub", &["smollama/test-node/state/#"]);
    eventually(10, "retained state", || {
        late.messages
            .lock()
            .unwrap()
            .iter()
            .any(|(t, _, retained)| t.ends_with("/system/uptime") && *retained)
            .then_some(())
    });

    let m = mqtt_status(&agent);
    assert_eq!(m["state"], "connected", "{m}");
    assert!(m["acked"].as_u64().unwrap() > 0);

    // A clean shutdown says offline.
    let (st, _, log) = agent.terminate();
    assert!(st.success(), "{log}");
    eventually(10, "status offline", || {
        (sub.raw("smollama/test-node/status").last() == Some(&b"offline".to_vec())).then_some(())
    });
}

#[test]
fn ingests_every_accepted_format_and_counts_malformed_payloads() {
    let dir = TempDir::new("mqtt-ingest");
    let broker = Broker::start(dir.path());
    let port = free_port();
    let cfg = write_config_extra(dir.path(), port, PUBLISHING, &mqtt_section(broker.port, ""));
    let agent = Agent::start(&cfg, port, &[]);
    eventually(10, "connected", || {
        (mqtt_status(&agent)["state"] == "connected").then_some(())
    });
    let other = Subscriber::new(broker.port, "other-node", &["nothing/here"]);
    other.publish(
        "smollama/kitchen/readings",
        br#"{"node":"kitchen","timestamp":1795770000.5,"readings":[{"source":"system:cpu_temp","value":48.5,"unit":"celsius","ts":"2026-11-27T10:00:00+00:00"},{"source":"gpio:4","value":true,"unit":"boolean","ts":"2026-11-27T10:00:01+00:00"}]}"#,
        false,
    );
    other.publish("sensors/garden/temp", b"12.25", false);
    other.publish("sensors/garden/door", b"ON", false);
    other.publish(
        "devices/th1/json",
        br#"{"sensor":{"temperature":19.5,"humidity":40}}"#,
        false,
    );
    // The malformed corpus: each is logged at debug, counted per topic and skipped.
    let bad: [&[u8]; 6] = [
        b"not a number",
        b"{\"truncated\":",
        &[0xff, 0xfe, 0x00],
        b"",
        b"NaN",
        b"{\"readings\": 5}",
    ];
    for (i, p) in bad.iter().enumerate() {
        other.publish(&format!("sensors/bad/{i}"), p, false);
    }
    other.publish("devices/th2/json", br#"{"sensor":{}}"#, false);
    other.publish("smollama/broken/readings", br#"{"readings":[1,2]}"#, false);

    let ids = eventually(10, "remote readings stored", || {
        let (_, all) = get(&agent.url("/api/readings")).ok()?;
        let ids: Vec<(String, Value)> = all["readings"]
            .as_array()?
            .iter()
            .map(|r| {
                (
                    r["full_id"].as_str().unwrap().to_string(),
                    r["value"].clone(),
                )
            })
            .collect();
        let want = [
            "kitchen:system:cpu_temp",
            "kitchen:gpio:4",
            "mqtt:sensors/garden/temp",
            "mqtt:sensors/garden/door",
            "mqtt:devices/th1/json",
        ];
        want.iter()
            .all(|w| ids.iter().any(|(i, _)| i == w))
            .then_some(ids)
    });
    let value = |id: &str| ids.iter().find(|(i, _)| i == id).unwrap().1.clone();
    assert_eq!(value("kitchen:system:cpu_temp"), 48.5);
    assert_eq!(value("kitchen:gpio:4"), true);
    assert_eq!(value("mqtt:sensors/garden/temp"), 12.25);
    assert_eq!(value("mqtt:sensors/garden/door"), true);
    assert_eq!(value("mqtt:devices/th1/json"), 19.5);
    // The sender's timestamp is kept.
    let (_, r) = get(&agent.url("/api/readings/kitchen:system:cpu_temp")).unwrap();
    assert_eq!(r["timestamp"], "2026-11-27T10:00:00.000Z");
    assert_eq!(r["unit"], "celsius");
    // Ids with slashes are addressed with the slashes percent-encoded.
    let (_, r) = get(&agent.url("/api/readings/mqtt:devices%2Fth1%2Fjson")).unwrap();
    assert_eq!(r["unit"], "celsius", "the source's configured unit");
    assert_eq!(r["value"], 19.5);

    let m = eventually(10, "malformed counted", || {
        let m = mqtt_status(&agent);
        (m["malformed"].as_u64()? >= 8).then_some(m)
    });
    let by_topic = m["malformed_by_topic"].as_object().unwrap();
    for i in 0..6 {
        assert_eq!(by_topic[&format!("sensors/bad/{i}")], 1, "{m}");
    }
    assert_eq!(by_topic["devices/th2/json"], 1);
    assert_eq!(by_topic["smollama/broken/readings"], 1);
    // Own messages are never ingested (echo guard), and the agent is fine.
    let (_, all) = get(&agent.url("/api/readings")).unwrap();
    assert!(
        !all["readings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["full_id"].as_str().unwrap().starts_with("test-node:")),
        "{all}"
    );
    assert_eq!(get(&agent.url("/api/health")).unwrap().0, 200);
}

/// Every reading stored before `cutoff` (ISO, the moment the producing agent was told to
/// stop) arrived over MQTT, in order per source. Readings after the cutoff belong to the
/// next run and may still be on their way.
fn check_all_arrived_in_order(sub: &Subscriber, agent: &Agent, cutoff: &str) -> (usize, usize) {
    let mut expected = readings_stored(agent, "system:uptime");
    expected.extend(readings_stored(agent, "system:load_avg"));
    expected.retain(|(_, ts)| ts.as_str() < &cutoff[..23]);
    assert!(
        expected.len() > 10,
        "too few readings to compare: {}",
        expected.len()
    );
    // An empty outbox means the broker has every message; the subscriber may still be
    // receiving the backlog (the broker sends it at its own pace), so wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (got, unique) = loop {
        let got = readings_received(sub);
        let mut unique: Vec<(String, String)> = Vec::new();
        for (s, ts) in &got {
            let k = (s.clone(), ts[..23].to_string());
            if !unique.contains(&k) {
                unique.push(k);
            }
        }
        let missing = expected.iter().find(|e| !unique.contains(e));
        match missing {
            None => break (got, unique),
            Some(e) if std::time::Instant::now() > deadline => {
                panic!("reading {e:?} never arrived over MQTT")
            }
            Some(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    // In order per source (duplicates from re-sends allowed).
    for src in ["system:uptime", "system:load_avg"] {
        let ts: Vec<&String> = unique
            .iter()
            .filter(|(s, _)| s == src)
            .map(|(_, t)| t)
            .collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{src} out of order");
    }
    (got.len(), unique.len())
}

#[test]
fn a_broker_outage_loses_nothing() {
    let dir = TempDir::new("mqtt-outage");
    let mut broker = Broker::start(dir.path());
    // smollama reaches the broker through a relay so that, when the broker is back, the
    // test can let its own subscriber reconnect first: messages then never depend on
    // the broker restoring an offline session from disk.
    let relay = Relay::start(broker.port);
    let sub = Subscriber::new(broker.port, "outage-sub", &["smollama/test-node/readings"]);
    let port = free_port();
    let cfg = write_config_extra(dir.path(), port, PUBLISHING, &mqtt_section(relay.port, ""));
    let agent = Agent::start(&cfg, port, &[]);
    eventually(10, "first batches", || {
        (readings_received(&sub).len() > 5).then_some(())
    });

    let connects = sub.connects.load(std::sync::atomic::Ordering::SeqCst);
    relay.cut();
    broker.stop();
    std::thread::sleep(Duration::from_secs(30));
    let during = mqtt_status(&agent);
    assert_eq!(during["state"], "disconnected", "{during}");
    assert!(
        during["outbox"]["messages"].as_u64().unwrap() > 100,
        "{during}"
    );
    broker.resume();
    eventually(10, "the subscriber back", || {
        (sub.connects.load(std::sync::atomic::Ordering::SeqCst) > connects).then_some(())
    });
    relay.restore();

    eventually(30, "the outbox drained", || {
        let m = mqtt_status(&agent);
        (m["state"] == "connected" && m["outbox"]["messages"] == 0).then_some(())
    });
    // Stop producing, then compare what the broker delivered with what was stored.
    let cutoff = iso_now();
    let (st, _, log) = agent.terminate();
    assert!(st.success(), "{log}");
    let agent = Agent::start(&cfg, port, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let (total, unique) = check_all_arrived_in_order(&sub, &agent, &cutoff);
    eprintln!(
        "outage: {unique} readings arrived, {} duplicates",
        total - unique
    );
}

#[test]
fn the_outbox_survives_a_restart_during_an_outage() {
    // The outage is a cut connection between smollama and the broker (a relay the test
    // controls); the broker and the test's subscriber stay up, so every message the
    // subscriber lacks was lost on smollama's side.
    let dir = TempDir::new("mqtt-outage-restart");
    let broker = Broker::start(dir.path());
    let relay = Relay::start(broker.port);
    let sub = Subscriber::new(broker.port, "restart-sub", &["smollama/test-node/readings"]);
    let port = free_port();
    let cfg = write_config_extra(dir.path(), port, PUBLISHING, &mqtt_section(relay.port, ""));
    let agent = Agent::start(&cfg, port, &[]);
    eventually(10, "first batches", || {
        (readings_received(&sub).len() > 5).then_some(())
    });
    relay.cut();
    std::thread::sleep(Duration::from_secs(3));
    let (st, _, _) = agent.terminate();
    assert!(st.success());
    // Restart smollama while the broker is still unreachable: the outbox is on disk.
    let agent = Agent::start(&cfg, port, &[]);
    std::thread::sleep(Duration::from_secs(2));
    let m = mqtt_status(&agent);
    assert!(m["outbox"]["messages"].as_u64().unwrap() > 20, "{m}");
    relay.restore();
    eventually(30, "the outbox drained", || {
        let m = mqtt_status(&agent);
        (m["state"] == "connected" && m["outbox"]["messages"] == 0).then_some(())
    });
    let cutoff = iso_now();
    let (st, _, _) = agent.terminate();
    assert!(st.success());
    let agent = Agent::start(&cfg, port, &[]);
    std::thread::sleep(Duration::from_millis(500));
    check_all_arrived_in_order(&sub, &agent, &cutoff);
}

#[test]
fn a_kept_session_loses_nothing_across_an_outage() {
    // clean_session = false: the broker resumes the session after the outage, and the
    // worker's outbox, not rumqttc, sends again what was not acknowledged.
    let dir = TempDir::new("mqtt-kept-session");
    let broker = Broker::start(dir.path());
    let relay = Relay::start(broker.port);
    let sub = Subscriber::new(broker.port, "kept-sub", &["smollama/test-node/readings"]);
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        PUBLISHING,
        &mqtt_section(relay.port, "clean_session = false\n"),
    );
    let agent = Agent::start(&cfg, port, &[]);
    eventually(10, "first batches", || {
        (readings_received(&sub).len() > 5).then_some(())
    });
    for _ in 0..3 {
        relay.cut();
        std::thread::sleep(Duration::from_secs(1));
        relay.restore();
        eventually(30, "the outbox drained", || {
            let m = mqtt_status(&agent);
            (m["state"] == "connected" && m["outbox"]["messages"] == 0).then_some(())
        });
    }
    let m = mqtt_status(&agent);
    assert!(m["reconnects"].as_u64().unwrap() >= 3, "{m}");
    assert!(
        agent.log().contains("reconnected (session present: true)"),
        "the broker kept the session:\n{}",
        agent.log()
    );
    let cutoff = iso_now();
    let (st, _, log) = agent.terminate();
    assert!(st.success(), "{log}");
    let agent = Agent::start(&cfg, port, &[]);
    std::thread::sleep(Duration::from_millis(500));
    check_all_arrived_in_order(&sub, &agent, &cutoff);
}

#[test]
fn a_long_outage_with_a_small_outbox_drops_the_oldest_and_counts() {
    let dir = TempDir::new("mqtt-bounded");
    let mut broker = Broker::start(dir.path());
    // Through a relay, as the outage tests above: the subscriber is back before smollama
    // is, so what it receives never depends on the broker restoring an offline session.
    let relay = Relay::start(broker.port);
    let sub = Subscriber::new(broker.port, "bounded-sub", &["smollama/test-node/readings"]);
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        PUBLISHING,
        &mqtt_section(relay.port, "outbox_max_messages = 20\n"),
    );
    let agent = Agent::start(&cfg, port, &[]);
    eventually(10, "first batches", || {
        (readings_received(&sub).len() > 5).then_some(())
    });
    let connects = sub.connects.load(std::sync::atomic::Ordering::SeqCst);
    relay.cut();
    broker.stop();
    std::thread::sleep(Duration::from_secs(2));
    let rss_before = status(&agent)["process"]["rss_kb"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(8));
    let m = mqtt_status(&agent);
    let rss_after = status(&agent)["process"]["rss_kb"].as_u64().unwrap();
    assert_eq!(m["outbox"]["messages"], 20, "{m}");
    assert!(m["outbox"]["dropped"].as_u64().unwrap() > 50, "{m}");
    // The backlog lives in LMDB, bounded; the process does not grow with the outage.
    assert!(
        rss_after < rss_before + 2048,
        "RSS grew from {rss_before} to {rss_after} KiB during the outage"
    );
    broker.resume();
    eventually(10, "the subscriber back", || {
        (sub.connects.load(std::sync::atomic::Ordering::SeqCst) > connects).then_some(())
    });
    let before = readings_received(&sub).len();
    relay.restore();
    eventually(30, "the outbox drained", || {
        (mqtt_status(&agent)["outbox"]["messages"] == 0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    // Only what the bounded outbox kept (plus what came after reconnecting) arrives.
    let after = readings_received(&sub).len() - before;
    assert!(after >= 20, "{after}");
}

#[test]
fn home_assistant_discovery_and_switch_commands() {
    let dir = TempDir::new("mqtt-ha");
    let broker = Broker::start(dir.path());
    let sub = Subscriber::new(broker.port, "ha-sub", &["homeassistant/#"]);
    let port = free_port();
    let cfg = write_config_extra(dir.path(), port, PUBLISHING, &mqtt_section(broker.port, ""));
    let agent = Agent::start(&cfg, port, &[]);

    let sensor_topic = "homeassistant/sensor/smollama_test-node_system_uptime/config";
    let sensor = eventually(10, "sensor discovery", || sub.on(sensor_topic).pop());
    for key in [
        "name",
        "unique_id",
        "state_topic",
        "availability_topic",
        "device",
    ] {
        assert!(!sensor[key].is_null(), "{key} missing: {sensor}");
    }
    assert_eq!(sensor["unique_id"], "smollama_test-node_system_uptime");
    assert_eq!(
        sensor["state_topic"],
        "smollama/test-node/state/system/uptime"
    );
    assert_eq!(sensor["availability_topic"], "smollama/test-node/status");
    assert_eq!(sensor["device"]["identifiers"][0], "smollama_test-node");
    let input = eventually(10, "binary sensor", || {
        sub.on("homeassistant/binary_sensor/smollama_test-node_gpio_17/config")
            .pop()
    });
    assert_eq!(input["state_topic"], "smollama/test-node/state/gpio/17");
    let switch = eventually(10, "switch", || {
        sub.on("homeassistant/switch/smollama_test-node_gpio_22/config")
            .pop()
    });
    let command = switch["command_topic"].as_str().unwrap().to_string();
    assert_eq!(command, "smollama/test-node/gpio/22/set");

    // Home Assistant restarts and says so: discovery is announced again.
    let n = sub.on(sensor_topic).len();
    sub.publish("homeassistant/status", b"online", false);
    eventually(10, "re-announce", || {
        (sub.on(sensor_topic).len() > n).then_some(())
    });

    // Home Assistant flips the switch: the output pin follows.
    sub.publish(&command, b"ON", false);
    eventually(10, "pin 22 high", || {
        let (_, g) = get(&agent.url("/api/gpio")).ok()?;
        let pin = g["pins"]
            .as_array()?
            .iter()
            .find(|p| p["pin"] == 22)?
            .clone();
        (pin["value"] == true).then_some(())
    });
    // Inputs cannot be driven from MQTT.
    sub.publish("smollama/test-node/gpio/17/set", b"ON", false);
    std::thread::sleep(Duration::from_millis(300));
    let (_, g) = get(&agent.url("/api/gpio")).unwrap();
    let p17 = g["pins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pin"] == 17)
        .unwrap()
        .clone();
    assert_eq!(p17["value"], false);
}

#[test]
fn removing_a_pin_from_the_config_removes_its_home_assistant_entity() {
    let dir = TempDir::new("mqtt-ha-remove");
    let broker = Broker::start(dir.path());
    let sub = Subscriber::new(broker.port, "ha-remove-sub", &["homeassistant/#"]);
    let port = free_port();
    let cfg = write_config_extra(dir.path(), port, PUBLISHING, &mqtt_section(broker.port, ""));
    let switch_topic = "homeassistant/switch/smollama_test-node_gpio_22/config";
    let agent = Agent::start(&cfg, port, &[]);
    eventually(10, "switch announced", || sub.on(switch_topic).pop());
    let (st, _, _) = agent.terminate();
    assert!(st.success());

    // The fan on pin 22 is taken out of smollama.toml.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let without = text.replace(
        "[[gpio.pins]]\npin = 22\nname = \"fan\"\nmode = \"output\"\n",
        "",
    );
    assert_ne!(text, without);
    std::fs::write(&cfg, without).unwrap();
    let _agent = Agent::start(&cfg, port, &[]);
    eventually(10, "empty retained config for the removed switch", || {
        sub.raw(switch_topic)
            .last()
            .filter(|p| p.is_empty())
            .map(|_| ())
    });
    // The other entities are still announced.
    assert!(
        !sub.on("homeassistant/binary_sensor/smollama_test-node_gpio_17/config")
            .is_empty()
    );
}

/// Readings from another node into rollups and the log sink, and system readings traced.
const LOGGED: &str = r#"
[[source]]
name = "system"
kind = "system"
every = "200ms"
metrics = ["uptime"]

[[source]]
name = "nodes"
kind = "mqtt"
topics = ["smollama/+/readings"]

[[stage]]
name = "keep"
kind = "retention"
from = ["nodes"]
raw_for = "1d"
rollups = [{ every = "1m", keep = "30d" }]

[[sink]]
name = "store"
kind = "store"
from = ["keep", "system"]

[[sink]]
name = "show"
kind = "log"
from = ["keep"]
"#;

#[test]
fn log_lines_round_numbers_and_name_units() {
    let dir = TempDir::new("mqtt-logs");
    let broker = Broker::start(dir.path());
    let port = free_port();
    let cfg = write_config_extra(dir.path(), port, LOGGED, &mqtt_section(broker.port, ""));
    let agent = Agent::start(&cfg, port, &["--log-level", "trace"]);
    // Two readings in one minute, a third in the next closes the bucket: mean 1.65, which
    // is 1.6500000000000001 as an f64 sum / count.
    let minute = 60_000_000;
    let start = (smollama::clock::now_us() / minute - 3) * minute;
    let reading = |offset_s: i64, value: f64| {
        serde_json::json!({"source": "system:cpu_temp", "value": value, "unit": "celsius",
                           "ts": smollama::clock::iso8601(start + offset_s * 1_000_000)})
    };
    let batch = serde_json::json!({"node": "kitchen", "readings": [
        reading(0, 1.1), reading(30, 2.2), reading(60, 5.0)]});
    // Retained: the agent gets it even if it subscribes after this.
    let publisher = Subscriber::new(broker.port, "logs-pub", &["logs-test/none"]);
    publisher.publish(
        "smollama/kitchen/readings",
        batch.to_string().as_bytes(),
        true,
    );
    let line = eventually(15, "the rollup's debug line", || {
        agent
            .log()
            .lines()
            .find(|l| l.contains("kitchen:system:cpu_temp rollup level 0"))
            .map(str::to_string)
    });
    assert!(
        line.contains("count 2 min 1.1 celsius max 2.2 celsius mean 1.65 celsius"),
        "{line}"
    );
    eventually(10, "a traced system reading and a commit", || {
        let log = agent.log();
        (log.contains(" seconds\n") && log.contains("store: committed")).then_some(())
    });
    let (_, _, log) = agent.terminate();
    let traced = log
        .lines()
        .find(|l| l.contains("TRACE system: system:uptime = "))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(traced.ends_with(" seconds"), "{traced}");
    let show = log
        .lines()
        .find(|l| l.contains("INFO  show: rollup"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(show.contains("mean=1.65 celsius"), "{show}");
    for l in log.lines().filter(|l| l.contains("store: committed")) {
        assert!(l.contains("DEBUG"), "commits are debug lines: {l}");
    }
    // No float noise anywhere: no number with 8 or more decimals.
    for l in log.lines() {
        let noisy = l
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter_map(|w| w.split_once('.'))
            .any(|(_, frac)| frac.len() >= 8 && frac.bytes().all(|b| b.is_ascii_digit()));
        assert!(!noisy, "float noise: {l}");
    }
}
