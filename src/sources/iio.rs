//! The `iio` source: any sensor with a kernel IIO driver (a light sensor, a barometer,
//! an ADC, loaded by its overlay such as `dtoverlay=i2c-sensor,bmp280`), read from
//! `<root>/bus/iio/devices/iio:deviceN/`. The device is found by `device`: its `name` as
//! the driver gave it (`bmp280`, `tsl4531`, with or without a device tree `@address`) or
//! its `iio:deviceN`, again whenever it went away.
//!
//! Each of `channels` (`in_illuminance`, `in_pressure`, `in_voltage0`) is one id,
//! `iio:<node>:<channel without in_>`. Per the sysfs-bus-iio ABI its value is
//! `<ch>_input` when the driver offers it (already in the ABI's units), else
//! `(<ch>_raw + <ch>_offset) × <ch>_scale`, offset and scale optional and possibly shared
//! by the channel type (`in_voltage_scale` for `in_voltage0_raw`); both are read with
//! every sample, since a driver may change them with its range. Units are the ABI's
//! (`in_pressure` in kPa, `in_temp` in millidegrees Celsius, `in_voltage` in mV,
//! `in_illuminance` in lux) unless `units` says otherwise; no conversion is applied.
//!
//! Reads run on the `hw` thread (an attribute read of an I2C or SPI sensor is a bus
//! transaction). A failed read (EIO, garbage) keeps the channel's last value and is
//! counted (`transient_errors`); after `degrade_after` in a row the node is degraded.
//! A device that is not there, or lacks a channel, makes it degraded at once and is
//! looked for with a backoff from `every` up to a minute.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use toml::Value as Toml;

use crate::clock::now_us;
use crate::config::SourceSpec;
use crate::config::expect::{Want, mismatch};
use crate::config::spec::Spec;
use crate::edges::hw::Worker;
use crate::graph::counters::Counters;
use crate::graph::registry::SourceInfo;
use crate::graph::{Item, Micros, Reading, Value, ValueKind};
use crate::plugins::params::{Reader, as_text, int_in};
use crate::plugins::{Kind, Make, Param, ParamsBox, Produced, Role, Unavailable, params_of};
use crate::plugins::{Setup, Source, SourceCtx, Task};

use super::sysfs;
use crate::plugins::Backoff;

const COUNTERS: &[&str] = &["readings", "transient_errors"];
const C_READINGS: usize = 0;
const C_TRANSIENT: usize = 1;

/// At most this many channels per node.
const MAX_CHANNELS: usize = 16;
/// Longest channel name.
const MAX_CHANNEL: usize = 48;
/// Longest unit.
const MAX_UNIT: usize = 32;

/// The ABI's unit of each channel type (`Documentation/ABI/testing/sysfs-bus-iio`).
const ABI_UNITS: &[(&str, &str)] = &[
    ("in_illuminance", "lux"),
    ("in_pressure", "kPa"),
    ("in_temp", "millicelsius"),
    ("in_humidityrelative", "milli%RH"),
    ("in_voltage", "mV"),
    ("in_current", "mA"),
    ("in_power", "mW"),
    ("in_resistance", "ohm"),
    ("in_accel", "m/s²"),
    ("in_anglvel", "rad/s"),
    ("in_magn", "gauss"),
    ("in_concentration", "%"),
    ("in_distance", "m"),
];

