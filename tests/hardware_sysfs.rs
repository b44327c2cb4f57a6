//! The kernel-driven sensors through the real binary, each pointed (`root`) at a fake
//! sysfs tree in the test's temp dir, laid out as the kernel does; the tree stands in for
//! the kernel's drivers (dht11 IIO, w1_therm, any IIO driver), the contract file for the
//! inference process that writes it. Readings arrive in `/api/readings` (the store) with
//! the right ids and units; removing a device's directory (an overlay gone, a sensor
//! unplugged) degrades the node with the reason, putting it back recovers it; a stale
//! contract is ignored.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn node(agent: &Agent, name: &str) -> Option<Value> {
    let (_, s) = get(&agent.url("/api/status")).ok()?;
    s["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["name"] == name)
        .cloned()
}

/// The latest stored reading of `id`, from `/api/readings` (what the store holds).
fn stored(agent: &Agent, id: &str) -> Option<Value> {
    let (_, all) = get(&agent.url("/api/readings")).ok()?;
    all["readings"]
        .as_array()?
        .iter()
        .find(|r| r["full_id"] == id)
        .cloned()
}

/// Wait until the stored latest reading of `id` is `want` (within 1e-9).
fn stored_value(agent: &Agent, id: &str, want: f64) -> Value {
    eventually(15, &format!("{id} = {want} in /api/readings"), || {
        let r = stored(agent, id)?;
        ((r["value"].as_f64()? - want).abs() < 1e-9).then_some(r)
    })
}

fn degraded(agent: &Agent, name: &str, why: &str) -> Value {
    eventually(15, &format!("{name} degraded with '{why}'"), || {
        let n = node(agent, name)?;
        (n["state"] == "degraded" && n["reason"].as_str()?.contains(why)).then_some(n)
    })
}

fn running(agent: &Agent, name: &str) {
    eventually(15, &format!("{name} running"), || {
        let n = node(agent, name)?;
        (n["state"] == "running" && n["reason"].is_null()).then_some(())
    });
}

