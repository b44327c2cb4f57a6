//! One store, one agent: a second agent on the same data directory refuses to start,
//! naming the first; commands that only read work beside a running agent, commands that
//! write refuse with what to do; a killed agent never blocks the next start.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// One memory, as `smollama memory export` writes it.
const MEMORY_LINE: &str = "{\"kind\":\"memory\",\"id\":1,\"fact\":\"the fan is on pin 22\",\"confidence\":0.7,\"first_seen\":\"2026-11-30T10:00:00Z\",\"last_seen\":\"2026-11-30T10:00:00Z\",\"node\":\"test-node\"}\n";

/// A second config for the same data directory, on another HTTP port.
fn second_config(first: &Path, first_port: u16, second_port: u16) -> std::path::PathBuf {
    let text = std::fs::read_to_string(first).unwrap();
    let changed = text.replace(
        &format!("127.0.0.1:{first_port}"),
        &format!("127.0.0.1:{second_port}"),
    );
    assert_ne!(text, changed);
    let path = first.with_file_name("second.toml");
    std::fs::write(&path, changed).unwrap();
    path
}

/// "N readings stored" from an agent's last log line.
fn readings_stored(log: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains("readings stored in"))
        .unwrap_or_else(|| panic!("no final line in:\n{log}"));
    let before = line.split(" readings stored").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_second_agent_on_the_same_directory_refuses_and_the_first_runs_on() {
    let dir = TempDir::new("two-agents");
    let port = free_port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let first = Agent::start(&cfg, port, &[]);
    let pid = first.child.id();
    eventually(10, "a first commit", || {
        let (_, s) = get(&first.url("/api/status")).ok()?;
        (s["store"]["commits"].as_u64()? > 0).then_some(())
    });

    let port2 = free_port();
    let cfg2 = second_config(&cfg, port, port2);
    let (code, _, err) = run_cli_within(
        20,
        &["--config", cfg2.to_str().unwrap(), "run"],
        &[],
        &[],
        None,
    );
    assert_ne!(code, 0, "{err}");
    assert!(err.contains(&format!("PID {pid}")), "{err}");
    let data = dir.path().join("data");
    assert!(err.contains(&data.display().to_string()), "{err}");
    assert!(err.contains("sudo systemctl stop smollama"), "{err}");
    // It stopped before running anything: no graph, no HTTP.
    assert!(!err.contains("running:"), "{err}");
    assert!(get(&format!("http://127.0.0.1:{port2}/api/health")).is_err());

    // The first keeps running, and the store holds exactly what it wrote: nothing twice.
    assert_eq!(get(&first.url("/api/health")).unwrap().0, 200);
    let (st, _, log) = first.terminate();
    assert!(st.success(), "{log}");
    let stored = readings_stored(&log);
    assert!(stored > 0, "{log}");
    let (code, out, err) = run_cli(
        &["--config", cfg.to_str().unwrap(), "status", "--json"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["store"]["readings"].as_u64(), Some(stored), "{v}");
}

#[test]
fn readers_work_beside_a_running_agent_and_writers_say_what_to_do() {
    let dir = TempDir::new("beside");
    let port = free_port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let c = cfg.to_str().unwrap();
    let agent = Agent::start(&cfg, port, &[]);
    let pid = agent.child.id();
    let data = dir.path().join("data").display().to_string();

    let (code, out, err) = run_cli(&["--config", c, "status", "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["running"], true);

    if cfg!(feature = "agent") {
        let export = dir.path().join("export.jsonl");
        let (code, _, err) = run_cli(
            &["--config", c, "memory", "export", export.to_str().unwrap()],
            &[],
        );
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains("exported 0 observations and 0 memories"),
            "{err}"
        );
        let (code, out, err) = run_cli(&["--config", c, "memory", "recall", "fan"], &[]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("recall 'fan'"), "{out}");

        let lines = dir.path().join("import.jsonl");
        std::fs::write(&lines, MEMORY_LINE).unwrap();
        let (code, out, err) = run_cli(
            &["--config", c, "memory", "import", lines.to_str().unwrap()],
            &[],
        );
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains(&format!("PID {pid}")), "{err}");
        assert!(err.contains(&data), "{err}");
        assert!(
            err.contains("stop it first: sudo systemctl stop smollama"),
            "{err}"
        );
        assert!(err.contains("then run this again"), "{err}");
        assert!(!out.contains("imported"), "{out}");
        let (code, _, err) = run_cli(&["--config", c, "memory", "reembed"], &[]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(&format!("PID {pid}")), "{err}");

        // Refused means untouched: the agent's store has no memory from the file.
        let (_, stats) = get(&agent.url("/api/stats")).unwrap();
        assert_eq!(stats["memories_count"], 0, "{stats}");
    }
    assert_eq!(get(&agent.url("/api/health")).unwrap().0, 200);
}

#[test]
fn a_killed_agent_does_not_block_the_next_start() {
    let dir = TempDir::new("killed");
    let port = free_port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let mut first = Agent::start(&cfg, port, &[]);
    let pid = first.child.id();
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    first.child.wait().unwrap();
    // The lock file is left behind with the dead agent's PID in it.
    let lock = std::fs::read_to_string(dir.path().join("data/smollama.lock")).unwrap();
    assert!(lock.starts_with(&format!("{pid}\n")), "{lock}");
    drop(first);

    let second = Agent::start(&cfg, port, &[]);
    assert_eq!(get(&second.url("/api/health")).unwrap().0, 200);
    let lock = std::fs::read_to_string(dir.path().join("data/smollama.lock")).unwrap();
    assert!(
        lock.starts_with(&format!("{}\n", second.child.id())),
        "{lock}"
    );
    let (st, _, log) = second.terminate();
    assert!(st.success(), "{log}");

    // With no agent at all, the writers run (the stale file blocks nothing).
    if cfg!(feature = "agent") {
        let lines = dir.path().join("import.jsonl");
        std::fs::write(&lines, MEMORY_LINE).unwrap();
        let (code, out, err) = run_cli(
            &[
                "--config",
                cfg.to_str().unwrap(),
                "memory",
                "import",
                lines.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("imported 0 observations and 1 memories"),
            "{out}{err}"
        );
    }
}
