//! Readings, volatile/calm changes and observations to a real OpenClaw gateway
//! (`scripts/openclaw-gateway.sh`; see tests/openclaw.rs) as the node event it makes
//! visible, `notifications.changed`: each becomes a system event of the gateway's main
//! session, which wakes the gateway's agent (its heartbeat, on by default), and the
//! agent's model is given it. That model is the scripted Ollama stand-in
//! (`common/fake_ollama.rs`), so what it was given is what this test reads; a second
//! stand-in is the node's own model, scripted to call `observe`. Before approval the
//! gateway refuses the events; while it is down they wait, bounded, and the oldest are
//! dropped and counted; after it is back the rest go.

mod common;
#[path = "common/fake_ollama.rs"]
mod fake_ollama;
#[path = "common/openclaw.rs"]
mod openclaw_gw;

use common::*;
use fake_ollama::{FakeOllama, Step};
use openclaw_gw::{GATEWAY_TOKEN, Gateway, Operator};
use serde_json::{Value, json};

const MODEL: &str = "qwen3:0.6b";

/// Uptime every 200 ms through the filter and the adaptive stage, whose `max_step`
/// (below uptime's 0.2 s step) makes it volatile at its first evaluation: a Change.
const PIPELINE: &str = r#"
[[source]]
name = "system"
kind = "system"
every = "200ms"
metrics = ["uptime"]

[[stage]]
name = "quiet"
kind = "filter"
from = ["system"]

[[stage]]
name = "pace"
kind = "adaptive"
from = ["quiet"]
window = 2
hysteresis = 1
min = "200ms"
max = "1s"
max_step = 0.05

[[sink]]
name = "store"
kind = "store"
from = ["pace"]

[[sink]]
name = "gateway"
kind = "openclaw"
from = ["pace"]
min_interval = "2s"
"#;

fn oc_status(agent: &Agent) -> Value {
    status(agent)["connections"]["openclaw"].clone()
}

