//! The `gpio` source: configured pins as boolean readings `gpio:<pin>`.
//!
//! Event-driven: every level change the backend reports (edge interrupts on a Pi,
//! `set_input` or the simulation on the mock, and writes to outputs on either) becomes a
//! reading at once. Besides, every pin is read at start and then every `interval` (the
//! heartbeat path the adaptive stage may move); one timer runs at the smallest interval
//! of the source's pins. Software debounce is the filter stage's job.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::clock::now_us;
use crate::config::settings::PinConfig;
use crate::edges::gpio::{GpioBackend, PinEvent};
use crate::graph::registry::{Registry, SourceInfo};
use crate::graph::{Item, Micros, Reading, Value, ValueKind};
use crate::plugins::SourceCtx;

/// Capacity of the edge-event channel; a full channel drops events (the next sample
/// catches up).
const EVENT_CAPACITY: usize = 64;

struct PinSlot {
    pin: u8,
    info: Arc<SourceInfo>,
}

pub struct GpioSource {
    backend: Arc<dyn GpioBackend>,
    pins: Vec<PinSlot>,
    wake_tx: async_channel::Sender<()>,
    wake_rx: async_channel::Receiver<()>,
}

enum Wake {
    Event(PinEvent),
    EventsClosed,
    Sample,
    Interval,
    Shutdown,
}

impl GpioSource {
    /// Intern `gpio:<pin>` (unit `boolean`, kind Bool) for each pin, inputs and outputs,
    /// and set each one's interval to `every` (0: events only, no periodic sampling).
    pub fn new(
        backend: Arc<dyn GpioBackend>,
        pins: &[PinConfig],
        every: Micros,
        registry: &Registry,
    ) -> GpioSource {
        let (wake_tx, wake_rx) = async_channel::bounded(1);
        let mut slots: Vec<PinSlot> = Vec::with_capacity(pins.len());
        for cfg in pins {
            if slots.iter().any(|s| s.pin == cfg.pin) {
                continue;
            }
            let info = registry.intern(&format!("gpio:{}", cfg.pin), "boolean", ValueKind::Bool);
            info.live.interval_us.store(every.max(0), Ordering::Relaxed);
            info.live.set_waker(wake_tx.clone());
            let available = backend.read(cfg.pin).is_ok();
            info.live.available.store(available, Ordering::Relaxed);
            if !available {
                log::info!(
                    "gpio: pin {} ({}) cannot be read on the {} backend",
                    cfg.pin,
                    cfg.name,
                    backend.name()
                );
            }
            slots.push(PinSlot { pin: cfg.pin, info });
        }
        GpioSource {
            backend,
            pins: slots,
            wake_tx,
            wake_rx,
        }
    }

    /// The smallest positive interval of this source's pins.
    fn interval(&self) -> Option<Micros> {
        self.pins
            .iter()
            .map(|p| p.info.live.interval())
            .filter(|&iv| iv > 0)
            .min()
    }

    pub async fn run(self, ctx: SourceCtx) {
        if self.pins.is_empty() {
            ctx.shutdown.wait().await;
            return;
        }
        let _keep_open = self.wake_tx.clone();
        let (ev_tx, ev_rx) = async_channel::bounded(EVENT_CAPACITY);
        let mut events_open = match self.backend.subscribe(ev_tx) {
            Ok(()) => true,
            Err(e) => {
                log::warn!("gpio: edge events unavailable ({e}); sampling only");
                ctx.health
                    .set_degraded(format!("edge events unavailable ({e}); sampling only"));
                false
            }
        };
        let mut last_sample = now_us();
        self.sample_all(last_sample, &ctx).await;
        loop {
            // A clock stepped back since the last sample must not delay the next by the step.
            last_sample = last_sample.min(now_us());
            let next = self.interval().map(|iv| last_sample.saturating_add(iv));
            let timer = async {
                match next {
                    Some(due) => {
                        let wait = (due - now_us()).max(0) as u64;
                        smol::Timer::after(Duration::from_micros(wait)).await;
                        Wake::Sample
                    }
                    None => std::future::pending().await,
                }
            };
            let events = async {
                if !events_open {
                    return std::future::pending().await;
                }
                match ev_rx.recv().await {
                    Ok(ev) => Wake::Event(ev),
                    Err(_) => Wake::EventsClosed,
                }
            };
            let woken = async {
                let _ = self.wake_rx.recv().await;
                Wake::Interval
            };
            let shutdown = async {
                ctx.shutdown.wait().await;
                Wake::Shutdown
            };
            let wake = smol::future::or(
                shutdown,
                smol::future::or(events, smol::future::or(woken, timer)),
            )
            .await;
            match wake {
                Wake::Shutdown => return,
                Wake::Event(ev) => self.emit_event(ev, &ctx).await,
                Wake::EventsClosed => {
                    log::warn!("gpio: the backend stopped delivering edge events; sampling only");
                    events_open = false;
                }
                Wake::Sample => {
                    last_sample = now_us();
                    self.sample_all(last_sample, &ctx).await;
                }
                Wake::Interval => {} // recompute the timer from the new interval
            }
        }
    }

