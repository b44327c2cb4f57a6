//! `GET /metrics` as a Prometheus server scrapes it: the real binary with a real
//! mosquitto, the exposition checked by Prometheus's own `promtool`, and its numbers
//! against `/api/status` taken from the same node.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::broker::Broker;
use common::*;

/// A file source sampled once an hour (its count stays put between the two requests),
/// published over MQTT with QoS 1 (PUBACK latencies) and stored.
const PIPELINE: &str = r#"
[[source]]
name = "tank"
kind = "file"
path = "{value}"
every = "1h"
unit = "cm"

[[sink]]
name = "store"
kind = "store"
from = ["tank"]

[[sink]]
name = "batch"
kind = "mqtt"
from = ["tank"]
batch_max = 1
"#;

fn scrape(agent: &Agent) -> (String, String) {
    let r = ureq::get(&agent.url("/metrics"))
        .call()
        .expect("GET /metrics");
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (ct, r.into_body().read_to_string().unwrap())
}

/// The value of the sample whose name and labels start `prefix` (e.g.
/// `smollama_source_readings_total{source="file:tank"`).
fn sample(text: &str, prefix: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no sample {prefix} in:\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn the_exposition_passes_promtool_and_agrees_with_status() {
    let dir = TempDir::new("metrics");
    let broker = Broker::start(dir.path());
    let value = dir.path().join("tank");
    std::fs::write(&value, "42.5\n").unwrap();
    let port = free_port();
    let pipeline = PIPELINE.replace("{value}", &value.display().to_string());
    let cfg = write_config_extra(dir.path(), port, &pipeline, &mqtt_section(broker.port, ""));
    let agent = Agent::start(&cfg, port, &[]);
    // Connected, the reading stored and its message acknowledged.
    eventually(20, "the reading acknowledged by the broker", || {
        let (_, s) = get(&agent.url("/api/status")).ok()?;
        let acked = s["connections"]["mqtt"]["ack_seconds"]["count"].as_u64()?;
        (acked >= 1 && s["store"]["readings_written"].as_u64()? >= 1).then_some(())
    });

    let (ct, text) = scrape(&agent);
    let (_, status) = get(&agent.url("/api/status")).unwrap();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");

    // Prometheus's own checker: format and naming lints (promtool exits 0 with no output
    // when both pass). Installed by ./scripts/test and .ci/run (Debian's prometheus).
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus; ./scripts/test installs it as root)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The same numbers as /api/status.
    let src = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "file:tank")
        .unwrap();
    assert_eq!(
        sample(&text, "smollama_source_readings_total{source=\"file:tank\""),
        src["readings"].as_f64().unwrap()
    );
    assert_eq!(
        sample(
            &text,
            "smollama_source_value{source=\"file:tank\",unit=\"cm\"}"
        ),
        42.5
    );
    assert_eq!(
        sample(
            &text,
            "smollama_source_interval_seconds{source=\"file:tank\""
        ),
        3600.0
    );
    assert_eq!(
        sample(&text, "smollama_store_readings_written_total"),
        status["store"]["readings_written"].as_f64().unwrap()
    );
    assert_eq!(sample(&text, "smollama_mqtt_connected"), 1.0);
    assert_eq!(
        sample(&text, "smollama_mqtt_ack_seconds_count"),
        status["connections"]["mqtt"]["ack_seconds"]["count"]
            .as_f64()
            .unwrap()
    );
    assert!(sample(&text, "smollama_mqtt_ack_seconds_bucket{le=\"+Inf\"}") >= 1.0);
    let running = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["state"] == "running")
        .count();
    let up = text
        .lines()
        .filter(|l| l.starts_with("smollama_node_up{") && l.ends_with(" 1"))
        .count();
    assert_eq!(up, running, "{text}");
    assert!(sample(&text, "smollama_process_resident_memory_bytes") > 1e6);

    // The broker away: the gauge says so.
    drop(broker);
    eventually(20, "mqtt down in /metrics", || {
        (sample(&scrape(&agent).1, "smollama_mqtt_connected") == 0.0).then_some(())
    });
}
