//! Faults injected into the real binary, each asserted as a user would notice it:
//!
//! - an LLM server that hangs after its headers, trickles a byte a second, sends garbage
//!   mid-stream, or answers 503 with Retry-After (`common/faulty_llm.rs` stands in for a
//!   misbehaving `ollama serve`): the question gets an error answer within the
//!   timeouts, and the next one is answered;
//! - a broker that accepts TCP and never answers CONNECT (a raw listener standing in
//!   for a wedged mosquitto): status never says connected and names the trouble, the
//!   agent keeps trying, and takes a real broker on that port when one comes;
//! - SIGSTOP for longer than the watchdog interval, then SIGCONT: the watchdog pings stop
//!   and resume, and the broker connection works again (messages acknowledged);
//! - `kill -9` at random moments while memories and the outbox are being written, many
//!   times over one data directory: every acknowledged memory is there after each
//!   restart and the outbox never shrinks while the broker is away (4 rounds; 25 with
//!   `SMOLLAMA_TEST_SLOW=1`).

mod common;
#[path = "common/disk.rs"]
mod disk;
#[path = "common/fake_ollama.rs"]
mod fake_ollama;
#[path = "common/faulty_llm.rs"]
mod faulty_llm;

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::*;
use disk::{Tmpfs, fill};
use fake_ollama::{FakeOllama, Step};
use faulty_llm::{Fault, FaultyLlm};
use serde_json::{Value, json};

const MODEL: &str = "gemma4:e2b";

const PIPELINE: &str = UPTIME_PIPELINE;

/// The same, every reading also published (so the outbox fills while the broker is away).
const PUBLISHING: &str = r#"
[[source]]
name = "system"
kind = "system"
every = "100ms"
metrics = ["uptime", "load_avg"]

[[sink]]
name = "store"
kind = "store"
from = ["system"]

[[sink]]
name = "publish"
kind = "mqtt"
from = ["system"]
"#;

fn ask(agent: &Agent, question: &str) -> (u16, Value, Duration) {
    let t0 = Instant::now();
    let body = json!({ "question": question, "timeout_s": 60 }).to_string();
    let (code, a) = post_auth(&agent.url("/api/ask"), &body, Some(TOKEN), 70);
    (code, a, t0.elapsed())
}

#[test]
fn llm_server_faults_end_in_an_error_answer_and_the_next_question_is_answered() {
    let dir = TempDir::new("faults-llm");
    let llm = FaultyLlm::start();
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        PIPELINE,
        &format!(
            "[ollama]\nhost = \"127.0.0.1\"\nport = {}\nmodel = \"{MODEL}\"\nretries = 1\n\
             connect_timeout = \"1s\"\nread_timeout = \"2s\"\ntotal_timeout = \"6s\"\n\n\
             [memory]\nobserve = false\n",
            llm.port
        ),
    );
    let agent = Agent::start(&cfg, port, &[]);
    let (code, a, _) = ask(&agent, "warm up");
    assert_eq!((code, a["answer"].as_str()), (200, Some("ok")), "{a}");

    // A timeout is retried once (retries = 1), so a hang is scripted twice; a stream
    // that breaks is a bad reply, returned at once; the trickle runs into total_timeout.
    let cases: [(&str, Vec<Fault>); 3] = [
        (
            "hang after headers",
            vec![Fault::HangAfterHeaders, Fault::HangAfterHeaders],
        ),
        ("a byte a second", vec![Fault::Trickle]),
        ("garbage mid-stream", vec![Fault::GarbageMidStream]),
    ];
    for (what, faults) in cases {
        for f in faults {
            llm.push(f);
        }
        let (code, a, took) = ask(&agent, what);
        assert_eq!(code, 503, "{what}: {a}");
        assert!(
            a["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: the answer says what went wrong: {a}"
        );
        // total_timeout (6 s) bounds a call with its retries; generous for a busy machine.
        assert!(took < Duration::from_secs(20), "{what}: took {took:?}");
        let llm_status = &status(&agent)["connections"]["ollama"];
        assert!(
            !llm_status["last_error"].is_null(),
            "{what}: status names the error: {llm_status}"
        );
        let (code, a, _) = ask(&agent, "and now?");
        assert_eq!(code, 200, "{what}: the next question is answered: {a}");
        assert_eq!(a["answer"], "ok");
    }

    // 503 with Retry-After (a server still loading the model): retried, then answered.
    let before = llm.chats().len();
    llm.push(Fault::Unavailable { retry_after: 1 });
    let (code, a, _) = ask(&agent, "busy?");
    assert_eq!(code, 200, "a 503 is retried: {a}");
    let chats = llm.chats();
    assert_eq!(chats.len() - before, 2, "one 503, one retry");
    let gap = chats[before + 1] - chats[before];
    assert!(
        gap >= Duration::from_millis(900),
        "the retry waited (backoff, at least the Retry-After): {gap:?}"
    );
}

