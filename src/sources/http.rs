//! The `http` source: polls a URL (plain `http://`; this build has no TLS) every `every`
//! and picks readings out of the JSON answer with JSON pointers, as
//! `http:<source name>:<suffix>`. The interval is each value's, so the adaptive stage
//! moves it as for any source; one poll serves every value (the shortest interval wins).
//!
//! The blocking request (ureq, with a whole-request timeout) and the JSON parsing run on
//! a small thread per source, `http-src-<name>`, which the source task talks to over two
//! bounded channels (a poll request, its result): the event loop never waits on the
//! network. The thread ends when the task drops its request channel (on shutdown), after
//! the request it may be in, which the timeout bounds.
//!
//! Failures (unreachable, timeout, HTTP error status, a body that is too large or not
//! JSON, a pointer that matches nothing, a value that is neither a number nor a boolean)
//! are counted per kind (status shows the counters), make the source report itself
//! degraded with the reason, and are logged once per change of state; the next good poll
//! clears it. Header values (an Authorization token) are never logged or shown.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use toml::Value as Toml;

use crate::clock::now_us;
use crate::config::SourceSpec;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::graph::counters::Counters;
use crate::graph::registry::SourceInfo;
use crate::graph::{Item, Micros, Reading, Value, ValueKind};
use crate::plugins::params::{Reader, as_text, describe, int_in, positive_dur};
use crate::plugins::{Kind, Make, Param, ParamsBox, Produced, Role, Unavailable, params_of};
use crate::plugins::{Setup, Source, SourceCtx, Task, Woke};

/// The default bound on a response body (`max_body_kb`); a larger one is a failed poll
/// (`too_large`).
const DEFAULT_MAX_BODY_KB: i64 = 256;

/// ureq's read and write buffers, and the largest response header accepted.
const BUFFER: usize = 16 * 1024;

/// Default whole-request timeout.
const DEFAULT_TIMEOUT_US: Micros = 5_000_000;

const TLS_HINT: &str = "https needs TLS, which this build leaves out; poll a plain http:// URL (a device on the local network), or put a local proxy in front";

/// One value picked from the answer.
#[derive(Clone, Debug, PartialEq)]
struct Pick {
    /// The id's last part (`temperature` of `http:weather:temperature`).
    suffix: String,
    /// RFC 6901 JSON pointer, starting with `/`.
    pointer: String,
    kind: ValueKind,
    unit: String,
}

/// An http source's parameters, as validated. `Debug` leaves header values out, so a
/// token never reaches a log line.
#[derive(Clone, PartialEq)]
struct HttpParams {
    url: String,
    picks: Vec<Pick>,
    timeout: Micros,
    /// The largest answer read, in KiB.
    max_body_kb: u64,
    headers: Vec<(String, String)>,
}

impl fmt::Debug for HttpParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("HttpParams")
            .field("url", &self.url)
            .field("picks", &self.picks)
            .field("timeout", &self.timeout)
            .field("max_body_kb", &self.max_body_kb)
            .field("headers", &names)
            .finish()
    }
}

pub const KIND: Kind = Kind {
    role: Role::Source,
    name: "http",
    version: env!("CARGO_PKG_VERSION"),
    doc: "polls a URL and picks numbers or booleans out of its JSON answer (http:// only)",
    params: &[
        Param::new(Spec {
            default: "\"10s\"",
            doc: "starting polling interval (the adaptive stage may move it); at least 100ms",
            ..Spec::new("every", Want::Duration)
        }),
        Param::new(Spec {
            doc: "the URL to GET, http:// only (required), e.g. \"http://192.168.1.40/data.json\"",
            hint: TLS_HINT,
            ..Spec::new("url", Want::Text)
        }),
        Param::new(Spec {
            doc: "id suffix = JSON pointer (a number) or { pointer = \"/x\", kind = \"boolean\" } (required), e.g. { temperature = \"/main/temp\" }",
            ..Spec::new("values", Want::Text)
        })
        .taking("a table of id suffix = JSON pointer, e.g. { temperature = \"/main/temp\" }"),
        Param::new(Spec {
            doc: "unit per value, e.g. { temperature = \"celsius\" } (default none)",
            ..Spec::new("units", Want::Text)
        })
        .taking("a table of id suffix = unit, e.g. { temperature = \"celsius\" }"),
        Param::new(Spec {
            default: "\"5s\"",
            doc: "how long one poll may take, connecting and reading included",
            ..Spec::new("timeout", Want::Duration)
        }),
        Param::new(Spec {
            range: Some((1.0, 4096.0)),
            default: "256",
            doc: "the largest answer read, in KiB; a larger one fails the poll (too_large)",
            hint: "use 1 to 4096 KiB (default 256)",
            ..Spec::new("max_body_kb", Want::WholeNumber)
        }),
        Param::new(Spec {
            doc: "request headers, e.g. { Authorization = \"Bearer ...\" } (values are never logged)",
            ..Spec::new("headers", Want::Text)
        })
        .taking("a table of header name = value"),
    ],
    make: Make::Source {
        ids: "http",
        parse,
        produces,
        setup,
    },
};

