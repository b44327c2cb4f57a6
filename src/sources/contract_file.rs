//! The `contract_file` source: the original's `jetson_inference` contract, a JSON file
//! another process (an inference loop on a camera, any program) rewrites with its latest
//! results:
//!
//! ```json
//! {"ts": 1764590000.5, "model": "ssd-mobilenet-v2", "fps": 14.8,
//!  "readings": [{"name": "person", "value": 2, "unit": "count", "metadata": {}}]}
//! ```
//!
//! `ts` is epoch seconds (a number or a numeric string). Each entry with a `name` is one
//! reading `<source_type>:<name>` (`source_type` default `jetson_inference`) at `ts`;
//! `unit` optional; `metadata`, `model` and `fps` are not kept (the graph carries values,
//! not documents). Values are what the graph's `Value` holds: numbers, booleans, text
//! of at most 22 bytes; other entries are refused and counted (`entries_refused`).
//!
//! The file is ignored (nothing emitted; the node degraded with the reason, running again
//! at the next good contract) when it is missing, larger than `max_kb` (`too_large`; only
//! that much is ever read), not a JSON object with a `ts` and a `readings` list
//! (`corrupt`), or older than `max_age` (`stale`; also a `ts` more than a minute ahead).
//! Entries past `max_entries` in one file, and names past `max_entries` over the node's
//! life, are refused and counted. A contract is emitted once: the file is read again
//! only when its size, mtime or inode changed, and readings go out only when its `ts`
//! moved, so a writer that stopped does not repeat its last results.
//!
//! The read and the JSON parse run on the `hw` thread (a 256 KiB parse takes milliseconds
//! on a small board; the event loop never waits for it). While the file is missing it is
//! looked for with a backoff from `every` up to a minute.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use serde_json::Value as Json;

use crate::clock::{iso8601, now_us};
use crate::config::SourceSpec;
use crate::config::duration::format_duration;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::edges::hw::Worker;
use crate::graph::counters::Counters;
use crate::graph::registry::{Registry, SourceInfo};
use crate::graph::{Item, Micros, Reading, ShortText, Value};
use crate::plugins::params::{Reader, as_text, int_in, positive_dur};
use crate::plugins::{Flow, Kind, Make, Param, ParamsBox, Produced, Role, Unavailable, params_of};
use crate::plugins::{Setup, Source, SourceCtx, Task};

use crate::plugins::Backoff;

const COUNTERS: &[&str] = &[
    "contracts",
    "readings",
    "stale",
    "corrupt",
    "too_large",
    "entries_refused",
];
const C_CONTRACTS: usize = 0;
const C_READINGS: usize = 1;
const C_STALE: usize = 2;
const C_CORRUPT: usize = 3;
const C_TOO_LARGE: usize = 4;
const C_REFUSED: usize = 5;

/// Longest entry name and unit, bytes.
const MAX_NAME: usize = 64;
const MAX_UNIT: usize = 32;
/// How far ahead of the clock a `ts` may be (clocks of two processes on one board agree;
/// this only forgives rounding and a writer's own clock step).
const MAX_AHEAD: Micros = 60_000_000;
/// The id types of the built-in sources, which a contract may not feed (refused by
/// `pipeline check`; setup also refuses any other kind's type, see [`own_type`]).
const RESERVED_TYPES: &[&str] = &[
    "system", "gpio", "mqtt", "file", "exec", "http", "dht11", "dht22", "ds18b20", "iio",
];

