//! An HD44780 character display in 4-bit mode behind a PCF8574 I2C backpack, the common
//! wiring: P0 = RS, P1 = RW (held low: write only), P2 = E, P3 = backlight, P4..P7 =
//! D4..D7. Each nibble is one I2C write of three bytes: the data with E low, with E high,
//! with E low again (the HD44780 latches on E's falling edge; at 100 kHz each byte lasts
//! 90 µs, longer than every pulse width and the 37 µs most commands take). Blocking (the
//! init waits tens of milliseconds): it runs on the `hw` thread or a tool's thread.

use std::sync::Arc;
use std::time::Duration;

use crate::edges::hw::{BusError, I2cBus};

pub(crate) const RS: u8 = 0x01;
pub(crate) const E: u8 = 0x04;
pub(crate) const BACKLIGHT: u8 = 0x08;

/// HD44780 instructions.
pub(crate) const CLEAR: u8 = 0x01;
pub(crate) const HOME: u8 = 0x02;
const ENTRY_INCREMENT: u8 = 0x06;
const DISPLAY_ON: u8 = 0x0c;
const FUNCTION_4BIT_2LINE: u8 = 0x28;
const SET_DDRAM: u8 = 0x80;

/// The display's character ROM (A00, the common one) for what text may hold: ASCII from
/// space to `}` (but `\`, which is ¥ there), and the few symbols a reading needs.
pub(crate) fn rom_code(c: char) -> u8 {
    match c {
        '°' => 0xdf,
        'µ' => 0xe4,
        '¥' => 0x5c,
        '→' => 0x7e,
        '←' => 0x7f,
        '\\' => b'/',
        ' '..='}' => c as u8,
        _ => b'?',
    }
}

/// What a character-ROM code shows, for the model (the inverse of [`rom_code`]).
pub(crate) fn rom_char(code: u8) -> char {
    match code {
        0xdf => '°',
        0xe4 => 'µ',
        0x5c => '¥',
        0x7e => '→',
        0x7f => '←',
        0x20..=0x7d => code as char,
        _ => '?',
    }
}

/// DDRAM address of each row's first cell (rows 3 and 4 continue rows 1 and 2).
pub(crate) fn row_start(row: usize, cols: usize) -> u8 {
    [0x00, 0x40, cols as u8, 0x40 + cols as u8][row.min(3)]
}

/// One display on a bus address; every method is a sequence of bus writes.
pub(crate) struct Hd44780 {
    pub bus: Arc<dyn I2cBus>,
    pub addr: u8,
    pub cols: usize,
    pub rows: usize,
    pub backlight: bool,
}

impl Hd44780 {
    fn bl(&self) -> u8 {
        if self.backlight { BACKLIGHT } else { 0 }
    }

    /// One nibble (in the high four bits of the PCF8574 byte), strobed.
    fn nibble(&self, nibble: u8, rs: bool) -> Result<(), BusError> {
        let d = (nibble << 4) | self.bl() | if rs { RS } else { 0 };
        self.bus.write(self.addr, &[d, d | E, d])
    }

    /// A whole byte as two strobed nibbles, high first, in one write.
    fn send(&self, byte: u8, rs: bool) -> Result<(), BusError> {
        let flags = self.bl() | if rs { RS } else { 0 };
        let hi = (byte & 0xf0) | flags;
        let lo = (byte << 4) | flags;
        self.bus.write(self.addr, &[hi, hi | E, hi, lo, lo | E, lo])
    }

    pub fn command(&self, c: u8) -> Result<(), BusError> {
        self.send(c, false)?;
        if c == CLEAR || c == HOME {
            // 1.52 ms on the datasheet; the busy flag cannot be read with RW held low.
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    /// The 4-bit initialisation by instruction of the datasheet's figure 24 (which works
    /// whatever state the controller was left in), then 2 lines, display on, clear,
    /// left-to-right entry.
    pub fn init(&self) -> Result<(), BusError> {
        std::thread::sleep(Duration::from_millis(50));
        self.nibble(0x3, false)?;
        std::thread::sleep(Duration::from_micros(4500));
        self.nibble(0x3, false)?;
        std::thread::sleep(Duration::from_micros(150));
        self.nibble(0x3, false)?;
        std::thread::sleep(Duration::from_micros(150));
        self.nibble(0x2, false)?;
        for c in [FUNCTION_4BIT_2LINE, DISPLAY_ON, CLEAR, ENTRY_INCREMENT] {
            self.command(c)?;
        }
        Ok(())
    }

    /// Write `text` at the start of `row`, at most `cols` characters; `pad`: fill the rest
    /// of the row with spaces (rewriting a row without clearing, so it does not flicker).
    pub fn write_row(&self, row: usize, text: &str, pad: bool) -> Result<(), BusError> {
        self.command(SET_DDRAM | row_start(row, self.cols))?;
        let mut n = 0;
        for c in text.chars().take(self.cols) {
            self.send(rom_code(c), true)?;
            n += 1;
        }
        if pad {
            for _ in n..self.cols {
                self.send(b' ', true)?;
            }
        }
        Ok(())
    }
}
