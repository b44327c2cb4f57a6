//! The HC-SR04 on the mock GPIO: a model of the chip, not a canned value. On the
//! trigger's falling edge it schedules the echo pulse the chip would give: high ~0.5 ms
//! later (its eight 40 kHz cycles), for the sound's round trip to the scene's `distance`
//! (metres, for device `gpio-<trig_pin>`, 1.0 when the scene has none). Beyond the chip's
//! range (4 m) it gives the ~38 ms pulse a real one gives when nothing echoes; a device
//! listed `absent` in the scene (unplugged) gives no pulse at all.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::measure::SOUND_M_PER_S;
use crate::edges::gpio::{Edge, PinModel};
use crate::edges::hw::scene::Scene;

/// From the trigger's falling edge to the echo's rising one.
const LATENCY: Duration = Duration::from_micros(500);
/// The farthest obstacle the chip hears.
const RANGE_M: f64 = 4.0;
/// The pulse the chip gives when nothing echoes.
const NOTHING: Duration = Duration::from_millis(38);
/// The distance when the scene names none.
const DEFAULT_M: f64 = 1.0;

/// One modelled HC-SR04 on `trig` and `echo`.
pub(crate) struct Hcsr04Model {
    trig: u8,
    echo: u8,
    device: String,
    scene: Arc<Scene>,
    trig_high: bool,
    /// Edges driven on the echo line, not yet taken by it.
    pending: Vec<Edge>,
    /// The last pulse: (rise, fall).
    pulse: Option<(Duration, Duration)>,
    /// The distance the last trigger saw (`None`: unplugged).
    last_m: Option<f64>,
    pulses: u64,
}

impl Hcsr04Model {
    pub(crate) fn new(trig: u8, echo: u8, scene: Arc<Scene>) -> Hcsr04Model {
        Hcsr04Model {
            trig,
            echo,
            device: format!("gpio-{trig}"),
            scene,
            trig_high: false,
            pending: Vec::new(),
            pulse: None,
            last_m: None,
            pulses: 0,
        }
    }

    /// Answer a trigger pulse that ended at `at`.
    fn triggered(&mut self, at: Duration) {
        let scene = self.scene.current();
        if scene.absent(&self.device) {
            self.last_m = None;
            return;
        }
        let d = scene.value_or(&self.device, "distance", DEFAULT_M);
        self.last_m = Some(d);
        let width = if d.is_finite() && d > 0.0 && d <= RANGE_M {
            Duration::from_secs_f64(2.0 * d / SOUND_M_PER_S)
        } else {
            NOTHING
        };
        let rise = at + LATENCY;
        let fall = rise + width;
        self.pending.push(Edge {
            rising: true,
            at: rise,
        });
        self.pending.push(Edge {
            rising: false,
            at: fall,
        });
        self.pulse = Some((rise, fall));
        self.pulses += 1;
    }
}

impl PinModel for Hcsr04Model {
    fn model(&self) -> &'static str {
        "hcsr04"
    }

    fn uses(&self, pin: u8) -> bool {
        pin == self.trig || pin == self.echo
    }

    fn on_write(&mut self, pin: u8, high: bool, at: Duration) {
        if pin != self.trig {
            return;
        }
        if high {
            self.trig_high = true;
        } else if std::mem::take(&mut self.trig_high) {
            self.triggered(at);
        }
    }

    fn drain_edges(&mut self, pin: u8, out: &mut Vec<Edge>) {
        if pin == self.echo {
            out.append(&mut self.pending);
        }
    }

    fn level(&self, pin: u8, now: Duration) -> Option<bool> {
        (pin == self.echo).then(|| {
            self.pulse
                .is_some_and(|(rise, fall)| rise <= now && now < fall)
        })
    }

    fn state(&self) -> Json {
        json!({
            "device": self.device,
            "trig_pin": self.trig,
            "echo_pin": self.echo,
            "distance_m": self.last_m,
            "echo_us": self.pulse.map(|(r, f)| (f - r).as_micros() as u64),
            "pulses": self.pulses,
            "absent": self.pulses > 0 && self.last_m.is_none(),
        })
    }
}
