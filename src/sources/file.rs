//! The `file` source: one number read from a file every `every` (adaptive like any
//! source), as `file:<id>`: a sysfs/hwmon/IIO value, a DS18B20's `w1_slave`, a text file
//! another program writes. The number is the whole text (`parse = "number"`) or the first
//! capture group of `regex`; the reading is `number × scale + offset`.
//!
//! Each sample opens the file afresh (so a file replaced by rename, or one that appears
//! later, is read as it is now), non-blocking (a FIFO cannot stall the loop), and reads at
//! most `MAX_READ` bytes into one fixed buffer; nothing is allocated per reading. The
//! read runs on the event loop: a local file (sysfs, tmpfs, an SD card) answers in
//! microseconds, as the system source's reads do. A path on a network or FUSE filesystem
//! could stall every task, so such a node is refused at setup (unavailable, with the
//! reason).
//!
//! Failure: a file that is missing, not a regular file, unreadable or holds no number
//! makes the source degraded with the reason (status), logged once when it starts
//! failing (again only when the reason changes kind); when a read succeeds again it is
//! running again (logged at info). No reading is emitted for a failed sample. Status
//! counts failed samples (`reads_failed`) and reads that filled the buffer (`truncated`).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use regex_lite::{CaptureLocations, Regex};
use toml::Value as Toml;

use crate::clock::now_us;
use crate::config::SourceSpec;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::graph::counters::Counters;
use crate::graph::registry::SourceInfo;
use crate::graph::{Item, Reading, Value, ValueKind};
use crate::plugins::params::{Reader, as_num, as_text, describe};
use crate::plugins::{Kind, Make, Param, ParamsBox, Produced, Role, Unavailable, params_of};
use crate::plugins::{Setup, Task};
use crate::plugins::{Source, SourceCtx, Woke};

/// At most this much of the file is read per sample (the rest is ignored, and counted
/// as `truncated`).
pub const MAX_READ: usize = 4096;

/// The counters shown in status.
const COUNTERS: &[&str] = &["reads_failed", "truncated"];
const C_FAILED: usize = 0;
const C_TRUNCATED: usize = 1;

/// Longest `id` (the part after `file:`).
const MAX_ID: usize = 64;

/// How the number is found in the file's text.
#[derive(Clone, Debug)]
pub(crate) enum Parse {
    /// The whole text, trimmed, is the number.
    Number,
    /// The first capture group of the first match is the number.
    Regex(Regex),
}

/// A file source's parameters, checked.
#[derive(Clone, Debug)]
struct FileParams {
    path: PathBuf,
    /// The local id: `file:<id>`; the node's name unless given.
    id: String,
    unit: String,
    parse: Parse,
    scale: f64,
    offset: f64,
}

