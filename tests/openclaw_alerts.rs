//! `notify_human` through a real OpenClaw gateway (`scripts/openclaw-gateway.sh`; see
//! tests/openclaw.rs): the node's model (the scripted Ollama stand-in,
//! `common/fake_ollama.rs`) calls the tool, the alert is queued in the store and sent as
//! the gateway's `agent.request`, and the gateway's own agent, whose model provider is a
//! second stand-in, is given the message: what it then says on WhatsApp or Telegram is
//! the gateway's, so what this node controls ends at that agent's prompt. Alerts made
//! while the gateway is down, and across a restart of the node, arrive once it is back,
//! in order.

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

const PIPELINE: &str = r#"
[[source]]
name = "system"
kind = "system"
every = "1s"
metrics = ["uptime"]

[[sink]]
name = "store"
kind = "store"
from = ["system"]
"#;

fn oc_status(agent: &Agent) -> Value {
    get(&agent.url("/api/status")).unwrap().1["connections"]["openclaw"].clone()
}

/// Ask the node something its model (scripted) answers by calling notify_human.
fn alert_through_the_agent(agent: &Agent, ollama: &FakeOllama, message: &str) {
    ollama.push(Step::ToolCalls(vec![(
        "notify_human".into(),
        json!({"message": message, "urgency": "high"}),
    )]));
    ollama.push(Step::Text("I told them.".into()));
    let (code, a) = post_auth(
        &agent.url("/api/ask"),
        &json!({"question": "anything to report?"}).to_string(),
        Some(TOKEN),
        30,
    );
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["tools_used"], json!(["notify_human"]), "{a}");
}

/// The smollama alerts the gateway's agent was given, in the order it first saw them
/// (each later run's prompt also carries the session's earlier turns).
fn alerts_seen_by_the_gateway(gw_ollama: &FakeOllama) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for body in gw_ollama.bodies("/api/chat") {
        for m in body["messages"].as_array().into_iter().flatten() {
            let text = match &m["content"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            for word in ["garage", "door opened", "door closed"] {
                if text.contains(word) && !seen.iter().any(|s| s == word) {
                    seen.push(word.to_string());
                }
            }
        }
    }
    seen
}

#[test]
fn notify_human_reaches_the_gateways_agent_in_order_across_outages_and_restarts() {
    let dir = TempDir::new("openclaw-alerts");
    let gw_ollama = FakeOllama::start(&[MODEL]);
    for _ in 0..6 {
        gw_ollama.push(Step::Text("Relayed.".into()));
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
             [openclaw]\nenabled = true\nurl = \"{}\"\ntoken = \"{GATEWAY_TOKEN}\"\nreconnect_max = \"2s\"\n",
            ollama.port(),
            gw.url()
        ),
    );
    let mut agent = Agent::start(&cfg, port, &["run"]);
    let st = eventually(30, "connected", || {
        let s = oc_status(&agent);
        (s["connected"] == true).then_some(s)
    });
    let node_id = st["device_id"].as_str().unwrap().to_string();

    // Before the operator approved the node, the gateway does not take its alerts
    // (pairing_changed): the alert stays queued.
    alert_through_the_agent(&agent, &ollama, "Motion in the garage at 3am");
    let st = eventually(15, "the alert refused and kept", || {
        let s = oc_status(&agent);
        (s["alerts_refused"].as_u64() >= Some(1)).then_some(s)
    });
    assert_eq!(st["alerts_queued"], 1, "{st}");
    assert_eq!(st["alerts_sent"], 0, "{st}");

    // Approved: it goes, and the gateway's agent is given it.
    let mut op = Operator::connect(&gw.url(), GATEWAY_TOKEN);
    op.approve(&node_id);
    eventually(30, "the alert delivered", || {
        let s = oc_status(&agent);
        (s["alerts_sent"] == 1 && s["alerts_queued"] == 0).then_some(())
    });
    eventually(30, "the gateway's agent given the alert", || {
        (alerts_seen_by_the_gateway(&gw_ollama) == ["garage"]).then_some(())
    });
    let prompt = gw_ollama.bodies("/api/chat")[0].to_string();
    assert!(
        prompt.contains("urgency high") && prompt.contains("Motion in the garage at 3am"),
        "{prompt}"
    );
    // The operator sees the gateway's agent run end (`chat` events of the node's
    // session), the reply it delivers to the channel; not the message itself.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let end = loop {
        let c = op.wait_event(
            "chat",
            deadline.saturating_duration_since(std::time::Instant::now()),
        );
        if c["state"] == "final" || c["state"] == "error" {
            break c;
        }
    };
    assert_eq!(end["state"], "final", "{end}");
    assert!(end.to_string().contains("Relayed."), "{end}");
    assert!(
        end["sessionKey"].as_str().unwrap_or("").contains(&node_id),
        "{end}"
    );
    drop(op);

    // The gateway goes away; two alerts wait, in the store, across a restart of the node.
    gw.stop();
    eventually(30, "disconnected", || {
        (oc_status(&agent)["connected"] == false).then_some(())
    });
    alert_through_the_agent(&agent, &ollama, "The door opened");
    let (status, _, _) = agent.terminate();
    assert!(status.success(), "{status:?}");
    agent = Agent::start(&cfg, port, &["run"]);
    eventually(20, "the node back", || {
        (oc_status(&agent)["alerts_queued"] == 1).then_some(())
    });
    alert_through_the_agent(&agent, &ollama, "The door closed");
    let st = oc_status(&agent);
    assert_eq!(st["alerts_queued"], 2, "{st}");
    assert_eq!(st["connected"], false, "{st}");

    // Back: both arrive, oldest first.
    gw.restart();
    eventually(60, "both delivered", || {
        let s = oc_status(&agent);
        (s["alerts_sent"] == 2 && s["alerts_queued"] == 0).then_some(())
    });
    // They went as one request, numbered oldest first (the gateway may start two agent
    // runs in either order, so what piled up is told in one message).
    let want = ["garage", "door opened", "door closed"];
    eventually(60, "the gateway's agent given both, in order", || {
        (alerts_seen_by_the_gateway(&gw_ollama) == want).then_some(())
    });
    let last = gw_ollama.bodies("/api/chat").last().unwrap().to_string();
    assert!(last.contains("2 alerts, oldest first:"), "{last}");
    let (opened, closed) = (
        last.find("1. [urgency high").unwrap(),
        last.find("2. [urgency high").unwrap(),
    );
    assert!(opened < last.find("The door opened").unwrap(), "{last}");
    assert!(closed < last.find("The door closed").unwrap(), "{last}");
    assert_eq!(oc_status(&agent)["alerts_dropped"], 0);
    assert!(!agent.log().contains(GATEWAY_TOKEN));
}
