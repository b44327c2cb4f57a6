//! Export and import of observations and memories as JSON lines: one object per line,
//! metadata only (embedding vectors are not exported; they are recomputed on import).
//!
//! Every line has `"kind": "observation"` or `"kind": "memory"`. Timestamps appear twice:
//! as ISO 8601 text for people (`ts`, `first_seen`, `last_seen`; millisecond precision)
//! and as exact microseconds for machines (`ts_us`, `first_seen_us`, `last_seen_us`).
//! Import prefers the microsecond field and falls back to the ISO text when it is absent
//! (hand-written lines).
//!
//! Hand-written lines may leave out `id` and the timestamps too. The store numbers
//! imported items itself, so a missing `id` only needs to be stable: it is a hash of the
//! line's kind and text. A missing time is the time of the import; such a line is a
//! duplicate of any stored item with the same text (whatever that item's time), so
//! importing the same file twice still adds nothing the second time.
//!
//! ```text
//! {"kind":"observation","id":3,"ts":"2026-11-27T09:28:43.123Z","ts_us":1795771723123456,"type":"pattern","text":"...","confidence":0.9,"related_sources":["system:cpu_temp"],"node":"pi-1"}
//! {"kind":"memory","id":7,"fact":"...","confidence":0.7,"times_confirmed":3,"active":true,"first_seen":"...","first_seen_us":...,"last_seen":"...","last_seen_us":...,"node":"pi-1"}
//! ```

use serde_json::{Map, Value as Json, json};

use super::{Memory, Observation, ObservationType};
use crate::clock::{days_from_civil, iso8601};
use crate::graph::Micros;

/// One imported line.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Observation(Observation),
    Memory(Memory),
}

/// A line read back: the item, and whether the line said when it happened (`false`: it
/// was given the import's time, which says nothing about it).
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub item: Item,
    pub dated: bool,
}

/// One observation as a JSON line (no trailing newline).
pub fn observation_line(o: &Observation) -> String {
    json!({
        "kind": "observation",
        "id": o.id,
        "ts": iso8601(o.ts),
        "ts_us": o.ts,
        "type": o.kind.as_str(),
        "text": o.text,
        "confidence": decimal(o.confidence),
        "related_sources": o.related_sources,
        "node": o.node,
    })
    .to_string()
}

/// One memory as a JSON line (no trailing newline).
pub fn memory_line(m: &Memory) -> String {
    json!({
        "kind": "memory",
        "id": m.id,
        "fact": m.fact,
        "confidence": decimal(m.confidence),
        "times_confirmed": m.times_confirmed,
        "active": m.active,
        "first_seen": iso8601(m.first_seen),
        "first_seen_us": m.first_seen,
        "last_seen": iso8601(m.last_seen),
        "last_seen_us": m.last_seen,
        "node": m.node,
    })
    .to_string()
}

/// An `f32` as the `f64` with the same shortest decimal (`0.7`, not `0.699999988...`);
/// reading it back as `f32` gives the same value.
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// Parses JSON lines. Blank lines are ignored; a malformed line is skipped and reported
/// as `(1-based line number, reason)` while the others import.
///
/// Required: `kind`, `text` / `fact` (non-empty), `confidence` (a number, clamped to
/// 0..1). Defaults: `id` a hash of kind and text; a missing time `now` (a memory's
/// missing `first_seen` or `last_seen` is the other one, or `now`); `type` unknown or
/// missing is `general`; `related_sources` `[]`; `node` `""`; `times_confirmed` 1;
/// `active` true. Unknown fields are ignored; a field that is present but wrong is an
/// error.
pub fn parse_lines(text: &str, now: Micros) -> (Vec<Line>, Vec<(usize, String)>) {
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match parse_line(line, now) {
            Ok(item) => items.push(item),
            Err(reason) => errors.push((i + 1, reason)),
        }
    }
    (items, errors)
}