/// mosquitto on `port` (anonymous, no persistence), for a broker that comes late.
fn mosquitto_on(dir: &Path, port: u16) -> Child {
    let conf = dir.join("late-broker.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\nlog_type error\n"
        ),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (Debian's mosquitto package)");
    eventually(10, "mosquitto listening", || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    child
}

#[test]
fn a_broker_that_never_answers_connect_is_shown_and_a_real_one_taken_later() {
    let dir = TempDir::new("faults-blackhole");
    // Accepts every connection and never says a word: CONNECT goes unanswered.
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let broker_port = hole.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let closing = Arc::new(AtomicBool::new(false));
    let (a2, h2, c2) = (accepted.clone(), held.clone(), closing.clone());
    let hole_thread = std::thread::spawn(move || {
        for s in hole.incoming() {
            if c2.load(Ordering::SeqCst) {
                return; // the listener closes here, freeing the port
            }
            if let Ok(s) = s {
                a2.fetch_add(1, Ordering::SeqCst);
                h2.lock().unwrap().push(s);
            }
        }
    });

    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        PUBLISHING,
        &mqtt_section(broker_port, "keepalive = \"5s\"\n"),
    );
    let agent = Agent::start(&cfg, port, &[]);
    // It gives up on the silent connection and tries again: a second TCP connection.
    eventually(40, "a second connection attempt", || {
        (accepted.load(Ordering::SeqCst) >= 2).then_some(())
    });
    let m = status(&agent)["connections"]["mqtt"].clone();
    assert_ne!(m["state"], "connected", "{m}");
    assert_eq!(m["connects"], 0, "{m}");
    assert!(m["last_error"].is_string(), "status names the trouble: {m}");
    // Readings meanwhile wait in the outbox.
    eventually(10, "readings queued in the outbox", || {
        let m = status(&agent)["connections"]["mqtt"].clone();
        (m["outbox"]["messages"].as_u64()? > 0).then_some(())
    });

    // The wedged broker goes; a real one starts on the same port.
    closing.store(true, Ordering::SeqCst);
    let _ = TcpStream::connect(("127.0.0.1", broker_port));
    hole_thread.join().unwrap();
    held.lock().unwrap().clear();
    let mut real = mosquitto_on(dir.path(), broker_port);
    eventually(40, "connected to the real broker, outbox drained", || {
        let m = status(&agent)["connections"]["mqtt"].clone();
        (m["state"] == "connected" && m["outbox"]["messages"] == 0).then_some(())
    });
    let _ = real.kill();
    let _ = real.wait();
}

fn pings(sock: &UnixDatagram, d: Duration) -> usize {
    let end = Instant::now() + d;
    let mut n = 0;
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        sock.set_read_timeout(Some((end - Instant::now()).max(Duration::from_millis(1))))
            .unwrap();
        if let Ok(len) = sock.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..len]).contains("WATCHDOG=1")
        {
            n += 1;
        }
    }
    n
}

