//! The `lcd1602` sink: an HD44780 character display (16×2 by default, `cols`/`rows`)
//! behind a PCF8574 I2C backpack (`i2c_bus` 1, `address` 0x27), attached to
//! `hardware.devices` for the `lcd_write` and `lcd_clear` tools (the original's).
//!
//! `template` is what it shows from the pipeline: one string, rows separated by `\n`
//! (`"T {bme280:temperature|.1}°C\nP {bme280:pressure|.0} hPa"`), placeholders as in
//! `sinks/template.rs`. The display is rewritten only when a shown value changed, row by
//! row in place. Without a template it shows only what the tools write. A tool's write
//! holds the display for `hold` (default 60 s), then the template takes over again.
//!
//! Bus work runs on the `hw` thread (the sink) or the `llm` thread (the tools), one
//! sequence at a time through the device's mutex (`device.rs`). A display that does not
//! answer is counted (`write_errors`), its error shown in status under the device, and
//! initialised again at the next write. On a mock bus the display is `model.rs`.

mod device;
mod driver;
mod model;

use std::sync::Arc;
use std::time::Duration;

use async_channel::Receiver;
use toml::Value as Toml;

pub(crate) use device::Lcd1602;

use crate::clock::now_us;
use crate::config::SinkSpec;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::edges::hw::Worker;
use crate::graph::counters::Counters;
use crate::graph::registry::Registry;
use crate::graph::{Item, Micros, Value};
use crate::plugins::params::{Need, Reader, as_dur, as_int, as_text};
use crate::plugins::{Kind, Make, Param, ParamsBox, Role, Unavailable, params_of};
use crate::plugins::{Setup, Task};
use crate::sinks::template::Template;
use driver::Hd44780;
use model::Lcd1602Model;

const COUNTERS: &[&str] = &["items", "refreshes", "write_errors"];
const C_ITEMS: usize = 0;
const C_REFRESHES: usize = 1;
const C_ERRORS: usize = 2;

/// An lcd1602 sink's parameters, checked.
#[derive(Clone, Debug)]
struct LcdParams {
    bus: u8,
    addr: u8,
    cols: usize,
    rows: usize,
    backlight: bool,
    /// One per row at most; empty: tools only.
    template: Vec<Template>,
    hold: Micros,
}

pub const KIND: Kind = Kind {
    role: Role::Sink,
    name: "lcd1602",
    version: env!("CARGO_PKG_VERSION"),
    doc: "an HD44780 character display on a PCF8574 I2C backpack: a template of live values, and the lcd_write/lcd_clear tools",
    params: &[
        Param::new(Spec {
            default: "1",
            range: Some((0.0, 255.0)),
            doc: "the I2C bus number (1 is pins 3 and 5 of a Pi's header, /dev/i2c-1)",
            hint: "i2c_bus = 1",
            ..Spec::new("i2c_bus", Want::WholeNumber)
        }),
        Param::new(Spec {
            default: "0x27",
            doc: "the backpack's address: 0x20..0x27 (PCF8574, A0..A2 jumpers) or 0x38..0x3f (PCF8574A)",
            hint: "address = 0x27 (`i2cdetect -y 1` shows it; many backpacks are 0x27 or 0x3f)",
            ..Spec::new("address", Want::WholeNumber)
        }),
        Param::new(Spec {
            default: "16",
            doc: "characters per row (16 for a 1602, 20 for a 2004)",
            hint: "cols = 16 or cols = 20; up to 40 with 1 or 2 rows, 20 with 4",
            ..Spec::new("cols", Want::WholeNumber)
        }),
        Param::new(Spec {
            default: "2",
            doc: "rows: 1, 2 or 4",
            hint: "rows = 2 (a 1602) or rows = 4 (a 2004)",
            ..Spec::new("rows", Want::WholeNumber)
        }),
        Param::new(Spec {
            default: "true",
            doc: "whether the backlight is on",
            ..Spec::new("backlight", Want::Bool)
        }),
        Param::new(Spec {
            default: "\"\"",
            doc: "what the display shows from the pipeline, rows separated by \\n, e.g. \"T {bme280:temperature|.1}°C\\nP {bme280:pressure|.0} hPa\"; empty: only what the tools write",
            hint: "template = \"T {bme280:temperature|.1}°C\\nRH {bme280:humidity|.0}%\"",
            ..Spec::new("template", Want::Text)
        }),
        Param::new(Spec {
            default: "\"60s\"",
            doc: "how long a tool's text stays before the template shows again",
            hint: "hold = \"60s\"",
            ..Spec::new("hold", Want::Duration)
        }),
    ],
    make: Make::Sink {
        parse,
        lossless: false,
        setup,
    },
};

