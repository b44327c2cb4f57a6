//! The readings endpoints: latest values and history, from LMDB read transactions (the
//! history streamed a page at a time on the `http` thread: one short read per page).

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::HttpView;
use super::request::Call;
use super::request::short;
use super::response::{Reply, err, ok, text};
use super::stream::StreamBody;
use crate::clock::{Iso8601, iso8601, now_us};
use crate::config::duration::format_duration;
use crate::graph::reading::flags;
use crate::graph::reading::value_json;
use crate::graph::{Micros, Reading, SourceId};
use crate::store::Store;

fn reading_json(view: &HttpView, r: &Reading) -> Json {
    let info = view.registry.get(r.source);
    let mut obj = json!({
        "full_id": info.as_ref().map_or("?", |i| &i.name),
        "value": value_json(&r.value),
        "unit": info.as_ref().map_or("", |i| &i.unit),
        "timestamp": iso8601(r.ts),
    });
    if r.flags & flags::OUT_OF_RANGE != 0 {
        obj["out_of_range"] = json!(true);
    }
    if r.flags & flags::HEARTBEAT != 0 {
        obj["heartbeat"] = json!(true);
    }
    obj
}

/// `GET /api/readings`: the latest stored reading of every source.
pub(crate) fn all(view: &HttpView, _: &Call) -> Reply {
    match view.store.latest_all() {
        Ok(rs) => ok(json!({
            "node": view.settings.node.name,
            "timestamp": iso8601(now_us()),
            "readings": rs.iter().map(|r| reading_json(view, r)).collect::<Vec<_>>(),
        })),
        Err(e) => err(503, e.to_string()),
    }
}

fn unknown_source(view: &HttpView, id: &str) -> Reply {
    let mut known: Vec<String> = view
        .registry
        .all()
        .iter()
        .map(|i| i.name.to_string())
        .collect();
    known.sort();
    Reply {
        code: 404,
        body: json!({ "error": format!("unknown source '{}'", short(id)), "available": known }),
        allow: None,
        raw: None,
        set_cookie: None,
    }
}

/// `GET /api/readings/{id}`.
pub(crate) fn one(view: &HttpView, call: &Call) -> Reply {
    let id = call.params[0].as_str();
    let Some(info) = view.registry.lookup(id) else {
        return unknown_source(view, id);
    };
    match view.store.latest(info.id) {
        Ok(Some(r)) => ok(reading_json(view, &r)),
        Ok(None) => err(
            404,
            format!("source '{}' has no stored readings yet", short(id)),
        ),
        Err(e) => err(503, e.to_string()),
    }
}

/// `GET /api/readings/{id}/history?minutes=&limit=`: raw readings while the window fits
/// the raw retention, rollups beyond it.
/// Rows read from the store per `next`: one short read transaction, a few tens of KiB
/// of answer, so a stream of any length holds this much at a time.
const PAGE: usize = 512;
/// The most rows one history answer may ask for (`limit`): streamed, so the bound is on
/// the client's patience, not our memory.
pub(crate) const MAX_HISTORY_ROWS: i64 = 1_000_000;

/// `GET /api/readings/{id}/history`: raw rows while the window fits the raw retention,
/// else the finest rollup level that covers it; newest first. Streamed a page at a time
/// (`HistoryStream`), so an answer of 100,000 rows never exists whole in memory; an
/// answer that fits in one page is sent whole, with its length.
pub(crate) fn history(view: &HttpView, call: &Call) -> Result<Box<dyn StreamBody>, Reply> {
    let id = call.params[0].as_str();
    let Some(info) = view.registry.lookup(id) else {
        return Err(unknown_source(view, id));
    };
    let minutes = call.query.int("minutes", 60, 1, 10 * 366 * 24 * 60)?;
    let limit = call.query.int("limit", 100, 1, MAX_HISTORY_ROWS)? as usize;
    let now = now_us();
    let window = minutes * 60_000_000;
    let level = view
        .retention
        .as_ref()
        .and_then(|ret| ret.level_for(window))
        .map(|lv| {
            let every = view.retention.as_ref().map_or(0, |r| r.rollups[lv].every);
            (lv as u8, every)
        });
    let mut head = Vec::new();
    let resolution = match level {
        None => "raw".to_string(),
        Some((_, every)) => format_duration(every),
    };
    let _ = write!(
        head,
        "{{\"source_id\":{},\"unit\":{},\"period_minutes\":{minutes},\"resolution\":{},\"{}\":[",
        Json::from(&*info.name),
        Json::from(&*info.unit),
        Json::from(resolution),
        if level.is_some() {
            "rollups"
        } else {
            "readings"
        }
    );
    let mut stream = HistoryStream {
        store: view.store.clone(),
        source: info.id,
        from: now - window,
        to: now + 1,
        left: limit,
        level: level.map(|(lv, _)| lv),
        pending: None,
        count: 0,
        stats: Stats::default(),
        done: false,
        failed: None,
    };
    // The opening and the first page; if that is all, it is answered at once, with a
    // length (and kept alive), like the other reads.
    let mut out = head;
    stream.step(&mut out);
    if !stream.done {
        stream.pending = Some(out);
        return Ok(Box::new(stream));
    }
    if let Some(e) = stream.failed {
        return Err(err(503, e));
    }
    Err(text(
        "application/json",
        String::from_utf8(out).unwrap_or_default(),
    ))
}

