//! The `exec` source: a long-running program (no shell) whose stdout lines are readings,
//! as `exec:<node name>:<source>`. A line is a JSON object
//! `{"source":"temp","value":21.5,"unit":"celsius","ts":1700000000.5}` (`unit` and `ts`,
//! epoch seconds, optional) or InfluxDB line protocol
//! `weather,room=attic temp=21.5,hum=40i 1700000000000000000` (one reading per field:
//! `weather.temp`, `weather.hum`; a field called `value` is just `weather`; tags are
//! ignored; the timestamp, nanoseconds, optional). Empty lines and `#` comments are
//! skipped.
//!
//! Everything runs on the event loop, no thread (starting the program, fork and exec, is
//! the one brief synchronous step): the child's stdout and stderr are
//! non-blocking pipes (`smol::Async`) read into fixed buffers (a JSON line is parsed into
//! a `serde_json::Value`, which allocates, as the MQTT edge's payloads do; a line-protocol
//! line allocates nothing once its names are known). Bounds, each counted in the
//! node's status counters: a line longer than `max_line` is skipped (`too_long`); past
//! `max_lines` lines a second the pipes are not read until the next second, so a flooding
//! child is slowed down by its full pipe rather than the agent (`throttled`); a line that
//! is neither form, or a value that is not a number or boolean, is skipped (`malformed`);
//! past `max_sources` names new ones are refused (`names_refused`). stderr lines are logged
//! at warn with the node's name, at most `STDERR_LOGS` a minute (the rest counted).
//!
//! When the program exits (or cannot be started) the node is degraded with the reason and
//! restarted after `restart_min`, doubling up to `restart_max`; a run that lasted
//! `STABLE` resets the delay. It is running again once a restarted child gives a reading.
//! On shutdown the child gets SIGTERM, then SIGKILL after `STOP_GRACE`; if the agent dies
//! the kernel sends it SIGTERM (`PR_SET_PDEATHSIG`).

use std::borrow::Cow;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdout, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value as Json;
use smol::Async;
use toml::Value as Toml;

use crate::clock::now_us;
use crate::config::SourceSpec;
use crate::config::duration::format_duration;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::graph::counters::Counters;
use crate::graph::registry::{Registry, SourceInfo};
use crate::graph::{Item, Micros, Reading, Value};
use crate::plugins::params::{Reader, as_text, describe, int_in, positive_dur};
use crate::plugins::{Flow, Kind, Make, Param, ParamsBox, Produced, Role, Unavailable, params_of};
use crate::plugins::{Setup, Task};
use crate::plugins::{Source, SourceCtx};

/// Longest source name a line may give (after `exec:<node>:`), bytes.
const MAX_NAME: usize = 64;
/// Longest unit a line may give, bytes.
const MAX_UNIT: usize = 32;
/// stderr lines logged per minute; the rest are counted (`stderr_unlogged`).
const STDERR_LOGS: u32 = 10;
/// A run this long resets the restart delay to `restart_min`.
const STABLE: Micros = 60_000_000;
/// How long a child has between SIGTERM and SIGKILL.
const STOP_GRACE: Micros = 1_000_000;
/// A line's `ts` may be at most this far ahead of the clock, or this old.
const MAX_AHEAD: Micros = 60_000_000;
const MAX_AGE: Micros = 7 * 86_400 * 1_000_000;

/// The counters shown in status, in this order.
const COUNTERS: &[&str] = &[
    "readings",
    "malformed",
    "too_long",
    "throttled",
    "names_refused",
    "stderr_lines",
    "stderr_unlogged",
    "restarts",
];
const C_READINGS: usize = 0;
const C_MALFORMED: usize = 1;
const C_TOO_LONG: usize = 2;
const C_THROTTLED: usize = 3;
const C_NAMES_REFUSED: usize = 4;
const C_STDERR: usize = 5;
const C_STDERR_UNLOGGED: usize = 6;
const C_RESTARTS: usize = 7;

/// An exec source's parameters, checked.
#[derive(Clone, Debug, PartialEq)]
struct ExecParams {
    /// The program and its arguments, run without a shell.
    command: Vec<String>,
    /// The unit of readings whose line gives none.
    unit: String,
    max_line: usize,
    max_lines: u32,
    max_sources: usize,
    restart_min: Micros,
    restart_max: Micros,
}

