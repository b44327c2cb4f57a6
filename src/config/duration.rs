//! Human durations in config: `"500ms"`, `"10s"`, `"5m"`, `"1h"`, `"7d"`, `"2w"`, `"1y"`
//! (a year is 365 days).

use crate::graph::Micros;

/// Parse a duration string into microseconds; the error says what is accepted.
pub fn parse_duration(s: &str) -> Result<Micros, String> {
    let s = s.trim();
    if s.starts_with('-') {
        return Err(format!(
            "'{s}' is negative; durations are zero or more, e.g. \"10s\""
        ));
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration; write a number and a unit, e.g. \"500ms\", \"10s\", \"5m\", \"1h\", \"7d\""))?;
    let scale: f64 = match unit.trim() {
        "us" | "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" | "min" => 60e6,
        "h" => 3600e6,
        "d" => 86_400e6,
        "w" => 7.0 * 86_400e6,
        "y" => 365.0 * 86_400e6,
        "" => {
            return Err(format!(
                "'{s}' has no unit; write e.g. \"{s}s\" for seconds"
            ));
        }
        u => {
            return Err(format!(
                "unknown unit '{u}' in '{s}'; use ms, s, m, h, d, w or y"
            ));
        }
    };
    Ok((n * scale).round() as Micros)
}

/// Format microseconds the way config writes them (`10s`, `5m`, `1h`, `250ms`).
pub fn format_duration(us: Micros) -> String {
    const UNITS: [(Micros, &str); 5] = [
        (86_400_000_000, "d"),
        (3_600_000_000, "h"),
        (60_000_000, "m"),
        (1_000_000, "s"),
        (1_000, "ms"),
    ];
    for (scale, unit) in UNITS {
        if us != 0 && us % scale == 0 {
            return format!("{}{unit}", us / scale);
        }
    }
    if us % 1000 == 0 {
        return format!("{}ms", us / 1000);
    }
    format!("{us}us")
}

/// A duration that formats itself like config writes it, for log lines: the string is
/// built only if the line is actually written.
pub struct Dur(pub Micros);

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("500ms"), Ok(500_000));
        assert_eq!(parse_duration("10s"), Ok(10_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000));
        assert_eq!(parse_duration("5m"), Ok(300_000_000));
        assert_eq!(parse_duration("7d"), Ok(7 * 86_400_000_000));
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(
            parse_duration("10 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_duration("fast").is_err());
        assert_eq!(parse_duration("1y"), Ok(365 * 86_400_000_000));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400_000_000));
        assert!(parse_duration("-5s").unwrap_err().contains("negative"));
    }

    #[test]
    fn formats_round_trip() {
        for s in ["10s", "5m", "1h", "7d", "250ms"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
