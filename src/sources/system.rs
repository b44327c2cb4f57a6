//! The `system` source: CPU, memory, disk, load and Pi health, read straight from /proc
//! and /sys (cheaper than a general crate on a Pi Zero).
//!
//! Files are opened once and kept open; every sample seeks to 0 and reads into one fixed
//! buffer, so sampling allocates nothing after setup.
//!
//! Availability: each configured metric is probed once when the source is built. A metric
//! whose file is missing or unparsable on this machine (no thermal zone in a container, no
//! firmware throttling flags off a Pi) is logged once at info, its `SourceLive.available`
//! stays false and it is never emitted. Unavailable metrics are not re-checked at run time
//! (such hardware does not appear while running; a restart probes again). A read of an
//! available metric that fails later only skips that sample (logged at debug).

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::clock::now_us;
use crate::graph::registry::{Registry, SourceInfo};
use crate::graph::{Item, Micros, Reading, Value, ValueKind};
use crate::plugins::{SourceCtx, Woke};

/// The metrics this source knows. Ids and units follow the original where it had them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    CpuTemp,
    CpuPercent,
    CpuFreq,
    LoadAvg,
    MemAvailableMb,
    MemPercent,
    DiskPercent,
    Uptime,
    Throttled,
    UnderVoltage,
}

impl Metric {
    pub const ALL: [Metric; 10] = [
        Metric::CpuTemp,
        Metric::CpuPercent,
        Metric::CpuFreq,
        Metric::LoadAvg,
        Metric::MemAvailableMb,
        Metric::MemPercent,
        Metric::DiskPercent,
        Metric::Uptime,
        Metric::Throttled,
        Metric::UnderVoltage,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Metric::CpuTemp => "cpu_temp",
            Metric::CpuPercent => "cpu_percent",
            Metric::CpuFreq => "cpu_freq",
            Metric::LoadAvg => "load_avg",
            Metric::MemAvailableMb => "mem_available_mb",
            Metric::MemPercent => "mem_percent",
            Metric::DiskPercent => "disk_percent",
            Metric::Uptime => "uptime",
            Metric::Throttled => "throttled",
            Metric::UnderVoltage => "under_voltage",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Metric::CpuTemp => "celsius",
            Metric::CpuPercent | Metric::MemPercent | Metric::DiskPercent => "percent",
            Metric::CpuFreq => "mhz",
            Metric::LoadAvg => "load",
            Metric::MemAvailableMb => "mb",
            Metric::Uptime => "seconds",
            Metric::Throttled | Metric::UnderVoltage => "boolean",
        }
    }

    pub fn kind(self) -> ValueKind {
        match self {
            Metric::Throttled | Metric::UnderVoltage => ValueKind::Bool,
            _ => ValueKind::Number,
        }
    }

    pub fn from_id(id: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.id() == id)
    }
}

// ---------------------------------------------------------------------------------------
// Pure parsers (unit-tested on sample texts).

fn text(buf: &[u8]) -> Option<&str> {
    std::str::from_utf8(buf).ok()
}

/// `(MemTotal, MemAvailable)` in kB from `/proc/meminfo`.
pub fn parse_meminfo(buf: &[u8]) -> Option<(u64, u64)> {
    let mut total = None;
    let mut avail = None;
    for line in text(buf)?.lines() {
        let (key, rest) = match line.split_once(':') {
            Some(kv) => kv,
            None => continue,
        };
        let slot = match key {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut avail,
            _ => continue,
        };
        *slot = rest.split_ascii_whitespace().next()?.parse::<u64>().ok();
        if total.is_some() && avail.is_some() {
            break;
        }
    }
    Some((total?, avail?))
}

/// The 1-minute load average from `/proc/loadavg`.
pub fn parse_loadavg(buf: &[u8]) -> Option<f64> {
    let v: f64 = text(buf)?.split_ascii_whitespace().next()?.parse().ok()?;
    v.is_finite().then_some(v)
}

/// Seconds since boot from `/proc/uptime`.
pub fn parse_uptime(buf: &[u8]) -> Option<f64> {
    let v: f64 = text(buf)?.split_ascii_whitespace().next()?.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// Aggregate CPU time counters (jiffies) of the `cpu` line of `/proc/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + idle + iowait + irq + softirq + steal.
    pub total: u64,
    /// idle + iowait.
    pub idle: u64,
}

