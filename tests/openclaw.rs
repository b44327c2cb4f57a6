//! smollama as a node of a real OpenClaw gateway (`scripts/openclaw-gateway.sh` starts
//! the npm `openclaw` under Node 24, headless on 127.0.0.1; `common/openclaw.rs` holds it
//! and a test-side operator client). Ollama is the scripted stand-in
//! (`common/fake_ollama.rs`), since no real model runs here. The gateway takes about
//! 800 MB and a few seconds to start, so the tests here run one after another.

mod common;
#[path = "common/fake_ollama.rs"]
mod fake_ollama;
#[path = "common/openclaw.rs"]
mod openclaw_gw;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use fake_ollama::{FakeOllama, Step};
use openclaw_gw::{GATEWAY_TOKEN, Gateway, Operator};
use serde_json::{Value, json};

/// One gateway at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Every command the node declares (and the allowlist the operator sets for them).
const COMMANDS: &[&str] = &[
    "smollama.sources.list",
    "smollama.source.read",
    "smollama.history",
    "smollama.recall",
    "smollama.gpio.list",
    "smollama.gpio.write",
    "smollama.ask",
];

const PIPELINE: &str = UPTIME_PIPELINE;

fn node_config(
    dir: &std::path::Path,
    port: u16,
    gw: &Gateway,
    token: &str,
    ollama: u16,
) -> std::path::PathBuf {
    write_config_extra(
        dir,
        port,
        PIPELINE,
        &format!(
            "[ollama]\nhost = \"127.0.0.1\"\nport = {ollama}\nmodel = \"qwen3:0.6b\"\nretries = 0\nconnect_timeout = \"1s\"\n\n\
             [openclaw]\nenabled = true\nurl = \"{}\"\ntoken = \"{token}\"\n",
            gw.url()
        ),
    )
}

/// `promtool check metrics` (Debian's prometheus, installed by ./scripts/test) passes.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus)");
    p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn oc_status(agent: &Agent) -> Value {
    get(&agent.url("/api/status")).unwrap().1["connections"]["openclaw"].clone()
}

/// The node's connect count reaches `n`.
fn connected(agent: &Agent, n: u64, secs: u64) -> Value {
    eventually(secs, "the node connected to the gateway", || {
        let s = oc_status(agent);
        (s["connected"] == true && s["connects"].as_u64() >= Some(n)).then_some(s)
    })
}

