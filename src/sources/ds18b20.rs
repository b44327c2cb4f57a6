//! The `ds18b20` source: DS18B20 1-wire thermometers through the kernel's w1 drivers
//! (`dtoverlay=w1-gpio,gpiopin=4`; `w1_therm` makes each sensor
//! `<root>/bus/w1/devices/28-XXXXXXXXXXXX/w1_slave`). Reading `w1_slave` makes the kernel
//! convert and read the scratchpad (750 ms at 12 bits), so every read runs on the `hw`
//! thread. The file holds two lines:
//!
//! ```text
//! 72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
//! 72 01 4b 46 7f ff 0e 10 57 t=23125
//! ```
//!
//! the nine scratchpad bytes as read, the CRC and the kernel's verdict; then the last
//! bytes that passed and the temperature in millidegrees. A reading is
//! `ds18b20:<28-…>` in `celsius`, one id per sensor: the one `device` names, or every
//! `28-*` the kernel lists (looked for again every minute, at most `MAX_SENSORS`).
//!
//! A sample counts only when the kernel said YES *and* the CRC-8 (Dallas/Maxim,
//! polynomial 0x31 reflected: 0x8C) of the first eight bytes equals the ninth; otherwise
//! it is a `crc_errors`, and the sensor's last good value stays its latest. An empty read
//! (the kernel's answer to a failed conversion), an all-zero scratchpad (a data line held
//! low passes the CRC), a value outside -55..125 °C and the 85.000 °C power-on value
//! (a sensor that reset before converting) are transient too (`transient_errors`,
//! `reset_values`). After `degrade_after` failed reads in a row the node is degraded
//! with the sensor's last error; a sensor whose directory is gone (or none at all) makes
//! it degraded at once, with the overlay to add, and is looked for with a backoff up to
//! a minute. It is running again when every sensor it knows reads well.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::clock::now_us;
use crate::config::SourceSpec;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::edges::hw::Worker;
use crate::graph::counters::Counters;
use crate::graph::registry::{Registry, SourceInfo};
use crate::graph::{Item, Micros, Reading, Value, ValueKind};
use crate::plugins::params::{Need, Reader, as_text, int_in};
use crate::plugins::{Flow, Kind, Make, Param, ParamsBox, Produced, Role, Unavailable, params_of};
use crate::plugins::{Setup, Source, SourceCtx, Task};

use super::sysfs;
use crate::plugins::Backoff;

/// The counters shown in status.
const COUNTERS: &[&str] = &[
    "readings",
    "crc_errors",
    "reset_values",
    "transient_errors",
    "sensors_refused",
];
const C_READINGS: usize = 0;
const C_CRC: usize = 1;
const C_RESET: usize = 2;
const C_TRANSIENT: usize = 3;
const C_REFUSED: usize = 4;

/// Sensors one node follows when `device` is not given (a bus rarely has more).
const MAX_SENSORS: usize = 32;
/// How often the bus directory is listed again for new sensors (without `device`).
const RESCAN: Micros = 60_000_000;
/// The temperature a DS18B20 holds after power-on until its first conversion.
const POWER_ON_MILLI: i64 = 85_000;
/// What a DS18B20 can measure, millidegrees.
const RANGE_MILLI: (i64, i64) = (-55_000, 125_000);
/// The family code of DS18B20 ids.
const FAMILY: &str = "28-";
/// Longest w1_slave we read (the kernel writes about 80 bytes).
const MAX_FILE: usize = 256;

