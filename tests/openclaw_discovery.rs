//! The gateway found by its mDNS beacon, for real: a node with `[openclaw] enabled` and
//! no url, in one network namespace, and a real OpenClaw gateway (openclaw from npm,
//! `scripts/openclaw-gateway.sh`) in another, bound to its LAN side with its `bonjour`
//! plugin on, so it announces `_openclaw-gw._tcp` itself; the two joined by a veth pair
//! the test creates (10.79.x addresses, a multicast route: no packet leaves the
//! machine). On the gateway's side the veth is enslaved to a bridge that holds the
//! address: the gateway's mDNS responder (@homebridge/ciao) takes interface names from
//! `ip -o link show`, where a veth is `name@ifN`, matches none of Node's own names and
//! is never announced on; a bridge (like a LAN's `eth0` or `wlan0`) is. The node says it is looking until the gateway is up, then finds it by
//! its beacon, connects to the address of its records (a LAN device: it says the
//! operator must pair it, and connects once paired), and serves the operator's invoke.
//!
//! Needs root (`ip netns add`); where that is not permitted the test says so and skips.

mod common;
#[path = "common/openclaw.rs"]
mod openclaw_gw;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use common::{BIN, TOKEN, TempDir, UPTIME_PIPELINE, eventually, free_port};
use openclaw_gw::{GATEWAY_TOKEN, Gateway, Operator};
use serde_json::{Value, json};

/// The gateway's namespace, the node's, and the veth pair between them; removed on drop.
struct Net {
    gw: String,
    node: String,
}