pub const KIND: Kind = Kind {
    role: Role::Source,
    name: "contract_file",
    version: env!("CARGO_PKG_VERSION"),
    doc: "readings from a JSON contract file another process writes (the original's jetson_inference: {ts, readings:[{name, value, unit}]})",
    params: &[
        Param::new(Spec {
            default: "\"5s\"",
            doc: "how often the file is looked at (it is parsed only when it changed)",
            ..Spec::new("every", Want::Duration)
        }),
        Param::new(Spec {
            default: "\"~/.smollama/jetson_inference.json\"",
            doc: "the contract file: an absolute path, or ~/ for the agent's home",
            hint: "e.g. path = \"/run/inference/contract.json\"",
            ..Spec::new("path", Want::Text)
        }),
        Param::new(Spec {
            default: "\"30s\"",
            doc: "a contract whose ts is older than this is ignored (the original's max_age_seconds)",
            hint: "a duration, e.g. max_age = \"30s\"",
            ..Spec::new("max_age", Want::Duration)
        }),
        Param::new(Spec {
            default: "\"jetson_inference\"",
            doc: "the type of the ids: <source_type>:<name>",
            hint: "lowercase letters, digits and _, at most 32, not a built-in source's type (system, gpio, ...)",
            ..Spec::new("source_type", Want::Text)
        }),
        Param::new(Spec {
            default: "256",
            range: Some((1.0, 16384.0)),
            doc: "a larger file is refused (counted as too_large); at most this much is read",
            hint: "KiB, 1-16384, e.g. max_kb = 256",
            ..Spec::new("max_kb", Want::WholeNumber)
        }),
        Param::new(Spec {
            default: "64",
            range: Some((1.0, 1024.0)),
            doc: "at most this many entries per contract, and distinct names per node (the rest are refused, counted)",
            hint: "a whole number 1-1024, e.g. max_entries = 64",
            ..Spec::new("max_entries", Want::WholeNumber)
        }),
    ],
    make: Make::Source {
        ids: "jetson_inference",
        parse,
        produces,
        setup,
    },
};

/// A contract_file source's parameters, checked (`path` may still start with `~/`).
#[derive(Clone, Debug)]
struct ContractParams {
    path: String,
    max_age: Micros,
    source_type: String,
    max_bytes: usize,
    max_entries: usize,
}

fn valid_type(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

fn parse(r: &mut Reader) -> ParamsBox {
    let mut p = ContractParams {
        path: "~/.smollama/jetson_inference.json".into(),
        max_age: 30_000_000,
        source_type: "jetson_inference".into(),
        max_bytes: 256 * 1024,
        max_entries: 64,
    };
    let hint = |r: &Reader, k: &str| r.kind.param(k).map(|d| d.spec.hint.to_string());
    for raw in r.params() {
        match raw.key.as_str() {
            "path" => match as_text(&raw.value) {
                Ok(s) if s.starts_with('/') || (s.starts_with("~/") && s.len() > 2) => {
                    p.path = s.into()
                }
                Ok(s) => {
                    let h = hint(r, "path");
                    r.bad(raw, (format!("'{s}' is neither absolute nor under ~/"), h))
                }
                Err(e) => r.bad(raw, e),
            },
            "max_age" => match positive_dur(&raw.value) {
                Ok(d) => p.max_age = d,
                Err(e) => r.bad(raw, e),
            },
            "source_type" => match as_text(&raw.value) {
                Ok(s) if RESERVED_TYPES.contains(&s) => r.bad(
                    raw,
                    (
                        format!("'{s}' is the type of the built-in {s} source's ids"),
                        Some("use a type of its own, e.g. source_type = \"camera\"".into()),
                    ),
                ),
                Ok(s) if valid_type(s) => p.source_type = s.into(),
                Ok(s) => {
                    let h = hint(r, "source_type");
                    r.bad(raw, (format!("'{s}' is not a valid id type"), h))
                }
                Err(e) => r.bad(raw, e),
            },
            "max_kb" | "max_entries" => {
                match r.kind.param(&raw.key).map(|d| int_in(&raw.value, &d.spec)) {
                    Some(Ok(n)) if raw.key == "max_kb" => p.max_bytes = n as usize * 1024,
                    Some(Ok(n)) => p.max_entries = n as usize,
                    Some(Err(e)) => r.bad(raw, e),
                    None => {}
                }
            }
            _ => {}
        }
    }
    Arc::new(p)
}

fn produces(_: &SourceSpec, _: &crate::config::Settings) -> Produced {
    // The names are whatever the writer puts in the file.
    Produced {
        ids: Vec::new(),
        open: Some(Flow::Any),
    }
}

/// `~/x` under `home`; an absolute path as it is.
fn resolve(path: &str, home: Option<&str>) -> Result<PathBuf, String> {
    match path.strip_prefix("~/") {
        None => Ok(PathBuf::from(path)),
        Some(rest) => match home {
            Some(h) if !h.is_empty() => Ok(PathBuf::from(h).join(rest)),
            _ => Err(format!(
                "path {path} starts with ~/ but HOME is not set; give an absolute path"
            )),
        },
    }
}

/// Refuse a `source_type` that another kind's ids have (a kind added after
/// `RESERVED_TYPES` was written): its readings would mix with that kind's.
fn own_type(registry: &Registry, source_type: &str) -> Result<(), String> {
    if source_type != "jetson_inference" && registry.is_local(&format!("{source_type}:x")) {
        return Err(format!(
            "source_type '{source_type}' is the type of another source kind's ids; use a type of its own"
        ));
    }
    Ok(())
}

fn setup(spec: &SourceSpec, s: &mut Setup) -> Result<Box<dyn Source>, Unavailable> {
    let p = params_of::<ContractParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?
        .clone();
    own_type(s.parts.registry, &p.source_type).map_err(Unavailable::Failed)?;
    let home = std::env::var("HOME").ok();
    let path = resolve(&p.path, home.as_deref()).map_err(Unavailable::Failed)?;
    let (wake_tx, wake_rx) = async_channel::bounded(1);
    Ok(Box::new(ContractSource {
        name: spec.name.clone(),
        file: Arc::new(Mutex::new(ContractReader::new(path, &p))),
        prefix: format!("{}:", p.source_type),
        params: p,
        names: Vec::new(),
        last_ts: None,
        every: spec.every,
        worker: s.parts.hardware.worker(),
        counters: Arc::new(Counters::new(COUNTERS)),
        wake_tx,
        wake_rx,
        problem: None,
    }))
}

/// One usable entry of a contract.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    name: String,
    value: Value,
    unit: Option<String>,
}

