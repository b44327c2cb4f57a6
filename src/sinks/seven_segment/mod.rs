//! 7-segment LED displays on the node's own GPIO pins: `s5161as` (one digit, segments
//! driven directly) and `sh5461as` (four digits multiplexed from a thread of its own).
//! Each is a sink and an attached device: the agent's `display_digit` / `display_value`
//! tools (`agent/tools/seven_segment.rs`) write text, and with a `template` the sink
//! shows a live pipeline value (a tool write holds the display for `hold`, default 60 s;
//! then the template's latest rendering shows again at once). Without a template only the tools write it; the
//! sink still needs `from`, like every sink.
//!
//! `glyphs.rs` holds the characters both show; `model.rs` the LED digits on the mock
//! GPIO, which decode what a person would see (status `hardware.pin_models`).

pub mod glyphs;
pub(crate) mod model;
mod params;
pub mod s5161as;
pub mod sh5461as;
pub(crate) mod sink;

use std::sync::Mutex;

use serde_json::{Value as Json, json};

use crate::clock::now_us;
use crate::edges::hw::Device;
use crate::graph::Micros;

/// The most digits a display here has.
pub const MAX_DIGITS: usize = 4;

/// The lines behind a display: they show the masks they are given until told otherwise.
pub(crate) trait Segments: Send {
    /// Show `masks` (leftmost digit first, as many as the display has).
    fn put(&mut self, masks: &[u8]);
    /// Go blank for good (the node stops): lines off, a multiplexer's thread ended.
    fn stop(&mut self);
}

/// One attached display: what it shows and who may change it. Thread-safe: the sink on
/// the event loop, a tool on the `llm` thread and status on `http-work` share it.
pub struct Display {
    kind: &'static str,
    name: String,
    width: usize,
    hold: Micros,
    inner: Mutex<Inner>,
    /// Told of each tool write, so the sink knows a hold began.
    written: (async_channel::Sender<()>, async_channel::Receiver<()>),
}

/// What the display shows (the masks its lines were last given) and whether a write holds it.
struct Inner {
    masks: [u8; MAX_DIGITS],
    /// A tool write holds the display until then (µs since the epoch; 0: not held).
    held_until: Micros,
    out: Box<dyn Segments>,
    stopped: bool,
}

impl Display {
    pub(crate) fn new(
        kind: &'static str,
        name: &str,
        width: usize,
        hold: Micros,
        out: Box<dyn Segments>,
    ) -> Display {
        Display {
            kind,
            name: name.to_string(),
            width: width.min(MAX_DIGITS),
            hold,
            inner: Mutex::new(Inner {
                masks: [0; MAX_DIGITS],
                held_until: 0,
                out,
                stopped: false,
            }),
            written: async_channel::bounded(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many digits it has.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The agent's write: `text` right-aligned, held for `hold` against the template.
    /// `Err(n)`: the text needs `n` positions, more than the display has (nothing shown).
    pub fn write(&self, text: &str) -> Result<(), usize> {
        let mut masks = [0u8; MAX_DIGITS];
        glyphs::layout(text, &mut masks[..self.width])?;
        let mut i = self.lock();
        i.held_until = now_us() + self.hold;
        Self::show(&mut i, masks, self.width);
        let _ = self.written.0.try_send(());
        Ok(())
    }

    /// Where the sink hears of tool writes.
    fn written(&self) -> async_channel::Receiver<()> {
        self.written.1.clone()
    }

    /// The template's rendering, unless a tool write holds the display; whether shown.
    fn follow(&self, text: &str, now: Micros) -> bool {
        let mut masks = [0u8; MAX_DIGITS];
        glyphs::fit(text, &mut masks[..self.width]);
        let mut i = self.lock();
        if now < i.held_until {
            return false;
        }
        Self::show(&mut i, masks, self.width);
        true
    }

    fn show(i: &mut Inner, masks: [u8; MAX_DIGITS], width: usize) {
        if i.stopped || i.masks == masks {
            return;
        }
        i.masks = masks;
        i.out.put(&masks[..width]);
    }

    fn held_until(&self) -> Micros {
        self.lock().held_until
    }

    /// What it shows, leftmost digit first.
    pub fn masks(&self) -> Vec<u8> {
        self.lock().masks[..self.width].to_vec()
    }

    /// Blank for good (the node stops).
    fn stop(&self) {
        let mut i = self.lock();
        i.masks = [0; MAX_DIGITS];
        i.stopped = true;
        i.out.stop();
    }
}

impl Device for Display {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn state(&self) -> Json {
        let i = self.lock();
        json!({
            "text": glyphs::text_of(&i.masks[..self.width]),
            "held": i.held_until > now_us(),
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::glyphs::glyph;
    use super::*;
    use crate::graph::MICROS_PER_SEC;

    /// Lines that remember what they were given.
    struct Recorded(Arc<Mutex<Vec<u8>>>);
    impl Segments for Recorded {
        fn put(&mut self, masks: &[u8]) {
            *self.0.lock().unwrap() = masks.to_vec();
        }
        fn stop(&mut self) {
            self.0.lock().unwrap().clear();
        }
    }

    #[test]
    fn a_tool_write_holds_the_template_off_for_hold() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let d = Display::new(
            "sh5461as",
            "d",
            4,
            60 * MICROS_PER_SEC,
            Box::new(Recorded(got.clone())),
        );
        assert!(d.follow("21.5", now_us()));
        assert_eq!(d.state()["text"], "21.5");
        d.write("Hi").unwrap();
        assert_eq!(*got.lock().unwrap(), [0, 0, glyph('H'), 0]);
        assert!(!d.follow("21.6", now_us()), "held");
        assert_eq!(d.state()["text"], "H");
        assert_eq!(d.state()["held"], true);
        assert!(
            d.follow("21.6", now_us() + 61 * MICROS_PER_SEC),
            "the hold is over"
        );
        assert_eq!(d.state()["text"], "21.6");
        // A rendering too long for the display loses decimals, or shows dashes.
        assert!(d.follow("1013.25", now_us() + 61 * MICROS_PER_SEC));
        assert_eq!(d.state()["text"], "1013.");
        d.stop();
        assert!(got.lock().unwrap().is_empty());
        assert_eq!(d.state()["text"], "");
    }
}
