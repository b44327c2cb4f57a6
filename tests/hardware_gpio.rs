//! The GPIO-driven devices through the real binary, on the mock GPIO (`[gpio] backend =
//! "mock"`), where device models stand in for the hardware: an HC-SR04 model answers
//! each trigger with the echo pulse the chip would give for the `distance` in the
//! `[hardware] mock_scene` file (no pulse while the scene lists it `absent`: unplugged),
//! LED-digit models decode which segments a person would see lit (the 4-digit one by
//! persistence of vision over the multiplexed lines), and an LED model says whether its
//! pin's level lights it. The scripted Ollama stand-in
//! (`common/fake_ollama.rs`) plays the model calling the tools; a real LLM cannot run here.

mod common;
#[path = "common/fake_ollama.rs"]
mod fake_ollama;

use std::path::Path;

use common::*;
use fake_ollama::{FakeOllama, Step};
use serde_json::{Value, json};

const MODEL: &str = "gemma4:e2b";

/// Pins clear of the common config's [gpio] pins (17, 22).
const MUX_PINS: &str = "digit_pins = [5, 6, 13, 19]\n\
     segment_pins = { a = 26, b = 21, c = 20, d = 16, e = 12, f = 25, g = 27, dp = 4 }";
const DIGIT_PINS: &str =
    "segment_pins = { a = 7, b = 8, c = 9, d = 10, e = 11, f = 14, g = 15, dp = 18 }";

