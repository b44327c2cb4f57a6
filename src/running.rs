//! Finding a running agent from outside it, for `smollama status` when no agent answers
//! over HTTP (or `[http] enabled = false`).
//!
//! Every process that has the LMDB store open holds a POSIX lock on the store's
//! `lock.mdb` for as long as it has it open (LMDB's own liveness check). The kernel lists
//! those locks with the holder's PID in `/proc/locks`, which every user may read (the
//! service runs as its own user, so its `/proc/PID/fd` is closed to others). Nothing to
//! go stale: a process that died holds no lock. Of the holders, the agents are those
//! whose command line has no subcommand or `run` (`smollama memory export` and the like
//! hold the store for a moment too).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// PIDs of the agents (other than this process) that have the store in `store_dir` open;
/// empty when none does, or when this is not Linux.
pub fn agents_using(store_dir: &Path) -> Vec<u32> {
    let Ok(meta) = std::fs::metadata(store_dir.join("lock.mdb")) else {
        return Vec::new();
    };
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    let dev = meta.dev();
    let me = std::process::id();
    let mut pids = holders(&locks, libc::major(dev), libc::minor(dev), meta.ino());
    pids.retain(|&p| p != me && is_agent(p));
    pids
}

/// PIDs holding a lock on the file with this device and inode, from `/proc/locks` text
/// (`1: POSIX  ADVISORY  READ 20482 fe:00:10011345 0 EOF`; device numbers in hex).
/// Waiters (`->` lines) hold nothing and are left out; so are OFD locks (PID -1).
fn holders(locks: &str, major: u32, minor: u32, ino: u64) -> Vec<u32> {
    let mut pids: Vec<u32> = locks
        .lines()
        .filter(|l| !l.contains("->"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let at = f.iter().position(|t| t.matches(':').count() == 2)?;
            let mut id = f[at].split(':');
            let maj = u32::from_str_radix(id.next()?, 16).ok()?;
            let min = u32::from_str_radix(id.next()?, 16).ok()?;
            let i: u64 = id.next()?.parse().ok()?;
            let pid: u32 = f.get(at.checked_sub(1)?)?.parse().ok()?;
            (maj == major && min == minor && i == ino && pid > 0).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Whether the process runs the agent. Its command line may be closed to us (`hidepid`):
/// then it holds our store, so it counts.
fn is_agent(pid: u32) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(raw) => {
            let args: Vec<&str> = raw
                .split(|b| *b == 0)
                .filter_map(|a| std::str::from_utf8(a).ok())
                .collect();
            runs_agent(&args)
        }
        Err(_) => true,
    }
}

/// `smollama [--config F] [--log-level L] [run ...]` runs the agent; any other
/// subcommand does not.
fn runs_agent(argv: &[&str]) -> bool {
    let mut args = argv.iter().skip(1).filter(|a| !a.is_empty());
    while let Some(a) = args.next() {
        match *a {
            "--config" | "--log-level" => {
                args.next();
            }
            a if a.starts_with('-') => {}
            a => return a == "run",
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_of_one_file_from_proc_locks() {
        let locks = "1: POSIX  ADVISORY  WRITE 20482 fe:00:10011345 20482 20482\n\
                     2: POSIX  ADVISORY  READ 20482 fe:00:10011345 0 0\n\
                     2: -> POSIX  ADVISORY  WRITE 777 fe:00:10011345 0 0\n\
                     3: FLOCK  ADVISORY  WRITE 18511 fe:00:5710084 0 EOF\n\
                     4: OFDLCK ADVISORY  READ -1 fe:00:10011345 0 EOF\n\
                     5: POSIX  ADVISORY  READ 31 08:01:10011345 0 EOF\n\
                     6: POSIX  ADVISORY  READ 4242 fe:00:10011345 0 EOF\n";
        assert_eq!(holders(locks, 0xfe, 0, 10_011_345), [4242, 20482]);
        assert_eq!(holders(locks, 8, 1, 10_011_345), [31]);
        assert!(holders(locks, 0xfe, 0, 1).is_empty());
        assert!(holders("", 0xfe, 0, 10_011_345).is_empty());
    }

    #[test]
    fn which_command_lines_run_the_agent() {
        for argv in [
            &["smollama"][..],
            &[
                "/usr/bin/smollama",
                "--config",
                "/etc/smollama/smollama.toml",
            ],
            &["smollama", "run", "--log-level", "debug"],
            &["smollama", "--log-level", "debug", "run"],
            &["smollama", "--config=/x.toml", "run", ""],
        ] {
            assert!(runs_agent(argv), "{argv:?}");
        }
        for argv in [
            &["smollama", "status"][..],
            &["smollama", "--config", "run", "memory", "export"],
            &["smollama", "memory", "export"],
        ] {
            assert!(!runs_agent(argv), "{argv:?}");
        }
    }
}
