//! The filesystem under the data directory failing while the real binary runs (root
//! only: the tests mount what they break; skipped otherwise):
//!
//! - memories and observations written on a full disk (a 16 MiB tmpfs filled to the last
//!   byte; `tests/faults.rs` covers readings): each write is either stored or refused with
//!   an error naming the cause, which the model gets as the tool's result; nothing stored
//!   before is lost, and writes succeed again once space returns, without a restart;
//! - the filesystem turning read-only (an ext4 image on a loop device, mounted
//!   `errors=remount-ro` as Raspberry Pi OS mounts its root, failed with ext4's own test
//!   hook as a dying card fails it): readings, the outbox and the memory tables refuse
//!   writes with "Read-only file system" in status and in the tools' answers, HTTP keeps
//!   answering from what is stored, the agent stops cleanly, and after what a reboot does
//!   (unmount, `e2fsck`, mount) everything committed is there and writing resumes.
//!   Linux keeps such a filesystem read-only until it is unmounted, so that recovery
//!   needs the restart; a plain `mount -o remount,ro` is refused while LMDB holds its
//!   files open for writing, so it cannot happen to a running agent.

mod common;
#[path = "common/disk.rs"]
mod disk;
#[path = "common/fake_ollama.rs"]
mod fake_ollama;

use common::*;
use fake_ollama::{FakeOllama, Step};
use serde_json::{Value, json};

const MODEL: &str = "gemma4:e2b";

/// Five system sources at their fastest, stored and published with no broker (so the
/// outbox grows too): the store needs new pages every second or so.
fn busy_pipeline() -> String {
    let mut p = String::new();
    for i in 0..5 {
        p.push_str(&format!(
            "[[source]]\nname = \"sys{i}\"\nkind = \"system\"\nevery = \"100ms\"\n\
             metrics = [\"uptime\", \"load_avg\", \"mem_available_mb\", \"cpu_percent\"]\n\n"
        ));
    }
    let all: Vec<String> = (0..5).map(|i| format!("\"sys{i}\"")).collect();
    p.push_str(&format!(
        "[[sink]]\nname = \"store\"\nkind = \"store\"\nfrom = [{0}]\n\n\
         [[sink]]\nname = \"publish\"\nkind = \"mqtt\"\nfrom = [{0}]\n",
        all.join(", ")
    ));
    p
}

fn config(dir: &std::path::Path, port: u16, ollama: &FakeOllama) -> std::path::PathBuf {
    write_config_extra(
        dir,
        port,
        &busy_pipeline(),
        &format!(
            "{}\n[store]\nmap_size_mb = 64\n\n\
             [ollama]\nhost = \"127.0.0.1\"\nport = {}\nmodel = \"{MODEL}\"\nretries = 0\n\n\
             [memory]\nobserve = false\nembedding_model = \"all-minilm\"\n\
             reinforce_similarity = 1.0\nmerge_similarity = 1.0\n\n\
             [agent]\nrate_per_minute = 1000\n",
            // No broker listens there: every reading also waits in the outbox.
            mqtt_section(free_port(), ""),
            ollama.port()
        ),
    )
}

/// Asks the agent to run one memory tool; returns what the tool answered the model.
fn tool(agent: &Agent, ollama: &FakeOllama, name: &str, args: Value) -> Value {
    ollama.push(Step::ToolCalls(vec![(name.into(), args)]));
    ollama.push(Step::Text("Done.".into()));
    let body = json!({ "question": format!("please {name}") }).to_string();
    let (code, a) = post_auth(&agent.url("/api/ask"), &body, Some(TOKEN), 30);
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["tools_used"], json!([name]), "{a}");
    // The chat request after the tool ran carries its result as the last message.
    let chats = ollama.bodies("/api/chat");
    let last = chats.last().unwrap()["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["role"], "tool", "{last}");
    serde_json::from_str(last["content"].as_str().unwrap()).unwrap()
}

fn remember(agent: &Agent, ollama: &FakeOllama, fact: &str) -> Value {
    tool(agent, ollama, "remember", json!({ "fact": fact }))
}

fn observe(agent: &Agent, ollama: &FakeOllama, text: &str) -> Value {
    tool(agent, ollama, "observe", json!({ "observation": text }))
}