pub const KIND: Kind = Kind {
    role: Role::Source,
    name: "file",
    version: env!("CARGO_PKG_VERSION"),
    doc: "a number read from a local file every `every` (sysfs, hwmon, w1_slave, a file another program writes)",
    params: &[
        Param::new(Spec {
            default: "\"10s\"",
            doc: "how often the file is read (the adaptive stage may move it)",
            ..Spec::new("every", Want::Duration)
        }),
        Param::new(Spec {
            doc: "the file to read, an absolute path on a local filesystem (required)",
            hint: "e.g. path = \"/sys/bus/w1/devices/28-0316a2795aff/w1_slave\"",
            ..Spec::new("path", Want::Text)
        }),
        Param::new(Spec {
            doc: "the source id after `file:` (default: the node's name)",
            hint: "letters, digits, _ and -, at most 64, e.g. id = \"greenhouse_temp\"",
            ..Spec::new("id", Want::Text)
        }),
        Param::new(Spec {
            default: "\"\"",
            doc: "the unit of the readings, e.g. \"celsius\"",
            ..Spec::new("unit", Want::Text)
        }),
        Param::new(Spec {
            default: "\"number\"",
            doc: "\"number\": the whole text is the number; \"regex\": the first capture group of `regex` is",
            hint: "parse = \"number\" or parse = \"regex\" (with regex = \"t=(-?\\\\d+)\")",
            ..Spec::new("parse", Want::Text)
        }),
        Param::new(Spec {
            doc: "with parse = \"regex\": the pattern whose first capture group is the number, e.g. \"t=(-?\\\\d+)\"",
            ..Spec::new("regex", Want::Text)
        }),
        Param::new(Spec {
            default: "1",
            doc: "the number is multiplied by this, e.g. 0.001 for millidegrees",
            ..Spec::new("scale", Want::Number)
        }),
        Param::new(Spec {
            default: "0",
            doc: "then this is added",
            ..Spec::new("offset", Want::Number)
        }),
    ],
    make: Make::Source {
        ids: "file",
        parse,
        produces,
        setup,
    },
};

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse(r: &mut Reader) -> ParamsBox {
    let mut path = None;
    let mut id = r.name.to_string();
    let mut unit = String::new();
    let mut mode: Option<(&str, usize)> = None;
    let mut regex: Option<(Regex, usize)> = None;
    let (mut scale, mut offset) = (1.0, 0.0);
    for p in r.params() {
        let text = || as_text(&p.value);
        match p.key.as_str() {
            "path" => match text() {
                Ok(s) if Path::new(s).is_absolute() => path = Some(PathBuf::from(s)),
                Ok(s) => r.bad(
                    p,
                    (
                        format!("'{s}' is not an absolute path"),
                        Some("write the full path, starting with /, e.g. path = \"/sys/class/hwmon/hwmon0/temp1_input\"".into()),
                    ),
                ),
                Err(e) => r.bad(p, e),
            },
            "id" => match text() {
                Ok(s) if valid_id(s) => id = s.to_string(),
                Ok(s) => r.bad(
                    p,
                    (
                        format!("'{s}' is not a valid id"),
                        Some(KIND.param("id").map_or("", |d| d.spec.hint).into()),
                    ),
                ),
                Err(e) => r.bad(p, e),
            },
            "unit" => match text() {
                Ok(s) => unit = s.to_string(),
                Err(e) => r.bad(p, e),
            },
            "parse" => match &p.value {
                Toml::String(s) if s == "number" || s == "regex" => {
                    mode = Some((if s == "number" { "number" } else { "regex" }, p.line))
                }
                other => r.bad(
                    p,
                    (
                        format!("expected \"number\" or \"regex\", found {}", describe(other)),
                        Some(KIND.param("parse").map_or("", |d| d.spec.hint).into()),
                    ),
                ),
            },
            "regex" => match text() {
                Ok(s) => match Regex::new(s) {
                    Ok(re) if re.captures_len() >= 2 => regex = Some((re, p.line)),
                    Ok(_) => r.bad(
                        p,
                        (
                            format!("'{s}' has no capture group"),
                            Some("put the number in parentheses, e.g. regex = \"t=(-?\\\\d+)\"".into()),
                        ),
                    ),
                    Err(e) => r.bad(
                        p,
                        (
                            format!("'{s}' is not a valid pattern: {}", first_line(&e.to_string())),
                            Some("backslashes in TOML strings are doubled (\"t=(-?\\\\d+)\"), or use single quotes: 't=(-?\\d+)'".into()),
                        ),
                    ),
                },
                Err(e) => r.bad(p, e),
            },
            "scale" | "offset" => match as_num(&p.value) {
                Ok(n) if p.key == "scale" && n == 0.0 => r.bad(
                    p,
                    (
                        "a scale of 0 makes every reading the offset".into(),
                        Some("leave scale out for 1, or use e.g. 0.001 for millidegrees".into()),
                    ),
                ),
                Ok(n) if p.key == "scale" => scale = n,
                Ok(n) => offset = n,
                Err(e) => r.bad(p, e),
            },
            _ => {}
        }
    }
    // parse and regex go together: regex alone implies parse = "regex".
    let parse = match (mode, regex) {
        (Some(("number", _)), Some((_, line))) => {
            let msg = format!(
                "regex of source '{}': given with parse = \"number\"",
                r.name
            );
            r.bad_at(
                line,
                msg,
                Some(
                    "use parse = \"regex\" to take the number from the pattern, or remove regex"
                        .into(),
                ),
            );
            Parse::Number
        }
        (Some(("regex", line)), None) => {
            if r.clean() {
                let msg = format!("parse of source '{}': \"regex\" needs a regex", r.name);
                r.bad_at(
                    line,
                    msg,
                    Some(
                        "add e.g. regex = \"t=(-?\\\\d+)\" (the first capture group is the number)"
                            .into(),
                    ),
                );
            }
            Parse::Number
        }
        (_, Some((re, _))) => Parse::Regex(re),
        _ => Parse::Number,
    };
    if path.is_none() && r.get("path").is_none() {
        let msg = format!("file source '{}' has no path", r.name);
        r.bad_at(
            r.line,
            msg,
            Some("add path = \"/sys/class/hwmon/hwmon0/temp1_input\" (the file to read)".into()),
        );
    }
    Arc::new(FileParams {
        path: path.unwrap_or_default(),
        id,
        unit,
        parse,
        scale,
        offset,
    })
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

/// The id the source emits: `file:<id>`, the node's name unless `id` is given.
fn source_id(spec: &SourceSpec) -> String {
    let id = params_of::<FileParams>(&spec.params).map_or(spec.name.as_str(), |p| &p.id);
    format!("file:{id}")
}

fn produces(spec: &SourceSpec, _: &crate::config::Settings) -> Produced {
    Produced {
        ids: vec![(source_id(spec), ValueKind::Number)],
        open: None,
    }
}

fn setup(spec: &SourceSpec, s: &mut Setup) -> Result<Box<dyn Source>, Unavailable> {
    let p = params_of::<FileParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?;
    if let Some(fs) = remote_filesystem(&p.path) {
        return Err(Unavailable::Failed(format!(
            "{} is on a {fs} filesystem; reads there can stall every task (use a local file)",
            p.path.display()
        )));
    }
    let info = s
        .parts
        .registry
        .intern(&source_id(spec), &p.unit, ValueKind::Number);
    info.live.interval_us.store(spec.every, Ordering::Relaxed);
    let (wake_tx, wake_rx) = async_channel::bounded(1);
    info.live.set_waker(wake_tx.clone());
    Ok(Box::new(FileSource {
        name: spec.name.clone(),
        info,
        params: p.clone(),
        buf: Box::new([0u8; MAX_READ]),
        counters: Arc::new(Counters::new(COUNTERS)),
        locs: match &p.parse {
            Parse::Regex(re) => Some(re.capture_locations()),
            Parse::Number => None,
        },
        wake_tx,
        wake_rx,
    }))
}

/// The network or FUSE filesystem the path (or its nearest existing ancestor) is on.
fn remote_filesystem(path: &Path) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt;
    let dir = path.ancestors().find(|a| a.exists())?;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is NUL-terminated and `st` a writable statfs, read only on success.
    let st = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        if libc::statfs(c.as_ptr(), &mut st) != 0 {
            return None;
        }
        st
    };
    // f_type's width differs between targets (i64 here, u32 on 32-bit ARM).
    #[allow(clippy::unnecessary_cast)]
    match st.f_type as u32 {
        0x6969 => Some("NFS"),
        0xFF53_4D42 | 0xFE53_4D42 | 0x517B => Some("SMB/CIFS"),
        0x0102_1997 => Some("9P"),
        0x00C3_6400 => Some("Ceph"),
        0x6573_5546 => Some("FUSE"),
        _ => None,
    }
}

