//! MQTT input that used to knock a node off the broker or grow it without bound, and the
//! clean-shutdown and mixed-fleet contract (docs/mqtt.md), against a real mosquitto and the
//! real binary.
// It reads the payload codecs, which a build without the mqtt feature leaves out.
#![cfg(feature = "mqtt")]

mod common;

use std::time::Duration;

use common::broker::{Broker, Subscriber};
use common::*;
use serde_json::Value;

/// Everything other nodes and devices publish goes into the store; nothing goes out.
const INGEST: &str = r#"
[[source]]
name = "nodes"
kind = "mqtt"
topics = ["smollama/+/readings", "sensors/#"]

[[sink]]
name = "store"
kind = "store"
from = ["nodes"]
"#;

fn mqtt_status(agent: &Agent) -> Value {
    status(agent)["connections"]["mqtt"].clone()
}

fn connected(agent: &Agent) {
    eventually(10, "connected", || {
        (mqtt_status(agent)["state"] == "connected").then_some(())
    });
}

/// The latest stored reading of `id` (slashes percent-encoded).
fn latest(agent: &Agent, id: &str) -> Option<Value> {
    let (code, r) = get(&agent.url(&format!("/api/readings/{}", id.replace('/', "%2F")))).ok()?;
    (code == 200).then_some(r)
}

