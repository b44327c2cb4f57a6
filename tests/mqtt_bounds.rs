//! Messages on their way to the broker are bounded in bytes, not only in count: a broker
//! link that stalls (open but nothing moves, as when Wi-Fi goes without a reset) while
//! large batches keep coming holds at most `[mqtt] publish_queue_kb` between the sinks
//! and the worker and `client_queue_kb` in the MQTT client, the rest dropped (QoS 0),
//! counted and logged. Real binary, real mosquitto, the stall from a relay in between.
#![cfg(feature = "mqtt")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::broker::{Broker, Relay, Subscriber};
use common::*;
use serde_json::Value;

/// As fast as the exec source reads: JSON readings of 1,000 sources with long names and
/// units (about 170 bytes each in a batch), endlessly.
const FLOOD: &str = r#"#!/bin/sh
exec awk 'BEGIN { for (n = 0; ; n++) { printf "{\"source\":\"s%04d_a_long_name_to_make_the_batches_big_xxxxxxxxxxxxxxxx\",\"value\":%d,\"unit\":\"units_of_something_quite_long_\"}\n", n % 1000, n; if (n % 1000 == 0) fflush() } }'
"#;

fn pipeline(script: &str) -> String {
    let mut p = format!(
        r#"[[source]]
name = "flood"
kind = "exec"
command = ["/bin/sh", "{script}"]
max_lines = 5000
max_sources = 1000
"#
    );
    // Several sinks, each its own inbox of the flood, for more bytes a second.
    for i in 0..SINKS {
        p.push_str(&format!(
            r#"
[[sink]]
name = "out{i}"
kind = "mqtt"
from = ["flood"]
topic = "{{prefix}}/readings/{i}"
format = "batch"
batch_max = 2000
batch_every = "1s"
qos = 0
"#
        ));
    }
    p
}

const SINKS: usize = 6;
const KIB: u64 = 1024;
const QUEUE_KB: u64 = 256;

fn mqtt_status(agent: &Agent) -> Value {
    status(agent)["connections"]["mqtt"].clone()
}

#[test]
fn a_stalled_broker_link_holds_no_more_than_the_byte_bounds() {
    let dir = TempDir::new("mqtt-bounds");
    let broker = Broker::start(dir.path());
    let relay = Relay::start(broker.port);
    let sub = Subscriber::new(
        broker.port,
        "bounds-sub",
        &["smollama/test-node/readings/+"],
    );
    let script = dir.path().join("flood.sh");
    std::fs::write(&script, FLOOD).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        &pipeline(&script.display().to_string()),
        &mqtt_section(
            relay.port,
            &format!(
                "discovery = false\nmax_payload_kb = 1024\noutbox_max_mb = 1\npublish_queue_kb = {QUEUE_KB}\nclient_queue_kb = {QUEUE_KB}\n"
            ),
        ),
    );
    let agent = Agent::start(&cfg, port, &[]);
    let pid = agent.child.id();
    wait_mqtt_connected(&agent);
    eventually(20, "batches at the subscriber", || {
        (sub.raw("smollama/test-node/readings/0").len() >= 4).then_some(())
    });
    let biggest = sub
        .raw("smollama/test-node/readings/0")
        .iter()
        .map(Vec::len)
        .max()
        .unwrap() as u64;
    assert!(biggest > 50 * KIB, "large payloads: {biggest} bytes");
    std::thread::sleep(Duration::from_secs(2));
    let rss_before = rss_kb(pid);
    let out_before = mqtt_status(&agent)["messages_out"].as_u64().unwrap();

    relay.stall();
    let (mut publish_max, mut client_max, mut rss_max) = (0, 0, 0);
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        let m = mqtt_status(&agent);
        publish_max = publish_max.max(m["publish_queue"]["bytes"].as_u64().unwrap());
        client_max = client_max.max(m["client_queue"]["bytes"].as_u64().unwrap());
        rss_max = rss_max.max(rss_kb(pid));
        std::thread::sleep(Duration::from_millis(250));
    }
    let m = mqtt_status(&agent);
    eprintln!(
        "stalled 30 s: rss {rss_before} -> max {rss_max} kB, publish queue max {publish_max} B, client queue max {client_max} B, {}",
        m
    );
    // Each bound holds, but one message alone (the largest is under 2x `biggest`).
    assert!(publish_max <= QUEUE_KB * KIB + 2 * biggest, "{m}");
    assert!(client_max <= QUEUE_KB * KIB + 2 * biggest, "{m}");
    assert!(
        m["client_queue"]["full"].as_u64().unwrap() > 0,
        "the client's bound was reached: {m}"
    );
    assert!(
        m["publish_queue"]["waited"].as_u64().unwrap() > 0,
        "the sinks waited for the worker: {m}"
    );
    let produced = m["messages_out"].as_u64().unwrap() - out_before;
    let dropped = m["dropped_qos0"].as_u64().unwrap();
    assert!(dropped > 0, "what did not fit was dropped: {m}");
    // 30 s of ~300 KB batches is tens of MB; memory grew by a fraction of that (the
    // socket buffers the kernel holds are not the process's).
    assert!(
        rss_max < rss_before + 6 * 1024,
        "RSS {rss_before} -> {rss_max} kB with {produced} messages handed over, {dropped} dropped"
    );
    let log = agent.log();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("QoS 0 message(s)") && l.contains("WARN"))
        .collect();
    assert_eq!(
        warned.len(),
        1,
        "one warn line a minute at most, with the count:\n{log}"
    );

    // The link moves again: the node sends again and its queues empty out.
    relay.unstall();
    let seen = sub.raw("smollama/test-node/readings/0").len();
    eventually(60, "batches after the stall", || {
        (sub.raw("smollama/test-node/readings/0").len() > seen + 5).then_some(())
    });
    let m = mqtt_status(&agent);
    assert_eq!(m["state"], "connected", "{m}");
    let (st, _, log) = agent.terminate();
    assert!(st.success(), "{log}");
}
