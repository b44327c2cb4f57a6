//! Compiles the dashboard's files (`dashboard/`) into the binary: each is gzip-compressed
//! here, once, and given an ETag (a hash of its content), so the server only picks the
//! bytes to send. Generates `$OUT_DIR/assets.rs`, one `Asset` static per file, which
//! `src/edges/http/assets.rs` includes.

use std::fmt::Write as _;
use std::path::Path;

/// The files served, as (file under `dashboard/`, content type).
const FILES: &[(&str, &str)] = &[
    ("index.html", "text/html; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("chart.js", "text/javascript; charset=utf-8"),
    ("app.css", "text/css; charset=utf-8"),
];

fn main() {
    println!("cargo:rerun-if-changed=dashboard");
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR");
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let mut code = String::new();
    for (file, content_type) in FILES {
        let src = Path::new(&root).join("dashboard").join(file);
        println!("cargo:rerun-if-changed={}", src.display());
        let data = std::fs::read(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        let gz = gzip(&data);
        let gz_path = Path::new(&out_dir).join(format!("{file}.gz"));
        std::fs::write(&gz_path, &gz).expect("write the compressed asset");
        let name = file.replace(['.', '-'], "_").to_uppercase();
        let _ = writeln!(
            code,
            "pub(crate) static {name}: Asset = Asset {{ content_type: {content_type:?}, identity: include_bytes!({src:?}), gzip: include_bytes!({gz:?}), etag: \"\\\"{hash:016x}\\\"\", etag_gzip: \"\\\"{hash:016x}-gz\\\"\" }};",
            src = src.display().to_string(),
            gz = gz_path.display().to_string(),
            hash = fnv1a(&data),
        );
    }
    std::fs::write(Path::new(&out_dir).join("assets.rs"), code).expect("write assets.rs");
    code_order(&root);
}

/// The install build (static musl, x86_64, release) is linked with rust-lld and
/// `scripts/code-order.txt` as its symbol-ordering file: the functions the idle agent runs
/// first and together, then those only start-up runs, so the kernel maps a few hundred
/// KiB of code instead of all of `.text` (docs/benchmarks.md, "Code laid out by use").
/// Names the file has but the code no longer does only make lld warn. Other targets and
/// profiles link as before; without an lld this says so and links as before.
fn code_order(root: &str) {
    let order = Path::new(root).join("scripts/code-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    // `code_order`: this build is linked with the order file, so src/footprint.rs knows
    // where the start-up-only code lies.
    println!("cargo::rustc-check-cfg=cfg(code_order)");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("PROFILE") != "release"
        || var("CARGO_CFG_TARGET_ARCH") != "x86_64"
        || var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "musl"
    {
        return;
    }
    let Some(lld_dir) = lld_dir() else {
        println!(
            "cargo:warning=no rust-lld or ld.lld found: linking without scripts/code-order.txt (more idle RSS)"
        );
        return;
    };
    if let Some(dir) = lld_dir {
        println!("cargo:rustc-link-arg-bins=-B{}", dir.display());
    }
    println!("cargo:rustc-link-arg-bins=-fuse-ld=lld");
    // Relative relocations packed (RELR, applied by musl's static-PIE start-up): .rela.dyn
    // shrinks from ~170 KiB, all of it read at every start and so resident, to a few KiB.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    println!("cargo:rustc-cfg=code_order");
}

/// Where gcc finds an `ld.lld`: `Some(Some(dir))` for the toolchain's own rust-lld wrapper
/// (`<sysroot>/lib/rustlib/<host>/bin/gcc-ld`), `Some(None)` for one on PATH, `None` if
/// there is neither.
fn lld_dir() -> Option<Option<std::path::PathBuf>> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let host = std::env::var("HOST").unwrap_or_default();
    if let Ok(out) = std::process::Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
    {
        let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let dir = Path::new(&sysroot).join(format!("lib/rustlib/{host}/bin/gcc-ld"));
        if dir.join("ld.lld").exists() {
            return Some(Some(dir));
        }
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("ld.lld").exists()));
    on_path.then_some(None)
}

/// A gzip member (RFC 1952) around miniz_oxide's deflate at its best level.
fn gzip(data: &[u8]) -> Vec<u8> {
    // Magic, deflate, no flags, no mtime (reproducible builds), max compression, Unix.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3];
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 10));
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE), bit by bit: a few KiB of assets, once per build.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// FNV-1a, 64 bits: the ETag only has to change when the content does.
fn fnv1a(data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
