//! The idle footprint of the binary README.md tells users to install: `scripts/build-release`
//! (the static musl release on x86_64) started as a user would start it, with the default
//! config and pipeline, then left idle. What a user would check with `ps`: its resident
//! memory, and that it maps no shared libraries.
//!
//! Behind `SMOLLAMA_TEST_SLOW=1`: the release build it needs (fat LTO, one codegen unit)
//! takes about 12 minutes on a loaded 2-core machine even with the dependencies built.
//!
//! The bound, 3 MiB, is issue 18's goal. The build met it on 2026-12-01 with its code laid
//! out by use (scripts/code-order.txt) and the code after the running agent's given back
//! after start-up (src/footprint.rs): 2,068 KiB idle in footprint.py, against 4,196 before
//! in the same run (docs/benchmarks.md, "Code laid out by use"). So the margin is about
//! 1 MiB for noise (how the kernel's page cache holds the file moves the code's resident
//! pages by a few hundred KiB) and small growth. It sits far below the glibc build's idle
//! RSS (about 6 MiB), so a build script that quietly fell back to glibc fails here too,
//! and so does one that lost the code order (4.1 MiB without it).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TempDir, eventually, free_port, get, rss_kb};

/// Idle RSS a user may expect of the installed build, KiB.
const IDLE_RSS_BOUND_KIB: u64 = 3 * 1024;

#[test]
fn the_installed_build_idles_within_its_documented_memory() {
    if std::env::var("SMOLLAMA_TEST_SLOW").as_deref() != Ok("1") {
        eprintln!("skipped: the release build it needs runs with SMOLLAMA_TEST_SLOW=1");
        return;
    }
    if !cfg!(target_arch = "x86_64") {
        eprintln!("skipped: the static build, and so this bound, is x86_64's so far");
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(format!("{root}/scripts/build-release"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/build-release");
    assert!(out.status.success(), "scripts/build-release failed");
    let binary = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        binary.contains("x86_64-unknown-linux-musl"),
        "on x86_64 the install build is the static musl one (.ci/run installs its target \
         and musl-tools), got {binary}"
    );

    let dir = TempDir::new("footprint");
    let port = free_port();
    let mut child = Command::new(&binary)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir.path())
        .env("SMOLLAMA_NODE_DATA_DIR", dir.path().join("data"))
        .env("SMOLLAMA_HTTP_BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the release binary");
    let pid = child.id();
    let url = format!("http://127.0.0.1:{port}/api/health");
    eventually(20, "the release binary answers /api/health", || {
        matches!(get(&url), Ok((200, _))).then_some(())
    });
    // Idle as footprint.py measures it: start-up settled, the default pipeline sampling.
    std::thread::sleep(Duration::from_secs(10));
    let rss = rss_kb(pid);
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    eprintln!("{binary}: idle RSS {rss} KiB (bound {IDLE_RSS_BOUND_KIB} KiB)");

    let shared: Vec<&str> = maps.lines().filter(|l| l.contains(".so")).collect();
    assert!(
        shared.is_empty(),
        "the static build maps shared libraries: {shared:?}"
    );
    assert!(
        rss <= IDLE_RSS_BOUND_KIB,
        "idle RSS {rss} KiB is over the documented {IDLE_RSS_BOUND_KIB} KiB"
    );
    assert!(status.success(), "exit after SIGTERM: {status}");
}
