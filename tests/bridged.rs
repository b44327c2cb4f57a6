//! Two sites, bridged brokers (issue 15): two real mosquittos, site B's bridged to site
//! A's with the configuration `docs/multi-node.md` shows (read from the page, so the
//! documented lines are the tested ones), and a smollama node on each. Readings, status
//! and sync cross the bridge both ways: each node's readings are in the other's
//! `/api/cluster/readings`, each one's retained `online` reaches the other site, and a
//! memory written on one (through the agent's tools, called by a scripted stand-in for
//! Ollama: `common/fake_ollama.rs`) is recalled on the other with `cross_node_recall`.

mod common;
#[path = "common/fake_ollama.rs"]
mod fake_ollama;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::broker::{Broker, Subscriber};
use common::node::{EMBED, MODEL, node_config};
use common::*;
use fake_ollama::{FakeOllama, Step};
use serde_json::{Value, json};

/// Site A's broker as the documented bridge names it.
const DOC_ADDRESS: &str = "broker.site-a.lan:1883";

/// Each node: its uptime stored and published as a batch every second, and every other
/// node's batches into its store (the default pipeline does the same, slower).
const PIPELINE: &str = r#"
[[source]]
name = "system"
kind = "system"
every = "200ms"
metrics = ["uptime"]

[[source]]
name = "nodes"
kind = "mqtt"
topics = ["smollama/+/readings"]

[[sink]]
name = "store"
kind = "store"
from = ["system", "nodes"]

[[sink]]
name = "mqtt"
kind = "mqtt"
from = ["system"]
format = "batch"
batch_every = "1s"
"#;

/// The bridge block of `docs/multi-node.md` ("Two sites, bridged brokers").
fn documented_bridge() -> String {
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/multi-node.md"),
    )
    .unwrap();
    let section = doc
        .split("## Two sites, bridged brokers")
        .nth(1)
        .expect("the section in docs/multi-node.md");
    let block = section
        .split("```conf\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a ```conf block in the section");
    assert!(block.contains(DOC_ADDRESS), "{block}");
    block.to_string()
}

/// Site B's mosquitto: a listener of its own, and the documented bridge to site A.
struct BridgedBroker {
    port: u16,
    child: Child,
}

impl BridgedBroker {
    fn start(dir: &Path, site_a: u16) -> BridgedBroker {
        let port = free_port();
        let dir = dir.join("broker-b");
        std::fs::create_dir_all(&dir).unwrap();
        let bridge = documented_bridge().replace(DOC_ADDRESS, &format!("127.0.0.1:{site_a}"));
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\nlog_dest stderr\nlog_type error\n\n{bridge}",
                dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "site B's mosquitto did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        BridgedBroker { port, child }
    }
}

impl Drop for BridgedBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Node {
    ollama: FakeOllama,
    agent: Agent,
}

fn start(dir: &Path, name: &str, broker: u16) -> Node {
    let ollama = FakeOllama::start(&[MODEL, EMBED]);
    let port = free_port();
    let mqtt = mqtt_section(broker, "");
    let cfg = node_config(
        &dir.join(name),
        name,
        port,
        PIPELINE,
        &mqtt,
        ollama.port(),
        "catchup_interval = \"2s\"\n",
    );
    Node {
        agent: Agent::start(&cfg, port, &["run"]),
        ollama,
    }
}

fn ask(node: &Node) {
    let (code, body) = post_auth(
        &node.agent.url("/api/ask"),
        r#"{"question": "go on"}"#,
        Some(TOKEN),
        60,
    );
    assert_eq!(code, 200, "{body}");
}

/// The JSON a tool returned, from the stand-in's last chat request.
fn tool_result(ollama: &FakeOllama, tool: &str) -> Value {
    let last = ollama.bodies("/api/chat").pop().expect("a chat request");
    let msg = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "tool" && m["tool_name"] == tool)
        .unwrap_or_else(|| panic!("no {tool} result in {last}"))
        .clone();
    serde_json::from_str(msg["content"].as_str().unwrap()).unwrap()
}

/// `other`'s uptime in `node`'s cluster view.
fn sees_readings_of(node: &Node, other: &str) -> Option<Value> {
    let (_, r) = get(&node
        .agent
        .url(&format!("/api/cluster/readings?node={other}")))
    .ok()?;
    r["readings"]
        .as_array()?
        .iter()
        .find(|x| x["source_id"] == "system:uptime")
        .cloned()
}

fn remember(node: &Node, fact: &str) {
    node.ollama.push(Step::ToolCalls(vec![(
        "remember".into(),
        json!({ "fact": fact }),
    )]));
    node.ollama.push(Step::Text("noted".into()));
    ask(node);
}

/// Ask `node`'s agent to `cross_node_recall` `query` from `from`; the texts it got.
fn recall_from(node: &Node, query: &str, from: &str) -> Vec<String> {
    node.ollama.push(Step::ToolCalls(vec![(
        "cross_node_recall".into(),
        json!({ "query": query, "node_filter": from }),
    )]));
    node.ollama.push(Step::Text("found".into()));
    ask(node);
    let r = tool_result(&node.ollama, "cross_node_recall");
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["node"] == from)
        .map(|x| x["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn readings_status_and_sync_cross_a_bridge_both_ways() {
    let dir = TempDir::new("bridged");
    let broker_a = Broker::start(dir.path());
    let broker_b = BridgedBroker::start(dir.path(), broker_a.port);
    let watch_a = Subscriber::new(broker_a.port, "watch-site-a", &["smollama/+/status"]);
    let watch_b = Subscriber::new(broker_b.port, "watch-site-b", &["smollama/+/status"]);
    let house = start(dir.path(), "house", broker_a.port);
    let workshop = start(dir.path(), "workshop", broker_b.port);

    // Status: each node's `online` reaches the other site's broker.
    let online = |w: &Subscriber, topic: &str| {
        w.raw(topic)
            .iter()
            .any(|m| m.as_slice() == b"online")
            .then_some(())
    };
    eventually(30, "house online at site B", || {
        online(&watch_b, "smollama/house/status")
    });
    eventually(30, "workshop online at site A", || {
        online(&watch_a, "smollama/workshop/status")
    });

    // Readings: each node's in the other's cluster view, marked with its node.
    let r = eventually(30, "house's readings on workshop", || {
        sees_readings_of(&workshop, "house")
    });
    assert_eq!(r["full_id"], "house:system:uptime");
    let r = eventually(30, "workshop's readings on house", || {
        sees_readings_of(&house, "workshop")
    });
    assert_eq!(r["node"], "workshop");

    // Sync: a memory written at each site is recalled at the other.
    remember(&house, "The house boiler restarts at six");
    remember(&workshop, "The workshop compressor trips its breaker");
    let wait_recall = |node: &Node, query: &str, from: &str, fact: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if recall_from(node, query, from).iter().any(|t| t == fact) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{fact} never recalled from {from}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    wait_recall(
        &workshop,
        "boiler restarts",
        "house",
        "The house boiler restarts at six",
    );
    wait_recall(
        &house,
        "compressor breaker",
        "workshop",
        "The workshop compressor trips its breaker",
    );
    let (_, stats) = get(&house.agent.url("/api/cluster/stats")).unwrap();
    let w = stats["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "workshop")
        .unwrap_or_else(|| panic!("{stats}"));
    assert_eq!(w["memories_count"], 1, "{stats}");
}