    async fn emit_event(&self, ev: PinEvent, ctx: &SourceCtx) {
        // The backend reports every pin; only this source's pins count.
        if let Some(p) = self.pins.iter().find(|p| p.pin == ev.pin) {
            self.emit(p, ev.ts, ev.level, ctx).await;
        }
    }

    /// Read every pin now; the readings share one timestamp.
    async fn sample_all(&self, ts: Micros, ctx: &SourceCtx) {
        for p in &self.pins {
            match self.backend.read(p.pin) {
                Ok(level) => self.emit(p, ts, level, ctx).await,
                Err(e) => log::debug!("gpio: reading pin {} failed: {e}", p.pin),
            }
        }
    }

    async fn emit(&self, p: &PinSlot, ts: Micros, level: bool, ctx: &SourceCtx) {
        let value = Value::Bool(level);
        log::trace!("gpio: {} = {value}", p.info.name);
        p.info.live.record(ts, value);
        ctx.out
            .send(Item::Reading(Reading::new(p.info.id, ts, value)))
            .await;
    }
}

// ---------------------------------------------------------------------------------------
// The kind: parameters, what it produces, setup.

use toml::Value as Toml;

use crate::config::SourceSpec;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::plugins::params::{Reader as ParamReader, describe};
use crate::plugins::{Flow, Kind, Make, Param, ParamsBox, Produced, Unavailable, params_of};
use crate::plugins::{Setup, Task};

/// The pins (BCM numbers) a `gpio` source reads; empty: every configured pin.
#[derive(Clone, Debug, PartialEq)]
pub struct GpioParams {
    pub pins: Vec<u8>,
}

pub const KIND: Kind = Kind {
    role: crate::plugins::Role::Source,
    name: "gpio",
    version: env!("CARGO_PKG_VERSION"),
    doc: "the pins of [gpio] in smollama.toml as boolean readings gpio:<pin>",
    params: &[
        Param::new(Spec {
            default: "\"10s\"",
            doc: "how often every pin is read besides its edge events; at least 100ms",
            ..Spec::new("every", Want::Duration)
        }),
        Param::new(Spec {
            doc: "BCM numbers of configured pins to read (default: every configured pin)",
            ..Spec::new("pins", Want::TextList)
        })
        .taking("a list of pin numbers such as [17, 27]"),
    ],
    make: Make::Source {
        ids: "gpio",
        parse,
        produces,
        setup,
    },
};

