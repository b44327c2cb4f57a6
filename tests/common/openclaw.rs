//! A real OpenClaw gateway for the tests (started by `scripts/openclaw-gateway.sh`: Node 24
//! and `openclaw` from npm, cached in `/var/cache/smollama-ci/openclaw`), headless on
//! 127.0.0.1 with its own state directory, and a test-side operator client speaking the
//! gateway's protocol (signed v3 connect as `cli` with operator scopes), which lists,
//! approves and invokes nodes as an operator's CLI or control UI would.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub const GATEWAY_TOKEN: &str = "gw-test-token-0123456789";

/// A gateway process (its own process group, killed on drop) and its state directory.
pub struct Gateway {
    pub port: u16,
    pub state: PathBuf,
    /// The network namespace it runs in (bound to all its interfaces, announcing its
    /// mDNS beacon), or `None`: on 127.0.0.1, silent.
    netns: Option<String>,
    child: Option<Child>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/openclaw-gateway.sh")
}

impl Gateway {
    /// Start a gateway on a free port whose node command allowlist is `allow`.
    pub fn start(state: &Path, allow: &[&str]) -> Gateway {
        Gateway::start_with(state, allow, json!({}))
    }

    /// The same with a model for the gateway's own agent: `model` from an Ollama at
    /// `ollama_url` (a stand-in: the agent's requests show what it was told).
    pub fn start_with_ollama(
        state: &Path,
        allow: &[&str],
        ollama_url: &str,
        model: &str,
    ) -> Gateway {
        let extra = json!({
            "agents": {"defaults": {"model": {"primary": format!("ollama/{model}")}}},
            "models": {"providers": {"ollama": {
                "apiKey": "ollama-local", "baseUrl": ollama_url, "api": "ollama",
                "models": [{"id": model, "name": model}],
            }}},
        });
        Gateway::start_with(state, allow, extra)
    }

    /// `extra`: more of the gateway's config (top-level keys).
    fn start_with(state: &Path, allow: &[&str], extra: Json) -> Gateway {
        let oc = state.join(".openclaw");
        std::fs::create_dir_all(&oc).unwrap();
        // What `openclaw config set gateway.nodes.commands.allow '[...]' --strict-json`
        // writes (docs/openclaw.md), before the gateway reads it.
        let mut config = json!({"gateway": {"nodes": {"commands": {"allow": allow}}}});
        if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        std::fs::write(oc.join("openclaw.json"), config.to_string()).unwrap();
        let mut g = Gateway {
            port: crate::common::free_port(),
            state: state.to_path_buf(),
            netns: None,
            child: None,
        };
        g.run();
        g
    }

    /// A gateway as an operator runs one for a LAN: in network namespace `netns`, bound
    /// to all interfaces (`--bind lan`), its `bonjour` plugin enabled (what
    /// `openclaw plugins enable bonjour` writes), so it announces `_openclaw-gw._tcp`.
    /// A node connecting over the LAN is a device the operator must pair first.
    pub fn start_lan(state: &Path, allow: &[&str], netns: &str) -> Gateway {
        let oc = state.join(".openclaw");
        std::fs::create_dir_all(&oc).unwrap();
        let config = json!({
            "gateway": {"nodes": {"commands": {"allow": allow}}},
            "plugins": {"entries": {"bonjour": {"enabled": true}}},
        });
        std::fs::write(oc.join("openclaw.json"), config.to_string()).unwrap();
        let mut g = Gateway {
            port: crate::common::free_port(),
            state: state.to_path_buf(),
            netns: Some(netns.to_string()),
            child: None,
        };
        g.run();
        g
    }