/// A contract as read.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Contract {
    ts: Micros,
    entries: Vec<Entry>,
    /// Entries left out (no name, a value the graph cannot hold, past max_entries).
    refused: usize,
}

/// What a look at the file found.
#[derive(Clone, Debug, PartialEq)]
enum Look {
    /// Same size, mtime and inode as the last good read.
    Unchanged,
    Missing(String),
    TooLarge(u64),
    Corrupt(String),
    New(Contract),
}

/// A contract's entries, checked as the module doc says.
pub(crate) fn parse_contract(text: &[u8], max_entries: usize) -> Result<Contract, String> {
    let j: Json = serde_json::from_slice(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let Json::Object(top) = j else {
        return Err("not a JSON object".into());
    };
    let ts = match top.get("ts") {
        Some(Json::Number(n)) => n.as_f64(),
        Some(Json::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|s| s.is_finite() && *s > 0.0)
    .ok_or("no ts (epoch seconds)")?;
    let Some(Json::Array(list)) = top.get("readings") else {
        return Err("readings is not a list".into());
    };
    let mut c = Contract {
        ts: (ts * 1e6) as Micros,
        entries: Vec::with_capacity(list.len().min(max_entries)),
        refused: 0,
    };
    for e in list {
        let Some(name) = e.get("name").and_then(Json::as_str) else {
            c.refused += 1;
            continue;
        };
        let value = match e.get("value") {
            Some(Json::Bool(b)) => Some(Value::Bool(*b)),
            Some(Json::Number(n)) => n.as_f64().filter(|x| x.is_finite()).map(Value::Number),
            Some(Json::String(s)) if s.len() <= ShortText::CAPACITY => {
                Some(Value::Text(ShortText::new(s)))
            }
            _ => None,
        };
        let unit = match e.get("unit") {
            None | Some(Json::Null) => Some(None),
            Some(Json::String(u)) if u.len() <= MAX_UNIT => Some(Some(u.clone())),
            Some(_) => None,
        };
        match (value, unit) {
            (Some(value), Some(unit)) if valid_name(name) && c.entries.len() < max_entries => {
                c.entries.push(Entry {
                    name: name.to_string(),
                    value,
                    unit,
                })
            }
            _ => c.refused += 1,
        }
    }
    Ok(c)
}

/// The file's side, on the `hw` thread: its path, what it was at the last good read,
/// and one reused buffer.
struct ContractReader {
    path: PathBuf,
    max_bytes: usize,
    max_entries: usize,
    /// (size, mtime ns, inode) of the last contract read.
    seen: Option<(u64, i128, u64)>,
    buf: Vec<u8>,
}

impl ContractReader {
    fn new(path: PathBuf, p: &ContractParams) -> ContractReader {
        ContractReader {
            path,
            max_bytes: p.max_bytes,
            max_entries: p.max_entries,
            seen: None,
            buf: Vec::new(),
        }
    }

    fn look(&mut self) -> Look {
        let shown = self.path.display();
        let mut f: File = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) => {
                self.seen = None;
                return Look::Missing(format!("cannot read {shown}: {e}"));
            }
        };
        let meta = match f.metadata() {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Look::Corrupt(format!("{shown} is not a regular file")),
            Err(e) => return Look::Missing(format!("cannot read {shown}: {e}")),
        };
        let stamp = (
            meta.len(),
            meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            meta.ino(),
        );
        if self.seen == Some(stamp) {
            return Look::Unchanged;
        }
        if meta.len() > self.max_bytes as u64 {
            return Look::TooLarge(meta.len());
        }
        self.buf.clear();
        // One byte more than allowed tells a file that grew since the stat.
        let limit = self.max_bytes as u64 + 1;
        if let Err(e) = (&mut f).take(limit).read_to_end(&mut self.buf) {
            return Look::Missing(format!("cannot read {shown}: {e}"));
        }
        if self.buf.len() > self.max_bytes {
            return Look::TooLarge(self.buf.len() as u64);
        }
        match parse_contract(&self.buf, self.max_entries) {
            Ok(c) => {
                self.seen = Some(stamp);
                Look::New(c)
            }
            // A writer that rewrites in place may be caught halfway: read it again next time.
            Err(why) => Look::Corrupt(format!("{shown} is {why}")),
        }
    }
}