/// Replace a file at once (rename), as sysfs never shows half a value.
fn put(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn store_sink(from: &str) -> String {
    format!("\n[[sink]]\nname = \"store\"\nkind = \"store\"\nfrom = [\"{from}\"]\n")
}

/// `iio:deviceN` of the fake tree with its `name` and attributes.
fn iio_device(root: &Path, n: u32, name: &str, attrs: &[(&str, &str)]) -> PathBuf {
    let d = root.join(format!("bus/iio/devices/iio:device{n}"));
    put(&d.join("name"), &format!("{name}\n"));
    for (k, v) in attrs {
        put(&d.join(k), &format!("{v}\n"));
    }
    d
}

#[test]
fn dht22_through_a_fake_iio_tree_reads_degrades_when_removed_and_recovers() {
    let dir = TempDir::new("dht22");
    let root = dir.path().join("sys");
    // The dht11 driver's device as a Pi's overlay names it, beside another IIO device.
    iio_device(&root, 0, "bmp280", &[("in_pressure_input", "101.3")]);
    let dev = iio_device(
        &root,
        1,
        "dht11@0",
        &[
            ("in_temp_input", "21460"),
            ("in_humidityrelative_input", "48710"),
        ],
    );
    let pipeline = format!(
        r#"[[source]]
name = "climate"
kind = "dht22"
every = "100ms"
min_interval = "1s"
root = "{}"
{}"#,
        root.display(),
        store_sink("climate")
    );
    let port = free_port();
    let cfg = write_config(dir.path(), port, &pipeline);
    let agent = Agent::start(&cfg, port, &[]);

    let t = stored_value(&agent, "dht22:temperature", 21.5);
    assert_eq!(t["unit"], "celsius", "{t}");
    let h = stored_value(&agent, "dht22:humidity", 48.7);
    assert_eq!(h["unit"], "%", "{h}");
    running(&agent, "climate");
    // every = 100ms, but the sensor is read at most once per min_interval (1s).
    let reads = |a: &Agent| {
        node(a, "climate").unwrap()["counters"]["readings"]
            .as_u64()
            .unwrap()
    };
    let before = reads(&agent);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let during = reads(&agent) - before;
    assert!((2..=5).contains(&during), "{during} reads in 3 s");

    // The overlay is gone (driver unloaded): degraded with what to add.
    std::fs::remove_dir_all(&dev).unwrap();
    let n = degraded(&agent, "climate", "unavailable: ");
    let why = n["reason"].as_str().unwrap();
    assert!(why.contains("dtoverlay=dht11,gpiopin=4"), "{why}");
    // Back, under another number, with new values.
    iio_device(
        &root,
        2,
        "dht11@0",
        &[
            ("in_temp_input", "19000"),
            ("in_humidityrelative_input", "55000"),
        ],
    );
    stored_value(&agent, "dht22:temperature", 19.0);
    running(&agent, "climate");
    let n = node(&agent, "climate").unwrap();
    assert!(
        n["counters"]["device_missing"].as_u64().unwrap() >= 1,
        "{n}"
    );

    // The history is in the store.
    let (_, hist) = get(&agent.url("/api/readings/dht22:humidity/history?minutes=5")).unwrap();
    let values: Vec<f64> = hist["readings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["value"].as_f64())
        .collect();
    assert!(values.contains(&48.7) && values.contains(&55.0), "{hist}");

    let (exit, _, log) = agent.terminate();
    assert!(exit.success(), "{log}");
    // Degraded once in the log, however many looks found no device.
    assert_eq!(
        log.matches("dht22 source 'climate': unavailable").count(),
        1,
        "{log}"
    );
}

const W1_GOOD: &str =
    "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n";
const W1_OTHER: &str =
    "91 01 4b 46 7f ff 0f 10 25 : crc=25 YES\n91 01 4b 46 7f ff 0f 10 25 t=25062\n";
/// A read whose CRC the kernel rejected: NO, the last good bytes, the bad temperature.
const W1_NO: &str = "72 01 4b 46 7f ff 0e 10 58 : crc=57 NO\n72 01 4b 46 7f ff 0e 10 57 t=40000\n";

#[test]
fn ds18b20_sensors_each_have_an_id_keep_their_value_on_crc_errors_and_come_back() {
    let dir = TempDir::new("ds18b20");
    let root = dir.path().join("sys");
    let w1 = root.join("bus/w1/devices");
    put(&w1.join("28-0316a2795aff/w1_slave"), W1_GOOD);
    put(&w1.join("28-0416b3a1c2ff/w1_slave"), W1_OTHER);
    // The bus master lives there too; it is no sensor.
    std::fs::create_dir_all(w1.join("w1_bus_master1")).unwrap();
    let pipeline = format!(
        r#"[[source]]
name = "probes"
kind = "ds18b20"
every = "200ms"
degrade_after = 1000
root = "{}"
{}"#,
        root.display(),
        store_sink("probes")
    );
    let port = free_port();
    let cfg = write_config(dir.path(), port, &pipeline);
    let agent = Agent::start(&cfg, port, &[]);

    let a = stored_value(&agent, "ds18b20:28-0316a2795aff", 23.125);
    assert_eq!(a["unit"], "celsius", "{a}");
    stored_value(&agent, "ds18b20:28-0416b3a1c2ff", 25.062);
    running(&agent, "probes");

    // CRC failures: counted, the last good value stays, the other sensor goes on.
    put(&w1.join("28-0316a2795aff/w1_slave"), W1_NO);
    eventually(10, "crc_errors counted", || {
        let n = node(&agent, "probes")?;
        (n["counters"]["crc_errors"].as_u64()? >= 3).then_some(())
    });
    assert_eq!(
        stored(&agent, "ds18b20:28-0316a2795aff").unwrap()["value"],
        23.125
    );
    put(
        &w1.join("28-0416b3a1c2ff/w1_slave"),
        &W1_OTHER.replace("t=25062", "t=25125"),
    );
    stored_value(&agent, "ds18b20:28-0416b3a1c2ff", 25.125);
    assert_eq!(node(&agent, "probes").unwrap()["state"], "running");

    // Unplugged (the kernel removes its directory): degraded at once, with the reason.
    std::fs::remove_dir_all(w1.join("28-0316a2795aff")).unwrap();
    let n = degraded(&agent, "probes", "28-0316a2795aff is not there");
    assert!(
        n["reason"].as_str().unwrap().starts_with("unavailable: "),
        "{n}"
    );
    put(
        &w1.join("28-0316a2795aff/w1_slave"),
        &W1_GOOD.replace("t=23125", "t=22500"),
    );
    stored_value(&agent, "ds18b20:28-0316a2795aff", 22.5);
    running(&agent, "probes");

    let (exit, _, log) = agent.terminate();
    assert!(exit.success(), "{log}");
    assert_eq!(
        log.matches("28-0316a2795aff is not there").count(),
        1,
        "{log}"
    );
}

#[test]
fn iio_channels_are_scaled_per_the_abi_and_a_vanished_device_comes_back() {
    let dir = TempDir::new("iio");
    let root = dir.path().join("sys");
    let attrs = [
        ("in_illuminance_input", "312"),
        ("in_voltage0_raw", "2048"),
        ("in_voltage_offset", "-48"),
        ("in_voltage_scale", "0.5"),
    ];
    let dev = iio_device(&root, 0, "ads1015", &attrs);
    let pipeline = format!(
        r#"[[source]]
name = "adc"
kind = "iio"
every = "200ms"
device = "ads1015"
channels = ["in_illuminance", "in_voltage0"]
units = ["lux", "mV"]
root = "{}"
{}"#,
        root.display(),
        store_sink("adc")
    );
    let port = free_port();
    let cfg = write_config(dir.path(), port, &pipeline);
    let agent = Agent::start(&cfg, port, &[]);

    let lux = stored_value(&agent, "iio:adc:illuminance", 312.0);
    assert_eq!(lux["unit"], "lux", "{lux}");
    let mv = stored_value(&agent, "iio:adc:voltage0", 1000.0);
    assert_eq!(mv["unit"], "mV", "{mv}");
    running(&agent, "adc");

    std::fs::remove_dir_all(&dev).unwrap();
    degraded(&agent, "adc", "unavailable: ");
    degraded(&agent, "adc", "no IIO device named ads1015");
    let mut attrs = attrs;
    attrs[1] = ("in_voltage0_raw", "1048");
    iio_device(&root, 3, "ads1015", &attrs);
    stored_value(&agent, "iio:adc:voltage0", 500.0);
    running(&agent, "adc");

    let (exit, _, log) = agent.terminate();
    assert!(exit.success(), "{log}");
    assert_eq!(
        log.matches("no IIO device named ads1015").count(),
        1,
        "{log}"
    );
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn contract(ts: f64, person: f64) -> String {
    format!(
        r#"{{"ts": {ts}, "model": "ssd-mobilenet-v2", "fps": 14.8, "readings": [
  {{"name": "person", "value": {person}, "unit": "count", "metadata": {{"conf": 0.91}}}},
  {{"name": "door_open", "value": true}}
]}}"#
    )
}

