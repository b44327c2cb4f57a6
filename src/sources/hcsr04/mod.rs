//! The `hcsr04` source: an HC-SR04 ultrasonic distance sensor on two GPIO lines the node
//! owns (`trig_pin`, `echo_pin`), as `hcsr04:<id>` in centimetres (2 decimals), every
//! `every` (adaptive like any source).
//!
//! Each sample is one measurement on the `hw` thread (`measure.rs`): the event loop only
//! awaits its result. An echo longer than the round trip to `max_distance` is out of
//! range: the original's reading is then `null`, which a reading here cannot carry, so
//! no reading is emitted for that sample and `out_of_range` counts it (status).
//!
//! A sensor that does not answer at all (no echo: unplugged, no 5 V, wrong pins) makes
//! the source degraded ("unavailable: no echo ...") and it retries with capped
//! exponential backoff (from the interval, at least 1 s, up to 60 s); the first answer
//! makes it running again. On the mock GPIO the chip is a model (`model.rs`) reading the
//! scene's `distance`.

mod measure;
pub(crate) mod model;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::clock::now_us;
use crate::config::SourceSpec;
use crate::config::expect::Want;
use crate::config::settings::Pull;
use crate::config::spec::Spec;
use crate::graph::counters::Counters;
use crate::graph::registry::SourceInfo;
use crate::graph::{Item, Micros, Reading, Value, ValueKind};
use crate::plugins::params::{Reader, as_num, as_text, device_pin};
use crate::plugins::{Backoff, Setup, Source, SourceCtx, Task, Woke};
use crate::plugins::{Kind, Make, Param, ParamsBox, Produced, Role, Unavailable, params_of};
use measure::{Echo, Lines};

/// The counters shown in status.
const COUNTERS: &[&str] = &["out_of_range", "failed"];
const C_OUT_OF_RANGE: usize = 0;
const C_FAILED: usize = 1;

/// The shortest time between two triggers (the datasheet's measurement cycle).
const MIN_CYCLE: Micros = 60_000;

/// An hcsr04 source's parameters, checked.
#[derive(Clone, Debug)]
struct Hcsr04Params {
    trig: u8,
    echo: u8,
    /// Metres.
    max_distance: f64,
    /// The local id: `hcsr04:<id>`; the node's name unless given.
    id: String,
}

pub const KIND: Kind = Kind {
    role: Role::Source,
    name: "hcsr04",
    version: env!("CARGO_PKG_VERSION"),
    doc: "an HC-SR04 ultrasonic distance sensor on two GPIO pins, in cm (no reading when out of range)",
    params: &[
        Param::new(Spec {
            default: "\"1s\"",
            doc: "how often it measures (the adaptive stage may move it)",
            ..Spec::new("every", Want::Duration)
        }),
        Param::new(Spec {
            default: "23",
            range: Some((0.0, 27.0)),
            doc: "the BCM pin wired to the sensor's Trig",
            hint: "a BCM number from 0 to 27, not one of [gpio] pins",
            ..Spec::new("trig_pin", Want::WholeNumber)
        })
        .taking("a BCM pin number (0 to 27)"),
        Param::new(Spec {
            default: "24",
            range: Some((0.0, 27.0)),
            doc: "the BCM pin wired to the sensor's Echo, through a divider to 3.3 V (1 kΩ/2 kΩ)",
            hint: "a BCM number from 0 to 27, not one of [gpio] pins",
            ..Spec::new("echo_pin", Want::WholeNumber)
        })
        .taking("a BCM pin number (0 to 27)"),
        Param::new(Spec {
            default: "4.0",
            range: Some((0.1, 10.0)),
            doc: "metres; a farther echo is out of range (no reading, counted as out_of_range)",
            hint: "the HC-SR04 hears up to about 4 m; e.g. max_distance = 2.0",
            ..Spec::new("max_distance", Want::Number)
        }),
        Param::new(Spec {
            doc: "the source id after `hcsr04:` (default: the node's name)",
            hint: "letters, digits, _ and -, at most 64, e.g. id = \"distance\"",
            ..Spec::new("id", Want::Text)
        }),
    ],
    make: Make::Source {
        ids: "hcsr04",
        parse,
        produces,
        setup,
    },
};

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse(r: &mut Reader) -> ParamsBox {
    let mut p = Hcsr04Params {
        trig: 23,
        echo: 24,
        max_distance: 4.0,
        id: r.name.to_string(),
    };
    let hint = |key: &str| Some(KIND.param(key).map_or("", |d| d.spec.hint).to_string());
    for raw in r.params() {
        match raw.key.as_str() {
            "trig_pin" | "echo_pin" => match device_pin(&raw.value, r.settings) {
                Ok(pin) if raw.key == "trig_pin" => p.trig = pin,
                Ok(pin) => p.echo = pin,
                Err(e) => r.bad(raw, e),
            },
            "max_distance" => match as_num(&raw.value) {
                Ok(m) if (0.1..=10.0).contains(&m) => p.max_distance = m,
                Ok(m) => r.bad(
                    raw,
                    (
                        format!("{m} m is out of range (0.1 to 10)"),
                        hint("max_distance"),
                    ),
                ),
                Err(e) => r.bad(raw, e),
            },
            "id" => match as_text(&raw.value) {
                Ok(s) if valid_id(s) => p.id = s.to_string(),
                Ok(s) => r.bad(raw, (format!("'{s}' is not a valid id"), hint("id"))),
                Err(e) => r.bad(raw, e),
            },
            _ => {}
        }
    }
    if p.trig == p.echo
        && let Some(raw) = r.get("echo_pin").or_else(|| r.get("trig_pin"))
    {
        r.bad(
            raw,
            (
                format!("trig_pin and echo_pin are both {}", p.trig),
                Some("the sensor needs two pins, e.g. trig_pin = 23, echo_pin = 24".into()),
            ),
        );
    }
    Arc::new(p)
}

