//! Binary encodings of keys and values.
//!
//! Keys are big-endian so LMDB's byte-wise order is the numeric order; timestamps get
//! their sign bit flipped so negative times sort before zero and positive ones. Values
//! are little-endian (never compared, only decoded).
//!
//! | db         | key                                   | value                                  |
//! |------------|---------------------------------------|----------------------------------------|
//! | `readings` | source u32 BE ++ ts (sortable i64)    | flags u8 ++ tag u8 ++ payload          |
//! | `head`     | ts (sortable i64) ++ source u32 BE    | as `readings`                          |
//! | `rollups`  | level u8 ++ source u32 BE ++ bucket   | count u32 ++ min f64 ++ max f64 ++ sum |
//! | `sources`  | source u32 BE                         | kind u8 ++ name len u16 ++ name ++ unit|
//! | `meta`     | UTF-8 name                            | per key (`schema_version`: u32 BE)     |
//!
//! Payloads: tag 0 = number (f64 LE), 1 = bool (one byte 0/1), 2 = text (len u8 + UTF-8).

use crate::graph::{Micros, Reading, Rollup, ShortText, SourceId, Value, ValueKind};

pub const TAG_NUMBER: u8 = 0;
pub const TAG_BOOL: u8 = 1;
pub const TAG_TEXT: u8 = 2;

pub const READING_KEY_LEN: usize = 12;
pub const ROLLUP_KEY_LEN: usize = 13;
pub const ROLLUP_VALUE_LEN: usize = 28;
/// Largest encoded reading value: flags + tag + len + text.
pub const READING_VALUE_MAX: usize = 3 + ShortText::CAPACITY;

/// A decoding failure: the bytes on disk are not what this schema writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corrupt(pub &'static str);

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "corrupt store entry: {}", self.0)
    }
}

/// i64 -> 8 bytes whose unsigned big-endian order equals the signed order.
#[inline]
pub fn ts_to_bytes(ts: Micros) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

#[inline]
pub fn ts_from_bytes(b: [u8; 8]) -> Micros {
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

#[inline]
fn arr<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], Corrupt> {
    b.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or(Corrupt("short entry"))
}

// ---- readings ----

#[inline]
pub fn reading_key(source: SourceId, ts: Micros) -> [u8; READING_KEY_LEN] {
    let mut k = [0u8; READING_KEY_LEN];
    k[..4].copy_from_slice(&source.0.to_be_bytes());
    k[4..].copy_from_slice(&ts_to_bytes(ts));
    k
}

pub fn decode_reading_key(k: &[u8]) -> Result<(SourceId, Micros), Corrupt> {
    if k.len() != READING_KEY_LEN {
        return Err(Corrupt("reading key length"));
    }
    Ok((
        SourceId(u32::from_be_bytes(arr(k, 0)?)),
        ts_from_bytes(arr(k, 4)?),
    ))
}

/// Encode `flags`, `value` into `buf`; returns the used length.
pub fn encode_reading_value(flags: u8, value: &Value, buf: &mut [u8; READING_VALUE_MAX]) -> usize {
    buf[0] = flags;
    match value {
        Value::Number(x) => {
            buf[1] = TAG_NUMBER;
            buf[2..10].copy_from_slice(&x.to_le_bytes());
            10
        }
        Value::Bool(b) => {
            buf[1] = TAG_BOOL;
            buf[2] = u8::from(*b);
            3
        }
        Value::Text(t) => {
            let s = t.as_str().as_bytes();
            buf[1] = TAG_TEXT;
            buf[2] = s.len() as u8;
            buf[3..3 + s.len()].copy_from_slice(s);
            3 + s.len()
        }
    }
}

/// Decode a reading value into (flags, value).
pub fn decode_reading_value(v: &[u8]) -> Result<(u8, Value), Corrupt> {
    let flags = *v.first().ok_or(Corrupt("empty reading value"))?;
    let tag = *v.get(1).ok_or(Corrupt("reading value without tag"))?;
    let value = match tag {
        TAG_NUMBER => Value::Number(f64::from_le_bytes(arr(v, 2)?)),
        TAG_BOOL => Value::Bool(*v.get(2).ok_or(Corrupt("bool without payload"))? != 0),
        TAG_TEXT => {
            let len = *v.get(2).ok_or(Corrupt("text without length"))? as usize;
            let bytes = v.get(3..3 + len).ok_or(Corrupt("short text"))?;
            let s = std::str::from_utf8(bytes).map_err(|_| Corrupt("text is not UTF-8"))?;
            Value::Text(ShortText::new(s))
        }
        _ => return Err(Corrupt("unknown value tag")),
    };
    Ok((flags, value))
}