#[test]
fn contract_file_readings_arrive_and_a_stale_contract_is_ignored() {
    let dir = TempDir::new("contract");
    let path = dir.path().join("jetson_inference.json");
    // Written an hour ago by a writer that has stopped: ignored.
    put(&path, &contract(now_s() - 3600.0, 9.0));
    let pipeline = format!(
        r#"[[source]]
name = "camera"
kind = "contract_file"
every = "200ms"
path = "{}"
max_age = "3s"
{}"#,
        path.display(),
        store_sink("camera")
    );
    let port = free_port();
    let cfg = write_config(dir.path(), port, &pipeline);
    let agent = Agent::start(&cfg, port, &[]);

    degraded(&agent, "camera", "is older than max_age 3s");
    assert!(stored(&agent, "jetson_inference:person").is_none());

    // A fresh contract: both entries, at the contract's ts, with their units.
    let ts = now_s();
    put(&path, &contract(ts, 2.0));
    let p = stored_value(&agent, "jetson_inference:person", 2.0);
    assert_eq!(p["unit"], "count", "{p}");
    let door = eventually(10, "door_open stored", || {
        stored(&agent, "jetson_inference:door_open")
    });
    assert_eq!(door["value"], true, "{door}");
    running(&agent, "camera");

    // The writer stops: once max_age passed the node says so (nothing more arrives).
    degraded(&agent, "camera", "stale: ");
    let n = node(&agent, "camera").unwrap();
    assert_eq!(n["counters"]["readings"], 2, "{n}");
    assert!(n["counters"]["stale"].as_u64().unwrap() >= 1, "{n}");

    // It writes again; then the file goes away.
    put(&path, &contract(now_s(), 3.0));
    stored_value(&agent, "jetson_inference:person", 3.0);
    running(&agent, "camera");
    std::fs::remove_file(&path).unwrap();
    degraded(&agent, "camera", "unavailable: cannot read");

    let (exit, _, log) = agent.terminate();
    assert!(exit.success(), "{log}");
    // Each stale contract said once in the log, however many looks found it stale.
    assert_eq!(log.matches("is older than max_age").count(), 2, "{log}");
}