#[test]
fn sigstop_past_the_watchdog_then_sigcont_resumes_pings_and_the_broker_connection() {
    let dir = TempDir::new("faults-sigstop");
    let broker = Broker::start(dir.path());
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        PUBLISHING,
        &mqtt_section(broker.port, "keepalive = \"5s\"\n"),
    );
    let agent = Agent::start_env(
        &cfg,
        port,
        &[],
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"), // systemd would restart it after 1 s silent
        ],
    );
    eventually(15, "connected", || {
        (status(&agent)["connections"]["mqtt"]["state"] == "connected").then_some(())
    });
    assert!(pings(&sock, Duration::from_secs(2)) >= 2, "pings before");
    let pid = agent.child.id() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    // Past the watchdog interval, and past 1.5 keepalives.
    assert_eq!(
        pings(&sock, Duration::from_secs(9)),
        0,
        "no pings while stopped"
    );
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(
        pings(&sock, Duration::from_secs(3)) >= 2,
        "pings resume on SIGCONT"
    );
    // Connected again (the broker may or may not have dropped us after 1.5 keepalives:
    // its own timing), and messages sent after the resume acknowledged.
    let acked = status(&agent)["connections"]["mqtt"]["acked"]
        .as_u64()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = status(&agent)["connections"]["mqtt"].clone();
        if m["state"] == "connected"
            && m["acked"].as_u64().unwrap_or(0) > acked
            && m["outbox"]["messages"] == 0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not reconnected with the outbox drained: {m}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(&agent.url("/api/health")).unwrap().0, 200);
}

#[test]
fn kill_9_while_memories_and_the_outbox_are_written_loses_nothing_acknowledged() {
    let rounds = if std::env::var("SMOLLAMA_TEST_SLOW").as_deref() == Ok("1") {
        25
    } else {
        4
    };
    let dir = TempDir::new("faults-kill9");
    let ollama = Arc::new(FakeOllama::start(&[MODEL, "all-minilm"]));
    let port = free_port();
    // No broker listens there: every reading stays in the outbox.
    let no_broker = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        PUBLISHING,
        &format!(
            "{}\n[ollama]\nhost = \"127.0.0.1\"\nport = {}\nmodel = \"{MODEL}\"\nretries = 0\n\n\
             [memory]\nobserve = false\nembedding_model = \"all-minilm\"\nreinforce_similarity = 1.0\n\
             merge_similarity = 1.0\n",
            mqtt_section(no_broker, ""),
            ollama.port()
        ),
    );
    // Memories the agent acknowledged: a 200 answer to "remember <fact>" that ran the tool.
    let mut acked: Vec<String> = Vec::new();
    let mut outbox_seen = 0u64;
    let mut seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    for round in 0..rounds {
        let agent = Agent::start(&cfg, port, &[]);
        // Everything acknowledged before is still there, and the outbox kept its messages.
        let list = get(&agent.url("/api/memories?limit=1000")).unwrap().1;
        let have: Vec<&str> = list["memories"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["text"].as_str())
            .collect();
        for f in &acked {
            assert!(
                have.contains(&f.as_str()),
                "round {round}: lost {f:?}; have {list}"
            );
        }
        let outbox = status(&agent)["connections"]["mqtt"]["outbox"]["messages"]
            .as_u64()
            .unwrap();
        assert!(
            outbox >= outbox_seen,
            "round {round}: the outbox shrank from {outbox_seen} to {outbox}"
        );

        // Questions that store a memory each, until the kill.
        let stop = Arc::new(AtomicBool::new(false));
        let (o2, s2, url) = (ollama.clone(), stop.clone(), agent.url("/api/ask"));
        let writer = std::thread::spawn(move || {
            let mut done = Vec::new();
            let mut i = 0;
            while !s2.load(Ordering::SeqCst) {
                let fact = format!("round {round} fact {i}");
                o2.push(Step::ToolCalls(vec![(
                    "remember".into(),
                    json!({ "fact": fact }),
                )]));
                o2.push(Step::Text("Noted.".into()));
                let body = json!({ "question": format!("remember {fact}") }).to_string();
                let agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(10)))
                    .http_status_as_error(false)
                    .build()
                    .new_agent();
                match agent
                    .post(&url)
                    .header("Authorization", &format!("Bearer {TOKEN}"))
                    .send(&body)
                {
                    Ok(mut r) if r.status() == 200 => {
                        let a: Value = serde_json::from_str(
                            &r.body_mut().read_to_string().unwrap_or_default(),
                        )
                        .unwrap_or(Value::Null);
                        if a["tools_used"] == json!(["remember"]) {
                            done.push(fact);
                        }
                    }
                    _ => break, // killed mid-question: not acknowledged
                }
                i += 1;
            }
            done
        });
        let wait = Duration::from_millis(300 + rand(&mut seed) % 2500);
        std::thread::sleep(wait);
        outbox_seen = outbox_seen.max(
            status(&agent)["connections"]["mqtt"]["outbox"]["messages"]
                .as_u64()
                .unwrap(),
        );
        let pid = agent.child.id() as i32;
        unsafe { libc::kill(pid, libc::SIGKILL) };
        stop.store(true, Ordering::SeqCst);
        acked.extend(writer.join().unwrap());
        drop(agent);
        // Answers the killed agent never asked for would confuse the next round.
        drain_script(&ollama);
    }
    assert!(
        acked.len() >= rounds,
        "too few memories acknowledged to prove anything: {}",
        acked.len()
    );
    assert!(outbox_seen > 0, "the outbox was never written");
}