fn parse_line(line: &str, now: Micros) -> Result<Line, String> {
    let v: Json = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Json::Object(o) = v else {
        return Err("not a JSON object".into());
    };
    match o.get("kind").and_then(Json::as_str) {
        Some("observation") => {
            let text = text(&o, "text")?;
            let ts = time(&o, "ts")?;
            Ok(Line {
                dated: ts.is_some(),
                item: Item::Observation(Observation {
                    id: id(&o, "observation", &text)?,
                    ts: ts.unwrap_or(now),
                    text,
                    kind: match o.get("type") {
                        None | Some(Json::Null) => ObservationType::General,
                        Some(Json::String(s)) => ObservationType::parse(s),
                        Some(_) => return Err("`type` is not a string".into()),
                    },
                    confidence: confidence(&o)?,
                    related_sources: match o.get("related_sources") {
                        None | Some(Json::Null) => Vec::new(),
                        Some(Json::Array(a)) => a
                            .iter()
                            .map(|s| s.as_str().map(String::from))
                            .collect::<Option<_>>()
                            .ok_or("`related_sources` has a non-string element")?,
                        Some(_) => return Err("`related_sources` is not a list".into()),
                    },
                    node: node(&o)?,
                }),
            })
        }
        Some("memory") => {
            let fact = text(&o, "fact")?;
            let first = time(&o, "first_seen")?;
            let last = time(&o, "last_seen")?;
            Ok(Line {
                dated: first.is_some() || last.is_some(),
                item: Item::Memory(Memory {
                    id: id(&o, "memory", &fact)?,
                    fact,
                    confidence: confidence(&o)?,
                    times_confirmed: match o.get("times_confirmed") {
                        None | Some(Json::Null) => 1,
                        Some(v) => v
                            .as_u64()
                            .and_then(|n| u32::try_from(n).ok())
                            .ok_or("`times_confirmed` is not a count")?,
                    },
                    active: match o.get("active") {
                        None | Some(Json::Null) => true,
                        Some(v) => v.as_bool().ok_or("`active` is not a boolean")?,
                    },
                    first_seen: first.or(last).unwrap_or(now),
                    last_seen: last.or(first).unwrap_or(now),
                    node: node(&o)?,
                }),
            })
        }
        Some(other) => Err(format!("unknown kind `{other}`")),
        None => Err("missing `kind`".into()),
    }
}