pub const KIND: Kind = Kind {
    role: Role::Source,
    name: "exec",
    version: env!("CARGO_PKG_VERSION"),
    doc: "a long-running program whose stdout lines (JSON or InfluxDB line protocol) are readings; restarted when it exits",
    params: &[
        Param::new(Spec {
            doc: "the program and its arguments, no shell, e.g. [\"/usr/local/bin/weather\", \"--json\"] (required)",
            hint: "write command = [\"/path/to/program\", \"arg\"]",
            ..Spec::new("command", Want::TextList)
        }),
        Param::new(Spec {
            default: "\"\"",
            doc: "the unit of readings whose line gives none",
            ..Spec::new("unit", Want::Text)
        }),
        Param::new(Spec {
            range: Some((64.0, 65536.0)),
            default: "1024",
            doc: "longest stdout or stderr line in bytes; longer ones are skipped (too_long)",
            hint: "use 64 to 65536 bytes (default 1024)",
            ..Spec::new("max_line", Want::WholeNumber)
        }),
        Param::new(Spec {
            range: Some((1.0, 100000.0)),
            default: "100",
            doc: "lines read per second, stdout and stderr each; past it the program waits (throttled)",
            hint: "use 1 to 100000 lines a second (default 100)",
            ..Spec::new("max_lines", Want::WholeNumber)
        }),
        Param::new(Spec {
            range: Some((1.0, 10000.0)),
            default: "64",
            doc: "distinct source names the program may create; new ones past it are refused (names_refused)",
            hint: "use 1 to 10000 names (default 64)",
            ..Spec::new("max_sources", Want::WholeNumber)
        }),
        Param::new(Spec {
            default: "\"1s\"",
            doc: "the delay before the first restart; it doubles on every exit up to restart_max",
            ..Spec::new("restart_min", Want::Duration)
        }),
        Param::new(Spec {
            default: "\"5m\"",
            doc: "the longest delay between restarts",
            ..Spec::new("restart_max", Want::Duration)
        }),
    ],
    make: Make::Source {
        ids: "exec",
        parse,
        produces,
        setup,
    },
};

fn parse(r: &mut Reader) -> ParamsBox {
    let mut out = ExecParams {
        command: Vec::new(),
        unit: String::new(),
        max_line: 1024,
        max_lines: 100,
        max_sources: 64,
        restart_min: 1_000_000,
        restart_max: 300_000_000,
    };
    let hint = |key: &str| KIND.param(key).map(|d| d.spec.hint.to_string());
    for p in r.params() {
        let spec = |key: &str| KIND.param(key).map(|d| d.spec).expect("declared");
        match p.key.as_str() {
            "command" => match &p.value {
                Toml::Array(a)
                    if !a.is_empty()
                        && a.iter()
                            .all(|v| matches!(v, Toml::String(s) if !s.is_empty())) =>
                {
                    out.command = a
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect();
                }
                other => r.bad(
                    p,
                    (
                        format!(
                            "expected a non-empty list of texts (the program, then its arguments), found {}",
                            describe(other)
                        ),
                        hint("command"),
                    ),
                ),
            },
            "unit" => match as_text(&p.value) {
                Ok(s) if s.len() <= MAX_UNIT => out.unit = s.to_string(),
                Ok(_) => r.bad(p, (format!("longer than {MAX_UNIT} bytes"), None)),
                Err(e) => r.bad(p, e),
            },
            "max_line" | "max_lines" | "max_sources" => match int_in(&p.value, &spec(&p.key)) {
                Ok(n) if p.key == "max_line" => out.max_line = n as usize,
                Ok(n) if p.key == "max_lines" => out.max_lines = n as u32,
                Ok(n) => out.max_sources = n as usize,
                Err(e) => r.bad(p, e),
            },
            "restart_min" | "restart_max" => match positive_dur(&p.value) {
                Ok(d) if d < 100_000 => r.bad(
                    p,
                    (
                        format!("{} is too short", format_duration(d)),
                        Some("restart at most every 100ms".into()),
                    ),
                ),
                Ok(d) if p.key == "restart_min" => out.restart_min = d,
                Ok(d) => out.restart_max = d,
                Err(e) => r.bad(p, e),
            },
            _ => {}
        }
    }
    if out.restart_min > out.restart_max
        && let Some(p) = r.get("restart_min").or_else(|| r.get("restart_max"))
    {
        let msg = format!(
            "source '{}': restart_min ({}) is longer than restart_max ({})",
            r.name,
            format_duration(out.restart_min),
            format_duration(out.restart_max)
        );
        r.bad_at(
            p.line,
            msg,
            Some("restart_min must not exceed restart_max".into()),
        );
    }
    if r.get("command").is_none() {
        let msg = format!("exec source '{}' has no command", r.name);
        r.bad_at(r.line, msg, hint("command"));
    }
    Arc::new(out)
}