pub const KIND: Kind = Kind {
    role: Role::Source,
    name: "iio",
    version: env!("CARGO_PKG_VERSION"),
    doc: "channels of any sensor with a kernel IIO driver: <ch>_input, or (<ch>_raw + <ch>_offset) × <ch>_scale",
    params: &[
        Param::new(Spec {
            default: "\"10s\"",
            doc: "how often the channels are read",
            ..Spec::new("every", Want::Duration)
        }),
        Param::new(Spec {
            doc: "the IIO device: its name (\"bmp280\", \"tsl4531\") or \"iio:deviceN\" (required)",
            hint: "cat /sys/bus/iio/devices/iio:device*/name shows the names, e.g. device = \"bmp280\"",
            ..Spec::new("device", Want::Text)
        }),
        Param::new(Spec {
            doc: "the channels to read, without _raw or _input, e.g. [\"in_illuminance\"] (required)",
            hint: "names as in the device directory without the suffix, e.g. channels = [\"in_pressure\", \"in_temp\"]",
            ..Spec::new("channels", Want::TextList)
        }),
        Param::new(Spec {
            doc: "each channel's unit, in the order of channels (default: the IIO ABI's unit of its type)",
            hint: "one per channel, e.g. units = [\"kPa\", \"millicelsius\"]",
            ..Spec::new("units", Want::TextList)
        }),
        Param::new(Spec {
            default: "3",
            range: Some((1.0, 1000.0)),
            doc: "the node is degraded after this many failed reads of a channel in a row",
            hint: "a whole number 1-1000, e.g. degrade_after = 3",
            ..Spec::new("degrade_after", Want::WholeNumber)
        }),
        sysfs::ROOT_PARAM,
    ],
    make: Make::Source {
        ids: "iio",
        parse,
        produces,
        setup,
    },
};

/// An iio source's parameters, checked.
#[derive(Clone, Debug)]
struct IioParams {
    device: String,
    /// (channel, unit).
    channels: Vec<(String, String)>,
    degrade_after: u32,
    root: PathBuf,
}

fn valid_channel(s: &str) -> bool {
    s.len() <= MAX_CHANNEL
        && s.len() > 3
        && s.starts_with("in_")
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// The ABI's unit for a channel (by its type prefix), or "".
fn abi_unit(ch: &str) -> &'static str {
    ABI_UNITS
        .iter()
        .filter(|(t, _)| ch.starts_with(t))
        .max_by_key(|(t, _)| t.len())
        .map_or("", |(_, u)| u)
}

fn texts(v: &Toml) -> Result<Vec<&str>, crate::plugins::params::Problem> {
    match v {
        Toml::Array(a) => a.iter().map(as_text).collect(),
        other => Err(mismatch(Want::TextList, other)),
    }
}

