//! The mock BME280/BMP280: a register file that behaves as the chip does, for the mock
//! buses. It answers its chip id (0xD0), soft reset (0xE0 = 0xB6, with `im_update` in the
//! status while the NVM is copied), ctrl_hum (0xF2, applied only by the next ctrl_meas
//! write, as the datasheet §5.4.3 says), status (0xF3: `measuring` for the conversion
//! time after a forced-mode write to ctrl_meas 0xF4), config (0xF5), the calibration
//! (0x88..0xA1, 0xE1..0xE7) and the data registers (0xF7..0xFE), which change only when a
//! conversion ends (read early, they still hold the previous result; 0x80000 before any).
//! The raw values are the compensation formulas inverted for the scene's `temperature`
//! (°C), `pressure` (hPa) and `humidity` (%RH), so the driver reads the scene back within
//! the chip's resolution. A scene's `chip_id` makes another chip answer (a wrong id).

use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use super::compensate::Calib;
use crate::edges::hw::mock::RegisterModel;
use crate::edges::hw::scene::SceneData;

/// The chip ids of the datasheets.
pub(crate) const BME280_ID: u8 = 0x60;
pub(crate) const BMP280_ID: u8 = 0x58;

/// What the model senses with an empty scene.
const DEFAULT_T: f64 = 21.0;
const DEFAULT_H: f64 = 45.0;
const DEFAULT_P: f64 = 1013.25;

/// The NVM copy after a soft reset (datasheet: 2 ms start-up).
const RESET_TIME: Duration = Duration::from_millis(2);

/// The calibration the model carries: the BMP280 datasheet's example for temperature and
/// pressure, a real BME280's for humidity.
pub(crate) const CALIB: Calib = Calib {
    t1: 27504,
    t2: 26435,
    t3: -1000,
    p1: 36477,
    p2: -10685,
    p3: 3024,
    p4: 2855,
    p5: 140,
    p6: -7,
    p7: 15500,
    p8: -14600,
    p9: 6000,
    h1: 75,
    h2: 362,
    h3: 0,
    h4: 313,
    h5: 50,
    h6: 30,
};

/// A mock BME280 (humidity too) or BMP280 (no ctrl_hum, no humidity registers).
pub(crate) struct Bme280Model {
    humidity: bool,
    regs: [u8; 256],
    /// The scene as of the transaction in progress.
    now: Instant,
    t: f64,
    h: f64,
    p: f64,
    chip_id: u8,
    /// When the running conversion ends, and whether it was forced (back to sleep after).
    converting: Option<(Instant, bool)>,
    reset_until: Option<Instant>,
    /// Added to every conversion (tests slow the chip down to exercise the status wait).
    slower: Duration,
    conversions: u64,
    /// Data registers read while a conversion ran: a driver that does not wait reads stale
    /// values (status shows the count; 0 for a correct driver).
    early_reads: u64,
}

impl Bme280Model {
    /// A BME280 (`humidity`) or a BMP280, in its power-on state.
    pub fn new(humidity: bool) -> Bme280Model {
        let mut m = Bme280Model {
            humidity,
            regs: [0; 256],
            now: Instant::now(),
            t: DEFAULT_T,
            h: DEFAULT_H,
            p: DEFAULT_P,
            chip_id: if humidity { BME280_ID } else { BMP280_ID },
            converting: None,
            reset_until: None,
            slower: Duration::ZERO,
            conversions: 0,
            early_reads: 0,
        };
        m.power_on();
        m
    }

    /// Each conversion takes `extra` longer than the datasheet's typical time.
    #[cfg(test)]
    pub fn slower(mut self, extra: Duration) -> Bme280Model {
        self.slower = extra;
        self
    }

    fn power_on(&mut self) {
        let (tp, h) = CALIB.to_registers();
        self.regs = [0; 256];
        self.regs[0x88..=0xa1].copy_from_slice(&tp);
        if self.humidity {
            self.regs[0xe1..=0xe7].copy_from_slice(&h);
        } else {
            self.regs[0xa1] = 0;
        }
        // The data registers' reset values: 0x80000 (and 0x8000), "no measurement".
        self.regs[0xf7..=0xfe].copy_from_slice(&[0x80, 0, 0, 0x80, 0, 0, 0x80, 0]);
        self.converting = None;
    }