pub const KIND: Kind = Kind {
    role: Role::Source,
    name: "ds18b20",
    version: env!("CARGO_PKG_VERSION"),
    doc: "DS18B20 1-wire thermometers (celsius) through the kernel's w1_slave files (dtoverlay=w1-gpio), CRC checked",
    params: &[
        Param::new(Spec {
            default: "\"30s\"",
            doc: "how often each sensor is read (a read takes 750 ms on the hw thread)",
            ..Spec::new("every", Want::Duration)
        }),
        Param::new(Spec {
            doc: "one sensor by its id, e.g. \"28-0316a2795aff\" (default: every 28-* sensor the kernel lists, each its own id)",
            hint: "the name of its directory: ls /sys/bus/w1/devices/ shows e.g. 28-0316a2795aff",
            ..Spec::new("device", Want::Text)
        }),
        Param::new(Spec {
            default: "4",
            range: Some((0.0, 27.0)),
            doc: "the GPIO (BCM) of the 1-wire bus, as in dtoverlay=w1-gpio,gpiopin=N (the overlay line `smollama pipeline needs` prints for setup-pi.sh, and messages; the kernel owns the pin)",
            hint: "a BCM GPIO number 0-27, e.g. pin = 4",
            ..Spec::new("pin", Want::WholeNumber)
        }),
        Param::new(Spec {
            default: "3",
            range: Some((1.0, 1000.0)),
            doc: "the node is degraded after this many failed reads of a sensor in a row",
            hint: "a whole number 1-1000, e.g. degrade_after = 3",
            ..Spec::new("degrade_after", Want::WholeNumber)
        }),
        sysfs::ROOT_PARAM,
    ],
    make: Make::Source {
        ids: "ds18b20",
        parse,
        produces,
        setup,
    },
};

/// A ds18b20 source's parameters, checked.
#[derive(Clone, Debug)]
struct DsParams {
    device: Option<String>,
    pin: i64,
    degrade_after: u32,
    root: PathBuf,
}

/// Whether `s` looks like a 1-wire slave id: a two-digit family, a dash, twelve hex digits.
fn valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 15
        && b[2] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 2 || c.is_ascii_hexdigit())
}

fn parse(r: &mut Reader) -> ParamsBox {
    let mut p = DsParams {
        device: None,
        pin: 4,
        degrade_after: 3,
        root: PathBuf::from(sysfs::DEFAULT_ROOT),
    };
    let spec = |k: &str| r.kind.param(k).map(|d| d.spec);
    for raw in r.params() {
        match raw.key.as_str() {
            "device" => match as_text(&raw.value) {
                Ok(s) if valid_id(s) => p.device = Some(s.to_ascii_lowercase()),
                Ok(s) => r.bad(
                    raw,
                    (
                        format!("'{s}' is not a 1-wire id (family-serial, e.g. 28-0316a2795aff)"),
                        spec("device").map(|s| s.hint.into()),
                    ),
                ),
                Err(e) => r.bad(raw, e),
            },
            "pin" => match spec("pin").map(|s| int_in(&raw.value, &s)) {
                Some(Ok(n)) => p.pin = n,
                Some(Err(e)) => r.bad(raw, e),
                None => {}
            },
            "degrade_after" => match spec("degrade_after").map(|s| int_in(&raw.value, &s)) {
                Some(Ok(n)) => p.degrade_after = n as u32,
                Some(Err(e)) => r.bad(raw, e),
                None => {}
            },
            "root" => match sysfs::parse_root(&raw.value) {
                Ok(root) => p.root = root,
                Err(e) => r.bad(raw, e),
            },
            _ => {}
        }
    }
    // The kernel's driver reads the sensor: its overlay must be in config.txt.
    r.need(Need::OneWire { pin: p.pin as u8 });
    Arc::new(p)
}

fn produces(spec: &SourceSpec, _: &crate::config::Settings) -> Produced {
    match params_of::<DsParams>(&spec.params).and_then(|p| p.device.as_ref()) {
        Some(d) => Produced {
            ids: vec![(format!("ds18b20:{d}"), ValueKind::Number)],
            open: None,
        },
        // Every sensor on the bus: known only when the kernel lists them.
        None => Produced {
            ids: Vec::new(),
            open: Some(Flow::Number),
        },
    }
}

fn setup(spec: &SourceSpec, s: &mut Setup) -> Result<Box<dyn Source>, Unavailable> {
    let p = params_of::<DsParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?
        .clone();
    let (wake_tx, wake_rx) = async_channel::bounded(1);
    Ok(Box::new(DsSource {
        name: spec.name.clone(),
        core: Core::new(&p, spec.every, wake_tx.clone()),
        every: spec.every,
        worker: s.parts.hardware.worker(),
        wake_tx,
        wake_rx,
        readings: Vec::with_capacity(4),
    }))
}

