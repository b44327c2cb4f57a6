//! The dashboard's OpenClaw panel as an operator uses it: the real binary connected to
//! a real OpenClaw gateway (`common/openclaw.rs`: openclaw from npm on 127.0.0.1), and a
//! real browser (Debian's `chromium`, headless) driven by `tests/openclaw_dashboard.py`
//! over the DevTools protocol, in three phases: pending approval (the commands to run,
//! the link to the gateway's control UI, which opens the gateway's own page), approved
//! (after the test-side operator approved and invoked), and the gateway gone (the last
//! error). Screenshots go to `target/screenshots/`.

mod common;
#[path = "common/openclaw.rs"]
mod openclaw_gw;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use openclaw_gw::{GATEWAY_TOKEN, Gateway, Operator};
use serde_json::{Value, json};

fn browser(agent: &Agent, expect: &str, device: &str, control_ui: &str) {
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../screenshots");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openclaw_dashboard.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["--url", &agent.url("")])
        .args(["--expect", expect, "--device", device])
        .args(["--control-ui", control_ui])
        .arg("--shots")
        .arg(&shots)
        .output()
        .expect("run python3 tests/openclaw_dashboard.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser checks ({expect}) failed:\n{stdout}\n{}\nagent log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        agent.log()
    );
}

fn openclaw(agent: &Agent) -> Value {
    get(&agent.url("/api/status")).unwrap().1["connections"]["openclaw"].clone()
}

#[test]
fn the_dashboard_shows_the_gateway_state_and_links_to_its_control_ui() {
    let chromium = Command::new("chromium").arg("--version").output();
    assert!(
        chromium.as_ref().is_ok_and(|o| o.status.success()),
        "this test needs Debian's chromium (apt-get install -y chromium; scripts/test installs it as root): {chromium:?}"
    );
    let state = TempDir::new("oc-dash-gw");
    let mut gw = Gateway::start(state.path(), &["smollama.sources.list"]);
    let dir = TempDir::new("oc-dash");
    let port = free_port();
    let cfg = write_config_extra(
        dir.path(),
        port,
        UPTIME_PIPELINE,
        &format!(
            "[agent]\nenabled = false\n\n[openclaw]\nenabled = true\nurl = \"{}\"\ntoken = \"{GATEWAY_TOKEN}\"\nreconnect_min = \"5s\"\n",
            gw.url()
        ),
    );
    let agent = Agent::start(&cfg, port, &[]);
    let pending = eventually(60, "the node connects, pending approval", || {
        Some(openclaw(&agent)).filter(|o| o["state"] == "pending approval")
    });
    let device = pending["device_id"].as_str().unwrap().to_string();
    let control_ui = format!("http://127.0.0.1:{}/", gw.port);
    assert_eq!(pending["control_ui"], control_ui.as_str());
    browser(&agent, "pending", &device, &control_ui);

    // Approved by the operator; the node knows once the first invoke arrives.
    let mut op = Operator::connect(&gw.url(), GATEWAY_TOKEN);
    op.approve(&device);
    eventually(30, "an invoke after approval", || {
        op.invoke(&device, "smollama.sources.list", json!({})).ok()
    });
    browser(&agent, "approved", &device, &control_ui);

    // The gateway gone: disconnected, with the error.
    drop(op);
    gw.stop();
    eventually(30, "the node notices the gateway is gone", || {
        Some(openclaw(&agent)).filter(|o| o["connected"] == false && !o["last_error"].is_null())
    });
    browser(&agent, "lost", &device, &control_ui);
}