    /// The datasheet's typical measurement time (§9.1) for the settings in ctrl_meas and
    /// the latched ctrl_hum.
    fn conversion_time(&self) -> Duration {
        let os = |bits: u8| match bits & 7 {
            0 => 0.0,
            1 => 1.0,
            2 => 2.0,
            3 => 4.0,
            4 => 8.0,
            _ => 16.0,
        };
        let meas = self.regs[0xf4];
        let (t, p) = (os(meas >> 5), os(meas >> 2));
        let h = if self.humidity {
            os(self.latched_hum())
        } else {
            0.0
        };
        let phase = |n: f64| if n > 0.0 { 2.0 * n + 0.5 } else { 0.0 };
        let ms = 1.0 + 2.0 * t + phase(p) + phase(h);
        Duration::from_micros((ms * 1000.0) as u64) + self.slower
    }

    /// ctrl_hum as it was when ctrl_meas was last written (register 0x00 holds it: that
    /// address is not otherwise used by the model).
    fn latched_hum(&self) -> u8 {
        self.regs[0x00]
    }

    /// The conversion's result into the data registers, from the scene now.
    fn finish(&mut self) {
        let meas = self.regs[0xf4];
        let skipped = 0x80000;
        let t_on = meas >> 5 & 7 != 0;
        let adc_t = if t_on { adc_t_for(self.t) } else { skipped };
        let t_fine = CALIB.t_fine(adc_t);
        let adc_p = if meas >> 2 & 7 != 0 && t_on {
            adc_p_for(t_fine, self.p)
        } else {
            skipped
        };
        put20(&mut self.regs[0xf7..0xfa], adc_p);
        put20(&mut self.regs[0xfa..0xfd], adc_t);
        if self.humidity {
            let adc_h = if self.latched_hum() & 7 != 0 && t_on {
                adc_h_for(t_fine, self.h)
            } else {
                0x8000
            };
            self.regs[0xfd..=0xfe].copy_from_slice(&(adc_h as u16).to_be_bytes());
        }
        self.conversions += 1;
    }
}

/// A 20-bit ADC value as msb, lsb, xlsb[7:4].
fn put20(dst: &mut [u8], v: i32) {
    dst[0] = (v >> 12) as u8;
    dst[1] = (v >> 4) as u8;
    dst[2] = ((v & 0xf) << 4) as u8;
}

/// The smallest x in `lo..hi` for which `f(x)` is true (`f` false then true), or `hi - 1`.
fn search(mut lo: i32, mut hi: i32, f: impl Fn(i32) -> bool) -> i32 {
    let top = hi - 1;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if f(mid) { hi = mid } else { lo = mid + 1 }
    }
    lo.min(top)
}

/// The raw temperature whose t_fine is nearest `t` °C (t_fine = T × 5120).
pub(crate) fn adc_t_for(t: f64) -> i32 {
    let target = (t * 5120.0) as i64;
    search(0, 1 << 20, |a| CALIB.t_fine(a) as i64 >= target)
}

/// The raw pressure giving `hpa` at `t_fine` (pressure falls as the count rises).
pub(crate) fn adc_p_for(t_fine: i32, hpa: f64) -> i32 {
    let target = (hpa * 100.0 * 256.0) as i64;
    search(0, 1 << 20, |a| {
        CALIB
            .pressure(t_fine, a)
            .is_none_or(|p| (p as i64) <= target)
    })
}

/// The raw humidity giving `rh` %RH at `t_fine`.
pub(crate) fn adc_h_for(t_fine: i32, rh: f64) -> i32 {
    let target = (rh.clamp(0.0, 100.0) * 1024.0) as i64;
    search(0, 1 << 16, |a| CALIB.humidity(t_fine, a) as i64 >= target)
}

