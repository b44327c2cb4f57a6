//! Graph throughput: readings/s through filter -> adaptive -> retention, in memory and
//! durably into LMDB with batched commits. Run: `cargo bench --bench graph`.
//! Set `SMOLLAMA_BENCH_DIR` to put the store on a given filesystem (default: a temp dir).

use std::sync::Arc;
use std::time::Instant;

use smollama::graph::edge::{Inbox, Output};
use smollama::graph::registry::Registry;
use smollama::graph::runner::run_stage;
use smollama::graph::{Item, Reading, SourceId, Value, ValueKind};
use smollama::plugins::Task;
use smollama::sinks::store::StoreSink;
use smollama::stages::PerSource;
use smollama::stages::adaptive::{Adaptive, AdaptiveParams};
use smollama::stages::filter::{Filter, FilterParams};
use smollama::stages::retention::{Retention, RetentionParams};
use smollama::store::{Store, StoreOptions, writer};

const SOURCES: u32 = 10;

fn registry() -> Arc<Registry> {
    let r = Arc::new(Registry::new());
    for i in 0..SOURCES {
        let info = r.intern(&format!("bench:s{i}"), "x", ValueKind::Number);
        info.live.set_interval(1_000_000);
    }
    r
}

/// Reading `i`: sources interleaved, values varying enough to pass a small deadband.
fn reading(i: u64) -> Item {
    let src = (i % SOURCES as u64) as u32;
    let v = (i / SOURCES as u64) as f64 * 0.5 + (i % 7) as f64;
    Item::Reading(Reading::new(
        SourceId(src),
        1_700_000_000_000_000 + i as i64 * 1000,
        Value::Number(v),
    ))
}

/// Wire the three stages; returns the tasks' futures, the head sender and the tail.
fn stages(reg: &Arc<Registry>) -> (Vec<Task>, smollama::graph::edge::EdgeTx, Inbox) {
    let filter_in = Inbox::new("quiet", 1024, false);
    let adaptive_in = Inbox::new("pace", 1024, false);
    let retention_in = Inbox::new("keep", 1024, false);
    let tail = Inbox::new("tail", 1024, false);
    let head = filter_in.sender("bench", reg);
    let f = Filter::new(
        FilterParams {
            deadband: PerSource::all(0.1),
            heartbeat: PerSource::all(300_000_000),
            ..Default::default()
        },
        reg.clone(),
    );
    let a = Adaptive::new(AdaptiveParams::default(), reg.clone());
    let r = Retention::new(RetentionParams::default(), reg.clone());
    let tasks: Vec<Task> = vec![
        Box::pin(run_stage(
            Box::new(f),
            filter_in.into_receiver(),
            Output::new(vec![adaptive_in.sender("quiet", reg)]),
            reg.clone(),
        )),
        Box::pin(run_stage(
            Box::new(a),
            adaptive_in.into_receiver(),
            Output::new(vec![retention_in.sender("pace", reg)]),
            reg.clone(),
        )),
        Box::pin(run_stage(
            Box::new(r),
            retention_in.into_receiver(),
            Output::new(vec![tail.sender("keep", reg)]),
            reg.clone(),
        )),
    ];
    (tasks, head, tail)
}

fn in_memory(n: u64) -> f64 {
    let reg = registry();
    let (tasks, head, tail) = stages(&reg);
    let rx = tail.into_receiver();
    let ex = smol::LocalExecutor::new();
    let handles: Vec<_> = tasks.into_iter().map(|t| ex.spawn(t)).collect();
    let t0 = Instant::now();
    let got = smol::block_on(ex.run(async {
        let producer = ex.spawn(async move {
            for i in 0..n {
                head.send(reading(i)).await;
            }
        });
        let mut got = 0u64;
        while let Ok(item) = rx.recv().await {
            if matches!(item, Item::Reading(_)) {
                got += 1;
            }
        }
        producer.await;
        for h in handles {
            h.await;
        }
        got
    }));
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(got, n, "every reading should pass this pipeline");
    n as f64 / secs
}

fn durable(n: u64) -> (f64, u64) {
    let base = std::env::var_os("SMOLLAMA_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("smollama-bench-graph-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(Store::open(&dir, &StoreOptions { map_size: 4 << 30 }).unwrap());
    let reg = registry();
    let w = writer::spawn(store.clone(), reg.clone(), 2);
    let (tasks, head, tail) = stages(&reg);
    let sink = StoreSink::new(&w);
    let ex = smol::LocalExecutor::new();
    let mut handles: Vec<_> = tasks.into_iter().map(|t| ex.spawn(t)).collect();
    handles.push(ex.spawn(Box::pin(sink.run(tail.into_receiver()))));
    let t0 = Instant::now();
    smol::block_on(ex.run(async {
        for i in 0..n {
            head.send(reading(i)).await;
        }
        drop(head);
        for h in handles {
            h.await;
        }
    }));
    drop(w.batches);
    w.thread.join().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let commits = w.stats.commits.load(std::sync::atomic::Ordering::Relaxed);
    let stored = store.counts().unwrap().readings;
    assert_eq!(stored, n, "every reading stored");
    let _ = std::fs::remove_dir_all(&dir);
    (n as f64 / secs, commits)
}

fn main() {
    let n: u64 = std::env::var("SMOLLAMA_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    // Warm up, then measure.
    in_memory(n / 10);
    let mem = in_memory(n);
    println!("graph_in_memory (filter->adaptive->retention): {mem:.0} readings/s ({n} readings)");
    let (dur, commits) = durable(n);
    println!(
        "graph_durable (same + store sink + LMDB writer): {dur:.0} readings/s ({n} readings, {commits} commits)"
    );
}