// ---------------------------------------------------------------------------------------
// Parameters.

/// Check a URL: `http://host[:port][/path]`. The problem says what is wrong.
fn check_url(s: &str) -> Result<(), (String, Option<String>)> {
    if s.len() >= 6 && s[..6].eq_ignore_ascii_case("https:") {
        return Err((format!("'{s}' is an https URL"), Some(TLS_HINT.to_string())));
    }
    let hint = Some("write e.g. url = \"http://192.168.1.40/data.json\"".to_string());
    let uri = match s.parse::<ureq::http::Uri>() {
        Ok(u) => u,
        Err(e) => return Err((format!("'{s}' is not a URL ({e})"), hint)),
    };
    if uri.scheme_str() != Some("http") {
        return Err((format!("'{s}' is not an http:// URL"), hint));
    }
    // Credentials in the URL would be shown wherever the URL is; headers are never shown.
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err((
            format!(
                "the URL of '{}' carries credentials",
                uri.host().unwrap_or("?")
            ),
            Some(
                "give them as a header instead, e.g. headers = { Authorization = \"Basic ...\" }"
                    .into(),
            ),
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err((format!("'{s}' names no host"), hint));
    }
    Ok(())
}

fn check_pointer(suffix: &str, v: &Toml) -> Result<String, (String, Option<String>)> {
    let hint = Some(format!(
        "a JSON pointer starts with /, e.g. {suffix} = \"/main/temp\" picks main.temp"
    ));
    match v {
        Toml::String(s) if s.starts_with('/') => Ok(s.clone()),
        Toml::String(s) => Err((
            format!("'{s}' for '{suffix}' is not a JSON pointer: it must start with /"),
            hint,
        )),
        other => Err((
            format!(
                "expected a JSON pointer in quotes for '{suffix}', found {}",
                describe(other)
            ),
            hint,
        )),
    }
}

/// An id suffix: letters, digits, `_`, `-` and `.`, as other ids.
fn good_suffix(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// One `values` entry: a pointer (a number), or `{ pointer, kind }`.
fn read_pick(suffix: &str, v: &Toml) -> Result<Pick, (String, Option<String>)> {
    if !good_suffix(suffix) {
        return Err((
            format!("'{suffix}' cannot be part of an id"),
            Some("use letters, digits, _, - and . (e.g. temperature)".into()),
        ));
    }
    let (pointer, kind) = match v {
        Toml::Table(t) => {
            for k in t.keys() {
                if k != "pointer" && k != "kind" {
                    return Err((
                        format!("'{suffix}' has an unknown key '{k}'"),
                        Some("an entry takes pointer and kind".into()),
                    ));
                }
            }
            let pointer = check_pointer(suffix, t.get("pointer").unwrap_or(&Toml::Integer(0)))?;
            let kind = match t.get("kind").map(as_text).transpose()? {
                None | Some("number") => ValueKind::Number,
                Some("boolean") | Some("bool") => ValueKind::Bool,
                Some(other) => {
                    return Err((
                        format!("kind '{other}' of '{suffix}' is neither number nor boolean"),
                        Some("kind = \"number\" (the default) or kind = \"boolean\"".into()),
                    ));
                }
            };
            (pointer, kind)
        }
        other => (check_pointer(suffix, other)?, ValueKind::Number),
    };
    Ok(Pick {
        suffix: suffix.to_string(),
        pointer,
        kind,
        unit: String::new(),
    })
}

fn parse(r: &mut Reader) -> ParamsBox {
    let mut out = HttpParams {
        url: String::new(),
        picks: Vec::new(),
        timeout: DEFAULT_TIMEOUT_US,
        max_body_kb: DEFAULT_MAX_BODY_KB as u64,
        headers: Vec::new(),
    };
    let mut units: Vec<(String, String, &crate::plugins::params::RawParam)> = Vec::new();
    let mut values_given = false;
    for p in r.params() {
        match (p.key.as_str(), &p.value) {
            ("url", Toml::String(s)) => match check_url(s) {
                Ok(()) => out.url = s.clone(),
                Err(e) => r.bad(p, e),
            },
            ("values", Toml::Table(t)) => {
                values_given = true;
                if t.is_empty() {
                    r.bad(
                        p,
                        (
                            "an empty table picks no value".into(),
                            Some(
                                "name at least one, e.g. values = { temperature = \"/main/temp\" }"
                                    .into(),
                            ),
                        ),
                    );
                }
                for (k, v) in t {
                    match read_pick(k, v) {
                        Ok(pick) => out.picks.push(pick),
                        Err(e) => r.bad(p, e),
                    }
                }
            }
            ("units", Toml::Table(t)) => {
                for (k, v) in t {
                    match as_text(v) {
                        Ok(u) => units.push((k.clone(), u.to_string(), p)),
                        Err(e) => r.bad(p, e),
                    }
                }
            }
            ("headers", Toml::Table(t)) => {
                for (k, v) in t {
                    let ok_name = !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    match v {
                        // The value is not echoed: it may be a secret.
                        Toml::String(s) if ok_name && !s.contains(['\r', '\n']) => {
                            out.headers.push((k.clone(), s.clone()))
                        }
                        _ => r.bad(
                            p,
                            (
                                format!("header '{k}' needs a name of letters, digits and - and a one-line text value in quotes"),
                                Some("e.g. headers = { Authorization = \"Bearer abc\" }".into()),
                            ),
                        ),
                    }
                }
            }
            ("max_body_kb", v) => {
                let spec = KIND.param("max_body_kb").map(|d| d.spec);
                match spec.map(|spec| int_in(v, &spec)) {
                    Some(Ok(kb)) => out.max_body_kb = kb as u64,
                    Some(Err(e)) => r.bad(p, e),
                    None => {}
                }
            }
            ("timeout", v) => match positive_dur(v) {
                Ok(d) => out.timeout = d,
                Err(e) => r.bad(p, e),
            },
            (key @ ("url" | "values" | "units" | "headers"), other) => {
                let want = KIND.param(key).map_or("", |d| d.takes());
                r.bad(
                    p,
                    (format!("expected {want}, found {}", describe(other)), None),
                )
            }
            _ => {}
        }
    }
    let no_picks = out.picks.is_empty();
    for (suffix, unit, p) in units {
        match out.picks.iter_mut().find(|x| x.suffix == suffix) {
            Some(pick) => pick.unit = unit,
            None if no_picks => {}
            None => {
                let names: Vec<&str> = out.picks.iter().map(|x| x.suffix.as_str()).collect();
                r.bad(
                    p,
                    (
                        format!("'{suffix}' is not one of the values"),
                        Some(crate::config::suggest::hint(&suffix, "values", &names)),
                    ),
                )
            }
        }
    }
    if r.clean() {
        if out.url.is_empty() {
            let msg = format!("http source '{}' has no url", r.name);
            r.bad_at(
                r.line,
                msg,
                Some("add url = \"http://192.168.1.40/data.json\"".into()),
            );
        }
        if !values_given {
            let msg = format!("http source '{}' has no values", r.name);
            r.bad_at(
                r.line,
                msg,
                Some(
                    "add values = { temperature = \"/main/temp\" } (id suffix = JSON pointer)"
                        .into(),
                ),
            );
        }
    }
    Arc::new(out)
}

fn id(source: &str, suffix: &str) -> String {
    format!("http:{source}:{suffix}")
}

fn produces(spec: &SourceSpec, _: &crate::config::Settings) -> Produced {
    let picks = params_of::<HttpParams>(&spec.params).map_or(&[][..], |p| p.picks.as_slice());
    Produced {
        ids: picks
            .iter()
            .map(|x| (id(&spec.name, &x.suffix), x.kind))
            .collect(),
        open: None,
    }
}

// ---------------------------------------------------------------------------------------
// The poll thread: one blocking request at a time, parsed there.

/// Why a poll failed, one counter each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    Unreachable,
    Timeout,
    Status,
    TooLarge,
    NotJson,
    Missing,
    Malformed,
}

/// Counter names, in `Failure` order after `polls` and `ok`.
const COUNTERS: &[&str] = &[
    "polls",
    "ok",
    "unreachable",
    "timeouts",
    "http_errors",
    "too_large",
    "not_json",
    "missing",
    "malformed",
];
const POLLS: usize = 0;
const OK: usize = 1;

impl Failure {
    fn counter(self) -> usize {
        2 + self as usize
    }
}

/// One poll's outcome: a value (or why not) per pick, or why the whole poll failed.
pub(crate) type Outcome = Result<Vec<Result<Value, (Failure, String)>>, (Failure, String)>;

struct Poller {
    agent: ureq::Agent,
    url: String,
    headers: Vec<(String, String)>,
    picks: Vec<(String, ValueKind)>,
    timeout: Duration,
    max_body: u64,
}

impl Poller {
    fn new(p: &HttpParams) -> Poller {
        let timeout = Duration::from_micros(p.timeout.max(1) as u64);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeout))
            .timeout_resolve(Some(timeout))
            .timeout_global(Some(timeout))
            // ureq's 128 KiB buffers each way are sized for big transfers; a device's
            // headers fit in far less (measured: docs/benchmarks.md, "http source").
            .input_buffer_size(BUFFER)
            .output_buffer_size(BUFFER)
            .max_response_header_size(BUFFER)
            // One device per source: keep one connection for the next poll.
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            .user_agent(concat!("smollama/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Poller {
            agent,
            url: p.url.clone(),
            headers: p.headers.clone(),
            picks: p
                .picks
                .iter()
                .map(|x| (x.pointer.clone(), x.kind))
                .collect(),
            timeout,
            max_body: p.max_body_kb * 1024,
        }
    }

    fn poll(&self) -> Outcome {
        read_answer(&self.fetch()?, &self.picks)
    }

    fn fetch(&self) -> Result<String, (Failure, String)> {
        let mut req = self.agent.get(&self.url);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut resp = req.call().map_err(|e| self.failure(e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err((Failure::Status, format!("HTTP status {status}")));
        }
        resp.body_mut()
            .with_config()
            .limit(self.max_body)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(|e| self.failure(e))
    }

    fn failure(&self, e: ureq::Error) -> (Failure, String) {
        match e {
            ureq::Error::Timeout(_) => (
                Failure::Timeout,
                format!("no complete answer within {:?}", self.timeout),
            ),
            ureq::Error::BodyExceedsLimit(_) => (
                Failure::TooLarge,
                format!("the answer is larger than {} KiB", self.max_body / 1024),
            ),
            ureq::Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                (
                    Failure::Timeout,
                    format!("no complete answer within {:?}", self.timeout),
                )
            }
            ureq::Error::Io(io) => (Failure::Unreachable, format!("cannot reach it ({io})")),
            ureq::Error::HostNotFound => (Failure::Unreachable, "host not found".into()),
            ureq::Error::ConnectionFailed => (Failure::Unreachable, "connection failed".into()),
            other => (Failure::Unreachable, format!("request failed ({other})")),
        }
    }
}