fn parse(r: &mut ParamReader) -> ParamsBox {
    let mut pins: Vec<u8> = Vec::new();
    if let Some(p) = r.get("pins") {
        let settings = r.settings;
        let configured: Vec<String> = settings
            .gpio
            .pins
            .iter()
            .map(|p| format!("{} ({})", p.pin, p.name))
            .collect();
        let Toml::Array(a) = &p.value else {
            r.bad(
                p,
                (
                    format!(
                        "expected a list of BCM pin numbers such as [17, 27], found {}",
                        describe(&p.value)
                    ),
                    Some("write e.g. pins = [17, 27]".into()),
                ),
            );
            return Arc::new(GpioParams { pins });
        };
        for v in a {
            let pin = match v {
                Toml::Integer(i) => *i,
                Toml::String(s) => {
                    let hint = match settings.gpio.pins.iter().find(|p| &p.name == s) {
                        Some(p) => format!("write its BCM number: {}", p.pin),
                        None => "write BCM numbers, e.g. pins = [17]".into(),
                    };
                    r.bad(
                        p,
                        (
                            format!("expected a pin number such as 17, found {}", describe(v)),
                            Some(hint),
                        ),
                    );
                    continue;
                }
                other => {
                    r.bad(
                        p,
                        (
                            format!(
                                "expected a pin number such as 17, found {}",
                                describe(other)
                            ),
                            None,
                        ),
                    );
                    continue;
                }
            };
            match settings.gpio.pins.iter().find(|c| i64::from(c.pin) == pin) {
                Some(c) if pins.contains(&c.pin) => {
                    r.bad(p, (format!("pin {pin} is listed twice"), None))
                }
                Some(c) => pins.push(c.pin),
                None => r.bad(
                    p,
                    (
                        format!("pin {pin} is not configured in [gpio]"),
                        Some(if configured.is_empty() {
                            "no pins are configured; add [[gpio.pins]] with pin and name to smollama.toml".into()
                        } else {
                            format!(
                                "configured pins: {}; add [[gpio.pins]] to smollama.toml for others",
                                configured.join(", ")
                            )
                        }),
                    ),
                ),
            }
        }
    }
    Arc::new(GpioParams { pins })
}

/// The configured pins a source with these parameters reads.
fn chosen<'a>(p: &ParamsBox, settings: &'a crate::config::Settings) -> Vec<&'a PinConfig> {
    let pins = params_of::<GpioParams>(p).map_or(&[][..], |p| p.pins.as_slice());
    settings
        .gpio
        .pins
        .iter()
        .filter(|c| pins.is_empty() || pins.contains(&c.pin))
        .collect()
}

fn produces(spec: &SourceSpec, settings: &crate::config::Settings) -> Produced {
    let p = &spec.params;
    Produced {
        ids: chosen(p, settings)
            .iter()
            .map(|c| (format!("gpio:{}", c.pin), ValueKind::Bool))
            .collect(),
        // Pins may be configured later: a gpio source counts as boolean even with none.
        open: Some(Flow::Bool),
    }
}