pub fn decode_reading(k: &[u8], v: &[u8]) -> Result<Reading, Corrupt> {
    let (source, ts) = decode_reading_key(k)?;
    let (flags, value) = decode_reading_value(v)?;
    Ok(Reading {
        source,
        ts,
        value,
        flags,
    })
}

// ---- head (readings not yet folded, in time order; see `head`) ----

#[inline]
pub fn head_key(ts: Micros, source: SourceId) -> [u8; READING_KEY_LEN] {
    let mut k = [0u8; READING_KEY_LEN];
    k[..8].copy_from_slice(&ts_to_bytes(ts));
    k[8..].copy_from_slice(&source.0.to_be_bytes());
    k
}

pub fn decode_head_key(k: &[u8]) -> Result<(SourceId, Micros), Corrupt> {
    if k.len() != READING_KEY_LEN {
        return Err(Corrupt("head key length"));
    }
    Ok((
        SourceId(u32::from_be_bytes(arr(k, 8)?)),
        ts_from_bytes(arr(k, 0)?),
    ))
}

pub fn decode_head_reading(k: &[u8], v: &[u8]) -> Result<Reading, Corrupt> {
    let (source, ts) = decode_head_key(k)?;
    let (flags, value) = decode_reading_value(v)?;
    Ok(Reading {
        source,
        ts,
        value,
        flags,
    })
}

// ---- rollups ----

#[inline]
pub fn rollup_key(level: u8, source: SourceId, bucket_start: Micros) -> [u8; ROLLUP_KEY_LEN] {
    let mut k = [0u8; ROLLUP_KEY_LEN];
    k[0] = level;
    k[1..5].copy_from_slice(&source.0.to_be_bytes());
    k[5..].copy_from_slice(&ts_to_bytes(bucket_start));
    k
}

pub fn decode_rollup_key(k: &[u8]) -> Result<(u8, SourceId, Micros), Corrupt> {
    if k.len() != ROLLUP_KEY_LEN {
        return Err(Corrupt("rollup key length"));
    }
    Ok((
        k[0],
        SourceId(u32::from_be_bytes(arr(k, 1)?)),
        ts_from_bytes(arr(k, 5)?),
    ))
}

pub fn encode_rollup_value(r: &Rollup) -> [u8; ROLLUP_VALUE_LEN] {
    let mut v = [0u8; ROLLUP_VALUE_LEN];
    v[..4].copy_from_slice(&r.count.to_le_bytes());
    v[4..12].copy_from_slice(&r.min.to_le_bytes());
    v[12..20].copy_from_slice(&r.max.to_le_bytes());
    v[20..28].copy_from_slice(&r.sum.to_le_bytes());
    v
}

/// (count, min, max, sum)
pub fn decode_rollup_value(v: &[u8]) -> Result<(u32, f64, f64, f64), Corrupt> {
    if v.len() != ROLLUP_VALUE_LEN {
        return Err(Corrupt("rollup value length"));
    }
    Ok((
        u32::from_le_bytes(arr(v, 0)?),
        f64::from_le_bytes(arr(v, 4)?),
        f64::from_le_bytes(arr(v, 12)?),
        f64::from_le_bytes(arr(v, 20)?),
    ))
}

pub fn decode_rollup(k: &[u8], v: &[u8]) -> Result<Rollup, Corrupt> {
    let (level, source, bucket_start) = decode_rollup_key(k)?;
    let (count, min, max, sum) = decode_rollup_value(v)?;
    Ok(Rollup {
        source,
        level,
        bucket_start,
        count,
        min,
        max,
        sum,
    })
}

/// Merge `new` into an existing bucket of the same key.
pub fn merge_rollup(old: &Rollup, new: &Rollup) -> Rollup {
    Rollup {
        count: old.count.saturating_add(new.count),
        min: old.min.min(new.min),
        max: old.max.max(new.max),
        sum: old.sum + new.sum,
        ..*new
    }
}

// ---- sources ----

#[inline]
pub fn source_key(id: SourceId) -> [u8; 4] {
    id.0.to_be_bytes()
}

pub fn kind_tag(kind: ValueKind) -> u8 {
    match kind {
        ValueKind::Number => TAG_NUMBER,
        ValueKind::Bool => TAG_BOOL,
        ValueKind::Text => TAG_TEXT,
    }
}