/// The values `picks` point at in an answer's body, or why the body is unusable.
pub(crate) fn read_answer(body: &str, picks: &[(String, ValueKind)]) -> Outcome {
    let json: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| (Failure::NotJson, format!("the answer is not JSON ({e})")))?;
    Ok(picks
        .iter()
        .map(|(ptr, kind)| pick(&json, ptr, *kind))
        .collect())
}

/// The value at `ptr`: numbers (or numeric text) for numeric picks, booleans for boolean
/// ones; anything else is malformed.
fn pick(json: &serde_json::Value, ptr: &str, kind: ValueKind) -> Result<Value, (Failure, String)> {
    use serde_json::Value as J;
    let Some(v) = json.pointer(ptr) else {
        return Err((
            Failure::Missing,
            format!("{ptr} matches nothing in the answer"),
        ));
    };
    let got = match (kind, v) {
        (ValueKind::Bool, J::Bool(b)) => Some(Value::Bool(*b)),
        (ValueKind::Number, J::Number(n)) => n.as_f64().map(Value::Number),
        (ValueKind::Number, J::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::Number),
        _ => None,
    };
    got.ok_or_else(|| {
        let want = if kind == ValueKind::Bool {
            "a boolean"
        } else {
            "a number"
        };
        let what = match v {
            J::Null => "null",
            J::Bool(_) => "a boolean",
            J::Number(_) => "a number",
            J::String(_) => "text",
            J::Array(_) => "an array",
            J::Object(_) => "an object",
        };
        (Failure::Malformed, format!("{ptr} is {what}, not {want}"))
    })
}