/// The id the source emits: `hcsr04:<id>`, the node's name unless `id` is given.
fn source_id(spec: &SourceSpec) -> String {
    let id = params_of::<Hcsr04Params>(&spec.params).map_or(spec.name.as_str(), |p| &p.id);
    format!("hcsr04:{id}")
}

fn produces(spec: &SourceSpec, _: &crate::config::Settings) -> Produced {
    Produced {
        ids: vec![(source_id(spec), ValueKind::Number)],
        open: None,
    }
}

fn setup(spec: &SourceSpec, s: &mut Setup) -> Result<Box<dyn Source>, Unavailable> {
    let p = params_of::<Hcsr04Params>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?;
    let gpio = s.parts.gpio;
    let owner = format!("hcsr04 '{}'", spec.name);
    let failed = |e: crate::edges::gpio::GpioError| Unavailable::Failed(e.to_string());
    let trig = gpio.claim_output(p.trig, &owner, false).map_err(failed)?;
    let echo = gpio
        .claim_input(p.echo, &owner, Pull::Down)
        .map_err(failed)?;
    if let Some(mock) = gpio.mock() {
        mock.attach(Box::new(model::Hcsr04Model::new(
            p.trig,
            p.echo,
            s.parts.hardware.scene().clone(),
        )));
    }
    let info = s
        .parts
        .registry
        .intern(&source_id(spec), "cm", ValueKind::Number);
    info.live.interval_us.store(spec.every, Ordering::Relaxed);
    let (wake_tx, wake_rx) = async_channel::bounded(1);
    info.live.set_waker(wake_tx.clone());
    Ok(Box::new(Hcsr04Source {
        name: spec.name.clone(),
        info,
        params: p.clone(),
        lines: Arc::new(Mutex::new(Lines { trig, echo })),
        worker: s.parts.hardware.worker(),
        counters: Arc::new(Counters::new(COUNTERS)),
        wake_tx,
        wake_rx,
    }))
}

/// A set-up sensor: its lines (taken to the `hw` thread for each measurement), its
/// registry entry and counters.
struct Hcsr04Source {
    name: String,
    info: Arc<SourceInfo>,
    params: Hcsr04Params,
    lines: Arc<Mutex<Lines>>,
    worker: crate::edges::hw::Worker,
    counters: Arc<Counters>,
    wake_tx: async_channel::Sender<()>,
    wake_rx: async_channel::Receiver<()>,
}

