//! Memory recall: latency of a top-5 recall over 10,000 and 100,000 stored observations
//! with 384-dimension vectors (brute force over the i8-quantised vectors in LMDB), bytes of
//! store per observation including its vector, and the top-5 overlap of quantised vs
//! exact f32 cosine.
//!
//! `cargo bench --bench memory` uses a fresh directory under the system temp dir; pass a
//! directory (`cargo bench --bench memory -- /mnt/sd/bench`) or set `SMOLLAMA_BENCH_DIR`
//! to measure a particular disk.

use std::path::{Path, PathBuf};
use std::time::Instant;

use smollama::memory::recall::recall;
use smollama::memory::vectors::{Rng, clustered, quantisation_overlap};
use smollama::memory::{Observation, ObservationType};
use smollama::store::{Store, StoreOptions};

const DIM: usize = 384;
const T0: i64 = 1_700_000_000_000_000;

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

fn observation(i: usize) -> Observation {
    Observation {
        id: 0,
        ts: T0 + i as i64 * 60_000_000,
        text: format!(
            "CPU temperature pattern {i}: rises by about 4 degrees while the nightly backup runs"
        ),
        kind: ObservationType::Pattern,
        confidence: 0.8,
        related_sources: vec!["system:cpu_temp".into()],
        node: "pi-kitchen".into(),
    }
}

/// Store `n` observations with clustered vectors; then time top-5 recalls. Returns
/// (median ms, bytes per observation).
fn run(base: &Path, n: usize) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let dir = scratch(base, &format!("recall{n}"));
    let store = Store::open(&dir.0, &StoreOptions { map_size: 1 << 30 })?;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ n as u64);
    let chunk = 5000;
    let mut done = 0;
    while done < n {
        let m = chunk.min(n - done);
        let vecs = clustered(m, DIM, 50, 0.5, &mut rng);
        let obs: Vec<Observation> = (done..done + m).map(observation).collect();
        let items: Vec<(&Observation, Option<&[f32]>)> = obs
            .iter()
            .zip(&vecs)
            .map(|(o, v)| (o, Some(v.as_slice())))
            .collect();
        store.memory().add_observations(&items)?;
        done += m;
    }
    store.sync()?;
    let bytes = std::fs::metadata(dir.0.join("data.mdb"))?.len() as f64 / n as f64;
    let queries = clustered(50, DIM, 50, 0.5, &mut rng);
    // Warm the page cache once.
    recall(&store, Some(&queries[0]), "cpu", 5)?;
    let mut times = Vec::new();
    for q in &queries {
        let t = Instant::now();
        let r = recall(&store, Some(q), "cpu temperature", 5)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(r.observations.len(), 5);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], bytes))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .or_else(|| std::env::var("SMOLLAMA_BENCH_DIR").ok())
        .map_or_else(std::env::temp_dir, PathBuf::from);
    std::fs::create_dir_all(&base)?;

    let (ms10, bytes10) = run(&base, 10_000)?;
    println!("memory_recall_top5_10k: {ms10:.2} ms");
    let (ms100, bytes100) = run(&base, 100_000)?;
    println!("memory_recall_top5_100k: {ms100:.2} ms");
    println!("memory_store_bytes_per_observation_10k: {bytes10:.0}");
    println!("memory_store_bytes_per_observation_100k: {bytes100:.0}");

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let data = clustered(2000, DIM, 40, 0.6, &mut rng);
    let queries: Vec<Vec<f32>> = (0..100)
        .map(|i| {
            data[i * 19]
                .iter()
                .map(|&x| x + 0.3 * rng.normal())
                .collect()
        })
        .collect();
    let overlap = quantisation_overlap(&data, &queries, 5);
    println!("memory_quantisation_top5_overlap: {overlap:.3}");
    Ok(())
}
