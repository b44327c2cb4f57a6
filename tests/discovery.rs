//! mDNS discovery between two real nodes in two network namespaces joined by a veth pair
//! the test creates (10.77.x addresses, a multicast route on the veth; no packet leaves
//! the machine, and the nodes never multicast on the host's own interfaces). Each node
//! must find the other with its veth address; one stopped with SIGTERM must vanish from
//! the other's list at once (its goodbye), one killed with -9 after the cache TTL.
//!
//! Needs root (`ip netns add`); where that is not permitted the test says so and skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::netns::{Namespaces, NsNode};
use common::{BIN, TOKEN, TempDir, eventually, free_port};
use serde_json::Value;

/// Two namespaces joined by a veth pair (10.77.0.1, .2), and a third with loopback only:
/// no interface can multicast there.
fn net() -> Option<Namespaces> {
    let id = std::process::id() % 100_000;
    let names = [
        format!("smd-a-{id}"),
        format!("smd-b-{id}"),
        format!("smd-c-{id}"),
    ];
    let net = Namespaces::new(&names)?;
    let veth = [format!("sma{id}"), format!("smb{id}")];
    net.link(0, 1, [&veth[0], &veth[1]], "10.77.0", None);
    Some(net)
}

/// `smollama nodes --json` in the node's namespace: its `/api/nodes`.
fn nodes(n: &NsNode) -> Option<Value> {
    n.cli_json(&["nodes"])
}

fn peer(n: &NsNode, name: &str) -> Option<Value> {
    nodes(n)?["nodes"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
}

/// The node started, once it answers `smollama nodes`.
fn start(ns: &str, cfg: &Path) -> NsNode {
    let node = NsNode::start(ns, cfg);
    eventually(20, "the node answers `smollama nodes`", || nodes(&node));
    node
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

#[test]
fn nodes_in_two_namespaces_find_each_other_and_notice_when_one_goes() {
    let Some(net) = net() else {
        return;
    };
    let (da, db) = (TempDir::new("mdns-a"), TempDir::new("mdns-b"));
    let (pa, pb) = (free_port(), free_port());
    // A TTL long enough that "at once" (the goodbye) and "after the TTL" differ clearly.
    const TTL_S: u64 = 12;
    let ttl = format!("{TTL_S}s");
    let ca = config(da.path(), "alpha", pa, &ttl, false);
    let cb = config(db.path(), "beta", pb, &ttl, true);
    let mut a = start(&net.names[0], &ca);
    let b = start(&net.names[1], &cb);

    // Each finds the other, with its veth address and HTTP port, and its TXT records.
    let seen_by_b = eventually(20, "beta discovers alpha", || peer(&b, "alpha"));
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
    let seen_by_a = eventually(20, "alpha discovers beta", || peer(&a, "beta"));
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
    let own = nodes(&a).unwrap()["nodes"][0].clone();
    assert_eq!(own["self"], true);
    assert_eq!(own["addresses"], serde_json::json!(["10.77.0.1"]), "{own}");

    // Still listed after several verification rounds (every TTL/3): refreshed, not aged out.
    std::thread::sleep(Duration::from_secs(TTL_S + 2));
    let still = peer(&b, "alpha").expect("alpha stays while it answers");
    assert_eq!(still["health"], "active", "{still}");

    // SIGTERM: the goodbye removes it from beta's list at once.
    a.signal(libc::SIGTERM);
    let t = Instant::now();
    eventually(5, "alpha gone from beta's list after its goodbye", || {
        peer(&b, "alpha").is_none().then_some(())
    });
    let took = t.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(a.log().contains("goodbye sent"), "{}", a.log());
    eprintln!("SIGTERM: gone from the peer's list in {took:?}");

    // Back again, then killed with -9: no goodbye, so it goes once it stops answering,
    // within the TTL.
    let mut a = start(&net.names[0], &ca);
    eventually(20, "beta discovers alpha again", || peer(&b, "alpha"));
    a.signal(libc::SIGKILL);
    let t = Instant::now();
    eventually(
        TTL_S + 5,
        "alpha gone from beta's list after the TTL",
        || peer(&b, "alpha").is_none().then_some(()),
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
    let c = start(&net.names[2], &cc);
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
        nodes(&c).unwrap()["nodes"][0]["addresses"],
        serde_json::json!([])
    );
}