/// A set-up contract_file source.
struct ContractSource {
    name: String,
    file: Arc<Mutex<ContractReader>>,
    params: ContractParams,
    /// `<source_type>:`.
    prefix: String,
    /// The names seen, with their registry entries (at most `max_entries`).
    names: Vec<(String, Arc<SourceInfo>)>,
    /// The `ts` of the last contract emitted (or found stale).
    last_ts: Option<Micros>,
    every: Micros,
    worker: Worker,
    counters: Arc<Counters>,
    wake_tx: async_channel::Sender<()>,
    wake_rx: async_channel::Receiver<()>,
    problem: Option<String>,
}

impl ContractSource {
    /// The registry entry for an entry's name: known, new (within the bound), or refused
    /// (also when its kind differs from its first reading's).
    fn entry(&mut self, registry: &Registry, e: &Entry) -> Option<Arc<SourceInfo>> {
        let kind = e.value.kind();
        if let Some((_, info)) = self.names.iter().find(|(n, _)| *n == e.name) {
            return (info.kind == kind).then(|| info.clone());
        }
        if self.names.len() >= self.params.max_entries {
            return None;
        }
        let unit = e.unit.as_deref().unwrap_or("");
        let info = registry.intern(&format!("{}{}", self.prefix, e.name), unit, kind);
        info.live.interval_us.store(self.every, Ordering::Relaxed);
        self.names.push((e.name.clone(), info.clone()));
        Some(info)
    }

    /// What a look means for the node: readings to send, and the problem (if any).
    fn absorb(
        &mut self,
        registry: &Registry,
        look: Look,
        now: Micros,
        out: &mut Vec<Reading>,
    ) -> Option<String> {
        out.clear();
        // The reason names the contract's ts, not its age, so it stays the same while
        // the contract does (logged once).
        let age_problem = |ts: Micros, max_age: Micros| {
            if now - ts > max_age {
                Some(format!(
                    "stale: the contract's ts {} is older than max_age {}",
                    iso8601(ts),
                    format_duration(max_age)
                ))
            } else if ts - now > MAX_AHEAD {
                Some(format!(
                    "stale: the contract's ts {} is more than {} ahead of this clock",
                    iso8601(ts),
                    format_duration(MAX_AHEAD)
                ))
            } else {
                None
            }
        };
        match look {
            Look::Unchanged => self
                .last_ts
                .and_then(|ts| age_problem(ts, self.params.max_age)),
            Look::Missing(why) => Some(format!("unavailable: {why} (is its writer running?)")),
            Look::TooLarge(n) => {
                self.counters.inc(C_TOO_LARGE);
                Some(format!(
                    "{} is {} KiB, more than max_kb = {}",
                    self.params.path,
                    n.div_ceil(1024),
                    self.params.max_bytes / 1024
                ))
            }
            Look::Corrupt(why) => {
                self.counters.inc(C_CORRUPT);
                Some(why)
            }
            Look::New(c) => {
                self.counters.inc(C_CONTRACTS);
                self.counters.add(C_REFUSED, c.refused as u64);
                if let Some(p) = age_problem(c.ts, self.params.max_age) {
                    self.counters.inc(C_STALE);
                    self.last_ts = Some(c.ts);
                    return Some(p);
                }
                if self.last_ts != Some(c.ts) {
                    self.last_ts = Some(c.ts);
                    for e in &c.entries {
                        match self.entry(registry, e) {
                            Some(info) => {
                                info.live.available.store(true, Ordering::Relaxed);
                                info.live.record(c.ts, e.value);
                                out.push(Reading::new(info.id, c.ts, e.value));
                                self.counters.inc(C_READINGS);
                            }
                            None => self.counters.inc(C_REFUSED),
                        }
                    }
                }
                None
            }
        }
    }