impl CpuTimes {
    /// Busy share in percent between `prev` and `self`; `None` when no time passed.
    pub fn percent_since(&self, prev: &CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(prev.total)?;
        let idle = self.idle.checked_sub(prev.idle)?;
        if total == 0 {
            return None;
        }
        let busy = total.saturating_sub(idle) as f64 / total as f64 * 100.0;
        Some(round1(busy.clamp(0.0, 100.0)))
    }
}

/// The aggregate `cpu` line of `/proc/stat` (guest time is already part of user time).
pub fn parse_stat_cpu(buf: &[u8]) -> Option<CpuTimes> {
    let line = text_prefix(buf).lines().next()?;
    let mut fields = line.split_ascii_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let mut vals = [0u64; 8];
    let mut n = 0;
    for (slot, f) in vals.iter_mut().zip(fields) {
        *slot = f.parse().ok()?;
        n += 1;
    }
    if n < 4 {
        return None;
    }
    let idle = vals[3] + vals[4];
    Some(CpuTimes {
        total: vals.iter().sum(),
        idle,
    })
}

/// Like [`text`], but tolerates a buffer cut in the middle of a UTF-8 sequence (the
/// fixed buffer may hold only the start of a long `/proc/stat`).
fn text_prefix(buf: &[u8]) -> &str {
    match std::str::from_utf8(buf) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&buf[..e.valid_up_to()]).unwrap_or(""),
    }
}

/// A thermal zone's `temp` (millidegrees Celsius) in °C, one decimal.
pub fn parse_millidegrees(buf: &[u8]) -> Option<f64> {
    let v: i64 = text(buf)?.trim().parse().ok()?;
    Some(round1(v as f64 / 1000.0))
}

/// `scaling_cur_freq` (kHz) in MHz.
pub fn parse_khz_as_mhz(buf: &[u8]) -> Option<f64> {
    let v: u64 = text(buf)?.trim().parse().ok()?;
    Some(v as f64 / 1000.0)
}

/// The firmware's throttling flags: `(under_voltage_now, throttled_now)` (bits 0 and 2).
/// Accepts `50005`, `0x50005` and vcgencmd's `throttled=0x50005`.
pub fn parse_throttled(buf: &[u8]) -> Option<(bool, bool)> {
    let s = text(buf)?.trim();
    let s = s.strip_prefix("throttled=").unwrap_or(s);
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let bits = u32::from_str_radix(s, 16).ok()?;
    Some((bits & 0b001 != 0, bits & 0b100 != 0))
}

/// Used share of a filesystem like `df`: used / (used + available to non-root) × 100.
pub fn disk_used_percent(blocks: u64, bfree: u64, bavail: u64) -> Option<f64> {
    let used = blocks.checked_sub(bfree)?;
    let denom = used + bavail;
    if denom == 0 {
        return None;
    }
    Some(round1(used as f64 / denom as f64 * 100.0))
}

/// `(1 - available/total) × 100`, one decimal.
pub fn mem_used_percent(total_kb: u64, avail_kb: u64) -> Option<f64> {
    if total_kb == 0 {
        return None;
    }
    let p = (1.0 - avail_kb as f64 / total_kb as f64) * 100.0;
    Some(round1(p.clamp(0.0, 100.0)))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Thermal zone types preferred over zone 0, in order.
const CPU_ZONE_TYPES: [&str; 6] = [
    "cpu-thermal",
    "cpu_thermal",
    "x86_pkg_temp",
    "soc",
    "soc-thermal",
    "soc_thermal",
];

/// Pick the CPU's thermal zone from `(zone_number, type)` pairs: a known CPU type first
/// (the lowest-numbered if several), else zone 0, else none.
pub fn pick_thermal_zone(zones: &[(u32, String)]) -> Option<u32> {
    for want in CPU_ZONE_TYPES {
        if let Some(z) = zones
            .iter()
            .filter(|(_, t)| t.trim() == want)
            .map(|(n, _)| *n)
            .min()
        {
            return Some(z);
        }
    }
    zones.iter().find(|(n, _)| *n == 0).map(|(n, _)| *n)
}

// ---------------------------------------------------------------------------------------
// The reader: open files, one buffer.

const BUF_SIZE: usize = 4096;

/// A file opened once (or known missing) and re-read from offset 0 on every sample.
enum Handle {
    Unopened,
    Missing,
    Open(File),
}

impl Handle {
    /// Read the whole file (up to the buffer size) into `buf`; the bytes read.
    fn read<'b>(&mut self, path: &Path, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        if let Handle::Unopened = self {
            *self = match File::open(path) {
                Ok(f) => Handle::Open(f),
                Err(_) => Handle::Missing,
            };
        }
        let Handle::Open(f) = self else {
            return None;
        };
        f.seek(SeekFrom::Start(0)).ok()?;
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
        Some(&buf[..n])
    }
}

