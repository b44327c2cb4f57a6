//! The `exec` source through the real binary: shell-script plugins that print good, bad
//! and overlong lines and exit (readings arrive, bad lines are counted, the program is
//! restarted with a growing delay), and that flood stdout and stderr without end (lines
//! are paced, stderr logging is bounded, `/api/health` answers within 50 ms throughout
//! and the rest of the graph keeps running); the shell example of docs/plugins.md; bad
//! parameters named by `pipeline check`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn pipeline(name: &str, command: &[&str], extra: &str) -> String {
    let cmd: Vec<String> = command.iter().map(|c| format!("\"{c}\"")).collect();
    format!(
        r#"[[source]]
name = "{name}"
kind = "exec"
command = [{}]
{extra}

[[source]]
name = "system"
kind = "system"
every = "200ms"
metrics = ["uptime"]

[[sink]]
name = "store"
kind = "store"
from = ["{name}", "system"]
"#,
        cmd.join(", ")
    )
}

fn status(agent: &Agent) -> Option<Value> {
    get(&agent.url("/api/status")).ok().map(|(_, s)| s)
}

fn node(s: &Value, name: &str) -> Option<Value> {
    s["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["name"] == name)
        .cloned()
}

fn source_count(s: &Value, id: &str) -> Option<u64> {
    s["sources"].as_array()?.iter().find(|x| x["id"] == id)?["readings"].as_u64()
}

fn latest(agent: &Agent, id: &str) -> Option<Value> {
    match get(&agent.url(&format!("/api/readings/{id}"))) {
        Ok((200, v)) => Some(v),
        _ => None,
    }
}

/// Prints good lines of both forms, a malformed one, an overlong one and a stderr line,
/// the number of this run and a fifth name (past `max_sources = 4`), and exits with 3.
/// Each start appends its time to `$1`.
const EXITING: &str = r#"#!/bin/sh
date +%s.%N >> "$1"
runs=$(wc -l < "$1")
echo '{"source":"temp","value":21.5,"unit":"celsius"}'
echo 'weather,room=attic hum=40i,ok=t'
echo 'not a reading'
head -c 3000 /dev/zero | tr '\0' x; echo
echo 'oops on stderr' >&2
echo "{\"source\":\"run\",\"value\":$runs}"
echo '{"source":"one_too_many","value":1}'
exit 3
"#;

#[test]
fn a_program_that_exits_is_restarted_with_a_growing_delay_and_its_lines_are_readings() {
    let dir = TempDir::new("exec-exits");
    let starts = dir.path().join("starts");
    let prog = script(dir.path(), "plug.sh", EXITING);
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        port,
        &pipeline(
            "plug",
            &[prog.to_str().unwrap(), starts.to_str().unwrap()],
            "restart_min = \"200ms\"\nrestart_max = \"800ms\"\nmax_sources = 4",
        ),
    );
    let agent = Agent::start(&cfg, port, &[]);
    // Five runs: delays of 200, 400, 800 and 800 ms between them.
    let times: Vec<f64> = eventually(20, "five runs", || {
        let t: Vec<f64> = std::fs::read_to_string(&starts)
            .ok()?
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect();
        (t.len() >= 5).then_some(t)
    });
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    for (i, want) in [0.2, 0.4, 0.8, 0.8].into_iter().enumerate() {
        assert!(
            gaps[i] >= want - 0.02,
            "gap {i} is {:.3}s: {gaps:?}",
            gaps[i]
        );
    }
    // Capped: the fourth delay is restart_max, not 1.6 s (generous for a loaded machine).
    assert!(gaps[3] < 1.5, "{gaps:?}");

    let temp = eventually(10, "exec:plug:temp", || latest(&agent, "exec:plug:temp"));
    assert_eq!(temp["value"], 21.5);
    assert_eq!(temp["unit"], "celsius");
    let hum = eventually(10, "exec:plug:weather.hum", || {
        latest(&agent, "exec:plug:weather.hum")
    });
    assert_eq!(hum["value"], 40.0);
    let ok = eventually(10, "exec:plug:weather.ok", || {
        latest(&agent, "exec:plug:weather.ok")
    });
    assert_eq!(ok["value"], true);
    eventually(10, "a restarted run's reading", || {
        (latest(&agent, "exec:plug:run")?["value"].as_f64()? >= 3.0).then_some(())
    });

    let s = status(&agent).unwrap();
    let n = node(&s, "plug").unwrap();
    let c = &n["counters"];
    let runs = times.len() as u64;
    assert!(c["malformed"].as_u64().unwrap() >= runs - 1, "{n}");
    assert!(c["too_long"].as_u64().unwrap() >= runs - 1, "{n}");
    assert!(c["restarts"].as_u64().unwrap() >= runs - 1, "{n}");
    assert!(c["stderr_lines"].as_u64().unwrap() >= runs - 1, "{n}");
    assert!(c["readings"].as_u64().unwrap() >= 4 * (runs - 1), "{n}");
    assert!(c["names_refused"].as_u64().unwrap() >= runs - 1, "{n}");
    assert!(latest(&agent, "exec:plug:one_too_many").is_none());
    let log = agent.log();
    assert!(log.contains("exec source 'plug': oops on stderr"), "{log}");
    assert!(
        log.contains("plug.sh exited (exit status: 3); restarting in 400ms"),
        "{log}"
    );
    // Degraded between runs, with the reason.
    eventually(10, "plug degraded", || {
        let n = node(&status(&agent)?, "plug")?;
        (n["state"] == "degraded" && n["reason"].as_str()?.contains("exit status: 3")).then_some(())
    });
    let (exit, _, log) = agent.terminate();
    assert!(exit.success(), "{log}");
}

