//! The BME280/BMP280 datasheets' integer compensation (BME280 §4.2.3 and §8.2, BMP280
//! §3.11.3): raw ADC counts and the chip's factory calibration to °C, Pa and %RH. Pure
//! functions, so the unit tests check them against the datasheet's worked example and the
//! mock chip inverts them.

/// The factory calibration words (registers 0x88..0xA1 and, on a BME280, 0xE1..0xE7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Calib {
    pub t1: u16,
    pub t2: i16,
    pub t3: i16,
    pub p1: u16,
    pub p2: i16,
    pub p3: i16,
    pub p4: i16,
    pub p5: i16,
    pub p6: i16,
    pub p7: i16,
    pub p8: i16,
    pub p9: i16,
    pub h1: u8,
    pub h2: i16,
    pub h3: u8,
    pub h4: i16,
    pub h5: i16,
    pub h6: i8,
}

impl Calib {
    /// From the 26 bytes at 0x88 (temperature and pressure words, little-endian; 0xA1 is
    /// dig_H1) and the 7 at 0xE1 (humidity; all zero on a BMP280, which has none).
    pub fn from_registers(tp: &[u8; 26], h: &[u8; 7]) -> Calib {
        let u = |i: usize| u16::from_le_bytes([tp[i], tp[i + 1]]);
        let s = |i: usize| u(i) as i16;
        Calib {
            t1: u(0),
            t2: s(2),
            t3: s(4),
            p1: u(6),
            p2: s(8),
            p3: s(10),
            p4: s(12),
            p5: s(14),
            p6: s(16),
            p7: s(18),
            p8: s(20),
            p9: s(22),
            h1: tp[25],
            h2: i16::from_le_bytes([h[0], h[1]]),
            h3: h[2],
            // dig_H4 = 0xE4[7:0] << 4 | 0xE5[3:0]; dig_H5 = 0xE6[7:0] << 4 | 0xE5[7:4],
            // both 12-bit signed (the high byte carries the sign).
            h4: ((h[3] as i8 as i16) << 4) | (h[4] & 0x0f) as i16,
            h5: ((h[5] as i8 as i16) << 4) | (h[4] >> 4) as i16,
            h6: h[6] as i8,
        }
    }

    /// The inverse of [`Calib::from_registers`], for the mock chip.
    pub fn to_registers(self) -> ([u8; 26], [u8; 7]) {
        let mut tp = [0u8; 26];
        let words = [
            self.t1,
            self.t2 as u16,
            self.t3 as u16,
            self.p1,
            self.p2 as u16,
            self.p3 as u16,
            self.p4 as u16,
            self.p5 as u16,
            self.p6 as u16,
            self.p7 as u16,
            self.p8 as u16,
            self.p9 as u16,
        ];
        for (i, w) in words.iter().enumerate() {
            tp[2 * i..2 * i + 2].copy_from_slice(&w.to_le_bytes());
        }
        tp[25] = self.h1;
        let h2 = self.h2.to_le_bytes();
        let h = [
            h2[0],
            h2[1],
            self.h3,
            (self.h4 >> 4) as u8,
            (self.h4 & 0x0f) as u8 | ((self.h5 & 0x0f) << 4) as u8,
            (self.h5 >> 4) as u8,
            self.h6 as u8,
        ];
        (tp, h)
    }

    /// t_fine, the temperature every other formula needs (§4.2.3's `t_fine`).
    pub fn t_fine(&self, adc_t: i32) -> i32 {
        // In i64: a garbage calibration must not overflow (the results agree with the
        // datasheet's 32-bit arithmetic wherever that does not overflow).
        let (adc_t, t1, t2, t3) = (adc_t as i64, self.t1 as i64, self.t2 as i64, self.t3 as i64);
        let var1 = (((adc_t >> 3) - (t1 << 1)) * t2) >> 11;
        let d = (adc_t >> 4) - t1;
        let var2 = (((d * d) >> 12) * t3) >> 14;
        (var1 + var2) as i32
    }

    /// Temperature in 0.01 °C (2508 is 25.08 °C).
    pub fn temperature(t_fine: i32) -> i32 {
        ((t_fine as i64 * 5 + 128) >> 8) as i32
    }

    /// Pressure in Pa × 256 (Q24.8), the 64-bit formula; `None` for a calibration that
    /// would divide by zero (a chip answering garbage).
    pub fn pressure(&self, t_fine: i32, adc_p: i32) -> Option<u32> {
        let mut var1 = t_fine as i64 - 128000;
        let mut var2 = var1 * var1 * self.p6 as i64;
        var2 += (var1 * self.p5 as i64) << 17;
        var2 += (self.p4 as i64) << 35;
        var1 = ((var1 * var1 * self.p3 as i64) >> 8) + ((var1 * self.p2 as i64) << 12);
        var1 = (((1i64 << 47) + var1) * self.p1 as i64) >> 33;
        if var1 == 0 {
            return None;
        }
        let mut p: i64 = 1048576 - adc_p as i64;
        p = (((p << 31) - var2) * 3125) / var1;
        let var1 = (self.p9 as i64 * (p >> 13) * (p >> 13)) >> 25;
        let var2 = (self.p8 as i64 * p) >> 19;
        p = ((p + var1 + var2) >> 8) + ((self.p7 as i64) << 4);
        Some(p as u32)
    }