struct FileSlot {
    path: PathBuf,
    handle: Handle,
}

impl FileSlot {
    fn new(path: PathBuf) -> FileSlot {
        FileSlot {
            path,
            handle: Handle::Unopened,
        }
    }

    fn read<'b>(&mut self, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        self.handle.read(&self.path, buf)
    }
}

/// Reads metrics from `/proc` and `/sys` under `root` (`/` except in tests).
struct Reader {
    stat: FileSlot,
    loadavg: FileSlot,
    meminfo: FileSlot,
    uptime: FileSlot,
    freq: FileSlot,
    throttled: FileSlot,
    /// `None`: no thermal zone on this machine.
    thermal: Option<FileSlot>,
    /// The nearest existing directory at or above the data directory.
    disk_path: Option<CString>,
    buf: Box<[u8; BUF_SIZE]>,
    /// CPU counters of the previous `cpu_percent` sample.
    prev_cpu: Option<CpuTimes>,
}

impl Reader {
    fn new(root: &Path, data_dir: &Path) -> Reader {
        let p = |rel: &str| root.join(rel);
        Reader {
            stat: FileSlot::new(p("proc/stat")),
            loadavg: FileSlot::new(p("proc/loadavg")),
            meminfo: FileSlot::new(p("proc/meminfo")),
            uptime: FileSlot::new(p("proc/uptime")),
            freq: FileSlot::new(p("sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")),
            throttled: FileSlot::new(p("sys/devices/platform/soc/soc:firmware/get_throttled")),
            thermal: find_thermal_zone(&p("sys/class/thermal")).map(FileSlot::new),
            disk_path: existing_ancestor(data_dir).and_then(|d| {
                use std::os::unix::ffi::OsStrExt;
                CString::new(d.as_os_str().as_bytes()).ok()
            }),
            buf: Box::new([0u8; BUF_SIZE]),
            prev_cpu: None,
        }
    }

    /// Why a metric is missing, for the one info line.
    fn why_unavailable(&self, m: Metric) -> &'static str {
        match m {
            Metric::CpuTemp if self.thermal.is_none() => "no thermal zone",
            Metric::CpuTemp => "thermal zone unreadable",
            Metric::CpuFreq => "no cpufreq scaling_cur_freq",
            Metric::Throttled | Metric::UnderVoltage => {
                "no firmware get_throttled (not a Raspberry Pi)"
            }
            Metric::DiskPercent if self.disk_path.is_none() => "data directory not found",
            Metric::DiskPercent => "statvfs failed",
            _ => "cannot read /proc",
        }
    }

    /// Read one metric now. `cpu_percent` compares with the previous call: the first call
    /// only primes and gives `None`.
    fn sample(&mut self, m: Metric) -> Option<Value> {
        let buf = &mut self.buf[..];
        let num = |x: f64| Some(Value::Number(x));
        match m {
            Metric::CpuTemp => num(parse_millidegrees(self.thermal.as_mut()?.read(buf)?)?),
            Metric::CpuPercent => {
                let now = parse_stat_cpu(self.stat.read(buf)?)?;
                let prev = self.prev_cpu.replace(now)?;
                num(now.percent_since(&prev)?)
            }
            Metric::CpuFreq => num(parse_khz_as_mhz(self.freq.read(buf)?)?),
            Metric::LoadAvg => num(parse_loadavg(self.loadavg.read(buf)?)?),
            Metric::MemAvailableMb => {
                let (_, avail) = parse_meminfo(self.meminfo.read(buf)?)?;
                num((avail / 1024) as f64)
            }
            Metric::MemPercent => {
                let (total, avail) = parse_meminfo(self.meminfo.read(buf)?)?;
                num(mem_used_percent(total, avail)?)
            }
            Metric::DiskPercent => num(statvfs_percent(self.disk_path.as_ref()?)?),
            Metric::Uptime => num(parse_uptime(self.uptime.read(buf)?)?.floor()),
            Metric::Throttled => Some(Value::Bool(parse_throttled(self.throttled.read(buf)?)?.1)),
            Metric::UnderVoltage => {
                Some(Value::Bool(parse_throttled(self.throttled.read(buf)?)?.0))
            }
        }
    }

    /// Whether `m` can be read here. `cpu_percent` only needs a parsable `/proc/stat`;
    /// this does not prime it.
    fn available(&mut self, m: Metric) -> bool {
        match m {
            Metric::CpuPercent => {
                let buf = &mut self.buf[..];
                self.stat.read(buf).and_then(parse_stat_cpu).is_some()
            }
            _ => self.sample(m).is_some(),
        }
    }
}

