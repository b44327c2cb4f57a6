//! The replicated log between real processes (issue 15): three nodes on one real
//! mosquitto write memories and observations through the agent's own tools (`remember`,
//! `observe`, called by a scripted stand-in for Ollama: `common/fake_ollama.rs`, since a
//! real model cannot run here) and converge to the same set, compared with `smollama
//! memory export`; a node cut off from the broker (`Relay`, standing in for a dropped
//! link) catches up when it comes back; an entry delivered twice changes nothing; a
//! memory reinforced on two nodes at once ends the same everywhere; and two nodes that
//! share no broker sync over `POST /api/sync/push` and `GET /api/sync/pull` only.

mod common;
#[path = "common/fake_ollama.rs"]
mod fake_ollama;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::broker::{Broker, Relay, Subscriber};
use common::node::{EMBED, MODEL, node_config};
use common::*;
use fake_ollama::{FakeOllama, Step};
use serde_json::{Value, json};

const A_FACT: &str = "The kitchen kettle boils in ninety seconds";

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

/// What `smollama memory export` writes, without the local ids (they differ per node),
/// sorted: the set a node holds.
fn export(cfg: &Path) -> Vec<Value> {
    let out = cfg.with_file_name(format!("export-{}.jsonl", rand_tag()));
    let (code, _, err) = run_cli(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "memory",
            "export",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let mut v: Vec<Value> = text
        .lines()
        .map(|l| {
            let mut j: Value = serde_json::from_str(l).unwrap();
            j.as_object_mut().unwrap().remove("id");
            j
        })
        .collect();
    v.sort_by_key(|j| j.to_string());
    v
}

fn rand_tag() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn texts(set: &[Value]) -> Vec<String> {
    let mut t: Vec<String> = set
        .iter()
        .map(|j| {
            j.get("fact")
                .or(j.get("text"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
        .collect();
    t.sort();
    t
}

/// Script the stand-in to call `remember` and `observe` once, then answer.
fn script_write(ollama: &FakeOllama, fact: &str, observation: &str) {
    ollama.push(Step::ToolCalls(vec![
        ("remember".into(), json!({ "fact": fact })),
        (
            "observe".into(),
            json!({ "observation": observation, "observation_type": "status" }),
        ),
    ]));
    ollama.push(Step::Text("noted".into()));
}

fn ask(port: u16) -> std::thread::JoinHandle<u16> {
    std::thread::spawn(move || {
        post_auth(
            &format!("http://127.0.0.1:{port}/api/ask"),
            r#"{"question": "note this"}"#,
            Some(TOKEN),
            60,
        )
        .0
    })
}

fn sync_status(agent: &Agent) -> Value {
    get(&agent.url("/api/status")).unwrap().1["sync"].clone()
}

struct Node {
    cfg: PathBuf,
    ollama: FakeOllama,
    agent: Agent,
}

fn start_node(dir: &Path, name: &str, broker: Option<u16>, sync: &str) -> Node {
    let ollama = FakeOllama::start(&[MODEL, EMBED]);
    let port = free_port();
    let mqtt = broker.map_or(String::new(), |b| {
        format!("[mqtt]\nbroker = \"127.0.0.1\"\nport = {b}\nreconnect_min = \"200ms\"\nreconnect_max = \"1s\"\n")
    });
    let cfg = node_config(
        &dir.join(name),
        name,
        port,
        PIPELINE,
        &mqtt,
        ollama.port(),
        sync,
    );
    let agent = Agent::start(&cfg, port, &["run"]);
    Node { cfg, ollama, agent }
}

#[test]
fn three_nodes_on_one_broker_converge_catch_up_and_ignore_duplicates() {
    let dir = TempDir::new("sync-three");
    let broker = Broker::start(dir.path());
    // Node c reaches the broker through a relay that the test can cut.
    let relay = Relay::start(broker.port);
    let sync = "catchup_interval = \"3s\"";
    let a = start_node(dir.path(), "a", Some(broker.port), sync);
    let b = start_node(dir.path(), "b", Some(broker.port), sync);
    let c = start_node(dir.path(), "c", Some(relay.port), sync);
    let watch = Subscriber::new(broker.port, "sync-watch", &["smollama/+/sync"]);

    // All three write at once, through the agent's tools.
    // Texts far apart, so no node takes another's for a near-duplicate.
    script_write(
        &a.ollama,
        A_FACT,
        "Kitchen temperature climbs every morning",
    );
    script_write(
        &b.ollama,
        "Garage door sensor is on pin 17",
        "Garage humidity spikes after rain",
    );
    script_write(
        &c.ollama,
        "Backups run at three at night",
        "CPU load peaks during backups",
    );
    let asks: Vec<_> = [&a, &b, &c].iter().map(|n| ask(n.agent.port)).collect();
    for h in asks {
        assert_eq!(h.join().unwrap(), 200);
    }
    let mut want = vec![
        A_FACT,
        "Kitchen temperature climbs every morning",
        "Garage door sensor is on pin 17",
        "Garage humidity spikes after rain",
        "Backups run at three at night",
        "CPU load peaks during backups",
    ];
    want.sort();
    let converged = |nodes: &[&Node], n: usize| {
        let sets: Vec<Vec<Value>> = nodes.iter().map(|x| export(&x.cfg)).collect();
        (sets[0].len() == n && sets.iter().all(|s| *s == sets[0])).then(|| sets[0].clone())
    };
    let set = eventually(30, "three nodes hold the same six items", || {
        converged(&[&a, &b, &c], 6)
    });
    assert_eq!(texts(&set), want);
    // Each item keeps the node it came from.
    let from_b = set
        .iter()
        .find(|j| j["fact"] == "Garage door sensor is on pin 17")
        .expect("b's memory");
    assert_eq!(from_b["node"], "b", "{from_b}");

    // The same entries delivered again change nothing (but are counted).
    let sent = eventually(10, "a's broadcast seen", || {
        // The first with entries (an empty one is a node's hello).
        watch.raw("smollama/a/sync").into_iter().find(|m| {
            serde_json::from_slice::<Value>(m)
                .is_ok_and(|j| j["entries"].as_array().is_some_and(|e| !e.is_empty()))
        })
    });
    let dup_before = sync_status(&b.agent)["duplicates"].as_u64().unwrap();
    watch.publish("smollama/a/sync", &sent, false);
    eventually(10, "the duplicate counted on b", || {
        (sync_status(&b.agent)["duplicates"].as_u64().unwrap() > dup_before).then_some(())
    });
    assert_eq!(export(&b.cfg), set, "a duplicate changed b's memory");

    // c is cut off while a and b write; it has none of it until it is back.
    relay.cut();
    std::thread::sleep(Duration::from_millis(500));
    script_write(
        &a.ollama,
        "Fridge compressor cycles hourly",
        "Evening light levels drop quickly",
    );
    script_write(
        &b.ollama,
        "Solar panel output peaks at noon",
        "Workshop saw draws high current",
    );
    let asks = [ask(a.agent.port), ask(b.agent.port)];
    for h in asks {
        assert_eq!(h.join().unwrap(), 200);
    }
    eventually(20, "a and b hold ten items", || converged(&[&a, &b], 10));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(export(&c.cfg).len(), 6, "c got entries while cut off");
    relay.restore();
    let set = eventually(30, "c catches up after the cut", || {
        converged(&[&a, &b, &c], 10)
    });
    assert!(texts(&set).contains(&"Solar panel output peaks at noon".to_string()));
    let st = sync_status(&c.agent);
    assert!(st["catchup_sent"].as_u64().unwrap() > 0, "{st}");

    // A memory reinforced on two nodes at once ends the same everywhere. b needs the
    // vector of a's memory to find it similar (entries carry no vectors).
    // b's re-embedding job looks for items without vectors after a question.
    b.ollama.push(Step::Text("hello".into()));
    assert_eq!(ask(b.agent.port).join().unwrap(), 200);
    eventually(30, "b has vectors for what it received", || {
        let (_, s) = get(&b.agent.url("/api/stats")).unwrap();
        (s["vectors"].as_u64().unwrap_or(0) >= 10).then_some(())
    });
    for n in [&a, &b] {
        n.ollama.push(Step::ToolCalls(vec![(
            "remember".into(),
            json!({ "fact": A_FACT }),
        )]));
        n.ollama.push(Step::Text("again".into()));
    }
    let asks = [ask(a.agent.port), ask(b.agent.port)];
    for h in asks {
        assert_eq!(h.join().unwrap(), 200);
    }
    let set = eventually(30, "the reinforced memory is the same on all three", || {
        let s = converged(&[&a, &b, &c], 10)?;
        let m = s.iter().find(|j| j["fact"] == A_FACT)?.clone();
        (m["times_confirmed"] == 2).then_some(s)
    });
    assert_eq!(texts(&set).len(), 10, "reinforcing added no memory");
}

#[test]
fn two_nodes_without_a_broker_sync_over_http_push_and_pull() {
    let dir = TempDir::new("sync-http");
    let a = start_node(dir.path(), "a", None, "max_push_kb = 4");
    let peer = format!(
        "peers = [\"http://127.0.0.1:{}\"]\npeer_token = \"{TOKEN}\"\ninterval = \"1s\"",
        a.agent.port
    );
    let b = start_node(dir.path(), "b", None, &peer);
    script_write(
        &a.ollama,
        A_FACT,
        "Kitchen temperature climbs every morning",
    );
    script_write(
        &b.ollama,
        "Garage door sensor is on pin 17",
        "Garage humidity spikes after rain",
    );
    let asks = [ask(a.agent.port), ask(b.agent.port)];
    for h in asks {
        assert_eq!(h.join().unwrap(), 200);
    }
    let set = eventually(30, "both hold the same four items", || {
        let (x, y) = (export(&a.cfg), export(&b.cfg));
        (x.len() == 4 && x == y).then_some(x)
    });
    let mut want = [
        A_FACT,
        "Kitchen temperature climbs every morning",
        "Garage door sensor is on pin 17",
        "Garage humidity spikes after rain",
    ];
    want.sort();
    assert_eq!(texts(&set), want);
    let st = sync_status(&b.agent);
    assert!(st["peer_ok"].as_u64().unwrap() > 0, "{st}");
    assert!(sync_status(&a.agent)["pulls_served"].as_u64().unwrap() > 0);

    // The original's wire form, as its client sends it: accepted, then idempotent.
    let entry = json!({
        "id": "6f1c1a52-0000-4000-8000-000000000001",
        "lamport_ts": 7,
        "node_id": "python-node",
        "event_type": "memory",
        "payload": {"ref": "6f1c1a52-0000-4000-8000-000000000001", "fact": "from python",
                    "confidence": 0.5, "times_confirmed": 1, "active": true,
                    "first_seen_us": 1, "last_seen_us": 1},
        "created_at": "2026-12-01T10:00:00Z",
        "synced_at": null,
    });
    let body = json!({"node_id": "python-node", "entries": [entry]}).to_string();
    for _ in 0..2 {
        let (code, j) = post_auth(&a.agent.url("/api/sync/push"), &body, Some(TOKEN), 10);
        assert_eq!(code, 200, "{j}");
        assert_eq!(j["accepted_ids"][0], entry["id"]);
    }
    assert_eq!(
        export(&a.cfg)
            .iter()
            .filter(|j| j["fact"] == "from python")
            .count(),
        1
    );
    let (code, _) = post_auth(&a.agent.url("/api/sync/push"), &body, None, 10);
    assert_eq!(code, 401, "push without the token");
    let (code, _) = get(&format!("{}?since=0", a.agent.url("/api/sync/pull"))).unwrap();
    assert_eq!(code, 401, "pull without the token");

    // Past max_push_kb: refused and counted.
    let big = json!({"node_id": "python-node", "entries": [], "pad": "x".repeat(8192)});
    let (code, _) = post_auth(
        &a.agent.url("/api/sync/push"),
        &big.to_string(),
        Some(TOKEN),
        10,
    );
    assert_eq!(code, 413);
    assert_eq!(sync_status(&a.agent)["push_refused"], 1);
    let (_, m) = (0, ureq_metrics(&a.agent));
    assert!(m.contains("smollama_sync_push_refused_total 1\n"), "{m}");
}

fn ureq_metrics(agent: &Agent) -> String {
    let mut r = ureq::get(&agent.url("/metrics")).call().unwrap();
    r.body_mut().read_to_string().unwrap()
}

#[test]
fn a_node_joining_late_or_stopped_while_the_other_writes_catches_up() {
    let dir = TempDir::new("sync-restart");
    let broker = Broker::start(dir.path());
    let a = start_node(dir.path(), "a", Some(broker.port), "");
    script_write(
        &a.ollama,
        A_FACT,
        "Kitchen temperature climbs every morning",
    );
    assert_eq!(ask(a.agent.port).join().unwrap(), 200);
    // b joins after a wrote (and a writes nothing more): their hellos introduce them.
    std::thread::sleep(Duration::from_millis(500));
    let b = start_node(dir.path(), "b", Some(broker.port), "");
    eventually(20, "b has a's first two items", || {
        (export(&b.cfg).len() == 2).then_some(())
    });
    // b stops (SIGTERM); a writes meanwhile; the broker keeps nothing for b (clean
    // sessions), so only b's catch-up request on its restart can bring these.
    let port = b.agent.port;
    let (st, _, log) = b.agent.terminate();
    assert!(st.success(), "{log}");
    script_write(
        &a.ollama,
        "Fridge compressor cycles hourly",
        "Evening light levels drop quickly",
    );
    assert_eq!(ask(a.agent.port).join().unwrap(), 200);
    eventually(10, "a holds four items", || {
        (export(&a.cfg).len() == 4).then_some(())
    });
    let b_again = Agent::start(&b.cfg, port, &["run"]);
    let set = eventually(30, "b caught up after its restart", || {
        let (x, y) = (export(&a.cfg), export(&b.cfg));
        (y.len() == 4 && x == y).then_some(y)
    });
    assert!(texts(&set).contains(&"Fridge compressor cycles hourly".to_string()));
    let st = get(&b_again.url("/api/status")).unwrap().1["sync"].clone();
    assert!(st["catchup_sent"].as_u64().unwrap() > 0, "{st}");
}