#[test]
fn oversized_messages_are_counted_and_the_connection_stays_up() {
    let dir = TempDir::new("mqtt-oversized");
    let broker = Broker::start(dir.path());
    let other = Subscriber::new(broker.port, "big-sender", &["smollama/test-node/status"]);
    // Retained before the node subscribes: the broker hands them over on every subscribe,
    // which is what made the node reconnect forever.
    let big = vec![b'7'; 8 * 1024]; // over max_payload_kb = 4, under the packet limit
    let huge = vec![b'7'; 200 * 1024]; // over the packet limit the node declares
    other.publish("sensors/big", &big, true);
    other.publish("sensors/huge", &huge, true);
    other.publish("sensors/before", b"1", true);
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        INGEST,
        &mqtt_section(broker.port, "max_payload_kb = 4\n"),
    );
    let agent = Agent::start(&cfg, port, &[]);
    connected(&agent);
    eventually(10, "the retained good message", || {
        latest(&agent, "mqtt:sensors/before")
    });
    // While connected: more of both, then good messages, which must all arrive.
    other.publish("sensors/big2", &big, false);
    other.publish("sensors/huge2", &huge, false);
    for i in 1..=3 {
        other.publish("sensors/good", i.to_string().as_bytes(), false);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while latest(&agent, "mqtt:sensors/good").is_none_or(|r| r["value"].as_f64() != Some(3.0)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the good messages after the oversized ones never arrived: {}\n{}",
            mqtt_status(&agent),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let m = mqtt_status(&agent);
    assert_eq!(m["state"], "connected", "{m}");
    assert_eq!(m["connects"], 1, "{m}");
    assert_eq!(m["reconnects"], 0, "{m}");
    assert_eq!(m["too_large"], 2, "{m}");
    assert_eq!(m["malformed_by_topic"]["sensors/big"], 1, "{m}");
    assert_eq!(m["malformed_by_topic"]["sensors/big2"], 1, "{m}");
    // The huge ones never reached the node: the broker drops packets over the declared
    // maximum packet size.
    assert!(m["malformed_by_topic"].get("sensors/huge").is_none(), "{m}");
    assert!(latest(&agent, "mqtt:sensors/huge").is_none());
    // Subscribers saw the node come online once, and never go away.
    eventually(10, "online", || {
        (!other.raw("smollama/test-node/status").is_empty()).then_some(())
    });
    let statuses = other.raw("smollama/test-node/status");
    assert_eq!(statuses, vec![b"online".to_vec()], "status flapped");
}

/// A batch of `n` readings named `s<from>`..`s<from+n>` from `node`.
fn batch(node: &str, from: usize, n: usize) -> Vec<u8> {
    let items: Vec<String> = (from..from + n)
        .map(|i| format!(r#"{{"source":"s{i}","value":{i},"unit":"u"}}"#))
        .collect();
    format!(r#"{{"node":"{node}","readings":[{}]}}"#, items.join(",")).into_bytes()
}

#[test]
fn sources_learned_from_other_nodes_are_bounded() {
    let dir = TempDir::new("mqtt-remote-bounds");
    let broker = Broker::start(dir.path());
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        INGEST,
        &mqtt_section(
            broker.port,
            "max_remote_sources = 1500\nmax_sources_per_node = 1000\n",
        ),
    );
    let agent = Agent::start(&cfg, port, &[]);
    connected(&agent);
    let pid = agent.child.id();
    let rss_before = rss_kb(pid);
    let other = Subscriber::new(broker.port, "flood", &["nothing/here"]);
    let counted = |want: u64| {
        eventually(60, "every reading counted", || {
            let m = mqtt_status(&agent);
            let r = m["remote_sources"].clone();
            let seen = m["readings_in"].as_u64()?
                + r["refused_node_limit"].as_u64()?
                + r["refused_total_limit"].as_u64()?;
            (seen == want).then_some(r)
        })
    };
    // 100,000 distinct names from one node, in batches of 5,000...
    for b in 0..20 {
        other.publish(
            "smollama/flood/readings",
            &batch("flood", b * 5000, 5000),
            false,
        );
    }
    // ...and 1,000 from a second node, of which only 500 fit in the total.
    other.publish("smollama/second/readings", &batch("second", 0, 1000), false);
    let remote = counted(101_000);
    let rss_first = rss_kb(pid);
    // Another 100,000 new names cost nothing more: refused names are not kept.
    for b in 20..40 {
        other.publish(
            "smollama/flood/readings",
            &batch("flood", b * 5000, 5000),
            false,
        );
    }
    counted(201_000);
    let rss_after = rss_kb(pid);
    eprintln!("remote bounds: RSS {rss_before} -> {rss_first} -> {rss_after} KiB");
    assert_eq!(remote["sources"], 1500, "{remote}");
    assert_eq!(remote["refused_node_limit"], 99_000, "{remote}");
    assert_eq!(remote["refused_total_limit"], 500, "{remote}");
    let nodes = remote["nodes"].as_array().unwrap();
    let node = |n: &str| nodes.iter().find(|x| x["node"] == n).unwrap().clone();
    assert_eq!(node("flood")["sources"], 1000);
    assert_eq!(node("flood")["refused"], 99_000);
    assert_eq!(node("second")["sources"], 500);
    assert_eq!(node("second")["refused"], 500);
    // The admitted names keep working; the refused ones were never created.
    eventually(10, "an admitted source stored", || {
        latest(&agent, "flood:s999")
    });
    assert!(latest(&agent, "flood:s1000").is_none());
    assert!(latest(&agent, "second:s999").is_none());
    // Memory and the status answer stay small. Parsing a 200 KB batch takes a few MiB
    // for a moment, which the allocator keeps (give or take a few MiB from run to run);
    // before the limits, each flood of 100,000 names added about 48 MiB.
    assert!(
        rss_first < rss_before + 16 * 1024,
        "RSS grew from {rss_before} to {rss_first} KiB"
    );
    assert!(
        rss_after < rss_first + 4 * 1024,
        "RSS grew from {rss_first} to {rss_after} KiB with refused names"
    );
    let body = ureq::get(&agent.url("/api/status"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        body.len() < 64 * 1024,
        "/api/status is {} bytes",
        body.len()
    );
    eprintln!("remote bounds: /api/status {} bytes", body.len());
}

#[test]
fn bad_timestamps_values_and_names_are_counted() {
    let dir = TempDir::new("mqtt-bad-items");
    let broker = Broker::start(dir.path());
    let port = free_port();
    let cfg = write_config_extra(dir.path(), port, INGEST, &mqtt_section(broker.port, ""));
    let agent = Agent::start(&cfg, port, &[]);
    connected(&agent);
    let other = Subscriber::new(broker.port, "odd-sender", &["nothing/here"]);
    let hour_ago = smollama::clock::now_us() / 1_000_000 - 3600;
    let long = "x".repeat(300);
    let payload = format!(
        r#"{{"node":"odd","readings":[
        {{"source":"future","value":1,"ts":1e12}},
        {{"source":"past","value":2,"ts":"1970-01-02T00:00:00Z"}},
        {{"source":"fine","value":3,"ts":{hour_ago}}},
        {{"source":"null","value":null}},
        {{"source":"object","value":{{"a":1}}}},
        {{"source":"array","value":[1]}},
        {{"source":"missing"}},
        {{"source":"{long}","value":4}},
        {{"source":"unit","value":5,"unit":"{long}"}},
        {{"source":"last","value":6}}]}}"#
    );
    other.publish("smollama/odd/readings", payload.as_bytes(), false);
    // A node name (the topic level) over the limit.
    let node = "n".repeat(100);
    other.publish(
        &format!("smollama/{node}/readings"),
        br#"{"readings":[{"source":"a","value":1}]}"#,
        false,
    );
    eventually(10, "the last reading", || latest(&agent, "odd:last"));
    let m = eventually(10, "all counted", || {
        let m = mqtt_status(&agent);
        (m["remote_sources"]["names_refused"] == 3).then_some(m)
    });
    assert_eq!(m["ts_replaced"], 2, "{m}");
    assert_eq!(m["malformed_items"], 4, "{m}");
    assert_eq!(m["malformed_by_topic"]["smollama/odd/readings"], 4, "{m}");
    let now = smollama::clock::now_us();
    for id in ["odd:future", "odd:past"] {
        let r = latest(&agent, id).unwrap();
        let ts = r["timestamp"].as_str().unwrap();
        assert!(ts.starts_with("20"), "{id}: {ts}");
        let t = smollama::edges::mqtt::payload::parse_iso8601(ts).unwrap();
        assert!(
            (now - t).abs() < 60_000_000,
            "{id} not at arrival time: {ts}"
        );
    }
    let fine = latest(&agent, "odd:fine").unwrap();
    let t =
        smollama::edges::mqtt::payload::parse_iso8601(fine["timestamp"].as_str().unwrap()).unwrap();
    assert_eq!(t / 1_000_000, hour_ago, "a plausible timestamp is kept");
    for id in [
        "odd:null",
        "odd:object",
        "odd:array",
        "odd:missing",
        "odd:unit",
    ] {
        assert!(latest(&agent, id).is_none(), "{id}");
    }
}

/// System readings batched for an hour: the only batch is the one flushed at shutdown.
const SHUTDOWN: &str = r#"
[[source]]
name = "system"
kind = "system"
every = "100ms"
metrics = ["uptime"]

[[sink]]
name = "batch"
kind = "mqtt"
from = ["system"]
batch_every = "1h"
batch_max = 10000
"#;

#[test]
fn a_clean_shutdown_says_offline_once_and_delivers_the_last_batch() {
    let dir = TempDir::new("mqtt-clean-stop");
    let broker = Broker::start(dir.path());
    let sub = Subscriber::new(
        broker.port,
        "stop-watcher",
        &["smollama/test-node/#", "marker"],
    );
    let port = free_port();
    let cfg = write_config_extra(dir.path(), port, SHUTDOWN, &mqtt_section(broker.port, ""));
    let agent = Agent::start(&cfg, port, &[]);
    connected(&agent);
    eventually(10, "online", || {
        (!sub.raw("smollama/test-node/status").is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500)); // some readings for the batch
    let (st, took, log) = agent.terminate();
    assert!(st.success(), "{log}");
    // Bounded: about a second for the PUBACKs at most (here they come at once).
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM to exit took {took:?}"
    );
    eprintln!("clean stop: SIGTERM to exit {took:?}");
    // The last batch went out before the node exited (and was acknowledged: the next
    // start finds the outbox empty, below).
    let batches = eventually(10, "the final batch", || {
        let b = sub.on("smollama/test-node/readings");
        (!b.is_empty()).then_some(b)
    });
    assert_eq!(batches.len(), 1);
    assert!(!batches[0]["readings"].as_array().unwrap().is_empty());
    // A marker published after the node is gone arrives after anything the broker did
    // when the connection closed (a last will would come first).
    sub.publish("marker", b"1", false);
    eventually(10, "the marker", || {
        (!sub.raw("marker").is_empty()).then_some(())
    });
    let statuses = sub.raw("smollama/test-node/status");
    assert_eq!(
        statuses,
        vec![b"online".to_vec(), b"offline".to_vec()],
        "offline exactly once (no last will on a clean stop)"
    );
    // The next start has nothing left to send.
    let agent = Agent::start(&cfg, port, &[]);
    connected(&agent);
    let m = mqtt_status(&agent);
    assert_eq!(m["outbox"]["messages"], 0, "{m}");
    eventually(10, "online again", || {
        (sub.raw("smollama/test-node/status").len() == 3).then_some(())
    });
    sub.publish("marker", b"2", false);
    eventually(10, "the second marker", || {
        (sub.raw("marker").len() == 2).then_some(())
    });
    assert_eq!(
        sub.on("smollama/test-node/readings").len(),
        1,
        "nothing resent"
    );
    assert_eq!(mqtt_status(&agent)["republished"], 0);
}

/// Batches and retained states, as the default pipeline publishes them.
const MIXED: &str = r#"
[[source]]
name = "system"
kind = "system"
every = "100ms"
metrics = ["uptime"]

[[source]]
name = "pins"
kind = "gpio"

[[sink]]
name = "batch"
kind = "mqtt"
from = ["system"]
batch_every = "200ms"

[[sink]]
name = "state"
kind = "mqtt"
format = "state"
from = ["system", "pins"]
"#;

#[test]
fn state_prefix_keeps_everything_but_batches_off_the_python_masters_subscription() {
    let dir = TempDir::new("mqtt-state-prefix");
    let broker = Broker::start(dir.path());
    // What a Python master subscribes to, and where the node's state now lives.
    let master = Subscriber::new(broker.port, "python-master", &["smollama/#", "marker"]);
    let ha = Subscriber::new(broker.port, "ha", &["nodes/#", "homeassistant/#"]);
    let port = free_port();
    let ollama = free_port(); // nothing listens: questions get an error answer at once
    let cfg = write_config_extra(
        dir.path(),
        port,
        MIXED,
        &format!(
            "{}\n[ollama]\nhost = \"127.0.0.1\"\nport = {ollama}\nretries = 0\nconnect_timeout = \"1s\"\n\n\
             [agent]\nfallback_mode = \"skip\"\n\n[memory]\nobserve = false\n",
            mqtt_section(broker.port, "state_prefix = \"nodes/test-node\"\n")
        ),
    );
    let agent = Agent::start(&cfg, port, &[]);
    connected(&agent);
    eventually(10, "state under the state prefix", || {
        ha.on("nodes/test-node/state/system/uptime").pop()
    });
    eventually(10, "a batch under smollama/", || {
        master.on("smollama/test-node/readings").pop()
    });
    assert_eq!(ha.raw("nodes/test-node/status"), vec![b"online".to_vec()]);
    // Home Assistant discovery points at the state prefix.
    let switch = eventually(10, "switch discovery", || {
        ha.on("homeassistant/switch/smollama_test-node_gpio_22/config")
            .pop()
    });
    assert_eq!(switch["state_topic"], "nodes/test-node/state/gpio/22");
    assert_eq!(switch["availability_topic"], "nodes/test-node/status");
    assert_eq!(switch["command_topic"], "nodes/test-node/gpio/22/set");
    ha.publish("nodes/test-node/gpio/22/set", b"ON", false);
    eventually(10, "pin 22 high", || {
        let (_, g) = get(&agent.url("/api/gpio")).ok()?;
        let on = g["pins"]
            .as_array()?
            .iter()
            .any(|p| p["pin"] == 22 && p["value"] == true);
        on.then_some(())
    });
    // The master (or anyone) can still ask on the usual topics; the answer goes to the
    // state prefix.
    master.publish("smollama/broadcast", b"anyone there?", false);
    let answer = eventually(15, "an answer", || ha.on("nodes/test-node/answers").pop());
    assert_eq!(answer["question"], "anyone there?");
    let (st, _, log) = agent.terminate();
    assert!(st.success(), "{log}");
    eventually(10, "offline under the state prefix", || {
        (ha.raw("nodes/test-node/status").last() == Some(&b"offline".to_vec())).then_some(())
    });
    // Anything the node sent before it exited arrives before a marker sent after.
    master.publish("marker", b"1", false);
    eventually(10, "the marker", || {
        (!master.raw("marker").is_empty()).then_some(())
    });
    let mut topics = master.topics();
    topics.retain(|t| t != "marker");
    assert_eq!(
        topics,
        vec!["smollama/broadcast", "smollama/test-node/readings"],
        "only batches (and the question the master sent) under smollama/"
    );
}

#[test]
fn a_broker_without_mqtt_5_gets_a_clear_error() {
    // What mosquitto 1.5 does with an MQTT 5 CONNECT: a 3.1.1 CONNACK "unacceptable
    // protocol version", then it closes the connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let broker_port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for c in listener.incoming() {
            let Ok(mut c) = c else { continue };
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(&[0x20, 0x02, 0x00, 0x01]);
        }
    });
    let dir = TempDir::new("mqtt-old-broker");
    let port = free_port();
    let cfg = write_config_extra(dir.path(), port, INGEST, &mqtt_section(broker_port, ""));
    let agent = Agent::start(&cfg, port, &[]);
    let m = eventually(10, "a connection error", || {
        let m = mqtt_status(&agent);
        m["last_error"].is_string().then_some(m)
    });
    assert_eq!(m["state"], "disconnected", "{m}");
    let err = m["last_error"].as_str().unwrap();
    assert!(
        err.contains("MQTT 5") && err.contains("mosquitto 1.6"),
        "{err}"
    );
    assert!(agent.log().contains("MQTT 5"), "{}", agent.log());
}
