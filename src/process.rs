//! This process's own footprint, from /proc/self (for status and benchmarks).

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub rss_kb: u64,
    pub hwm_kb: u64,
    pub threads: u64,
    pub cpu_user_s: f64,
    pub cpu_system_s: f64,
}

pub fn read() -> ProcessStats {
    let mut p = ProcessStats::default();
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            let num = || {
                line.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("VmRSS:") {
                p.rss_kb = num();
            } else if line.starts_with("VmHWM:") {
                p.hwm_kb = num();
            } else if line.starts_with("Threads:") {
                p.threads = num();
            }
        }
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may contain spaces) start after ')'.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after ')'.
            let tick = clock_ticks();
            if f.len() > 12 {
                p.cpu_user_s = f[11].parse::<f64>().unwrap_or(0.0) / tick;
                p.cpu_system_s = f[12].parse::<f64>().unwrap_or(0.0) / tick;
            }
        }
    }
    p
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_footprint() {
        let p = super::read();
        assert!(p.rss_kb > 0);
        assert!(p.threads >= 1);
    }
}
