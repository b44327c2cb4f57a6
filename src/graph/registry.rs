//! Source names interned to dense ids, with the live per-source numbers that status shows.
//!
//! Interning happens when a source is set up (or when a new remote source first appears),
//! never per reading. The hot path only touches a source's own [`SourceLive`] atomics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::reading::{Micros, SourceId, Value, ValueKind};

/// Live numbers of one source, shared between the event loop (writes) and HTTP (reads).
#[derive(Default)]
pub struct SourceLive {
    /// Readings produced by the source.
    pub count: AtomicU64,
    /// Readings of this source dropped on a full lossy edge (oldest first).
    pub drops: AtomicU64,
    /// Current sampling interval in microseconds; 0 for purely event-driven sources.
    /// The adaptive stage moves it within its bounds.
    pub interval_us: AtomicI64,
    /// False when the source exists in config but cannot be read on this machine.
    pub available: AtomicBool,
    last: Mutex<Option<(Micros, Value)>>,
    wake: Mutex<Option<async_channel::Sender<()>>>,
}

impl SourceLive {
    /// Record a produced reading (called by the source itself).
    pub fn record(&self, ts: Micros, value: Value) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last.lock() {
            *last = Some((ts, value));
        }
    }

    pub fn last(&self) -> Option<(Micros, Value)> {
        self.last.lock().ok().and_then(|l| *l)
    }

    pub fn interval(&self) -> Micros {
        self.interval_us.load(Ordering::Relaxed)
    }

    /// The owning source registers a channel here to be woken when its interval changes.
    pub fn set_waker(&self, tx: async_channel::Sender<()>) {
        if let Ok(mut w) = self.wake.lock() {
            *w = Some(tx);
        }
    }

    /// Change the sampling interval and wake the source so it applies at once.
    pub fn set_interval(&self, interval: Micros) {
        self.interval_us.store(interval, Ordering::Relaxed);
        if let Ok(w) = self.wake.lock()
            && let Some(tx) = w.as_ref()
        {
            let _ = tx.try_send(());
        }
    }
}

/// The part of a full id before the first `:` (the type of a local source, the sending
/// node of a remote one).
pub fn source_type(name: &str) -> &str {
    name.split_once(':').map_or(name, |(t, _)| t)
}

pub struct SourceInfo {
    pub id: SourceId,
    /// Full id, `<type>:<id>` as in the original (`system:cpu_temp`, `gpio:17`).
    pub name: Box<str>,
    pub unit: Box<str>,
    pub kind: ValueKind,
    pub live: SourceLive,
}

impl SourceInfo {
    /// The part after the first `:` (`cpu_temp` of `system:cpu_temp`).
    pub fn local_name(&self) -> &str {
        self.name.split_once(':').map_or(&self.name, |(_, l)| l)
    }
}

#[derive(Default)]
struct Inner {
    by_name: HashMap<Box<str>, SourceId>,
    infos: Vec<Arc<SourceInfo>>,
    /// Ids whose name/unit/kind the store has not persisted yet.
    unsaved: Vec<SourceId>,
}

#[derive(Default)]
pub struct Registry {
    inner: RwLock<Inner>,
    /// The id types this node produces itself (`system`, `gpio`, `file`, ...: each source
    /// kind declares its own). Every other name was learned from a message
    /// (`<node>:<source>` from a batch, `mqtt:<topic>`), and a message may never create or
    /// feed a name of these types.
    local_types: Vec<&'static str>,
}

impl Registry {
    /// A registry with no local id types (every name counts as learned): for tests of
    /// parts that do not care.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The agent's registry: `types` are its own sources' id types
    /// (`plugins::registry::local_id_types`).
    pub fn with_local_types(types: Vec<&'static str>) -> Registry {
        Registry {
            local_types: types,
            ..Registry::default()
        }
    }

    /// Whether `name` is one of this node's own sources rather than one learned from
    /// another node.
    pub fn is_local(&self, name: &str) -> bool {
        self.local_types.contains(&source_type(name))
    }