/// The line's `id`, or one made from its kind and text: the same line gets the same id
/// in every run and build (FNV-1a, kept below 2^53 so JSON readers keep it exact).
fn id(o: &Map<String, Json>, kind: &str, text: &str) -> Result<u64, String> {
    match o.get("id") {
        None | Some(Json::Null) => {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in kind.bytes().chain([0]).chain(text.bytes()) {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            Ok(h & ((1 << 53) - 1))
        }
        Some(v) => v
            .as_u64()
            .ok_or_else(|| "`id` is not a non-negative integer".into()),
    }
}

fn text(o: &Map<String, Json>, key: &str) -> Result<String, String> {
    match o.get(key) {
        Some(Json::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Json::String(_)) => Err(format!("`{key}` is empty")),
        Some(_) => Err(format!("`{key}` is not a string")),
        None => Err(format!("missing `{key}`")),
    }
}

fn confidence(o: &Map<String, Json>) -> Result<f32, String> {
    let c = o
        .get("confidence")
        .ok_or("missing `confidence`")?
        .as_f64()
        .ok_or("`confidence` is not a number")?;
    Ok(c.clamp(0.0, 1.0) as f32)
}

fn node(o: &Map<String, Json>) -> Result<String, String> {
    match o.get("node") {
        None | Some(Json::Null) => Ok(String::new()),
        Some(Json::String(s)) => Ok(s.clone()),
        Some(_) => Err("`node` is not a string".into()),
    }
}

/// `<key>_us` if present, else `<key>` as ISO 8601, else `None`.
fn time(o: &Map<String, Json>, key: &str) -> Result<Option<Micros>, String> {
    let us = format!("{key}_us");
    match o.get(&us) {
        None | Some(Json::Null) => {}
        Some(v) => {
            return v
                .as_i64()
                .map(Some)
                .ok_or_else(|| format!("`{us}` is not an integer"));
        }
    }
    match o.get(key) {
        Some(Json::String(s)) => parse_iso8601(s)
            .map(Some)
            .ok_or_else(|| format!("`{key}` is not an ISO 8601 UTC time")),
        None | Some(Json::Null) => Ok(None),
        Some(_) => Err(format!("`{key}` is not a string")),
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (UTC only, as [`iso8601`] writes it; a
/// space instead of `T` and `+00:00` instead of `Z` are accepted too).
pub fn parse_iso8601(s: &str) -> Option<Micros> {
    let s = s.trim();
    let s = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix('z'))
        .or_else(|| s.strip_suffix("+00:00"))?;
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut frac_us = 0;
    if b.len() > 19 {
        let frac = s.get(19..)?.strip_prefix('.')?;
        if frac.is_empty() || !frac.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        // Microseconds: the first six digits, padded.
        let mut digits: String = frac.chars().take(6).collect();
        while digits.len() < 6 {
            digits.push('0');
        }
        frac_us = digits.parse::<i64>().ok()?;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec;
    Some(secs * 1_000_000 + frac_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation() -> Observation {
        Observation {
            id: 42,
            ts: 1_795_771_723_123_456,
            text: "CPU \"hot\" at noon,\nfan on ✓".into(),
            kind: ObservationType::Anomaly,
            confidence: 0.7,
            related_sources: vec!["system:cpu_temp".into(), "gpio:fan".into()],
            node: "pi-kitchen".into(),
        }
    }

    fn memory() -> Memory {
        Memory {
            id: 7,
            fact: "The fan starts at 60 °C".into(),
            confidence: 0.85,
            times_confirmed: 4,
            active: false,
            first_seen: 1_700_000_000_000_001,
            last_seen: 1_795_771_723_123_456,
            node: "pi-kitchen".into(),
        }
    }

    #[test]
    fn lines_carry_kind_iso_and_micros() {
        let v: Json = serde_json::from_str(&observation_line(&observation())).unwrap();
        assert_eq!(v["kind"], "observation");
        assert_eq!(v["ts"], "2026-11-27T09:28:43.123Z");
        assert_eq!(v["ts_us"], 1_795_771_723_123_456_i64);
        assert_eq!(v["type"], "anomaly");
        assert_eq!(v["confidence"], 0.7, "shortest decimal, not 0.69999998...");
        assert!(v.get("vector").is_none() && v.get("embedding").is_none());
        let v: Json = serde_json::from_str(&memory_line(&memory())).unwrap();
        assert_eq!(v["kind"], "memory");
        assert_eq!(v["last_seen"], "2026-11-27T09:28:43.123Z");
        assert_eq!(v["first_seen_us"], 1_700_000_000_000_001_i64);
        assert!(!observation_line(&observation()).contains('\n'));
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let mut text = String::new();
        let mut expected = Vec::new();
        for kind in ObservationType::ALL {
            let o = Observation {
                kind,
                confidence: 0.1 * (kind as u8 as f32 + 1.0),
                ..observation()
            };
            text.push_str(&observation_line(&o));
            text.push('\n');
            expected.push(Item::Observation(o));
        }
        let m = memory();
        text.push_str(&memory_line(&m));
        text.push('\n');
        expected.push(Item::Memory(m));
        let other = Memory {
            id: 0,
            active: true,
            node: String::new(),
            times_confirmed: 1,
            first_seen: -1_500, // before the epoch still round-trips
            last_seen: 0,
            ..memory()
        };
        text.push_str(&memory_line(&other));
        expected.push(Item::Memory(other));

        let (items, errors) = parse_lines(&text, 0);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(items.iter().all(|l| l.dated));
        assert_eq!(
            items.into_iter().map(|l| l.item).collect::<Vec<_>>(),
            expected
        );
    }

    #[test]
    fn corrupted_lines_reported_by_number_others_import() {
        let good_o = observation_line(&observation());
        let good_m = memory_line(&memory());
        let truncated = &good_o[..good_o.len() / 2];
        let text = [
            good_o.as_str(),
            "",
            truncated, // 3
            "   ",
            good_m.as_str(),
            r#"{"kind":"dream","id":1}"#, // 6
            r#"[1,2]"#,                   // 7
            r#"{"kind":"memory","id":1,"confidence":0.5,"first_seen_us":0,"last_seen_us":0}"#, // 8
            r#"{"kind":"observation","id":-3,"ts_us":0,"text":"t","confidence":1}"#, // 9
            r#"{"kind":"observation","id":3,"ts":"yesterday","text":"t","confidence":1}"#, // 10
            r#"{"id":3}"#,                // 11
            good_o.as_str(),
        ]
        .join("\r\n");
        let (items, errors) = parse_lines(&text, 0);
        let items: Vec<Item> = items.into_iter().map(|l| l.item).collect();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0], Item::Observation(observation()));
        assert_eq!(items[1], Item::Memory(memory()));
        assert_eq!(items[2], Item::Observation(observation()));
        let lines: Vec<usize> = errors.iter().map(|e| e.0).collect();
        assert_eq!(lines, [3, 6, 7, 8, 9, 10, 11], "{errors:?}");
        assert!(errors[0].1.starts_with("not JSON"), "{errors:?}");
        assert!(errors[1].1.contains("dream"), "{errors:?}");
        assert!(errors[3].1.contains("fact"), "{errors:?}");
        assert!(errors[5].1.contains("ISO"), "{errors:?}");
    }

    #[test]
    fn hand_written_lines_use_iso_and_defaults() {
        let (items, errors) = parse_lines(
            r#"{"kind":"observation","id":1,"ts":"2026-11-27T09:28:43.123Z","text":"x","confidence":3,"type":"odd"}
{"kind":"memory","id":2,"fact":"f","confidence":0.5,"first_seen":"2000-02-29T00:00:00Z","last_seen":"2000-02-29 00:00:01.5+00:00"}"#,
            0,
        );
        let items: Vec<Item> = items.into_iter().map(|l| l.item).collect();
        assert!(errors.is_empty(), "{errors:?}");
        let Item::Observation(o) = &items[0] else {
            panic!()
        };
        assert_eq!(o.ts, 1_795_771_723_123_000);
        assert_eq!(o.kind, ObservationType::General);
        assert_eq!(o.confidence, 1.0);
        assert!(o.related_sources.is_empty() && o.node.is_empty());
        let Item::Memory(m) = &items[1] else { panic!() };
        assert_eq!(m.first_seen, 951_782_400_000_000);
        assert_eq!(m.last_seen, 951_782_401_500_000);
        assert!(m.active);
        assert_eq!(m.times_confirmed, 1);
    }

    #[test]
    fn lines_without_id_or_time_get_a_stable_id_and_now() {
        const NOW: Micros = 1_795_771_723_000_000;
        let text = r#"{"kind":"observation","text":"The fan runs at noon","confidence":0.8}
{"kind":"memory","fact":"The fan is on pin 22","confidence":0.9}
{"kind":"memory","fact":"Seen once","confidence":0.9,"last_seen":"2026-01-01T00:00:00Z"}
{"kind":"observation","text":"The fan runs at noon","confidence":0.8,"id":null,"ts":null}
{"kind":"observation","text":"Another text","confidence":0.8}
{"kind":"observation","id":"x","text":"t","confidence":1}
{"kind":"observation","ts_us":"soon","text":"t","confidence":1}"#;
        let (lines, errors) = parse_lines(text, NOW);
        let lines_at = |l: &[(usize, String)]| l.iter().map(|e| e.0).collect::<Vec<_>>();
        assert_eq!(lines_at(&errors), [6, 7], "{errors:?}");
        assert!(errors[0].1.contains("`id`") && errors[1].1.contains("ts_us"));
        let ids: Vec<u64> = lines
            .iter()
            .map(|l| match &l.item {
                Item::Observation(o) => o.id,
                Item::Memory(m) => m.id,
            })
            .collect();
        assert_eq!(ids[0], ids[3], "same content, same id");
        assert!(ids[0] != ids[4] && ids[0] != ids[1], "{ids:?}");
        assert!(ids.iter().all(|i| *i < 1 << 53));
        // The id does not change between runs or with the time of the import.
        let (again, _) = parse_lines(text, NOW + 1);
        assert!(matches!(&again[0].item, Item::Observation(o) if o.id == ids[0]));
        let Item::Observation(o) = &lines[0].item else {
            panic!()
        };
        assert_eq!(o.ts, NOW);
        assert!(!lines[0].dated);
        let Item::Memory(m) = &lines[1].item else {
            panic!()
        };
        assert_eq!((m.first_seen, m.last_seen), (NOW, NOW));
        let Item::Memory(m) = &lines[2].item else {
            panic!()
        };
        assert!(lines[2].dated);
        assert_eq!(m.first_seen, m.last_seen, "one time given: both are it");
        assert_eq!(iso8601(m.first_seen), "2026-01-01T00:00:00.000Z");
    }

    #[test]
    fn iso_parse_inverts_iso8601() {
        for ts in [
            0,
            1_795_771_723_123_000,
            951_782_400_000_000,
            -86_400_000_000,
        ] {
            assert_eq!(parse_iso8601(&iso8601(ts)), Some(ts), "{ts}");
        }
        assert_eq!(
            parse_iso8601("2026-11-27T09:28:43.1234567Z"),
            Some(1_795_771_723_123_456)
        );
        for bad in [
            "",
            "2026-11-27",
            "2026-11-27T09:28:43",
            "2026-13-27T09:28:43Z",
            "2026-11-27T09:28:43.Z",
            "2026-11-27T09:28:4xZ",
            "2026-11-27T09:28:43+01:00",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }
}
