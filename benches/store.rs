//! Store throughput: durable ingest (default LMDB durability, fsync per commit) with
//! batches of 1000 and 10,000 readings from 10 interleaved sources, and a range scan of
//! a one-hour, 100k-row history of one source.
//!
//! `cargo bench --bench store` uses a fresh directory under the system temp dir. To
//! measure a particular disk (SD card vs tmpfs), pass a directory:
//! `cargo bench --bench store -- /mnt/sd/bench` or set `SMOLLAMA_BENCH_DIR`.
//! Sub-directories are created there and removed afterwards.

use std::path::{Path, PathBuf};
use std::time::Instant;

use smollama::graph::{Item, Micros, Reading, SourceId, Value};
use smollama::store::{Store, StoreOptions};

const SOURCES: u32 = 10;
const T0: Micros = 1_700_000_000_000_000;
const HOUR: Micros = 3_600_000_000;

fn opts() -> StoreOptions {
    StoreOptions { map_size: 1 << 30 }
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(base: &Path, name: &str) -> Scratch {
    let p = base.join(format!("smollama-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    Scratch(p)
}

/// Ingest `total` readings in batches of `batch` into a fresh store; readings/s.
fn ingest(base: &Path, batch: usize, total: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let dir = scratch(base, &format!("ingest{batch}"));
    let store = Store::open(&dir.0, &opts())?;
    let mut items = Vec::with_capacity(batch);
    let mut seq = 0u64;
    let start = Instant::now();
    while (seq as usize) < total {
        items.clear();
        for _ in 0..batch {
            // 10 sources interleaved, one reading per source every 10 ms.
            let source = SourceId((seq % u64::from(SOURCES)) as u32);
            let ts = T0 + (seq / u64::from(SOURCES)) as Micros * 10_000;
            items.push(Item::Reading(Reading::new(
                source,
                ts,
                Value::Number(seq as f64 * 0.1),
            )));
            seq += 1;
        }
        store.write_batch(&[], &items)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let stored = store.counts()?.readings;
    assert_eq!(stored, seq, "all readings stored");
    Ok(seq as f64 / secs)
}

/// Read back a one-hour history of one source with `rows` readings; readings/s.
fn range_scan(base: &Path, rows: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let dir = scratch(base, "scan");
    let store = Store::open(&dir.0, &opts())?;
    let step = HOUR / rows as Micros;
    let mut items = Vec::with_capacity(10_000);
    for chunk in 0..rows.div_ceil(10_000) {
        items.clear();
        for i in chunk * 10_000..((chunk + 1) * 10_000).min(rows) {
            // The scanned source between two neighbours, so the scan has real bounds.
            for s in 0..3 {
                let ts = T0 + i as Micros * step;
                items.push(Item::Reading(Reading::new(
                    SourceId(s),
                    ts,
                    Value::Number(i as f64),
                )));
            }
        }
        store.write_batch(&[], &items)?;
    }
    let mut best = f64::INFINITY;
    let mut n = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let h = store.history(SourceId(1), T0, T0 + HOUR, usize::MAX)?;
        best = best.min(start.elapsed().as_secs_f64());
        n = h.len();
        std::hint::black_box(h);
    }
    assert_eq!(n, rows, "whole hour read back");
    Ok(n as f64 / best)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; the first other argument is the directory.
    let base = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .or_else(|| std::env::var("SMOLLAMA_BENCH_DIR").ok())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base)?;
    eprintln!("store bench in {}", base.display());
    println!(
        "store_ingest_batch1000: {:.0} readings/s",
        ingest(&base, 1000, 200_000)?
    );
    println!(
        "store_ingest_batch10000: {:.0} readings/s",
        ingest(&base, 10_000, 500_000)?
    );
    println!(
        "store_range_scan_1h_100k: {:.0} readings/s",
        range_scan(&base, 100_000)?
    );
    Ok(())
}