    fn run(&mut self) {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns])
                    .arg(script())
                    .env("OPENCLAW_GATEWAY_LAN", "1");
                c
            }
            None => Command::new(script()),
        };
        let mut child = cmd
            .args(["run", &self.port.to_string(), GATEWAY_TOKEN])
            .arg(&self.state)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start scripts/openclaw-gateway.sh");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.starts_with("openclaw-gateway: ready") {
                    let _ = tx.send(());
                }
            }
        });
        // A cold cache installs Node 24 and openclaw first (about a minute).
        rx.recv_timeout(Duration::from_secs(300))
            .expect("the gateway did not become ready (see scripts/openclaw-gateway.sh)");
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Stop the gateway (its whole process group).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the group we created.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }

    /// Stop and start again on the same port and state (pairings kept).
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Base64url without padding, as the gateway writes keys and signatures.
pub fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An operator connection: requests with ids, the events seen while waiting kept.
pub struct Operator {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
    pub events: Vec<(String, Json)>,
}

impl Operator {
    /// [`Operator::connect`] from inside network namespace `netns` (the socket is made
    /// on a thread moved there with setns(2), and stays in it).
    pub fn connect_in(netns: &str, url: &str, token: &str) -> Operator {
        let (netns, url, token) = (netns.to_string(), url.to_string(), token.to_string());
        std::thread::spawn(move || {
            let ns = std::fs::File::open(format!("/var/run/netns/{netns}")).expect("the namespace");
            // SAFETY: setns(2) on an open namespace file; it moves only this thread.
            let r =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            Operator::connect(&url, &token)
        })
        .join()
        .expect("the operator connected")
    }

