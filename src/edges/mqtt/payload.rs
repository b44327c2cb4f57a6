//! Inbound payload parsing and outbound payload encoding.
//!
//! Outbound, the batch on `<prefix>/<node>/readings` is the Python original's edge format,
//! so a Python master consumes a Rust node unchanged:
//!
//! ```json
//! {"node":"kitchen","timestamp":1795771723.5,"readings":[
//!   {"source":"system:cpu_temp","value":45.3,"unit":"celsius","ts":"2026-11-27T09:28:43.123456+00:00"}]}
//! ```
//!
//! `ts` is ISO 8601 with an explicit `+00:00` (Python 3.10's `datetime.fromisoformat`
//! rejects `Z`, and older masters parse `ts` only with `fromisoformat`; newer ones also
//! accept epoch seconds). Inbound, a batch's `ts` may be either form.
//!
//! Inbound, a message is (in this order) an edge batch, a bare number or boolean, or a
//! JSON document from which a configured JSON pointer picks one scalar.

use crate::clock::{civil_from_days, days_from_civil};
use crate::graph::reading::value_json;
use crate::graph::{MICROS_PER_SEC, Micros, ShortText, Value};
use serde_json::Value as Json;

/// One reading to publish in a batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutReading<'a> {
    /// Full source id, e.g. `system:cpu_temp`.
    pub source: &'a str,
    pub value: Value,
    /// Empty when the source has no unit (published as `null`).
    pub unit: &'a str,
    pub ts: Micros,
}

/// The edge batch: `{"node", "timestamp" (epoch seconds, float), "readings": [{"source",
/// "value", "unit" (null when empty), "ts" (ISO 8601, `+00:00`)}]}`. Keys are written in
/// the original's order; non-finite numbers become `null`.
pub fn encode_batch(node: &str, now: Micros, readings: &[OutReading<'_>]) -> Vec<u8> {
    let mut out = String::with_capacity(64 + readings.len() * 112);
    out.push_str("{\"node\":");
    push_json_str(&mut out, node);
    out.push_str(",\"timestamp\":");
    out.push_str(&Json::from(now as f64 / MICROS_PER_SEC as f64).to_string());
    out.push_str(",\"readings\":[");
    for (i, r) in readings.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"source\":");
        push_json_str(&mut out, r.source);
        out.push_str(",\"value\":");
        out.push_str(&value_json(&r.value).to_string());
        out.push_str(",\"unit\":");
        push_unit(&mut out, r.unit);
        out.push_str(",\"ts\":\"");
        out.push_str(&iso8601_offset(r.ts));
        out.push_str("\"}");
    }
    out.push_str("]}");
    out.into_bytes()
}

/// A single source's retained state: `{"value": v, "unit": unit|null, "time": iso}`.
pub fn encode_state(value: Value, unit: &str, ts: Micros) -> Vec<u8> {
    let mut out = String::with_capacity(96);
    out.push_str("{\"value\":");
    out.push_str(&value_json(&value).to_string());
    out.push_str(",\"unit\":");
    push_unit(&mut out, unit);
    out.push_str(",\"time\":\"");
    out.push_str(&iso8601_offset(ts));
    out.push_str("\"}");
    out.into_bytes()
}

fn push_json_str(out: &mut String, s: &str) {
    out.push_str(&Json::String(s.to_owned()).to_string());
}

fn push_unit(out: &mut String, unit: &str) {
    if unit.is_empty() {
        out.push_str("null");
    } else {
        push_json_str(out, unit);
    }
}

/// ISO 8601 in UTC with microseconds and an explicit offset, e.g.
/// `2026-11-27T09:28:43.123456+00:00`: fixed width (for years 0000-9999), so it sorts
/// lexically, and exactly what Python's `datetime.isoformat()` gives for a UTC time with
/// a non-zero microsecond.
pub fn iso8601_offset(ts: Micros) -> String {
    let secs = ts.div_euclid(MICROS_PER_SEC);
    let micros = ts.rem_euclid(MICROS_PER_SEC);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}+00:00",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Parses `YYYY-MM-DD[T| ]HH:MM:SS[.fraction][Z|±HH:MM|±HHMM]` (the fraction 1-9