/// Known only at run time: whatever the program prints.
fn produces(_: &SourceSpec, _: &crate::config::Settings) -> Produced {
    Produced {
        ids: Vec::new(),
        open: Some(Flow::Any),
    }
}

fn setup(spec: &SourceSpec, _: &mut Setup) -> Result<Box<dyn Source>, Unavailable> {
    let p = params_of::<ExecParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?;
    Ok(Box::new(ExecSource {
        name: spec.name.clone(),
        prefix: format!("exec:{}:", spec.name),
        params: p.clone(),
        counters: Arc::new(Counters::new(COUNTERS)),
        names: Vec::new(),
    }))
}

// ---------------------------------------------------------------------------------------
// Lines: line protocol parsed without allocating (borrowed names; a name is copied once,
// when new); JSON through serde_json::Value.

/// One reading a line gave: the name's parts (`weather` and field `temp` make
/// `weather.temp`), the value, the unit if the line has one, the timestamp if given.
#[derive(Debug, PartialEq)]
pub(crate) struct Parsed<'a> {
    name: &'a str,
    field: Option<&'a str>,
    value: Value,
    unit: Option<Cow<'a, str>>,
    ts: Option<Micros>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

/// The readings of one line, through `each`; `Err` when the line is malformed (nothing of
/// it is used then). Ok(0) for blank lines and comments.
pub(crate) fn parse_line(line: &str, mut each: impl FnMut(Parsed<'_>)) -> Result<usize, ()> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(0);
    }
    if line.starts_with('{') {
        // serde_json's own `Value`, as the MQTT and HTTP edges parse: a struct of our own
        // would borrow and allocate less, but its deserializer cost 13 KB more binary.
        let j: Json = serde_json::from_str(line).map_err(|_| ())?;
        let name = j.get("source").and_then(Json::as_str).ok_or(())?;
        let unit = match j.get("unit") {
            None | Some(Json::Null) => None,
            Some(Json::String(u)) if u.len() <= MAX_UNIT => Some(u.as_str()),
            Some(_) => return Err(()),
        };
        if !valid_name(name) {
            return Err(());
        }
        let ts = match j.get("ts") {
            None | Some(Json::Null) => None,
            Some(t) => match t.as_f64() {
                Some(s) if s.is_finite() && s > 0.0 => Some((s * 1e6) as Micros),
                _ => return Err(()),
            },
        };
        let value = match j.get("value") {
            Some(Json::Bool(b)) => Value::Bool(*b),
            Some(Json::Number(n)) => Value::Number(n.as_f64().ok_or(())?),
            _ => return Err(()),
        };
        each(Parsed {
            name,
            field: None,
            value,
            unit: unit.map(Cow::Borrowed),
            ts,
        });
        return Ok(1);
    }
    // Line protocol: measurement[,tags] fields [timestamp].
    let mut parts = line.split_ascii_whitespace();
    let (head, fields) = (parts.next().ok_or(())?, parts.next().ok_or(())?);
    let ts = match parts.next() {
        None => None,
        Some(t) => Some(t.parse::<i64>().map_err(|_| ())? / 1000),
    };
    if parts.next().is_some() || head.contains('\\') {
        return Err(());
    }
    let name = head.split(',').next().ok_or(())?;
    if !valid_name(name) {
        return Err(());
    }
    // Check every field before emitting any: a line is used whole or not at all.
    let value_of = |v: &str| -> Option<Value> {
        match v {
            "t" | "T" | "true" | "True" | "TRUE" => Some(Value::Bool(true)),
            "f" | "F" | "false" | "False" | "FALSE" => Some(Value::Bool(false)),
            _ => {
                let n = v.strip_suffix(['i', 'u']).unwrap_or(v);
                n.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .map(Value::Number)
            }
        }
    };
    let mut n = 0;
    for f in fields.split(',') {
        let (k, v) = f.split_once('=').ok_or(())?;
        if k != "value" && !(valid_name(k) && name.len() + 1 + k.len() <= MAX_NAME) {
            return Err(());
        }
        value_of(v).ok_or(())?;
        n += 1;
    }
    for f in fields.split(',') {
        let (k, v) = f.split_once('=').ok_or(())?;
        each(Parsed {
            name,
            field: (k != "value").then_some(k),
            value: value_of(v).ok_or(())?,
            unit: None,
            ts,
        });
    }
    Ok(n)
}