fn parse(r: &mut Reader) -> ParamsBox {
    let mut device = None;
    let mut channels: Vec<String> = Vec::new();
    let mut units: Option<(Vec<String>, usize)> = None;
    let mut degrade_after = 3;
    let mut root = PathBuf::from(sysfs::DEFAULT_ROOT);
    let hint = |r: &Reader, k: &str| r.kind.param(k).map(|d| d.spec.hint.to_string());
    for p in r.params() {
        match p.key.as_str() {
            "device" => match as_text(&p.value) {
                Ok(s) if !s.trim().is_empty() && !s.contains('/') => {
                    device = Some(s.trim().to_string())
                }
                Ok(s) => {
                    let h = hint(r, "device");
                    r.bad(p, (format!("'{s}' is not a device name"), h))
                }
                Err(e) => r.bad(p, e),
            },
            "channels" => match texts(&p.value) {
                Ok(list) if list.is_empty() => {
                    let h = hint(r, "channels");
                    r.bad(p, ("no channels given".into(), h))
                }
                Ok(list) if list.len() > MAX_CHANNELS => r.bad(
                    p,
                    (
                        format!("{} channels; at most {MAX_CHANNELS} per node", list.len()),
                        Some("split them over two iio sources".into()),
                    ),
                ),
                Ok(list) => {
                    for ch in list {
                        let base = ch
                            .strip_suffix("_raw")
                            .or_else(|| ch.strip_suffix("_input"));
                        if let Some(base) = base {
                            r.bad(
                                p,
                                (
                                    format!("'{ch}': name the channel without _raw or _input"),
                                    Some(format!("write \"{base}\"; the source reads _input or _raw, _offset and _scale itself")),
                                ),
                            );
                        } else if !valid_channel(ch) {
                            let h = hint(r, "channels");
                            r.bad(p, (format!("'{ch}' is not an IIO input channel name"), h));
                        } else if channels.iter().any(|c| c == ch) {
                            r.bad(p, (format!("'{ch}' is listed twice"), None));
                        } else {
                            channels.push(ch.to_string());
                        }
                    }
                }
                Err(e) => r.bad(p, e),
            },
            "units" => match texts(&p.value) {
                Ok(list) if list.iter().any(|u| u.len() > MAX_UNIT) => {
                    r.bad(p, (format!("a unit is longer than {MAX_UNIT} bytes"), None))
                }
                Ok(list) => units = Some((list.iter().map(|s| s.to_string()).collect(), p.line)),
                Err(e) => r.bad(p, e),
            },
            "degrade_after" => match r
                .kind
                .param("degrade_after")
                .map(|d| int_in(&p.value, &d.spec))
            {
                Some(Ok(n)) => degrade_after = n as u32,
                Some(Err(e)) => r.bad(p, e),
                None => {}
            },
            "root" => match sysfs::parse_root(&p.value) {
                Ok(x) => root = x,
                Err(e) => r.bad(p, e),
            },
            _ => {}
        }
    }
    for (key, example) in [
        ("device", "device = \"bmp280\""),
        ("channels", "channels = [\"in_pressure\"]"),
    ] {
        if r.get(key).is_none() {
            let msg = format!("iio source '{}' has no {key}", r.name);
            r.bad_at(r.line, msg, Some(format!("add {example}")));
        }
    }
    let units = match units {
        Some((u, line)) if u.len() != channels.len() && !channels.is_empty() => {
            let msg = format!(
                "units of source '{}': {} units for {} channels",
                r.name,
                u.len(),
                channels.len()
            );
            r.bad_at(
                line,
                msg,
                Some("give one unit per channel, in the same order".into()),
            );
            Vec::new()
        }
        Some((u, _)) => u,
        None => Vec::new(),
    };
    let channels = channels
        .into_iter()
        .enumerate()
        .map(|(i, ch)| {
            let unit = units
                .get(i)
                .cloned()
                .unwrap_or_else(|| abi_unit(&ch).into());
            (ch, unit)
        })
        .collect();
    Arc::new(IioParams {
        device: device.unwrap_or_default(),
        channels,
        degrade_after,
        root,
    })
}

fn id(node: &str, ch: &str) -> String {
    format!("iio:{node}:{}", ch.trim_start_matches("in_"))
}

fn produces(spec: &SourceSpec, _: &crate::config::Settings) -> Produced {
    let chans = params_of::<IioParams>(&spec.params).map_or(&[][..], |p| p.channels.as_slice());
    Produced {
        ids: chans
            .iter()
            .map(|(ch, _)| (id(&spec.name, ch), ValueKind::Number))
            .collect(),
        open: None,
    }
}

fn setup(spec: &SourceSpec, s: &mut Setup) -> Result<Box<dyn Source>, Unavailable> {
    let p = params_of::<IioParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?
        .clone();
    let (wake_tx, wake_rx) = async_channel::bounded(1);
    let infos: Vec<Arc<SourceInfo>> = p
        .channels
        .iter()
        .map(|(ch, unit)| {
            let info = s
                .parts
                .registry
                .intern(&id(&spec.name, ch), unit, ValueKind::Number);
            info.live.interval_us.store(spec.every, Ordering::Relaxed);
            info.live.set_waker(wake_tx.clone());
            info
        })
        .collect();
    Ok(Box::new(IioSource {
        name: spec.name.clone(),
        core: Core::new(&p, infos),
        every: spec.every,
        worker: s.parts.hardware.worker(),
        wake_tx,
        wake_rx,
        readings: Vec::with_capacity(p.channels.len()),
    }))
}