/// Why a sample of one sensor gave no temperature.
#[derive(Clone, Debug, PartialEq)]
enum Fault {
    /// The kernel said NO, or our CRC-8 disagrees with the ninth byte.
    Crc(String),
    /// The 85 °C power-on value with a good CRC.
    Reset,
    /// Empty, garbage, all zero, out of range, a failed read.
    Transient(String),
    /// The sensor's directory is gone.
    Missing(String),
}

/// The Dallas/Maxim CRC-8 (polynomial x⁸+x⁵+x⁴+1, reflected: 0x8C; initial 0).
pub(crate) fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in bytes {
        let mut x = b;
        for _ in 0..8 {
            let mix = (crc ^ x) & 1;
            crc >>= 1;
            if mix != 0 {
                crc ^= 0x8C;
            }
            x >>= 1;
        }
    }
    crc
}

/// A w1_slave's temperature in millidegrees, checked as the module doc says.
fn parse_w1(text: &[u8]) -> Result<i64, Fault> {
    let bad = |why: &str| Err(Fault::Transient(why.into()));
    let Ok(text) = std::str::from_utf8(text) else {
        return bad("w1_slave holds binary data");
    };
    if text.trim().is_empty() {
        return bad("empty read (the conversion failed)");
    }
    let mut lines = text.lines();
    let (first, second) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let Some((hex, verdict)) = first.split_once(": crc=") else {
        return bad("w1_slave's first line has no crc");
    };
    let mut bytes = [0u8; 9];
    let mut n = 0;
    for h in hex.split_whitespace() {
        match u8::from_str_radix(h, 16) {
            Ok(b) if n < 9 => bytes[n] = b,
            _ => return bad("w1_slave's first line is not nine bytes"),
        }
        n += 1;
    }
    if n != 9 {
        return bad("w1_slave's first line is not nine bytes");
    }
    let mut v = verdict.split_whitespace();
    let (crc_text, yes) = (v.next().unwrap_or(""), v.next().unwrap_or(""));
    if yes != "YES" {
        return Err(Fault::Crc(format!(
            "the kernel's CRC check failed (crc={crc_text} {yes})"
        )));
    }
    let ours = crc8(&bytes[..8]);
    if ours != bytes[8] {
        return Err(Fault::Crc(format!(
            "CRC mismatch: the scratchpad's CRC byte is {:02x}, its bytes give {ours:02x}",
            bytes[8]
        )));
    }
    if bytes.iter().all(|&b| b == 0) {
        return bad("an all-zero scratchpad (the data line is held low)");
    }
    let Some(t) = second
        .rsplit_once("t=")
        .and_then(|(_, t)| t.trim().parse::<i64>().ok())
    else {
        return bad("w1_slave's second line has no t=");
    };
    if t == POWER_ON_MILLI {
        return Err(Fault::Reset);
    }
    if !(RANGE_MILLI.0..=RANGE_MILLI.1).contains(&t) {
        return Err(Fault::Transient(format!(
            "{t} m°C is out of a DS18B20's range"
        )));
    }
    Ok(t)
}

/// One sensor's file and its last outcome, on the `hw` thread's side.
struct SensorIo {
    id: String,
    path: PathBuf,
    outcome: Result<i64, Fault>,
}

/// The bus's side: which sensors there are and their last reads. Runs on the `hw` thread.
struct Bus {
    root: PathBuf,
    device: Option<String>,
    pin: i64,
    sensors: Vec<SensorIo>,
    /// Sensors seen beyond `MAX_SENSORS` at the last scan.
    refused: usize,
    next_scan: Micros,
    buf: [u8; MAX_FILE],
}

impl Bus {
    fn dir(&self) -> PathBuf {
        self.root.join(sysfs::W1_DEVICES)
    }

    fn hint(&self) -> String {
        format!(
            "add dtoverlay=w1-gpio,gpiopin={} to /boot/firmware/config.txt and reboot",
            self.pin
        )
    }

