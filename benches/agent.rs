//! Agent latency: a question over MQTT to its answer on MQTT, through the real release
//! binary, a real mosquitto, and the scripted Ollama stand-in answering instantly (two
//! model rounds: a `publish` tool call, then the answer). Run: `cargo bench --bench agent`
//! (needs Debian's mosquitto and mosquitto-clients). `SMOLLAMA_BENCH_N` sets the count,
//! `SMOLLAMA_BENCH_BIN` the binary (default `target/release/smollama`: interleave two
//! builds), `SMOLLAMA_BENCH_PAUSE_US` a pause after each streamed line (default 0: the
//! answers stream to the live events, and the stand-in's pacing would be counted as the
//! agent's end-to-end time). Other `SMOLLAMA_*` variables reach the agent as settings.
//!
//! Timing: a `mosquitto_pub -l` process publishes one line per question, a `mosquitto_sub`
//! process prints each answer; the clock runs from writing the line to reading the answer.

#[path = "../tests/common/fake_ollama.rs"]
mod fake_ollama;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_ollama::{FakeOllama, Step};
use serde_json::json;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn bench_var(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Waits until the agent says "online" on its status topic, which it publishes after
/// subscribing (a slow start, under valgrind or a debug build, would otherwise miss the
/// first questions).
fn wait_online(mport: u16) {
    let out = Command::new("mosquitto_sub")
        .args([
            "-p",
            &mport.to_string(),
            "-t",
            "smollama/bench/status",
            "-C",
            "1",
            "-W",
            "60",
        ])
        .output()
        .expect("mosquitto_sub");
    assert_eq!(
        out.stdout, b"online\n",
        "the agent did not come online within 60 s"
    );
}

fn main() {
    let n = bench_var("SMOLLAMA_BENCH_N").unwrap_or(200) as usize;
    let bin = std::env::var("SMOLLAMA_BENCH_BIN").unwrap_or("target/release/smollama".into());
    let pause = Duration::from_micros(bench_var("SMOLLAMA_BENCH_PAUSE_US").unwrap_or(0));
    let dir = std::env::temp_dir().join(format!("smollama-bench-agent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mport = free_port();
    std::fs::write(
        dir.join("m.conf"),
        format!("listener {mport} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"),
    )
    .unwrap();
    let mut broker = Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(dir.join("m.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto");
    while std::net::TcpStream::connect(("127.0.0.1", mport)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ollama = FakeOllama::start(&["gemma4:e2b"]);
    ollama.set_stream_pause(pause);
    for _ in 0..n + 5 {
        ollama.push(Step::ToolCalls(vec![(
            "publish".into(),
            json!({"topic": "notes", "message": "noted"}),
        )]));
        ollama.push(Step::Text("done".into()));
    }
    let hport = free_port();
    std::fs::write(dir.join("p.toml"), "[[source]]\nname = \"system\"\nkind = \"system\"\nevery = \"10s\"\nmetrics = [\"uptime\"]\n\n[[sink]]\nname = \"store\"\nkind = \"store\"\nfrom = [\"system\"]\n").unwrap();
    std::fs::write(
        dir.join("c.toml"),
        format!(
            "[node]\nname = \"bench\"\ndata_dir = \"{d}/data\"\n[http]\nbind = \"127.0.0.1:{hport}\"\n\
             [mqtt]\nbroker = \"127.0.0.1\"\nport = {mport}\n[ollama]\nhost = \"127.0.0.1\"\nport = {}\nretries = 0\n\
             [agent]\nrate_per_minute = 10000\n[pipeline]\nfiles = [\"{d}/p.toml\"]\n",
            ollama.port(),
            d = dir.display()
        ),
    )
    .unwrap();
    let mut agent = Command::new(&bin);
    // The agent refuses SMOLLAMA_ variables that name no setting.
    for (k, _) in std::env::vars() {
        if k.starts_with("SMOLLAMA_BENCH_") {
            agent.env_remove(k);
        }
    }
    let mut agent = agent
        .arg("--config")
        .arg(dir.join("c.toml"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin} (cargo bench builds it): {e}"));
    wait_online(mport);
    let mut sub = Command::new("mosquitto_sub")
        .args([
            "-p",
            &mport.to_string(),
            "-t",
            "smollama/bench/answers",
            "-q",
            "1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    let mut answers = BufReader::new(sub.stdout.take().unwrap()).lines();
    let mut publ = Command::new("mosquitto_pub")
        .args([
            "-p",
            &mport.to_string(),
            "-t",
            "smollama/bench/ask",
            "-q",
            "1",
            "-l",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub");
    let mut stdin = publ.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut times = Vec::with_capacity(n);
    let mut overhead = Vec::with_capacity(n);
    for i in 0..n + 5 {
        let t0 = Instant::now();
        writeln!(stdin, "{{\"id\":\"q{i}\",\"question\":\"note it\"}}").unwrap();
        stdin.flush().unwrap();
        let line = answers.next().unwrap().unwrap();
        assert!(line.contains(&format!("\"q{i}\"")), "{line}");
        if i >= 5 {
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
            let a: serde_json::Value = serde_json::from_str(&line).unwrap();
            overhead.push(a["overhead_us_per_round"].as_f64().unwrap());
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "agent_question_to_answer (2 model rounds + 1 publish, instant stand-in): median {:.2} ms, p90 {:.2} ms ({} questions)",
        pct(0.5),
        pct(0.9),
        times.len()
    );
    overhead.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "agent_overhead_per_round (question at the MQTT worker -> answer handed back, minus model time, per round): median {:.0} us, p90 {:.0} us",
        overhead[overhead.len() / 2],
        overhead[(overhead.len() - 1) * 9 / 10]
    );
    drop(stdin);
    let _ = publ.wait();
    let _ = sub.kill();
    let _ = sub.wait();
    // SIGTERM: the agent stops cleanly (and a profiler wrapping it writes its output).
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let _ = agent.wait();
    let _ = broker.kill();
    let _ = broker.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