impl RegisterModel for Bme280Model {
    fn model(&self) -> &'static str {
        if self.humidity { "bme280" } else { "bmp280" }
    }

    fn refresh(&mut self, device: &str, scene: &SceneData) {
        self.now = Instant::now();
        self.t = scene.value_or(device, "temperature", DEFAULT_T);
        self.h = scene.value_or(device, "humidity", DEFAULT_H);
        self.p = scene.value_or(device, "pressure", DEFAULT_P);
        let own = if self.humidity { BME280_ID } else { BMP280_ID };
        self.chip_id = scene
            .value(device, "chip_id")
            .map_or(own, |v| v.clamp(0.0, 255.0) as u8);
        if let Some((end, forced)) = self.converting
            && self.now >= end
        {
            self.finish();
            if forced {
                // Back to sleep mode after a forced measurement.
                self.regs[0xf4] &= !0x03;
                self.converting = None;
            } else {
                self.converting = Some((self.now + self.conversion_time(), false));
            }
        }
        if self.reset_until.is_some_and(|u| self.now >= u) {
            self.reset_until = None;
        }
    }

    fn read_reg(&mut self, reg: u8) -> u8 {
        match reg {
            0xd0 => self.chip_id,
            0xf3 => {
                let measuring = u8::from(self.converting.is_some()) << 3;
                measuring | u8::from(self.reset_until.is_some())
            }
            0xf2 if !self.humidity => 0,
            0xe1..=0xe7 | 0xfd | 0xfe if !self.humidity => 0,
            0xf7..=0xfe => {
                if self.converting.is_some_and(|(_, forced)| forced) {
                    self.early_reads += 1;
                }
                self.regs[reg as usize]
            }
            // 0x00 is where the model keeps the latched ctrl_hum; the chip reads 0 there.
            0x00 => 0,
            r => self.regs[r as usize],
        }
    }

    fn write_reg(&mut self, reg: u8, value: u8) {
        match reg {
            0xe0 if value == 0xb6 => {
                self.power_on();
                self.reset_until = Some(self.now + RESET_TIME);
            }
            0xf2 if self.humidity => self.regs[0xf2] = value & 0x07,
            0xf4 => {
                self.regs[0xf4] = value;
                self.regs[0x00] = self.regs[0xf2];
                self.converting = match value & 0x03 {
                    0 => None,
                    3 => Some((self.now + self.conversion_time(), false)),
                    _ => Some((self.now + self.conversion_time(), true)),
                };
            }
            0xf5 => self.regs[0xf5] = value,
            // Everything else is read-only.
            _ => {}
        }
    }

    fn state(&self) -> Json {
        let mode = match self.regs[0xf4] & 3 {
            0 => "sleep",
            3 => "normal",
            _ => "forced",
        };
        let mut s = json!({
            "chip_id": format!("0x{:02x}", self.chip_id),
            "mode": mode,
            "temperature": self.t,
            "pressure": self.p,
            "conversions": self.conversions,
            "early_reads": self.early_reads,
        });
        if self.humidity {
            s["humidity"] = json!(self.h);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverted_raw_values_compensate_back_to_the_scene() {
        for (t, p, h) in [
            (21.0, 1013.25, 45.0),
            (-10.5, 870.0, 5.0),
            (38.2, 1050.0, 97.0),
        ] {
            let adc_t = adc_t_for(t);
            let t_fine = CALIB.t_fine(adc_t);
            let got_t = Calib::temperature(t_fine) as f64 / 100.0;
            assert!((got_t - t).abs() <= 0.011, "{t}: {got_t}");
            let got_p = CALIB.pressure(t_fine, adc_p_for(t_fine, p)).unwrap() as f64 / 25600.0;
            assert!((got_p - p).abs() < 0.01, "{p}: {got_p}");
            let got_h = CALIB.humidity(t_fine, adc_h_for(t_fine, h)) as f64 / 1024.0;
            assert!((got_h - h).abs() < 0.01, "{h}: {got_h}");
        }
    }
}