    /// Add the sensors the kernel lists now (known ones stay, present or not).
    fn scan(&mut self) {
        let mut found: Vec<String> = match &self.device {
            Some(d) => vec![d.clone()],
            None => std::fs::read_dir(self.dir())
                .map(|rd| {
                    rd.flatten()
                        .filter_map(|e| e.file_name().into_string().ok())
                        .filter(|n| n.starts_with(FAMILY) && valid_id(n))
                        .collect()
                })
                .unwrap_or_default(),
        };
        found.sort();
        self.refused = 0;
        for id in found {
            if self.sensors.iter().any(|s| s.id == id) {
                continue;
            }
            if self.sensors.len() >= MAX_SENSORS {
                self.refused += 1;
                continue;
            }
            let path = self.dir().join(&id).join("w1_slave");
            self.sensors.push(SensorIo {
                id,
                path,
                outcome: Err(Fault::Missing(String::new())),
            });
        }
    }

    /// Read every sensor once (listing the bus first when due).
    fn sample(&mut self, now: Micros) {
        if now >= self.next_scan || self.sensors.is_empty() {
            self.scan();
            self.next_scan = now + RESCAN;
        }
        for i in 0..self.sensors.len() {
            let outcome = match sysfs::read_attr(&self.sensors[i].path, &mut self.buf) {
                Ok(n) => parse_w1(&self.buf[..n]),
                Err(e) if sysfs::is_gone(&e) => {
                    let dir = self.sensors[i].path.parent().unwrap_or(Path::new(""));
                    Err(Fault::Missing(format!(
                        "{} is not there ({e}); check the wiring and the 4.7 kΩ pull-up, or {}",
                        dir.display(),
                        self.hint()
                    )))
                }
                Err(e) => Err(Fault::Transient(format!("reading w1_slave: {e}"))),
            };
            self.sensors[i].outcome = outcome;
        }
    }
}

/// One sensor as the source follows it.
struct Sensor {
    info: Arc<SourceInfo>,
    failed_in_row: u32,
    /// Why it is failing, once it counts (missing, or `degrade_after` reads in a row).
    problem: Option<String>,
}

/// The source's logic between samples (testable without the event loop): the bus, the
/// sensors' registry entries and counters, and the node's current problem.
struct Core {
    bus: Arc<Mutex<Bus>>,
    sensors: Vec<Sensor>,
    degrade_after: u32,
    counters: Arc<Counters>,
    /// The reason the node is degraded with, if it is.
    problem: Option<String>,
    /// Each new sensor's starting interval, and the channel the adaptive stage wakes
    /// the source with.
    every: Micros,
    wake_tx: async_channel::Sender<()>,
}

impl Core {
    fn new(p: &DsParams, every: Micros, wake_tx: async_channel::Sender<()>) -> Core {
        Core {
            every,
            wake_tx,
            bus: Arc::new(Mutex::new(Bus {
                root: p.root.clone(),
                device: p.device.clone(),
                pin: p.pin,
                sensors: Vec::new(),
                refused: 0,
                next_scan: 0,
                buf: [0; MAX_FILE],
            })),
            sensors: Vec::new(),
            degrade_after: p.degrade_after.max(1),
            counters: Arc::new(Counters::new(COUNTERS)),
            problem: None,
        }
    }