#[test]
fn the_node_is_approved_answers_every_command_and_survives_a_gateway_restart() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = TempDir::new("openclaw-node");
    let mut gw = Gateway::start(&dir.path().join("gw"), COMMANDS);
    let ollama = FakeOllama::start(&["qwen3:0.6b", "nomic-embed-text"]);
    let port = free_port();
    let cfg = node_config(dir.path(), port, &gw, GATEWAY_TOKEN, ollama.port());
    let agent = Agent::start(&cfg, port, &["run"]);
    let st = connected(&agent, 1, 30);
    let node_id = st["device_id"].as_str().unwrap().to_string();
    assert_eq!(node_id.len(), 64, "{st}");
    assert_eq!(st["state"], "pending approval", "{st}");
    assert!(
        st["approve_with"]
            .as_str()
            .unwrap()
            .contains("openclaw nodes approve")
    );
    // `smollama status` tells the operator the same.
    let (_, out, _) = run_cli(&["--config", cfg.to_str().unwrap(), "status"], &[]);
    assert!(out.contains("openclaw: pending approval"), "{out}");
    assert!(out.contains("openclaw nodes approve <requestId>"), "{out}");

    // The operator sees the node pending, with the commands it declared, and approves it.
    let mut op = Operator::connect(&gw.url(), GATEWAY_TOKEN);
    let pending = op.node(&node_id).expect("the node is in node.list");
    assert_eq!(pending["approvalState"], "pending-approval", "{pending}");
    assert_eq!(pending["clientId"], "node-host");
    let declared: Vec<&str> = pending["pendingDeclaredCommands"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for c in COMMANDS {
        assert!(declared.contains(c), "{c} missing from {pending}");
    }
    let request_id = pending["pendingRequestId"].as_str().unwrap().to_string();
    op.request("node.pair.approve", json!({"requestId": request_id}))
        .expect("node.pair.approve");
    eventually(20, "the node approved with its commands", || {
        let n = op.node(&node_id)?;
        (n["approvalState"] != "pending-approval"
            && n["commands"]
                .as_array()
                .is_some_and(|c| c.len() == COMMANDS.len()))
        .then_some(())
    });

    // Every command, through the gateway, with the tool's result.
    let sources = op
        .invoke(&node_id, "smollama.sources.list", json!({}))
        .expect("sources.list");
    assert!(sources.to_string().contains("system:uptime"), "{sources}");
    eventually(10, "a stored uptime reading", || {
        let r = op
            .invoke(
                &node_id,
                "smollama.source.read",
                json!({"source_id": "system:uptime"}),
            )
            .ok()?;
        r["value"].as_f64().map(|_| r)
    });
    let history = op
        .invoke(
            &node_id,
            "smollama.history",
            json!({"source_id": "system:uptime", "minutes": 5}),
        )
        .expect("history");
    assert!(history.to_string().contains("uptime"), "{history}");
    let recall = op
        .invoke(&node_id, "smollama.recall", json!({"query": "warm"}))
        .expect("recall");
    assert!(recall.is_object() || recall.is_array(), "{recall}");
    let pins = op
        .invoke(&node_id, "smollama.gpio.list", json!({}))
        .expect("gpio.list");
    assert!(pins.to_string().contains("fan"), "{pins}");
    let on = op
        .invoke(
            &node_id,
            "smollama.gpio.write",
            json!({"pin": "fan", "state": "HIGH"}),
        )
        .expect("gpio.write");
    assert_eq!(on["state"], "HIGH", "{on}");
    // A retried invoke (the same idempotency key) is not run twice: the fan, switched off
    // in between, stays off.
    let key = "fan-on-once";
    op.invoke_keyed(
        &node_id,
        "smollama.gpio.write",
        json!({"pin": "fan", "state": "HIGH"}),
        key,
    )
    .expect("gpio.write");
    op.invoke(
        &node_id,
        "smollama.gpio.write",
        json!({"pin": "fan", "state": "LOW"}),
    )
    .expect("gpio.write");
    let again = op
        .invoke_keyed(
            &node_id,
            "smollama.gpio.write",
            json!({"pin": "fan", "state": "HIGH"}),
            key,
        )
        .expect("the retry gets the first result");
    assert_eq!(again["state"], "HIGH", "{again}");
    let pins = op
        .invoke(&node_id, "smollama.gpio.list", json!({}))
        .expect("gpio.list");
    let fan = pins.to_string();
    assert!(
        fan.contains(r#""name":"fan","pin":22,"state":"LOW""#),
        "{pins}"
    );
    // An input cannot be written: a structured error comes back through the gateway.
    let refused = op
        .invoke(
            &node_id,
            "smollama.gpio.write",
            json!({"pin": "motion", "state": "HIGH"}),
        )
        .expect_err("an input pin");
    assert!(refused.to_string().contains("only outputs"), "{refused}");
    // Bad params: the tool's own schema says what is wrong.
    let bad = op
        .invoke(&node_id, "smollama.source.read", json!({"nope": 1}))
        .expect_err("bad params");
    assert!(bad.to_string().contains("INVALID_PARAMS"), "{bad}");
    ollama.push(Step::Text("It is 21 degrees.".into()));
    let answer = op
        .invoke(
            &node_id,
            "smollama.ask",
            json!({"question": "how warm is it?"}),
        )
        .expect("ask");
    assert!(answer.to_string().contains("21 degrees"), "{answer}");

    // A command outside the allowlist: the gateway refuses it, naming the allowlist.
    let outside = op
        .invoke(&node_id, "system.run", json!({"command": ["id"]}))
        .expect_err("system.run is not allowed");
    assert!(outside.to_string().contains("allow"), "{outside}");

    let st = oc_status(&agent);
    assert_eq!(st["state"], "connected", "{st}");
    assert_eq!(st["approved"], true);
    assert!(st["invokes"].as_u64().unwrap() >= 9, "{st}");
    // The same in /metrics, which Prometheus's own checker accepts.
    let metrics = ureq::get(&agent.url("/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("smollama_openclaw_connected 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("smollama_openclaw_invokes_total "),
        "{metrics}"
    );
    promtool_accepts(&metrics);

    // The gateway restarts: the node reconnects with its device token, still approved.
    drop(op);
    gw.restart();
    let st = connected(&agent, 2, 60);
    assert_eq!(st["auth_method"], "device-token", "{st}");
    let mut op = Operator::connect(&gw.url(), GATEWAY_TOKEN);
    let pins = op
        .invoke(&node_id, "smollama.gpio.list", json!({}))
        .expect("invoke after the restart, without a new approval");
    assert!(pins.to_string().contains("fan"), "{pins}");
    let log = agent.log();
    assert!(!log.contains(GATEWAY_TOKEN), "the token is never logged");
    let stored =
        std::fs::read_to_string(dir.path().join("data/store/openclaw-device.json")).unwrap();
    let token = serde_json::from_str::<Value>(&stored).unwrap()["deviceToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!log.contains(&token), "the device token is never logged");
}

#[test]
fn a_wrong_token_is_reported_and_retried_with_backoff() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = TempDir::new("openclaw-badtoken");
    let gw = Gateway::start(&dir.path().join("gw"), COMMANDS);
    let port = free_port();
    let cfg = node_config(dir.path(), port, &gw, "not-the-gateway-token", 9);
    let agent = Agent::start(&cfg, port, &["run"]);
    let t0 = Instant::now();
    let st = eventually(20, "the refusal in status", || {
        let s = oc_status(&agent);
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("AUTH_TOKEN_MISMATCH"))
            .then_some(s)
    });
    assert_eq!(st["connected"], false);
    assert!(
        st["last_error"]
            .as_str()
            .unwrap()
            .contains("[openclaw] token"),
        "{st}"
    );
    // 1 s, 2 s, 4 s, ... between attempts: within 8 s at most 4 attempts (not a loop).
    std::thread::sleep(Duration::from_secs(8).saturating_sub(t0.elapsed()));
    let attempts = oc_status(&agent)["connect_attempts"].as_u64().unwrap();
    assert!((2..=4).contains(&attempts), "{attempts} attempts in 8 s");
    assert!(!agent.log().contains("not-the-gateway-token"));
    // Waiting out its backoff, the client still stops at once with the agent.
    let (status, took, _) = agent.terminate();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
}
