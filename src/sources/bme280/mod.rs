//! The `bme280` source: a Bosch BME280 (temperature, humidity, pressure) or BMP280
//! (temperature, pressure) on I2C (0x76 or 0x77) or SPI, one forced-mode measurement every
//! `every`, compensated with the datasheet's integer formulas (`compensate.rs`). One kind
//! for both chips: `chip = "auto"` takes whichever answers by its chip id (0x60 / 0x58).
//!
//! Ids: `bme280:temperature` (celsius), `bme280:humidity` (%), `bme280:pressure` (hPa);
//! with `id = "attic"`, `bme280:attic_temperature` and so on, so two sensors (0x76 and
//! 0x77) can run side by side. A BMP280 emits no humidity.
//!
//! One measurement gives all three, so the node samples at the shortest interval the
//! adaptive stage sets for any of them.
//!
//! Every bus transaction runs on the `hw` thread (`driver.rs` sleeps for the conversion).
//! A bus error or a wrong chip marks the node degraded (`unavailable: <reason>`), logged
//! once per reason; the source retries with capped exponential backoff (from the sampling
//! interval, at least 1 s, up to 60 s), re-reading the chip id and calibration (the device
//! may have been swapped), and is running again when the chip answers. On a mock bus the
//! chip is `model.rs`.

mod compensate;
mod driver;
mod model;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use toml::Value as Toml;

use crate::clock::now_us;
use crate::config::SourceSpec;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::edges::hw::mock::{I2cRegisters, SpiRegisters};
use crate::edges::hw::{BusError, I2cBus, Registers, SpiDevice, Worker};
use crate::graph::counters::Counters;
use crate::graph::registry::SourceInfo;
use crate::graph::{Item, Micros, Reading, Value, ValueKind};
use crate::plugins::params::{Need, Reader, as_int, as_text, describe};
use crate::plugins::{Backoff, Setup, Task};
use crate::plugins::{Kind, Make, Param, ParamsBox, Produced, Role, Unavailable, params_of};
use crate::plugins::{Source, SourceCtx, Woke};
use driver::{Bme280, Chip, Measured};
use model::Bme280Model;

/// SPI clock: the chip takes up to 10 MHz; 1 MHz is safe on jumper wires.
const SPI_HZ: u32 = 1_000_000;
/// Longest `id`.
const MAX_ID: usize = 48;

const COUNTERS: &[&str] = &["samples_failed"];
const C_FAILED: usize = 0;

/// Where the chip is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wiring {
    I2c { bus: u8, addr: u8 },
    Spi { bus: u8, cs: u8 },
}

/// A bme280 source's parameters, checked.
#[derive(Clone, Debug)]
struct Bme280Params {
    chip: Chip,
    wiring: Wiring,
    /// Empty: `bme280:temperature`; else `bme280:<id>_temperature`.
    id: String,
    /// osrs register bits: 1 = ×1 ... 5 = ×16.
    osrs: u8,
}

pub const KIND: Kind = Kind {
    role: Role::Source,
    name: "bme280",
    version: env!("CARGO_PKG_VERSION"),
    doc: "a Bosch BME280 (temperature, humidity, pressure) or BMP280 (no humidity) on I2C or SPI, one forced measurement every `every`",
    params: &[
        Param::new(Spec {
            default: "\"30s\"",
            doc: "how often a measurement is taken (the adaptive stage may move it)",
            ..Spec::new("every", Want::Duration)
        }),
        Param::new(Spec {
            default: "\"auto\"",
            doc: "\"bme280\", \"bmp280\", or \"auto\": whichever answers, by its chip id (0x60 / 0x58)",
            hint: "chip = \"auto\", \"bme280\" or \"bmp280\"",
            ..Spec::new("chip", Want::Text)
        }),
        Param::new(Spec {
            default: "\"i2c\"",
            doc: "\"i2c\" or \"spi\" (the chip speaks both; SDO/CSB wiring decides)",
            hint: "bus = \"i2c\" or bus = \"spi\"",
            ..Spec::new("bus", Want::Text)
        }),
        Param::new(Spec {
            default: "1",
            range: Some((0.0, 255.0)),
            doc: "with bus = \"i2c\": the bus number (1 is pins 3 and 5 of a Pi's header, /dev/i2c-1)",
            hint: "i2c_bus = 1",
            ..Spec::new("i2c_bus", Want::WholeNumber)
        }),
        Param::new(Spec {
            default: "0x76",
            doc: "with bus = \"i2c\": 0x76 (SDO to GND) or 0x77 (SDO to VDDIO)",
            hint: "address = 0x76 or address = 0x77 (`i2cdetect -y 1` shows which)",
            ..Spec::new("address", Want::WholeNumber)
        }),
        Param::new(Spec {
            default: "0",
            range: Some((0.0, 1.0)),
            doc: "with bus = \"spi\": the SPI bus, 0 or 1 (0 is /dev/spidev0.*, pins 19, 21, 23)",
            hint: "spi_bus = 0 (or 1, the auxiliary SPI)",
            ..Spec::new("spi_bus", Want::WholeNumber)
        }),
        Param::new(Spec {
            default: "0",
            range: Some((0.0, 2.0)),
            doc: "with bus = \"spi\": the chip select, 0 to 2 (0 is CE0, pin 24; 1 is CE1, pin 26)",
            hint: "spi_cs = 0 (CE0, pin 24) or 1 (CE1, pin 26)",
            ..Spec::new("spi_cs", Want::WholeNumber)
        }),
        Param::new(Spec {
            doc: "a name inside the ids for a second sensor: id = \"attic\" gives bme280:attic_temperature (default: bme280:temperature)",
            hint: "letters, digits, _ and -, at most 48, e.g. id = \"attic\"",
            ..Spec::new("id", Want::Text)
        }),
        Param::new(Spec {
            default: "1",
            doc: "oversampling of every measurement: 1, 2, 4, 8 or 16 (more is less noisy and slower)",
            hint: "oversampling = 1, 2, 4, 8 or 16",
            ..Spec::new("oversampling", Want::WholeNumber)
        }),
    ],
    make: Make::Source {
        ids: "bme280",
        parse,
        produces,
        setup,
    },
};