impl Hcsr04Source {
    async fn run(self, ctx: SourceCtx) {
        let _keep_open = self.wake_tx.clone();
        // `Some(wait)` while the sensor is failing: the next retry's delay.
        let mut failing: Option<Micros> = None;
        let mut backoff = Backoff::new(self.info.live.interval());
        loop {
            let lines = self.lines.clone();
            let max = self.params.max_distance;
            let result = self
                .worker
                .run(move || {
                    let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
                    measure::measure(&mut lines, max)
                })
                .await
                .unwrap_or_else(|| Err("the measurement failed (hw thread)".into()));
            let now = now_us();
            match result {
                Ok(echo) => {
                    if failing.take().is_some() {
                        log::info!("hcsr04 source '{}': the sensor answers again", self.name);
                        ctx.health.set_recovered();
                    }
                    self.info.live.available.store(true, Ordering::Relaxed);
                    match echo {
                        Echo::Metres(m) => {
                            let value = Value::Number(measure::centimetres(m));
                            self.info.live.record(now, value);
                            ctx.out
                                .send(Item::Reading(Reading::new(self.info.id, now, value)))
                                .await;
                        }
                        Echo::OutOfRange => self.counters.inc(C_OUT_OF_RANGE),
                    }
                }
                Err(why) => {
                    self.counters.inc(C_FAILED);
                    // The first failure: say so once, and back off from the interval.
                    if failing.is_none() {
                        backoff.restart(self.info.live.interval());
                        let why = format!(
                            "unavailable: {why} (trig GPIO {}, echo GPIO {}: check 5 V, ground and the wiring)",
                            self.params.trig, self.params.echo
                        );
                        log::warn!("hcsr04 source '{}': {why}; retrying", self.name);
                        ctx.health.set_degraded(why);
                    }
                    failing = Some(backoff.next_delay());
                    self.info.live.available.store(false, Ordering::Relaxed);
                }
            }
            // Sleep one interval (or the backoff); an interval change restarts it.
            loop {
                // The datasheet asks for 60 ms between triggers (an echo of the last
                // one could still be on its way).
                let wait = failing.unwrap_or_else(|| self.info.live.interval().max(MIN_CYCLE));
                match ctx.wait(Some(now_us() + wait), &self.wake_rx).await {
                    Woke::Interval => continue,
                    Woke::Due => break,
                    Woke::Shutdown => return,
                }
            }
        }
    }
}

impl Source for Hcsr04Source {
    fn start(self: Box<Self>, ctx: SourceCtx) -> Task {
        Box::pin(self.run(ctx))
    }

    fn counters(&self) -> Option<Arc<Counters>> {
        Some(self.counters.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::measure::{Echo, Lines, centimetres, measure};
    use super::model::Hcsr04Model;
    use crate::config::settings::Pull;
    use crate::edges::gpio::GpioBackend;
    use crate::edges::gpio::mock::MockGpio;
    use crate::edges::hw::scene::Scene;
    use std::sync::Arc;

    /// A mock GPIO with a modelled HC-SR04 on pins 23/24 in a scene of `text`.
    fn sensor(tag: &str, scene: &str) -> (Lines, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("smollama-hcsr04-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("scene.toml");
        std::fs::write(&path, scene).unwrap();
        let gpio = MockGpio::new(&crate::config::Settings::defaults().gpio);
        gpio.attach(Box::new(Hcsr04Model::new(
            23,
            24,
            Arc::new(Scene::new(&path)),
        )));
        let lines = Lines {
            trig: gpio.claim_output(23, "hcsr04 't'", false).unwrap(),
            echo: gpio.claim_input(24, "hcsr04 't'", Pull::Down).unwrap(),
        };
        (lines, dir)
    }

    #[test]
    fn distance_from_the_modelled_echo_pulse_within_a_centimetre() {
        let (mut lines, dir) = sensor("near", "[\"gpio-23\"]\ndistance = 0.42\n");
        for _ in 0..3 {
            let Ok(Echo::Metres(m)) = measure(&mut lines, 4.0) else {
                panic!("no distance");
            };
            assert!((centimetres(m) - 42.0).abs() <= 1.0, "{m} m");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn beyond_max_distance_is_out_of_range() {
        // 2 m with max_distance 1.0: the pulse is measured and is too long.
        let (mut lines, dir) = sensor("far", "distance = 2.0\n");
        assert_eq!(measure(&mut lines, 1.0), Ok(Echo::OutOfRange));
        // Within range of a farther max it is a distance again.
        assert!(matches!(measure(&mut lines, 4.0), Ok(Echo::Metres(m)) if (m - 2.0).abs() < 0.01));
        let _ = std::fs::remove_dir_all(dir);
        // Beyond the chip's 4 m: the 38 ms "nothing echoed" pulse, longer than the wait.
        let (mut lines, dir) = sensor("void", "distance = 6.0\n");
        assert_eq!(measure(&mut lines, 4.0), Ok(Echo::OutOfRange));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn no_echo_is_an_error() {
        let (mut lines, dir) = sensor("gone", "absent = [\"gpio-23\"]\n");
        let e = measure(&mut lines, 4.0).unwrap_err();
        assert!(e.contains("no echo"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn centimetres_have_two_decimals() {
        assert_eq!(centimetres(0.423456), 42.35);
        assert_eq!(centimetres(1.0), 100.0);
    }
}