pub fn kind_from_tag(tag: u8) -> Result<ValueKind, Corrupt> {
    match tag {
        TAG_NUMBER => Ok(ValueKind::Number),
        TAG_BOOL => Ok(ValueKind::Bool),
        TAG_TEXT => Ok(ValueKind::Text),
        _ => Err(Corrupt("unknown source kind")),
    }
}

/// Names longer than u16::MAX bytes are cut (never expected: names come from config).
pub fn encode_source_value(name: &str, unit: &str, kind: ValueKind, buf: &mut Vec<u8>) {
    let mut end = name.len().min(u16::MAX as usize);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let name = &name[..end];
    buf.clear();
    buf.push(kind_tag(kind));
    buf.extend_from_slice(&(name.len() as u16).to_le_bytes());
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(unit.as_bytes());
}

pub fn decode_source(k: &[u8], v: &[u8]) -> Result<(SourceId, String, String, ValueKind), Corrupt> {
    let id = SourceId(u32::from_be_bytes(
        k.try_into().map_err(|_| Corrupt("source key length"))?,
    ));
    let kind = kind_from_tag(*v.first().ok_or(Corrupt("empty source value"))?)?;
    let len = u16::from_le_bytes(arr(v, 1)?) as usize;
    let name = v.get(3..3 + len).ok_or(Corrupt("short source name"))?;
    let unit = v.get(3 + len..).ok_or(Corrupt("short source value"))?;
    let name = std::str::from_utf8(name).map_err(|_| Corrupt("source name is not UTF-8"))?;
    let unit = std::str::from_utf8(unit).map_err(|_| Corrupt("source unit is not UTF-8"))?;
    Ok((id, name.to_owned(), unit.to_owned(), kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_sort_as_signed() {
        let ts = [i64::MIN, -1_000_000, -1, 0, 1, 1_000_000, i64::MAX];
        for w in ts.windows(2) {
            assert!(
                ts_to_bytes(w[0]) < ts_to_bytes(w[1]),
                "{} vs {}",
                w[0],
                w[1]
            );
        }
        for t in ts {
            assert_eq!(ts_from_bytes(ts_to_bytes(t)), t);
        }
        // Source id dominates the order of `readings`, time that of the head.
        assert!(reading_key(SourceId(1), i64::MAX) < reading_key(SourceId(2), i64::MIN));
        assert!(head_key(-1, SourceId(9)) < head_key(0, SourceId(0)));
        assert!(head_key(5, SourceId(1)) < head_key(5, SourceId(2)));
        let k = head_key(-7, SourceId(3));
        assert_eq!(decode_head_key(&k), Ok((SourceId(3), -7)));
        assert!(decode_head_key(&k[..11]).is_err());
    }

    #[test]
    fn values_round_trip() {
        let mut buf = [0u8; READING_VALUE_MAX];
        for (flags, v) in [
            (0, Value::Number(-12.5)),
            (1, Value::Number(f64::INFINITY)),
            (2, Value::Bool(true)),
            (3, Value::Bool(false)),
            (0, Value::Text(ShortText::new(""))),
            (2, Value::Text(ShortText::new("ééééééééééé"))),
        ] {
            let n = encode_reading_value(flags, &v, &mut buf);
            assert_eq!(decode_reading_value(&buf[..n]), Ok((flags, v)));
        }
        assert!(decode_reading_value(&[0, 9, 1]).is_err());
        assert!(decode_reading_value(&[0, TAG_NUMBER, 1]).is_err());
        assert!(decode_reading_value(&[0, TAG_TEXT, 5, b'a']).is_err());
    }

    #[test]
    fn sources_round_trip() {
        let mut buf = Vec::new();
        encode_source_value("system:cpu_temp", "celsius", ValueKind::Number, &mut buf);
        let got = decode_source(&source_key(SourceId(7)), &buf).unwrap();
        assert_eq!(
            got,
            (
                SourceId(7),
                "system:cpu_temp".to_string(),
                "celsius".to_string(),
                ValueKind::Number
            )
        );
        encode_source_value("gpio:17", "", ValueKind::Bool, &mut buf);
        assert_eq!(decode_source(&source_key(SourceId(1)), &buf).unwrap().2, "");
    }

    #[test]
    fn rollups_round_trip() {
        let r = Rollup {
            source: SourceId(3),
            level: 2,
            bucket_start: -60_000_000,
            count: 5,
            min: -1.0,
            max: 4.0,
            sum: 7.5,
        };
        let k = rollup_key(r.level, r.source, r.bucket_start);
        assert_eq!(decode_rollup(&k, &encode_rollup_value(&r)), Ok(r));
    }
}