fn hint(key: &str) -> Option<String> {
    KIND.param(key).map(|d| d.spec.hint.to_string())
}

fn parse(r: &mut Reader) -> ParamsBox {
    let mut chip = Chip::Auto;
    let mut spi = false;
    let (mut i2c_bus, mut addr, mut spi_bus, mut cs) = (1u8, 0x76u8, 0u8, 0u8);
    let mut id = String::new();
    let mut osrs = 1u8;
    // Parameters of the other bus are refused: they would do nothing.
    let mut i2c_keys = Vec::new();
    let mut spi_keys = Vec::new();
    for p in r.params() {
        let choice = |p: &crate::plugins::params::RawParam, of: &[&str]| match &p.value {
            Toml::String(s) if of.contains(&s.as_str()) => Ok(s.clone()),
            other => Err((
                format!("expected {}, found {}", or_list(of), describe(other)),
                hint(&p.key),
            )),
        };
        let small = |p: &crate::plugins::params::RawParam| {
            let spec = KIND.param(&p.key).map(|d| d.spec);
            match (as_int(&p.value), spec.and_then(|s| s.range)) {
                (Ok(i), Some((lo, hi))) if (i as f64) >= lo && (i as f64) <= hi => Ok(i as u8),
                (Ok(i), _) => Err((format!("{i} is out of range"), hint(&p.key))),
                (Err(e), _) => Err(e),
            }
        };
        match p.key.as_str() {
            "chip" => match choice(p, &["auto", "bme280", "bmp280"]) {
                Ok(s) => {
                    chip = match s.as_str() {
                        "bme280" => Chip::Bme280,
                        "bmp280" => Chip::Bmp280,
                        _ => Chip::Auto,
                    }
                }
                Err(e) => r.bad(p, e),
            },
            "bus" => match choice(p, &["i2c", "spi"]) {
                Ok(s) => spi = s == "spi",
                Err(e) => r.bad(p, e),
            },
            "i2c_bus" => {
                i2c_keys.push(p);
                match small(p) {
                    Ok(n) => i2c_bus = n,
                    Err(e) => r.bad(p, e),
                }
            }
            "address" => {
                i2c_keys.push(p);
                match as_int(&p.value) {
                    Ok(a @ (0x76 | 0x77)) => addr = a as u8,
                    Ok(a) => r.bad(
                        p,
                        (
                            format!(
                                "0x{a:02x} is not a BME280/BMP280 address; the chip answers at 0x76 or 0x77"
                            ),
                            hint("address"),
                        ),
                    ),
                    Err(e) => r.bad(p, e),
                }
            }
            "spi_bus" | "spi_cs" => {
                spi_keys.push(p);
                match small(p) {
                    Ok(n) if p.key == "spi_bus" => spi_bus = n,
                    Ok(n) => cs = n,
                    Err(e) => r.bad(p, e),
                }
            }
            "id" => match as_text(&p.value) {
                Ok(s) if valid_id(s) => id = s.to_string(),
                Ok(s) => r.bad(p, (format!("'{s}' is not a valid id"), hint("id"))),
                Err(e) => r.bad(p, e),
            },
            "oversampling" => match as_int(&p.value) {
                Ok(n @ (1 | 2 | 4 | 8 | 16)) => osrs = (n as u32).trailing_zeros() as u8 + 1,
                Ok(n) => r.bad(
                    p,
                    (
                        format!("{n} is not an oversampling the chip has"),
                        hint("oversampling"),
                    ),
                ),
                Err(e) => r.bad(p, e),
            },
            _ => {}
        }
    }
    let (unused, bus) = if spi {
        (i2c_keys, "spi")
    } else {
        (spi_keys, "i2c")
    };
    for p in unused {
        let other = if spi { "i2c" } else { "spi" };
        r.bad(
            p,
            (
                format!("applies with bus = \"{other}\", but this sensor is on bus = \"{bus}\""),
                Some(format!("remove {}, or set bus = \"{other}\"", p.key)),
            ),
        );
    }
    let wiring = if spi {
        r.need(Need::Spi);
        Wiring::Spi { bus: spi_bus, cs }
    } else {
        r.need(Need::I2c);
        Wiring::I2c { bus: i2c_bus, addr }
    };
    Arc::new(Bme280Params {
        chip,
        wiring,
        id,
        osrs,
    })
}

