//! The store's writer thread: takes batches of items from the event loop and commits each
//! batch in one write transaction. Empty batch vectors go back to the loop for reuse, so
//! steady-state ingest allocates nothing.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::Store;
use crate::graph::Item;
use crate::graph::registry::Registry;

/// The writer's live state, for status.
#[derive(Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub readings: AtomicU64,
    pub rollups: AtomicU64,
    pub pruned: AtomicU64,
    pub failures: AtomicU64,
    /// Duration of the last commit in microseconds.
    pub last_commit_us: AtomicU64,
    /// True while the last commit failed (disk full, map full); cleared by a success.
    pub degraded: AtomicBool,
    pub last_error: Mutex<Option<String>>,
}

/// The loop's handle: send full batches, get empty ones back.
pub struct WriterHandle {
    pub batches: async_channel::Sender<Vec<Item>>,
    pub recycled: async_channel::Receiver<Vec<Item>>,
    pub stats: Arc<WriterStats>,
    pub thread: std::thread::JoinHandle<()>,
}

/// Start the writer thread ("store"). It exits after the batch sender is dropped and the
/// last batch is committed.
pub fn spawn(store: Arc<Store>, registry: Arc<Registry>, queue: usize) -> WriterHandle {
    let (tx, rx) = async_channel::bounded::<Vec<Item>>(queue);
    let (rtx, rrx) = async_channel::bounded::<Vec<Item>>(queue + 1);
    let stats = Arc::new(WriterStats::default());
    let st = stats.clone();
    let thread = std::thread::Builder::new()
        .name("store".into())
        .spawn(move || {
            while let Ok(mut batch) = rx.recv_blocking() {
                let new_sources = registry.take_unsaved();
                match store.write_batch(&new_sources, &batch) {
                    Ok(w) => {
                        st.commits.fetch_add(1, Ordering::Relaxed);
                        st.readings.fetch_add(w.readings, Ordering::Relaxed);
                    }
                    Err(e) => {
                        st.failures.fetch_add(1, Ordering::Relaxed);
                        registry.mark_unsaved(new_sources.iter().map(|s| s.id));
                        log::error!("{e}");
                    }
                }
                batch.clear();
                let _ = rtx.try_send(batch);
            }
        })
        .expect("spawn store thread");
    WriterHandle {
        batches: tx,
        recycled: rrx,
        stats,
        thread,
    }
}
