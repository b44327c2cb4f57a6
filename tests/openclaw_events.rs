//! Readings, volatile/calm changes and observations to a real OpenClaw gateway
//! (`scripts/openclaw-gateway.sh`; see tests/openclaw.rs) as the node event it makes
//! visible, `notifications.changed`: each becomes a system event of the gateway's main
//! session, which an operator reads in the gateway's `status` (`queuedSystemEvents`)
//! and which wakes the gateway's agent (its heartbeat, on by default), whose model is
//! given it. That model is the scripted Ollama stand-in
//! (`common/fake_ollama.rs`), so what it was given is what this test reads; a second
//! stand-in is the node's own model, scripted to call `observe`. Before approval the
//! gateway refuses the events; while it is down they wait, bounded, and the oldest are
//! dropped and counted; after it is back the rest go.

mod common;
#[path = "common/fake_ollama.rs"]
mod fake_ollama;
#[path = "common/openclaw.rs"]
mod openclaw_gw;

use std::net::TcpStream;

use common::*;
use ed25519_dalek::{Signer, SigningKey};
use fake_ollama::{FakeOllama, Step};
use openclaw_gw::{GATEWAY_TOKEN, Gateway, Operator, b64url};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

const MODEL: &str = "qwen3:0.6b";

/// One gateway at a time (each takes about 800 MB).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A dial (a file the test writes) read every 200 ms, through the filter and the adaptive
/// stage, whose `max_step` makes it volatile at its first big step: a Change, after the
/// operator approved the node. One reading per 10 s goes: the gateway keeps only the
/// newest 20 system events between its agent's turns (about one every 10 to 30 s here).
fn pipeline(dial: &std::path::Path) -> String {
    format!(
        r#"
[[source]]
name = "dial"
kind = "file"
id = "dial"
path = "{}"
every = "200ms"

[[stage]]
name = "quiet"
kind = "filter"
from = ["dial"]

[[stage]]
name = "pace"
kind = "adaptive"
from = ["quiet"]
window = 2
hysteresis = 1
min = "200ms"
max = "1s"
max_step = {{ dial = 5.0 }}

[[sink]]
name = "store"
kind = "store"
from = ["pace"]

[[sink]]
name = "gateway"
kind = "openclaw"
from = ["pace"]
min_interval = "10s"
"#,
        dial.display()
    )
}

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

