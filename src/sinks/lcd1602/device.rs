//! The attached LCD1602 (`hardware.devices`): what the sink and the `lcd_write` /
//! `lcd_clear` tools share. One mutex serialises every bus sequence, so a tool's write and
//! the sink's refresh never interleave their nibbles; it also holds what the display
//! shows (for status) and until when a tool's text holds it against the template.

use std::any::Any;
use std::sync::Mutex;

use serde_json::{Value as Json, json};

use super::driver::{CLEAR, Hd44780};
use crate::clock::now_us;
use crate::edges::hw::{BusError, Device};
use crate::graph::Micros;

struct Inner {
    lcd: Hd44780,
    /// Initialised since the last bus error (a display that lost power needs it again).
    ready: bool,
    lines: Vec<String>,
    error: Option<String>,
    /// A tool's text is shown until then (µs since the epoch; 0: not held).
    held_until: Micros,
}

/// One display. Blocking methods: call them on the `hw` thread or a tool's thread.
pub(crate) struct Lcd1602 {
    name: String,
    hold: Micros,
    inner: Mutex<Inner>,
    /// Rung when a tool wrote, so the sink knows when the hold ends.
    wake: async_channel::Sender<()>,
}

impl Lcd1602 {
    pub fn new(name: &str, lcd: Hd44780, hold: Micros, wake: async_channel::Sender<()>) -> Lcd1602 {
        Lcd1602 {
            name: name.to_string(),
            hold,
            inner: Mutex::new(Inner {
                lines: vec![String::new(); lcd.rows],
                lcd,
                ready: false,
                error: None,
                held_until: 0,
            }),
            wake,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on an initialised display, recording what happened.
    fn with(&self, f: impl FnOnce(&mut Inner) -> Result<(), BusError>) -> Result<(), BusError> {
        let mut g = self.lock();
        let r = (|| {
            if !g.ready {
                g.lcd.init()?;
                g.ready = true;
                g.lines.iter_mut().for_each(String::clear);
            }
            f(&mut g)
        })();
        match &r {
            Ok(()) => g.error = None,
            Err(e) => {
                g.ready = false;
                g.error = Some(e.to_string());
            }
        }
        r
    }

    /// Initialise the display (blank) unless it is.
    pub fn init(&self) -> Result<(), BusError> {
        self.with(|_| Ok(()))
    }

    /// The sink's refresh: rewrite the rows that changed in place (no clear, no flicker),
    /// unless a tool's text holds the display. `false` when held.
    pub fn show_template(&self, lines: &[String]) -> Result<bool, BusError> {
        if self.held_until() > now_us() {
            return Ok(false);
        }
        self.with(|g| {
            for (row, text) in lines.iter().enumerate().take(g.lcd.rows) {
                let text = truncate(text, g.lcd.cols);
                if g.lines[row] != text.trim_end() {
                    g.lcd.write_row(row, text, true)?;
                    g.lines[row] = text.trim_end().to_string();
                }
            }
            Ok(())
        })
        .map(|()| true)
    }

    /// A tool's text (`lcd_write`; in a build without the agent only the tests write):
    /// clear, then each given row truncated to the width; holds the display
    /// against the template for `hold`. The rows as shown.
    #[cfg_attr(not(feature = "agent"), allow(dead_code))]
    pub fn write(&self, lines: &[&str]) -> Result<Vec<String>, BusError> {
        let mut shown = Vec::new();
        self.with(|g| {
            g.lcd.command(CLEAR)?;
            g.lines.iter_mut().for_each(String::clear);
            for (row, text) in lines.iter().enumerate().take(g.lcd.rows) {
                let text = truncate(text, g.lcd.cols);
                if !text.is_empty() {
                    g.lcd.write_row(row, text, false)?;
                }
                g.lines[row] = text.trim_end().to_string();
            }
            shown = g.lines.clone();
            g.held_until = now_us() + self.hold;
            Ok(())
        })?;
        let _ = self.wake.try_send(());
        Ok(shown)
    }

    /// A tool's clear (held like a write, so the template does not fill it at once).
    #[cfg_attr(not(feature = "agent"), allow(dead_code))]
    pub fn clear(&self) -> Result<(), BusError> {
        self.write(&[]).map(|_| ())
    }

    pub fn held_until(&self) -> Micros {
        self.lock().held_until
    }
}

/// At most `cols` characters of `s` (by character, not byte).
fn truncate(s: &str, cols: usize) -> &str {
    match s.char_indices().nth(cols) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl Device for Lcd1602 {
    fn kind(&self) -> &'static str {
        "lcd1602"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn state(&self) -> Json {
        let g = self.lock();
        let mut s = json!({ "lines": g.lines, "backlight": g.lcd.backlight });
        if let Some(e) = &g.error {
            s["error"] = json!(e);
        }
        s
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