impl Net {
    fn new() -> Option<Net> {
        let id = std::process::id() % 100_000;
        let (gw, node) = (format!("ocd-g-{id}"), format!("ocd-n-{id}"));
        match Command::new("ip").args(["netns", "add", &gw]).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                eprintln!(
                    "SKIPPED: `ip netns add` is not permitted here ({}); this test needs root and network namespaces",
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
            gw: gw.clone(),
            node: node.clone(),
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
        ip(&["netns", "add", &node]);
        let veth = [format!("ocg{id}"), format!("ocn{id}")];
        let bridge = format!("ocb{id}");
        ip(&[
            "link", "add", &veth[0], "type", "veth", "peer", "name", &veth[1],
        ]);
        ip(&["link", "set", &veth[0], "netns", &gw]);
        ip(&["link", "set", &veth[1], "netns", &node]);
        ip(&["-n", &gw, "link", "add", &bridge, "type", "bridge"]);
        ip(&["-n", &gw, "link", "set", &veth[0], "master", &bridge]);
        ip(&["-n", &gw, "link", "set", &veth[0], "up"]);
        for (i, (ns, v)) in [(&gw, &bridge), (&node, &veth[1])].into_iter().enumerate() {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("10.79.0.{}/24", i + 1),
                "dev",
                v,
            ]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", v, "up", "multicast", "on"]);
            ip(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", v]);
        }
        Some(net)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in [&self.gw, &self.node] {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// The node, run in its namespace, its stderr collected.
struct Node {
    ns: String,
    cfg: std::path::PathBuf,
    child: Child,
    log: Arc<Mutex<String>>,
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
        Node {
            ns: ns.to_string(),
            cfg: cfg.to_path_buf(),
            child,
            log,
        }
    }

    /// `connections.openclaw` of `smollama status --json`, run in the node's namespace.
    fn openclaw(&self) -> Option<Value> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, BIN, "--config"])
            .arg(&self.cfg)
            .args(["status", "--json"])
            .env_remove("RUST_LOG")
            .output()
            .ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(v["connections"]["openclaw"].clone()).filter(|o| !o.is_null())
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_node_without_a_url_finds_the_gateway_by_its_beacon_and_serves_it() {
    let Some(net) = Net::new() else {
        return;
    };
    let dir = TempDir::new("oc-discover");
    // As on a LAN: HTTP on every interface, so the node's own mDNS discovery runs too
    // (a second mdns-sd daemon in the process while the client looks).
    let pipe = dir.path().join("pipeline.toml");
    std::fs::write(&pipe, UPTIME_PIPELINE).unwrap();
    let cfg = dir.path().join("smollama.toml");
    std::fs::write(
        &cfg,
        format!(
            "[node]\nname = \"lan-node\"\ndata_dir = \"{}\"\n\n[http]\nbind = \"0.0.0.0:{}\"\ntoken = \"{TOKEN}\"\n\n\
             [pipeline]\nfiles = [\"{}\"]\n\n[agent]\nenabled = false\n\n\
             [openclaw]\nenabled = true\ntoken = \"{GATEWAY_TOKEN}\"\nreconnect_max = \"2s\"\n",
            dir.path().join("data").display(),
            free_port(),
            pipe.display()
        ),
    )
    .unwrap();
    let node = Node::start(&net.node, &cfg);
    // No gateway yet: it says it is looking, and has no url.
    let looking = eventually(20, "the node looks for a gateway", || {
        node.openclaw()
            .filter(|o| o["state"] == "looking for a gateway on the LAN")
    });
    assert!(looking["url"].is_null(), "{looking}");
    assert!(
        node.log()
            .contains("discovery: announcing lan-node._smollama._tcp.local."),
        "the node's own discovery runs beside: {}",
        node.log()
    );
    assert_eq!(looking["connected"], false);
    assert!(
        node.log()
            .contains("looking for a gateway on the LAN (mDNS _openclaw-gw._tcp.local.)"),
        "{}",
        node.log()
    );

    let state = TempDir::new("oc-discover-gw");
    let gw = Gateway::start_lan(state.path(), &["smollama.sources.list"], &net.gw);
    let want_url = format!("ws://10.79.0.1:{}", gw.port);
    // Found by the gateway's own beacon, at the address of its records (not loopback);
    // from the LAN it is a new device the gateway's operator must pair, and says so.
    let unpaired = eventually(60, "the node asks to be paired", || {
        node.openclaw()
            .filter(|o| o["state"] == "pending device pairing")
    });
    assert_eq!(unpaired["url"], want_url.as_str(), "{unpaired}");
    assert_eq!(
        unpaired["approve_with"],
        "openclaw devices list; openclaw devices approve <requestId>"
    );
    assert!(
        unpaired["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("NOT_PAIRED")),
        "{unpaired}"
    );
    let device = unpaired["device_id"].as_str().unwrap().to_string();
    let mut op = Operator::connect_in(&net.gw, &gw.url(), GATEWAY_TOKEN);
    op.approve_device(&device);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let found = loop {
        if let Some(o) = node.openclaw().filter(|o| o["connected"] == true) {
            break o;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node did not connect to the gateway it should have found: {:?}\n{}",
            node.openclaw(),
            node.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert_eq!(found["url"], want_url.as_str(), "{found}");
    assert!(
        found["gateway"].as_str().is_some_and(|g| !g.is_empty()),
        "{found}"
    );
    assert_eq!(found["state"], "pending approval", "{found}");
    assert_eq!(
        found["control_ui"],
        format!("http://10.79.0.1:{}/", gw.port).as_str()
    );
    let log = node.log();
    let line = log
        .lines()
        .find(|l| l.contains("openclaw: found gateway"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("._openclaw-gw._tcp.local.") && line.contains(&want_url),
        "{line}"
    );

    // The gateway lists it pending approval; once approved, the operator's invoke
    // reaches the node and comes back with its sources.
    let listed = op.node(&device).expect("the node is in node.list");
    assert_eq!(listed["approvalState"], "pending-approval", "{listed}");
    assert_eq!(listed["connected"], true);
    op.approve(&device);
    let sources = eventually(30, "the invoke after approval", || {
        op.invoke(&device, "smollama.sources.list", json!({})).ok()
    });
    assert!(sources.to_string().contains("system:uptime"), "{sources}");
    let approved = eventually(10, "status says approved", || {
        node.openclaw().filter(|o| o["approved"] == true)
    });
    assert_eq!(approved["state"], "connected");
    drop(gw);
}
