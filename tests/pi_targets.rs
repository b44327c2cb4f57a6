//! The Pi's static musl builds, as `scripts/build-release --target <triple>` makes them
//! for the tarball and install.sh, run under qemu-user (Debian's `qemu-user`: it stands
//! in for a Pi's CPU and kernel ABI; it says the binary is right for the target, not how
//! fast or small it is there). For each target: the release binary is static, of the
//! target's architecture, and prints its version under the emulator; and a build that
//! differs only in LMDB's lock mutexes starts on the mock GPIO backend with the default
//! config and pipeline, answers `/api/health`, stores readings, and exits 0 on SIGTERM.
//!
//! Why the second build: qemu-user does not implement `get_robust_list`, which musl's
//! `pthread_mutexattr_setrobust` probes, so LMDB's robust mutexes fail (`ENOSYS`) and the
//! store cannot open under the emulator; a Pi's kernel has them. That build compiles LMDB
//! with `-DMDB_USE_ROBUST=0` into its own target directory; the rest is the same code.
//!
//! Behind `SMOLLAMA_TEST_SLOW=1`: each build is the fat-LTO release (about 12 minutes a
//! target cold on a loaded 2-core machine). `SMOLLAMA_PI_TARGETS` (comma-separated) picks
//! targets; a target whose Rust standard library is not installed is skipped, saying
//! so, but at least one must run.

mod common;

use std::process::{Command, Stdio};

use common::{TempDir, eventually, free_port, get};

/// Triple, qemu-user binary, ELF `e_machine`.
const TARGETS: [(&str, &str, u16); 2] = [
    ("aarch64-unknown-linux-musl", "qemu-aarch64", 183),
    ("armv7-unknown-linux-musleabihf", "qemu-arm", 40),
];

fn installed(triple: &str) -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == triple)
        })
}

/// `e_machine` and whether a program header asks for an interpreter (a dynamic binary).
fn elf(bytes: &[u8]) -> (u16, bool) {
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    let wide = bytes[4] == 2;
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    let machine = u16_at(18);
    let (phoff, phentsize, phnum) = if wide {
        (
            u64_at(32) as usize,
            u16_at(54) as usize,
            u16_at(56) as usize,
        )
    } else {
        (
            u32_at(28) as usize,
            u16_at(42) as usize,
            u16_at(44) as usize,
        )
    };
    const PT_INTERP: u32 = 3;
    let interp = (0..phnum).any(|i| u32_at(phoff + i * phentsize) == PT_INTERP);
    (machine, interp)
}

#[test]
fn the_pi_builds_are_static_and_run_under_emulation() {
    if std::env::var("SMOLLAMA_TEST_SLOW").as_deref() != Ok("1") {
        eprintln!("skipped: the release builds it needs run with SMOLLAMA_TEST_SLOW=1");
        return;
    }
    let chosen = std::env::var("SMOLLAMA_PI_TARGETS").ok();
    let mut ran = 0;
    for (triple, qemu, machine) in TARGETS {
        if chosen
            .as_ref()
            .is_some_and(|c| !c.split(',').any(|t| t == triple))
        {
            continue;
        }
        if !installed(triple) {
            eprintln!(
                "skipped {triple}: its Rust standard library is not installed (rustup target add {triple})"
            );
            continue;
        }
        run_one(triple, qemu, machine);
        ran += 1;
    }
    assert!(ran > 0, "no Pi target could be built here");
}

/// `scripts/build-release --target triple` with `env`; the binary's path.
fn build(triple: &str, env: &[(String, String)]) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(format!("{root}/scripts/build-release"))
        .args(["--target", triple])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/build-release");
    assert!(
        out.status.success(),
        "scripts/build-release --target {triple} failed"
    );
    let binary = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(binary.contains(triple), "{binary}");
    binary
}

fn run_one(triple: &str, qemu: &str, machine: u16) {
    let binary = build(triple, &[]);
    let bytes = std::fs::read(&binary).unwrap();
    let (m, dynamic) = elf(&bytes);
    assert_eq!(m, machine, "{binary} is not built for {triple}");
    assert!(!dynamic, "{binary} asks for a dynamic loader: not static");
    eprintln!("{triple}: {} bytes", bytes.len());

    let v = Command::new(qemu)
        .args([&binary, "--version"])
        .output()
        .expect("run qemu-user (Debian: apt-get install qemu-user)");
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "{triple} --version: {v:?}");
    assert!(
        text.contains(env!("CARGO_PKG_VERSION")),
        "{triple} --version: {text}"
    );

    let root = env!("CARGO_MANIFEST_DIR");
    let t = triple.replace('-', "_");
    let binary = build(
        triple,
        &[
            (
                "CARGO_TARGET_DIR".into(),
                format!("{root}/target/qemu-user"),
            ),
            (format!("CFLAGS_{t}"), "-DMDB_USE_ROBUST=0".into()),
        ],
    );
    let dir = TempDir::new("pi-target");
    let port = free_port();
    let mut child = Command::new(qemu)
        .arg(&binary)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir.path())
        .env("SMOLLAMA_NODE_DATA_DIR", dir.path().join("data"))
        .env("SMOLLAMA_HTTP_BIND", format!("127.0.0.1:{port}"))
        .env("SMOLLAMA_GPIO_BACKEND", "mock")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary under qemu-user");
    let base = format!("http://127.0.0.1:{port}");
    eventually(60, "the emulated binary answers /api/health", || {
        matches!(get(&format!("{base}/api/health")), Ok((200, _))).then_some(())
    });
    let status = eventually(60, "the emulated binary stores readings", || {
        let (code, s) = get(&format!("{base}/api/status")).ok()?;
        (code == 200 && s["store"]["readings"].as_u64()? > 0).then_some(s)
    });
    assert_eq!(status["gpio"]["backend"], "mock", "{}", status["gpio"]);
    // qemu-user passes the signal on to the program it runs.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let exit = child.wait().unwrap();
    let mut log = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(exit.success(), "{triple}: exit after SIGTERM {exit}: {log}");
    eprintln!(
        "{triple}: under {qemu}: health 200, {} readings stored, exit 0 on SIGTERM",
        status["store"]["readings"]
    );
}
