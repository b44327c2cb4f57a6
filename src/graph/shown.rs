//! Numbers and values as log lines show them to people. Only for display: the store,
//! JSON and MQTT keep every value exact.

use std::fmt;

use super::Value;

/// A number rounded for reading: at most 4 decimals (4 significant digits below 1, so
/// small values do not vanish), trailing zeros trimmed. Float noise such as
/// `1.3199999999999998` shows as `1.32`; `45.5` stays `45.5`; at most 15 significant
/// digits in all. Formats without allocating.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Approx(pub f64);

/// Decimals beyond which a small number is shown in exponent form instead.
const MAX_DECIMALS: usize = 12;

impl fmt::Display for Approx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        let a = x.abs();
        // Whole numbers, huge ones and NaN/inf: Rust's own shortest form is already clean.
        if !x.is_finite() || x.fract() == 0.0 || a >= 1e15 {
            return write!(f, "{x}");
        }
        let decimals = if a >= 1.0 {
            // At most 15 significant digits in all: past them an f64 shows noise too.
            let int_digits = a.log10().floor() as usize + 1;
            4.min(15usize.saturating_sub(int_digits))
        } else {
            // 4 significant digits: 0.45 -> 4 decimals, 0.000123456 -> 7.
            (3 - a.log10().floor() as i64) as usize
        };
        if decimals > MAX_DECIMALS {
            return write!(f, "{x:.3e}");
        }
        let mut buf = Buf::default();
        fmt::write(&mut buf, format_args!("{x:.decimals$}"))?;
        let s = buf.as_str();
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            s
        };
        f.write_str(if s == "-0" { "0" } else { s })
    }
}

/// A value followed by its source's unit (`45.5 °C`), or alone when the unit is empty.
#[derive(Clone, Copy, Debug)]
pub struct WithUnit<'a>(pub Value, pub &'a str);

impl fmt::Display for WithUnit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1.trim() {
            "" => write!(f, "{}", self.0),
            unit => write!(f, "{} {unit}", self.0),
        }
    }
}

/// A stack buffer long enough for any number [`Approx`] formats with decimals
/// (sign, 15 integer digits, point, 4 decimals; or "-0." and 12 decimals).
#[derive(Default)]
struct Buf {
    bytes: [u8; 32],
    len: usize,
}

impl Buf {
    fn as_str(&self) -> &str {
        // Only ASCII digits, '-' and '.' are written.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.bytes.len() {
            return Err(fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(x: f64) -> String {
        Approx(x).to_string()
    }

    #[test]
    fn float_noise_is_rounded_away_and_clean_numbers_stay() {
        assert_eq!(shown(1.3199999999999998), "1.32");
        assert_eq!(shown(0.1 + 0.2), "0.3");
        assert_eq!(shown(45.5), "45.5");
        assert_eq!(shown(22886.0), "22886");
        assert_eq!(shown(0.0), "0");
        assert_eq!(shown(-0.0), "-0");
        assert_eq!(shown(-2.5), "-2.5");
        assert_eq!(shown(37.123456789), "37.1235");
        assert_eq!(shown(-37.123449), "-37.1234");
        assert_eq!(shown(99999.99999), "100000");
        assert_eq!(shown(1000.5 - 0.5 + 1e-9), "1000");
        assert_eq!(shown(-0.00001), "-0.00001");
        assert_eq!(shown(-0.000000000000001), "-1.000e-15");
    }

    #[test]
    fn small_numbers_keep_four_significant_digits() {
        assert_eq!(shown(0.45), "0.45");
        assert_eq!(shown(0.123456), "0.1235");
        assert_eq!(shown(0.000123456), "0.0001235");
        assert_eq!(shown(0.0001), "0.0001");
        assert_eq!(shown(1e-20), "1.000e-20");
    }

    #[test]
    fn limits_and_non_finite_values() {
        assert_eq!(shown(f64::NAN), "NaN");
        assert_eq!(shown(f64::INFINITY), "inf");
        assert_eq!(shown(1e300), format!("{}", 1e300));
        assert_eq!(shown(123_456_789_012_345.67), "123456789012346");
        assert_eq!(shown(12_345_678_901.123_457), "12345678901.1235");
        assert_eq!(shown(-999_999_999_999_999.9), "-1000000000000000");
        assert_eq!(shown(f64::MIN_POSITIVE), "2.225e-308");
    }

    #[test]
    fn values_show_their_unit() {
        assert_eq!(
            WithUnit(Value::Number(1.3199999999999998), "°C").to_string(),
            "1.32 °C"
        );
        assert_eq!(WithUnit(Value::Bool(true), "").to_string(), "true");
        assert_eq!(WithUnit(Value::Number(2.0), " ").to_string(), "2");
    }
}
