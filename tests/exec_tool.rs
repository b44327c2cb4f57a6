//! Exec tools end to end: manifests in `[plugins] dir` declare programs the model may
//! call; the real binary runs them for a scripted model (`common/fake_ollama.rs`) over
//! `smollama ask`, MQTT (a real mosquitto) and `POST /api/ask`. The example of
//! `docs/plugins.md` is one of them, run as the docs show it.

mod common;
#[path = "common/fake_ollama.rs"]
mod fake_ollama;

use std::path::{Path, PathBuf};

use common::broker::{Broker, Subscriber};
use common::*;
use fake_ollama::{FakeOllama, Step};
use serde_json::{Value, json};

const MODEL: &str = "gemma4:e2b";

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

/// An executable script.
fn script(path: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_path_buf()
}

/// The body of the first fenced block of `lang` in the manifests part of
/// `docs/plugins.md` (the page's first part has pipeline snippets in TOML too).
fn docs_block(lang: &str) -> String {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/plugins.md")).unwrap();
    let part = docs
        .find("## External plugins: manifests")
        .expect("the manifests part of docs/plugins.md");
    let docs = &docs[part..];
    let start = docs
        .find(&format!("```{lang}\n"))
        .unwrap_or_else(|| panic!("no {lang} block"))
        + lang.len()
        + 4;
    let end = start + docs[start..].find("```").unwrap();
    docs[start..end].to_string()
}

/// A manifest for an exec tool running `prog`, with more keys.
fn manifest(dir: &Path, name: &str, prog: &Path, extra: &str) {
    std::fs::write(
        dir.join(format!("{name}.toml")),
        format!(
            "kind = \"tool\"\ntype = \"exec\"\nname = \"{name}\"\ndescription = \"The {name} test tool.\"\ncommand = [\"{}\"]\n{extra}\n",
            prog.display()
        ),
    )
    .unwrap();
}

/// A write tool that leaves `<script>.ran` behind when it runs.
fn switch_tool(dir: &Path, plugins: &Path) -> PathBuf {
    let prog = script(
        &dir.join("switch.sh"),
        "#!/bin/sh\ntouch \"$0.ran\"\necho '{\"switched\": true}'\n",
    );
    manifest(plugins, "switch", &prog, "writes = true");
    dir.join("switch.sh.ran")
}