/// How a channel's value is read, found once per device (paths only).
#[derive(Debug)]
enum Files {
    /// `<ch>_input`: the driver's processed value.
    Input(PathBuf),
    /// `<ch>_raw`, with the first `_offset` and `_scale` that exist (per channel, then
    /// shared by the type).
    Raw {
        raw: PathBuf,
        offset: Option<PathBuf>,
        scale: Option<PathBuf>,
    },
}

/// One channel's last outcome.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Value(f64),
    Transient(String),
    Missing(String),
}

/// The names an attribute of `ch` may have, most specific first: `in_voltage0_scale`,
/// then the type's shared `in_voltage_scale` (`in_accel_x` → `in_accel`).
fn attr_candidates(ch: &str, attr: &str) -> Vec<String> {
    let mut names = vec![ch.to_string()];
    let mut cur = ch;
    loop {
        let trimmed = cur.trim_end_matches(|c: char| c.is_ascii_digit());
        if trimmed != cur && trimmed.len() > 3 {
            cur = trimmed;
        } else if let Some((head, _)) = cur.rsplit_once('_').filter(|(h, _)| h.len() > 2) {
            cur = head;
        } else {
            break;
        }
        let cur = cur.trim_end_matches('_');
        if !names.iter().any(|n| n == cur) {
            names.push(cur.to_string());
        }
    }
    names.into_iter().map(|n| format!("{n}_{attr}")).collect()
}

/// The device's side, on the `hw` thread: the directory, each channel's files and its
/// last outcome, one read buffer.
struct Device {
    root: PathBuf,
    want: String,
    channels: Vec<String>,
    found: Option<(PathBuf, Vec<Files>)>,
    outcomes: Vec<Outcome>,
    buf: [u8; 64],
}

impl Device {
    fn locate(&self) -> Result<(PathBuf, Vec<Files>), String> {
        let d = sysfs::find_iio(&self.root, &self.want)?;
        let mut files = Vec::with_capacity(self.channels.len());
        for ch in &self.channels {
            let first = |attr: &str| {
                attr_candidates(ch, attr)
                    .into_iter()
                    .map(|n| d.dir.join(n))
                    .find(|p| p.exists())
            };
            let input = d.dir.join(format!("{ch}_input"));
            let raw = d.dir.join(format!("{ch}_raw"));
            files.push(if input.exists() {
                Files::Input(input)
            } else if raw.exists() {
                Files::Raw {
                    raw,
                    offset: first("offset"),
                    scale: first("scale"),
                }
            } else {
                return Err(format!(
                    "{} ({}) has no {ch}_input or {ch}_raw",
                    d.id(),
                    d.name
                ));
            });
        }
        Ok((d.dir, files))
    }

    fn number(&mut self, path: &Path) -> io::Result<Option<f64>> {
        let n = sysfs::read_attr(path, &mut self.buf)?;
        Ok(sysfs::number(&self.buf[..n]))
    }

    fn value(&mut self, f: &Files) -> Result<f64, (bool, String)> {
        let fail =
            |p: &Path, e: io::Error| (sysfs::is_gone(&e), format!("reading {}: {e}", p.display()));
        let garbage = |p: &Path| (false, format!("{} holds no number", p.display()));
        match f {
            Files::Input(p) => self
                .number(p)
                .map_err(|e| fail(p, e))?
                .ok_or_else(|| garbage(p)),
            Files::Raw { raw, offset, scale } => {
                let r = self
                    .number(raw)
                    .map_err(|e| fail(raw, e))?
                    .ok_or_else(|| garbage(raw))?;
                let o = match offset {
                    Some(p) => self
                        .number(p)
                        .map_err(|e| fail(p, e))?
                        .ok_or_else(|| garbage(p))?,
                    None => 0.0,
                };
                let s = match scale {
                    Some(p) => self
                        .number(p)
                        .map_err(|e| fail(p, e))?
                        .ok_or_else(|| garbage(p))?,
                    None => 1.0,
                };
                Ok((r + o) * s)
            }
        }
    }