/// One history answer being written: a cursor into the store (rows older than `to`),
/// what is left of the limit, and running statistics (written at the end, after the
/// rows). Holds one page at a time whatever the length.
struct HistoryStream {
    store: Arc<Store>,
    source: SourceId,
    from: Micros,
    to: Micros,
    left: usize,
    /// `None`: raw readings; else the rollup level.
    level: Option<u8>,
    /// What was written before the stream started (the opening and the first page).
    pending: Option<Vec<u8>>,
    count: u64,
    stats: Stats,
    done: bool,
    /// A store read failed (the answer was cut short there).
    failed: Option<String>,
}

/// Running min, max and mean (readings: numeric values; rollups: their min, max, sum
/// and count).
#[derive(Default)]
struct Stats {
    min: f64,
    max: f64,
    sum: f64,
    n: u64,
}

impl Stats {
    fn add(&mut self, min: f64, max: f64, sum: f64, n: u64) {
        if self.n == 0 {
            (self.min, self.max) = (min, max);
        } else {
            self.min = self.min.min(min);
            self.max = self.max.max(max);
        }
        self.sum += sum;
        self.n += n;
    }

    fn json(&self, rollups: bool) -> Json {
        if self.n == 0 {
            return json!({});
        }
        let mut o = json!({
            "min": round2(self.min),
            "max": round2(self.max),
            "avg": round2(self.sum / self.n as f64),
        });
        if rollups {
            o["readings"] = json!(self.n);
        }
        o
    }
}

impl HistoryStream {
    /// The next page of rows into `out`; `Ok(false)` once there are no more.
    fn page(&mut self, out: &mut Vec<u8>) -> Result<bool, crate::store::StoreError> {
        let want = self.left.min(PAGE);
        if want == 0 {
            return Ok(false);
        }
        let (n, oldest) = match self.level {
            None => {
                let rows = self.store.history(self.source, self.from, self.to, want)?;
                for r in &rows {
                    self.comma(out);
                    let _ = write!(out, "{{\"timestamp\":\"{}\",\"value\":", Iso8601(r.ts));
                    let _ = serde_json::to_writer(&mut *out, &value_json(&r.value));
                    if r.flags & flags::OUT_OF_RANGE != 0 {
                        out.extend_from_slice(b",\"out_of_range\":true");
                    }
                    out.push(b'}');
                    if let Some(x) = r.value.as_f64() {
                        self.stats.add(x, x, x, 1);
                    }
                }
                (rows.len(), rows.last().map(|r| r.ts))
            }
            Some(lv) => {
                let rows = self
                    .store
                    .rollups(self.source, lv, self.from, self.to, want)?;
                for r in &rows {
                    self.comma(out);
                    let _ = write!(
                        out,
                        "{{\"timestamp\":\"{}\",\"count\":{},\"min\":",
                        Iso8601(r.bucket_start),
                        r.count
                    );
                    let _ = serde_json::to_writer(&mut *out, &r.min);
                    out.extend_from_slice(b",\"max\":");
                    let _ = serde_json::to_writer(&mut *out, &r.max);
                    out.extend_from_slice(b",\"mean\":");
                    let _ = serde_json::to_writer(&mut *out, &r.mean());
                    out.push(b'}');
                    self.stats.add(r.min, r.max, r.sum, r.count as u64);
                }
                (rows.len(), rows.last().map(|r| r.bucket_start))
            }
        };
        self.left -= n;
        if let Some(ts) = oldest {
            self.to = ts; // newest first: the next page is older than this row
        }
        Ok(n == want && self.left > 0)
    }

    fn comma(&mut self, out: &mut Vec<u8>) {
        if self.count > 0 {
            out.push(b',');
        }
        self.count += 1;
    }
}

impl StreamBody for HistoryStream {
    fn content_type(&self) -> &'static str {
        "application/json"
    }

    fn next<'a>(&'a mut self, out: &'a mut Vec<u8>) -> Pin<Box<dyn Future<Output = bool> + 'a>> {
        Box::pin(async move { self.step(out) })
    }
}

impl HistoryStream {
    /// Append the next piece (what was pending, a page, or the last page and the closing
    /// with the statistics); `false` once everything was written.
    fn step(&mut self, out: &mut Vec<u8>) -> bool {
        if self.done {
            return false;
        }
        if let Some(first) = self.pending.take() {
            out.extend_from_slice(&first);
            return true;
        }
        match self.page(out) {
            Ok(true) => return true,
            Ok(false) => {}
            Err(e) => {
                // The status line is gone: end the body short, so the client sees a
                // truncated answer rather than a complete-looking one.
                log::warn!("http: history read failed mid-answer: {e}");
                self.failed = Some(e.to_string());
                self.done = true;
                return true;
            }
        }
        let _ = write!(
            out,
            "],\"count\":{},\"statistics\":{}}}",
            self.count,
            self.stats.json(self.level.is_some())
        );
        self.done = true;
        true
    }
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
