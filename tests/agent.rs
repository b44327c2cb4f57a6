//! End-to-end tests: the real binary as a process, the real LMDB store, the mock GPIO
//! backend (stands in for Pi pins, which this machine does not have).

mod common;

use common::*;
use serde_json::Value;

fn reading_value(agent: &Agent, id: &str) -> Option<Value> {
    match get(&agent.url(&format!("/api/readings/{id}"))) {
        Ok((200, v)) => Some(v["value"].clone()),
        _ => None,
    }
}

#[test]
fn health_answers_with_node_and_version() {
    let dir = TempDir::new("health");
    let port = free_port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let agent = Agent::start(&cfg, port, &[]);
    let (code, body) = get(&agent.url("/api/health")).unwrap();
    assert_eq!(code, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["node"], "test-node");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let (st, _, log) = agent.terminate();
    assert!(st.success(), "exit {st:?}; log:\n{log}");
}

#[test]
fn mock_gpio_and_system_readings_reach_the_store_and_survive_restart() {
    let dir = TempDir::new("readings");
    let port = free_port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let agent = Agent::start(&cfg, port, &[]);

    // Input pins start low.
    eventually(10, "gpio:17 low", || {
        (reading_value(&agent, "gpio:17") == Some(Value::Bool(false))).then_some(())
    });
    // The test sets the mock pin (as a Pi's sensor would), through the API.
    let (code, body) = put(
        &agent.url("/api/gpio/17"),
        r#"{"value": true}"#,
        Some(TOKEN),
    );
    assert_eq!(code, 200, "{body}");
    eventually(10, "gpio:17 high in /api/readings", || {
        (reading_value(&agent, "gpio:17") == Some(Value::Bool(true))).then_some(())
    });
    // Driving an output pin shows up as its reading too.
    let (code, _) = put(&agent.url("/api/gpio/22"), r#"{"value": 1}"#, Some(TOKEN));
    assert_eq!(code, 200);
    eventually(10, "gpio:22 high", || {
        (reading_value(&agent, "gpio:22") == Some(Value::Bool(true))).then_some(())
    });

    // System metrics arrive, and a history of several readings builds up.
    let history = eventually(15, "load_avg history", || {
        let (code, h) = get(&agent.url("/api/readings/system:load_avg/history?minutes=5")).ok()?;
        (code == 200 && h["count"].as_u64()? >= 2).then_some(h)
    });
    assert_eq!(history["resolution"], "raw");
    assert!(history["statistics"]["min"].is_number(), "{history}");
    let (code, all) = get(&agent.url("/api/readings")).unwrap();
    assert_eq!(code, 200);
    let ids: Vec<&str> = all["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["full_id"].as_str().unwrap())
        .collect();
    for id in [
        "system:load_avg",
        "system:mem_available_mb",
        "gpio:17",
        "gpio:22",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let gpio_hist = get(&agent.url("/api/readings/gpio:17/history?minutes=5"))
        .unwrap()
        .1;
    let values: Vec<&Value> = gpio_hist["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["value"])
        .collect();
    assert!(values.contains(&&Value::Bool(true)) && values.contains(&&Value::Bool(false)));
    let before = gpio_hist["count"].as_u64().unwrap();

    let (st, took, log) = agent.terminate();
    assert!(st.success(), "exit {st:?}; log:\n{log}");
    eprintln!("SIGTERM to exit: {took:?}");

    // After a restart the stored data is still there.
    let agent = Agent::start(&cfg, port, &[]);
    let h = get(&agent.url("/api/readings/gpio:17/history?minutes=10"))
        .unwrap()
        .1;
    assert!(h["count"].as_u64().unwrap() >= before, "{h}");
    // The high level stored before the restart is still in the history (the mock pin
    // itself starts low again, as a freshly booted board's would).
    assert!(
        h["readings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["value"] == Value::Bool(true)),
        "{h}"
    );
    let (st, _, _) = agent.terminate();
    assert!(st.success());
}

#[test]
fn bad_requests_get_json_reasons() {
    let dir = TempDir::new("badreq");
    let port = free_port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let agent = Agent::start(&cfg, port, &[]);

    let (code, body) = get(&agent.url("/api/readings/nope:nothing")).unwrap();
    assert_eq!(code, 404);
    assert!(body["error"].as_str().unwrap().contains("unknown source"));
    let (code, body) = get(&agent.url("/api/readings/system:uptime/history?minutes=abc")).unwrap();
    assert_eq!(code, 400);
    assert!(body["error"].as_str().unwrap().contains("minutes"));
    let (code, _) = get(&agent.url("/api/readings/system:uptime/history?limit=0")).unwrap();
    assert_eq!(code, 400);
    let (code, body) = get(&agent.url("/api/nothing")).unwrap();
    assert_eq!(code, 404);
    assert!(body["error"].is_string());
    // Writes need the token.
    let (code, _) = put(&agent.url("/api/gpio/22"), r#"{"value": true}"#, None);
    assert_eq!(code, 401);
    let (code, _) = put(
        &agent.url("/api/gpio/22"),
        r#"{"value": true}"#,
        Some("wrong"),
    );
    assert_eq!(code, 401);
    let (code, body) = put(
        &agent.url("/api/gpio/22"),
        r#"{"value": "maybe"}"#,
        Some(TOKEN),
    );
    assert_eq!(code, 400, "{body}");
    let (code, _) = put(&agent.url("/api/gpio/5"), r#"{"value": true}"#, Some(TOKEN));
    assert_eq!(code, 404);
    let (code, _) = put(&agent.url("/api/status"), "{}", Some(TOKEN));
    assert_eq!(code, 405);
    // The agent is still fine.
    assert_eq!(get(&agent.url("/api/health")).unwrap().0, 200);
}

#[test]
fn status_reports_sources_stages_and_store() {
    let dir = TempDir::new("status");
    let port = free_port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let agent = Agent::start(&cfg, port, &[]);
    let status = eventually(10, "a commit", || {
        let (_, s) = get(&agent.url("/api/status")).ok()?;
        (s["store"]["commits"].as_u64()? > 0).then_some(s)
    });
    assert_eq!(status["running"], true);
    assert!(status["process"]["rss_kb"].as_u64().unwrap() > 0);
    let nodes: Vec<&str> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["system", "pins", "quiet", "pace", "keep", "store"]);
    let src = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "system:load_avg")
        .expect("load_avg in status");
    assert_eq!(src["available"], true);
    assert!(src["readings"].as_u64().unwrap() > 0);

    // The CLI shows the same live state.
    let (code, out, err) = run_cli(
        &["--config", cfg.to_str().unwrap(), "status", "--json"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["running"], true);
    assert_eq!(v["node"], "test-node");
    let (code, out, _) = run_cli(&["--config", cfg.to_str().unwrap(), "status"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("system:load_avg"), "{out}");
    drop(agent);

    // With the agent gone, status says so and checks what it can offline.
    let (code, out, _) = run_cli(
        &["--config", cfg.to_str().unwrap(), "status", "--json"],
        &[],
    );
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["running"], false);
    assert_eq!(v["pipeline"]["valid"], true);
    assert_eq!(v["store"]["state"], "readable");
    assert!(v["store"]["readings"].as_u64().unwrap() > 0);
}

#[test]
fn status_finds_an_agent_running_without_http() {
    let dir = TempDir::new("status-nohttp");
    let cfg = dir.path().join("smollama.toml");
    std::fs::write(
        &cfg,
        format!(
            "[node]\nname = \"quiet-node\"\ndata_dir = \"{}\"\n\n[http]\nenabled = false\n\n[gpio]\nbackend = \"mock\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let status = || {
        let (code, out, err) = run_cli(&["--config", c, "status", "--json"], &[]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    assert_eq!(status()["running"], false, "nothing started yet");
    // No HTTP, so not `Agent::start` (it waits for /api/health); killed on drop all the same.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut agent = Running(
        std::process::Command::new(BIN)
            .args(["--config", c, "run"])
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = agent.0.id();
    let v = eventually(20, "status to find the agent", || {
        let v = status();
        (v["running"] == true).then_some(v)
    });
    assert_eq!(v["agent"]["pids"], serde_json::json!([pid]), "{v}");
    let (_, out, _) = run_cli(&["--config", c, "status"], &[]);
    assert!(
        out.contains(&format!(
            "agent: running (pid {pid}); no live state ([http] enabled = false"
        )),
        "{out}"
    );
    assert!(!out.contains("not running"), "{out}");
    // Once stopped, it is gone from the report.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    agent.0.wait().unwrap();
    let (_, out, _) = run_cli(&["--config", c, "status"], &[]);
    assert!(
        out.contains("agent: not running ([http] enabled = false"),
        "{out}"
    );
}

#[test]
fn cli_exit_codes() {
    let dir = TempDir::new("cli");
    let (code, out, _) = run_cli(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains(env!("CARGO_PKG_VERSION")));
    let (code, out, _) = run_cli(&["pipeline", "check"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok:"));
    let good = dir.path().join("good.toml");
    std::fs::write(&good, FAST_PIPELINE).unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[source]]\nname = \"system\"\nkind = \"system\"\n\n[[stage]]\nname = \"f\"\nkind = \"filtre\"\nfrom = [\"system\"]\n\n[[sink]]\nname = \"s\"\nkind = \"store\"\nfrom = [\"f\"]\n",
    )
    .unwrap();
    let (code, _, _) = run_cli(&["pipeline", "check", good.to_str().unwrap()], &[]);
    assert_eq!(code, 0);
    let (code, _, err) = run_cli(&["pipeline", "check", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.toml:7"), "{err}");
    assert!(err.contains("filtre"), "{err}");
    let missing = dir.path().join("missing.toml");
    let (code, _, err) = run_cli(&["--config", missing.to_str().unwrap(), "status"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("does not exist"), "{err}");
    let (code, _, err) = run_cli(&["--log-level", "loud"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("loud"));
}

#[test]
fn environment_overrides_and_flags_after_the_subcommand() {
    let dir = TempDir::new("env");
    let home = dir.path().to_str().unwrap();
    // No config file at all: built-in defaults plus environment overrides.
    let (code, out, err) = run_cli(
        &["status", "--json", "--log-level", "debug"],
        &[
            ("HOME", home),
            ("SMOLLAMA_NODE_NAME", "from-env"),
            ("SMOLLAMA_HTTP_BIND", "127.0.0.1:1"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["node"], "from-env");
    assert_eq!(v["running"], false);
    // A bad override is refused, naming the variable.
    let (code, _, err) = run_cli(
        &["status"],
        &[("HOME", home), ("SMOLLAMA_HTTP_BIND", "not-an-address")],
    );
    assert_eq!(code, 2);
    assert!(err.contains("SMOLLAMA_HTTP_BIND"), "{err}");
}

#[test]
fn history_beyond_the_raw_window_comes_from_rollups() {
    let dir = TempDir::new("rollups");
    let port = free_port();
    let pipeline = FAST_PIPELINE.replace(
        "raw_for = \"1d\"\nrollups = [{ every = \"1m\", keep = \"30d\" }]",
        "raw_for = \"10m\"\nrollups = [{ every = \"1m\", keep = \"30d\" }, { every = \"1h\", keep = \"1y\" }]",
    );
    assert_ne!(pipeline, FAST_PIPELINE);
    let cfg = write_config(dir.path(), port, &pipeline);
    let agent = Agent::start(&cfg, port, &[]);
    eventually(10, "a few load_avg readings", || {
        let (_, h) = get(&agent.url("/api/readings/system:uptime/history?minutes=5")).ok()?;
        (h["count"].as_u64()? >= 2).then_some(())
    });
    // Shutdown flushes the open (partial) rollup buckets into the store.
    let (st, _, log) = agent.terminate();
    assert!(st.success(), "{log}");
    let agent = Agent::start(&cfg, port, &[]);
    // 2 hours is beyond the 10 minute raw window: answered from the 1-minute rollups.
    let (code, h) = get(&agent.url("/api/readings/system:uptime/history?minutes=120")).unwrap();
    assert_eq!(code, 200);
    assert_eq!(h["resolution"], "1m", "{h}");
    let rollups = h["rollups"].as_array().unwrap();
    assert!(!rollups.is_empty(), "{h}");
    let first = &rollups[0];
    assert!(first["count"].as_u64().unwrap() >= 1);
    assert!(first["min"].as_f64().unwrap() <= first["max"].as_f64().unwrap());
    // Beyond 30 days the hourly level answers.
    let (_, h) = get(&agent.url("/api/readings/system:uptime/history?minutes=100000")).unwrap();
    assert_eq!(h["resolution"], "1h", "{h}");
    assert!(!h["rollups"].as_array().unwrap().is_empty());
}

#[test]
fn version_names_the_compiled_features() {
    let (code, out, _) = run_cli(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("(features: "), "{out}");
    assert_eq!(out.contains("agent"), cfg!(feature = "agent"), "{out}");
    assert_eq!(out.contains("mqtt"), cfg!(feature = "mqtt"), "{out}");
}

/// Writing an output pin is a level change like an input's edge: its reading follows at
/// once, not at the next sample (here an hour away).
#[test]
fn writing_an_output_pin_updates_its_reading_at_once() {
    let dir = TempDir::new("gpio-write");
    let port = free_port();
    let pipeline = r#"
[[source]]
name = "pins"
kind = "gpio"
every = "1h"

[[stage]]
name = "quiet"
kind = "filter"
from = ["pins"]
debounce = "50ms"

[[sink]]
name = "store"
kind = "store"
from = ["quiet"]
"#;
    let cfg = write_config(dir.path(), port, pipeline);
    let agent = Agent::start(&cfg, port, &[]);
    eventually(10, "gpio:22 stored low at start", || {
        (reading_value(&agent, "gpio:22") == Some(Value::Bool(false))).then_some(())
    });
    for level in [true, false, true] {
        let (code, body) = put(
            &agent.url("/api/gpio/22"),
            &format!(r#"{{"value": {level}}}"#),
            Some(TOKEN),
        );
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            get(&agent.url("/api/gpio")).unwrap().1["pins"][1]["value"],
            level
        );
        eventually(5, "gpio:22 reading follows the write", || {
            (reading_value(&agent, "gpio:22") == Some(Value::Bool(level))).then_some(())
        });
    }
    let (code, status) = get(&agent.url("/api/status")).unwrap();
    assert_eq!(code, 200);
    let src = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "gpio:22")
        .unwrap()
        .clone();
    assert_eq!(src["last_value"], true, "{src}");
    let (st, _, _) = agent.terminate();
    assert!(st.success());
}

/// `run --host/--port` replace the configured `[http] bind` (the original's quick win):
/// the agent answers on the port given on the command line, not on the configured one,
/// and a host that is no address is refused with what to write instead.
#[test]
fn run_host_and_port_override_the_configured_bind() {
    let dir = TempDir::new("bind-override");
    let configured = free_port();
    let cfg = write_config(dir.path(), configured, FAST_PIPELINE);
    let given = free_port();
    let p = given.to_string();
    let agent = Agent::start(&cfg, given, &["run", "--host", "127.0.0.1", "--port", &p]);
    let (code, health) = get(&agent.url("/api/health")).unwrap();
    assert_eq!(code, 200, "{health}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", configured)).is_err(),
        "the configured port {configured} is listening too"
    );
    let (exit, _, log) = agent.terminate();
    assert!(exit.success(), "{log}");

    let (code, _, err) = run_cli(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "run",
            "--host",
            "localhost",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--host 'localhost' is not an IP address") && err.contains("0.0.0.0"),
        "{err}"
    );
}

/// `http-slow` (recall's embedding call, GPIO writes) starts with the first such request:
/// an idle node has one thread less, and the first write still works.
#[test]
fn the_slow_http_worker_starts_with_its_first_request() {
    let dir = TempDir::new("slow-lazy");
    let port = free_port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let agent = Agent::start(&cfg, port, &[]);
    let threads = |pid: u32| -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|n| n.trim().to_string())
            .collect()
    };
    let pid = agent.child.id();
    let before = threads(pid);
    assert!(before.iter().any(|t| t == "http-work"), "{before:?}");
    assert!(!before.iter().any(|t| t == "http-slow"), "{before:?}");
    let (code, _) = put(&agent.url("/api/gpio/22"), r#"{"value": 1}"#, Some(TOKEN));
    assert_eq!(code, 200);
    let after = threads(pid);
    assert!(after.iter().any(|t| t == "http-slow"), "{after:?}");
}