    async fn run(mut self, ctx: SourceCtx) {
        let _keep_open = self.wake_tx.clone();
        let mut backoff = Backoff::new(self.every);
        let mut out = Vec::with_capacity(self.params.max_entries);
        loop {
            let file = self.file.clone();
            let look = self
                .worker
                .run(move || file.lock().unwrap_or_else(|e| e.into_inner()).look())
                .await
                .unwrap_or_else(|| Look::Corrupt("the read failed on the hw thread".into()));
            let missing = matches!(look, Look::Missing(_));
            let now = now_us();
            let problem = self.absorb(&ctx.registry, look, now, &mut out);
            if problem != self.problem {
                match &problem {
                    Some(why) => {
                        log::warn!("contract_file source '{}': {why}", self.name);
                        ctx.health.set_degraded(why.clone());
                        for (_, info) in &self.names {
                            info.live.available.store(false, Ordering::Relaxed);
                        }
                    }
                    None => {
                        log::info!(
                            "contract_file source '{}': reading contracts again",
                            self.name
                        );
                        ctx.health.set_recovered();
                    }
                }
                self.problem = problem;
            }
            for r in &out {
                ctx.out.send(Item::Reading(*r)).await;
            }
            let wait = if missing {
                backoff.next_delay()
            } else {
                backoff.reset();
                self.every
            };
            // A new interval from the adaptive stage takes effect at the next read.
            if !ctx.sleep_until(now + wait, &self.wake_rx).await {
                return;
            }
        }
    }
}

impl Source for ContractSource {
    fn start(self: Box<Self>, ctx: SourceCtx) -> Task {
        Box::pin((*self).run(ctx))
    }

