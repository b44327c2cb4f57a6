//! Recall by meaning: brute-force cosine top-k over every stored vector (a fixed-size
//! top-k buffer, nothing allocated per candidate), BM25 over the texts when there is no
//! usable query vector. Also the near-duplicate checks that turn a repeated memory into a
//! reinforcement and merge repeated observations.

use super::lexical::Bm25;
use super::store::{
    MemoryError, MemoryStore, VectorKind, decode_memory, decode_observation,
    decode_observation_ref, id_of, memory_fact, memory_is_active, vector_key,
};
use super::vectors::{Query, TopK};
use super::{Memory, Observation};
use crate::graph::Micros;
use crate::store::Store;
use crate::store::codec::Corrupt;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecallResult {
    /// Best first, with relevance in 0..1.
    pub observations: Vec<(Observation, f32)>,
    /// Active memories only, best first, with relevance in 0..1.
    pub memories: Vec<(Memory, f32)>,
}

/// How a result was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecallMode {
    Vector,
    Lexical,
}

/// The `limit` most relevant observations and active memories. With a query vector of the
/// store's dimension: cosine similarity (negative counts as 0). Without one (embedding
/// failed, or another dimension), or for a table with no vectors yet: BM25 over the texts.
pub fn recall(
    store: &Store,
    query_vector: Option<&[f32]>,
    query_text: &str,
    limit: usize,
) -> Result<RecallResult, MemoryError> {
    recall_with_mode(store, query_vector, query_text, limit).map(|(r, _)| r)
}

/// `recall`, also saying whether the vectors or the words answered (for observations).
pub fn recall_with_mode(
    store: &Store,
    query_vector: Option<&[f32]>,
    query_text: &str,
    limit: usize,
) -> Result<(RecallResult, RecallMode), MemoryError> {
    let ms = store.memory();
    let rtxn = ms.read_txn()?;
    let dim = ms.dimension_in(&rtxn)?;
    let query = match (query_vector, dim) {
        (Some(q), Some(d)) if q.len() == d => match Query::new(q) {
            Ok(u) => Some(u),
            Err(e) => {
                log::warn!("recall: query vector unusable ({e}); falling back to words");
                None
            }
        },
        (Some(q), Some(d)) => {
            log::warn!(
                "recall: query vector has dimension {}, the store's is {d}; falling back to words",
                q.len()
            );
            None
        }
        _ => None,
    };
    let mut out = RecallResult::default();
    let mut mode = RecallMode::Lexical;
    if let Some(u) = &query {
        for (s, id) in top_observations(&ms, &rtxn, u, limit)? {
            if let Some(v) = ms.observations_db().get(&rtxn, &id.to_be_bytes())? {
                out.observations
                    .push((decode_observation(id, v)?, s.clamp(0.0, 1.0)));
            }
        }
        // Active memories: the flag is read only for candidates good enough to enter.
        let mut top = TopK::new(limit);
        ms.for_each_vector(&rtxn, VectorKind::Memory, |id, v| {
            if let Some(s) = u.cosine(v)
                && s > top.threshold()
                && active(&ms, &rtxn, id)?
            {
                top.push(s, id);
            }
            Ok(())
        })?;
        for (s, id) in top.into_sorted() {
            if let Some(v) = ms.memories_db().get(&rtxn, &id.to_be_bytes())? {
                out.memories
                    .push((decode_memory(id, v)?, s.clamp(0.0, 1.0)));
            }
        }
    }
    if query.is_some() && !out.observations.is_empty() {
        mode = RecallMode::Vector;
        // Items without a vector (merged from other nodes, or stored while the embedding
        // model was away) cannot be found by meaning until the re-embedding job reaches
        // them: their words find them meanwhile, ranked among the rest.
        let unvectored = lexical_observations(&ms, &rtxn, query_text, limit)?
            .into_iter()
            .filter(|(o, _)| !has_vector(&ms, &rtxn, VectorKind::Observation, o.id));
        merge_ranked(&mut out.observations, unvectored, |o| o.id, limit);
    } else {
        out.observations = lexical_observations(&ms, &rtxn, query_text, limit)?;
    }
    if query.is_none() || out.memories.is_empty() {
        out.memories = lexical_memories(&ms, &rtxn, query_text, limit)?;
    } else {
        let unvectored = lexical_memories(&ms, &rtxn, query_text, limit)?
            .into_iter()
            .filter(|(m, _)| !has_vector(&ms, &rtxn, VectorKind::Memory, m.id));
        merge_ranked(&mut out.memories, unvectored, |m| m.id, limit);
    }
    Ok((out, mode))
}

