//! The `system` source: CPU, memory, disk, load and Pi health, read straight from /proc
//! and /sys (cheaper than a general crate on a Pi Zero).

use crate::graph::ValueKind;

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

pub struct SystemSource;
impl SystemSource {
    pub fn new(
        _m: &[Metric],
        _every: crate::graph::Micros,
        _d: std::path::PathBuf,
        _r: &crate::graph::registry::Registry,
    ) -> SystemSource {
        SystemSource
    }
    pub async fn run(self, _ctx: super::SourceCtx) {}
}
pub fn probe(_m: Metric, _d: &std::path::Path) -> Option<crate::graph::Value> {
    None
}