/// Move the mock world: replace the scene file at once (rename).
fn scene(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn config(dir: &Path, port: u16, pipeline: &str, extra: &str) -> std::path::PathBuf {
    let scene = dir.join("scene.toml");
    write_config_extra(
        dir,
        port,
        pipeline,
        &format!(
            "[hardware]\nmock_scene = \"{}\"\n\n{extra}",
            scene.display()
        ),
    )
}

fn node(agent: &Agent, name: &str) -> Option<Value> {
    status(agent)["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["name"] == name)
        .cloned()
}

fn latest(agent: &Agent, id: &str) -> Option<Value> {
    match get(&agent.url(&format!("/api/readings/{id}"))) {
        Ok((200, v)) => Some(v),
        _ => None,
    }
}

/// Wait until the latest stored distance is within a centimetre of `cm`.
fn distance_near(agent: &Agent, cm: f64) -> Value {
    eventually(10, &format!("hcsr04:distance near {cm} cm"), || {
        let r = latest(agent, "hcsr04:distance")?;
        ((r["value"].as_f64()? - cm).abs() <= 1.0).then_some(r)
    })
}

/// The state of the pin model `model` named `name` in status.
fn pin_model(agent: &Agent, model: &str, name: &str) -> Option<Value> {
    status(agent)["hardware"]["pin_models"]
        .as_array()?
        .iter()
        .find(|m| m["model"] == model && (name.is_empty() || m["state"]["name"] == name))
        .map(|m| m["state"].clone())
}

fn device(agent: &Agent, kind: &str) -> Option<Value> {
    status(agent)["hardware"]["devices"]
        .as_array()?
        .iter()
        .find(|d| d["kind"] == kind)
        .map(|d| d["state"].clone())
}

#[test]
fn hcsr04_readings_follow_the_scene_and_an_unplugged_sensor_degrades_and_recovers() {
    let dir = TempDir::new("hcsr04");
    let scene_file = dir.path().join("scene.toml");
    scene(&scene_file, "distance = 0.42\n");
    let pipeline = r#"
[[source]]
name = "distance"
kind = "hcsr04"
every = "100ms"
trig_pin = 23
echo_pin = 24
max_distance = 4.0

[[sink]]
name = "store"
kind = "store"
from = ["distance"]
"#;
    let port = free_port();
    let agent = Agent::start(&config(dir.path(), port, pipeline, ""), port, &[]);

    // The id and unit, in the store (the latest reading and the list of all).
    let r = distance_near(&agent, 42.0);
    assert_eq!(
        (r["full_id"].as_str(), r["unit"].as_str()),
        (Some("hcsr04:distance"), Some("cm")),
        "{r}"
    );
    let (_, all) = get(&agent.url("/api/readings")).unwrap();
    assert!(
        all["readings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["full_id"] == "hcsr04:distance"),
        "{all}"
    );
    // The obstacle moves: the readings follow.
    scene(&scene_file, "distance = 1.5\n");
    distance_near(&agent, 150.0);
    let (code, h) = get(&agent.url("/api/readings/hcsr04:distance/history?minutes=5")).unwrap();
    assert_eq!(code, 200);
    assert!(h["count"].as_u64().unwrap() >= 2, "{h}");

    // Nothing within 4 m (the chip's 38 ms pulse): no reading, counted.
    scene(&scene_file, "distance = 6.0\n");
    let n = eventually(10, "out_of_range counted", || {
        let n = node(&agent, "distance")?;
        (n["counters"]["out_of_range"].as_u64()? >= 3).then_some(n)
    });
    assert_eq!(n["state"], "running", "{n}");
    assert!(
        (latest(&agent, "hcsr04:distance").unwrap()["value"]
            .as_f64()
            .unwrap()
            - 150.0)
            .abs()
            <= 1.0
    );

    // Unplugged: no echo at all, degraded with the reason.
    scene(&scene_file, "distance = 0.8\nabsent = [\"gpio-23\"]\n");
    let n = eventually(10, "degraded", || {
        let n = node(&agent, "distance")?;
        (n["state"] == "degraded").then_some(n)
    });
    let why = n["reason"].as_str().unwrap();
    assert!(why.starts_with("unavailable: no echo"), "{why}");
    assert!(why.contains("GPIO 23") && why.contains("GPIO 24"), "{why}");
    // Plugged back in: running again, reading the new distance.
    scene(&scene_file, "distance = 0.8\n");
    distance_near(&agent, 80.0);
    eventually(10, "running again", || {
        let n = node(&agent, "distance")?;
        (n["state"] == "running" && n["reason"].is_null()).then_some(())
    });
    let m = pin_model(&agent, "hcsr04", "").unwrap();
    assert_eq!(m["device"], "gpio-23", "{m}");
    let (exit, _, log) = agent.terminate();
    assert!(exit.success(), "{log}");
    assert_eq!(
        log.matches("no echo").count(),
        1,
        "logged once per outage:\n{log}"
    );
}

#[test]
fn the_agent_writes_the_display_and_switches_the_led() {
    let dir = TempDir::new("gpio-tools");
    let ollama = FakeOllama::start(&[MODEL]);
    let level = dir.path().join("level");
    std::fs::write(&level, "7\n").unwrap();
    let pipeline = format!(
        r#"
[[source]]
name = "system"
kind = "system"
every = "200ms"
metrics = ["uptime"]

[[source]]
name = "level"
kind = "file"
every = "100ms"
path = "{}"

[[sink]]
name = "store"
kind = "store"
from = ["system", "level"]

[[sink]]
name = "clock"
kind = "sh5461as"
from = ["level"]
template = "{{file:level}}"
hold = "3s"
{MUX_PINS}

[[sink]]
name = "lamp"
kind = "led"
from = ["system"]
pin = 23
active_high = false
"#,
        level.display()
    );
    let port = free_port();
    let extra = format!(
        "[ollama]\nhost = \"127.0.0.1\"\nport = {}\nmodel = \"{MODEL}\"\nretries = 0\n",
        ollama.port()
    );
    let agent = Agent::start(&config(dir.path(), port, &pipeline, &extra), port, &[]);
    assert_eq!(device(&agent, "led").unwrap()["on"], false, "off at setup");
    assert_eq!(pin_model(&agent, "led", "lamp").unwrap()["lit"], false);
    let shows = |text: &str| {
        eventually(10, &format!("{text} on the digits"), || {
            let s = pin_model(&agent, "sh5461as", "clock")?;
            (s["text"] == text).then_some(s)
        })
    };
    shows("7");

    ollama.push(Step::ToolCalls(vec![(
        "display_value".into(),
        json!({"text": "12.3"}),
    )]));
    ollama.push(Step::Text("Shown.".into()));
    let url = agent.url("/api/ask");
    let (code, a) = post_auth(
        &url,
        r#"{"question": "Show 12.3 on the display"}"#,
        Some(TOKEN),
        20,
    );
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["tools_used"], json!(["display_value"]));
    // The model was offered the attached devices' tools, not the absent digit's.
    let tools = ollama.bodies("/api/chat")[0]["tools"].to_string();
    assert!(
        tools.contains("display_value") && tools.contains("set_led"),
        "{tools}"
    );
    assert!(!tools.contains("display_digit"), "{tools}");
    // What the eye sees on the multiplexed digits, and what the device says it shows.
    let seen = shows("12.3");
    assert_eq!(
        seen["masks"][0], 0,
        "right-aligned: the first digit is dark: {seen}"
    );
    assert_eq!(device(&agent, "sh5461as").unwrap()["text"], "12.3");
    // The template's value (unchanged all along) shows again when the hold is over.
    shows("7");

    ollama.push(Step::ToolCalls(vec![(
        "set_led".into(),
        json!({"state": "on"}),
    )]));
    ollama.push(Step::Text("On.".into()));
    let (code, a) = post_auth(&url, r#"{"question": "Light the LED"}"#, Some(TOKEN), 20);
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["tools_used"], json!(["set_led"]));
    let led = device(&agent, "led").unwrap();
    assert_eq!(led["on"], true, "{led}");
    // The line is driven: the LED model on pin 23 sees it lit (active-low here).
    assert_eq!(pin_model(&agent, "led", "lamp").unwrap()["lit"], true);
    // The tool's result told the model the new state.
    let chats = ollama.bodies("/api/chat");
    let last = chats.last().unwrap()["messages"].to_string();
    assert!(last.contains("LED is now ON"), "{last}");

    let (exit, _, log) = agent.terminate();
    assert!(exit.success(), "{log}");
}

#[test]
fn display_sinks_show_a_live_pipeline_value() {
    let dir = TempDir::new("gpio-display-sink");
    let scene_file = dir.path().join("scene.toml");
    scene(&scene_file, "distance = 0.42\n");
    let level = dir.path().join("level");
    std::fs::write(&level, "7\n").unwrap();
    let pipeline = format!(
        r#"
[[source]]
name = "distance"
kind = "hcsr04"
every = "100ms"

[[source]]
name = "tank"
kind = "file"
every = "100ms"
path = "{}"

[[sink]]
name = "store"
kind = "store"
from = ["distance", "tank"]

[[sink]]
name = "range"
kind = "sh5461as"
from = ["distance"]
template = "{{hcsr04:distance|.0}}"
{MUX_PINS}

[[sink]]
name = "gauge"
kind = "s5161as"
from = ["tank"]
template = "{{file:tank}}"
{DIGIT_PINS}

[[sink]]
name = "far"
kind = "led"
from = ["distance"]
pin = 3
source = "hcsr04:distance"
above = 100
"#,
        level.display()
    );
    let port = free_port();
    let agent = Agent::start(&config(dir.path(), port, &pipeline, ""), port, &[]);
    let shows = |model: &str, name: &str, text: &str| {
        eventually(10, &format!("{name} showing {text}"), || {
            let s = pin_model(&agent, model, name)?;
            (s["text"] == text).then_some(())
        })
    };
    let lit = |want: bool| {
        eventually(10, &format!("the LED lit: {want}"), || {
            (pin_model(&agent, "led", "far")?["lit"] == want).then_some(())
        })
    };
    shows("sh5461as", "range", "42");
    shows("s5161as", "gauge", "7");
    lit(false);
    scene(&scene_file, "distance = 1.23\n");
    std::fs::write(&level, "3\n").unwrap();
    shows("sh5461as", "range", "123");
    shows("s5161as", "gauge", "3");
    lit(true);
    let (exit, _, log) = agent.terminate();
    assert!(exit.success(), "{log}");
}
