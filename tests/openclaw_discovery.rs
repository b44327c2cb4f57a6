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

use common::netns::{Namespaces, NsNode};
use common::{TOKEN, TempDir, UPTIME_PIPELINE, eventually, free_port};
use openclaw_gw::{GATEWAY_TOKEN, Gateway, Operator};
use serde_json::{Value, json};

/// The gateway's namespace (0: 10.79.0.1 on a bridge over its veth end) and the
/// node's (1: 10.79.0.2), removed on drop.
fn net() -> Option<Namespaces> {
    let id = std::process::id() % 100_000;
    let net = Namespaces::new(&[format!("ocd-g-{id}"), format!("ocd-n-{id}")])?;
    let (a, b, br) = (format!("ocg{id}"), format!("ocn{id}"), format!("ocb{id}"));
    net.link(0, 1, [&a, &b], "10.79.0", Some(&br));
    Some(net)
}

/// `connections.openclaw` of `smollama status --json`, run in the node's namespace.
fn openclaw(node: &NsNode) -> Option<Value> {
    let v = node.cli_json(&["status"])?;
    Some(v["connections"]["openclaw"].clone()).filter(|o| !o.is_null())
}

#[test]
fn a_node_without_a_url_finds_the_gateway_by_its_beacon_and_serves_it() {
    let Some(net) = net() else {
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
    let node = NsNode::start(&net.names[1], &cfg);
    // No gateway yet: it says it is looking, and has no url.
    let looking = eventually(20, "the node looks for a gateway", || {
        openclaw(&node).filter(|o| o["state"] == "looking for a gateway on the LAN")
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
    let gw = Gateway::start_lan(state.path(), &["smollama.sources.list"], &net.names[0]);
    let want_url = format!("ws://10.79.0.1:{}", gw.port);
    // Found by the gateway's own beacon, at the address of its records (not loopback);
    // from the LAN it is a new device the gateway's operator must pair, and says so.
    let unpaired = eventually(60, "the node asks to be paired", || {
        openclaw(&node).filter(|o| o["state"] == "pending device pairing")
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
    let mut op = Operator::connect_in(&net.names[0], &gw.url(), GATEWAY_TOKEN);
    op.approve_device(&device);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let found = loop {
        if let Some(o) = openclaw(&node).filter(|o| o["connected"] == true) {
            break o;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node did not connect to the gateway it should have found: {:?}\n{}",
            openclaw(&node),
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
        openclaw(&node).filter(|o| o["approved"] == true)
    });
    assert_eq!(approved["state"], "connected");
    drop(gw);
}
