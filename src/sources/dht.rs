//! The `dht11` and `dht22` sources: a DHT11 or DHT22 (AM2302) temperature/humidity
//! sensor read through the kernel's IIO driver (`drivers/iio/humidity/dht11.c`, loaded by
//! `dtoverlay=dht11,gpiopin=4`; one driver for both models, it tells them apart by the
//! data). The kernel bit-bangs the sensor and answers under
//! `<root>/bus/iio/devices/iio:deviceN/`: `name` (the driver takes the device tree node's:
//! `dht11@0` from the Pi overlay, whatever the pin; `dht11@4` where the firmware renames
//! it), `in_temp_input` (millidegrees Celsius) and `in_humidityrelative_input`
//! (milli-percent). Readings are the original's: `<kind>:temperature` in `celsius` and
//! `<kind>:humidity` in `%`, rounded to one decimal.
//!
//! The device is found by its name (`device`, default `dht11`: the driver's name for
//! either model, with or without the `@…`; or `iio:deviceN`), again whenever it went away
//! (the number can change). Each sample reads both attributes on the `hw` thread, since a
//! read can block for the ~20 ms the kernel needs to talk to the sensor. The device is
//! never read more often than `min_interval` (default 2 s, at least 1 s: the sensor
//! needs that long between conversions), whatever `every` or the adaptive stage say.
//!
//! Failure: the driver often answers EIO or ETIMEDOUT (a checksum or timing miss, even
//! when all is well). Such a read, or values no DHT can give, is transient: nothing is
//! emitted, the last good values stay the source's latest, `transient_errors` counts it,
//! and the node keeps running until `degrade_after` reads in a row failed (then degraded
//! with the last error, running again at the next good read). A device that is not there
//! (no overlay, a removed overlay, a driver unloaded) makes the node degraded at once,
//! with the overlay line to add, and is looked for again with a backoff from `every` up
//! to a minute.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::clock::now_us;
use crate::config::SourceSpec;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::edges::hw::Worker;
use crate::graph::counters::Counters;
use crate::graph::registry::SourceInfo;
use crate::graph::{Item, Micros, Reading, Value, ValueKind};
use crate::plugins::params::{Need, Reader, as_dur, as_text, int_in};
use crate::plugins::{Kind, Make, Param, ParamsBox, Produced, Role, Unavailable, params_of};
use crate::plugins::{Setup, Source, SourceCtx, Task};

use super::sysfs;
use crate::plugins::Backoff;

/// The counters shown in status.
const COUNTERS: &[&str] = &["readings", "transient_errors", "device_missing"];
const C_READINGS: usize = 0;
const C_TRANSIENT: usize = 1;
const C_MISSING: usize = 2;

/// The kernel's name for the device, either model (its only compatible is "dht11").
const DRIVER_NAME: &str = "dht11";

/// What no DHT can measure (DHT22: -40..80 °C, 0..100 %): a misread the checksum missed.
const TEMP_RANGE: (f64, f64) = (-40.0, 80.0);
const HUMIDITY_RANGE: (f64, f64) = (0.0, 100.0);

const PARAMS: &[Param] = &[
    Param::new(Spec {
        default: "\"10s\"",
        doc: "how often the sensor is read (never more often than min_interval)",
        ..Spec::new("every", Want::Duration)
    }),
    Param::new(Spec {
        default: "\"dht11\"",
        doc: "which IIO device: its name (\"dht11\", \"dht11@0\": the kernel's name for a DHT11 or DHT22) or \"iio:deviceN\"",
        hint: "e.g. device = \"dht11@0\" (cat /sys/bus/iio/devices/iio:device*/name shows the names)",
        ..Spec::new("device", Want::Text)
    }),
    Param::new(Spec {
        default: "4",
        range: Some((0.0, 27.0)),
        doc: "the GPIO (BCM) the data line is on, as in the overlay line dtoverlay=dht11,gpiopin=N (the overlay line `smollama pipeline needs` prints for setup-pi.sh, and messages; the kernel owns the pin)",
        hint: "a BCM GPIO number 0-27, e.g. pin = 4",
        ..Spec::new("pin", Want::WholeNumber)
    }),
    Param::new(Spec {
        default: "\"2s\"",
        doc: "the sensor is read at most this often (at least 1s; the original's min_interval_sec)",
        hint: "a duration of at least 1s, e.g. min_interval = \"2s\"",
        ..Spec::new("min_interval", Want::Duration)
    }),
    Param::new(Spec {
        default: "3",
        range: Some((1.0, 1000.0)),
        doc: "the node is degraded after this many failed reads in a row (one failed read keeps the last values)",
        hint: "a whole number 1-1000, e.g. degrade_after = 3",
        ..Spec::new("degrade_after", Want::WholeNumber)
    }),
    sysfs::ROOT_PARAM,
];

