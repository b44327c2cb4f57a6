//! The mock LCD1602: a PCF8574 whose outputs drive an HD44780, decoded from the bytes
//! the bus carries. Each byte sets the eight outputs; on E's falling edge the controller
//! latches D4..D7 and RS: in 8-bit mode (power-on, or after a function set with DL = 1)
//! one strobe is a whole instruction with D0..D3 low, in 4-bit mode two strobes (high
//! nibble first) make a byte. Instructions (clear, home, entry mode, display control,
//! function set, DDRAM/CGRAM address) and data writes update DDRAM and the address
//! counter as the datasheet says, so status shows the rows as a person would read them,
//! and the backlight (P3). Clear and home keep the controller busy for 1.52 ms: a strobe
//! meanwhile is lost, as on the chip (counted as `lost_while_busy`; the bus itself is
//! instant here, so the 37 µs of other instructions, shorter than one I2C byte, are not
//! modelled). A driver that skips the init sequence, sends nibbles in the wrong order,
//! mis-strobes E or does not wait after a clear shows garbage here as it would on the
//! glass.

use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use super::driver::{BACKLIGHT, E, RS, rom_char, row_start};
use crate::edges::hw::BusError;
use crate::edges::hw::mock::I2cModel;
use crate::edges::hw::scene::SceneData;

/// P1: read/write. The backpack's driver holds it low; a strobe with it high is a read.
const RW: u8 = 0x02;

/// Clear and home: the datasheet's execution time.
const SLOW: Duration = Duration::from_micros(1520);

pub(crate) struct Lcd1602Model {
    cols: usize,
    rows: usize,
    /// The PCF8574's outputs (all high at power-on: its quasi-bidirectional pins).
    outputs: u8,
    four_bit: bool,
    /// The high nibble of a byte in 4-bit mode, waiting for its low half.
    high: Option<u8>,
    ddram: [u8; 128],
    ac: u8,
    /// Data goes to CGRAM (custom glyphs, not modelled) until the next DDRAM address.
    cgram: bool,
    increment: bool,
    display_on: bool,
    two_lines: bool,
    instructions: u64,
    /// How long clear and home keep it busy (the datasheet's 1.52 ms; tests stretch it).
    slow: Duration,
    busy_until: Option<Instant>,
    lost_while_busy: u64,
}

impl Lcd1602Model {
    pub fn new(cols: usize, rows: usize) -> Lcd1602Model {
        Lcd1602Model {
            cols,
            rows,
            outputs: 0xff,
            four_bit: false,
            high: None,
            // Power-on DDRAM content is undefined; spaces read best.
            ddram: [0x20; 128],
            ac: 0,
            cgram: false,
            increment: true,
            display_on: false,
            two_lines: false,
            instructions: 0,
            slow: SLOW,
            busy_until: None,
            lost_while_busy: 0,
        }
    }

    /// Clear and home take `d` (so a test of what a busy controller loses does not
    /// depend on the machine's speed).
    #[cfg(test)]
    pub fn slow_clear(mut self, d: Duration) -> Lcd1602Model {
        self.slow = d;
        self
    }

    /// What each row shows, trailing spaces left out.
    pub fn lines(&self) -> Vec<String> {
        (0..self.rows)
            .map(|row| {
                let start = row_start(row, self.cols) as usize;
                let s: String = self.ddram[start..start + self.cols]
                    .iter()
                    .map(|&c| rom_char(c))
                    .collect();
                s.trim_end().to_string()
            })
            .collect()
    }

    pub fn backlight(&self) -> bool {
        self.outputs & BACKLIGHT != 0
    }

    /// One byte on the PCF8574.
    fn output(&mut self, b: u8) {
        let was = self.outputs;
        self.outputs = b;
        if was & E != 0 && b & E == 0 && was & RW == 0 {
            self.strobe(was >> 4, was & RS != 0);
        }
    }

    fn strobe(&mut self, nibble: u8, rs: bool) {
        if let Some(until) = self.busy_until {
            if Instant::now() < until {
                self.lost_while_busy += 1;
                return;
            }
            self.busy_until = None;
        }
        if !self.four_bit {
            self.high = None;
            self.execute(nibble << 4, rs);
            return;
        }
        match self.high.take() {
            None => self.high = Some(nibble),
            Some(h) => self.execute((h << 4) | nibble, rs),
        }
    }

    fn execute(&mut self, b: u8, rs: bool) {
        if rs {
            if !self.cgram {
                self.ddram[self.ac as usize & 0x7f] = b;
                self.step();
            }
            return;
        }
        self.instructions += 1;
        if b & 0x80 != 0 {
            self.ac = b & 0x7f;
            self.cgram = false;
        } else if b & 0x40 != 0 {
            self.cgram = true;
        } else if b & 0x20 != 0 {
            self.four_bit = b & 0x10 == 0;
            self.two_lines = b & 0x08 != 0;
        } else if b & 0x10 != 0 {
            // Cursor or display shift: not modelled (nothing here sends it).
        } else if b & 0x08 != 0 {
            self.display_on = b & 0x04 != 0;
        } else if b & 0x04 != 0 {
            self.increment = b & 0x02 != 0;
        } else if b & 0x02 != 0 {
            self.ac = 0;
            self.busy_until = Some(Instant::now() + self.slow);
        } else if b & 0x01 != 0 {
            self.ddram = [0x20; 128];
            self.ac = 0;
            self.increment = true;
            self.cgram = false;
            self.busy_until = Some(Instant::now() + self.slow);
        }
    }

    /// The address counter after a data write: 0x00..0x27 and 0x40..0x67 in two-line mode,
    /// wrapping from one line to the other.
    fn step(&mut self) {
        self.ac = if self.increment {
            match self.ac {
                0x27 => 0x40,
                0x67 => 0x00,
                a => (a + 1) & 0x7f,
            }
        } else {
            match self.ac {
                0x40 => 0x27,
                0x00 => 0x67,
                a => a.wrapping_sub(1) & 0x7f,
            }
        };
    }
}

impl I2cModel for Lcd1602Model {
    fn model(&self) -> &'static str {
        "pcf8574+hd44780"
    }

    fn write(&mut self, bytes: &[u8], _: &SceneData) -> Result<(), BusError> {
        for &b in bytes {
            self.output(b);
        }
        Ok(())
    }

    /// A PCF8574 read returns its pins (the outputs as set).
    fn read(&mut self, buf: &mut [u8], _: &SceneData) -> Result<(), BusError> {
        buf.fill(self.outputs);
        Ok(())
    }

    fn state(&self) -> Json {
        json!({
            "lines": self.lines(),
            "backlight": self.backlight(),
            "display_on": self.display_on,
            "four_bit": self.four_bit,
            "instructions": self.instructions,
            "lost_while_busy": self.lost_while_busy,
        })
    }
}