    /// Seed with the mapping the store already holds (ids must stay stable on disk).
    pub fn load(&self, saved: impl IntoIterator<Item = (SourceId, String, String, ValueKind)>) {
        let mut inner = self.inner.write().unwrap();
        for (id, name, unit, kind) in saved {
            let idx = id.index();
            if inner.infos.len() <= idx {
                // Fill gaps (never expected) with placeholders so indexes stay dense.
                while inner.infos.len() < idx {
                    let gap = SourceId(inner.infos.len() as u32);
                    inner.infos.push(Arc::new(SourceInfo {
                        id: gap,
                        name: format!("_unused:{}", gap.0).into(),
                        unit: "".into(),
                        kind: ValueKind::Number,
                        live: SourceLive::default(),
                    }));
                }
                inner.infos.push(Arc::new(SourceInfo {
                    id,
                    name: name.clone().into(),
                    unit: unit.into(),
                    kind,
                    live: SourceLive::default(),
                }));
            } else {
                inner.infos[idx] = Arc::new(SourceInfo {
                    id,
                    name: name.clone().into(),
                    unit: unit.into(),
                    kind,
                    live: SourceLive::default(),
                });
            }
            inner.by_name.insert(name.into(), id);
        }
    }

    /// The id for `name`, creating it if new. A known name whose unit or kind changed is
    /// updated (and re-saved); its id stays.
    pub fn intern(&self, name: &str, unit: &str, kind: ValueKind) -> Arc<SourceInfo> {
        {
            let inner = self.inner.read().unwrap();
            if let Some(&id) = inner.by_name.get(name) {
                let info = &inner.infos[id.index()];
                if &*info.unit == unit && info.kind == kind {
                    return info.clone();
                }
            }
        }
        let mut inner = self.inner.write().unwrap();
        let id = match inner.by_name.get(name) {
            Some(&id) => id,
            None => {
                let id = SourceId(inner.infos.len() as u32);
                inner.by_name.insert(name.into(), id);
                inner.infos.push(Arc::new(SourceInfo {
                    id,
                    name: name.into(),
                    unit: unit.into(),
                    kind,
                    live: SourceLive::default(),
                }));
                inner.unsaved.push(id);
                return inner.infos[id.index()].clone();
            }
        };
        let info = Arc::new(SourceInfo {
            id,
            name: name.into(),
            unit: unit.into(),
            kind,
            live: SourceLive::default(),
        });
        inner.infos[id.index()] = info.clone();
        inner.unsaved.push(id);
        info
    }

    pub fn get(&self, id: SourceId) -> Option<Arc<SourceInfo>> {
        self.inner.read().unwrap().infos.get(id.index()).cloned()
    }

    pub fn lookup(&self, name: &str) -> Option<Arc<SourceInfo>> {
        let inner = self.inner.read().unwrap();
        inner
            .by_name
            .get(name)
            .map(|id| inner.infos[id.index()].clone())
    }

    pub fn all(&self) -> Vec<Arc<SourceInfo>> {
        self.inner
            .read()
            .unwrap()
            .infos
            .iter()
            .filter(|i| !i.name.starts_with("_unused:"))
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.inner.read().unwrap().infos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sources the store must persist in its next transaction; the store calls
    /// [`Registry::mark_unsaved`] again if that transaction fails.
    pub fn take_unsaved(&self) -> Vec<Arc<SourceInfo>> {
        let mut inner = self.inner.write().unwrap();
        if inner.unsaved.is_empty() {
            return Vec::new();
        }
        let ids = std::mem::take(&mut inner.unsaved);
        ids.into_iter()
            .map(|id| inner.infos[id.index()].clone())
            .collect()
    }

    pub fn mark_unsaved(&self, ids: impl IntoIterator<Item = SourceId>) {
        self.inner.write().unwrap().unsaved.extend(ids);
    }

    /// Count a drop against the reading's source (called only when a lossy edge overflows).
    pub fn count_drop(&self, id: SourceId) {
        if let Some(info) = self.inner.read().unwrap().infos.get(id.index()) {
            info.live.drops.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_dense() {
        let r = Registry::new();
        let a = r.intern("system:cpu_temp", "celsius", ValueKind::Number);
        let b = r.intern("gpio:17", "boolean", ValueKind::Bool);
        assert_eq!(a.id, SourceId(0));
        assert_eq!(b.id, SourceId(1));
        assert_eq!(
            r.intern("system:cpu_temp", "celsius", ValueKind::Number).id,
            a.id
        );
        assert_eq!(r.take_unsaved().len(), 2);
        assert!(r.take_unsaved().is_empty());
        assert_eq!(a.local_name(), "cpu_temp");
    }

    #[test]
    fn loaded_ids_are_kept() {
        let r = Registry::new();
        r.load([(
            SourceId(3),
            "gpio:4".into(),
            "boolean".into(),
            ValueKind::Bool,
        )]);
        assert_eq!(r.lookup("gpio:4").unwrap().id, SourceId(3));
        let n = r.intern("system:load_avg", "load", ValueKind::Number);
        assert_eq!(n.id, SourceId(4));
        assert_eq!(r.all().len(), 2);
    }
}