/// Floods stdout with readings and stderr with noise, forever. Writes its pid to `$1`.
const FLOOD: &str = r#"#!/bin/sh
echo $$ > "$1"
yes 'noise on stderr' >&2 &
exec yes '{"source":"flood","value":1}'
"#;

#[test]
fn a_flooding_program_is_paced_and_the_agent_stays_responsive() {
    let dir = TempDir::new("exec-flood");
    let pidfile = dir.path().join("pid");
    let prog = script(dir.path(), "flood.sh", FLOOD);
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        port,
        &pipeline(
            "flood",
            &[prog.to_str().unwrap(), pidfile.to_str().unwrap()],
            "max_lines = 50",
        ),
    );
    let agent = Agent::start(&cfg, port, &[]);
    let (c0, u0, t0) = eventually(10, "flood readings", || {
        let s = status(&agent)?;
        let c = source_count(&s, "exec:flood:flood")?;
        let u = source_count(&s, "system:uptime")?;
        (c > 0).then_some((c, u, Instant::now()))
    });
    let rss0 = rss_kb(agent.child.id());
    // Health throughout: every answer within 50 ms.
    let mut slowest = Duration::ZERO;
    for _ in 0..40 {
        let t = Instant::now();
        let (code, _) = get(&agent.url("/api/health")).unwrap();
        assert_eq!(code, 200);
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        slowest < Duration::from_millis(50),
        "slowest health answer {slowest:?}"
    );
    // The flood waits in the program's pipe, not in the agent: its memory stays flat
    // (allocator noise aside) while `yes` writes as fast as it can.
    let rss1 = rss_kb(agent.child.id());
    assert!(
        rss1 < rss0 + 2048,
        "RSS grew from {rss0} to {rss1} KiB during the flood"
    );
    let s = status(&agent).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let c1 = source_count(&s, "exec:flood:flood").unwrap();
    // Paced: 50 lines a second (plus one second's worth of slack), not the millions
    // `yes` would write.
    let rate = (c1 - c0) as f64 / secs;
    assert!(rate <= 50.0 * (1.0 + 1.0 / secs) + 1.0, "{rate:.1} lines/s");
    assert!(rate >= 10.0, "{rate:.1} lines/s");
    let n = node(&s, "flood").unwrap();
    assert!(n["counters"]["throttled"].as_u64().unwrap() > 0, "{n}");
    // The event loop kept running the rest: the system source's readings went on.
    let u1 = source_count(&s, "system:uptime").unwrap();
    assert!(u1 >= u0 + 5, "system:uptime {u0} -> {u1} in {secs:.1}s");
    // stderr: at most 10 lines logged a minute, the rest counted.
    let logged = agent.log().matches("noise on stderr").count();
    assert!(logged <= 10, "{logged} stderr lines logged");
    assert!(
        n["counters"]["stderr_unlogged"].as_u64().unwrap() > 0,
        "{n}"
    );

    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (exit, took, log) = agent.terminate();
    assert!(exit.success(), "{log}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // The program was stopped with the agent.
    // SAFETY: signal 0 only checks whether the pid exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "the plugin {pid} outlived the agent");
}