/// Why a sample failed; the source logs when this changes, not on every sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Missing,
    NotRegular,
    Unreadable,
    NoNumber,
}

/// A number from the file's text, or why not (with the text, shortened, for status).
pub(crate) fn number_in(
    text: &[u8],
    parse: &Parse,
    locs: Option<&mut CaptureLocations>,
) -> Result<f64, String> {
    let show = |t: &str| {
        let t = t.trim();
        match t.char_indices().nth(40) {
            Some((i, _)) => format!("\"{}...\"", &t[..i]),
            None => format!("\"{t}\""),
        }
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return Err("holds binary data, not a number".into());
    };
    let found = match (parse, locs) {
        (Parse::Regex(re), Some(locs)) => {
            if re.captures_read(locs, text).is_none() {
                return Err(format!(
                    "does not match regex {}: {}",
                    re.as_str(),
                    show(text)
                ));
            }
            match locs.get(1) {
                Some((a, b)) => &text[a..b],
                None => return Err(format!("regex {} matched without its group", re.as_str())),
            }
        }
        _ => text.trim(),
    };
    match found.trim().parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n),
        _ => Err(format!("holds no number: {}", show(found))),
    }
}

/// A set-up file source: its registry entry, its parameters and the one read buffer.
struct FileSource {
    name: String,
    info: Arc<SourceInfo>,
    params: FileParams,
    buf: Box<[u8; MAX_READ]>,
    counters: Arc<Counters>,
    /// Capture positions, reused by every regex match.
    locs: Option<CaptureLocations>,
    wake_tx: async_channel::Sender<()>,
    wake_rx: async_channel::Receiver<()>,
}

