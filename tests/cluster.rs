//! One view of every node (issue 15, item 4), between real processes on a real
//! mosquitto: a `kitchen` node publishes its readings (the original's batches) and
//! writes an observation and a memory through the agent's own tools (called by a
//! scripted stand-in for Ollama, `common/fake_ollama.rs`, since a real model cannot run
//! here); the aggregating `llm` node, which never asks kitchen anything, shows kitchen's
//! readings, observations and numbers in `/api/cluster/*` with a node filter, and its
//! agent reaches them through `cross_node_recall` and `read_source`; the dashboard's
//! Readings and Observations pages show them with a node filter in a real browser
//! (Debian's chromium, headless: `tests/cluster_dashboard.py`).

mod common;
#[path = "common/fake_ollama.rs"]
mod fake_ollama;

use std::path::{Path, PathBuf};

use common::broker::Broker;
use common::node::{EMBED, MODEL, node_config};
use common::*;
use fake_ollama::{FakeOllama, Step};
use serde_json::{Value, json};

/// An edge node: uptime every 200 ms, stored, and published as a batch every second.
const EDGE: &str = r#"
[[source]]
name = "system"
kind = "system"
every = "200ms"
metrics = ["uptime"]

[[sink]]
name = "store"
kind = "store"
from = ["system"]

[[sink]]
name = "mqtt"
kind = "mqtt"
from = ["system"]
format = "batch"
batch_every = "1s"
"#;

/// The aggregating node: its own uptime, and every node's batches into its store.
const AGGREGATOR: &str = r#"
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
"#;

struct Node {
    ollama: FakeOllama,
    agent: Agent,
}

fn start(dir: &Path, name: &str, broker: u16, pipeline: &str) -> Node {
    let ollama = FakeOllama::start(&[MODEL, EMBED]);
    let port = free_port();
    let mqtt = mqtt_section(broker, "");
    let cfg = node_config(
        &dir.join(name),
        name,
        port,
        pipeline,
        &mqtt,
        ollama.port(),
        "",
    );
    let agent = Agent::start(&cfg, port, &["run"]);
    Node { ollama, agent }
}

fn ask(node: &Node) -> u16 {
    post_auth(
        &node.agent.url("/api/ask"),
        r#"{"question": "go on"}"#,
        Some(TOKEN),
        60,
    )
    .0
}

/// The content of the tool message answering `tool` in the stand-in's last chat request.
fn tool_result(ollama: &FakeOllama, tool: &str) -> Value {
    let bodies = ollama.bodies("/api/chat");
    let last = bodies.last().expect("a chat request");
    let msg = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "tool" && m["tool_name"] == tool)
        .unwrap_or_else(|| panic!("no {tool} result in {last}"));
    let content = msg["content"].as_str().unwrap();
    serde_json::from_str(content).unwrap_or_else(|_| Value::String(content.into()))
}