fn has_vector(ms: &MemoryStore, rtxn: &heed::RoTxn, kind: VectorKind, id: u64) -> bool {
    matches!(
        ms.vectors_db().get(rtxn, &vector_key(kind, id)),
        Ok(Some(_))
    )
}

/// Adds `more` to `found` (an id already there keeps its better relevance), best first,
/// at most `limit`.
fn merge_ranked<T>(
    found: &mut Vec<(T, f32)>,
    more: impl Iterator<Item = (T, f32)>,
    id: impl Fn(&T) -> u64,
    limit: usize,
) {
    for (item, r) in more {
        match found.iter_mut().find(|(x, _)| id(x) == id(&item)) {
            Some((_, best)) => *best = best.max(r),
            None => found.push((item, r)),
        }
    }
    found.sort_by(|a, b| b.1.total_cmp(&a.1));
    found.truncate(limit);
}

/// Past this many vectors the observation scan is split between two threads.
const PARALLEL_FROM: u64 = 20_000;

/// The best `limit` observation vectors: (cosine, id), best first.
fn top_observations(
    ms: &MemoryStore,
    rtxn: &heed::RoTxn,
    u: &Query,
    limit: usize,
) -> Result<Vec<(f32, u64)>, MemoryError> {
    let scan = |txn: &heed::RoTxn, from: u64, to: Option<u64>| {
        let mut top = TopK::new(limit);
        ms.for_each_vector_in(txn, VectorKind::Observation, from, to, |id, v| {
            if let Some(s) = u.cosine(v) {
                top.push(s, id);
            }
            Ok(())
        })?;
        Ok::<_, MemoryError>(top.into_sorted())
    };
    let parallel = ms.vectors_db().len(rtxn)? >= PARALLEL_FROM
        && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    let bounds = ms.vector_id_bounds(rtxn, VectorKind::Observation)?;
    let Some((first, last)) = bounds.filter(|_| parallel) else {
        return scan(rtxn, 0, None);
    };
    // Ids are dense enough (monotonic, aged off from the oldest) that the id midpoint
    // splits the work about evenly. The second half gets its own read transaction.
    let mid = first + (last - first) / 2 + 1;
    let (a, b) = std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            let txn = ms.read_txn()?;
            scan(&txn, mid, None)
        });
        let a = scan(rtxn, 0, Some(mid));
        let b = h.join().unwrap_or_else(|_| {
            Err(MemoryError::Store(crate::store::StoreError::Lmdb(
                "recall scan thread panicked".into(),
            )))
        });
        (a, b)
    });
    let mut top = TopK::new(limit);
    for (s, id) in a?.into_iter().chain(b?) {
        top.push(s, id);
    }
    Ok(top.into_sorted())
}

fn active(ms: &MemoryStore, rtxn: &heed::RoTxn, id: u64) -> Result<bool, MemoryError> {
    match ms.memories_db().get(rtxn, &id.to_be_bytes())? {
        Some(v) => Ok(memory_is_active(v)?),
        None => Ok(false),
    }
}

fn lexical_observations(
    ms: &MemoryStore,
    rtxn: &heed::RoTxn,
    text: &str,
    limit: usize,
) -> Result<Vec<(Observation, f32)>, MemoryError> {
    let mut bm = Bm25::new(text);
    if !bm.has_terms() {
        return Ok(Vec::new());
    }
    for kv in ms.observations_db().iter(rtxn)? {
        let (k, v) = kv?;
        bm.add(id_of(k)?, decode_observation_ref(v)?.text);
    }
    let mut out = Vec::new();
    for (s, id) in bm.top(limit) {
        if let Some(v) = ms.observations_db().get(rtxn, &id.to_be_bytes())? {
            out.push((decode_observation(id, v)?, s));
        }
    }
    Ok(out)
}