pub const DHT11: Kind = Kind {
    role: Role::Source,
    name: "dht11",
    version: env!("CARGO_PKG_VERSION"),
    doc: "a DHT11's temperature (celsius) and humidity (%) through the kernel's IIO driver (dtoverlay=dht11)",
    params: PARAMS,
    make: Make::Source {
        ids: "dht11",
        parse,
        produces,
        setup,
    },
};

pub const DHT22: Kind = Kind {
    role: Role::Source,
    name: "dht22",
    version: env!("CARGO_PKG_VERSION"),
    doc: "a DHT22/AM2302's temperature (celsius) and humidity (%) through the kernel's IIO driver (dtoverlay=dht11)",
    params: PARAMS,
    make: Make::Source {
        ids: "dht22",
        parse,
        produces,
        setup,
    },
};

/// A DHT source's parameters, checked.
#[derive(Clone, Debug)]
struct DhtParams {
    device: String,
    pin: i64,
    min_interval: Micros,
    degrade_after: u32,
    root: PathBuf,
}

fn parse(r: &mut Reader) -> ParamsBox {
    let mut p = DhtParams {
        device: DRIVER_NAME.into(),
        pin: 4,
        min_interval: 2_000_000,
        degrade_after: 3,
        root: PathBuf::from(sysfs::DEFAULT_ROOT),
    };
    let spec = |k: &str| r.kind.param(k).map(|d| d.spec);
    for raw in r.params() {
        match raw.key.as_str() {
            "device" => match as_text(&raw.value) {
                Ok(s) if !s.trim().is_empty() && !s.contains('/') => p.device = s.trim().into(),
                Ok(s) => r.bad(
                    raw,
                    (
                        format!("'{s}' is not a device name"),
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
            "min_interval" => match as_dur(&raw.value) {
                Ok(d) if d >= 1_000_000 => p.min_interval = d,
                Ok(_) => r.bad(
                    raw,
                    (
                        "a DHT needs at least 1s between reads".into(),
                        spec("min_interval").map(|s| s.hint.into()),
                    ),
                ),
                Err(e) => r.bad(raw, e),
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
    r.need(Need::Dht { pin: p.pin as u8 });
    Arc::new(p)
}

fn ids(kind: &str) -> [String; 2] {
    [format!("{kind}:temperature"), format!("{kind}:humidity")]
}

fn produces(spec: &SourceSpec, _: &crate::config::Settings) -> Produced {
    Produced {
        ids: ids(spec.kind.name)
            .into_iter()
            .map(|id| (id, ValueKind::Number))
            .collect(),
        open: None,
    }
}

fn setup(spec: &SourceSpec, s: &mut Setup) -> Result<Box<dyn Source>, Unavailable> {
    let p = params_of::<DhtParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?
        .clone();
    let [t, h] = ids(spec.kind.name);
    let registry = &s.parts.registry;
    let temp = registry.intern(&t, "celsius", ValueKind::Number);
    let hum = registry.intern(&h, "%", ValueKind::Number);
    let (wake_tx, wake_rx) = async_channel::bounded(1);
    for info in [&temp, &hum] {
        info.live.interval_us.store(spec.every, Ordering::Relaxed);
        info.live.set_waker(wake_tx.clone());
    }
    let probe = Probe::new(&p, sysfs::read_attr);
    Ok(Box::new(DhtSource {
        name: spec.name.clone(),
        temp,
        hum,
        keeper: Keeper::new(p.degrade_after),
        params: p,
        probe: Arc::new(Mutex::new(probe)),
        worker: s.parts.hardware.worker(),
        counters: Arc::new(Counters::new(COUNTERS)),
        wake_tx,
        wake_rx,
    }))
}

/// How the probe reads an attribute: [`sysfs::read_attr`], or a test's stand-in that
/// fails the way the driver does (a regular file cannot answer EIO).
type ReadFn = fn(&Path, &mut [u8]) -> io::Result<usize>;

/// One sample's outcome.
#[derive(Clone, Debug, PartialEq)]
enum Sample {
    /// Celsius and percent, as the kernel gave them (not rounded yet).
    Good(f64, f64),
    /// A read that failed this time (EIO, ETIMEDOUT, garbage, an impossible value).
    Transient(String),
    /// No such device (or it went away): why, with what to do.
    Missing(String),
}

/// The sensor's side: the device directory (found by name, again after it went away)
/// and one read buffer. Runs on the `hw` thread.
struct Probe {
    root: PathBuf,
    want: String,
    pin: i64,
    /// The device directory's two attributes, once found.
    found: Option<(PathBuf, PathBuf, PathBuf)>,
    read: ReadFn,
    buf: [u8; 32],
}

impl Probe {
    fn new(p: &DhtParams, read: ReadFn) -> Probe {
        Probe {
            root: p.root.clone(),
            want: p.device.clone(),
            pin: p.pin,
            found: None,
            read,
            buf: [0; 32],
        }
    }

    /// What to add when the device is not there.
    fn hint(&self) -> String {
        format!(
            "add dtoverlay=dht11,gpiopin={} to /boot/firmware/config.txt and reboot",
            self.pin
        )
    }

    fn sample(&mut self) -> Sample {
        if self.found.is_none() {
            match sysfs::find_iio(&self.root, &self.want) {
                Ok(d) => {
                    let t = d.dir.join("in_temp_input");
                    let h = d.dir.join("in_humidityrelative_input");
                    self.found = Some((d.dir, t, h));
                }
                Err(why) => return Sample::Missing(format!("{why}; {}", self.hint())),
            }
        }
        // Taken out for the reads (no copy of the paths per sample), put back unless gone.
        let Some((dir, t, h)) = self.found.take() else {
            return Sample::Missing(self.hint());
        };
        let s = self.both(&dir, &t, &h);
        if !matches!(s, Sample::Missing(_)) {
            self.found = Some((dir, t, h));
        }
        s
    }

    fn both(&mut self, dir: &Path, t: &Path, h: &Path) -> Sample {
        let temp = match self.attr(dir, t) {
            Ok(x) => x / 1000.0,
            Err(s) => return s,
        };
        let hum = match self.attr(dir, h) {
            Ok(x) => x / 1000.0,
            Err(s) => return s,
        };
        if !(TEMP_RANGE.0..=TEMP_RANGE.1).contains(&temp)
            || !(HUMIDITY_RANGE.0..=HUMIDITY_RANGE.1).contains(&hum)
        {
            return Sample::Transient(format!("implausible values {temp} °C, {hum} % (a misread)"));
        }
        Sample::Good(temp, hum)
    }

    /// One attribute's number, or the sample's outcome when there is none.
    fn attr(&mut self, dir: &Path, path: &Path) -> Result<f64, Sample> {
        match (self.read)(path, &mut self.buf) {
            Ok(n) => sysfs::number(&self.buf[..n])
                .ok_or_else(|| Sample::Transient(format!("{} holds no number", path.display()))),
            Err(e) if sysfs::is_gone(&e) || !dir.is_dir() => Err(Sample::Missing(format!(
                "{} went away ({e}); {}",
                dir.display(),
                self.hint()
            ))),
            Err(e) => Err(Sample::Transient(format!(
                "reading {}: {e}",
                path.display()
            ))),
        }
    }
}

/// What the source does after a sample, decided by [`Keeper::step`].
#[derive(Clone, Debug, PartialEq)]
enum Step {
    /// Emit these (rounded); `recovered` if the node was degraded.
    Emit {
        temp: f64,
        hum: f64,
        recovered: bool,
    },
    /// A transient failure under the threshold: keep the last values, stay running.
    Keep,
    /// Degraded now with this reason (log and show it once).
    Degrade(String),
    /// Still degraded for the same kind of reason: nothing new to say.
    StillDegraded,
}

/// The source's memory between samples: how many reads failed in a row and whether the
/// node is degraded (and for a missing device or for failed reads).
struct Keeper {
    degrade_after: u32,
    failed_in_row: u32,
    degraded: Option<bool>,
}

impl Keeper {
    fn new(degrade_after: u32) -> Keeper {
        Keeper {
            degrade_after: degrade_after.max(1),
            failed_in_row: 0,
            degraded: None,
        }
    }

    fn step(&mut self, s: Sample) -> Step {
        match s {
            Sample::Good(t, h) => {
                self.failed_in_row = 0;
                Step::Emit {
                    temp: round1(t),
                    hum: round1(h),
                    recovered: self.degraded.take().is_some(),
                }
            }
            Sample::Transient(why) => {
                self.failed_in_row += 1;
                if self.failed_in_row < self.degrade_after {
                    return Step::Keep;
                }
                if self.degraded == Some(false) {
                    return Step::StillDegraded;
                }
                self.degraded = Some(false);
                Step::Degrade(format!(
                    "not answering: {why} ({} reads in a row)",
                    self.failed_in_row
                ))
            }
            Sample::Missing(why) => {
                self.failed_in_row = 0;
                if self.degraded == Some(true) {
                    return Step::StillDegraded;
                }
                self.degraded = Some(true);
                Step::Degrade(format!("unavailable: {why}"))
            }
        }
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A set-up DHT source.
struct DhtSource {
    name: String,
    temp: Arc<SourceInfo>,
    hum: Arc<SourceInfo>,
    params: DhtParams,
    keeper: Keeper,
    probe: Arc<Mutex<Probe>>,
    worker: Worker,
    counters: Arc<Counters>,
    wake_tx: async_channel::Sender<()>,
    wake_rx: async_channel::Receiver<()>,
}

impl DhtSource {
    /// `dht11` or `dht22`, from its ids (for log lines).
    fn kind(&self) -> &str {
        crate::graph::registry::source_type(&self.temp.name)
    }

    async fn run(mut self, ctx: SourceCtx) {
        let _keep_open = self.wake_tx.clone();
        let mut backoff = Backoff::new(self.temp.live.interval());
        loop {
            let probe = self.probe.clone();
            let sample = self
                .worker
                .run(move || probe.lock().unwrap_or_else(|e| e.into_inner()).sample())
                .await
                .unwrap_or_else(|| Sample::Transient("the hw thread failed the read".into()));
            let missing = matches!(sample, Sample::Missing(_));
            match &sample {
                Sample::Transient(_) => self.counters.inc(C_TRANSIENT),
                Sample::Missing(_) => self.counters.inc(C_MISSING),
                Sample::Good(..) => {}
            }
            let now = now_us();
            match self.keeper.step(sample) {
                Step::Emit {
                    temp,
                    hum,
                    recovered,
                } => {
                    if recovered {
                        log::info!("{} source '{}': reading again", self.kind(), self.name);
                        ctx.health.set_recovered();
                    }
                    self.counters.inc(C_READINGS);
                    for (info, x) in [(&self.temp, temp), (&self.hum, hum)] {
                        info.live.available.store(true, Ordering::Relaxed);
                        info.live.record(now, Value::Number(x));
                        ctx.out
                            .send(Item::Reading(Reading::new(info.id, now, Value::Number(x))))
                            .await;
                    }
                }
                Step::Keep | Step::StillDegraded => {}
                Step::Degrade(why) => {
                    log::warn!("{} source '{}': {why}", self.kind(), self.name);
                    ctx.health.set_degraded(why);
                    self.temp.live.available.store(false, Ordering::Relaxed);
                    self.hum.live.available.store(false, Ordering::Relaxed);
                }
            }
            let wait = if missing {
                backoff.next_delay()
            } else {
                backoff.reset();
                // The faster of the two ids' intervals (the adaptive stage moves each).
                let every = self.temp.live.interval().min(self.hum.live.interval());
                every.max(self.params.min_interval)
            };
            // A new interval from the adaptive stage takes effect at the next read.
            if !ctx.sleep_until(now + wait, &self.wake_rx).await {
                return;
            }
        }
    }
}

impl Source for DhtSource {
    fn start(self: Box<Self>, ctx: SourceCtx) -> Task {
        Box::pin((*self).run(ctx))
    }

    fn counters(&self) -> Option<Arc<Counters>> {
        Some(self.counters.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// A fake sysfs tree laid out as the kernel does for the dht11 driver.
    struct Tree(PathBuf);

    impl Tree {
        fn new(tag: &str) -> Tree {
            let p = std::env::temp_dir().join(format!("smollama-dht-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(p.join(sysfs::IIO_DEVICES)).unwrap();
            Tree(p)
        }
        fn device(&self, n: u32, name: &str, milli_c: i64, milli_rh: i64) -> PathBuf {
            let d = self
                .0
                .join(sysfs::IIO_DEVICES)
                .join(format!("iio:device{n}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("name"), format!("{name}\n")).unwrap();
            std::fs::write(d.join("in_temp_input"), format!("{milli_c}\n")).unwrap();
            std::fs::write(d.join("in_humidityrelative_input"), format!("{milli_rh}\n")).unwrap();
            d
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn params(root: &Path, device: &str) -> DhtParams {
        DhtParams {
            device: device.into(),
            pin: 4,
            min_interval: 2_000_000,
            degrade_after: 3,
            root: root.to_path_buf(),
        }
    }

    /// Reads that fail with EIO while this is above zero, as the driver does on a
    /// checksum miss (one test uses it).
    static FAIL_EIO: AtomicU32 = AtomicU32::new(0);

    fn flaky_read(path: &Path, buf: &mut [u8]) -> io::Result<usize> {
        if FAIL_EIO
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        sysfs::read_attr(path, buf)
    }

    #[test]
    fn reads_the_iio_device_by_name_in_celsius_and_percent_rounded() {
        let tree = Tree::new("read");
        tree.device(0, "bme280", 1, 1);
        tree.device(1, "dht11@4", 23_456, 41_049);
        let mut probe = Probe::new(&params(&tree.0, "dht11"), sysfs::read_attr);
        assert_eq!(probe.sample(), Sample::Good(23.456, 41.049));
        let mut k = Keeper::new(3);
        assert_eq!(
            k.step(probe.sample()),
            Step::Emit {
                temp: 23.5,
                hum: 41.0,
                recovered: false
            }
        );
        // Picked by its iio:deviceN too; a DHT22 below zero (the kernel's sign handling).
        tree.device(1, "dht11@4", -10_200, 99_900);
        let mut probe = Probe::new(&params(&tree.0, "iio:device1"), sysfs::read_attr);
        assert_eq!(probe.sample(), Sample::Good(-10.2, 99.9));
    }

    #[test]
    fn a_transient_eio_keeps_the_last_values_until_several_in_a_row() {
        let tree = Tree::new("eio");
        tree.device(0, "dht11@4", 21_000, 50_000);
        let mut probe = Probe::new(&params(&tree.0, "dht11"), flaky_read);
        let mut k = Keeper::new(3);
        assert!(matches!(k.step(probe.sample()), Step::Emit { .. }));
        // One EIO: nothing emitted, no degradation (the last values stay the latest).
        FAIL_EIO.store(1, Ordering::Relaxed);
        let s = probe.sample();
        // The errno, not its text: glibc says "Input/output error", musl "I/O error".
        assert!(
            matches!(&s, Sample::Transient(w) if w.contains("(os error 5)")),
            "{s:?}"
        );
        assert_eq!(k.step(s), Step::Keep);
        assert!(matches!(
            k.step(probe.sample()),
            Step::Emit { temp: 21.0, .. }
        ));
        // Three in a row: degraded once, with the error; then back at the next good read.
        FAIL_EIO.store(4, Ordering::Relaxed);
        assert_eq!(k.step(probe.sample()), Step::Keep);
        assert_eq!(k.step(probe.sample()), Step::Keep);
        let Step::Degrade(why) = k.step(probe.sample()) else {
            panic!()
        };
        assert!(
            why.starts_with("not answering: reading ") && why.contains("(3 reads in a row)"),
            "{why}"
        );
        assert_eq!(k.step(probe.sample()), Step::StillDegraded);
        assert_eq!(
            k.step(probe.sample()),
            Step::Emit {
                temp: 21.0,
                hum: 50.0,
                recovered: true
            }
        );
    }

    #[test]
    fn a_missing_device_names_the_overlay_and_is_found_again_after_it_returns() {
        let tree = Tree::new("missing");
        let mut p = params(&tree.0, "dht11");
        p.pin = 17;
        let mut probe = Probe::new(&p, sysfs::read_attr);
        let mut k = Keeper::new(3);
        let Step::Degrade(why) = k.step(probe.sample()) else {
            panic!()
        };
        assert_eq!(
            why,
            format!(
                "unavailable: no IIO device named dht11 under {}; add dtoverlay=dht11,gpiopin=17 to /boot/firmware/config.txt and reboot",
                tree.0.join(sysfs::IIO_DEVICES).display()
            )
        );
        let dir = tree.device(0, "dht11@11", 20_000, 40_000);
        assert!(matches!(
            k.step(probe.sample()),
            Step::Emit {
                recovered: true,
                ..
            }
        ));
        // Gone (overlay removed): degraded at once, not after three reads.
        std::fs::remove_dir_all(&dir).unwrap();
        let Step::Degrade(why) = k.step(probe.sample()) else {
            panic!()
        };
        assert!(
            why.starts_with("unavailable: ") && why.contains("went away"),
            "{why}"
        );
        // Back under another number.
        tree.device(3, "dht11@11", 20_000, 40_000);
        assert!(matches!(
            k.step(probe.sample()),
            Step::Emit {
                recovered: true,
                ..
            }
        ));
    }

    #[test]
    fn impossible_values_and_garbage_are_transient() {
        let tree = Tree::new("garbage");
        let d = tree.device(0, "dht11", 21_000, 140_000);
        let mut probe = Probe::new(&params(&tree.0, "dht11"), sysfs::read_attr);
        assert!(matches!(probe.sample(), Sample::Transient(w) if w.contains("implausible")));
        std::fs::write(d.join("in_temp_input"), "").unwrap();
        assert!(matches!(probe.sample(), Sample::Transient(w) if w.contains("holds no number")));
    }
}
