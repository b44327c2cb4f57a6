//! The observation loop's timing, end to end over a simulated clock: GPIO pin levels
//! from the mock backend (it stands in for a Pi's pins) are sampled as the GPIO source
//! does, go through the real adaptive stage, whose volatile/calm events drive the real
//! `ObserveSchedule` that the `llm` thread follows. The adaptive stage's interval
//! feedback paces the sampling as the runner applies it. Runs are counted over six
//! simulated hours, so wall time plays no part.

use std::sync::Arc;

use smollama::config::settings::{GpioBackendChoice, GpioSettings, PinConfig, PinMode, Pull};
use smollama::edges::gpio::GpioBackend;
use smollama::edges::gpio::mock::MockGpio;
use smollama::graph::registry::Registry;
use smollama::graph::stage::{Out, Stage};
use smollama::graph::{Item, Micros, Reading, Value, ValueKind};
use smollama::memory::schedule::ObserveSchedule;
use smollama::stages::adaptive::{Adaptive, AdaptiveParams};

const S: Micros = 1_000_000;
const MIN: Micros = 60 * S;
const PIN: u8 = 17;

/// Whether the door is flapping at simulated time `t` (it then toggles every 20 s).
type World = dyn Fn(Micros) -> bool;
const FLAP_EVERY: Micros = 20 * S;

/// Simulates `hours` hours; returns the times of the observation runs. The source
/// behaves as the GPIO source does: a reading on every edge (interrupts on a Pi, the
/// mock's change events here) and one per sampling interval.
fn simulate(hours: i64, world: &World) -> Vec<Micros> {
    let gpio = MockGpio::new(&GpioSettings {
        backend: GpioBackendChoice::Mock,
        pins: vec![PinConfig {
            pin: PIN,
            name: "door".into(),
            mode: PinMode::Input,
            pull: Pull::Down,
            initial: false,
        }],
        simulate: false,
    });
    let (edge_tx, edges) = async_channel::bounded(16);
    gpio.subscribe(edge_tx).unwrap();
    let registry = Arc::new(Registry::new());
    let door = registry.intern("gpio:door", "", ValueKind::Bool);
    door.live.set_interval(10 * S);
    // The default pipeline's pace stage.
    let mut pace = Adaptive::new(AdaptiveParams::default(), registry.clone());
    let mut schedule = ObserveSchedule::new(5 * MIN, 60 * MIN, 0);
    let end = hours * 60 * MIN;
    let (mut next_sample, mut next_flap) = (door.live.interval(), FLAP_EVERY);
    let (mut runs, mut now) = (Vec::new(), 0);
    let mut out = Out::default();
    loop {
        let t = next_sample.min(next_flap);
        // Runs that fall due before this event, in order; a due time that a change
        // pulled into the past means "now", as the worker's timer does.
        while schedule.next_due() <= t.min(end) {
            let at = schedule.next_due().max(now);
            schedule.ran(at);
            runs.push(at);
        }
        now = t;
        if t >= end {
            return runs;
        }
        let mut readings = Vec::new();
        if t == next_flap {
            next_flap += FLAP_EVERY;
            if world(t) {
                let level = gpio.read(PIN).unwrap();
                gpio.set_input(PIN, !level).unwrap();
                while let Ok(e) = edges.try_recv() {
                    readings.push(e.level);
                }
            }
        }
        if t == next_sample {
            next_sample += door.live.interval();
            readings.push(gpio.read(PIN).unwrap());
        }
        for level in readings {
            out.clear();
            pace.on_item(
                Item::Reading(Reading::new(door.id, t, Value::Bool(level))),
                &mut out,
            );
            for item in &out.items {
                if let Item::Change(c) = item {
                    schedule.on_change(c, t);
                }
            }
            for f in &out.feedback {
                registry
                    .get(f.source)
                    .unwrap()
                    .live
                    .set_interval(f.interval);
            }
        }
    }
}

fn gaps(runs: &[Micros]) -> Vec<Micros> {
    runs.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn a_volatile_pin_is_looked_at_sooner_than_a_calm_one() {
    let calm = simulate(6, &|_| false);
    let volatile = simulate(6, &|_| true);
    // Calm: the first look soon after start, then hourly.
    assert_eq!(calm.len(), 6, "{calm:?}");
    assert!(gaps(&calm[1..]).iter().all(|&g| g == 60 * MIN), "{calm:?}");
    // Volatile: every min_interval, about twelve times as often.
    assert!(volatile.len() >= 70, "{} runs", volatile.len());
    assert!(gaps(&volatile).iter().all(|&g| g == 5 * MIN));
}

#[test]
fn a_burst_pulls_the_next_look_earlier_then_the_schedule_relaxes() {
    // Calm, then the door flaps from 2:00 to 2:30, then calm again.
    let burst = |t: Micros| (120 * MIN..150 * MIN).contains(&t);
    let runs = simulate(6, &burst);
    let during: Vec<&Micros> = runs
        .iter()
        .filter(|&&r| (120 * MIN..160 * MIN).contains(&r))
        .collect();
    assert!(during.len() >= 5, "looked often during the burst: {runs:?}");
    // The door started flapping at 2:00 with the next calm look due at 3:05; the look
    // came within two minutes (the stage needs a few edges to be sure).
    assert!(
        runs.iter().any(|&r| (120 * MIN..122 * MIN).contains(&r)),
        "{runs:?}"
    );
    // Never closer than min, never further than max.
    assert!(
        gaps(&runs)
            .iter()
            .all(|&g| (5 * MIN..=60 * MIN).contains(&g)),
        "{runs:?}"
    );
    // After the burst it relaxes to hourly again.
    let after: Vec<Micros> = runs.iter().copied().filter(|&r| r > 200 * MIN).collect();
    assert!(gaps(&after).iter().all(|&g| g == 60 * MIN), "{runs:?}");
    assert!(runs.len() < simulate(6, &|_| true).len());
}
