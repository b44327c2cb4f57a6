//! The `file` source through the real binary: a file that appears, changes, holds
//! garbage, disappears and comes back (readings in /api/readings, degraded with the
//! reason in status and back to running, one log line per failure); a DS18B20 w1_slave
//! sample read with a regex and a scale; bad parameters named by `pipeline check` with
//! file, line and hint.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// Replace the file's content at once (rename), so no sample sees half a write.
fn put_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn node(agent: &Agent, name: &str) -> Option<Value> {
    let (_, s) = get(&agent.url("/api/status")).ok()?;
    s["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["name"] == name)
        .cloned()
}

fn latest(agent: &Agent, id: &str) -> Option<Value> {
    match get(&agent.url(&format!("/api/readings/{id}"))) {
        Ok((200, v)) => Some(v),
        _ => None,
    }
}

/// Wait until the node is degraded with a reason containing `why`.
fn degraded(agent: &Agent, name: &str, why: &str) -> Value {
    eventually(10, &format!("{name} degraded with '{why}'"), || {
        let n = node(agent, name)?;
        (n["state"] == "degraded" && n["reason"].as_str()?.contains(why)).then_some(n)
    })
}

/// Wait until the source's latest reading is `want` and the node runs again.
fn reads(agent: &Agent, name: &str, id: &str, want: f64) -> Value {
    let r = eventually(10, &format!("{id} = {want}"), || {
        let r = latest(agent, id)?;
        ((r["value"].as_f64()? - want).abs() < 1e-9).then_some(r)
    });
    eventually(10, &format!("{name} running"), || {
        let n = node(agent, name)?;
        (n["state"] == "running" && n["reason"].is_null()).then_some(())
    });
    r
}

#[test]
fn a_file_that_appears_changes_and_disappears_degrades_and_recovers() {
    let dir = TempDir::new("file-source");
    let value = dir.path().join("greenhouse");
    let pipeline = format!(
        r#"[[source]]
name = "greenhouse"
kind = "file"
every = "100ms"
path = "{}"
id = "greenhouse_temp"
unit = "celsius"
offset = 0.5

[[sink]]
name = "store"
kind = "store"
from = ["greenhouse"]
"#,
        value.display()
    );
    let port = free_port();
    let cfg = write_config(dir.path(), port, &pipeline);
    let agent = Agent::start(&cfg, port, &[]);

    // Not there yet: degraded, with the reason, and no reading.
    degraded(&agent, "greenhouse", "No such file");
    assert!(latest(&agent, "file:greenhouse_temp").is_none());

    // Appears: read, offset applied, unit as configured.
    put_file(&value, "21.5\n");
    let r = reads(&agent, "greenhouse", "file:greenhouse_temp", 22.0);
    assert_eq!(r["unit"], "celsius", "{r}");
    // Changes.
    put_file(&value, "22.25");
    reads(&agent, "greenhouse", "file:greenhouse_temp", 22.75);

    // Garbage: degraded with what it holds, logged once however many samples fail.
    put_file(&value, "sensor offline\n");
    degraded(&agent, "greenhouse", "holds no number: \"sensor offline\"");
    // At 100ms, ten samples or more fail in this second.
    std::thread::sleep(std::time::Duration::from_secs(1));
    put_file(&value, "19");
    reads(&agent, "greenhouse", "file:greenhouse_temp", 19.5);
    let log = agent.log();
    assert_eq!(log.matches("holds no number").count(), 1, "{log}");
    assert!(log.contains("file source 'greenhouse': reading"), "{log}");

    // Longer than the 4 KiB read: the start is read, and the cut counted.
    put_file(&value, &format!("20{}", " ".repeat(5000)));
    reads(&agent, "greenhouse", "file:greenhouse_temp", 20.5);
    let n = node(&agent, "greenhouse").unwrap();
    assert!(n["counters"]["truncated"].as_u64().unwrap() > 0, "{n}");
    assert!(n["counters"]["reads_failed"].as_u64().unwrap() >= 5, "{n}");

    // Disappears, then comes back.
    std::fs::remove_file(&value).unwrap();
    degraded(&agent, "greenhouse", "No such file");
    put_file(&value, "18");
    reads(&agent, "greenhouse", "file:greenhouse_temp", 18.5);

    let (exit, _, log) = agent.terminate();
    assert!(exit.success(), "{log}");
}

/// Two samples of a DS18B20's w1_slave: a good one (CRC YES) and one whose CRC failed.
const W1_GOOD: &str =
    "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n";
const W1_BAD_CRC: &str =
    "72 01 4b 46 7f ff 0e 10 57 : crc=00 NO\n72 01 4b 46 7f ff 0e 10 57 t=85000\n";

#[test]
fn a_w1_slave_sample_is_read_with_a_regex_and_a_scale() {
    let dir = TempDir::new("file-w1");
    let w1 = dir.path().join("w1_slave");
    put_file(&w1, W1_GOOD);
    let pipeline = format!(
        r#"[[source]]
name = "probe"
kind = "file"
every = "100ms"
path = "{}"
unit = "celsius"
# Only a sample whose CRC checked out: YES, then the temperature on the next line.
regex = 'YES\s+.*t=(-?\d+)'
scale = 0.001

[[sink]]
name = "store"
kind = "store"
from = ["probe"]
"#,
        w1.display()
    );
    let port = free_port();
    let cfg = write_config(dir.path(), port, &pipeline);
    let (code, _, err) = run_cli(
        &["--config", cfg.to_str().unwrap(), "pipeline", "check"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let agent = Agent::start(&cfg, port, &[]);
    let r = reads(&agent, "probe", "file:probe", 23.125);
    assert_eq!(r["unit"], "celsius", "{r}");
    put_file(&w1, W1_BAD_CRC);
    degraded(&agent, "probe", "does not match regex");
    put_file(&w1, &W1_GOOD.replace("t=23125", "t=-1500"));
    reads(&agent, "probe", "file:probe", -1.5);
    let (exit, _, log) = agent.terminate();
    assert!(exit.success(), "{log}");
}

#[test]
fn pipeline_check_names_bad_file_parameters_with_file_line_and_hint() {
    let dir = TempDir::new("file-check");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        r#"[[source]]
name = "probe"
kind = "file"
path = "/sys/bus/w1/devices/28-0316a2795aff/w1_slave"
regex = "t=(-?\d+)"

[[sink]]
name = "store"
kind = "store"
from = ["probe"]
"#,
    )
    .unwrap();
    let (code, _, err) = run_cli(&["pipeline", "check", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    // "\d" is no TOML escape: the file does not parse, and says where.
    assert!(err.contains("bad.toml:5"), "{err}");

    std::fs::write(
        &bad,
        "[[source]]\nname = \"probe\"\nkind = \"file\"\npath = \"/tmp/x\"\nregex = 't=-?\\d+'\nscal = 2\n\n[[sink]]\nname = \"store\"\nkind = \"store\"\nfrom = [\"probe\"]\n",
    )
    .unwrap();
    let (code, _, err) = run_cli(&["pipeline", "check", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad.toml:5: regex of source 'probe': 't=-?\\d+' has no capture group"),
        "{err}"
    );
    assert!(err.contains("hint: put the number in parentheses"), "{err}");
    assert!(err.contains("bad.toml:6"), "{err}");
    assert!(
        err.contains("scale"),
        "an unknown key gets the closest name: {err}"
    );

    // Listed with its parameters.
    let (code, out, err) = run_cli(&["plugins", "list", "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let all: Value = serde_json::from_str(&out).unwrap();
    let file = all
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "source" && k["name"] == "file")
        .expect("file listed");
    let params: Vec<&str> = file["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "path", "id", "unit", "parse", "regex", "scale", "offset", "every",
    ] {
        assert!(params.contains(&p), "{p} missing from {params:?}");
    }
}

/// A FIFO at the path: opening it would wait for a writer, stalling every task; the
/// source opens without blocking, says it is no regular file, and the rest keeps running.
#[test]
fn a_fifo_at_the_path_does_not_stall_the_agent() {
    let dir = TempDir::new("file-fifo");
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let pipeline = format!(
        r#"[[source]]
name = "pipe"
kind = "file"
every = "100ms"
path = "{}"

[[source]]
name = "system"
kind = "system"
every = "100ms"
metrics = ["uptime"]

[[sink]]
name = "store"
kind = "store"
from = ["pipe", "system"]
"#,
        fifo.display()
    );
    let port = free_port();
    let cfg = write_config(dir.path(), port, &pipeline);
    let agent = Agent::start(&cfg, port, &[]);
    degraded(&agent, "pipe", "is not a regular file");
    let count = || {
        let (_, s) = get(&agent.url("/api/status")).ok()?;
        s["sources"]
            .as_array()?
            .iter()
            .find(|x| x["id"] == "system:uptime")?["readings"]
            .as_u64()
    };
    let first = eventually(10, "system readings", count);
    eventually(10, "more system readings", || {
        (count()? >= first + 5).then_some(())
    });
    let (exit, _, log) = agent.terminate();
    assert!(exit.success(), "{log}");
}
