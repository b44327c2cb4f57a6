//! Log line formats as a log shipper or journald sees them: the real binary's stderr.

mod common;

use common::*;

/// Every line the agent wrote is one JSON object with the fixed keys.
fn all_json(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\nwhole log:\n{log}"));
            for k in ["ts", "level", "target", "msg"] {
                assert!(v.get(k).is_some(), "no {k} in {l}");
            }
            v
        })
        .collect()
}

#[test]
fn json_from_the_config_file_and_from_the_flag() {
    let dir = TempDir::new("log-json");
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        FAST_PIPELINE,
        "[log]\nformat = \"json\"\n",
    );
    let agent = Agent::start(&cfg, port, &[]);
    let (st, _, log) = agent.terminate();
    assert!(st.success(), "{log}");
    let lines = all_json(&log);
    assert!(
        lines.iter().any(|v| v["level"] == "info"
            && v["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("smollama"))
            && v["msg"].as_str().is_some_and(|m| m.starts_with("running:"))),
        "the start-up line is there: {log}"
    );

    // The flag wins over the file; under systemd auto is journald's priority prefix.
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let agent = Agent::start(&cfg, port, &["--log-format", "json"]);
    let (_, _, log) = agent.terminate();
    all_json(&log);
    let agent = Agent::start_env(&cfg, port, &[], &[("JOURNAL_STREAM", "8:1234")]);
    let (_, _, log) = agent.terminate();
    assert!(
        log.lines().all(|l| l.starts_with('<')),
        "journald lines carry a priority: {log}"
    );
    assert!(log.contains("<6>running:"), "{log}");
}

#[test]
fn a_bad_format_is_refused_with_the_choices() {
    let dir = TempDir::new("log-bad");
    let port = free_port();
    let cfg = write_config(dir.path(), port, FAST_PIPELINE);
    let (code, _, err) = run_cli(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--log-format",
            "jsn",
            "status",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("auto, text, journald, json"), "{err}");
    let cfg = write_config_extra(
        dir.path(),
        port,
        FAST_PIPELINE,
        "[log]\nformat = \"jsno\"\n",
    );
    let (code, _, err) = run_cli(&["--config", cfg.to_str().unwrap(), "status"], &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("unknown log format 'jsno'") && err.contains("json"),
        "{err}"
    );
}
