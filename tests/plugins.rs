//! Kinds come from `plugins::registry`: `smollama plugins list` shows them, a node whose
//! setup fails is shown as unavailable while the rest runs, and (with the `test-kinds`
//! feature) a kind added by one file plus one registry line is validated, run and shown.

mod common;

use common::*;
use serde_json::Value;

fn kinds() -> Vec<Value> {
    let (code, out, err) = run_cli(&["plugins", "list", "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Value>(&out)
        .unwrap_or_else(|e| panic!("{e}: {out}"))
        .as_array()
        .unwrap()
        .clone()
}

fn kind<'a>(all: &'a [Value], role: &str, name: &str) -> Option<&'a Value> {
    all.iter().find(|k| k["role"] == role && k["name"] == name)
}

#[test]
fn plugins_list_shows_every_built_in_kind_with_its_parameters() {
    let all = kinds();
    for (role, name) in [
        ("source", "system"),
        ("source", "gpio"),
        ("source", "mqtt"),
        ("stage", "filter"),
        ("stage", "adaptive"),
        ("stage", "retention"),
        ("sink", "store"),
        ("sink", "log"),
        ("sink", "mqtt"),
        ("sink", "observer"),
    ] {
        let k = kind(&all, role, name).unwrap_or_else(|| panic!("{role} {name} missing"));
        assert_eq!(k["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(k["status"], "built in");
        assert!(!k["doc"].as_str().unwrap().is_empty());
    }
    let filter = kind(&all, "stage", "filter").unwrap();
    let debounce = filter["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "debounce")
        .expect("filter takes debounce");
    assert!(
        debounce["takes"].as_str().unwrap().contains("boolean"),
        "{debounce}"
    );
    if cfg!(feature = "agent") {
        let t = kind(&all, "tool", "read_source").expect("tools are kinds too");
        assert!(
            t["params"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "source_id")
        );
    }
    let (code, text, _) = run_cli(&["plugins", "list"], &[]);
    assert_eq!(code, 0);
    assert!(
        text.lines().any(|l| l.starts_with("stage  filter")),
        "{text}"
    );
    assert!(text.contains("debounce = a duration"), "{text}");
}

const NO_BROKER: &str = r#"
[[source]]
name = "system"
kind = "system"
every = "200ms"
metrics = ["load_avg"]

[[sink]]
name = "store"
kind = "store"
from = ["system"]

[[sink]]
name = "out"
kind = "mqtt"
from = ["system"]
"#;

#[test]
fn a_node_that_cannot_be_set_up_is_shown_unavailable_and_the_rest_runs() {
    let dir = TempDir::new("plugins-unavailable");
    let port = free_port();
    let cfg = write_config(dir.path(), port, NO_BROKER);
    let agent = Agent::start(&cfg, port, &[]);
    let status = eventually(10, "a commit", || {
        let (_, s) = get(&agent.url("/api/status")).ok()?;
        (s["store"]["readings_written"].as_u64()? > 0).then_some(s)
    });
    let node = |name: &str| {
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {status}"))
            .clone()
    };
    let out = node("out");
    assert_eq!(out["state"], "unavailable", "{out}");
    assert!(
        out["reason"].as_str().unwrap().contains("no [mqtt] broker"),
        "{out}"
    );
    assert_eq!(node("store")["state"], "running");
    assert_eq!(node("system")["state"], "running");
    assert_eq!(node("system")["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        agent
            .log()
            .contains("mqtt sink 'out' skipped: no [mqtt] broker configured"),
        "{}",
        agent.log()
    );
    let (code, text, _) = run_cli(&["--config", cfg.to_str().unwrap(), "status"], &[]);
    assert_eq!(code, 0);
    assert!(
        text.contains("unavailable: no [mqtt] broker configured"),
        "{text}"
    );
    let (exit, _, _) = agent.terminate();
    assert!(exit.success());
}

/// The `counter` kind exists only in this feature's build, from src/sources/counter.rs and
/// one line in src/plugins/registry.rs.
#[cfg(feature = "test-kinds")]
mod added_kind {
    use super::*;

    const COUNTER: &str = r#"[[source]]
name = "ticks"
kind = "counter"
every = "200ms"
start = 5

[[stage]]
name = "quiet"
kind = "filter"
from = ["ticks"]
deadband = 0.5

[[sink]]
name = "store"
kind = "store"
from = ["quiet"]
"#;

    #[test]
    fn a_kind_added_by_one_file_and_one_registry_line_is_checked_run_and_shown() {
        let dir = TempDir::new("plugins-counter");
        // Validated: a bad parameter names file, line and a hint; a stage's per-source
        // type check sees what the kind produces.
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, COUNTER.replace("start = 5", "start = 5\nstep = -1")).unwrap();
        let (code, _, err) = run_cli(&["pipeline", "check", bad.to_str().unwrap()], &[]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("bad.toml:6: step of source 'ticks': -1 is out of range"),
            "{err}"
        );
        assert!(err.contains("hint: a step from 0.001 to 1e9"), "{err}");
        let debounced = dir.path().join("debounced.toml");
        std::fs::write(
            &debounced,
            COUNTER.replace("deadband = 0.5", "debounce = \"1s\""),
        )
        .unwrap();
        let (code, _, err) = run_cli(&["pipeline", "check", debounced.to_str().unwrap()], &[]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("no boolean source reaches stage 'quiet'"),
            "{err}"
        );
        assert!(err.contains("counter:ticks (number)"), "{err}");

        // Listed.
        let all = kinds();
        let k = kind(&all, "source", "counter").expect("counter listed");
        assert_eq!(k["status"], "built in");
        assert!(
            k["params"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "step")
        );

        // Run: its readings reach the store through the filter and the HTTP API.
        let port = free_port();
        let cfg = write_config(dir.path(), port, COUNTER);
        let agent = Agent::start(&cfg, port, &[]);
        eventually(10, "counter readings in /api/readings", || {
            let (code, r) = get(&agent.url("/api/readings/counter:ticks")).ok()?;
            (code == 200 && r["value"].as_f64()? >= 6.0).then_some(())
        });
        let (_, status) = get(&agent.url("/api/status")).unwrap();
        let node = status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == "ticks")
            .cloned()
            .unwrap_or_else(|| panic!("ticks not in {status}"));
        assert_eq!(node["kind"], "counter");
        assert_eq!(node["role"], "source");
        assert_eq!(node["state"], "running");
        // Its ids are this node's own (the kind declares their type): status lists them
        // among the local sources, as it does system:* and gpio:*.
        assert!(
            status["sources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|src| src["id"] == "counter:ticks"),
            "counter:ticks not among the local sources: {}",
            status["sources"]
        );
        let (exit, _, log) = agent.terminate();
        assert!(exit.success(), "{log}");
    }
}
