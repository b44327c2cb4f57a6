//! I2C devices end to end: the real binary with `[hardware] backend = "mock"`, so the
//! buses are mock buses whose devices are models (a BME280/BMP280 register file that
//! inverts the compensation for the scene; a PCF8574 + HD44780 that decodes the bytes
//! into the text on the glass), and a scene file the tests rewrite to warm the room or
//! unplug a sensor. The Ollama stand-in (`common/fake_ollama.rs`) plays the model that
//! calls `lcd_write`.

mod common;
#[path = "common/fake_ollama.rs"]
mod fake_ollama;

use std::path::Path;

use common::*;
use fake_ollama::{FakeOllama, Step};
use serde_json::{Value, json};

const MODEL: &str = "gemma4:e2b";

fn hardware(scene: &Path) -> String {
    format!(
        "[hardware]\nbackend = \"mock\"\nmock_scene = \"{}\"\n",
        scene.display()
    )
}

/// Write the scene by rename, so the agent never reads half a file.
fn scene(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn status(agent: &Agent) -> Option<Value> {
    get(&agent.url("/api/status")).ok().map(|(_, s)| s)
}

fn node(agent: &Agent, name: &str) -> Option<Value> {
    status(agent)?["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["name"] == name)
        .cloned()
}

/// The latest stored reading of every source, by id.
fn stored(agent: &Agent, id: &str) -> Option<Value> {
    let (_, all) = get(&agent.url("/api/readings")).ok()?;
    all["readings"]
        .as_array()?
        .iter()
        .find(|r| r["full_id"] == id)
        .cloned()
}

/// Wait until the stored reading of `id` is `want` (within `tol`) and return it.
fn reads(agent: &Agent, id: &str, want: f64, tol: f64) -> Value {
    eventually(15, &format!("{id} = {want}"), || {
        let r = stored(agent, id)?;
        ((r["value"].as_f64()? - want).abs() <= tol).then_some(r)
    })
}

/// The mock model at `device` (`i2c-1:0x27`) as status shows it.
fn model(agent: &Agent, device: &str) -> Option<Value> {
    status(agent)?["hardware"]["buses"]
        .as_array()?
        .iter()
        .flat_map(|b| b["models"].as_array().cloned().unwrap_or_default())
        .find(|m| m["device"] == device)
}

fn glass(agent: &Agent) -> Option<Value> {
    Some(model(agent, "i2c-1:0x27")?["state"]["lines"].clone())
}

const SENSORS: &str = r#"
[[source]]
name = "room"
kind = "bme280"
every = "300ms"

# A BMP280 at the other address, with its own ids.
[[source]]
name = "attic"
kind = "bme280"
chip = "bmp280"
address = 0x77
id = "attic"
every = "300ms"

# A BME280 on SPI (CE0).
[[source]]
name = "shed"
kind = "bme280"
bus = "spi"
spi_bus = 0
spi_cs = 0
id = "shed"
every = "300ms"

[[sink]]
name = "store"
kind = "store"
from = ["room", "attic", "shed"]
"#;

#[test]
fn bme280_readings_follow_the_scene_and_an_unplugged_sensor_degrades_and_recovers() {
    let dir = TempDir::new("hw-bme280");
    let scene_file = dir.path().join("scene.toml");
    scene(
        &scene_file,
        "temperature = 22.5\nhumidity = 40.0\npressure = 1001.5\n[\"i2c-1:0x77\"]\ntemperature = 30.0\n[\"spi-0.0\"]\nhumidity = 80.0\n",
    );
    let port = free_port();
    let cfg = write_config_extra(dir.path(), port, SENSORS, &hardware(&scene_file));
    let agent = Agent::start(&cfg, port, &[]);

    // The ids and units of the original's conventions, the scene's values.
    let t = reads(&agent, "bme280:temperature", 22.5, 0.011);
    assert_eq!(t["unit"], "celsius");
    let h = reads(&agent, "bme280:humidity", 40.0, 0.01);
    assert_eq!(h["unit"], "%");
    let p = reads(&agent, "bme280:pressure", 1001.5, 0.01);
    assert_eq!(p["unit"], "hPa");
    reads(&agent, "bme280:attic_temperature", 30.0, 0.011);
    reads(&agent, "bme280:attic_pressure", 1001.5, 0.01);
    assert!(
        stored(&agent, "bme280:attic_humidity").is_none(),
        "a BMP280 has no humidity"
    );
    let (code, _) = get(&agent.url("/api/readings/bme280:attic_humidity")).unwrap();
    assert_eq!(code, 404, "not even an id");
    reads(&agent, "bme280:shed_humidity", 80.0, 0.01);
    reads(&agent, "bme280:shed_temperature", 22.5, 0.011);
    assert_eq!(model(&agent, "spi-0.0").unwrap()["model"], "bme280");
    let m = model(&agent, "i2c-1:0x76").unwrap();
    assert_eq!(m["model"], "bme280");
    assert_eq!(model(&agent, "i2c-1:0x77").unwrap()["model"], "bmp280");

    // The room warms: the reading follows.
    scene(
        &scene_file,
        "temperature = 25.25\nhumidity = 55.5\npressure = 1003.0\n",
    );
    reads(&agent, "bme280:temperature", 25.25, 0.011);
    reads(&agent, "bme280:humidity", 55.5, 0.01);

    // Unplugged: degraded with the bus's reason; the other sensor carries on.
    scene(
        &scene_file,
        "temperature = 25.25\nabsent = [\"i2c-1:0x76\"]\n[\"i2c-1:0x77\"]\ntemperature = 12.0\n",
    );
    let n = eventually(10, "room degraded", || {
        let n = node(&agent, "room")?;
        (n["state"] == "degraded").then_some(n)
    });
    assert_eq!(
        n["reason"],
        "unavailable: i2c-1: no device answers at 0x76 (NACK)"
    );
    assert_eq!(model(&agent, "i2c-1:0x76").unwrap()["absent"], true);
    reads(&agent, "bme280:attic_temperature", 12.0, 0.011);
    assert!(agent.log().contains("no device answers at 0x76"));

    // Plugged back, but another chip answers at the address: degraded with that reason.
    scene(
        &scene_file,
        "temperature = 19.0\n[\"i2c-1:0x76\"]\nchip_id = 0x55\n",
    );
    eventually(15, "the wrong chip named", || {
        let n = node(&agent, "room")?;
        (n["reason"]
            == "unavailable: i2c-1:0x76: chip id 0x55 is not a BME280 (0x60) or BMP280 (0x58)")
            .then_some(())
    });

    // The right chip again: running, and readings resume with the room as it is now.
    scene(&scene_file, "temperature = 18.5\nhumidity = 61.0\n");
    reads(&agent, "bme280:temperature", 18.5, 0.011);
    eventually(10, "room running", || {
        let n = node(&agent, "room")?;
        (n["state"] == "running" && n["reason"].is_null()).then_some(())
    });
    assert!(agent.log().contains("the sensor answers again"));
    let (status, _, log) = agent.terminate();
    assert!(status.success(), "{log}");
}

/// An lcd1602 with a template of the bme280's values, and the agent writing over it.
fn lcd_pipeline() -> &'static str {
    r#"
[[source]]
name = "room"
kind = "bme280"
every = "300ms"

[[sink]]
name = "store"
kind = "store"
from = ["room"]

[[sink]]
name = "lcd"
kind = "lcd1602"
from = ["room"]
template = "T {bme280:temperature|.1}°C\nP {bme280:pressure|.0} hPa"
hold = "5s"
"#
}

#[test]
fn the_lcd_shows_live_values_and_what_the_agent_writes() {
    let dir = TempDir::new("hw-lcd");
    let scene_file = dir.path().join("scene.toml");
    scene(&scene_file, "temperature = 21.5\npressure = 1012.4\n");
    let ollama = FakeOllama::start(&[MODEL]);
    let port = free_port();
    let extra = format!(
        "{}\n[ollama]\nhost = \"127.0.0.1\"\nport = {}\nmodel = \"{MODEL}\"\nretries = 0\n",
        hardware(&scene_file),
        ollama.port()
    );
    let cfg = write_config_extra(dir.path(), port, lcd_pipeline(), &extra);
    let agent = Agent::start(&cfg, port, &[]);

    // The template shows the live value, decoded from the bytes the backpack received.
    eventually(15, "the template on the glass", || {
        (glass(&agent)? == json!(["T 21.5°C", "P 1012 hPa"])).then_some(())
    });
    let m = model(&agent, "i2c-1:0x27").unwrap();
    assert_eq!(m["model"], "pcf8574+hd44780");
    assert_eq!(m["state"]["backlight"], true);
    // It follows the room.
    scene(&scene_file, "temperature = 23.25\npressure = 1012.4\n");
    eventually(15, "the new value on the glass", || {
        (glass(&agent)?[0] == "T 23.2°C" || glass(&agent)?[0] == "T 23.3°C").then_some(())
    });
    // The device as status lists it.
    let devices = status(&agent).unwrap()["hardware"]["devices"].clone();
    assert_eq!(devices[0]["kind"], "lcd1602");
    assert_eq!(devices[0]["name"], "lcd");

    // The model calls lcd_write; the text reaches the glass, the second line cut to 16.
    ollama.push(Step::ToolCalls(vec![(
        "lcd_write".into(),
        json!({"line1": "Hello!", "line2": "Warm in here today"}),
    )]));
    ollama.push(Step::Text("Done.".into()));
    let (code, a) = post_auth(
        &agent.url("/api/ask"),
        r#"{"id": "l1", "question": "Say hello on the display"}"#,
        Some(TOKEN),
        20,
    );
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["tools_used"], json!(["lcd_write"]));
    let chats = ollama.bodies("/api/chat");
    let offered: Vec<&str> = chats[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        offered.contains(&"lcd_write") && offered.contains(&"lcd_clear"),
        "{offered:?}"
    );
    let tool_result = chats[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(tool_result.contains("Warm in here tod"), "{tool_result}");
    assert_eq!(
        glass(&agent).unwrap(),
        json!(["Hello!", "Warm in here tod"])
    );
    // The value changes while held: the tool's text stays...
    scene(&scene_file, "temperature = 24.0\npressure = 1012.4\n");
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert_eq!(
        glass(&agent).unwrap(),
        json!(["Hello!", "Warm in here tod"])
    );
    // ...until the hold ends and the template shows the value as it is now.
    eventually(10, "the template back", || {
        (glass(&agent)? == json!(["T 24.0°C", "P 1012 hPa"])).then_some(())
    });

    // The backpack unplugged: the tool says why, status shows the device's error.
    scene(
        &scene_file,
        "temperature = 24.0\npressure = 1012.4\nabsent = [\"i2c-1:0x27\"]\n",
    );
    ollama.push(Step::ToolCalls(vec![(
        "lcd_write".into(),
        json!({"line1": "anyone?"}),
    )]));
    ollama.push(Step::Text("The display does not answer.".into()));
    let (code, _) = post_auth(
        &agent.url("/api/ask"),
        r#"{"id": "l2", "question": "Write on the display"}"#,
        Some(TOKEN),
        20,
    );
    assert_eq!(code, 200);
    let chats = ollama.bodies("/api/chat");
    let result = chats.last().unwrap()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "tool")
        .unwrap()["content"]
        .to_string();
    assert!(
        result.contains("lcd1602 'lcd': i2c-1: no device answers at 0x27 (NACK)"),
        "{result}"
    );
    let devices = status(&agent).unwrap()["hardware"]["devices"].clone();
    assert_eq!(
        devices[0]["state"]["error"],
        "i2c-1: no device answers at 0x27 (NACK)"
    );
    // Plugged back: the next value is shown (the display initialised again).
    scene(&scene_file, "temperature = 26.0\npressure = 1012.4\n");
    eventually(10, "the display back", || {
        (glass(&agent)? == json!(["T 26.0°C", "P 1012 hPa"])).then_some(())
    });
    let devices = status(&agent).unwrap()["hardware"]["devices"].clone();
    assert!(devices[0]["state"].get("error").is_none(), "{devices}");
    let (status, _, log) = agent.terminate();
    assert!(status.success(), "{log}");
}