    /// Connects and signs in as an operator, retrying while the gateway says it is still
    /// starting (`retryable`, with `retryAfterMs`), as its own clients do.
    pub fn connect(url: &str, token: &str) -> Operator {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match Self::try_connect(url, token) {
                Ok(op) => return op,
                Err(e) if e["retryable"] == true && Instant::now() < deadline => {
                    let ms = e["retryAfterMs"].as_u64().unwrap_or(500);
                    std::thread::sleep(Duration::from_millis(ms));
                }
                Err(e) => panic!("operator: connect refused: {e}"),
            }
        }
    }

    fn try_connect(url: &str, token: &str) -> Result<Operator, Json> {
        let (mut ws, _) = tungstenite::connect(url).expect("operator: connect");
        if let MaybeTlsStream::Plain(s) = ws.get_mut() {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        }
        let seed: [u8; 32] = Sha256::digest(format!(
            "operator-{}-{:?}",
            std::process::id(),
            Instant::now()
        ))
        .into();
        let key = SigningKey::from_bytes(&seed);
        let public = key.verifying_key().to_bytes();
        let device_id: String = Sha256::digest(public)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut op = Operator {
            ws,
            next: 0,
            events: Vec::new(),
        };
        let challenge = op.wait_event("connect.challenge", Duration::from_secs(15));
        let (nonce, ts) = (
            challenge["nonce"].as_str().unwrap().to_string(),
            challenge["ts"].as_i64().unwrap(),
        );
        let scopes = [
            "operator.read",
            "operator.write",
            "operator.pairing",
            "operator.admin",
        ];
        let payload = format!(
            "v3|{device_id}|cli|cli|operator|{}|{ts}|{token}|{nonce}|linux|",
            scopes.join(",")
        );
        let signature = b64url(&key.sign(payload.as_bytes()).to_bytes());
        let hello = op.request(
            "connect",
            json!({
                "minProtocol": 4, "maxProtocol": 4,
                "client": {"id": "cli", "version": "test", "platform": "linux", "mode": "cli"},
                "role": "operator", "scopes": scopes, "caps": [], "commands": [], "permissions": {},
                "auth": {"token": token},
                "device": {"id": device_id, "publicKey": b64url(&public), "signature": signature,
                           "signedAt": ts, "nonce": nonce},
            }),
        )?;
        assert_eq!(hello["type"], "hello-ok");
        Ok(op)
    }

    fn read(&mut self) -> Json {
        loop {
            match self.ws.read().expect("operator: read") {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Close(c) => panic!("operator: the gateway closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// Wait for an event named `name`, keeping the others.
    pub fn wait_event(&mut self, name: &str, within: Duration) -> Json {
        let deadline = Instant::now() + within;
        if let Some(i) = self.events.iter().position(|(e, _)| e == name) {
            return self.events.remove(i).1;
        }
        while Instant::now() < deadline {
            let f = self.read();
            if f["type"] == "event" {
                if f["event"] == name {
                    return f["payload"].clone();
                }
                let e = f["event"].as_str().unwrap_or("").to_string();
                if e != "tick" && e != "health" {
                    self.events.push((e, f["payload"].clone()));
                }
            }
        }
        panic!("operator: no {name} event within {within:?}");
    }

    /// A request; its response's payload, or the gateway's error object.
    pub fn request(&mut self, method: &str, params: Json) -> Result<Json, Json> {
        self.next += 1;
        let id = format!("op{}", self.next);
        let frame = json!({"type": "req", "id": id, "method": method, "params": params});
        self.ws
            .send(Message::text(frame.to_string()))
            .expect("operator: send");
        loop {
            let f = self.read();
            match f["type"].as_str() {
                Some("res") if f["id"] == id => {
                    return if f["ok"] == true {
                        Ok(f["payload"].clone())
                    } else {
                        Err(f["error"].clone())
                    };
                }
                Some("event") => {
                    let e = f["event"].as_str().unwrap_or("").to_string();
                    if e != "tick" && e != "health" {
                        self.events.push((e, f["payload"].clone()));
                    }
                }
                _ => {}
            }
        }
    }

    /// `node.list`'s entry for `node_id`, if the gateway knows it.
    pub fn node(&mut self, node_id: &str) -> Option<Json> {
        let list = self.request("node.list", json!({})).expect("node.list");
        list["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["nodeId"] == node_id)
            .cloned()
    }

    /// `node.invoke` as the operator's tools send it: the result's payload, or the error.
    pub fn invoke(&mut self, node_id: &str, command: &str, params: Json) -> Result<Json, Json> {
        self.next += 1;
        let key = format!("idem-{}-{}", std::process::id(), self.next);
        self.invoke_keyed(node_id, command, params, &key)
    }

    /// The same with a given idempotency key (a retry sends the same one).
    pub fn invoke_keyed(
        &mut self,
        node_id: &str,
        command: &str,
        params: Json,
        key: &str,
    ) -> Result<Json, Json> {
        self.request(
            "node.invoke",
            json!({"nodeId": node_id, "command": command, "params": params,
                   "timeoutMs": 15000, "idempotencyKey": key}),
        )
        .map(|p| p["payload"].clone())
    }

    /// Approve `device_id`'s pending device pairing (as `openclaw devices approve`).
    pub fn approve_device(&mut self, device_id: &str) {
        let list = self
            .request("device.pair.list", json!({}))
            .expect("device.pair.list");
        let request_id = list["pending"]
            .as_array()
            .and_then(|p| p.iter().find(|r| r["deviceId"] == device_id))
            .and_then(|r| r["requestId"].as_str())
            .unwrap_or_else(|| panic!("no pairing request of {device_id}: {list}"))
            .to_string();
        self.request("device.pair.approve", json!({"requestId": request_id}))
            .expect("device.pair.approve");
    }

    /// Approve `node_id`'s pending command surface (as `openclaw nodes approve`) and
    /// wait until the gateway lists its commands.
    pub fn approve(&mut self, node_id: &str) {
        let pending = self.node(node_id).expect("the node is in node.list");
        let request_id = pending["pendingRequestId"]
            .as_str()
            .expect("a pending request")
            .to_string();
        self.request("node.pair.approve", json!({"requestId": request_id}))
            .expect("node.pair.approve");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self
                .node(node_id)
                .is_some_and(|n| n["approvalState"] != "pending-approval")
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("operator: {node_id} still pending approval");
    }
}