/// digits, truncated to microseconds; `T`/`Z` in either case) into µs since the epoch.
/// Without an offset the time is taken as UTC. Out-of-range fields (month 13, Feb 30,
/// hour 24, second 60, offset hour 24) and trailing text give `None`.
pub fn parse_iso8601(s: &str) -> Option<Micros> {
    let b = s.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let expect = |at: usize, c: u8| b.get(at) == Some(&c);

    let year = num(0, 4)?;
    if !expect(4, b'-') || !expect(7, b'-') || !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (month, day) = (num(5, 2)?, num(8, 2)?);
    if !expect(13, b':') || !expect(16, b':') {
        return None;
    }
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }

    let mut i = 19;
    let mut micros = 0i64;
    if expect(i, b'.') || expect(i, b',') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let n = i - start;
        if !(1..=9).contains(&n) {
            return None;
        }
        for k in 0..6 {
            let digit = if k < n {
                i64::from(b[start + k] - b'0')
            } else {
                0
            };
            micros = micros * 10 + digit;
        }
    }

    let offset_secs = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = num(i + 1, 2)?;
            let (om, end) = if expect(i + 3, b':') {
                (num(i + 4, 2)?, i + 6)
            } else {
                (num(i + 3, 2)?, i + 5)
            };
            if end != b.len() || oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if sign == b'+' { off } else { -off }
        }
        _ => return None,
    };

    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs * MICROS_PER_SEC + micros)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// One value taken from an inbound message, ready to intern and push into the graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Inbound {
    /// Full id to intern: `<node>:<source>` from a batch, `mqtt:<topic>` otherwise.
    pub name: String,
    /// Empty when unknown.
    pub unit: String,
    pub value: Value,
    /// The reading's own time when the message carried one; `None` means "now".
    pub ts: Option<Micros>,
}

/// What one inbound message gave: its readings, and the batch items that were skipped
/// because their value was null, missing, an object or an array (counted as malformed).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    pub readings: Vec<Inbound>,
    pub malformed_items: u32,
    /// Why the first malformed item was skipped (for the debug log).
    pub first_problem: Option<String>,
}

impl Parsed {
    fn of(readings: Vec<Inbound>) -> Parsed {
        Parsed {
            readings,
            ..Parsed::default()
        }
    }
}

/// Why an inbound message gave no readings.
#[derive(Clone, Debug, PartialEq)]
pub enum PayloadError {
    NotUtf8,
    TooLarge { len: usize, max: usize },
    Unrecognised(String),
    BadBatch(String),
    PointerMissing(String),
    NotScalar(String),
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PayloadError::NotUtf8 => f.write_str("payload is not UTF-8"),
            PayloadError::TooLarge { len, max } => {
                write!(f, "payload is {len} bytes, more than the limit of {max}")
            }
            PayloadError::Unrecognised(why) => write!(f, "unrecognised payload: {why}"),
            PayloadError::BadBatch(why) => write!(f, "malformed readings batch: {why}"),
            PayloadError::PointerMissing(p) => write!(f, "JSON pointer {p:?} not found"),
            PayloadError::NotScalar(p) => write!(
                f,
                "JSON pointer {p:?} points at an object, array or null, not a number, boolean or string"
            ),
        }
    }
}

impl std::error::Error for PayloadError {}