/// Whether `local` is `name` or `name.field`.
fn same_name(local: &str, name: &str, field: Option<&str>) -> bool {
    match field {
        None => local == name,
        Some(f) => {
            local.len() == name.len() + 1 + f.len()
                && local.starts_with(name)
                && local.as_bytes()[name.len()] == b'.'
                && local.ends_with(f)
        }
    }
}

/// A pipe read in lines of at most `max` bytes, into one buffer.
struct Lines {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Inside a line that was too long: drop up to its newline.
    skipping: bool,
}

/// What [`Lines::next`] found.
enum Next {
    /// A line, as `buf[a..b]` (without the newline).
    Line(usize, usize),
    /// A line longer than the bound (skipped).
    TooLong,
    Eof,
}

impl Lines {
    fn new(max: usize) -> Lines {
        Lines {
            buf: vec![0u8; max + 1].into_boxed_slice(),
            start: 0,
            end: 0,
            skipping: false,
        }
    }

    fn line(&self, a: usize, b: usize) -> &[u8] {
        &self.buf[a..b]
    }

    async fn next<R: Read>(&mut self, pipe: &mut Async<R>) -> std::io::Result<Next>
    where
        Async<R>: smol::io::AsyncRead + Unpin,
    {
        use smol::io::AsyncReadExt;
        loop {
            if let Some(i) = self.buf[self.start..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                let (a, b) = (self.start, self.start + i);
                self.start = b + 1;
                if std::mem::take(&mut self.skipping) {
                    continue;
                }
                return Ok(Next::Line(a, b));
            }
            if self.end - self.start == self.buf.len() || (self.skipping && self.end > self.start) {
                // No newline in a full buffer: the line is too long; drop what we have.
                self.start = 0;
                self.end = 0;
                if !std::mem::replace(&mut self.skipping, true) {
                    return Ok(Next::TooLong);
                }
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let n = pipe.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                if self.end > self.start && !self.skipping {
                    let (a, b) = (self.start, self.end);
                    self.start = self.end;
                    return Ok(Next::Line(a, b));
                }
                return Ok(Next::Eof);
            }
            self.end += n;
        }
    }
}

/// At most `max` lines a second: `wait` sleeps into the next second once they are used.
struct Pace {
    max: u32,
    second: Micros,
    used: u32,
}

impl Pace {
    fn new(max: u32) -> Pace {
        Pace {
            max,
            second: 0,
            used: 0,
        }
    }

    /// Count one line; true when the bound was hit (after waiting out the second).
    async fn take(&mut self) -> bool {
        let now = now_us();
        if now - self.second >= 1_000_000 {
            self.second = now;
            self.used = 0;
        }
        self.used += 1;
        if self.used <= self.max {
            return false;
        }
        let left = (self.second + 1_000_000 - now).max(0) as u64;
        smol::Timer::after(Duration::from_micros(left)).await;
        self.second = now_us();
        self.used = 1;
        true
    }
}

// ---------------------------------------------------------------------------------------
// The running source.