/// `"a", "b" or "c"`.
fn or_list(of: &[&str]) -> String {
    let quoted: Vec<String> = of.iter().map(|c| format!("\"{c}\"")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The three ids, in the order temperature, humidity, pressure.
fn ids(p: Option<&Bme280Params>) -> [String; 3] {
    let prefix = match p {
        Some(p) if !p.id.is_empty() => format!("{}_", p.id),
        _ => String::new(),
    };
    ["temperature", "humidity", "pressure"].map(|q| format!("bme280:{prefix}{q}"))
}

fn produces(spec: &SourceSpec, _: &crate::config::Settings) -> Produced {
    let p = params_of::<Bme280Params>(&spec.params);
    let [t, h, pr] = ids(p);
    let mut ids = vec![(t, ValueKind::Number)];
    if p.is_none_or(|p| p.chip != Chip::Bmp280) {
        ids.push((h, ValueKind::Number));
    }
    ids.push((pr, ValueKind::Number));
    Produced { ids, open: None }
}

/// The chip's bus, as the driver opens it again after each error.
#[derive(Clone)]
enum Target {
    I2c(Arc<dyn I2cBus>, u8),
    Spi(Arc<dyn SpiDevice>),
}

impl Target {
    fn registers(&self) -> Registers {
        match self {
            Target::I2c(bus, addr) => Registers::I2c {
                bus: bus.clone(),
                addr: *addr,
            },
            Target::Spi(dev) => Registers::Spi(dev.clone()),
        }
    }
}

fn setup(spec: &SourceSpec, s: &mut Setup) -> Result<Box<dyn Source>, Unavailable> {
    let p = params_of::<Bme280Params>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?;
    let hw = s.parts.hardware;
    let humidity_model = p.chip != Chip::Bmp280;
    let target = match p.wiring {
        Wiring::I2c { bus, addr } => {
            let b = hw
                .i2c(bus)
                .map_err(|e| Unavailable::Failed(e.to_string()))?;
            if let Some(m) = b.mock() {
                let device = format!("{}:0x{addr:02x}", b.name());
                let model = I2cRegisters::new(Bme280Model::new(humidity_model), device);
                m.attach(addr, Box::new(model));
            }
            Target::I2c(b, addr)
        }
        Wiring::Spi { bus, cs } => {
            let d = hw
                .spi(bus, cs, SPI_HZ)
                .map_err(|e| Unavailable::Failed(e.to_string()))?;
            if let Some(m) = d.mock() {
                let model = SpiRegisters::new(Bme280Model::new(humidity_model), d.name().into());
                m.attach(Box::new(model));
            }
            Target::Spi(d)
        }
    };
    let [t, h, pr] = ids(Some(p));
    let reg = s.parts.registry;
    let temperature = reg.intern(&t, "celsius", ValueKind::Number);
    // A BMP280 has no humidity id at all (its slot, never fed, repeats the temperature).
    let humidity = if p.chip == Chip::Bmp280 {
        temperature.clone()
    } else {
        reg.intern(&h, "%", ValueKind::Number)
    };
    let info = [
        temperature,
        humidity,
        reg.intern(&pr, "hPa", ValueKind::Number),
    ];
    let (wake_tx, wake_rx) = async_channel::bounded(1);
    // One measurement gives all three: the node samples at the shortest of their
    // intervals, which the adaptive stage moves per id.
    for i in &info {
        i.live.interval_us.store(spec.every, Ordering::Relaxed);
        i.live.set_waker(wake_tx.clone());
    }
    Ok(Box::new(Bme280Source {
        name: spec.name.clone(),
        params: p.clone(),
        target,
        worker: hw.worker(),
        info,
        counters: Arc::new(Counters::new(COUNTERS)),
        wake_tx,
        wake_rx,
    }))
}

/// A set-up bme280 source: where the chip is, the `hw` thread, the three registry
/// entries (temperature, humidity, pressure).
struct Bme280Source {
    name: String,
    params: Bme280Params,
    target: Target,
    worker: Worker,
    info: [Arc<SourceInfo>; 3],
    counters: Arc<Counters>,
    wake_tx: async_channel::Sender<()>,
    wake_rx: async_channel::Receiver<()>,
}

impl Bme280Source {
    /// One measurement on the `hw` thread, opening the chip first when it is not open.
    async fn measure(&self, open: Option<Bme280>) -> (Option<Bme280>, Result<Measured, BusError>) {
        let (target, chip, osrs) = (self.target.clone(), self.params.chip, self.params.osrs);
        let job = move || {
            let d = match open {
                Some(d) => d,
                None => match Bme280::open(target.registers(), chip, osrs) {
                    Ok(d) => d,
                    Err(e) => return (None, Err(e)),
                },
            };
            match d.sample() {
                Ok(m) => (Some(d), Ok(m)),
                // Open afresh next time: the chip may have been reset or swapped.
                Err(e) => (None, Err(e)),
            }
        };
        self.worker.run(job).await.unwrap_or_else(|| {
            (
                None,
                Err(BusError::Device("the driver failed (panicked)".into())),
            )
        })
    }

    /// The shortest interval the adaptive stage asks of the ids the chip has (a BMP280's
    /// humidity id, never fed, would pin it at `every`).
    fn interval(&self, humidity: bool) -> Micros {
        self.info
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 1 || humidity)
            .map(|(_, info)| info.live.interval())
            .min()
            .unwrap_or(0)
    }

    fn emit_one(&self, i: usize, now: Micros, x: f64) -> Item {
        let info = &self.info[i];
        info.live.available.store(true, Ordering::Relaxed);
        let value = Value::Number(x);
        info.live.record(now, value);
        Item::Reading(Reading::new(info.id, now, value))
    }

    async fn run(self, ctx: SourceCtx) {
        let _keep_open = self.wake_tx.clone();
        let mut chip: Option<Bme280> = None;
        let mut fault: Option<String> = None;
        // Whether the chip has humidity: a BMP280 found by `chip = "auto"` has not.
        let mut humid = self.params.chip != Chip::Bmp280;
        let mut backoff = Backoff::new(self.interval(humid));
        let mut retry_in: Micros = 0;
        loop {
            let (open, result) = self.measure(chip.take()).await;
            chip = open;
            let now = now_us();
            match result {
                Ok(m) => {
                    if fault.take().is_some() {
                        log::info!("bme280 source '{}': the sensor answers again", self.name);
                        ctx.health.set_recovered();
                    }
                    backoff.restart(self.interval(humid));
                    humid = m.humidity.is_some();
                    let t = self.emit_one(0, now, m.temperature);
                    ctx.out.send(t).await;
                    if let Some(h) = m.humidity {
                        let h = self.emit_one(1, now, h);
                        ctx.out.send(h).await;
                    }
                    let p = self.emit_one(2, now, m.pressure);
                    ctx.out.send(p).await;
                }
                Err(e) => {
                    self.counters.inc(C_FAILED);
                    let why = format!("unavailable: {e}");
                    if fault.as_deref() != Some(why.as_str()) {
                        log::warn!("bme280 source '{}': {e}; retrying with backoff", self.name);
                        ctx.health.set_degraded(why.clone());
                        fault = Some(why);
                    }
                    for i in &self.info {
                        i.live.available.store(false, Ordering::Relaxed);
                    }
                    retry_in = backoff.next_delay();
                }
            }
            loop {
                let wait = if fault.is_some() {
                    retry_in
                } else {
                    self.interval(humid).max(100_000)
                };
                match ctx.wait(Some(now + wait), &self.wake_rx).await {
                    Woke::Interval => continue,
                    Woke::Due => break,
                    Woke::Shutdown => return,
                }
            }
        }
    }
}

impl Source for Bme280Source {
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

    #[test]
    fn ids_follow_the_id_parameter() {
        assert_eq!(
            ids(None),
            ["bme280:temperature", "bme280:humidity", "bme280:pressure"]
        );
        let p = Bme280Params {
            chip: Chip::Auto,
            wiring: Wiring::I2c { bus: 1, addr: 0x77 },
            id: "attic".into(),
            osrs: 1,
        };
        assert_eq!(ids(Some(&p))[2], "bme280:attic_pressure");
        assert_eq!(or_list(&["i2c", "spi"]), "\"i2c\" or \"spi\"");
        assert_eq!(or_list(&["a", "b", "c"]), "\"a\", \"b\" or \"c\"");
    }
}