    fn sample(&mut self) {
        if self.found.is_none() {
            match self.locate() {
                Ok(f) => self.found = Some(f),
                Err(why) => {
                    for o in &mut self.outcomes {
                        *o = Outcome::Missing(why.clone());
                    }
                    return;
                }
            }
        }
        let Some((dir, files)) = self.found.take() else {
            return;
        };
        let mut gone = false;
        for (i, f) in files.iter().enumerate() {
            self.outcomes[i] = match self.value(f) {
                Ok(x) if x.is_finite() => Outcome::Value(x),
                Ok(_) => Outcome::Transient("not a finite number".into()),
                Err(_) if !dir.is_dir() => {
                    gone = true;
                    Outcome::Missing(format!("{} went away", dir.display()))
                }
                Err((true, why)) => {
                    gone = true;
                    Outcome::Missing(why)
                }
                Err((false, why)) => Outcome::Transient(why),
            };
        }
        if !gone {
            self.found = Some((dir, files));
        }
    }
}

/// One channel as the source follows it.
struct Channel {
    info: Arc<SourceInfo>,
    failed_in_row: u32,
    /// Why it is failing, once it counts (missing, or `degrade_after` reads in a row).
    problem: Option<String>,
}

/// The source's logic between samples (testable without the event loop).
struct Core {
    device: Arc<Mutex<Device>>,
    channels: Vec<Channel>,
    degrade_after: u32,
    counters: Arc<Counters>,
    problem: Option<String>,
}

impl Core {
    fn new(p: &IioParams, infos: Vec<Arc<SourceInfo>>) -> Core {
        let n = p.channels.len();
        Core {
            device: Arc::new(Mutex::new(Device {
                root: p.root.clone(),
                want: p.device.clone(),
                channels: p.channels.iter().map(|(c, _)| c.clone()).collect(),
                found: None,
                outcomes: vec![Outcome::Missing(String::new()); n],
                buf: [0; 64],
            })),
            channels: infos
                .into_iter()
                .map(|info| Channel {
                    info,
                    failed_in_row: 0,
                    problem: None,
                })
                .collect(),
            degrade_after: p.degrade_after.max(1),
            counters: Arc::new(Counters::new(COUNTERS)),
            problem: None,
        }
    }

    /// Take the last outcomes: readings into `out`; `Some(Some(why))` degraded now (or
    /// for a new reason), `Some(None)` recovered, `None` unchanged.
    fn absorb(&mut self, now: Micros, out: &mut Vec<Reading>) -> Option<Option<String>> {
        out.clear();
        let dev = self.device.lock().unwrap_or_else(|e| e.into_inner());
        let mut worst: Option<String> = None;
        for (c, o) in self.channels.iter_mut().zip(&dev.outcomes) {
            match o {
                Outcome::Value(x) => {
                    c.failed_in_row = 0;
                    c.problem = None;
                    let v = Value::Number(*x);
                    c.info.live.available.store(true, Ordering::Relaxed);
                    c.info.live.record(now, v);
                    out.push(Reading::new(c.info.id, now, v));
                    self.counters.inc(C_READINGS);
                }
                Outcome::Transient(why) => {
                    self.counters.inc(C_TRANSIENT);
                    c.failed_in_row += 1;
                    // Said once when it starts counting, so the reason does not change
                    // with every read.
                    let said = c
                        .problem
                        .as_deref()
                        .is_some_and(|p| p.starts_with("not answering"));
                    if c.failed_in_row >= self.degrade_after && !said {
                        c.problem = Some(format!(
                            "not answering: {why} ({} reads in a row)",
                            c.failed_in_row
                        ));
                    }
                }
                Outcome::Missing(why) => {
                    c.failed_in_row = 0;
                    let p = format!("unavailable: {why}");
                    if c.problem.as_deref() != Some(&p) {
                        c.problem = Some(p);
                    }
                }
            }
            if c.problem.is_some() {
                c.info.live.available.store(false, Ordering::Relaxed);
                if worst.is_none() {
                    worst = c.problem.clone();
                }
            }
        }
        drop(dev);
        if worst == self.problem {
            return None;
        }
        self.problem = worst.clone();
        Some(worst)
    }