    fn counters(&self) -> Option<Arc<Counters>> {
        Some(self.counters.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ContractParams {
        ContractParams {
            path: "/x".into(),
            max_age: 30_000_000,
            source_type: "jetson_inference".into(),
            max_bytes: 4096,
            max_entries: 3,
        }
    }

    fn source(p: ContractParams, path: PathBuf) -> ContractSource {
        let (wake_tx, wake_rx) = async_channel::bounded(1);
        ContractSource {
            name: "cam".into(),
            file: Arc::new(Mutex::new(ContractReader::new(path, &p))),
            prefix: format!("{}:", p.source_type),
            params: p,
            names: Vec::new(),
            last_ts: None,
            every: 1_000_000,
            worker: crate::edges::hw::worker::LazyWorker::default().get(),
            counters: Arc::new(Counters::new(COUNTERS)),
            wake_tx,
            wake_rx,
            problem: None,
        }
    }

    #[test]
    fn entries_become_values_the_graph_holds_and_the_rest_is_refused() {
        let text = br#"{"ts": "1764590000.5", "model": "ssd", "fps": 14.8, "readings": [
            {"name": "person", "value": 2, "unit": "count", "metadata": {"box": [1, 2]}},
            {"name": "door_open", "value": true},
            {"value": 1},
            {"name": "label", "value": "a text far longer than twenty-two bytes"},
            {"name": "state", "value": "idle"},
            {"name": "extra", "value": 4}
        ]}"#;
        let c = parse_contract(text, 3).unwrap();
        assert_eq!(c.ts, 1_764_590_000_500_000);
        let got: Vec<(&str, Value, Option<&str>)> = c
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.value, e.unit.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("person", Value::Number(2.0), Some("count")),
                ("door_open", Value::Bool(true), None),
                ("state", Value::Text(ShortText::new("idle")), None),
            ]
        );
        assert_eq!(c.refused, 3, "no name, too long a text, past max_entries");
        assert!(
            parse_contract(b"{\"ts\": 1, \"readings\": {}}", 8)
                .unwrap_err()
                .contains("not a list")
        );
        assert!(
            parse_contract(b"{\"readings\": []}", 8)
                .unwrap_err()
                .contains("no ts")
        );
        assert!(
            parse_contract(b"{\"ts\": 1, \"readi", 8)
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(parse_contract(b"[1]", 8).is_err());
    }

    #[test]
    fn a_contract_is_emitted_once_and_ignored_when_stale_missing_or_too_large() {
        let dir = std::env::temp_dir().join(format!("smollama-contract-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.json");
        let _ = std::fs::remove_file(&path);
        let reg = Registry::new();
        let mut s = source(params(), path.clone());
        let mut out = Vec::new();
        // One clock for the whole test: ages are exact.
        let now = now_us();
        let look = |s: &mut ContractSource, out: &mut Vec<Reading>| {
            let l = s.file.lock().unwrap().look();
            s.absorb(&reg, l, now, out)
        };
        let why = look(&mut s, &mut out).unwrap();
        assert!(
            why.starts_with("unavailable: cannot read ") && why.contains("is its writer running?"),
            "{why}"
        );

        let write = |ts: f64, v: f64| {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, format!(r#"{{"ts": {ts}, "readings": [{{"name": "person", "value": {v}, "unit": "count"}}]}}"#)).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        };
        let now_s = now as f64 / 1e6;
        write(now_s, 2.0);
        assert_eq!(look(&mut s, &mut out), None);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value, Value::Number(2.0));
        assert_eq!(out[0].ts, (now_s * 1e6) as Micros, "the contract's ts");
        let info = reg.lookup("jetson_inference:person").unwrap();
        assert_eq!(&*info.unit, "count");
        // Unchanged, or rewritten with the same ts: nothing new.
        assert_eq!(look(&mut s, &mut out), None);
        assert!(out.is_empty());
        write(now_s, 2.0);
        assert_eq!(look(&mut s, &mut out), None);
        assert!(out.is_empty());
        // Stale: ignored, with the reason.
        write(now_s - 45.0, 7.0);
        let why = look(&mut s, &mut out).unwrap();
        let ts = ((now_s - 45.0) * 1e6) as Micros;
        assert_eq!(
            why,
            format!(
                "stale: the contract's ts {} is older than max_age 30s",
                crate::clock::iso8601(ts)
            )
        );
        assert_eq!(
            look(&mut s, &mut out).as_ref(),
            Some(&why),
            "the same while it is unchanged"
        );
        assert!(out.is_empty());
        assert_eq!(s.counters.by_name("stale"), 1);
        // Too large: refused before it is parsed.
        std::fs::write(&path, vec![b' '; 5000]).unwrap();
        let why = look(&mut s, &mut out).unwrap();
        assert!(why.contains("is 5 KiB, more than max_kb = 4"), "{why}");
        // Fresh again.
        write(now_s + 1.0, 3.0);
        assert_eq!(look(&mut s, &mut out), None);
        assert_eq!(out.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_source_type_of_another_kind_is_refused_at_setup() {
        let reg = Registry::with_local_types(vec!["jetson_inference", "bme280"]);
        assert!(
            own_type(&reg, "bme280")
                .unwrap_err()
                .contains("another source kind's ids")
        );
        assert_eq!(own_type(&reg, "camera"), Ok(()));
        assert_eq!(own_type(&reg, "jetson_inference"), Ok(()));
    }

    #[test]
    fn home_paths_need_home() {
        assert_eq!(
            resolve("~/.smollama/c.json", Some("/home/pi")).unwrap(),
            PathBuf::from("/home/pi/.smollama/c.json")
        );
        assert_eq!(
            resolve("/run/c.json", None).unwrap(),
            PathBuf::from("/run/c.json")
        );
        assert!(
            resolve("~/c.json", None)
                .unwrap_err()
                .contains("HOME is not set")
        );
    }
}