fn find_thermal_zone(dir: &Path) -> Option<PathBuf> {
    let mut zones = Vec::new();
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|s| s.strip_prefix("thermal_zone"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let ty = std::fs::read_to_string(entry.path().join("type")).unwrap_or_default();
        zones.push((n, ty));
    }
    let n = pick_thermal_zone(&zones)?;
    Some(dir.join(format!("thermal_zone{n}")).join("temp"))
}

fn existing_ancestor(dir: &Path) -> Option<PathBuf> {
    let abs = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(dir)
    };
    abs.ancestors().find(|a| a.is_dir()).map(Path::to_path_buf)
}

fn statvfs_percent(path: &CString) -> Option<f64> {
    // SAFETY: `path` is a valid NUL-terminated string and `st` a properly sized, writable
    // statvfs that the call fills in; it is only read after the call succeeded.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut st) != 0 {
            return None;
        }
        st
    };
    disk_used_percent(st.f_blocks as u64, st.f_bfree as u64, st.f_bavail as u64)
}

/// Read one metric once, synchronously (for `smollama status` without a running agent).
/// `None`: unavailable on this machine. `cpu_percent` gives the busy share since boot.
pub fn probe(metric: Metric, data_dir: &Path) -> Option<Value> {
    let mut r = Reader::new(Path::new("/"), data_dir);
    if metric == Metric::CpuPercent {
        r.prev_cpu = Some(CpuTimes::default());
    }
    r.sample(metric)
}

// ---------------------------------------------------------------------------------------
// The source task.

struct Slot {
    metric: Metric,
    info: Arc<SourceInfo>,
    available: bool,
    /// When the metric was last sampled (`None`: not yet).
    last: Option<Micros>,
}

impl Slot {
    /// When the metric is next due: at once if never sampled, then `last + interval`.
    /// A non-positive interval means no periodic sampling after the first.
    fn due(&self) -> Option<Micros> {
        if !self.available {
            return None;
        }
        match self.last {
            None => Some(Micros::MIN),
            Some(last) => {
                let iv = self.info.live.interval();
                (iv > 0).then(|| last.saturating_add(iv))
            }
        }
    }
}

pub struct SystemSource {
    slots: Vec<Slot>,
    reader: Reader,
    wake_tx: async_channel::Sender<()>,
    wake_rx: async_channel::Receiver<()>,
}

impl SystemSource {
    /// Intern `system:<metric>` for each metric, probe availability (logged once at info
    /// for each unavailable metric) and set every metric's interval to `every`.
    pub fn new(
        metrics: &[Metric],
        every: Micros,
        data_dir: PathBuf,
        registry: &Registry,
    ) -> SystemSource {
        Self::with_root(metrics, every, Path::new("/"), &data_dir, registry)
    }

    fn with_root(
        metrics: &[Metric],
        every: Micros,
        root: &Path,
        data_dir: &Path,
        registry: &Registry,
    ) -> SystemSource {
        let mut reader = Reader::new(root, data_dir);
        let (wake_tx, wake_rx) = async_channel::bounded(1);
        let mut slots: Vec<Slot> = Vec::with_capacity(metrics.len());
        for &m in metrics {
            if slots.iter().any(|s| s.metric == m) {
                continue;
            }
            let info = registry.intern(&format!("system:{}", m.id()), m.unit(), m.kind());
            info.live.interval_us.store(every, Ordering::Relaxed);
            info.live.set_waker(wake_tx.clone());
            let available = reader.available(m);
            info.live.available.store(available, Ordering::Relaxed);
            if !available {
                log::info!(
                    "system: {} unavailable on this machine ({})",
                    m.id(),
                    reader.why_unavailable(m)
                );
            }
            slots.push(Slot {
                metric: m,
                info,
                available,
                last: None,
            });
        }
        reader.prev_cpu = None;
        SystemSource {
            slots,
            reader,
            wake_tx,
            wake_rx,
        }
    }