/// Stored or refused with a reason: never an unexplained failure.
fn stored_or_refused(what: &str, r: &Value, causes: &[&str]) -> bool {
    if r["status"] == "stored" || r["status"] == "recorded" {
        return true;
    }
    let e = r["error"].as_str().unwrap_or_default();
    assert!(
        causes.iter().any(|c| e.contains(c)),
        "{what}: refused without naming the cause: {r}"
    );
    false
}

fn memories(agent: &Agent) -> Vec<String> {
    let (_, l) = get(&agent.url("/api/memories?limit=1000")).unwrap();
    l["memories"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str().map(String::from))
        .collect()
}

fn observations(agent: &Agent) -> Vec<String> {
    let (_, l) = get(&agent.url("/api/observations?limit=1000")).unwrap();
    l["observations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["text"].as_str().map(String::from))
        .collect()
}

fn store(agent: &Agent) -> Value {
    status(agent)["store"].clone()
}

fn outbox(agent: &Agent) -> u64 {
    status(agent)["connections"]["mqtt"]["outbox"]["messages"]
        .as_u64()
        .unwrap()
}

#[test]
fn memory_writes_on_a_full_disk_are_stored_or_refused_with_the_cause_and_recover() {
    if !disk::is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = TempDir::new("faults-fs-memory");
    let Some(_fs) = disk::Tmpfs::mount(&dir.path().join("data"), "16m") else {
        eprintln!("skipped: mount -t tmpfs is not allowed here");
        return;
    };
    let ollama = FakeOllama::start(&[MODEL, "all-minilm"]);
    let port = free_port();
    let agent = Agent::start(&config(dir.path(), port, &ollama), port, &[]);
    assert_eq!(
        remember(&agent, &ollama, "the fan is on pin 22")["status"],
        "stored"
    );
    assert_eq!(
        observe(&agent, &ollama, "load is low at night")["status"],
        "recorded"
    );

    disk::fill(&dir.path().join("data/filler"));
    eventually(60, "the store says the disk is full", || {
        (store(&agent)["state"] == "degraded").then_some(())
    });
    // A full tmpfs fails LMDB's writes with ENOSPC or EIO (the store then adds that the
    // disk is full); a write may also fit in pages LMDB already has.
    let causes = ["No space left", "is full", "Input/output error"];
    let mut kept = Vec::new();
    let (mut refused, mut tries) = (0, 0);
    for i in 0..5 {
        let fact = format!("full disk fact {i}");
        let r = remember(&agent, &ollama, &fact);
        tries += 1;
        if stored_or_refused(&fact, &r, &causes) {
            kept.push(fact);
        } else {
            if refused == 0 {
                eprintln!("refused: {}", r["error"]);
            }
            refused += 1;
        }
        let text = format!("full disk observation {i}");
        let r = observe(&agent, &ollama, &text);
        tries += 1;
        if stored_or_refused(&text, &r, &causes) {
            kept.push(text);
        } else {
            refused += 1;
        }
    }
    eprintln!("on the full disk: {refused} of {tries} memory writes refused");
    // What was committed before (and what was acknowledged since) is all still there.
    let (mem, obs) = (memories(&agent), observations(&agent));
    assert!(mem.iter().any(|m| m == "the fan is on pin 22"), "{mem:?}");
    assert!(obs.iter().any(|o| o == "load is low at night"), "{obs:?}");
    for k in &kept {
        assert!(
            mem.contains(k) || obs.contains(k),
            "acknowledged, then lost: {k}"
        );
    }

    // Space returns: the next writes are stored, without a restart.
    std::fs::remove_file(dir.path().join("data/filler")).unwrap();
    eventually(60, "the store recovers by itself", || {
        (store(&agent)["state"] == "ok").then_some(())
    });
    assert_eq!(
        remember(&agent, &ollama, "space is back")["status"],
        "stored"
    );
    assert_eq!(
        observe(&agent, &ollama, "writes work again")["status"],
        "recorded"
    );
    let (st, _, log) = agent.terminate();
    assert!(st.success(), "{log}");
    // And all of it after a restart.
    let agent = Agent::start(&config(dir.path(), port, &ollama), port, &[]);
    let (mem, obs) = (memories(&agent), observations(&agent));
    for k in kept.iter().map(String::as_str).chain([
        "the fan is on pin 22",
        "load is low at night",
        "space is back",
        "writes work again",
    ]) {
        assert!(
            mem.iter().any(|m| m == k) || obs.iter().any(|o| o == k),
            "lost {k}"
        );
    }
}

#[test]
fn a_data_directory_turning_read_only_degrades_loses_nothing_and_resumes_after_repair() {
    if !disk::is_root() {
        eprintln!("skipped: mounting an ext4 image needs root");
        return;
    }
    let dir = TempDir::new("faults-fs-ro");
    let Some(mut fs) =
        disk::Ext4::mount(&dir.path().join("card.img"), &dir.path().join("data"), 64)
    else {
        eprintln!("skipped: no loop device or mkfs.ext4 here");
        return;
    };
    let ollama = FakeOllama::start(&[MODEL, "all-minilm"]);
    let port = free_port();
    let cfg = config(dir.path(), port, &ollama);
    let agent = Agent::start(&cfg, port, &[]);
    assert_eq!(
        remember(&agent, &ollama, "the card is new")["status"],
        "stored"
    );
    assert_eq!(
        observe(&agent, &ollama, "all is calm")["status"],
        "recorded"
    );
    eventually(15, "readings committed, the outbox filling", || {
        (store(&agent)["readings"].as_u64()? > 300 && outbox(&agent) > 10).then_some(())
    });

    fs.fail();
    // Counting the rows is a read transaction; one that fails says so in `count_error`
    // (seen once in many runs, right as the filesystem turned).
    let degraded = eventually(30, "the store says it is degraded", || {
        let s = store(&agent);
        if let Some(e) = s["count_error"].as_str() {
            eprintln!("store count_error on the read-only card: {e}");
        }
        (s["state"] == "degraded" && s["readings"].is_u64()).then_some(s)
    });
    let why = degraded["last_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("Read-only file system"),
        "status names the cause: {degraded}"
    );
    let committed = degraded["readings"]
        .as_u64()
        .unwrap_or_else(|| panic!("{degraded}"));
    let queued = outbox(&agent);
    // The memory tables refuse too, and say why.
    for r in [
        remember(&agent, &ollama, "written on a read-only card"),
        observe(&agent, &ollama, "seen on a read-only card"),
    ] {
        let e = r["error"].as_str().unwrap_or_default();
        assert!(
            e.contains("Read-only file system"),
            "the tool says why: {r}"
        );
    }
    // Reads go on: HTTP answers from what is stored, nothing committed is gone.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(get(&agent.url("/api/health")).unwrap().0, 200);
    let s = store(&agent);
    assert!(
        s["readings"].as_u64().unwrap() >= committed,
        "{committed} then {s}"
    );
    assert!(outbox(&agent) >= queued, "the outbox shrank");
    assert!(memories(&agent).iter().any(|m| m == "the card is new"));
    assert!(observations(&agent).iter().any(|o| o == "all is calm"));
    let (st, took, log) = agent.terminate();
    eprintln!("stopped on the read-only card in {took:?}: {st}");
    // What could not be stored is given up and said, not waited for until systemd kills.
    assert!(took < std::time::Duration::from_secs(10), "{took:?}\n{log}");
    assert!(log.contains("could not be committed"), "{log}");

    // What a reboot does; then everything committed is there and writing resumes.
    fs.repair();
    let agent = Agent::start(&cfg, port, &[]);
    let s = store(&agent);
    assert!(
        s["readings"].as_u64().unwrap() >= committed,
        "{committed} then {s}\n{log}"
    );
    assert!(
        outbox(&agent) >= queued,
        "the outbox lost messages across the repair"
    );
    assert!(memories(&agent).iter().any(|m| m == "the card is new"));
    assert!(observations(&agent).iter().any(|o| o == "all is calm"));
    let written = s["readings_written"].as_u64().unwrap();
    eventually(30, "commits resume", || {
        let s = store(&agent);
        (s["state"] == "ok" && s["readings_written"].as_u64()? > written).then_some(())
    });
    assert_eq!(
        remember(&agent, &ollama, "the card was repaired")["status"],
        "stored"
    );
}