struct ExecSource {
    name: String,
    /// `exec:<node>:`.
    prefix: String,
    params: ExecParams,
    counters: Arc<Counters>,
    /// Names seen so far (local part) and their entries, at most `max_sources`.
    names: Vec<(Box<str>, Arc<SourceInfo>)>,
}

impl ExecSource {
    fn spawn(&self) -> std::io::Result<Child> {
        // Without the agent's secrets and systemd socket, as the exec tool.
        let mut cmd = crate::plugins::program::command(&self.params.command);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        cmd.spawn()
    }

    /// The entry for a line's name, interned when new and the bound allows.
    fn entry(&mut self, registry: &Registry, p: &Parsed) -> Option<Arc<SourceInfo>> {
        let kind = p.value.kind();
        if let Some((_, info)) = self
            .names
            .iter()
            .find(|(n, _)| same_name(n, p.name, p.field))
        {
            // A name keeps the kind of its first reading.
            return (info.kind == kind).then(|| info.clone());
        }
        if self.names.len() >= self.params.max_sources {
            self.counters.inc(C_NAMES_REFUSED);
            return None;
        }
        let local = match p.field {
            Some(f) => format!("{}.{f}", p.name),
            None => p.name.to_string(),
        };
        let unit = p.unit.as_deref().unwrap_or(&self.params.unit);
        let info = registry.intern(&format!("{}{local}", self.prefix), unit, kind);
        info.live.available.store(true, Ordering::Relaxed);
        self.names.push((local.into(), info.clone()));
        Some(info)
    }

    /// The readings of one stdout line into `out` (cleared first); false if malformed.
    fn readings(
        &mut self,
        registry: &Registry,
        line: &[u8],
        out: &mut Vec<(Arc<SourceInfo>, Reading)>,
    ) -> bool {
        out.clear();
        let Ok(text) = std::str::from_utf8(line) else {
            return false;
        };
        let now = now_us();
        let mut ok = true;
        let parsed = parse_line(text, |p| {
            let ts = match p.ts {
                None => now,
                Some(ts) if ts <= now + MAX_AHEAD && ts >= now - MAX_AGE => ts,
                Some(_) => {
                    ok = false;
                    return;
                }
            };
            if let Some(info) = self.entry(registry, &p) {
                let r = Reading::new(info.id, ts, p.value);
                out.push((info, r));
            }
        });
        parsed.is_ok() && ok
    }

    /// Read the child's stdout until it closes: readings out, bounds counted.
    async fn pump_stdout(
        &mut self,
        mut pipe: Async<ChildStdout>,
        ctx: &SourceCtx,
        health: &crate::plugins::Health,
    ) {
        let mut lines = Lines::new(self.params.max_line);
        let mut pace = Pace::new(self.params.max_lines);
        let mut batch: Vec<(Arc<SourceInfo>, Reading)> = Vec::new();
        let mut first = true;
        loop {
            let (a, b) = match lines.next(&mut pipe).await {
                Ok(Next::Line(a, b)) => (a, b),
                Ok(Next::TooLong) => {
                    self.counters.inc(C_TOO_LONG);
                    continue;
                }
                Ok(Next::Eof) | Err(_) => return,
            };
            if pace.take().await {
                self.counters.inc(C_THROTTLED);
            }
            if !self.readings(&ctx.registry, lines.line(a, b), &mut batch) {
                self.counters.inc(C_MALFORMED);
                continue;
            }
            for (info, r) in batch.drain(..) {
                if first {
                    first = false;
                    health.set_recovered();
                }
                info.live.record(r.ts, r.value);
                self.counters.inc(C_READINGS);
                ctx.out.send(Item::Reading(r)).await;
            }
        }
    }