#[test]
fn the_aggregating_node_shows_every_nodes_readings_observations_and_numbers() {
    let dir = TempDir::new("cluster-view");
    let broker = Broker::start(dir.path());
    let llm = start(dir.path(), "llm", broker.port, AGGREGATOR);
    let kitchen = start(dir.path(), "kitchen", broker.port, EDGE);

    kitchen.ollama.push(Step::ToolCalls(vec![
        (
            "observe".into(),
            json!({"observation": "Fridge door left open overnight", "observation_type": "anomaly"}),
        ),
        (
            "remember".into(),
            json!({"fact": "The fridge door sensor is on pin 5"}),
        ),
    ]));
    kitchen.ollama.push(Step::Text("noted".into()));
    assert_eq!(ask(&kitchen), 200);

    // Readings: kitchen's, by node, next to llm's own.
    let all = eventually(30, "kitchen's readings on llm", || {
        let (_, r) = get(&llm.agent.url("/api/cluster/readings")).ok()?;
        (r["nodes"] == json!(["kitchen", "llm"])).then_some(r)
    });
    let rows = all["readings"].as_array().unwrap();
    let row = |node: &str| {
        rows.iter()
            .find(|r| r["node"] == node && r["source_id"] == "system:uptime")
            .unwrap_or_else(|| panic!("no {node} uptime in {all}"))
    };
    assert_eq!(row("kitchen")["full_id"], "kitchen:system:uptime");
    assert!(row("kitchen")["value"].as_f64().unwrap() > 0.0);
    assert_eq!(row("llm")["full_id"], "system:uptime");
    let (code, only) = get(&llm.agent.url("/api/cluster/readings?node=kitchen")).unwrap();
    assert_eq!(code, 200);
    assert_eq!(only["filter"], "kitchen");
    assert!(
        only["readings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["node"] == "kitchen")
            && only["count"].as_u64().unwrap() >= 1,
        "{only}"
    );
    let (_, none) = get(&llm.agent.url("/api/cluster/readings?node=attic")).unwrap();
    assert_eq!(none["count"], 0);
    assert_eq!(
        none["nodes"],
        json!(["kitchen", "llm"]),
        "the nodes there are"
    );
    let (code, _) = get(&llm.agent.url("/api/cluster/readings?nod=kitchen")).unwrap();
    assert_eq!(code, 400, "an unknown parameter is refused");

    // Observations: kitchen's, marked with its node, arrived by sync.
    let obs = eventually(30, "kitchen's observation on llm", || {
        let (_, r) = get(&llm.agent.url("/api/cluster/observations?node=kitchen")).ok()?;
        (r["count"] == 1).then_some(r)
    });
    let o = &obs["observations"][0];
    assert_eq!(o["text"], "Fridge door left open overnight");
    assert_eq!(o["node"], "kitchen");
    assert_eq!(o["type"], "anomaly");
    let (_, mine) = get(&llm.agent.url("/api/cluster/observations?node=llm")).unwrap();
    assert_eq!(mine["count"], 0, "{mine}");
    let (_, merged) = get(&llm.agent.url("/api/cluster/observations?limit=1")).unwrap();
    assert_eq!(merged["count"], 1);

    // Numbers per node and in total.
    let stats = eventually(30, "kitchen's memory counted on llm", || {
        let (_, s) = get(&llm.agent.url("/api/cluster/stats")).ok()?;
        let k = s["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["node"] == "kitchen")?
            .clone();
        (k["memories_count"] == 1).then_some((s, k))
    });
    let (s, k) = stats;
    assert_eq!(s["node"], "llm");
    assert_eq!(s["node_count"], 2, "{s}");
    assert_eq!(k["local"], false);
    assert_eq!(k["source_count"], 1, "{k}");
    assert!(k["readings_count"].as_u64().unwrap() >= 1, "{k}");
    assert_eq!(k["observations_count"], 1);
    assert!(
        k["last_reading"].is_string() && k["last_sync"].is_string(),
        "{k}"
    );
    assert!(k["last_traffic"].is_string());
    let l = s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "llm")
        .unwrap();
    assert_eq!(l["local"], true);
    assert_eq!(l["memories_count"], 0);
    let sum = |key: &str| -> u64 {
        s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n[key].as_u64().unwrap())
            .sum()
    };
    for key in [
        "source_count",
        "readings_count",
        "observations_count",
        "memories_count",
    ] {
        assert_eq!(s["totals"][key].as_u64().unwrap(), sum(key), "{key}: {s}");
    }

    // The agent on llm: kitchen's memory by cross_node_recall, its reading by read_source.
    llm.ollama.push(Step::ToolCalls(vec![
        (
            "cross_node_recall".into(),
            json!({"query": "fridge door", "node_filter": "kitchen"}),
        ),
        (
            "read_source".into(),
            json!({"source_id": "kitchen/system:uptime"}),
        ),
    ]));
    llm.ollama.push(Step::Text("the fridge".into()));
    assert_eq!(ask(&llm), 200);
    let found = tool_result(&llm.ollama, "cross_node_recall");
    assert_eq!(found["node_filter"], "kitchen");
    assert_eq!(found["nodes_with_results"], json!(["kitchen"]), "{found}");
    let texts: Vec<&str> = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert!(
        texts.contains(&"The fridge door sensor is on pin 5"),
        "{found}"
    );
    assert!(
        texts.contains(&"Fridge door left open overnight"),
        "{found}"
    );
    let read = tool_result(&llm.ollama, "read_source");
    assert_eq!(read["source_id"], "kitchen:system:uptime", "{read}");
    assert!(read["value"].as_f64().unwrap() > 0.0);

    // The dashboard's Readings and Observations pages in a real browser (headless
    // chromium, tests/cluster_dashboard.py), filtered by node.
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cluster_dashboard.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args([
            "--url",
            &llm.agent.url(""),
            "--node",
            "kitchen",
            "--local",
            "llm",
        ])
        .args(["--observation", "Fridge door left open overnight"])
        .output()
        .expect("run python3 tests/cluster_dashboard.py (needs chromium)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