/// Answer poll requests until the source drops its end.
fn serve(poller: Poller, polls: Receiver<()>, results: Sender<Outcome>) {
    while polls.recv_blocking().is_ok() {
        if results.send_blocking(poller.poll()).is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The source task.

struct HttpSource {
    name: String,
    infos: Vec<Arc<SourceInfo>>,
    counters: Arc<Counters>,
    polls: Sender<()>,
    results: Receiver<Outcome>,
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
}

fn setup(spec: &SourceSpec, s: &mut Setup) -> Result<Box<dyn Source>, Unavailable> {
    let p = params_of::<HttpParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?;
    let (wake_tx, wake_rx) = async_channel::bounded(1);
    let infos = p
        .picks
        .iter()
        .map(|x| {
            let info = s
                .parts
                .registry
                .intern(&id(&spec.name, &x.suffix), &x.unit, x.kind);
            info.live.interval_us.store(spec.every, Ordering::Relaxed);
            info.live.available.store(true, Ordering::Relaxed);
            info.live.set_waker(wake_tx.clone());
            info
        })
        .collect();
    let (polls, poll_rx) = async_channel::bounded(1);
    let (result_tx, results) = async_channel::bounded(1);
    let poller = Poller::new(p);
    std::thread::Builder::new()
        .name(format!("http-src-{}", spec.name))
        // Small: ureq and serde_json need little (JSON nesting is capped at 128 levels).
        .stack_size(256 * 1024)
        .spawn(move || serve(poller, poll_rx, result_tx))
        .map_err(|e| Unavailable::Failed(format!("cannot start its thread: {e}")))?;
    Ok(Box::new(HttpSource {
        name: spec.name.clone(),
        infos,
        counters: Arc::new(Counters::new(COUNTERS)),
        polls,
        results,
        wake_tx,
        wake_rx,
    }))
}

impl HttpSource {
    /// The polling interval: the shortest of the values' (each may be moved by the
    /// adaptive stage); at least 100ms.
    fn interval(&self) -> Micros {
        self.infos
            .iter()
            .map(|i| i.live.interval())
            .filter(|&i| i > 0)
            .min()
            .unwrap_or(crate::config::settings::DEFAULT_EVERY)
            .max(100_000)
    }

    async fn run(self, ctx: SourceCtx) {
        let _keep_open = self.wake_tx.clone();
        // The last failure reported (`None`: healthy), so each change is logged once.
        let mut failing: Option<String> = None;
        loop {
            let started = now_us();
            self.counters.inc(POLLS);
            let outcome = smol::future::or(
                async {
                    if self.polls.send(()).await.is_err() {
                        return None;
                    }
                    self.results.recv().await.ok()
                },
                async {
                    ctx.shutdown.wait().await;
                    None
                },
            )
            .await;
            let Some(outcome) = outcome else {
                return; // dropping `polls` ends the thread
            };
            let problem = self.deliver(outcome, &ctx).await;
            self.report(problem, &mut failing, &ctx);
            // Wait for the next poll, or a new interval from the adaptive stage.
            loop {
                // min: a clock stepped back since the poll must not delay the next.
                let due = started.min(now_us()).saturating_add(self.interval());
                let wait = (due - now_us()).max(0) as u64;
                if wait == 0 {
                    break;
                }
                match ctx.wait(Some(due), &self.wake_rx).await {
                    Woke::Shutdown => return,
                    Woke::Due => break,
                    Woke::Interval => {} // recompute the due time
                }
            }
        }
    }

    /// Send the values of a poll on; the first failure, counted, if any.
    async fn deliver(&self, outcome: Outcome, ctx: &SourceCtx) -> Option<String> {
        let values = match outcome {
            Ok(v) => v,
            Err((f, why)) => {
                self.counters.inc(f.counter());
                return Some(why);
            }
        };
        let now = now_us();
        let mut problem = None;
        for (info, v) in self.infos.iter().zip(values) {
            match v {
                Ok(value) => {
                    info.live.record(now, value);
                    ctx.out
                        .send(Item::Reading(Reading::new(info.id, now, value)))
                        .await;
                }
                Err((f, why)) => {
                    self.counters.inc(f.counter());
                    problem.get_or_insert(format!("{}: {why}", info.local_name()));
                }
            }
        }
        if problem.is_none() {
            self.counters.inc(OK);
        }
        problem
    }

    /// Health and the log, once per change of state.
    fn report(&self, problem: Option<String>, failing: &mut Option<String>, ctx: &SourceCtx) {
        if problem == *failing {
            return;
        }
        match &problem {
            Some(why) => {
                log::warn!(
                    "http source '{}': {why}; polling again every {}",
                    self.name,
                    crate::config::duration::format_duration(self.interval())
                );
                ctx.health.set_degraded(why.clone());
            }
            None => {
                log::info!("http source '{}': answering again", self.name);
                ctx.health.set_recovered();
            }
        }
        *failing = problem;
    }
}

impl Source for HttpSource {
    fn counters(&self) -> Option<Arc<Counters>> {
        Some(self.counters.clone())
    }

    fn start(self: Box<Self>, ctx: SourceCtx) -> Task {
        Box::pin((*self).run(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_must_be_plain_http_with_a_host() {
        assert!(check_url("http://127.0.0.1:8080/data.json").is_ok());
        assert!(check_url("http://weather.local/").is_ok());
        let (m, h) = check_url("https://api.example.com/x").unwrap_err();
        assert!(m.contains("https"), "{m}");
        assert!(h.unwrap().contains("TLS"));
        assert!(check_url("ftp://x/y").is_err());
        assert!(check_url("not a url").is_err());
        assert!(check_url("http:///path").is_err());
        let (m, h) = check_url("http://me:pw@10.0.0.2/x").unwrap_err();
        assert!(!m.contains("pw") && h.unwrap().contains("header"), "{m}");
    }

    #[test]
    fn values_are_numbers_numeric_text_or_booleans_and_the_rest_is_malformed() {
        let j = json!({"main": {"temp": 21.5, "hum": "40", "on": true, "name": "x", "n": null}});
        assert_eq!(
            pick(&j, "/main/temp", ValueKind::Number),
            Ok(Value::Number(21.5))
        );
        assert_eq!(
            pick(&j, "/main/hum", ValueKind::Number),
            Ok(Value::Number(40.0))
        );
        assert_eq!(pick(&j, "/main/on", ValueKind::Bool), Ok(Value::Bool(true)));
        for (ptr, kind) in [
            ("/main/name", ValueKind::Number),
            ("/main/n", ValueKind::Number),
            ("/main/on", ValueKind::Number),
            ("/main/temp", ValueKind::Bool),
            ("/main", ValueKind::Number),
        ] {
            assert_eq!(
                pick(&j, ptr, kind).unwrap_err().0,
                Failure::Malformed,
                "{ptr}"
            );
        }
        assert_eq!(
            pick(&j, "/main/wind", ValueKind::Number).unwrap_err().0,
            Failure::Missing
        );
    }

    #[test]
    fn counters_follow_the_failures_in_order() {
        assert_eq!(COUNTERS[Failure::Unreachable.counter()], "unreachable");
        assert_eq!(COUNTERS[Failure::Timeout.counter()], "timeouts");
        assert_eq!(COUNTERS[Failure::Malformed.counter()], "malformed");
        assert_eq!(COUNTERS.len(), Failure::Malformed.counter() + 1);
    }

    #[test]
    fn header_values_stay_out_of_debug_output() {
        let p = HttpParams {
            url: "http://x/".into(),
            picks: Vec::new(),
            timeout: 1,
            max_body_kb: 1,
            headers: vec![("Authorization".into(), "Bearer sekrit".into())],
        };
        let shown = format!("{p:?}");
        assert!(
            shown.contains("Authorization") && !shown.contains("sekrit"),
            "{shown}"
        );
    }
}