    /// Run the child until both pipes close (or shutdown); its exit status, reaped.
    async fn run_child(&mut self, mut child: Child, ctx: &SourceCtx) -> (Option<ExitStatus>, bool) {
        let stdout = child.stdout.take().and_then(|p| Async::new(p).ok());
        let stderr = child.stderr.take().and_then(|p| Async::new(p).ok());
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            return (stop(&mut child, 0, STOP_GRACE).await, false);
        };
        let (name, counters, params) = (
            self.name.clone(),
            self.counters.clone(),
            self.params.clone(),
        );
        let health = ctx.health.clone();
        let pumps = smol::future::zip(
            self.pump_stdout(stdout, ctx, &health),
            pump_stderr(&name, &counters, &params, stderr),
        );
        let shutdown = smol::future::or(
            async {
                pumps.await;
                false
            },
            async {
                ctx.shutdown.wait().await;
                true
            },
        )
        .await;
        // On shutdown: SIGTERM at once. Closed pipes usually mean an exit; a child that
        // closed them and kept running gets a grace period first.
        let term_after = if shutdown { 0 } else { STOP_GRACE };
        (stop(&mut child, term_after, STOP_GRACE).await, shutdown)
    }

    async fn run(mut self, ctx: SourceCtx) {
        let mut delay = self.params.restart_min;
        let mut runs = 0u64;
        loop {
            let started = now_us();
            let why = match self.spawn() {
                Ok(child) => {
                    if runs > 0 {
                        self.counters.inc(C_RESTARTS);
                    }
                    runs += 1;
                    let (status, shutdown) = self.run_child(child, &ctx).await;
                    if shutdown {
                        return;
                    }
                    if now_us() - started >= STABLE {
                        delay = self.params.restart_min;
                    }
                    match status {
                        Some(s) => format!("{} exited ({s})", self.params.command[0]),
                        None => format!("{} could not be reaped", self.params.command[0]),
                    }
                }
                Err(e) => format!("cannot start {}: {e}", self.params.command[0]),
            };
            let why = format!("{why}; restarting in {}", format_duration(delay));
            log::warn!("exec source '{}': {why}", self.name);
            ctx.health.set_degraded(why);
            let stop = smol::future::or(
                async {
                    ctx.shutdown.wait().await;
                    true
                },
                async {
                    smol::Timer::after(Duration::from_micros(delay as u64)).await;
                    false
                },
            )
            .await;
            if stop {
                return;
            }
            delay = (delay.saturating_mul(2)).min(self.params.restart_max);
        }
    }
}

impl Source for ExecSource {
    fn start(self: Box<Self>, ctx: SourceCtx) -> Task {
        Box::pin((*self).run(ctx))
    }

    fn counters(&self) -> Option<Arc<Counters>> {
        Some(self.counters.clone())
    }
}

/// Stop and reap the child: wait up to `term_after` for it to exit by itself, SIGTERM
/// it, wait `grace`, then SIGKILL. Polls `try_wait` (never a blocking wait on the loop).
async fn stop(child: &mut Child, term_after: Micros, grace: Micros) -> Option<ExitStatus> {
    if let Some(s) = exited_within(child, term_after).await {
        return Some(s);
    }
    // SAFETY: kill on our own child's pid, not reaped yet (so not reused).
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    if let Some(s) = exited_within(child, grace).await {
        return Some(s);
    }
    let _ = child.kill();
    exited_within(child, 5_000_000).await
}

async fn exited_within(child: &mut Child, within: Micros) -> Option<ExitStatus> {
    let until = now_us() + within;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if now_us() >= until {
            return None;
        }
        smol::Timer::after(Duration::from_millis(10)).await;
    }
}