fn hint(key: &str) -> Option<String> {
    KIND.param(key).map(|d| d.spec.hint.to_string())
}

fn parse(r: &mut Reader) -> ParamsBox {
    let mut p = LcdParams {
        bus: 1,
        addr: 0x27,
        cols: 16,
        rows: 2,
        backlight: true,
        template: Vec::new(),
        hold: 60_000_000,
    };
    let mut template: Option<(&str, &crate::plugins::params::RawParam)> = None;
    let mut cols_line = None;
    for raw in r.params() {
        match raw.key.as_str() {
            "i2c_bus" => match as_int(&raw.value) {
                Ok(n @ 0..=255) => p.bus = n as u8,
                Ok(n) => r.bad(raw, (format!("{n} is out of range"), hint("i2c_bus"))),
                Err(e) => r.bad(raw, e),
            },
            "address" => match as_int(&raw.value) {
                Ok(a @ (0x20..=0x27 | 0x38..=0x3f)) => p.addr = a as u8,
                Ok(a) => r.bad(
                    raw,
                    (
                        format!("0x{a:02x} is not a PCF8574 backpack address"),
                        hint("address"),
                    ),
                ),
                Err(e) => r.bad(raw, e),
            },
            "cols" => match as_int(&raw.value) {
                Ok(n @ 8..=40) => {
                    p.cols = n as usize;
                    cols_line = Some(raw);
                }
                Ok(n) => r.bad(
                    raw,
                    (
                        format!("{n} columns: HD44780 displays have 8 to 40"),
                        hint("cols"),
                    ),
                ),
                Err(e) => r.bad(raw, e),
            },
            "rows" => match as_int(&raw.value) {
                Ok(n @ (1 | 2 | 4)) => p.rows = n as usize,
                Ok(n) => r.bad(
                    raw,
                    (
                        format!("{n} rows: HD44780 displays have 1, 2 or 4"),
                        hint("rows"),
                    ),
                ),
                Err(e) => r.bad(raw, e),
            },
            "backlight" => match &raw.value {
                Toml::Boolean(b) => p.backlight = *b,
                other => r.bad(
                    raw,
                    (
                        format!(
                            "expected true or false, found {}",
                            crate::plugins::params::describe(other)
                        ),
                        Some("backlight = true".into()),
                    ),
                ),
            },
            "template" => match as_text(&raw.value) {
                Ok(s) => template = Some((s, raw)),
                Err(e) => r.bad(raw, e),
            },
            "hold" => match as_dur(&raw.value) {
                Ok(d) if d >= 0 => p.hold = d,
                Ok(_) => r.bad(raw, ("a negative hold".into(), hint("hold"))),
                Err(e) => r.bad(raw, e),
            },
            _ => {}
        }
    }
    if p.rows == 4
        && p.cols > 20
        && let Some(raw) = cols_line
    {
        r.bad(
            raw,
            (
                format!(
                    "{} columns with 4 rows: the controller holds 80 characters",
                    p.cols
                ),
                Some("a 4-row display has at most 20 columns (a 2004)".into()),
            ),
        );
    }
    if let Some((text, raw)) = template
        && !text.is_empty()
    {
        let rows: Vec<&str> = text.split('\n').collect();
        if rows.len() > p.rows {
            r.bad(
                raw,
                (
                    format!("{} rows of text for a display of {}", rows.len(), p.rows),
                    Some("one \\n between rows; set rows = 4 for a 2004".into()),
                ),
            );
        }
        for row in rows {
            match Template::parse(row) {
                Ok(t) => {
                    // An id nothing upstream produces would show `-` for ever.
                    for id in t.ids() {
                        if !r.reach.remote && !r.reach.ids.iter().any(|(i, _)| i == id) {
                            let known: Vec<&str> =
                                r.reach.ids.iter().map(|(i, _)| i.as_str()).collect();
                            r.bad(
                                raw,
                                (
                                    format!("no source in `from` produces {id}"),
                                    Some(if known.is_empty() {
                                        "add the source that produces it to `from`".to_string()
                                    } else {
                                        format!(
                                            "the sources in `from` produce {}",
                                            known.join(", ")
                                        )
                                    }),
                                ),
                            );
                        }
                    }
                    p.template.push(t);
                }
                Err(e) => r.bad(raw, (e, hint("template"))),
            }
        }
    }
    r.need(Need::I2c);
    Arc::new(p)
}

