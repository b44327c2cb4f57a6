//! Secrets never reach the logs: a full session of the real binary (HTTP writes with the
//! token and with a wrong one, a dashboard login, a question answered through the Ollama
//! stand-in, MQTT through a real mosquitto that requires a password, sync to a peer that
//! is down with its peer token) at debug level, in the text and the JSON log formats,
//! and every line of it searched for each secret. `config check`, which prints every
//! setting, is searched too. And the systemd unit's exposure stays as low as
//! docs/security.md records.

mod common;
#[path = "common/fake_ollama.rs"]
mod fake_ollama;

use std::process::Command;

use common::*;
use fake_ollama::{FakeOllama, Step};

const MQTT_USER: &str = "node-kitchen";
const MQTT_PASSWORD: &str = "mqtt-secret-9f8e7d6c5b4a";
const PEER_TOKEN: &str = "peer-secret-1a2b3c4d5e6f7a8b";
/// What a client guessed: not the token, but nothing to write down either.
const WRONG_TOKEN: &str = "wrong-guess-abcdef0123456789";
const MODEL: &str = "gemma4:e2b";

/// Debian's mosquitto with `allow_anonymous false` and a password file holding one user,
/// as a broker on a LAN is set up; stopped on drop.
struct PasswordBroker {
    port: u16,
    child: std::process::Child,
}

impl PasswordBroker {
    fn start(dir: &std::path::Path) -> PasswordBroker {
        let port = free_port();
        let dir = dir.join("broker");
        std::fs::create_dir_all(&dir).unwrap();
        let passwd = dir.join("passwd");
        let st = Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(&passwd)
            .args([MQTT_USER, MQTT_PASSWORD])
            .status()
            .expect("mosquitto_passwd (Debian's mosquitto package)");
        assert!(st.success());
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
                 log_dest stderr\nlog_type error\n",
                passwd.display()
            ),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start mosquitto");
        eventually(10, "mosquitto listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        PasswordBroker { port, child }
    }
}

impl Drop for PasswordBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PIPELINE: &str = r#"
[[source]]
name = "system"
kind = "system"
every = "200ms"
metrics = ["uptime"]

[[sink]]
name = "store"
kind = "store"
from = ["system"]

[[sink]]
name = "publish"
kind = "mqtt"
from = ["system"]
"#;

/// The secrets a log line must never hold.
fn secrets() -> [&'static str; 4] {
    [TOKEN, MQTT_PASSWORD, PEER_TOKEN, WRONG_TOKEN]
}

fn assert_no_secret(what: &str, text: &str) {
    for (n, line) in text.lines().enumerate() {
        for s in secrets() {
            assert!(
                !line.contains(s),
                "{what}, line {}: holds a secret ({s}):\n{line}",
                n + 1
            );
        }
    }
}

/// One full session with `--log-format format` at debug level; its log.
fn session(format: &str) -> String {
    let dir = TempDir::new(&format!("secrets-{format}"));
    let broker = PasswordBroker::start(dir.path());
    let ollama = FakeOllama::start(&[MODEL]);
    let port = free_port();
    let dead_peer = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        PIPELINE,
        &format!(
            "{mqtt}\n[ollama]\nhost = \"127.0.0.1\"\nport = {ollama}\nmodel = \"{MODEL}\"\nretries = 0\n\n\
             [sync]\npeers = [\"http://127.0.0.1:{dead_peer}\"]\npeer_token = \"{PEER_TOKEN}\"\n\
             publish_interval = \"1s\"\ncatchup_interval = \"1s\"\n",
            mqtt = mqtt_section(
                broker.port,
                &format!("username = \"{MQTT_USER}\"\npassword = \"{MQTT_PASSWORD}\"\n")
            ),
            ollama = ollama.port(),
        ),
    );
    let (code, out, err) = run_cli(&["--config", cfg.to_str().unwrap(), "config", "check"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_no_secret("config check", &format!("{out}{err}"));

    let agent = Agent::start(
        &cfg,
        port,
        &["--log-level", "debug", "--log-format", format],
    );
    // The password is right: the broker, which refuses anonymous clients, takes it.
    eventually(15, "MQTT connected with the password", || {
        let s = get(&agent.url("/api/status")).ok()?.1;
        (s["connections"]["mqtt"]["state"] == "connected").then_some(())
    });

    // HTTP writes: with the token, with a wrong one, a login; a question answered.
    let gpio = agent.url("/api/gpio/22");
    assert_eq!(put(&gpio, r#"{"value": true}"#, Some(TOKEN)).0, 200);
    assert_eq!(put(&gpio, r#"{"value": false}"#, Some(WRONG_TOKEN)).0, 401);
    let login = agent.url("/api/login");
    assert_eq!(post(&login, &format!(r#"{{"token": "{TOKEN}"}}"#)).0, 200);
    assert_eq!(
        post(&login, &format!(r#"{{"token": "{WRONG_TOKEN}"}}"#)).0,
        401
    );
    ollama.push(Step::Text("It is up.".into()));
    let (code, a) = post_auth(
        &agent.url("/api/ask"),
        r#"{"question": "Is the node up?"}"#,
        Some(TOKEN),
        20,
    );
    assert_eq!(code, 200, "{a}");
    // Sync tries its peer (down) with the peer token at least once.
    eventually(15, "a failed sync round", || {
        let log = agent.log();
        log.contains(&format!("127.0.0.1:{dead_peer}"))
            .then_some(())
    });
    let (_, _, log) = agent.terminate();
    log
}

#[test]
fn no_secret_in_any_log_line_text_or_json() {
    for format in ["text", "json"] {
        let log = session(format);
        assert!(
            log.lines().count() > 20,
            "too few lines to prove anything:\n{log}"
        );
        assert!(log.contains("DEBUG") || log.contains("\"debug\""), "{log}");
        assert_no_secret(&format!("the {format} log"), &log);
    }
}

/// `systemd-analyze security`'s exposure of the unit (0 to 10): 1.5 when docs/security.md
/// was written; a change that opens it up fails here (`--threshold` is in tenths).
#[test]
fn the_units_exposure_stays_low() {
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/smollama.service");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", unit])
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the unit's exposure went above 2.0:\n{text}"
    );
    assert!(text.contains("Overall exposure level"), "{text}");
}