    fn missing(&self) -> bool {
        self.problem
            .as_deref()
            .is_some_and(|p| p.starts_with("unavailable"))
    }
}

/// A set-up iio source.
struct IioSource {
    name: String,
    core: Core,
    every: Micros,
    worker: Worker,
    wake_tx: async_channel::Sender<()>,
    wake_rx: async_channel::Receiver<()>,
    readings: Vec<Reading>,
}

impl IioSource {
    async fn run(mut self, ctx: SourceCtx) {
        let _keep_open = self.wake_tx.clone();
        let mut backoff = Backoff::new(self.every);
        loop {
            let dev = self.core.device.clone();
            let done = self
                .worker
                .run(move || dev.lock().unwrap_or_else(|e| e.into_inner()).sample())
                .await;
            if done.is_none() {
                self.core.counters.inc(C_TRANSIENT);
            }
            let now = now_us();
            match self.core.absorb(now, &mut self.readings) {
                Some(Some(why)) => {
                    log::warn!("iio source '{}': {why}", self.name);
                    ctx.health.set_degraded(why);
                }
                Some(None) => {
                    log::info!("iio source '{}': reading again", self.name);
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
                .channels
                .iter()
                .map(|c| c.info.live.interval())
                .filter(|&i| i > 0)
                .min()
                .unwrap_or(self.every);
            let wait = if self.core.missing() {
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

impl Source for IioSource {
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
    use crate::graph::registry::Registry;

    struct Tree(PathBuf);

    impl Tree {
        fn new(tag: &str) -> Tree {
            let p = std::env::temp_dir().join(format!("smollama-iio-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(p.join(sysfs::IIO_DEVICES)).unwrap();
            Tree(p)
        }
        fn device(&self, n: u32, name: &str, attrs: &[(&str, &str)]) -> PathBuf {
            let d = self
                .0
                .join(sysfs::IIO_DEVICES)
                .join(format!("iio:device{n}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("name"), format!("{name}\n")).unwrap();
            for (k, v) in attrs {
                std::fs::write(d.join(k), format!("{v}\n")).unwrap();
            }
            d
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn core(root: &Path, device: &str, channels: &[&str], reg: &Registry) -> Core {
        let p = IioParams {
            device: device.into(),
            channels: channels
                .iter()
                .map(|c| (c.to_string(), abi_unit(c).into()))
                .collect(),
            degrade_after: 2,
            root: root.to_path_buf(),
        };
        let infos = p
            .channels
            .iter()
            .map(|(c, u)| reg.intern(&id("env", c), u, ValueKind::Number))
            .collect();
        Core::new(&p, infos)
    }

    fn cycle(c: &mut Core, out: &mut Vec<Reading>) -> Option<Option<String>> {
        c.device.lock().unwrap().sample();
        c.absorb(now_us(), out)
    }

    fn values(out: &[Reading]) -> Vec<f64> {
        out.iter().map(|r| r.value.as_f64().unwrap()).collect()
    }

    #[test]
    fn values_are_input_or_raw_plus_offset_times_scale_with_shared_attributes() {
        let tree = Tree::new("values");
        tree.device(0, "dht11@4", &[("in_temp_input", "20000")]);
        tree.device(
            1,
            "bmp280",
            &[
                ("in_pressure_input", "101.325000"),
                ("in_temp_raw", "2500"),
                ("in_temp_offset", "-500"),
                ("in_temp_scale", "10"),
                ("in_voltage0_raw", "1000"),
                ("in_voltage_scale", "0.5"),
                ("in_accel_x_raw", "-3"),
                ("in_accel_scale", "0.25"),
            ],
        );
        let reg = Registry::new();
        let chans = ["in_pressure", "in_temp", "in_voltage0", "in_accel_x"];
        let mut c = core(&tree.0, "bmp280", &chans, &reg);
        let mut out = Vec::new();
        assert_eq!(cycle(&mut c, &mut out), None);
        assert_eq!(values(&out), [101.325, 20000.0, 500.0, -0.75]);
        let p = reg.lookup("iio:env:pressure").unwrap();
        assert_eq!(&*p.unit, "kPa");
        assert_eq!(&*reg.lookup("iio:env:temp").unwrap().unit, "millicelsius");
        // The scale is read with every sample (a driver's range change moves it).
        std::fs::write(
            tree.0
                .join(sysfs::IIO_DEVICES)
                .join("iio:device1/in_voltage_scale"),
            "2",
        )
        .unwrap();
        cycle(&mut c, &mut out);
        assert_eq!(values(&out)[2], 2000.0);
    }

    #[test]
    fn a_missing_device_or_channel_degrades_and_a_garbage_read_keeps_the_last_value() {
        let tree = Tree::new("missing");
        let reg = Registry::new();
        let mut c = core(&tree.0, "tsl4531", &["in_illuminance"], &reg);
        let mut out = Vec::new();
        let Some(Some(why)) = cycle(&mut c, &mut out) else {
            panic!()
        };
        assert!(
            why.starts_with("unavailable: no IIO device named tsl4531 under "),
            "{why}"
        );
        tree.device(0, "bmp280", &[]);
        let d = tree.device(2, "tsl4531", &[("in_intensity_raw", "4")]);
        let Some(Some(why)) = cycle(&mut c, &mut out) else {
            panic!()
        };
        assert_eq!(
            why,
            "unavailable: iio:device2 (tsl4531) has no in_illuminance_input or in_illuminance_raw"
        );
        assert!(c.missing());
        std::fs::write(d.join("in_illuminance_input"), "312\n").unwrap();
        assert_eq!(cycle(&mut c, &mut out), Some(None));
        assert_eq!(values(&out), [312.0]);
        // Garbage once: kept; twice (degrade_after = 2): degraded, not missing.
        std::fs::write(d.join("in_illuminance_input"), "").unwrap();
        assert_eq!(cycle(&mut c, &mut out), None);
        assert!(out.is_empty());
        let info = reg.lookup("iio:env:illuminance").unwrap();
        assert_eq!(info.live.last().map(|(_, v)| v), Some(Value::Number(312.0)));
        let Some(Some(why)) = cycle(&mut c, &mut out) else {
            panic!()
        };
        assert_eq!(
            cycle(&mut c, &mut out),
            None,
            "said once, not with every read"
        );
        assert!(
            why.starts_with("not answering: ") && why.contains("holds no number"),
            "{why}"
        );
        assert!(!c.missing());
        // The device goes away and comes back under another number.
        std::fs::remove_dir_all(&d).unwrap();
        let Some(Some(why)) = cycle(&mut c, &mut out) else {
            panic!()
        };
        assert!(
            why.contains("went away") || why.contains("no IIO device named tsl4531"),
            "{why}"
        );
        tree.device(5, "tsl4531", &[("in_illuminance_input", "10")]);
        assert_eq!(cycle(&mut c, &mut out), Some(None));
        assert_eq!(values(&out), [10.0]);
    }

    #[test]
    fn shared_attribute_names_follow_the_abi() {
        assert_eq!(
            attr_candidates("in_voltage0", "scale"),
            ["in_voltage0_scale", "in_voltage_scale"]
        );
        assert_eq!(
            attr_candidates("in_accel_x", "scale"),
            ["in_accel_x_scale", "in_accel_scale"]
        );
        assert_eq!(
            attr_candidates("in_illuminance", "offset"),
            ["in_illuminance_offset"]
        );
        assert_eq!(abi_unit("in_voltage3"), "mV");
        assert_eq!(abi_unit("in_humidityrelative"), "milli%RH");
        assert_eq!(abi_unit("in_proximity"), "");
    }
}