    /// Take the bus's last outcomes: good readings into `out`, counters, and what the
    /// node's health should be: `Some(Some(why))` degraded now (or with a new reason),
    /// `Some(None)` recovered, `None` unchanged.
    fn absorb(
        &mut self,
        registry: &Registry,
        now: Micros,
        out: &mut Vec<Reading>,
    ) -> Option<Option<String>> {
        out.clear();
        let bus = self.bus.lock().unwrap_or_else(|e| e.into_inner());
        // The most sensors left out at one scan.
        self.counters.add(
            C_REFUSED,
            (bus.refused as u64).saturating_sub(self.counters.get(C_REFUSED)),
        );
        let mut worst: Option<String> = None;
        for (i, io) in bus.sensors.iter().enumerate() {
            if i >= self.sensors.len() {
                let info =
                    registry.intern(&format!("ds18b20:{}", io.id), "celsius", ValueKind::Number);
                info.live.interval_us.store(self.every, Ordering::Relaxed);
                info.live.set_waker(self.wake_tx.clone());
                self.sensors.push(Sensor {
                    info,
                    failed_in_row: 0,
                    problem: None,
                });
            }
            let s = &mut self.sensors[i];
            match &io.outcome {
                Ok(milli) => {
                    s.failed_in_row = 0;
                    s.problem = None;
                    let v = Value::Number(*milli as f64 / 1000.0);
                    s.info.live.available.store(true, Ordering::Relaxed);
                    s.info.live.record(now, v);
                    out.push(Reading::new(s.info.id, now, v));
                    self.counters.inc(C_READINGS);
                }
                Err(Fault::Missing(why)) => {
                    s.failed_in_row = 0;
                    if s.problem.as_deref() != Some(why) {
                        s.problem = Some(why.clone());
                    }
                }
                Err(f) => {
                    let (c, why) = match f {
                        Fault::Crc(w) => (C_CRC, w.as_str()),
                        Fault::Reset => (
                            C_RESET,
                            "85.000 °C, the power-on value (the sensor reset: check its power)",
                        ),
                        Fault::Transient(w) => (C_TRANSIENT, w.as_str()),
                        Fault::Missing(_) => unreachable!(),
                    };
                    self.counters.inc(c);
                    s.failed_in_row += 1;
                    // Said once when it starts counting (the count in the text stays as
                    // it was then, so status and the log do not change with every read).
                    let said = s
                        .problem
                        .as_deref()
                        .is_some_and(|p| p.contains("not answering"));
                    if s.failed_in_row >= self.degrade_after && !said {
                        s.problem = Some(format!(
                            "{}: not answering: {why} ({} reads in a row)",
                            io.id, s.failed_in_row
                        ));
                    }
                }
            }
            if worst.is_none() {
                worst = s.problem.clone();
            }
        }
        if bus.sensors.is_empty() {
            worst = Some(format!(
                "no DS18B20 ({FAMILY}*) under {}; {}",
                bus.dir().display(),
                bus.hint()
            ));
        }
        drop(bus);
        let worst = worst.map(|w| {
            if w.contains("not answering") {
                w
            } else {
                format!("unavailable: {w}")
            }
        });
        for s in &self.sensors {
            if s.problem.is_some() {
                s.info.live.available.store(false, Ordering::Relaxed);
            }
        }
        if worst == self.problem {
            return None;
        }
        self.problem = worst.clone();
        Some(worst)
    }

    /// Whether the bus lacks a sensor it should have (for the backoff).
    fn missing(&self) -> bool {
        self.problem
            .as_deref()
            .is_some_and(|p| p.starts_with("unavailable"))
    }
}

/// A set-up ds18b20 source.
struct DsSource {
    name: String,
    core: Core,
    every: Micros,
    worker: Worker,
    wake_tx: async_channel::Sender<()>,
    wake_rx: async_channel::Receiver<()>,
    readings: Vec<Reading>,
}

impl DsSource {
    async fn run(mut self, ctx: SourceCtx) {
        let _keep_open = self.wake_tx.clone();
        let mut backoff = Backoff::new(self.every);
        loop {
            let bus = self.core.bus.clone();
            let started = now_us();
            let done = self
                .worker
                .run(move || {
                    bus.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .sample(started)
                })
                .await;
            let now = now_us();
            if done.is_none() {
                self.core.counters.inc(C_TRANSIENT);
            }
            let change = self.core.absorb(&ctx.registry, now, &mut self.readings);
            match change {
                Some(Some(why)) => {
                    log::warn!("ds18b20 source '{}': {why}", self.name);
                    ctx.health.set_degraded(why);
                }
                Some(None) => {
                    log::info!("ds18b20 source '{}': every sensor reads again", self.name);
                    ctx.health.set_recovered();
                }
                None => {}
            }
            for r in &self.readings {
                ctx.out.send(Item::Reading(*r)).await;
            }
            // The fastest of the ids' intervals (the adaptive stage moves each).
            let every = self
                .core
                .sensors
                .iter()
                .map(|s| s.info.live.interval())
                .filter(|&i| i > 0)
                .min()
                .unwrap_or(self.every);
            // Back off only when nothing answered: a missing sensor must not slow the rest.
            let wait = if self.core.missing() && self.readings.is_empty() {
                backoff.next_delay()
            } else {
                backoff.reset();
                every
            };
            // A new interval from the adaptive stage takes effect at the next read.
            if !ctx.sleep_until(now + wait, &self.wake_rx).await {
                return;
            }
        }
    }
}