async fn pump_stderr(
    name: &str,
    counters: &Counters,
    p: &ExecParams,
    mut pipe: Async<ChildStderr>,
) {
    let mut lines = Lines::new(p.max_line);
    let mut pace = Pace::new(p.max_lines);
    let (mut minute, mut logged, mut unlogged) = (now_us(), 0u32, 0u64);
    loop {
        let line = match lines.next(&mut pipe).await {
            Ok(Next::Line(a, b)) => String::from_utf8_lossy(lines.line(a, b)),
            Ok(Next::TooLong) => Cow::Borrowed("(a line too long to show)"),
            Ok(Next::Eof) | Err(_) => break,
        };
        counters.inc(C_STDERR);
        let now = now_us();
        if now - minute >= 60_000_000 {
            if unlogged > 0 {
                log::warn!(
                    "exec source '{}': {unlogged} more stderr lines not logged",
                    name
                );
            }
            (minute, logged, unlogged) = (now, 0, 0);
        }
        if logged < STDERR_LOGS {
            logged += 1;
            let shown: String = line.trim_end().chars().take(200).collect();
            log::warn!("exec source '{}': {shown}", name);
        } else {
            unlogged += 1;
            counters.inc(C_STDERR_UNLOGGED);
        }
        pace.take().await;
    }
    if unlogged > 0 {
        log::warn!(
            "exec source '{}': {unlogged} more stderr lines not logged",
            name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, value, unit, ts) of each reading of a line.
    type Got = (String, Value, Option<String>, Option<Micros>);

    fn parsed(line: &str) -> Result<Vec<Got>, ()> {
        let mut out = Vec::new();
        parse_line(line, |p| {
            let name = match p.field {
                Some(f) => format!("{}.{f}", p.name),
                None => p.name.to_string(),
            };
            out.push((name, p.value, p.unit.map(|u| u.into_owned()), p.ts));
        })?;
        Ok(out)
    }

    #[test]
    fn json_lines_and_line_protocol_give_readings() {
        assert_eq!(
            parsed(r#"{"source":"temp","value":21.5,"unit":"celsius","ts":1700000000.5}"#),
            Ok(vec![(
                "temp".into(),
                Value::Number(21.5),
                Some("celsius".into()),
                Some(1_700_000_000_500_000)
            )])
        );
        assert_eq!(
            parsed(r#"{"source":"door","value":true}"#),
            Ok(vec![("door".into(), Value::Bool(true), None, None)])
        );
        assert_eq!(
            parsed("weather,room=attic temp=21.5,hum=40i,ok=t 1700000000000000000"),
            Ok(vec![
                (
                    "weather.temp".into(),
                    Value::Number(21.5),
                    None,
                    Some(1_700_000_000_000_000)
                ),
                (
                    "weather.hum".into(),
                    Value::Number(40.0),
                    None,
                    Some(1_700_000_000_000_000)
                ),
                (
                    "weather.ok".into(),
                    Value::Bool(true),
                    None,
                    Some(1_700_000_000_000_000)
                ),
            ])
        );
        assert_eq!(
            parsed("load value=0.5"),
            Ok(vec![("load".into(), Value::Number(0.5), None, None)])
        );
        assert_eq!(parsed("   "), Ok(vec![]));
        assert_eq!(parsed("# a comment"), Ok(vec![]));
    }

    #[test]
    fn malformed_lines_give_nothing() {
        for bad in [
            "hello",
            "{\"source\":\"t\"}",
            "{\"source\":\"t\",\"value\":\"warm\"}",
            "{\"source\":\"has space\",\"value\":1}",
            "{\"source\":\"sys:cpu\",\"value\":1}",
            "{\"source\":\"t\",\"value\":1,\"ts\":-5}",
            "weather temp=warm",
            "weather temp=1,hum",
            "weather temp=1 notatime",
            "weather temp=1 1 extra",
            "weather,room=a\\ b temp=1",
            "we:ather temp=1",
        ] {
            assert_eq!(parsed(bad), Err(()), "{bad}");
        }
        let long = format!("{} value=1", "x".repeat(MAX_NAME + 1));
        assert_eq!(parsed(&long), Err(()));
    }

    #[test]
    fn names_match_with_their_field() {
        assert!(same_name("weather.temp", "weather", Some("temp")));
        assert!(!same_name("weather.temp", "weather", None));
        assert!(!same_name("weatherxtemp", "weather", Some("temp")));
        assert!(same_name("weather", "weather", None));
    }

    #[test]
    fn lines_are_bounded_and_a_long_one_is_skipped_whole() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut w = b;
        use std::io::Write;
        let long = "y".repeat(300);
        write!(w, "short\n{long}\nafter\nlast").unwrap();
        drop(w);
        let mut pipe = Async::new(a).unwrap();
        let mut lines = Lines::new(64);
        let got = smol::block_on(async {
            let mut got = Vec::new();
            loop {
                match lines.next(&mut pipe).await.unwrap() {
                    Next::Line(a, b) => {
                        got.push(String::from_utf8_lossy(lines.line(a, b)).into_owned())
                    }
                    Next::TooLong => got.push("TOO LONG".into()),
                    Next::Eof => return got,
                }
            }
        });
        assert_eq!(got, ["short", "TOO LONG", "after", "last"]);
    }
}