    /// The metrics found readable at start.
    pub fn available(&self) -> impl Iterator<Item = Metric> + '_ {
        self.slots.iter().filter(|s| s.available).map(|s| s.metric)
    }

    /// Sample every metric on its own interval until shutdown. Metrics due together are
    /// read together and share one timestamp.
    pub async fn run(mut self, ctx: SourceCtx) {
        let _keep_open = self.wake_tx.clone();
        loop {
            let now = now_us();
            // A wall clock stepped back (NTP) would put every due time an interval plus
            // the step away: a sample in the future counts as taken now.
            for s in &mut self.slots {
                s.last = s.last.map(|l| l.min(now));
            }
            if self.slots.iter().filter_map(Slot::due).any(|d| d <= now) {
                self.sample_due(now, &ctx).await;
                continue;
            }
            let next = self.slots.iter().filter_map(Slot::due).min();
            if ctx.wait(next, &self.wake_rx).await == Woke::Shutdown {
                return;
            }
            // Due, or a new interval: recompute the due times at the top.
        }
    }

    async fn sample_due(&mut self, now: Micros, ctx: &SourceCtx) {
        for i in 0..self.slots.len() {
            let Some(due) = self.slots[i].due() else {
                continue;
            };
            if due > now {
                continue;
            }
            let slot = &mut self.slots[i];
            slot.last = Some(now);
            let Some(value) = self.reader.sample(slot.metric) else {
                if slot.metric != Metric::CpuPercent || self.reader.prev_cpu.is_none() {
                    log::debug!("system: {} could not be read this time", slot.metric.id());
                }
                continue;
            };
            log::trace!(
                "system: {} = {}",
                slot.info.name,
                crate::graph::shown::WithUnit(value, &slot.info.unit)
            );
            slot.info.live.record(now, value);
            let reading = Reading::new(slot.info.id, now, value);
            ctx.out.send(Item::Reading(reading)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The kind: parameters, what it produces, setup.

use crate::config::SourceSpec;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::plugins::params::{Reader as ParamReader, describe};
use crate::plugins::{Kind, Make, Param, ParamsBox, Produced, Unavailable, params_of};
use crate::plugins::{Setup, Task};
use toml::Value as Toml;

/// The metrics a `system` source reads.
#[derive(Clone, Debug, PartialEq)]
pub struct SystemParams {
    pub metrics: Vec<Metric>,
}

pub const KIND: Kind = Kind {
    role: crate::plugins::Role::Source,
    name: "system",
    version: env!("CARGO_PKG_VERSION"),
    doc: "CPU, memory, disk, load and Pi health from /proc and /sys",
    params: &[
        Param::new(Spec {
            default: "\"10s\"",
            doc: "starting sampling interval (the adaptive stage may move it); at least 100ms",
            ..Spec::new("every", Want::Duration)
        }),
        Param::new(Spec {
            doc: "which metrics to read (default: all): cpu_temp, cpu_percent, cpu_freq, load_avg, mem_available_mb, mem_percent, disk_percent, uptime, throttled, under_voltage",
            ..Spec::new("metrics", Want::TextList)
        })
        .taking("a list of metric names such as [\"cpu_temp\"]"),
    ],
    make: Make::Source {
        ids: "system",
        parse,
        produces,
        setup,
    },
};

fn parse(r: &mut ParamReader) -> ParamsBox {
    let ids: Vec<&str> = Metric::ALL.iter().map(|m| m.id()).collect();
    let mut metrics = Metric::ALL.to_vec();
    if let Some(p) = r.get("metrics") {
        let Toml::Array(a) = &p.value else {
            r.bad(
                p,
                (
                    format!(
                        "expected a list of metric names such as [\"cpu_temp\"], found {}",
                        describe(&p.value)
                    ),
                    Some(match &p.value {
                        Toml::String(one) => format!(
                            "write it as a list: metrics = [\"{one}\"]; valid metrics: {}",
                            ids.join(", ")
                        ),
                        _ => format!("valid metrics: {}", ids.join(", ")),
                    }),
                ),
            );
            return Arc::new(SystemParams { metrics });
        };
        if a.is_empty() {
            r.bad(
                p,
                (
                    "an empty list selects no metric".into(),
                    Some("leave metrics out to read every metric".into()),
                ),
            );
        }
        let mut ms = Vec::new();
        for v in a {
            match v {
                Toml::String(s) => match Metric::from_id(s) {
                    Some(m) if ms.contains(&m) => {
                        r.bad(p, (format!("'{s}' is listed twice"), None))
                    }
                    Some(m) => ms.push(m),
                    None => r.bad(
                        p,
                        (
                            format!("unknown metric '{s}'"),
                            Some(crate::config::suggest::hint(s, "metrics", &ids)),
                        ),
                    ),
                },
                other => r.bad(
                    p,
                    (
                        format!(
                            "expected a metric name in quotes, found {}",
                            describe(other)
                        ),
                        None,
                    ),
                ),
            }
        }
        if !ms.is_empty() {
            metrics = ms;
        }
    }
    Arc::new(SystemParams { metrics })
}

fn metrics_of(p: &ParamsBox) -> &[Metric] {
    params_of::<SystemParams>(p).map_or(&[], |p| p.metrics.as_slice())
}

fn produces(spec: &SourceSpec, _: &crate::config::Settings) -> Produced {
    let p = &spec.params;
    Produced {
        ids: metrics_of(p)
            .iter()
            .map(|m| (format!("system:{}", m.id()), m.kind()))
            .collect(),
        open: None,
    }
}

fn setup(spec: &SourceSpec, s: &mut Setup) -> Result<Box<dyn crate::plugins::Source>, Unavailable> {
    Ok(Box::new(SystemSource::new(
        metrics_of(&spec.params),
        spec.every,
        s.parts.settings.node.data_dir.clone(),
        s.parts.registry,
    )))
}

impl crate::plugins::Source for SystemSource {
    fn start(self: Box<Self>, ctx: SourceCtx) -> Task {
        Box::pin((*self).run(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::edge::{Inbox, Output};
    use std::time::Duration;

    const MEMINFO_PI: &[u8] = b"MemTotal:         948304 kB
MemFree:          512340 kB
MemAvailable:     731620 kB
Buffers:           27660 kB
Cached:           235172 kB
SwapCached:            0 kB
";

    const STAT_PI: &[u8] = b"cpu  12034 0 5021 1730442 1531 0 289 0 0 0
cpu0 3012 0 1289 432511 402 0 120 0 0 0
cpu1 2990 0 1250 432650 380 0 60 0 0 0
intr 1234567 0 0 0
ctxt 2345678
btime 1795771000
";

    #[test]
    fn meminfo() {
        assert_eq!(parse_meminfo(MEMINFO_PI), Some((948_304, 731_620)));
        // Old kernels without MemAvailable: unavailable, not zero.
        assert_eq!(parse_meminfo(b"MemTotal: 1000 kB\nMemFree: 10 kB\n"), None);
        assert_eq!(parse_meminfo(b""), None);
        assert_eq!(mem_used_percent(948_304, 731_620), Some(22.8));
        assert_eq!(mem_used_percent(0, 0), None);
        // mem_available_mb is an integer MiB.
        assert_eq!(731_620 / 1024, 714);
    }

    #[test]
    fn loadavg_and_uptime() {
        assert_eq!(parse_loadavg(b"0.52 0.58 0.59 1/187 2534\n"), Some(0.52));
        assert_eq!(parse_loadavg(b"garbage"), None);
        assert_eq!(parse_uptime(b"350735.47 234388.90\n"), Some(350_735.47));
        assert_eq!(parse_uptime(b""), None);
    }

    #[test]
    fn stat_cpu_and_percent() {
        let t0 = parse_stat_cpu(STAT_PI).unwrap();
        assert_eq!(t0.total, 12034 + 5021 + 1730442 + 1531 + 289);
        assert_eq!(t0.idle, 1730442 + 1531);
        let later = b"cpu  12134 0 5121 1730642 1531 0 289 0 0 0\n";
        let t1 = parse_stat_cpu(later).unwrap();
        // 200 busy of 400 jiffies.
        assert_eq!(t1.percent_since(&t0), Some(50.0));
        assert_eq!(t1.percent_since(&t1), None, "no time passed");
        assert_eq!(
            parse_stat_cpu(b"cpu0 1 2 3 4\n"),
            None,
            "not the aggregate line"
        );
        assert_eq!(parse_stat_cpu(b"cpu  1 2\n"), None);
        // A buffer cut mid-file still parses the first line.
        assert!(parse_stat_cpu(&STAT_PI[..60]).is_some());
    }

    #[test]
    fn thermal_freq_throttled() {
        assert_eq!(parse_millidegrees(b"48312\n"), Some(48.3));
        assert_eq!(parse_millidegrees(b"-5000\n"), Some(-5.0));
        assert_eq!(parse_millidegrees(b"n/a"), None);
        assert_eq!(parse_khz_as_mhz(b"1500000\n"), Some(1500.0));
        assert_eq!(parse_khz_as_mhz(b"600000\n"), Some(600.0));
        assert_eq!(parse_throttled(b"0\n"), Some((false, false)));
        // Under-voltage now (bit 0) and throttled now (bit 2), plus history bits.
        assert_eq!(parse_throttled(b"50005\n"), Some((true, true)));
        assert_eq!(parse_throttled(b"0x50000"), Some((false, false)));
        assert_eq!(parse_throttled(b"throttled=0x4"), Some((false, true)));
        assert_eq!(parse_throttled(b"0x1"), Some((true, false)));
        assert_eq!(parse_throttled(b"zz"), None);
    }

    #[test]
    fn disk_percent_like_df() {
        // 1000 blocks, 400 free, 350 available to users: 600 / 950.
        assert_eq!(disk_used_percent(1000, 400, 350), Some(63.2));
        assert_eq!(disk_used_percent(0, 0, 0), None);
    }

    #[test]
    fn thermal_zone_choice() {
        let z = |v: &[(u32, &str)]| {
            v.iter()
                .map(|(n, t)| (*n, format!("{t}\n")))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            pick_thermal_zone(&z(&[(0, "acpitz"), (1, "x86_pkg_temp")])),
            Some(1)
        );
        assert_eq!(pick_thermal_zone(&z(&[(0, "cpu-thermal")])), Some(0));
        assert_eq!(
            pick_thermal_zone(&z(&[(0, "acpitz"), (2, "iwlwifi")])),
            Some(0)
        );
        assert_eq!(pick_thermal_zone(&z(&[(3, "iwlwifi")])), None);
        assert_eq!(pick_thermal_zone(&[]), None);
    }

    /// A fake Raspberry Pi /proc and /sys tree under a temporary directory.
    fn fake_pi_root() -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("smollama-sys-{}-{}", std::process::id(), now_us()));
        let w = |rel: &str, text: &[u8]| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        w("proc/stat", STAT_PI);
        w("proc/meminfo", MEMINFO_PI);
        w("proc/loadavg", b"0.52 0.58 0.59 1/187 2534\n");
        w("proc/uptime", b"350735.47 234388.90\n");
        w("sys/class/thermal/thermal_zone0/type", b"cpu-thermal\n");
        w("sys/class/thermal/thermal_zone0/temp", b"48312\n");
        w(
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq",
            b"1500000\n",
        );
        w(
            "sys/devices/platform/soc/soc:firmware/get_throttled",
            b"50005\n",
        );
        root
    }

    #[test]
    fn reads_a_pi_tree_and_reuses_open_files() {
        let root = fake_pi_root();
        let mut r = Reader::new(&root, &root);
        assert_eq!(r.sample(Metric::CpuTemp), Some(Value::Number(48.3)));
        assert_eq!(r.sample(Metric::CpuFreq), Some(Value::Number(1500.0)));
        assert_eq!(r.sample(Metric::LoadAvg), Some(Value::Number(0.52)));
        assert_eq!(r.sample(Metric::MemAvailableMb), Some(Value::Number(714.0)));
        assert_eq!(r.sample(Metric::MemPercent), Some(Value::Number(22.8)));
        assert_eq!(r.sample(Metric::Uptime), Some(Value::Number(350_735.0)));
        assert_eq!(r.sample(Metric::Throttled), Some(Value::Bool(true)));
        assert_eq!(r.sample(Metric::UnderVoltage), Some(Value::Bool(true)));
        assert!(
            matches!(r.sample(Metric::DiskPercent), Some(Value::Number(p)) if (0.0..=100.0).contains(&p))
        );
        // cpu_percent: the first sample primes.
        assert_eq!(r.sample(Metric::CpuPercent), None);
        // Files stay open: rewriting in place is seen after seeking to 0.
        std::fs::write(
            root.join("proc/stat"),
            b"cpu  12134 0 5121 1730642 1531 0 289 0 0 0\n",
        )
        .unwrap();
        std::fs::write(
            root.join("sys/class/thermal/thermal_zone0/temp"),
            b"51000\n",
        )
        .unwrap();
        assert_eq!(r.sample(Metric::CpuPercent), Some(Value::Number(50.0)));
        assert_eq!(r.sample(Metric::CpuTemp), Some(Value::Number(51.0)));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn missing_files_make_metrics_unavailable() {
        let root = std::env::temp_dir().join(format!(
            "smollama-empty-{}-{}",
            std::process::id(),
            now_us()
        ));
        std::fs::create_dir_all(&root).unwrap();
        let reg = Registry::new();
        let src = SystemSource::with_root(&Metric::ALL, MICROS, &root, &root, &reg);
        // Only the disk (statvfs of a real directory) is readable in an empty tree.
        assert_eq!(
            src.available().collect::<Vec<_>>(),
            vec![Metric::DiskPercent]
        );
        let temp = reg.lookup("system:cpu_temp").unwrap();
        assert!(!temp.live.available.load(Ordering::Relaxed));
        assert_eq!(temp.live.interval(), MICROS);
        assert!(
            reg.lookup("system:disk_percent")
                .unwrap()
                .live
                .available
                .load(Ordering::Relaxed)
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    const MICROS: Micros = 50_000;

    fn within<T>(
        secs: u64,
        f: impl std::future::Future<Output = T>,
    ) -> impl std::future::Future<Output = T> {
        smol::future::or(f, async move {
            smol::Timer::after(Duration::from_secs(secs)).await;
            panic!("timed out after {secs}s");
        })
    }

    #[test]
    fn emits_available_metrics_on_this_machine() {
        let reg = Arc::new(Registry::new());
        let data_dir = std::env::temp_dir();
        let src = SystemSource::new(&Metric::ALL, MICROS, data_dir, &reg);
        let inbox = Inbox::new("x", 256, true);
        let out = Output::new(vec![inbox.sender("system", &reg)]);
        let rx = inbox.into_receiver();
        let (trigger, shutdown) = crate::shutdown::channel();
        let ctx = SourceCtx {
            out,
            registry: reg.clone(),
            shutdown,
            health: Default::default(),
        };
        let ex = smol::LocalExecutor::new();
        let readings = smol::block_on(ex.run(within(20, async {
            let task = ex.spawn(src.run(ctx));
            let mut got: Vec<Reading> = Vec::new();
            // Three cycles of metrics every Linux machine has.
            let name = |r: &Reading| reg.get(r.source).unwrap().local_name().to_string();
            while ["load_avg", "mem_available_mb", "uptime"]
                .iter()
                .any(|m| got.iter().filter(|r| name(r) == *m).count() < 3)
            {
                match rx.recv().await {
                    Ok(Item::Reading(r)) => got.push(r),
                    Ok(other) => panic!("unexpected {other:?}"),
                    Err(_) => panic!("source stopped early"),
                }
            }
            trigger.fire();
            task.await;
            // Output dropped with the task: the edge closes once drained.
            while rx.recv().await.is_ok() {}
            got
        })));
        for r in &readings {
            let info = reg.get(r.source).unwrap();
            assert!(
                info.live.available.load(Ordering::Relaxed),
                "{} emitted but unavailable",
                info.name
            );
            assert_eq!(r.value.kind(), info.kind);
            let v = r.value.as_f64().unwrap();
            match info.local_name() {
                "load_avg" => assert!((0.0..10_000.0).contains(&v)),
                "mem_available_mb" => assert!(v > 0.0 && v.fract() == 0.0),
                "uptime" => assert!(v > 0.0),
                "cpu_percent" | "mem_percent" | "disk_percent" => {
                    assert!((0.0..=100.0).contains(&v))
                }
                _ => {}
            }
        }
        // Metrics due together share one timestamp.
        let ts_of = |m: &str| {
            readings
                .iter()
                .filter(|r| reg.get(r.source).unwrap().local_name() == m)
                .map(|r| r.ts)
                .collect::<Vec<_>>()
        };
        assert_eq!(ts_of("load_avg"), ts_of("uptime"));
        assert!(reg.lookup("system:load_avg").unwrap().live.last().is_some());
    }

    #[test]
    fn interval_change_wakes_the_source() {
        let reg = Arc::new(Registry::new());
        // A long interval: after the first reading nothing is due for an hour.
        let src = SystemSource::new(
            &[Metric::Uptime],
            3_600 * 1_000_000,
            std::env::temp_dir(),
            &reg,
        );
        let inbox = Inbox::new("x", 16, true);
        let out = Output::new(vec![inbox.sender("system", &reg)]);
        let rx = inbox.into_receiver();
        let (trigger, shutdown) = crate::shutdown::channel();
        let ctx = SourceCtx {
            out,
            registry: reg.clone(),
            shutdown,
            health: Default::default(),
        };
        let info = reg.lookup("system:uptime").unwrap();
        let ex = smol::LocalExecutor::new();
        smol::block_on(ex.run(within(20, async {
            let task = ex.spawn(src.run(ctx));
            assert!(matches!(rx.recv().await, Ok(Item::Reading(_))));
            // The adaptive stage shortens the interval: the next reading comes soon.
            info.live.set_interval(MICROS);
            assert!(matches!(rx.recv().await, Ok(Item::Reading(_))));
            trigger.fire();
            task.await;
        })));
    }
}