/// The tool results the model was given in `chat`, in order, parsed.
fn tool_results(chat: &Value) -> Vec<(String, Value)> {
    chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            (
                m["tool_name"].as_str().unwrap().to_string(),
                serde_json::from_str(m["content"].as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn smollama_ask_runs_exec_tools_within_their_bounds() {
    let dir = TempDir::new("exec-ask");
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir(&plugins).unwrap();
    // The docs' example, as the docs give it (the program's path is ours).
    let df = script(&dir.path().join("disk-free"), &docs_block("python"));
    std::fs::write(
        plugins.join("disk_free.toml"),
        docs_block("toml").replace("/usr/local/lib/smollama/disk-free", df.to_str().unwrap()),
    )
    .unwrap();
    // Echoes its arguments, counting its runs.
    let echo = script(
        &dir.path().join("echo.sh"),
        "#!/bin/sh\necho run >> \"$0.ran\"\ncat\n",
    );
    manifest(
        &plugins,
        "echo_args",
        &echo,
        "parameters = '{\"properties\": {\"n\": {\"type\": \"integer\"}}, \"required\": [\"n\"]}'",
    );
    let slow = script(
        &dir.path().join("slow.sh"),
        "#!/bin/sh\nsleep 60\necho '{}'\n",
    );
    manifest(&plugins, "slow", &slow, "timeout = \"1s\"");
    let huge = script(
        &dir.path().join("huge.sh"),
        "#!/bin/sh\nhead -c 10000000 /dev/zero | tr '\\0' x\n",
    );
    manifest(&plugins, "huge", &huge, "");
    let switched = switch_tool(dir.path(), &plugins);
    let env = script(
        &dir.path().join("env.sh"),
        "#!/bin/sh\nif env | grep -q '^SMOLLAMA_'; then echo '{\"leaked\": true}'; else echo '{\"leaked\": false}'; fi\n",
    );
    manifest(&plugins, "env", &env, "");

    let ollama = FakeOllama::start(&[MODEL]);
    ollama.push(Step::ToolCalls(vec![
        ("disk_free".into(), json!({"path": "/"})),
        ("echo_args".into(), json!({"n": "3"})),
        ("echo_args".into(), json!({"n": "three"})),
        ("slow".into(), json!({})),
        ("huge".into(), json!({})),
        ("switch".into(), json!({})),
        ("env".into(), json!({})),
    ]));
    ollama.push(Step::Text("All checked.".into()));
    let cfg = write_config_extra(
        dir.path(),
        free_port(),
        PIPELINE,
        &format!(
            "[ollama]\nhost = \"127.0.0.1\"\nport = {}\nmodel = \"{MODEL}\"\nretries = 0\n\n[plugins]\ndir = \"{}\"\n",
            ollama.port(),
            plugins.display()
        ),
    );
    let t0 = std::time::Instant::now();
    let (code, out, err) = run_cli_within(
        30,
        &["--config", cfg.to_str().unwrap(), "ask", "check everything"],
        &[("SMOLLAMA_MQTT_PASSWORD", "secret")],
        &[],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "All checked.");
    // `sleep 60` was killed at its 1s timeout.
    assert!(t0.elapsed().as_secs() < 20, "{:?}", t0.elapsed());

    let chats = ollama.bodies("/api/chat");
    assert_eq!(chats.len(), 2);
    let offered = chats[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "disk_free")
        .expect("the exec tool is offered");
    assert_eq!(
        offered["function"]["parameters"]["required"],
        json!(["path"])
    );
    assert_eq!(
        chats[0]["tools"].as_array().unwrap()[0]["function"]["name"],
        "read_source",
        "built-in tools come first"
    );
    let results = tool_results(&chats[1]);
    let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "disk_free",
            "echo_args",
            "echo_args",
            "slow",
            "huge",
            "switch",
            "env"
        ]
    );
    assert_eq!(results[0].1["path"], "/");
    assert!(results[0].1["free_mb"].is_u64(), "{}", results[0].1);
    // The checked (normalised) arguments reached the program.
    assert_eq!(results[1].1, json!({"n": 3}));
    let e = results[2].1["error"].as_str().unwrap();
    assert!(e.starts_with("argument 'n':"), "{e}");
    let runs = std::fs::read_to_string(dir.path().join("echo.sh.ran")).unwrap();
    assert_eq!(runs.lines().count(), 1, "the refused call did not run");
    assert_eq!(results[3].1, json!({"error": "timed out after 1s"}));
    let e = results[4].1["error"].as_str().unwrap();
    assert!(e.contains("exceeds max_output_kb (64 KiB)"), "{e}");
    // A local operator may run write tools.
    assert_eq!(results[5].1, json!({"switched": true}));
    assert!(switched.exists());
    // The agent's settings from the environment (secrets among them) are not passed on.
    assert_eq!(results[6].1, json!({"leaked": false}));
    // Each call logged with its outcome, not its arguments.
    assert!(err.contains("exec tool echo_args ok in"), "{err}");
    assert!(err.contains("exec tool slow failed in"), "{err}");
}

fn agent_config(dir: &Path, port: u16, broker: u16, ollama: u16, plugins: &Path) -> PathBuf {
    write_config_extra(
        dir,
        port,
        PIPELINE,
        &format!(
            "[mqtt]\nbroker = \"127.0.0.1\"\nport = {broker}\nreconnect_min = \"200ms\"\n\n\
             [ollama]\nhost = \"127.0.0.1\"\nport = {ollama}\nmodel = \"{MODEL}\"\nretries = 0\nconnect_timeout = \"1s\"\n\n\
             [plugins]\ndir = \"{}\"\n",
            plugins.display()
        ),
    )
}

#[test]
fn a_write_tool_is_refused_over_mqtt_and_runs_for_post_api_ask() {
    let dir = TempDir::new("exec-trust");
    let broker = Broker::start(dir.path());
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir(&plugins).unwrap();
    let switched = switch_tool(dir.path(), &plugins);
    // An invalid manifest is skipped at start with a warning; the rest runs.
    std::fs::write(
        plugins.join("broken.toml"),
        "kind = \"tool\"\ntype = \"exec\"\nname = \"broken\"\ndescription = \"d\"\ncommand = [\"/opt/nowhere/prog\"]\n",
    )
    .unwrap();
    let ollama = FakeOllama::start(&[MODEL]);
    ollama.push(Step::ToolCalls(vec![("switch".into(), json!({}))]));
    ollama.push(Step::Text("I may not.".into()));
    ollama.push(Step::ToolCalls(vec![("switch".into(), json!({}))]));
    ollama.push(Step::Text("Switched.".into()));
    let sub = Subscriber::new(broker.port, "asker", &["replies/#"]);
    let port = free_port();
    let cfg = agent_config(dir.path(), port, broker.port, ollama.port(), &plugins);
    let agent = Agent::start(&cfg, port, &[]);
    eventually(10, "mqtt connected", || {
        (get(&agent.url("/api/status")).ok()?.1["connections"]["mqtt"]["state"] == "connected")
            .then_some(())
    });
    let broken = plugins.join("broken.toml").display().to_string();
    let log = agent.log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains(&format!(
                "{broken}:5: command: /opt/nowhere/prog does not exist"
            ))),
        "{log}"
    );

    sub.publish(
        "smollama/test-node/ask",
        br#"{"id": "q1", "question": "switch it", "reply_to": "replies/me"}"#,
        false,
    );
    let answer = eventually(15, "the answer", || sub.on("replies/me").pop());
    assert_eq!(answer["answer"], "I may not.");
    let chats = ollama.bodies("/api/chat");
    let e = tool_results(&chats[1])[0].1["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with("switch is a write tool; this question's origin is not trusted"),
        "{e}"
    );
    assert!(
        !switched.exists(),
        "the write tool ran for an MQTT question"
    );
    let tools = &get(&agent.url("/api/status")).unwrap().1["connections"]["ollama"]["tools"];
    assert_eq!(tools["writes_refused"], 1, "{tools}");
    assert_eq!(tools["exec_calls"], 0, "{tools}");

    let (code, a) = post_auth(
        &agent.url("/api/ask"),
        r#"{"question": "switch it"}"#,
        Some(TOKEN),
        20,
    );
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["answer"], "Switched.");
    let chats = ollama.bodies("/api/chat");
    assert_eq!(tool_results(&chats[3])[0].1, json!({"switched": true}));
    assert!(switched.exists());
    let tools = &get(&agent.url("/api/status")).unwrap().1["connections"]["ollama"]["tools"];
    assert_eq!(
        (
            &tools["exec_calls"],
            &tools["exec_failed"],
            &tools["writes_refused"]
        ),
        (&json!(1), &json!(0), &json!(1)),
        "{tools}"
    );
}