/// Parses one inbound message into zero or more values:
///
/// 1. longer than `max_len` bytes -> [`PayloadError::TooLarge`]; not UTF-8 -> `NotUtf8`;
/// 2. on a topic ending in `/readings`, a JSON object with a `readings` key is an edge
///    batch (see [`parse_batch`]);
/// 3. a bare finite number, or `true`/`false`/`on`/`off` (any case), named `mqtt:<topic>`;
/// 4. with `pointer`, a JSON object or array: the scalar at that JSON pointer (a leading
///    `/` is added when missing), named `mqtt:<topic>`;
/// 5. anything else -> `Unrecognised`.
pub fn parse_inbound(
    topic: &str,
    payload: &[u8],
    pointer: Option<&str>,
    max_len: usize,
) -> Result<Parsed, PayloadError> {
    if payload.len() > max_len {
        return Err(PayloadError::TooLarge {
            len: payload.len(),
            max: max_len,
        });
    }
    let text = std::str::from_utf8(payload).map_err(|_| PayloadError::NotUtf8)?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(PayloadError::Unrecognised("empty payload".into()));
    }

    let looks_json = trimmed.starts_with('{') || trimmed.starts_with('[');
    let doc: Option<Result<Json, serde_json::Error>> =
        looks_json.then(|| serde_json::from_str(trimmed));

    if topic.ends_with("/readings")
        && let Some(Ok(Json::Object(obj))) = &doc
        && let Some(readings) = obj.get("readings")
    {
        return parse_batch(topic, obj, readings);
    }

    if let Some(value) = bare_scalar(trimmed) {
        return Ok(Parsed::of(vec![single(topic, value)]));
    }

    match doc {
        Some(Err(e)) => Err(PayloadError::Unrecognised(format!("invalid JSON: {e}"))),
        Some(Ok(doc)) => match pointer {
            Some(p) => {
                let path = if p.is_empty() || p.starts_with('/') {
                    p.to_owned()
                } else {
                    format!("/{p}")
                };
                match doc.pointer(&path) {
                    None => Err(PayloadError::PointerMissing(p.to_owned())),
                    Some(v) => json_scalar(v)
                        .map(|value| Parsed::of(vec![single(topic, value)]))
                        .ok_or_else(|| PayloadError::NotScalar(p.to_owned())),
                }
            }
            None => Err(PayloadError::Unrecognised(
                "a JSON document but not an edge batch; set a JSON pointer to pick a value".into(),
            )),
        },
        None => Err(PayloadError::Unrecognised(
            "not a number, boolean or edge batch; set a JSON pointer for JSON objects".into(),
        )),
    }
}

fn single(topic: &str, value: Value) -> Inbound {
    Inbound {
        name: format!("mqtt:{topic}"),
        unit: String::new(),
        value,
        ts: None,
    }
}

/// A bare payload: a finite number, or a boolean word.
fn bare_scalar(s: &str) -> Option<Value> {
    if let Ok(x) = s.parse::<f64>() {
        return x.is_finite().then_some(Value::Number(x));
    }
    if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("on") {
        Some(Value::Bool(true))
    } else if s.eq_ignore_ascii_case("false") || s.eq_ignore_ascii_case("off") {
        Some(Value::Bool(false))
    } else {
        None
    }
}

/// The value under a JSON pointer: numbers and booleans as themselves, a numeric string
/// as a number, other strings as (truncated) text; objects, arrays, null and non-finite
/// numbers give `None`.
fn json_scalar(v: &Json) -> Option<Value> {
    match v {
        Json::Number(n) => n.as_f64().filter(|x| x.is_finite()).map(Value::Number),
        Json::Bool(b) => Some(Value::Bool(*b)),
        Json::String(s) => Some(match s.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => Value::Number(x),
            _ => Value::Text(ShortText::new(s)),
        }),
        _ => None,
    }
}

/// The original's edge batch. The node is the topic's second-to-last level when the
/// topic has at least three levels, else the payload's `node` string, else `unknown`
/// (an empty level also gives `unknown`). Items whose value is null, missing, an object
/// or an array are skipped and counted in [`Parsed::malformed_items`].
fn parse_batch(
    topic: &str,
    obj: &serde_json::Map<String, Json>,
    readings: &Json,
) -> Result<Parsed, PayloadError> {
    let Json::Array(items) = readings else {
        return Err(PayloadError::BadBatch(format!(
            "\"readings\" is {}, not an array",
            json_kind(readings)
        )));
    };
    let levels: Vec<&str> = topic.split('/').collect();
    let node = if levels.len() >= 3 {
        levels[levels.len() - 2]
    } else {
        obj.get("node").and_then(Json::as_str).unwrap_or("unknown")
    };
    let node = if node.is_empty() { "unknown" } else { node };

    let mut out = Parsed {
        readings: Vec::with_capacity(items.len()),
        ..Parsed::default()
    };
    for (i, item) in items.iter().enumerate() {
        let Json::Object(item) = item else {
            return Err(PayloadError::BadBatch(format!(
                "reading {i} is {}, not an object",
                json_kind(item)
            )));
        };
        let value = match item.get("value") {
            Some(Json::Number(n)) => n.as_f64().filter(|x| x.is_finite()).map(Value::Number),
            Some(Json::Bool(b)) => Some(Value::Bool(*b)),
            Some(Json::String(s)) => Some(Value::Text(ShortText::new(s))),
            _ => None,
        };
        let Some(value) = value else {
            out.malformed_items += 1;
            if out.first_problem.is_none() {
                let what = item.get("value").map_or("missing", json_kind);
                out.first_problem = Some(format!("reading {i}: value is {what}"));
            }
            continue;
        };
        let source = match item.get("source") {
            Some(Json::String(s)) => s.clone(),
            None | Some(Json::Null) => "unknown".to_owned(),
            Some(other) => other.to_string(),
        };
        let unit = item
            .get("unit")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_owned();
        out.readings.push(Inbound {
            name: format!("{node}:{source}"),
            unit,
            value,
            ts: item.get("ts").and_then(batch_ts),
        });
    }
    Ok(out)
}

