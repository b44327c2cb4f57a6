//! mDNS discovery between two real nodes in two network namespaces joined by a veth pair
//! the test creates (10.77.x addresses, a multicast route on the veth; no packet leaves
//! the machine, and the nodes never multicast on the host's own interfaces). Each node
//! must find the other with its veth address; one stopped with SIGTERM must vanish from
//! the other's list at once (its goodbye), one killed with -9 after the cache TTL.
//!
//! Needs root (`ip netns add`); where that is not permitted the test says so and skips.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{BIN, TOKEN, TempDir, eventually, free_port};
use serde_json::Value;

/// Two namespaces and the veth pair between them, removed on drop.
struct Net {
    ns: [String; 2],
    /// A third namespace with loopback only: no interface can multicast there.
    lonely: String,
}

impl Net {
    /// `None` (after saying why) when network namespaces cannot be made here.
    fn new() -> Option<Net> {
        let id = std::process::id() % 100_000;
        let ns = [format!("smd-a-{id}"), format!("smd-b-{id}")];
        let lonely = format!("smd-c-{id}");
        let veth = [format!("sma{id}"), format!("smb{id}")];
        let ok = Command::new("ip")
            .args(["netns", "add", &ns[0]])
            .stderr(Stdio::piped())
            .output();
        match ok {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                eprintln!(
                    "SKIPPED: `ip netns add` is not permitted here ({}); the mDNS test needs root and network namespaces",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                return None;
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run `ip` ({e}); install iproute2");
                return None;
            }
        }
        let net = Net {
            ns: ns.clone(),
            lonely: lonely.clone(),
        };
        let ip = |args: &[&str]| {
            let o = Command::new("ip").args(args).output().unwrap();
            assert!(
                o.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr)
            );
        };
        ip(&["netns", "add", &ns[1]]);
        ip(&["netns", "add", &lonely]);
        ip(&["-n", &lonely, "link", "set", "lo", "up"]);
        ip(&[
            "link", "add", &veth[0], "type", "veth", "peer", "name", &veth[1],
        ]);
        for i in 0..2 {
            let (n, v) = (&ns[i], &veth[i]);
            ip(&["link", "set", v, "netns", n]);
            ip(&[
                "-n",
                n,
                "addr",
                "add",
                &format!("10.77.0.{}/24", i + 1),
                "dev",
                v,
            ]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
            ip(&["-n", n, "link", "set", v, "up", "multicast", "on"]);
            ip(&["-n", n, "route", "add", "224.0.0.0/4", "dev", v]);
        }
        Some(net)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in self.ns.iter().chain([&self.lonely]) {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// A node running in a namespace, its stderr collected.
struct Node {
    ns: String,
    cfg: PathBuf,
    child: Child,
    log: Arc<Mutex<String>>,
}

/// A node's config; `agent` says whether it runs the LLM agent (a llama) or not (an alpaca).
fn config(dir: &Path, name: &str, port: u16, cache_ttl: &str, agent: bool) -> PathBuf {
    let pipe = dir.join("pipeline.toml");
    std::fs::write(
        &pipe,
        "[[source]]\nname = \"system\"\nkind = \"system\"\nevery = \"1s\"\nmetrics = [\"uptime\"]\n\n[[sink]]\nname = \"store\"\nkind = \"store\"\nfrom = [\"system\"]\n",
    )
    .unwrap();
    let cfg = dir.join("smollama.toml");
    std::fs::write(
        &cfg,
        format!(
            "[node]\nname = \"{name}\"\ndata_dir = \"{}\"\n\n[http]\nbind = \"0.0.0.0:{port}\"\ntoken = \"{TOKEN}\"\n\n[gpio]\nbackend = \"mock\"\n\n[pipeline]\nfiles = [\"{}\"]\n\n[discovery]\ncache_ttl = \"{cache_ttl}\"\n\n[agent]\nenabled = {agent}\n",
            dir.join("data").display(),
            pipe.display()
        ),
    )
    .unwrap();
    cfg
}

impl Node {
    fn start(ns: &str, cfg: &Path) -> Node {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, BIN, "--config"])
            .arg(cfg)
            .env_remove("SMOLLAMA_CONFIG")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let node = Node {
            ns: ns.to_string(),
            cfg: cfg.to_path_buf(),
            child,
            log,
        };
        eventually(20, "the node answers `smollama nodes`", || node.nodes());
        node
    }

    /// `smollama nodes --json`, run in the node's namespace: its `/api/nodes`.
    fn nodes(&self) -> Option<Value> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, BIN, "--config"])
            .arg(&self.cfg)
            .args(["nodes", "--json"])
            .env_remove("RUST_LOG")
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    fn peer(&self, name: &str) -> Option<Value> {
        self.nodes()?["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn signal(&mut self, sig: i32) {
        // `ip netns exec` execs the binary: the child's pid is the node's.
        unsafe { libc::kill(self.child.id() as i32, sig) };
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn nodes_in_two_namespaces_find_each_other_and_notice_when_one_goes() {
    let Some(net) = Net::new() else {
        return;
    };
    let (da, db) = (TempDir::new("mdns-a"), TempDir::new("mdns-b"));
    let (pa, pb) = (free_port(), free_port());
    // A TTL long enough that "at once" (the goodbye) and "after the TTL" differ clearly.
    const TTL_S: u64 = 12;
    let ttl = format!("{TTL_S}s");
    let ca = config(da.path(), "alpha", pa, &ttl, false);
    let cb = config(db.path(), "beta", pb, &ttl, true);
    let mut a = Node::start(&net.ns[0], &ca);
    let b = Node::start(&net.ns[1], &cb);

    // Each finds the other, with its veth address and HTTP port, and its TXT records.
    let seen_by_b = eventually(20, "beta discovers alpha", || b.peer("alpha"));
    assert_eq!(
        seen_by_b["addresses"],
        serde_json::json!(["10.77.0.1"]),
        "{seen_by_b}"
    );
    assert_eq!(seen_by_b["port"], pa);
    assert_eq!(seen_by_b["url"], format!("http://10.77.0.1:{pa}"));
    assert_eq!(seen_by_b["via"], serde_json::json!(["mdns"]));
    assert_eq!(seen_by_b["node_type"], "alpaca");
    assert_eq!(seen_by_b["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(seen_by_b["capabilities"]["sources"], 1, "{seen_by_b}");
    assert_eq!(seen_by_b["capabilities"]["llm"], false);
    assert_eq!(seen_by_b["health"], "active");
    let seen_by_a = eventually(20, "alpha discovers beta", || a.peer("beta"));
    assert_eq!(
        seen_by_a["addresses"],
        serde_json::json!(["10.77.0.2"]),
        "{seen_by_a}"
    );
    assert_eq!(seen_by_a["port"], pb);
    assert_eq!(seen_by_a["node_type"], "llama");
    assert_eq!(seen_by_a["capabilities"]["llm"], true);
    assert!(
        seen_by_a["capabilities"]["tools"].as_u64().unwrap() > 0,
        "{seen_by_a}"
    );
    // Each announces its own real address, never loopback.
    let own = a.nodes().unwrap()["nodes"][0].clone();
    assert_eq!(own["self"], true);
    assert_eq!(own["addresses"], serde_json::json!(["10.77.0.1"]), "{own}");

    // Still listed after several verification rounds (every TTL/3): refreshed, not aged out.
    std::thread::sleep(Duration::from_secs(TTL_S + 2));
    let still = b.peer("alpha").expect("alpha stays while it answers");
    assert_eq!(still["health"], "active", "{still}");

    // SIGTERM: the goodbye removes it from beta's list at once.
    a.signal(libc::SIGTERM);
    let t = Instant::now();
    eventually(5, "alpha gone from beta's list after its goodbye", || {
        b.peer("alpha").is_none().then_some(())
    });
    let took = t.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(a.log().contains("goodbye sent"), "{}", a.log());
    eprintln!("SIGTERM: gone from the peer's list in {took:?}");

    // Back again, then killed with -9: no goodbye, so it goes once it stops answering,
    // within the TTL.
    let mut a = Node::start(&net.ns[0], &ca);
    eventually(20, "beta discovers alpha again", || b.peer("alpha"));
    a.signal(libc::SIGKILL);
    let t = Instant::now();
    eventually(
        TTL_S + 5,
        "alpha gone from beta's list after the TTL",
        || b.peer("alpha").is_none().then_some(()),
    );
    let took = t.elapsed();
    assert!(took <= Duration::from_secs(TTL_S + 2), "took {took:?}");
    // Removed when its time to answer a verification query ran out.
    assert!(b.log().contains("alpha no longer answers"), "{}", b.log());
    eprintln!("kill -9: gone from the peer's list in {took:?} (cache_ttl {TTL_S}s)");
    let out = Command::new("ip")
        .args(["netns", "exec", &b.ns, BIN, "--config"])
        .arg(&b.cfg)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &status["node_directory"];
    // A goodbye is told from silence by its timing (browse.rs); one that lands in the
    // second a verification answer was due counts as silence, so only the sum and the
    // kill's side are certain.
    let bye = d["mdns_goodbyes"].as_u64().unwrap();
    let silent = d["mdns_expired"].as_u64().unwrap();
    assert!(bye + silent == 2 && silent >= 1, "{d}");
    drop(b);

    // Where no interface can multicast, discovery is off with one clear line.
    let dc = TempDir::new("mdns-c");
    let cc = config(dc.path(), "gamma", free_port(), &ttl, false);
    let c = Node::start(&net.lonely, &cc);
    let lines: Vec<String> = c
        .log()
        .lines()
        .filter(|l| l.contains("discovery:"))
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("discovery: off: no network interface is up with multicast"),
        "{lines:?}"
    );
    assert_eq!(
        c.nodes().unwrap()["nodes"][0]["addresses"],
        serde_json::json!([])
    );
}