#[test]
fn stopping_the_agent_kills_a_running_exec_tool() {
    let dir = TempDir::new("exec-stop");
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir(&plugins).unwrap();
    let started = dir.path().join("long.sh.started");
    let long = script(
        &dir.path().join("long.sh"),
        "#!/bin/sh\ntouch \"$0.started\"\nsleep 60\necho '{}'\n",
    );
    manifest(&plugins, "long", &long, "timeout = \"10m\"");
    let ollama = FakeOllama::start(&[MODEL]);
    ollama.push(Step::ToolCalls(vec![("long".into(), json!({}))]));
    ollama.push(Step::Text("done".into()));
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        PIPELINE,
        &format!(
            "[ollama]\nhost = \"127.0.0.1\"\nport = {}\nmodel = \"{MODEL}\"\nretries = 0\n\n[plugins]\ndir = \"{}\"\n",
            ollama.port(),
            plugins.display()
        ),
    );
    let agent = Agent::start(&cfg, port, &[]);
    let url = agent.url("/api/ask");
    let asker = std::thread::spawn(move || {
        post_auth(&url, r#"{"question": "take your time"}"#, Some(TOKEN), 30)
    });
    eventually(10, "the tool running", || started.exists().then_some(()));
    let (status, took, log) = agent.terminate();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(took < std::time::Duration::from_secs(5), "{took:?}\n{log}");
    assert!(log.contains("exec tool long failed"), "{log}");
    let _ = asker.join();
}