    /// Relative humidity in %RH × 1024 (Q22.10), clamped to 0..100 %.
    pub fn humidity(&self, t_fine: i32, adc_h: i32) -> u32 {
        // In i64 for the same reason as `t_fine`.
        let (h1, h2, h3) = (self.h1 as i64, self.h2 as i64, self.h3 as i64);
        let (h4, h5, h6) = (self.h4 as i64, self.h5 as i64, self.h6 as i64);
        let (adc_h, x) = (adc_h as i64, t_fine as i64 - 76800);
        let mut v = (((adc_h << 14) - (h4 << 20) - (h5 * x)) + 16384) >> 15;
        v *=
            ((((((x * h6) >> 10) * (((x * h3) >> 11) + 32768)) >> 10) + 2097152) * h2 + 8192) >> 14;
        v -= ((((v >> 15) * (v >> 15)) >> 7) * h1) >> 4;
        v = v.clamp(0, 419430400);
        (v >> 12) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The BMP280 datasheet's worked example (§3.12, table 16).
    fn datasheet() -> Calib {
        Calib {
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
            ..Calib::default()
        }
    }

    #[test]
    fn the_datasheet_example_gives_the_datasheet_results() {
        let c = datasheet();
        let t_fine = c.t_fine(519888);
        // The table's t_fine is 128422 (float) and T = 25.08 °C.
        assert_eq!(t_fine, 128422);
        assert_eq!(Calib::temperature(t_fine), 2508);
        // 100653.27 Pa with the datasheet's float formula (as the table says); the 64-bit
        // integer one agrees to a few 1/256 Pa.
        let tf = t_fine_float(&c, 519888);
        assert!((tf - 128422.2869).abs() < 0.001, "{tf}");
        let pf = pressure_float(&c, tf, 415148);
        assert!((pf - 100653.27).abs() < 0.005, "{pf}");
        let p = c.pressure(t_fine, 415148).unwrap() as f64 / 256.0;
        assert!((p - 100653.27).abs() < 0.05, "{p}");
        assert_eq!(p.round(), 100653.0);
    }

    /// The datasheet's double-precision t_fine.
    fn t_fine_float(c: &Calib, adc_t: i32) -> f64 {
        let (a, t1) = (adc_t as f64, c.t1 as f64);
        let var1 = (a / 16384.0 - t1 / 1024.0) * c.t2 as f64;
        let d = a / 131072.0 - t1 / 8192.0;
        var1 + d * d * c.t3 as f64
    }

    /// The datasheet's double-precision pressure formula (BMP280 §3.11.3).
    fn pressure_float(c: &Calib, t_fine: f64, adc_p: i32) -> f64 {
        let mut var1 = t_fine / 2.0 - 64000.0;
        let mut var2 = var1 * var1 * c.p6 as f64 / 32768.0;
        var2 += var1 * c.p5 as f64 * 2.0;
        var2 = var2 / 4.0 + c.p4 as f64 * 65536.0;
        var1 = (c.p3 as f64 * var1 * var1 / 524288.0 + c.p2 as f64 * var1) / 524288.0;
        var1 = (1.0 + var1 / 32768.0) * c.p1 as f64;
        let mut p = 1048576.0 - adc_p as f64;
        p = (p - var2 / 4096.0) * 6250.0 / var1;
        let var1 = c.p9 as f64 * p * p / 2147483648.0;
        let var2 = p * c.p8 as f64 / 32768.0;
        p + (var1 + var2 + c.p7 as f64) / 16.0
    }

    #[test]
    fn registers_round_trip_including_the_split_humidity_words() {
        let c = Calib {
            h1: 75,
            h2: 362,
            h3: 0,
            h4: 313,
            h5: -50,
            h6: 30,
            ..datasheet()
        };
        let (tp, h) = c.to_registers();
        assert_eq!(Calib::from_registers(&tp, &h), c);
        // 0x88 holds dig_T1's low byte: 27504 = 0x6B70.
        assert_eq!((tp[0], tp[1]), (0x70, 0x6b));
        // 0xE4 = 313 >> 4, 0xE5 = 313 & 0xF | (-50 & 0xF) << 4, 0xE6 = -50 >> 4.
        assert_eq!((h[3], h[4], h[5]), (0x13, 0xe9, 0xfc));
    }

    /// The datasheet's double-precision humidity formula (§8.1), to check the integer one.
    fn humidity_float(c: &Calib, t_fine: i32, adc_h: i32) -> f64 {
        let x = t_fine as f64 - 76800.0;
        let mut h = (adc_h as f64 - (c.h4 as f64 * 64.0 + c.h5 as f64 / 16384.0 * x))
            * (c.h2 as f64 / 65536.0
                * (1.0 + c.h6 as f64 / 67108864.0 * x * (1.0 + c.h3 as f64 / 67108864.0 * x)));
        h *= 1.0 - c.h1 as f64 * h / 524288.0;
        h.clamp(0.0, 100.0)
    }

    #[test]
    fn integer_humidity_agrees_with_the_float_formula() {
        // A real BME280's humidity calibration.
        let c = Calib {
            h1: 75,
            h2: 362,
            h3: 0,
            h4: 313,
            h5: 50,
            h6: 30,
            ..datasheet()
        };
        let t_fine = c.t_fine(519888);
        for adc_h in [20000, 25000, 30000, 33000, 36000] {
            let int = c.humidity(t_fine, adc_h) as f64 / 1024.0;
            let float = humidity_float(&c, t_fine, adc_h);
            assert!((int - float).abs() < 0.05, "{adc_h}: {int} vs {float}");
        }
        // Plausible values: about 50 %RH mid-range, clamped at both ends.
        let mid = c.humidity(t_fine, 29000) as f64 / 1024.0;
        assert!((40.0..60.0).contains(&mid), "{mid}");
        assert_eq!(c.humidity(t_fine, 0), 0);
        assert_eq!(c.humidity(t_fine, 65535), 100 * 1024);
    }
}