fn lexical_memories(
    ms: &MemoryStore,
    rtxn: &heed::RoTxn,
    text: &str,
    limit: usize,
) -> Result<Vec<(Memory, f32)>, MemoryError> {
    let mut bm = Bm25::new(text);
    if !bm.has_terms() {
        return Ok(Vec::new());
    }
    for kv in ms.memories_db().iter(rtxn)? {
        let (k, v) = kv?;
        if memory_is_active(v)? {
            bm.add(id_of(k)?, memory_fact(v)?);
        }
    }
    let mut out = Vec::new();
    for (s, id) in bm.top(limit) {
        if let Some(v) = ms.memories_db().get(rtxn, &id.to_be_bytes())? {
            out.push((decode_memory(id, v)?, s));
        }
    }
    Ok(out)
}

/// The unit query for a near-duplicate check: None if unusable or of another dimension.
fn unit_query(
    ms: &MemoryStore,
    rtxn: &heed::RoTxn,
    v: &[f32],
) -> Result<Option<Query>, MemoryError> {
    if ms.dimension_in(rtxn)? != Some(v.len()) {
        return Ok(None);
    }
    Ok(Query::new(v).ok())
}

/// The most similar active memory with cosine ≥ `threshold`, if any.
pub fn find_similar_memory(
    store: &Store,
    vector: &[f32],
    threshold: f32,
) -> Result<Option<(u64, f32)>, MemoryError> {
    let ms = store.memory();
    let rtxn = ms.read_txn()?;
    let Some(u) = unit_query(&ms, &rtxn, vector)? else {
        return Ok(None);
    };
    let mut best: Option<(u64, f32)> = None;
    ms.for_each_vector(&rtxn, VectorKind::Memory, |id, v| {
        if let Some(s) = u.cosine(v)
            && s >= threshold
            && best.is_none_or(|b| s > b.1)
            && active(&ms, &rtxn, id)?
        {
            best = Some((id, s));
        }
        Ok(())
    })?;
    Ok(best)
}

/// The most similar observation at or after `since_ts` with cosine ≥ `threshold`.
pub fn find_similar_observation(
    store: &Store,
    vector: &[f32],
    threshold: f32,
    since_ts: Micros,
) -> Result<Option<(u64, f32)>, MemoryError> {
    let ms = store.memory();
    let rtxn = ms.read_txn()?;
    let Some(u) = unit_query(&ms, &rtxn, vector)? else {
        return Ok(None);
    };
    let mut best: Option<(u64, f32)> = None;
    ms.for_each_vector(&rtxn, VectorKind::Observation, |id, v| {
        if let Some(s) = u.cosine(v)
            && s >= threshold
            && best.is_none_or(|b| s > b.1)
        {
            let recent = match ms.observations_db().get(&rtxn, &id.to_be_bytes())? {
                Some(o) => decode_observation_ref(o)?.ts >= since_ts,
                None => return Err(Corrupt("vector without observation").into()),
            };
            if recent {
                best = Some((id, s));
            }
        }
        Ok(())
    })?;
    Ok(best)
}

/// Confidence added when a memory is confirmed again (as the original).
pub const REINFORCE_STEP: f32 = 0.05;

/// What `remember` did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Remembered {
    New(u64),
    /// An active memory this similar existed and was reinforced instead.
    Reinforced {
        id: u64,
        similarity: f32,
    },
}

/// Store a memory unless an active one within `threshold` exists; then reinforce that one
/// by `confidence_step` instead of duplicating it.
pub fn remember(
    store: &Store,
    mem: &Memory,
    vector: Option<&[f32]>,
    threshold: f32,
    confidence_step: f32,
) -> Result<Remembered, MemoryError> {
    if let Some(v) = vector
        && let Some((id, similarity)) = find_similar_memory(store, v, threshold)?
        && store.memory().reinforce_memory(id, confidence_step)?
    {
        return Ok(Remembered::Reinforced { id, similarity });
    }
    let id = with_vector_or_without(vector, |v| store.memory().add_memory(mem, v))?;
    Ok(Remembered::New(id))
}