impl FileSource {
    /// Read the file once: its bytes (at most `MAX_READ`) or why not.
    fn read(&mut self) -> Result<usize, (Fault, String)> {
        let path = &self.params.path;
        let io = |f: Fault, e: std::io::Error| (f, format!("cannot read {}: {e}", path.display()));
        // Non-blocking: opening a FIFO would otherwise wait for a writer.
        let mut f: File = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => io(Fault::Missing, e),
                _ => io(Fault::Unreadable, e),
            })?;
        match f.metadata() {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err((
                    Fault::NotRegular,
                    format!("{} is not a regular file", path.display()),
                ));
            }
            Err(e) => return Err(io(Fault::Unreadable, e)),
        }
        let mut n = 0;
        while n < MAX_READ {
            match f.read(&mut self.buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(Fault::Unreadable, e)),
            }
        }
        if n == MAX_READ {
            self.counters.inc(C_TRUNCATED);
        }
        Ok(n)
    }

    /// One sample: the reading's value, or why there is none.
    fn sample(&mut self) -> Result<f64, (Fault, String)> {
        let n = self.read()?;
        let p = &self.params;
        number_in(&self.buf[..n], &p.parse, self.locs.as_mut())
            .map(|x| x * p.scale + p.offset)
            .map_err(|why| (Fault::NoNumber, format!("{} {why}", p.path.display())))
    }

    async fn run(mut self, ctx: SourceCtx) {
        let _keep_open = self.wake_tx.clone();
        let mut fault: Option<Fault> = None;
        loop {
            let now = now_us();
            match self.sample() {
                Ok(x) => {
                    if fault.take().is_some() {
                        log::info!(
                            "file source '{}': reading {} again",
                            self.name,
                            self.params.path.display()
                        );
                        ctx.health.set_recovered();
                    }
                    self.info.live.available.store(true, Ordering::Relaxed);
                    let value = Value::Number(x);
                    self.info.live.record(now, value);
                    ctx.out
                        .send(Item::Reading(Reading::new(self.info.id, now, value)))
                        .await;
                }
                Err((f, why)) => {
                    self.counters.inc(C_FAILED);
                    if fault != Some(f) {
                        log::warn!(
                            "file source '{}': {why}; retrying every interval",
                            self.name
                        );
                        ctx.health.set_degraded(why);
                        fault = Some(f);
                    }
                    self.info.live.available.store(false, Ordering::Relaxed);
                }
            }
            // Sleep one interval; an interval change (the adaptive stage) restarts it.
            loop {
                let wait = self.info.live.interval().max(100_000);
                match ctx.wait(Some(now_us() + wait), &self.wake_rx).await {
                    Woke::Interval => continue,
                    Woke::Due => break,
                    Woke::Shutdown => return,
                }
            }
        }
    }
}

impl Source for FileSource {
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

    #[test]
    fn finds_the_number_as_text_or_in_a_capture_group() {
        assert_eq!(number_in(b" 23500\n", &Parse::Number, None), Ok(23500.0));
        assert_eq!(number_in(b"-1.5e1", &Parse::Number, None), Ok(-15.0));
        let w1 = b"72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n";
        let re = Regex::new(r"t=(-?\d+)").unwrap();
        let mut locs = re.capture_locations();
        let p = Parse::Regex(re);
        assert_eq!(number_in(w1, &p, Some(&mut locs)), Ok(23125.0));
        let e = number_in(b"crc=00 NO\n", &p, Some(&mut locs)).unwrap_err();
        assert!(e.contains("does not match regex"), "{e}");
        let e = number_in(b"hello\n", &Parse::Number, None).unwrap_err();
        assert_eq!(e, "holds no number: \"hello\"");
        assert!(number_in(b"NaN", &Parse::Number, None).is_err());
        assert!(number_in(&[0xff, 0xfe], &Parse::Number, None).is_err());
        let long = "x".repeat(100);
        let e = number_in(long.as_bytes(), &Parse::Number, None).unwrap_err();
        assert!(e.len() < 70, "{e}");
    }
}