fn setup(spec: &SinkSpec, s: &mut Setup) -> Result<Box<dyn crate::plugins::Sink>, Unavailable> {
    let p = params_of::<LcdParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?;
    let hw = s.parts.hardware;
    let bus = hw
        .i2c(p.bus)
        .map_err(|e| Unavailable::Failed(e.to_string()))?;
    if let Some(m) = bus.mock() {
        m.attach(p.addr, Box::new(Lcd1602Model::new(p.cols, p.rows)));
    }
    let lcd = Hd44780 {
        bus,
        addr: p.addr,
        cols: p.cols,
        rows: p.rows,
        backlight: p.backlight,
    };
    let (wake_tx, wake_rx) = async_channel::bounded(1);
    let device = Arc::new(Lcd1602::new(&spec.name, lcd, p.hold, wake_tx));
    hw.devices.attach(device.clone());
    let ids: Vec<String> = {
        let mut ids: Vec<String> = Vec::new();
        for id in p.template.iter().flat_map(|t| t.ids()) {
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_string());
            }
        }
        ids
    };
    Ok(Box::new(LcdSink {
        values: vec![None; ids.len()],
        ids,
        slot_of: Vec::new(),
        rendered: vec![String::new(); p.template.len()],
        sent: vec![String::new(); p.template.len()],
        templates: p.template.clone(),
        device,
        registry: s.parts.registry.clone(),
        worker: hw.worker(),
        counters: Arc::new(Counters::new(COUNTERS)),
        wake_rx,
    }))
}

/// `slot_of` entries: not looked up yet, or not shown; else the slot plus 2.
const UNKNOWN: u16 = 0;
const NOT_SHOWN: u16 = 1;

/// A set-up lcd1602 sink: its templates, the latest value of each id they show, and
/// the device it refreshes.
struct LcdSink {
    templates: Vec<Template>,
    /// The distinct ids the templates show, and each one's latest value.
    ids: Vec<String>,
    values: Vec<Option<Value>>,
    /// By `SourceId` index: which slot a source feeds (looked up once per source).
    slot_of: Vec<u16>,
    rendered: Vec<String>,
    sent: Vec<String>,
    device: Arc<Lcd1602>,
    registry: Arc<Registry>,
    worker: Worker,
    counters: Arc<Counters>,
    wake_rx: Receiver<()>,
}

/// What woke the sink.
enum Event {
    Item(Item),
    Closed,
    /// A tool wrote (the hold began) or the hold ended.
    Hold,
}