/// Unavailable when it has pins and the backend can read none of them (then it would
/// only ever report failures); a source with some readable pins runs with those.
fn setup(spec: &SourceSpec, s: &mut Setup) -> Result<Box<dyn crate::plugins::Source>, Unavailable> {
    let settings = s.parts.settings;
    let pins: Vec<PinConfig> = chosen(&spec.params, settings)
        .into_iter()
        .cloned()
        .collect();
    let backend = s.parts.gpio;
    if !pins.is_empty() && pins.iter().all(|p| backend.read(p.pin).is_err()) {
        return Err(Unavailable::Failed(format!(
            "the {} backend can read none of its pins ({})",
            backend.name(),
            pins.iter()
                .map(|p| p.pin.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(Box::new(GpioSource::new(
        backend.clone(),
        &pins,
        spec.every,
        s.parts.registry,
    )))
}

impl crate::plugins::Source for GpioSource {
    fn start(self: Box<Self>, ctx: SourceCtx) -> Task {
        Box::pin((*self).run(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edges::gpio::mock::MockGpio;
    use crate::graph::edge::{Inbox, Output};

    fn within<T>(
        secs: u64,
        f: impl std::future::Future<Output = T>,
    ) -> impl std::future::Future<Output = T> {
        smol::future::or(f, async move {
            smol::Timer::after(Duration::from_secs(secs)).await;
            panic!("timed out after {secs}s");
        })
    }

    struct Rig {
        backend: Arc<MockGpio>,
        reg: Arc<Registry>,
        rx: async_channel::Receiver<Item>,
        trigger: crate::shutdown::Trigger,
        ctx: Option<SourceCtx>,
    }

    fn rig() -> Rig {
        let settings = crate::edges::gpio::mock::tests::settings();
        let backend = Arc::new(MockGpio::new(&settings));
        let reg = Arc::new(Registry::new());
        let inbox = Inbox::new("x", 16, true);
        let out = Output::new(vec![inbox.sender("pins", &reg)]);
        let (trigger, shutdown) = crate::shutdown::channel();
        Rig {
            backend,
            reg: reg.clone(),
            rx: inbox.into_receiver(),
            trigger,
            ctx: Some(SourceCtx {
                out,
                registry: reg,
                shutdown,
                health: Default::default(),
            }),
        }
    }

    async fn next_reading(rx: &async_channel::Receiver<Item>) -> Reading {
        match rx.recv().await {
            Ok(Item::Reading(r)) => r,
            other => panic!("expected a reading, got {other:?}"),
        }
    }

    #[test]
    fn emits_levels_at_start_and_on_every_edge() {
        let mut rig = rig();
        let pins = crate::edges::gpio::mock::tests::settings().pins;
        // Events only (no periodic sampling): what arrives after start comes from edges.
        let src = GpioSource::new(rig.backend.clone(), &pins[..3], 0, &rig.reg);
        let name = |r: &Reading| rig.reg.get(r.source).unwrap().name.to_string();
        let ex = smol::LocalExecutor::new();
        smol::block_on(ex.run(within(20, async {
            let task = ex.spawn(src.run(rig.ctx.take().unwrap()));
            let mut start = Vec::new();
            for _ in 0..3 {
                let r = next_reading(&rig.rx).await;
                start.push((name(&r), r.value));
            }
            start.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(
                start,
                vec![
                    ("gpio:17".to_string(), Value::Bool(false)),
                    ("gpio:22".to_string(), Value::Bool(true)),
                    ("gpio:27".to_string(), Value::Bool(true)),
                ]
            );
            rig.backend.set_input(17, true).unwrap();
            let r = next_reading(&rig.rx).await;
            assert_eq!((name(&r).as_str(), r.value), ("gpio:17", Value::Bool(true)));
            rig.backend.set_input(27, false).unwrap();
            let r = next_reading(&rig.rx).await;
            assert_eq!(
                (name(&r).as_str(), r.value),
                ("gpio:27", Value::Bool(false))
            );
            assert!(rig.rx.is_empty());
            rig.trigger.fire();
            task.await;
            // The task dropped its output: the edge is closed.
            assert!(rig.rx.recv().await.is_err());
        })));
        let info = rig.reg.lookup("gpio:17").unwrap();
        assert_eq!(&*info.unit, "boolean");
        assert_eq!(info.kind, ValueKind::Bool);
        assert!(info.live.available.load(Ordering::Relaxed));
        assert_eq!(info.live.last().map(|l| l.1), Some(Value::Bool(true)));
        assert_eq!(info.live.count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn samples_every_interval_and_ignores_other_pins() {
        let mut rig = rig();
        let pins = crate::edges::gpio::mock::tests::settings().pins;
        // Only pin 22 (an output): edges of input 17 are not this source's.
        let src = GpioSource::new(rig.backend.clone(), &pins[2..3], 3_600_000_000, &rig.reg);
        let ex = smol::LocalExecutor::new();
        smol::block_on(ex.run(within(20, async {
            let task = ex.spawn(src.run(rig.ctx.take().unwrap()));
            assert_eq!(next_reading(&rig.rx).await.value, Value::Bool(true));
            rig.backend.set_input(17, true).unwrap();
            rig.backend.write(22, false).unwrap();
            // The heartbeat interval shrinks: the source wakes and samples soon.
            rig.reg.lookup("gpio:22").unwrap().live.set_interval(20_000);
            let r = next_reading(&rig.rx).await;
            assert_eq!(rig.reg.get(r.source).unwrap().name.as_ref(), "gpio:22");
            assert_eq!(r.value, Value::Bool(false));
            rig.trigger.fire();
            task.await;
        })));
        assert!(rig.reg.lookup("gpio:17").is_none());
    }
}