impl Source for DsSource {
    fn start(self: Box<Self>, ctx: SourceCtx) -> Task {
        Box::pin((*self).run(ctx))
    }

    fn counters(&self) -> Option<Arc<Counters>> {
        Some(self.core.counters.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n";
    /// What the kernel writes when the CRC failed: NO, then the last good bytes and the
    /// temperature of the bad read.
    const KERNEL_NO: &str =
        "72 01 4b 46 7f ff 0e 10 58 : crc=57 NO\n72 01 4b 46 7f ff 0e 10 57 t=23125\n";
    /// A YES whose bytes do not give the CRC byte (a flipped bit the verdict missed).
    const BAD_CRC: &str =
        "73 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n73 01 4b 46 7f ff 0e 10 57 t=23187\n";
    const POWER_ON: &str =
        "50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n";
    const ZEROS: &str = "00 00 00 00 00 00 00 00 00 : crc=00 YES\n00 00 00 00 00 00 00 00 00 t=0\n";

    struct Tree(PathBuf);

    impl Tree {
        fn new(tag: &str) -> Tree {
            let p = std::env::temp_dir().join(format!("smollama-w1-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(p.join(sysfs::W1_DEVICES)).unwrap();
            Tree(p)
        }
        fn put(&self, id: &str, text: &str) {
            let d = self.0.join(sysfs::W1_DEVICES).join(id);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("w1_slave"), text).unwrap();
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn core(root: &Path, device: Option<&str>) -> Core {
        let p = DsParams {
            device: device.map(String::from),
            pin: 4,
            degrade_after: 3,
            root: root.to_path_buf(),
        };
        Core::new(&p, 1_000_000, async_channel::bounded(1).0)
    }

    fn cycle(c: &mut Core, reg: &Registry, out: &mut Vec<Reading>) -> Option<Option<String>> {
        c.bus.lock().unwrap().sample(0);
        c.absorb(reg, now_us(), out)
    }

    #[test]
    fn the_crc_is_dallas_maxim_crc8() {
        assert_eq!(
            crc8(&[0x72, 0x01, 0x4b, 0x46, 0x7f, 0xff, 0x0e, 0x10]),
            0x57
        );
        assert_eq!(
            crc8(&[0x50, 0x05, 0x4b, 0x46, 0x7f, 0xff, 0x0c, 0x10]),
            0x1c
        );
        // The example ROM code of Maxim's application note 27 (family 02).
        assert_eq!(crc8(&[0x02, 0x1c, 0xb8, 0x01, 0x00, 0x00, 0x00]), 0xa2);
    }

    #[test]
    fn w1_slave_is_read_only_when_both_crc_checks_pass() {
        assert_eq!(parse_w1(GOOD.as_bytes()), Ok(23125));
        assert!(
            matches!(parse_w1(KERNEL_NO.as_bytes()), Err(Fault::Crc(w)) if w.contains("crc=57 NO"))
        );
        assert!(
            matches!(parse_w1(BAD_CRC.as_bytes()), Err(Fault::Crc(w)) if w.contains("its bytes give 14"))
        );
        assert_eq!(parse_w1(POWER_ON.as_bytes()), Err(Fault::Reset));
        assert!(
            matches!(parse_w1(ZEROS.as_bytes()), Err(Fault::Transient(w)) if w.contains("all-zero"))
        );
        assert!(matches!(parse_w1(b""), Err(Fault::Transient(w)) if w.contains("empty")));
        assert!(matches!(parse_w1(b"garbage\n"), Err(Fault::Transient(_))));
        let negative =
            "5e ff 4b 46 7f ff 0c 10 6a : crc=6a YES\n5e ff 4b 46 7f ff 0c 10 6a t=-10125\n";
        assert_eq!(parse_w1(negative.as_bytes()), Ok(-10125));
    }

    #[test]
    fn a_crc_failure_keeps_the_last_good_value() {
        let tree = Tree::new("crc");
        tree.put("28-0316a2795aff", GOOD);
        let reg = Registry::new();
        let mut c = core(&tree.0, Some("28-0316a2795aff"));
        let mut out = Vec::new();
        assert_eq!(
            cycle(&mut c, &reg, &mut out),
            None,
            "healthy from the start"
        );
        assert_eq!(out.len(), 1);
        let info = reg.lookup("ds18b20:28-0316a2795aff").unwrap();
        assert_eq!(
            info.live.last().map(|(_, v)| v),
            Some(Value::Number(23.125))
        );

        // A bad CRC: no reading, the last good value stays the latest, counted.
        for bad in [KERNEL_NO, BAD_CRC] {
            tree.put("28-0316a2795aff", bad);
            assert_eq!(
                cycle(&mut c, &reg, &mut out),
                None,
                "one failure is no degradation"
            );
            assert!(out.is_empty());
            assert_eq!(
                info.live.last().map(|(_, v)| v),
                Some(Value::Number(23.125))
            );
        }
        assert_eq!(c.counters.by_name("crc_errors"), 2);
        // The 85 °C power-on value: a third failure in a row, so degraded now.
        tree.put("28-0316a2795aff", POWER_ON);
        let Some(Some(why)) = cycle(&mut c, &reg, &mut out) else {
            panic!()
        };
        assert!(
            why.contains("power-on value") && why.contains("(3 reads in a row)"),
            "{why}"
        );
        assert_eq!(c.counters.by_name("reset_values"), 1);
        assert_eq!(
            cycle(&mut c, &reg, &mut out),
            None,
            "said once, not with every read"
        );
        assert_eq!(
            info.live.last().map(|(_, v)| v),
            Some(Value::Number(23.125))
        );
        // Good again: recovered, and read.
        tree.put(
            "28-0316a2795aff",
            GOOD.replace("t=23125", "t=23187").as_str(),
        );
        assert_eq!(cycle(&mut c, &reg, &mut out), Some(None));
        assert_eq!(
            info.live.last().map(|(_, v)| v),
            Some(Value::Number(23.187))
        );
    }

    #[test]
    fn every_sensor_on_the_bus_has_its_id_and_a_missing_one_degrades_at_once() {
        let tree = Tree::new("all");
        let reg = Registry::new();
        let mut c = core(&tree.0, None);
        let mut out = Vec::new();
        let Some(Some(why)) = cycle(&mut c, &reg, &mut out) else {
            panic!()
        };
        assert!(
            why.starts_with("unavailable: no DS18B20 (28-*) under ")
                && why.ends_with(
                    "add dtoverlay=w1-gpio,gpiopin=4 to /boot/firmware/config.txt and reboot"
                ),
            "{why}"
        );
        tree.put("28-000000000002", GOOD);
        tree.put("28-000000000001", GOOD);
        tree.put("10-000000000003", GOOD); // a DS18S20: not this kind's
        assert_eq!(cycle(&mut c, &reg, &mut out), Some(None));
        assert_eq!(out.len(), 2);
        assert!(reg.lookup("ds18b20:28-000000000001").is_some());
        assert!(reg.lookup("ds18b20:28-000000000002").is_some());
        assert!(reg.lookup("ds18b20:10-000000000003").is_none());
        std::fs::remove_dir_all(tree.0.join(sysfs::W1_DEVICES).join("28-000000000001")).unwrap();
        let Some(Some(why)) = cycle(&mut c, &reg, &mut out) else {
            panic!()
        };
        assert!(
            why.starts_with("unavailable: ") && why.contains("28-000000000001 is not there"),
            "{why}"
        );
        assert_eq!(out.len(), 1, "the other still reads");
        assert!(c.missing());
        tree.put("28-000000000001", GOOD);
        assert_eq!(cycle(&mut c, &reg, &mut out), Some(None));
    }
}