impl LcdSink {
    /// Take a reading's value if a template shows it; whether it changed.
    fn take(&mut self, r: &crate::graph::Reading) -> bool {
        let i = r.source.index();
        if self.slot_of.len() <= i {
            self.slot_of.resize(i + 1, UNKNOWN);
        }
        if self.slot_of[i] == UNKNOWN {
            let name = self.registry.get(r.source);
            self.slot_of[i] = name
                .and_then(|n| self.ids.iter().position(|id| *id == *n.name))
                .map_or(NOT_SHOWN, |k| k as u16 + 2);
        }
        match self.slot_of[i] {
            NOT_SHOWN | UNKNOWN => false,
            k => {
                let v = &mut self.values[(k - 2) as usize];
                let changed = *v != Some(r.value);
                *v = Some(r.value);
                changed
            }
        }
    }

    /// Render and, if the text changed (or `force`), write it on the `hw` thread. The
    /// hold's end when the display is held.
    async fn refresh(&mut self, force: bool) -> Option<Micros> {
        let held = self.device.held_until();
        if held > now_us() {
            return Some(held);
        }
        let (ids, values) = (&self.ids, &self.values);
        let value = |id: &str| ids.iter().position(|i| i == id).and_then(|k| values[k]);
        for (t, out) in self.templates.iter().zip(self.rendered.iter_mut()) {
            t.render(value, out);
        }
        if !force && self.rendered == self.sent {
            return None;
        }
        // Only when the text changed: the lines travel to the hw thread.
        let lines = self.rendered.clone();
        let dev = self.device.clone();
        match self.worker.run(move || dev.show_template(&lines)).await {
            Some(Ok(true)) => {
                self.counters.inc(C_REFRESHES);
                self.sent.clone_from(&self.rendered);
                None
            }
            // A tool wrote meanwhile.
            Some(Ok(false)) => Some(self.device.held_until()),
            Some(Err(e)) => {
                self.counters.inc(C_ERRORS);
                log::debug!("lcd1602: {e}");
                None
            }
            None => None,
        }
    }

    async fn next(&self, rx: &Receiver<Item>, until: Option<Micros>) -> Event {
        let item = async {
            match rx.recv().await {
                Ok(i) => Event::Item(i),
                Err(_) => Event::Closed,
            }
        };
        let woken = async {
            let _ = self.wake_rx.recv().await;
            Event::Hold
        };
        let due = async {
            match until {
                Some(t) => {
                    let wait = (t - now_us()).max(0) as u64;
                    smol::Timer::after(Duration::from_micros(wait)).await;
                    Event::Hold
                }
                None => std::future::pending().await,
            }
        };
        smol::future::or(item, smol::future::or(woken, due)).await
    }

    async fn run(mut self, rx: Receiver<Item>) {
        // Initialise now: a display with no template starts blank and ready, and one that
        // does not answer shows its error in status from the start.
        let dev = self.device.clone();
        if let Some(Err(e)) = self.worker.run(move || dev.init()).await {
            self.counters.inc(C_ERRORS);
            log::warn!("lcd1602 '{}': {e}", self.device_name());
        }
        let shows = !self.templates.is_empty();
        let mut until = if shows {
            self.refresh(true).await
        } else {
            None
        };
        loop {
            match self.next(&rx, until).await {
                Event::Item(item) => {
                    self.counters.inc(C_ITEMS);
                    if let Item::Reading(r) = item
                        && shows
                        && self.take(&r)
                    {
                        until = self.refresh(until.is_some()).await;
                    }
                }
                Event::Hold if shows => until = self.refresh(true).await,
                Event::Hold => {}
                Event::Closed => return,
            }
        }
    }

    fn device_name(&self) -> String {
        use crate::edges::hw::Device;
        self.device.name().to_string()
    }
}

impl crate::plugins::Sink for LcdSink {
    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    fn start(self: Box<Self>, rx: Receiver<Item>) -> Task {
        Box::pin((*self).run(rx))
    }
}

#[cfg(test)]
mod tests;