/// The shell example in docs/plugins.md, run as written.
#[test]
fn the_documented_shell_example_runs() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/plugins.md")).unwrap();
    let body = doc
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a sh block in docs/plugins.md");
    assert!(body.lines().count() <= 10, "{body}");
    let dir = TempDir::new("exec-doc");
    let prog = script(dir.path(), "host-readings", body);
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        port,
        &pipeline("host", &[prog.to_str().unwrap()], ""),
    );
    let agent = Agent::start_env(&cfg, port, &[], &[("INTERVAL", "0.2")]);
    let up = eventually(10, "exec:host:uptime", || {
        latest(&agent, "exec:host:uptime")
    });
    assert!(up["value"].as_f64().unwrap() > 0.0, "{up}");
    let load = eventually(10, "exec:host:load", || latest(&agent, "exec:host:load"));
    assert!(load["value"].as_f64().unwrap() >= 0.0, "{load}");
    let n = node(&status(&agent).unwrap(), "host").unwrap();
    assert_eq!(n["state"], "running", "{n}");
    assert_eq!(n["counters"]["malformed"], 0, "{n}");
    let (exit, _, log) = agent.terminate();
    assert!(exit.success(), "{log}");
}

#[test]
fn pipeline_check_names_bad_exec_parameters() {
    let dir = TempDir::new("exec-check");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[source]]\nname = \"plug\"\nkind = \"exec\"\ncommand = \"/bin/plug --json\"\nmax_lines = 0\n\n[[sink]]\nname = \"store\"\nkind = \"store\"\nfrom = [\"plug\"]\n",
    )
    .unwrap();
    let (code, _, err) = run_cli(&["pipeline", "check", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad.toml:4: command of source 'plug': expected a non-empty list of texts"),
        "{err}"
    );
    assert!(
        err.contains("hint: write command = [\"/path/to/program\", \"arg\"]"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:5: max_lines of source 'plug': 0 is out of range"),
        "{err}"
    );
}

/// The program never sees the agent's secrets (`SMOLLAMA_*`, which may hold the HTTP
/// token or the MQTT password) nor its systemd socket: it reports how many of those
/// variables it was given.
#[test]
fn the_program_gets_none_of_the_agents_secrets() {
    let dir = TempDir::new("exec-env");
    let prog = script(
        dir.path(),
        "env-count.sh",
        "#!/bin/sh\nn=$(env | grep -c -e '^SMOLLAMA_' -e '^NOTIFY_SOCKET=')\necho \"{\\\"source\\\":\\\"leaks\\\",\\\"value\\\":$n}\"\nsleep 60\n",
    );
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        port,
        &pipeline("env", &[prog.to_str().unwrap()], ""),
    );
    let agent = Agent::start_env(
        &cfg,
        port,
        &[],
        &[("SMOLLAMA_MQTT_PASSWORD", "hunter2-secret")],
    );
    let r = eventually(10, "the leaks reading", || latest(&agent, "exec:env:leaks"));
    assert_eq!(r["value"].as_f64(), Some(0.0), "{r}");
    let (exit, _, log) = agent.terminate();
    assert!(exit.success(), "{log}");
}
