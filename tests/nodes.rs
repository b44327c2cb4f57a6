//! The node directory's MQTT side through a real mosquitto and the real binary: another
//! smollama node's status topic (online, then its last will when killed), and a
//! stand-in node (a plain MQTT client publishing the contract's status topic, standing in
//! for a Python smollama or a node we only hear from) going silent and then offline.

mod common;

use common::broker::{Broker, Subscriber};
use common::*;
use serde_json::Value;

fn node<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list["nodes"].as_array()?.iter().find(|n| n["name"] == name)
}

#[test]
fn mqtt_status_topics_make_nodes_active_stale_and_offline() {
    let dir = TempDir::new("nodes-mqtt");
    let broker = Broker::start(dir.path());
    let extra = format!(
        "{}\n[discovery]\nstale_after = \"2s\"\noffline_after = \"1h\"\nmax_nodes = 3\n",
        mqtt_section(broker.port, "")
    );
    let port = free_port();
    let cfg = write_config_extra(dir.path(), port, FAST_PIPELINE, &extra);
    let main = Agent::start(&cfg, port, &[]);

    // Another real node on the same broker.
    let gdir = TempDir::new("nodes-garage");
    let gport = free_port();
    let gcfg = write_config_extra(gdir.path(), gport, FAST_PIPELINE, &extra);
    let garage = Agent::start_env(&gcfg, gport, &[], &[("SMOLLAMA_NODE_NAME", "garage")]);

    let nodes = || {
        get(&main.url("/api/nodes"))
            .map(|(_, v)| v)
            .unwrap_or_default()
    };
    let g = eventually(
        15,
        "garage listed as active through its status topic",
        || {
            let v = nodes();
            node(&v, "garage")
                .filter(|n| n["health"] == "active" && n["status"] == "online")
                .cloned()
        },
    );
    // Its status topic (mqtt) and, with sync on, its replicated log's broadcasts (sync).
    assert_eq!(g["via"][0], "mqtt", "{g}");
    assert_eq!(g["self"], false);
    // The roadmap's name answers the same.
    let (code, cluster) = get(&main.url("/api/cluster/nodes")).unwrap();
    assert_eq!(code, 200);
    assert!(node(&cluster, "garage").is_some(), "{cluster}");
    assert_eq!(cluster["nodes"][0]["name"], "test-node");
    assert_eq!(cluster["nodes"][0]["self"], true);

    // Killed: the broker publishes its last will, and it shows offline at once.
    let mut garage = garage;
    garage.child.kill().unwrap();
    let _ = garage.child.wait();
    eventually(10, "garage offline by its last will", || {
        let v = nodes();
        node(&v, "garage")
            .filter(|n| n["health"] == "offline" && n["status"] == "offline")
            .cloned()
    });

    // A node heard only on its status topic: online, then silent past stale_after.
    let kitchen = Subscriber::new(broker.port, "stand-in-kitchen", &["smollama/kitchen/ask"]);
    kitchen.publish("smollama/kitchen/status", b"online", true);
    eventually(10, "kitchen active", || {
        node(&nodes(), "kitchen")
            .filter(|n| n["health"] == "active")
            .cloned()
    });
    let k = eventually(10, "kitchen stale after 2 s of silence", || {
        node(&nodes(), "kitchen")
            .filter(|n| n["health"] == "stale")
            .cloned()
    });
    // Still online as far as the broker knows: stale, not offline.
    assert_eq!(k["status"], "online", "{k}");
    kitchen.publish("smollama/kitchen/status", b"offline", true);
    eventually(10, "kitchen offline by its status word", || {
        node(&nodes(), "kitchen")
            .filter(|n| n["health"] == "offline")
            .cloned()
    });

    // A node that shares no broker, heard through an HTTP sync push.
    let (code, body) = post_auth(
        &main.url("/api/sync/push"),
        r#"{"node_id":"cabin","entries":[]}"#,
        Some(TOKEN),
        5,
    );
    assert_eq!(code, 200, "{body}");
    let c = node(&nodes(), "cabin").cloned().expect("cabin listed");
    assert_eq!(
        (c["via"][0].as_str(), c["health"].as_str()),
        (Some("sync"), Some("active"))
    );

    // The CLI asks the running agent.
    let (code, out, err) = run_cli(&["--config", cfg.to_str().unwrap(), "nodes"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().next().unwrap().starts_with("NODE"), "{out}");
    assert!(out.contains("test-node (this node)"), "{out}");
    assert!(out.contains("garage") && out.contains("kitchen"), "{out}");
    let (code, out, _) = run_cli(&["--config", cfg.to_str().unwrap(), "nodes", "--json"], &[]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["counts"]["offline"], 2, "{v}");
    let status = get(&main.url("/api/status")).unwrap().1;
    assert_eq!(status["node_directory"]["known"], 3, "{status}");

    // Full (max_nodes = 3): a fourth node is refused and counted; known ones still update.
    kitchen.publish("smollama/attic/status", b"online", false);
    kitchen.publish("smollama/kitchen/status", b"online", true);
    eventually(10, "kitchen back, attic refused", || {
        let v = nodes();
        let s = get(&main.url("/api/status")).unwrap().1;
        (node(&v, "kitchen").is_some_and(|k| k["health"] == "active")
            && node(&v, "attic").is_none()
            && s["node_directory"]["refused"].as_u64() >= Some(1))
        .then_some(())
    });
    // Bound to loopback (the default), mDNS stays off and says why.
    assert!(
        main.log()
            .contains("discovery: off: HTTP listens on 127.0.0.1"),
        "{}",
        main.log()
    );
    drop(main);
}

#[test]
fn smollama_nodes_says_so_when_no_agent_runs() {
    let dir = TempDir::new("nodes-none");
    let cfg = write_config(dir.path(), free_port(), FAST_PIPELINE);
    let (code, out, err) = run_cli(&["--config", cfg.to_str().unwrap(), "nodes"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("no agent answered") && err.contains("smollama run"),
        "{err}"
    );
}