/// Writes with the vector; when its dimension is not the store's (the embedding model
/// changed and the re-embedding job has not caught up), writes without it instead, and
/// the job fills it in: a text is never lost for its vector.
pub fn with_vector_or_without(
    vector: Option<&[f32]>,
    write: impl Fn(Option<&[f32]>) -> Result<u64, MemoryError>,
) -> Result<u64, MemoryError> {
    match write(vector) {
        Err(MemoryError::Dimension { got, expected }) => {
            log::info!(
                "memory: an embedding of dimension {got} where the store has {expected}: \
                 stored without it until re-embedding"
            );
            write(None)
        }
        r => r,
    }
}

/// What `record_observation` did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Recorded {
    New(u64),
    /// An observation this similar was stored within the window; merged into it.
    Merged {
        id: u64,
        similarity: f32,
    },
}

/// Store an observation unless one at least `threshold` similar was stored at or after
/// `obs.ts - window`; then merge into that one (see `MemoryStore::merge_observation`).
/// Without a vector there is nothing to compare: it is stored.
pub fn record_observation(
    store: &Store,
    obs: &Observation,
    vector: Option<&[f32]>,
    threshold: f32,
    window: Micros,
) -> Result<Recorded, MemoryError> {
    if let Some(v) = vector
        && let Some((id, similarity)) =
            find_similar_observation(store, v, threshold, obs.ts.saturating_sub(window))?
        && store
            .memory()
            .merge_observation(id, obs.ts, obs.confidence, &obs.related_sources)?
    {
        return Ok(Recorded::Merged { id, similarity });
    }
    let id = with_vector_or_without(vector, |v| store.memory().add_observation(obs, v))?;
    Ok(Recorded::New(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::ObservationType;
    use crate::memory::vectors::trigram_vector;
    use crate::store::StoreOptions;
    use crate::store::tests::TempDir;

    const DIM: usize = 384;

    fn opts() -> StoreOptions {
        StoreOptions { map_size: 16 << 20 }
    }

    fn obs(ts: Micros, text: &str) -> Observation {
        Observation {
            id: 0,
            ts,
            text: text.into(),
            kind: ObservationType::Pattern,
            confidence: 0.8,
            related_sources: vec![],
            node: "pi".into(),
        }
    }

    fn mem(fact: &str) -> Memory {
        Memory {
            id: 0,
            fact: fact.into(),
            confidence: 0.5,
            times_confirmed: 1,
            active: true,
            first_seen: 1,
            last_seen: 1,
            node: "pi".into(),
        }
    }

    const TEXTS: [&str; 6] = [
        "The garage door was opened late at night",
        "CPU temperature rose above 70 degrees during the nightly backup",
        "Kitchen humidity stays between 40 and 45 percent",
        "Motion sensor in the hallway triggers every morning at 7",
        "The fridge compressor cycles every 40 minutes",
        "Network latency spikes when the backup runs",
    ];

    fn filled(tag: &str) -> (TempDir, Store) {
        let dir = TempDir::new(tag);
        let store = Store::open(&dir.0, &opts()).unwrap();
        let ms = store.memory();
        for (i, t) in TEXTS.iter().enumerate() {
            ms.add_observation(&obs(i as i64 * 10, t), Some(&trigram_vector(t, DIM)))
                .unwrap();
            ms.add_memory(&mem(t), Some(&trigram_vector(t, DIM)))
                .unwrap();
        }
        (dir, store)
    }

    #[test]
    fn items_without_a_vector_are_found_by_their_words_beside_vectors() {
        // Another node's items arrive without vectors; the store has vectors of its own.
        let (_dir, store) = filled("recall-unvectored");
        let ms = store.memory();
        let text = "The greenhouse sprinkler ran twice before dawn";
        ms.add_observation(&obs(100, text), None).unwrap();
        ms.add_memory(&mem(text), None).unwrap();
        let q = "greenhouse sprinkler";
        let (r, mode) = recall_with_mode(&store, Some(&trigram_vector(q, DIM)), q, 3).unwrap();
        assert_eq!(mode, RecallMode::Vector);
        assert!(r.observations.len() <= 3 && r.memories.len() <= 3);
        assert!(r.observations.iter().any(|(o, _)| o.text == text), "{r:?}");
        assert!(r.memories.iter().any(|(m, _)| m.fact == text), "{r:?}");
        let rel: Vec<f32> = r.observations.iter().map(|(_, s)| *s).collect();
        assert!(rel.windows(2).all(|w| w[0] >= w[1]), "best first: {rel:?}");
    }

    #[test]
    fn recall_ranks_the_similar_text_first() {
        let (_dir, store) = filled("recall-vec");
        let q = "cpu temperature during backup";
        let (r, mode) = recall_with_mode(&store, Some(&trigram_vector(q, DIM)), q, 3).unwrap();
        assert_eq!(mode, RecallMode::Vector);
        assert_eq!(r.observations.len(), 3);
        assert_eq!(r.observations[0].0.text, TEXTS[1], "{r:?}");
        assert_eq!(r.memories[0].0.fact, TEXTS[1], "{r:?}");
        assert!(r.observations[0].1 > r.observations[1].1);
        for (_, s) in &r.observations {
            assert!((0.0..=1.0).contains(s));
        }
        // Inactive memories are not recalled.
        let ms = store.memory();
        ms.deactivate_memory(r.memories[0].0.id).unwrap();
        let r2 = recall(&store, Some(&trigram_vector(q, DIM)), q, 10).unwrap();
        assert_eq!(r2.memories.len(), TEXTS.len() - 1);
        assert!(r2.memories.iter().all(|(m, _)| m.fact != TEXTS[1]));
        assert_eq!(r2.observations.len(), TEXTS.len());
    }

    #[test]
    fn without_a_usable_vector_bm25_answers() {
        let (_dir, store) = filled("recall-bm25");
        let q = "when does the fridge compressor run?";
        let (r, mode) = recall_with_mode(&store, None, q, 2).unwrap();
        assert_eq!(mode, RecallMode::Lexical);
        assert_eq!(r.observations[0].0.text, TEXTS[4], "{r:?}");
        assert_eq!(r.memories[0].0.fact, TEXTS[4], "{r:?}");
        assert!(r.observations[0].1 > 0.0 && r.observations[0].1 <= 1.0);
        // A query vector of another dimension falls back too, not an error.
        let (r, mode) = recall_with_mode(&store, Some(&[1.0; 7]), q, 2).unwrap();
        assert_eq!(mode, RecallMode::Lexical);
        assert_eq!(r.observations[0].0.text, TEXTS[4]);
        // An empty store answers, empty.
        let dir = TempDir::new("recall-empty");
        let empty = Store::open(&dir.0, &opts()).unwrap();
        assert_eq!(
            recall(&empty, Some(&[1.0; 4]), q, 5).unwrap(),
            RecallResult::default()
        );
    }

    #[test]
    fn similar_memories_reinforce_instead_of_duplicating() {
        let (_dir, store) = filled("recall-similar");
        let fact = "The fridge compressor cycles every 40 minutes!";
        let v = trigram_vector(fact, DIM);
        let (id, s) = find_similar_memory(&store, &v, 0.9).unwrap().unwrap();
        assert_eq!(id, 5);
        assert!((0.9..=1.0).contains(&s), "{s}");
        assert_eq!(
            find_similar_memory(&store, &trigram_vector("zebra crossing", DIM), 0.9).unwrap(),
            None
        );
        let r = remember(&store, &mem(fact), Some(&v), 0.9, 0.1).unwrap();
        assert!(matches!(r, Remembered::Reinforced { id: 5, .. }), "{r:?}");
        let m = store.memory().get_memory(5).unwrap().unwrap();
        assert_eq!(m.times_confirmed, 2);
        // Deactivated: no longer a match, a new memory is stored.
        store.memory().deactivate_memory(5).unwrap();
        assert_eq!(find_similar_memory(&store, &v, 0.9).unwrap(), None);
        let r = remember(&store, &mem(fact), Some(&v), 0.9, 0.1).unwrap();
        assert_eq!(r, Remembered::New(7));
        // Another dimension: no match (and no error).
        assert_eq!(find_similar_memory(&store, &[1.0; 3], 0.0).unwrap(), None);
    }

    #[test]
    fn similar_observations_only_within_the_window() {
        let (_dir, store) = filled("recall-obs");
        let v = trigram_vector(
            "Motion sensor in the hallway triggers every morning at 7.",
            DIM,
        );
        // TEXTS[3] is observation 4 at ts 30.
        let (id, _) = find_similar_observation(&store, &v, 0.9, 30)
            .unwrap()
            .unwrap();
        assert_eq!(id, 4);
        assert_eq!(find_similar_observation(&store, &v, 0.9, 31).unwrap(), None);
    }

    /// Reinforcement and merging happen at the threshold and not below it: the threshold
    /// is set to exactly the similarity the store computes, then just above it.
    #[test]
    fn reinforce_and_merge_at_the_threshold_not_below() {
        let (_dir, store) = filled("recall-threshold");
        let fact = "The fridge compressor cycles every 45 minutes";
        let v = trigram_vector(fact, DIM);
        let (id, s) = find_similar_memory(&store, &v, 0.0).unwrap().unwrap();
        assert_eq!(id, 5, "the fridge memory is the closest");
        assert!(s > 0.5 && s < 1.0, "{s}");
        let above = f32::from_bits(s.to_bits() + 1);
        let r = remember(&store, &mem(fact), Some(&v), above, 0.1).unwrap();
        assert_eq!(
            r,
            Remembered::New(7),
            "just above the similarity: a new memory"
        );
        store.memory().deactivate_memory(7).unwrap();
        let r = remember(&store, &mem(fact), Some(&v), s, 0.1).unwrap();
        assert!(
            matches!(r, Remembered::Reinforced { id: 5, .. }),
            "at it: {r:?}"
        );
        assert_eq!(
            store
                .memory()
                .get_memory(5)
                .unwrap()
                .unwrap()
                .times_confirmed,
            2
        );

        let text = "The fridge compressor cycles every 45 minutes";
        let v = trigram_vector(text, DIM);
        let (id, s) = find_similar_observation(&store, &v, 0.0, 0)
            .unwrap()
            .unwrap();
        assert_eq!(id, 5);
        let mut o = obs(100, text);
        o.related_sources = vec!["gpio:fridge".into()];
        o.confidence = 0.95;
        let above = f32::from_bits(s.to_bits() + 1);
        let r = record_observation(&store, &o, Some(&v), above, 1_000).unwrap();
        assert_eq!(r, Recorded::New(7), "just above: stored");
        store.memory().delete_observations(&[7]).unwrap();
        // At the threshold but outside the window (observation 5 is at ts 40): stored.
        let r = record_observation(&store, &o, Some(&v), s, 59).unwrap();
        assert_eq!(r, Recorded::New(8));
        store.memory().delete_observations(&[8]).unwrap();
        // At the threshold, inside the window: merged into 5.
        let r = record_observation(&store, &o, Some(&v), s, 60).unwrap();
        assert!(matches!(r, Recorded::Merged { id: 5, .. }), "{r:?}");
        let merged = store.memory().get_observation(5).unwrap().unwrap();
        assert_eq!(merged.text, TEXTS[4], "the first wording stays");
        assert_eq!(merged.ts, 100, "seen again now");
        assert_eq!(merged.confidence, 0.95, "the higher confidence");
        assert_eq!(merged.related_sources, vec!["gpio:fridge".to_string()]);
        assert_eq!(store.memory().memory_counts().unwrap().observations, 6);
    }

    /// A vector of another dimension (the model changed, re-embedding not done yet) does
    /// not lose the text: it is stored without a vector.
    #[test]
    fn a_vector_of_another_dimension_stores_the_text_without_it() {
        let (_dir, store) = filled("recall-dim");
        let r =
            record_observation(&store, &obs(100, "new text"), Some(&[0.5; 8]), 0.9, 10).unwrap();
        assert_eq!(r, Recorded::New(7));
        let r = remember(&store, &mem("new fact"), Some(&[0.5; 8]), 0.9, 0.1).unwrap();
        assert_eq!(r, Remembered::New(7));
        let missing = store.memory().vectors_missing().unwrap();
        assert_eq!((missing.observations, missing.memories), (vec![7], vec![7]));
        assert_eq!(store.memory().dimension().unwrap(), Some(DIM));
    }
}