/// Empties the stand-in's script (steps left by a question the kill cut short): each
/// chat takes one.
fn drain_script(ollama: &FakeOllama) {
    while ollama.steps_left() > 0 {
        let _ = ureq::post(&format!("{}/api/chat", ollama.url())).send(
            json!({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": false})
                .to_string(),
        );
    }
}

/// xorshift64*: the kill moments, reproducible from the process id.
fn rand(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    s.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Many system sources at their fastest, stored and published (no broker: the outbox
/// grows too), so the store needs new pages every second or so.
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

fn store_status(agent: &Agent) -> Value {
    status(agent)["store"].clone()
}

fn total_drops(s: &Value) -> u64 {
    let sum = |k: &str| -> u64 {
        s[k].as_array()
            .map(|a| a.iter().filter_map(|x| x["drops"].as_u64()).sum())
            .unwrap_or(0)
    };
    sum("sources") + sum("edges")
}

#[test]
fn a_full_data_directory_degrades_and_recovers_by_itself() {
    if !disk::is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = TempDir::new("faults-disk");
    let Some(_fs) = Tmpfs::mount(&dir.path().join("data"), "16m") else {
        eprintln!("skipped: mount -t tmpfs is not allowed here");
        return;
    };
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        &busy_pipeline(),
        &format!(
            "{}\n[store]\nmap_size_mb = 64\n",
            mqtt_section(free_port(), "")
        ),
    );
    let agent = Agent::start(&cfg, port, &[]);
    eventually(15, "readings committed", || {
        (store_status(&agent)["readings"].as_u64()? > 500).then_some(())
    });

    // The card fills up.
    let filler = dir.path().join("data/filler");
    fill(&filler);
    let degraded = eventually(60, "the store says it is degraded", || {
        let s = store_status(&agent);
        (s["state"] == "degraded").then_some(s)
    });
    let why = degraded["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!why.is_empty(), "status names the error: {degraded}");
    eprintln!("the store's error on a full disk: {why}");
    let committed = degraded["readings"].as_u64().unwrap();
    // ENOSPC, or EIO from a full tmpfs with the store's note that the disk is full.
    assert!(
        why.contains("No space left") || why.contains("is full"),
        "status names the cause: {why}"
    );
    // The store's inbox fills and holds the sources back (a durable sink applies
    // backpressure rather than dropping): status shows it full, nothing dropped.
    eventually(60, "the store's queue full, held back", || {
        let st = status(&agent);
        let store = st["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["name"] == "store")?
            .clone();
        let q = &store["queue"];
        (q["policy"] == "backpressure" && q["depth"] == q["capacity"]).then_some(())
    });
    assert_eq!(total_drops(&status(&agent)), 0, "held back, not dropped");
    assert_eq!(
        get(&agent.url("/api/health")).unwrap().0,
        200,
        "still answering"
    );
    let s = store_status(&agent);
    assert!(
        s["readings"].as_u64().unwrap() >= committed,
        "nothing committed lost: {committed} then {s}"
    );

    // Space comes back: commits resume without a restart.
    std::fs::remove_file(&filler).unwrap();
    let written = store_status(&agent)["readings_written"].as_u64().unwrap();
    eventually(60, "the store recovers by itself", || {
        let s = store_status(&agent);
        (s["state"] == "ok" && s["readings_written"].as_u64()? > written).then_some(())
    });

    let (st, _, log) = agent.terminate();
    assert!(st.success(), "a clean stop after all that: {log}");
    assert!(log.contains("commits succeed again"), "{log}");
}
