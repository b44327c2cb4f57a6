//! The LCD driver against the PCF8574 + HD44780 model: the exact bytes of the datasheet's
//! 4-bit init and of a write, and the model decoding them back into text.

use std::sync::{Arc, Mutex};

use super::device::Lcd1602;
use super::driver::Hd44780;
use super::model::Lcd1602Model;
use crate::edges::hw::mock::{I2cModel, MockI2c};
use crate::edges::hw::scene::Scene;
use crate::edges::hw::{BusError, Device, I2cBus};

/// A mock bus that records every write: stands in for a logic analyser on SDA/SCL.
struct Recording {
    inner: MockI2c,
    writes: Mutex<Vec<u8>>,
}

impl I2cBus for Recording {
    fn backend(&self) -> &'static str {
        "mock"
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn write(&self, addr: u8, bytes: &[u8]) -> Result<(), BusError> {
        self.writes.lock().unwrap().extend_from_slice(bytes);
        self.inner.write(addr, bytes)
    }
    fn write_read(&self, addr: u8, wr: &[u8], rd: &mut [u8]) -> Result<(), BusError> {
        self.inner.write_read(addr, wr, rd)
    }
    fn mock(&self) -> Option<&MockI2c> {
        Some(&self.inner)
    }
}

impl Recording {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.writes.lock().unwrap())
    }
}

fn display(backlight: bool, hold: i64) -> (Arc<Recording>, Lcd1602) {
    let bus = Arc::new(Recording {
        inner: MockI2c::new(1, Arc::new(Scene::new(std::path::Path::new("")))),
        writes: Mutex::new(Vec::new()),
    });
    bus.inner.attach(0x27, Box::new(Lcd1602Model::new(16, 2)));
    let lcd = Hd44780 {
        bus: bus.clone(),
        addr: 0x27,
        cols: 16,
        rows: 2,
        backlight,
    };
    let (tx, _rx) = async_channel::bounded(1);
    (bus, Lcd1602::new("lcd", lcd, hold, tx))
}

fn model_state(bus: &Recording) -> serde_json::Value {
    bus.inner
        .with_model(0x27, |m: &mut dyn I2cModel| m.state())
        .unwrap()
}

/// Figure 24 of the HD44780 datasheet, through the common backpack wiring (P0 RS, P2 E,
/// P3 backlight, P4..P7 D4..D7): each nibble as data, data|E, data.
#[test]
fn init_and_write_send_the_datasheet_bytes_and_the_model_reads_hi() {
    let (bus, lcd) = display(true, 0);
    lcd.init().unwrap();
    #[rustfmt::skip]
    let init: Vec<u8> = vec![
        0x38, 0x3c, 0x38, // 0x3: function set, 8-bit (three times)
        0x38, 0x3c, 0x38,
        0x38, 0x3c, 0x38,
        0x28, 0x2c, 0x28, // 0x2: 4-bit from now on
        0x28, 0x2c, 0x28, 0x88, 0x8c, 0x88, // 0x28: 4-bit, 2 lines, 5x8
        0x08, 0x0c, 0x08, 0xc8, 0xcc, 0xc8, // 0x0C: display on, no cursor
        0x08, 0x0c, 0x08, 0x18, 0x1c, 0x18, // 0x01: clear
        0x08, 0x0c, 0x08, 0x68, 0x6c, 0x68, // 0x06: entry mode, increment
    ];
    assert_eq!(bus.take(), init);
    let s = model_state(&bus);
    assert_eq!(s["four_bit"], true);
    assert_eq!(s["display_on"], true);
    assert_eq!(s["lines"], serde_json::json!(["", ""]));

    assert_eq!(lcd.write(&["Hi"]).unwrap(), ["Hi", ""]);
    #[rustfmt::skip]
    let hi: Vec<u8> = vec![
        0x08, 0x0c, 0x08, 0x18, 0x1c, 0x18, // clear
        0x88, 0x8c, 0x88, 0x08, 0x0c, 0x08, // DDRAM address 0x00
        0x49, 0x4d, 0x49, 0x89, 0x8d, 0x89, // 'H' = 0x48, RS high
        0x69, 0x6d, 0x69, 0x99, 0x9d, 0x99, // 'i' = 0x69
    ];
    assert_eq!(bus.take(), hi);
    let s = model_state(&bus);
    assert_eq!(s["lines"], serde_json::json!(["Hi", ""]));
    assert_eq!(s["backlight"], true);
    // The driver waited out each clear: nothing reached a busy controller.
    assert_eq!(s["lost_while_busy"], 0);
    assert_eq!(lcd.state()["lines"], serde_json::json!(["Hi", ""]));
}