/// The gateway's notifications in what its agent was given (for a failure's message).
fn notifications(seen: &str) -> String {
    seen.match_indices("Notification posted")
        .map(|(i, _)| seen[i..].chars().take(220).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
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

/// Ask the node something its model (scripted) answers by calling `observe`.
fn observe_through_the_agent(agent: &Agent, ollama: &FakeOllama, text: &str) {
    ollama.push(Step::ToolCalls(vec![(
        "observe".into(),
        json!({"observation": text, "observation_type": "anomaly", "confidence": 0.9}),
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
}

#[test]
fn readings_changes_and_observations_reach_the_gateways_agent_rate_limited_and_bounded() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = TempDir::new("openclaw-events");
    let gw_ollama = FakeOllama::start(&[MODEL]);
    for _ in 0..50 {
        gw_ollama.push(Step::Text("HEARTBEAT_OK".into()));
    }
    let mut gw = Gateway::start_with_ollama(&dir.path().join("gw"), &[], &gw_ollama.url(), MODEL);
    let ollama = FakeOllama::start(&[MODEL, "nomic-embed-text"]);
    let port = free_port();
    let dial = dir.path().join("dial");
    std::fs::write(&dial, "10").unwrap();
    let cfg = write_config_extra(
        dir.path(),
        port,
        &pipeline(&dial),
        &format!(
            "[ollama]\nhost = \"127.0.0.1\"\nport = {}\nmodel = \"{MODEL}\"\nretries = 0\nconnect_timeout = \"1s\"\n\n\
             [openclaw]\nenabled = true\nurl = \"{}\"\ntoken = \"{GATEWAY_TOKEN}\"\nreconnect_max = \"2s\"\nevent_queue_max = 2\n",
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
    eventually(45, "events taken by the gateway", || {
        (oc_status(&agent)["events_sent"].as_u64() >= Some(2)).then_some(())
    });
    // The operator reads them in the gateway's status (`openclaw status`) until the
    // agent's next turn takes them.
    let reading = format!(
        "Notification posted (node={node_id} key=smollama.reading.file:dial package=smollama)"
    );
    let shown = eventually(60, "a reading in the gateway's status", || {
        let st = op.request("status", json!({})).ok()?;
        st["queuedSystemEvents"]
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .find(|e| e.starts_with(&reading))
            .map(str::to_string)
    });
    assert!(
        shown.contains("package=smollama): smollama test-node: file:dial - 10 at 20"),
        "{shown}"
    );
    // The dial jumps: the adaptive stage calls it volatile.
    std::fs::write(&dial, "90").unwrap();

    // An observation the node's agent stores goes too.
    observe_through_the_agent(&agent, &ollama, "The greenhouse door was left ajar");

    // The gateway's agent is given each as a system event of its main session, in the
    // gateway's own words.
    let change = "key=smollama.change.file:dial package=smollama): smollama test-node: file:dial turned volatile";
    let observation = "anomaly observation (confidence 0.90) - The greenhouse door was left ajar";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let seen = given_to_the_gateways_agent(&gw_ollama);
        if seen.contains(&reading) && seen.contains(change) && seen.contains(observation) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway's agent was not given a reading, the change and the observation; it was given: {}\nnode: {}\nsink: {}\nlog: {}",
            gw_ollama
                .requests()
                .iter()
                .map(|(p, b)| {
                    let t = b.to_string();
                    let n = notifications(&t);
                    format!(
                        "{p}: {} notifications, first {:?} last {:?}",
                        t.matches("Notification posted").count(),
                        n.lines()
                            .next()
                            .map(|l| l.chars().skip(100).collect::<String>()),
                        n.lines()
                            .last()
                            .map(|l| l.chars().skip(100).collect::<String>())
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            oc_status(&agent),
            sink_counters(&agent),
            agent
                .log()
                .lines()
                .filter(|l| l.contains("openclaw") || l.contains("observ"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    // The operator saw the agent woken for them (the gateway's `heartbeat` events).
    op.wait_event("heartbeat", std::time::Duration::from_secs(30));
    drop(op);

    // Why no gateway tool is offered to the node's agent (docs/openclaw.md): a node may
    // call only the node methods. If a gateway version opens these to nodes, this fails
    // and a tool over them becomes possible.
    let mut raw = RawNode::connect(&gw.url(), GATEWAY_TOKEN);
    for (method, params) in [
        ("tools.invoke", json!({"tool": "web_search", "args": {}})),
        ("memory.search", json!({"query": "greenhouse"})),
        ("agent", json!({"message": "hi", "idempotencyKey": "k1"})),
        ("sessions.list", json!({})),
    ] {
        let e = raw.request(method, params).expect_err(method);
        assert_eq!(e["message"], "unauthorized role: node", "{method}: {e}");
    }
    drop(raw);

    // At most one reading per source per min_interval (10 s) went; readings come every
    // 200 ms or faster, so most were held back.
    let c = sink_counters(&agent);
    let (readings, limited) = (
        c["readings"].as_u64().unwrap(),
        c["limited"].as_u64().unwrap(),
    );
    assert!(limited * 2 > readings, "most readings rate-limited: {c}");
    assert!(c["changes"].as_u64().unwrap() >= 1, "{c}");

    // The gateway goes away: the newest 2 wait, the oldest are dropped and counted.
    gw.stop();
    let st = eventually(30, "disconnected", || {
        let s = oc_status(&agent);
        (s["connected"] == false).then_some(s)
    });
    let dropped_before = st["events_dropped"].as_u64().unwrap();
    for text in [
        "The vent is stuck",
        "The vent moved",
        "The vent is stuck again",
    ] {
        observe_through_the_agent(&agent, &ollama, text);
    }
    let st = oc_status(&agent);
    assert_eq!(st["events_queued"], 2, "{st}");
    assert!(
        st["events_dropped"].as_u64().unwrap() > dropped_before,
        "{st}"
    );
    let sent_before = st["events_sent"].as_u64().unwrap();
    // Back (pairing kept): what waited goes.
    gw.restart();
    eventually(60, "the waiting events sent after the reconnect", || {
        let s = oc_status(&agent);
        (s["connected"] == true && s["events_sent"].as_u64() >= Some(sent_before + 2)).then_some(())
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
    let dial = dir.path().join("dial");
    std::fs::write(&dial, "10").unwrap();
    let cfg = write_config(dir.path(), port, &pipeline(&dial));
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

/// A bare node connection (a device of its own, signed v3 connect as `node-host`, as
/// this node's client does), to send the gateway methods smollama's client never would.
struct RawNode {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
}

impl RawNode {
    fn connect(url: &str, token: &str) -> RawNode {
        let (ws, _) = tungstenite::connect(url).expect("raw node: connect");
        let mut n = RawNode { ws, next: 0 };
        let challenge = loop {
            let f = n.read();
            if f["event"] == "connect.challenge" {
                break f["payload"].clone();
            }
        };
        let (nonce, ts) = (
            challenge["nonce"].as_str().unwrap().to_string(),
            challenge["ts"].as_i64().unwrap(),
        );
        let key = SigningKey::from_bytes(&Sha256::digest(b"raw-node-test-key").into());
        let public = key.verifying_key().to_bytes();
        let id: String = Sha256::digest(public)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let payload = format!("v3|{id}|node-host|node|node||{ts}|{token}|{nonce}|linux|");
        let signature = b64url(&key.sign(payload.as_bytes()).to_bytes());
        let hello = n
            .request(
                "connect",
                json!({
                    "minProtocol": 3, "maxProtocol": 4,
                    "client": {"id": "node-host", "version": "test", "platform": "linux", "mode": "node"},
                    "role": "node", "scopes": [], "caps": [], "commands": [], "permissions": {},
                    "auth": {"token": token},
                    "device": {"id": id, "publicKey": b64url(&public), "signature": signature,
                               "signedAt": ts, "nonce": nonce},
                }),
            )
            .expect("raw node: hello-ok");
        assert_eq!(hello["type"], "hello-ok");
        n
    }

    fn read(&mut self) -> Value {
        loop {
            if let Message::Text(t) = self.ws.read().expect("raw node: read") {
                return serde_json::from_str(&t).unwrap();
            }
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next += 1;
        let id = format!("raw{}", self.next);
        let frame = json!({"type": "req", "id": id, "method": method, "params": params});
        self.ws.send(Message::text(frame.to_string())).unwrap();
        loop {
            let f = self.read();
            if f["type"] == "res" && f["id"] == id {
                return if f["ok"] == true {
                    Ok(f["payload"].clone())
                } else {
                    Err(f["error"].clone())
                };
            }
        }
    }
}

/// The node's agent asks the gateway's agent (`ask_gateway`): the question runs in the
/// session `node-<deviceId>-ask` (`agent.request`), the node follows that session
/// (`chat.subscribe`) and its model is given the run's reply as the tool's result.
#[test]
fn the_nodes_agent_asks_the_gateways_agent_and_gets_its_answer() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = TempDir::new("openclaw-ask");
    let gw_ollama = FakeOllama::start(&[MODEL]);
    gw_ollama.push(Step::Text("It will rain at 4pm.".into()));
    let gw = Gateway::start_with_ollama(&dir.path().join("gw"), &[], &gw_ollama.url(), MODEL);
    let ollama = FakeOllama::start(&[MODEL, "nomic-embed-text"]);
    let port = free_port();
    let dial = dir.path().join("dial");
    std::fs::write(&dial, "10").unwrap();
    let cfg = write_config_extra(
        dir.path(),
        port,
        &pipeline(&dial)
            .replace("kind = \"openclaw\"", "kind = \"log\"")
            .replace("min_interval = \"10s\"\n", ""),
        &format!(
            "[ollama]\nhost = \"127.0.0.1\"\nport = {}\nmodel = \"{MODEL}\"\nretries = 0\nconnect_timeout = \"1s\"\n\n\
             [openclaw]\nenabled = true\nurl = \"{}\"\ntoken = \"{GATEWAY_TOKEN}\"\nask_timeout = \"60s\"\n",
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
    let mut op = Operator::connect(&gw.url(), GATEWAY_TOKEN);
    op.approve(&node_id);

    ollama.push(Step::ToolCalls(vec![(
        "ask_gateway".into(),
        json!({"question": "What is the weather forecast for the greenhouse?"}),
    )]));
    ollama.push(Step::Text("Rain at 4pm, says the gateway.".into()));
    let (code, a) = post_auth(
        &agent.url("/api/ask"),
        &json!({"question": "will it rain?"}).to_string(),
        Some(TOKEN),
        90,
    );
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["tools_used"], json!(["ask_gateway"]), "{a}");
    // The gateway's agent was given the question; the node's model its answer.
    let chats = ollama.bodies("/api/chat");
    let last = chats.last().unwrap().to_string();
    let asked = given_to_the_gateways_agent(&gw_ollama);
    assert!(
        asked.contains("What is the weather forecast for the greenhouse?"),
        "the gateway's agent was given: {asked}\nlog: {}\nthe node's model: {}",
        agent.log(),
        chats.last().unwrap()["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(last.contains("It will rain at 4pm."), "{last}");
    assert!(!agent.log().contains(GATEWAY_TOKEN));
}