fn sink_counters(agent: &Agent) -> Value {
    status(agent)["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "gateway")
        .expect("the openclaw sink in status")["counters"]
        .clone()
}

/// Everything the gateway's agent was given, as text.
fn given_to_the_gateways_agent(gw_ollama: &FakeOllama) -> String {
    gw_ollama
        .bodies("/api/chat")
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn readings_changes_and_observations_reach_the_gateways_agent_rate_limited_and_bounded() {
    let dir = TempDir::new("openclaw-events");
    let gw_ollama = FakeOllama::start(&[MODEL]);
    for _ in 0..50 {
        gw_ollama.push(Step::Text("HEARTBEAT_OK".into()));
    }
    let mut gw = Gateway::start_with_ollama(&dir.path().join("gw"), &[], &gw_ollama.url(), MODEL);
    let ollama = FakeOllama::start(&[MODEL, "nomic-embed-text"]);
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        PIPELINE,
        &format!(
            "[ollama]\nhost = \"127.0.0.1\"\nport = {}\nmodel = \"{MODEL}\"\nretries = 0\nconnect_timeout = \"1s\"\n\n\
             [openclaw]\nenabled = true\nurl = \"{}\"\ntoken = \"{GATEWAY_TOKEN}\"\nreconnect_max = \"2s\"\nevent_queue_max = 3\n",
            ollama.port(),
            gw.url()
        ),
    );
    let agent = Agent::start(&cfg, port, &["run"]);
    let st = eventually(30, "connected", || {
        let s = oc_status(&agent);
        (s["connected"] == true).then_some(s)
    });
    let node_id = st["device_id"].as_str().unwrap().to_string();

    // Before the operator approved the node, the gateway takes none (PAIRING_CHANGED):
    // counted, not sent again (readings are not alerts).
    eventually(15, "events refused before approval", || {
        (oc_status(&agent)["events_refused"].as_u64() >= Some(1)).then_some(())
    });
    assert_eq!(oc_status(&agent)["events_sent"], 0);

    let mut op = Operator::connect(&gw.url(), GATEWAY_TOKEN);
    op.approve(&node_id);
    eventually(30, "events taken by the gateway", || {
        (oc_status(&agent)["events_sent"].as_u64() >= Some(2)).then_some(())
    });

    // An observation the node's agent stores goes too.
    ollama.push(Step::ToolCalls(vec![(
        "observe".into(),
        json!({"observation": "The greenhouse door was left ajar", "observation_type": "anomaly", "confidence": 0.9}),
    )]));
    ollama.push(Step::Text("Noted.".into()));
    let (code, a) = post_auth(
        &agent.url("/api/ask"),
        &json!({"question": "anything odd?"}).to_string(),
        Some(TOKEN),
        30,
    );
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["tools_used"], json!(["observe"]), "{a}");

    // The gateway's agent is given each as a system event of its main session, in the
    // gateway's own words.
    let reading = format!(
        "Notification posted (node={node_id} key=smollama.reading.system:uptime package=smollama)"
    );
    let change = format!(
        "key=smollama.change.system:uptime package=smollama): smollama {}: system:uptime turned volatile",
        "test-node"
    );
    eventually(
        60,
        "the gateway's agent given a reading, the change and the observation",
        || {
            let seen = given_to_the_gateways_agent(&gw_ollama);
            (seen.contains(&reading)
                && seen.contains(&change)
                && seen.contains(
                    "anomaly observation (confidence 0.90) - The greenhouse door was left ajar",
                ))
            .then_some(())
        },
    );
    // The operator saw the agent woken for them (the gateway's `heartbeat` events).
    op.wait_event("heartbeat", std::time::Duration::from_secs(30));
    drop(op);

    // At most one reading per source per min_interval (2 s) went; readings come every
    // 200 ms or faster, so most were held back.
    let c = sink_counters(&agent);
    let (readings, limited) = (
        c["readings"].as_u64().unwrap(),
        c["limited"].as_u64().unwrap(),
    );
    assert!(limited * 2 > readings, "most readings rate-limited: {c}");
    assert!(c["changes"].as_u64().unwrap() >= 1, "{c}");

    // The gateway goes away: the newest 3 wait, the oldest are dropped and counted.
    gw.stop();
    eventually(30, "disconnected", || {
        (oc_status(&agent)["connected"] == false).then_some(())
    });
    let st = eventually(30, "the queue full, its oldest dropped", || {
        let s = oc_status(&agent);
        (s["events_queued"] == 3 && s["events_dropped"].as_u64() >= Some(1)).then_some(s)
    });
    let sent_before = st["events_sent"].as_u64().unwrap();
    // Back (pairing kept): what waited goes.
    gw.restart();
    eventually(60, "the waiting events sent after the reconnect", || {
        let s = oc_status(&agent);
        (s["connected"] == true && s["events_sent"].as_u64() >= Some(sent_before + 3)).then_some(())
    });

    // /metrics carries the same counters.
    let metrics = ureq::get(&agent.url("/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    for name in [
        "smollama_openclaw_events_sent_total",
        "smollama_openclaw_events_refused_total",
        "smollama_openclaw_events_dropped_total",
        "smollama_openclaw_events_queued",
    ] {
        assert!(metrics.contains(name), "{name} in /metrics");
    }
}

#[test]
fn an_openclaw_sink_without_the_gateway_client_is_unavailable_and_the_rest_runs() {
    let dir = TempDir::new("openclaw-events-off");
    let port = free_port();
    let cfg = write_config(dir.path(), port, PIPELINE);
    let agent = Agent::start(&cfg, port, &["run"]);
    let s = eventually(20, "status", || {
        let s = status(&agent);
        (s["sources"].as_array()?.len() == 1).then_some(s)
    });
    let sink = s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "gateway")
        .unwrap()
        .clone();
    assert_eq!(sink["state"], "unavailable", "{sink}");
    assert!(
        sink["reason"]
            .as_str()
            .unwrap()
            .contains("[openclaw] enabled = false"),
        "{sink}"
    );
    assert!(s["connections"]["openclaw"].is_null(), "no client: {s}");
}
