//! The LED digits on the mock GPIO: models that watch the display's lines and decode
//! what a person would see, shown in status (`hardware.pin_models[].state`).
//!
//! - `StaticModel` (s5161as): the segments lit now (with a common pin, only while it
//!   enables the digit).
//! - `MuxModel` (sh5461as, common anode or cathode; persistence of vision): per digit, every segment lit at any
//!   moment while that digit was selected (so a multiplexer that changes segments with
//!   a digit still on shows the ghost), kept as seen for 100 ms after the digit was
//!   last selected; a digit not refreshed for longer is dark, as the eye sees it.

use std::time::Duration;

use serde_json::{Value as Json, json};

use super::MAX_DIGITS;
use super::glyphs::text_of;
use crate::edges::gpio::PinModel;
use crate::edges::gpio::mock::MockGpio;

/// How long the eye keeps seeing a digit after it was last lit.
const PERSISTENCE: Duration = Duration::from_millis(100);

/// Pin levels by BCM number.
type Levels = [bool; 28];

fn mask_of(levels: &Levels, segments: &[u8; 8], lit_when_high: bool) -> u8 {
    segments
        .iter()
        .enumerate()
        .filter(|(_, p)| levels[**p as usize] == lit_when_high)
        .fold(0, |m, (bit, _)| m | 1 << bit)
}

/// A single digit driven directly: common cathode (segments active-high, the common
/// low while enabled, as the original drives it) or common anode (the other way).
pub(crate) struct StaticModel {
    name: String,
    anode: bool,
    segments: [u8; 8],
    common: Option<u8>,
    levels: Levels,
}

impl StaticModel {
    /// Segments start dark and the common enabled, as the display's setup claims them.
    pub(crate) fn new(
        name: &str,
        segments: [u8; 8],
        common: Option<u8>,
        anode: bool,
    ) -> StaticModel {
        let mut levels = [false; 28];
        for p in segments.iter().chain(common.as_ref()) {
            levels[*p as usize] = anode;
        }
        StaticModel {
            name: name.to_string(),
            anode,
            segments,
            common,
            levels,
        }
    }

    /// The segments lit now.
    pub(crate) fn lit(&self) -> u8 {
        if self
            .common
            .is_some_and(|c| self.levels[c as usize] != self.anode)
        {
            return 0;
        }
        mask_of(&self.levels, &self.segments, !self.anode)
    }
}

impl PinModel for StaticModel {
    fn model(&self) -> &'static str {
        "s5161as"
    }

    fn uses(&self, pin: u8) -> bool {
        self.segments.contains(&pin) || self.common == Some(pin)
    }

    fn on_write(&mut self, pin: u8, high: bool, _at: Duration) {
        self.levels[pin as usize] = high;
    }

    fn state(&self) -> Json {
        json!({ "name": self.name, "text": text_of(&[self.lit()]), "mask": self.lit() })
    }
}

/// Four digits multiplexed: common anode (segments active-low, digits active-high, as
/// the original drives them) or common cathode (both the other way).
pub(crate) struct MuxModel {
    name: String,
    cathode: bool,
    digits: [u8; MAX_DIGITS],
    segments: [u8; 8],
    levels: Levels,
    /// Per digit: selected now, and the segments lit since it was.
    selected: [bool; MAX_DIGITS],
    lit_since: [u8; MAX_DIGITS],
    /// Per digit: what it showed the last time it was selected, and when that ended.
    seen: [(u8, Duration); MAX_DIGITS],
    /// Per digit: how many times it was selected.
    refreshes: [u64; MAX_DIGITS],
}

impl MuxModel {
    /// Segments start dark and digits off, as the display's setup claims them.
    pub(crate) fn new(
        name: &str,
        digits: [u8; MAX_DIGITS],
        segments: [u8; 8],
        cathode: bool,
    ) -> MuxModel {
        let mut levels = [false; 28];
        for s in segments {
            levels[s as usize] = !cathode;
        }
        for d in digits {
            levels[d as usize] = cathode;
        }
        MuxModel {
            name: name.to_string(),
            cathode,
            digits,
            segments,
            levels,
            selected: [false; MAX_DIGITS],
            lit_since: [0; MAX_DIGITS],
            seen: [(0, Duration::ZERO); MAX_DIGITS],
            refreshes: [0; MAX_DIGITS],
        }
    }

    /// What each digit shows to the eye at `now`, leftmost first.
    fn seen(&self, now: Duration) -> [u8; MAX_DIGITS] {
        let mut out = [0u8; MAX_DIGITS];
        for (i, m) in out.iter_mut().enumerate() {
            let (mask, at) = self.seen[i];
            *m = if self.selected[i] {
                self.lit_since[i]
            } else if self.refreshes[i] > 0 && now.saturating_sub(at) <= PERSISTENCE {
                mask
            } else {
                0
            };
        }
        out
    }
}

impl PinModel for MuxModel {
    fn model(&self) -> &'static str {
        "sh5461as"
    }

    fn uses(&self, pin: u8) -> bool {
        self.segments.contains(&pin) || self.digits.contains(&pin)
    }

    fn on_write(&mut self, pin: u8, high: bool, at: Duration) {
        self.levels[pin as usize] = high;
        let lit = mask_of(&self.levels, &self.segments, self.cathode);
        for i in 0..MAX_DIGITS {
            let on = self.levels[self.digits[i] as usize] != self.cathode;
            match (self.selected[i], on) {
                (false, true) => {
                    self.selected[i] = true;
                    self.lit_since[i] = lit;
                }
                (true, true) => self.lit_since[i] |= lit,
                (true, false) => {
                    self.selected[i] = false;
                    self.seen[i] = (self.lit_since[i], at);
                    self.refreshes[i] += 1;
                }
                (false, false) => {}
            }
        }
    }

    fn state(&self) -> Json {
        let seen = self.seen(MockGpio::now());
        json!({
            "name": self.name,
            "text": text_of(&seen),
            "masks": seen,
            "refreshes": self.refreshes,
        })
    }
}