/// A batch item's `ts`: ISO 8601 (this port, older Python edges) or epoch seconds as a
/// number or numeric string (newer Python edges).
fn batch_ts(v: &Json) -> Option<Micros> {
    let secs = match v {
        Json::String(s) => match s.trim().parse::<f64>() {
            Ok(x) => x,
            Err(_) => return parse_iso8601(s),
        },
        Json::Number(n) => n.as_f64()?,
        _ => return None,
    };
    let us = (secs * MICROS_PER_SEC as f64).round();
    // Beyond ±292,000 years the cast would saturate: treat it as garbage.
    (us.is_finite() && us.abs() < 9.0e18).then_some(us as Micros)
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: Micros = 1_795_771_723_123_456; // 2026-11-27T09:28:43.123456Z
    const MAX: usize = 64 * 1024;

    fn num(x: f64) -> Value {
        Value::Number(x)
    }

    fn text(s: &str) -> Value {
        Value::Text(ShortText::new(s))
    }

    fn parse(topic: &str, payload: &str) -> Result<Vec<Inbound>, PayloadError> {
        parse_inbound(topic, payload.as_bytes(), None, MAX).map(|p| p.readings)
    }

    fn one(topic: &str, payload: &str, pointer: Option<&str>) -> Value {
        let p = parse_inbound(topic, payload.as_bytes(), pointer, MAX).unwrap();
        assert_eq!(p.malformed_items, 0);
        let v = p.readings;
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].name, format!("mqtt:{topic}"));
        assert_eq!(v[0].unit, "");
        assert_eq!(v[0].ts, None);
        v[0].value
    }

    #[test]
    fn iso_formats_with_offset_and_micros() {
        assert_eq!(iso8601_offset(0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(iso8601_offset(T0), "2026-11-27T09:28:43.123456+00:00");
        assert_eq!(
            iso8601_offset(951_782_400_000_000),
            "2000-02-29T00:00:00.000000+00:00"
        );
        assert_eq!(iso8601_offset(-1), "1969-12-31T23:59:59.999999+00:00");
    }

    #[test]
    fn iso_parses_offsets_and_fractions() {
        let base = 1_795_771_723_000_000; // 2026-11-27T09:28:43Z
        let cases: &[(&str, Micros)] = &[
            ("2026-11-27T09:28:43", base),
            ("2026-11-27 09:28:43", base),
            ("2026-11-27t09:28:43z", base),
            ("2026-11-27T09:28:43Z", base),
            ("2026-11-27T09:28:43+00:00", base),
            ("2026-11-27T09:28:43-00:00", base),
            ("2026-11-27T10:28:43+01:00", base),
            ("2026-11-27T10:28:43+0100", base),
            ("2026-11-27T04:28:43-05:00", base),
            ("2026-11-27T15:13:43+05:45", base),
            ("2026-11-26T23:28:43-10:00", base),
            ("  2026-11-27T09:28:43Z\n", base),
            ("2026-11-27T09:28:43.1Z", base + 100_000),
            ("2026-11-27T09:28:43.12+00:00", base + 120_000),
            ("2026-11-27T09:28:43.123", base + 123_000),
            ("2026-11-27T09:28:43.1234Z", base + 123_400),
            ("2026-11-27T09:28:43.12345Z", base + 123_450),
            ("2026-11-27T09:28:43.123456+00:00", T0),
            ("2026-11-27T09:28:43.1234567Z", T0),
            ("2026-11-27T09:28:43.12345678Z", T0),
            ("2026-11-27T09:28:43.123456789Z", T0),
            ("2026-11-27T09:28:43,5Z", base + 500_000),
            ("2026-11-27T11:28:43.123456+02:00", T0),
            ("1970-01-01T00:00:00Z", 0),
            ("1969-12-31T23:59:59.5Z", -500_000),
            ("2000-02-29T00:00:00Z", 951_782_400_000_000),
        ];
        for (s, want) in cases {
            assert_eq!(parse_iso8601(s), Some(*want), "{s}");
        }
        for bad in [
            "",
            "2026-11-27",
            "2026-11-27T09:28",
            "2026-11-27T09:28:43.",
            "2026-11-27T09:28:43.1234567890Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T09:60:00Z",
            "2026-11-27T09:28:60Z",
            "2026-11-27T09:28:43+24:00",
            "2026-11-27T09:28:43+01:60",
            "2026-11-27T09:28:43+1",
            "2026-11-27T09:28:43+01:0",
            "2026-11-27T09:28:43Zjunk",
            "2026-11-27T09:28:43+01:00junk",
            "2026-11-27X09:28:43",
            "2026/11/27T09:28:43",
            "20261127T092843Z",
            "2026-1a-27T09:28:43",
            "1795771723.5",
            "2026-11-27T09:28:43é",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn iso_round_trips() {
        for ts in [0, T0, -1, 1, 951_782_400_000_000, 4_102_444_799_999_999] {
            assert_eq!(parse_iso8601(&iso8601_offset(ts)), Some(ts), "{ts}");
        }
        // A day walk over several leap cycles catches civil-date slips.
        let mut ts: Micros = -86_400 * 1_000_000 * 800;
        while ts < 86_400 * 1_000_000 * 40_000 {
            assert_eq!(parse_iso8601(&iso8601_offset(ts)), Some(ts));
            ts += 86_400 * 1_000_000 * 7 + 3_723_000_001;
        }
    }

    #[test]
    fn batch_matches_the_original_format() {
        let out = encode_batch(
            "kitchen",
            1_795_771_723_500_000,
            &[
                OutReading {
                    source: "system:cpu_temp",
                    value: num(45.3),
                    unit: "celsius",
                    ts: T0,
                },
                OutReading {
                    source: "gpio:door",
                    value: Value::Bool(true),
                    unit: "",
                    ts: 0,
                },
                OutReading {
                    source: "battery:state",
                    value: text("charging \"fast\""),
                    unit: "",
                    ts: T0,
                },
                OutReading {
                    source: "x:nan",
                    value: num(f64::NAN),
                    unit: "u",
                    ts: T0,
                },
                OutReading {
                    source: "x:inf",
                    value: num(f64::NEG_INFINITY),
                    unit: "u",
                    ts: T0,
                },
            ],
        );
        let text = std::str::from_utf8(&out).unwrap();
        // The original's key order.
        assert!(
            text.starts_with(r#"{"node":"kitchen","timestamp":1795771723.5,"readings":[{"source":"system:cpu_temp","value":45.3,"unit":"celsius","ts":"2026-11-27T09:28:43.123456+00:00"}"#),
            "{text}"
        );
        let v: Json = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({
                "node": "kitchen",
                "timestamp": 1_795_771_723.5,
                "readings": [
                    {"source": "system:cpu_temp", "value": 45.3, "unit": "celsius",
                     "ts": "2026-11-27T09:28:43.123456+00:00"},
                    {"source": "gpio:door", "value": true, "unit": null,
                     "ts": "1970-01-01T00:00:00.000000+00:00"},
                    {"source": "battery:state", "value": "charging \"fast\"", "unit": null,
                     "ts": "2026-11-27T09:28:43.123456+00:00"},
                    {"source": "x:nan", "value": null, "unit": "u",
                     "ts": "2026-11-27T09:28:43.123456+00:00"},
                    {"source": "x:inf", "value": null, "unit": "u",
                     "ts": "2026-11-27T09:28:43.123456+00:00"},
                ]
            })
        );
        assert!(v["timestamp"].is_f64());

        let empty: Json = serde_json::from_slice(&encode_batch("n", 0, &[])).unwrap();
        assert_eq!(
            empty,
            json!({"node": "n", "timestamp": 0.0, "readings": []})
        );
        assert!(empty["timestamp"].is_f64());
    }

    #[test]
    fn state_payload() {
        let v: Json = serde_json::from_slice(&encode_state(num(21.5), "celsius", T0)).unwrap();
        assert_eq!(
            v,
            json!({"value": 21.5, "unit": "celsius", "time": "2026-11-27T09:28:43.123456+00:00"})
        );
        let v: Json = serde_json::from_slice(&encode_state(Value::Bool(false), "", 0)).unwrap();
        assert_eq!(
            v,
            json!({"value": false, "unit": null, "time": "1970-01-01T00:00:00.000000+00:00"})
        );
        let v: Json = serde_json::from_slice(&encode_state(num(f64::NAN), "", 0)).unwrap();
        assert_eq!(v["value"], Json::Null);
        let v: Json = serde_json::from_slice(&encode_state(text("on"), "", 0)).unwrap();
        assert_eq!(v["value"], "on");
    }

    #[test]
    fn batch_round_trips() {
        let readings = [
            OutReading {
                source: "system:cpu_temp",
                value: num(45.25),
                unit: "celsius",
                ts: T0,
            },
            OutReading {
                source: "gpio:17",
                value: Value::Bool(false),
                unit: "",
                ts: T0 + 1,
            },
            OutReading {
                source: "ups:state",
                value: text("on battery"),
                unit: "",
                ts: -5,
            },
            OutReading {
                source: "system:mem",
                value: num(-1.0e-7),
                unit: "mb",
                ts: 0,
            },
        ];
        let payload = encode_batch("kitchen", T0, &readings);
        let got = parse(
            "smollama/kitchen/readings",
            std::str::from_utf8(&payload).unwrap(),
        )
        .unwrap();
        assert_eq!(got.len(), readings.len());
        for (g, r) in got.iter().zip(&readings) {
            assert_eq!(g.name, format!("kitchen:{}", r.source));
            assert_eq!(g.value, r.value);
            assert_eq!(g.unit, r.unit);
            assert_eq!(g.ts, Some(r.ts));
        }
    }

    #[test]
    fn batch_from_python_edges() {
        // Newer Python edges: epoch-second `ts`, null unit, extra fields, metadata.
        let p = r#"{"node": "edge-01", "timestamp": 1790431442.9, "readings": [
            {"source": "system:cpu_temp", "value": 45.3, "unit": "celsius", "ts": 1790431442.9},
            {"source": "gpio:door", "value": true, "unit": null, "ts": "1790431442"},
            {"source": "cam:label", "value": "person", "metadata": {"boxes": [1, 2]}},
            {"source": "legacy", "value": 1, "ts": "2026-11-27T09:28:43.123456"},
            {"source": "bad_ts", "value": 2, "ts": "yesterday"},
            {"value": 3, "ts": null},
            {"source": "skip_null", "value": null},
            {"source": "skip_missing"},
            {"source": "skip_list", "value": [1, 2]},
            {"source": "skip_obj", "value": {"a": 1}}
        ]}"#;
        let parsed = parse_inbound("smollama/edge-01/readings", p.as_bytes(), None, MAX).unwrap();
        // The skipped ones are counted, not lost silently.
        assert_eq!(parsed.malformed_items, 4);
        assert_eq!(
            parsed.first_problem.as_deref(),
            Some("reading 6: value is null")
        );
        let got = parsed.readings;
        let names: Vec<&str> = got.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "edge-01:system:cpu_temp",
                "edge-01:gpio:door",
                "edge-01:cam:label",
                "edge-01:legacy",
                "edge-01:bad_ts",
                "edge-01:unknown"
            ]
        );
        assert_eq!(got[0].value, num(45.3));
        assert_eq!(got[0].unit, "celsius");
        assert_eq!(got[0].ts, Some(1_790_431_442_900_000));
        assert_eq!(got[1].value, Value::Bool(true));
        assert_eq!(got[1].unit, "");
        assert_eq!(got[1].ts, Some(1_790_431_442_000_000));
        assert_eq!(got[2].value, text("person"));
        assert_eq!(got[2].ts, None);
        assert_eq!(got[3].ts, Some(T0));
        assert_eq!(got[4].ts, None);
        assert_eq!(got[5].ts, None);
    }

    #[test]
    fn batch_node_comes_from_topic_then_payload() {
        let p = r#"{"node": "from_payload", "readings": [{"source": "a", "value": 1}]}"#;
        assert_eq!(
            parse("x/from_topic/readings", p).unwrap()[0].name,
            "from_topic:a"
        );
        assert_eq!(
            parse("a/b/from_topic/readings", p).unwrap()[0].name,
            "from_topic:a"
        );
        assert_eq!(parse("x/readings", p).unwrap()[0].name, "from_payload:a");
        let anon = r#"{"readings": [{"source": "a", "value": 1}]}"#;
        assert_eq!(parse("x/readings", anon).unwrap()[0].name, "unknown:a");
        let non_str = r#"{"node": 5, "readings": [{"source": "a", "value": 1}]}"#;
        assert_eq!(parse("x/readings", non_str).unwrap()[0].name, "unknown:a");
        assert_eq!(parse("x//readings", p).unwrap()[0].name, "unknown:a");
        // Long text is truncated, not refused.
        let long = r#"{"readings": [{"source": "a", "value": "abcdefghijklmnopqrstuvwxyz"}]}"#;
        let v = parse("n/readings", long).unwrap();
        assert_eq!(v[0].value, text("abcdefghijklmnopqrstuv"));
        // Empty batches are fine.
        assert_eq!(
            parse("s/n/readings", r#"{"readings": []}"#).unwrap(),
            vec![]
        );
    }

    #[test]
    fn bare_values() {
        assert_eq!(one("kitchen/temp", "21.5", None), num(21.5));
        assert_eq!(one("kitchen/temp", " -3\n", None), num(-3.0));
        assert_eq!(one("kitchen/temp", "1e3", None), num(1000.0));
        for (p, b) in [
            ("true", true),
            ("TRUE", true),
            ("On", true),
            (" on ", true),
            ("false", false),
            ("OFF", false),
            ("off\r\n", false),
        ] {
            assert_eq!(one("hall/light", p, None), Value::Bool(b), "{p}");
        }
        // A bare number wins even with a pointer configured, and on a /readings topic.
        assert_eq!(one("a/readings", "7", Some("/x")), num(7.0));
        // A JSON array that is not a batch, with a pointer.
        assert_eq!(one("t", "[1, 2.5]", Some("/1")), num(2.5));
    }

    #[test]
    fn pointer_values() {
        let p = r#"{"temp": 21.5, "on": true, "s": "21.5", "t": "idle", "n": null,
                    "o": {"x": 1}, "a": [1], "deep": {"er": [0, {"v": -2}]}}"#;
        assert_eq!(one("z/t", p, Some("/temp")), num(21.5));
        assert_eq!(one("z/t", p, Some("temp")), num(21.5)); // leading '/' optional
        assert_eq!(one("z/t", p, Some("/on")), Value::Bool(true));
        assert_eq!(one("z/t", p, Some("/s")), num(21.5));
        assert_eq!(one("z/t", p, Some("/t")), text("idle"));
        assert_eq!(one("z/t", p, Some("/deep/er/1/v")), num(-2.0));
        let err = |ptr| parse_inbound("z/t", p.as_bytes(), Some(ptr), MAX).unwrap_err();
        assert_eq!(
            err("/missing"),
            PayloadError::PointerMissing("/missing".into())
        );
        assert_eq!(err("/o"), PayloadError::NotScalar("/o".into()));
        assert_eq!(err("/a"), PayloadError::NotScalar("/a".into()));
        assert_eq!(err("/n"), PayloadError::NotScalar("/n".into()));
        assert_eq!(err(""), PayloadError::NotScalar("".into()));
        // An object on a /readings topic without a `readings` key uses the pointer.
        assert_eq!(one("n/readings", p, Some("/temp")), num(21.5));
    }

    #[test]
    fn malformed_payloads_give_the_right_error() {
        use PayloadError::*;
        let unrec = |r: Result<Vec<Inbound>, PayloadError>| matches!(r, Err(Unrecognised(_)));
        let batch = "smollama/kitchen/readings";

        assert_eq!(
            parse_inbound("t", &[0xff, 0xfe, b'1'], None, MAX),
            Err(NotUtf8)
        );
        assert_eq!(
            parse_inbound("t", &[b'1'; 100], None, 99),
            Err(TooLarge { len: 100, max: 99 })
        );
        // Size is checked before anything else, even for garbage.
        assert_eq!(
            parse_inbound("t", &[0xff; 10], None, 9),
            Err(TooLarge { len: 10, max: 9 })
        );
        assert!(parse_inbound("t", &[b'1'; 99], None, 99).is_ok());

        for p in [
            "",
            "  \n",
            "NaN",
            "nan",
            "inf",
            "-Infinity",
            "1e999",
            "hello",
            "21.5C",
            "\"21.5\"",
            "null",
            "yes",
        ] {
            assert!(unrec(parse("t", p)), "{p:?}");
        }
        assert_eq!(parse("t", ""), Err(Unrecognised("empty payload".into())));

        // JSON without a pointer, truncated JSON, JSON on a non-batch topic.
        assert!(unrec(parse("t", "{}")));
        assert!(unrec(parse("t", r#"{"temp": 1}"#)));
        assert!(unrec(parse(batch, "{}")));
        assert!(unrec(parse(batch, "[]")));
        let Err(Unrecognised(why)) = parse(batch, r#"{"readings": [{"source": "#) else {
            panic!()
        };
        assert!(why.contains("invalid JSON"), "{why}");
        assert!(unrec(
            parse_inbound("t", b"{\"a\":", Some("/a"), MAX).map(|p| p.readings)
        ));
        assert!(unrec(parse("t", r#"{"readings": []}"#)));

        // Bad batches.
        let bad = |p: &str| match parse(batch, p) {
            Err(BadBatch(why)) => why,
            other => panic!("{p}: {other:?}"),
        };
        assert!(bad(r#"{"readings": {"a": 1}}"#).contains("an object, not an array"));
        assert!(bad(r#"{"readings": "x"}"#).contains("a string"));
        assert!(bad(r#"{"readings": null}"#).contains("null"));
        assert!(bad(r#"{"readings": [1, 2]}"#).contains("reading 0 is a number"));
        assert!(bad(r#"{"readings": [{"value": 1}, "x"]}"#).contains("reading 1 is a string"));
        assert!(bad(r#"{"readings": [[]]}"#).contains("an array"));

        // Pointer to a non-finite number is impossible in JSON; NaN text is refused.
        assert!(unrec(
            parse_inbound("t", b"{\"a\": NaN}", Some("/a"), MAX).map(|p| p.readings)
        ));
        assert_eq!(
            one("t", r#"{"a": "NaN"}"#, Some("/a")),
            text("NaN"),
            "a non-numeric string stays text"
        );

        // A huge but allowed payload parses without trouble.
        let mut big = String::from(r#"{"readings": ["#);
        for i in 0..5000 {
            if i > 0 {
                big.push(',');
            }
            big.push_str(&format!(r#"{{"source": "s{i}", "value": {i}}}"#));
        }
        big.push_str("]}");
        assert_eq!(
            parse_inbound(batch, big.as_bytes(), None, big.len())
                .unwrap()
                .readings
                .len(),
            5000
        );
        assert!(matches!(
            parse_inbound(batch, big.as_bytes(), None, big.len() - 1),
            Err(TooLarge { .. })
        ));
        // Deep nesting hits serde_json's recursion limit: an error, not a stack overflow.
        let deep = "[".repeat(100_000);
        assert!(unrec(
            parse_inbound("t", deep.as_bytes(), Some("/0"), MAX * 4).map(|p| p.readings)
        ));
    }

    #[test]
    fn errors_display_a_reason() {
        let msgs = [
            PayloadError::NotUtf8.to_string(),
            PayloadError::TooLarge { len: 10, max: 5 }.to_string(),
            PayloadError::Unrecognised("x".into()).to_string(),
            PayloadError::BadBatch("y".into()).to_string(),
            PayloadError::PointerMissing("/a".into()).to_string(),
            PayloadError::NotScalar("/b".into()).to_string(),
        ];
        assert!(msgs[1].contains("10") && msgs[1].contains('5'));
        assert!(msgs[4].contains("/a") && msgs[5].contains("/b"));
        assert!(msgs.iter().all(|m| !m.is_empty()));
    }
}