/// The model loses what a busy controller would: a write right after a clear, without
/// the driver's wait, does not show (so the driver's wait is what the test above checks).
#[test]
fn a_strobe_right_after_a_clear_is_lost() {
    let mut m = Lcd1602Model::new(16, 2).slow_clear(std::time::Duration::from_secs(600));
    let scene = crate::edges::hw::scene::SceneData::default();
    let nib = |n: u8, rs: u8| {
        [
            (n << 4) | 0x08 | rs,
            (n << 4) | 0x0c | rs,
            (n << 4) | 0x08 | rs,
        ]
    };
    for n in [0x3, 0x3, 0x3, 0x2, 0x2, 0x8, 0x0, 0xc] {
        m.write(&nib(n, 0), &scene).unwrap();
    }
    // Clear, then 'A' at once.
    m.write(&[nib(0x0, 0), nib(0x1, 0)].concat(), &scene)
        .unwrap();
    m.write(&[nib(0x4, 1), nib(0x1, 1)].concat(), &scene)
        .unwrap();
    assert_eq!(m.state()["lost_while_busy"], 2);
    assert_eq!(m.state()["lines"][0], "");
}

#[test]
fn the_backlight_bit_is_clear_in_every_byte_when_off() {
    let (bus, lcd) = display(false, 0);
    lcd.write(&["line one", "line two"]).unwrap();
    let bytes = bus.take();
    assert!(!bytes.is_empty());
    assert!(bytes.iter().all(|b| b & 0x08 == 0), "{bytes:02x?}");
    let s = model_state(&bus);
    assert_eq!(s["lines"], serde_json::json!(["line one", "line two"]));
    assert_eq!(s["backlight"], false);
}

/// Rows are truncated to the width; the template rewrites rows in place and waits while
/// a tool's text holds the display; ° reaches the glass as the ROM's degree sign.
#[test]
fn truncation_template_rows_and_the_hold() {
    let (bus, lcd) = display(true, 3_600_000_000);
    lcd.write(&["0123456789abcdefXYZ", "second"]).unwrap();
    assert_eq!(
        model_state(&bus)["lines"],
        serde_json::json!(["0123456789abcdef", "second"])
    );
    // Held for an hour: the template does not overwrite the tool's text.
    assert!(!lcd.show_template(&["T 21.5°C".into()]).unwrap());
    assert_eq!(model_state(&bus)["lines"][1], "second");

    let (bus, lcd) = display(true, 0);
    lcd.write(&["tool text", "more"]).unwrap();
    assert!(lcd.show_template(&["T 21.5°C".into(), "".into()]).unwrap());
    assert_eq!(
        model_state(&bus)["lines"],
        serde_json::json!(["T 21.5°C", ""])
    );
    // An unchanged row is not sent again.
    bus.take();
    assert!(
        lcd.show_template(&["T 21.5°C".into(), "P 1013".into()])
            .unwrap()
    );
    let bytes = bus.take();
    // One address command plus 16 characters, six bytes each.
    assert_eq!(bytes.len(), 17 * 6);
    assert_eq!(
        model_state(&bus)["lines"],
        serde_json::json!(["T 21.5°C", "P 1013"])
    );
}

#[test]
fn a_missing_backpack_is_an_error_and_the_next_write_initialises_again() {
    // With nothing at 0x27 the bus NACKs.
    let empty = Arc::new(Recording {
        inner: MockI2c::new(1, Arc::new(Scene::new(std::path::Path::new("")))),
        writes: Mutex::new(Vec::new()),
    });
    let (tx, _rx) = async_channel::bounded(1);
    let gone = Lcd1602::new(
        "lcd",
        Hd44780 {
            bus: empty.clone(),
            addr: 0x27,
            cols: 16,
            rows: 2,
            backlight: true,
        },
        0,
        tx,
    );
    let e = gone.write(&["x"]).unwrap_err();
    assert_eq!(e.to_string(), "i2c-1: no device answers at 0x27 (NACK)");
    assert_eq!(
        gone.state()["error"],
        "i2c-1: no device answers at 0x27 (NACK)"
    );
    // Plugged in: the next write runs the init first, and the text shows.
    empty.inner.attach(0x27, Box::new(Lcd1602Model::new(16, 2)));
    gone.write(&["back"]).unwrap();
    assert_eq!(model_state(&empty)["lines"][0], "back");
    assert_eq!(model_state(&empty)["four_bit"], true);
    assert!(gone.state().get("error").is_none());
}
