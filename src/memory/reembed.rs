//! Re-embedding: fill in the vectors that are missing, and redo all of them when the
//! embedding model changed.
//!
//! Vectors go missing when a text is stored while Ollama is away, on import (texts are
//! stored first, then embedded in batches), and when the model changes: vectors of two
//! models cannot be compared, so [`Reembed::plan`] deletes them all once it sees another
//! model recorded, and a model that starts answering with another dimension under the
//! same name does the same in [`Reembed::step`]. Until the job is done recall matches
//! words for what lacks a vector (it always answers; nothing is corrupted or refused).
//!
//! The job is a plain queue of ids worked off a batch at a time, so the `llm` thread can
//! interleave it with questions and observation runs; the CLI runs it to the end.

use std::collections::VecDeque;

use super::store::{MemoryError, VectorKind};
use crate::store::Store;

/// Texts per `/api/embed` request.
pub const BATCH: usize = 32;

/// Turns texts into vectors, one per text, in order (the Ollama client in the binary).
pub type EmbedFn<'a> = dyn Fn(&[&str]) -> Result<Vec<Vec<f32>>, String> + 'a;

#[derive(Debug)]
pub enum ReembedError {
    Memory(MemoryError),
    /// The embedding server failed; the job keeps its place and can be retried.
    Embed(String),
}

impl std::fmt::Display for ReembedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReembedError::Memory(e) => e.fmt(f),
            ReembedError::Embed(e) => write!(f, "embedding failed: {e}"),
        }
    }
}

impl From<MemoryError> for ReembedError {
    fn from(e: MemoryError) -> Self {
        ReembedError::Memory(e)
    }
}

/// What is left to embed.
#[derive(Debug)]
pub struct Reembed {
    todo: VecDeque<(VectorKind, u64)>,
    /// Vectors stored so far.
    pub done: u64,
    /// Vectors deleted because the model (or its dimension) changed.
    pub cleared: u64,
}

impl Reembed {
    /// Records `model` as the one the vectors come from (deleting every vector if another
    /// model made them) and lists what has no vector: observations and active memories.
    /// `None` when nothing is missing.
    pub fn plan(store: &Store, model: &str) -> Result<Option<Reembed>, MemoryError> {
        let cleared = store.memory().set_embedding_model(model)?;
        if cleared > 0 {
            log::warn!(
                "memory: the embedding model is now {model}: {cleared} vector(s) of the previous \
                 model deleted and re-embedded in the background (recall matches words meanwhile)"
            );
        }
        let mut job = Reembed::missing(store)?;
        if let Some(j) = job.as_mut() {
            j.cleared = cleared;
        }
        Ok(job)
    }

    /// Everything, whatever is stored now (`smollama memory reembed`).
    pub fn everything(store: &Store, model: &str) -> Result<Option<Reembed>, MemoryError> {
        let ms = store.memory();
        let mut cleared = ms.set_embedding_model(model)?;
        cleared += ms.clear_vectors()?;
        let mut job = Reembed::missing(store)?;
        if let Some(j) = job.as_mut() {
            j.cleared = cleared;
        }
        Ok(job)
    }

    fn missing(store: &Store) -> Result<Option<Reembed>, MemoryError> {
        let m = store.memory().vectors_missing()?;
        let todo: VecDeque<(VectorKind, u64)> = m
            .observations
            .iter()
            .map(|&id| (VectorKind::Observation, id))
            .chain(m.memories.iter().map(|&id| (VectorKind::Memory, id)))
            .collect();
        Ok((!todo.is_empty()).then_some(Reembed {
            todo,
            done: 0,
            cleared: 0,
        }))
    }

    pub fn remaining(&self) -> usize {
        self.todo.len()
    }

    /// Embeds the next `batch` texts and stores their vectors. `Ok(true)` while more
    /// remains. On an embedding error nothing is lost: the same batch is tried next time.
    pub fn step(
        &mut self,
        store: &Store,
        embed: &EmbedFn,
        batch: usize,
    ) -> Result<bool, ReembedError> {
        let ms = store.memory();
        let take = batch.max(1).min(self.todo.len());
        let mut ids = Vec::with_capacity(take);
        let mut texts = Vec::with_capacity(take);
        for &(kind, id) in self.todo.iter().take(take) {
            let text = match kind {
                VectorKind::Observation => ms.get_observation(id)?.map(|o| o.text),
                VectorKind::Memory => ms.get_memory(id)?.map(|m| m.fact),
            };
            // Deleted meanwhile (age-off, compaction): nothing to embed.
            if let Some(t) = text {
                ids.push((kind, id));
                texts.push(t);
            }
        }
        if !texts.is_empty() {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vectors = embed(&refs).map_err(ReembedError::Embed)?;
            if vectors.len() != refs.len() {
                return Err(ReembedError::Embed(format!(
                    "{} vectors for {} texts",
                    vectors.len(),
                    refs.len()
                )));
            }
            let got = vectors[0].len();
            if let Some(d) = ms.dimension()?
                && d != got
            {
                // Same model name, another dimension (re-pulled, or a stale store): the
                // stored vectors are of no use with it; start over with all of them.
                let n = ms.clear_vectors()?;
                log::warn!(
                    "memory: embeddings now have dimension {got}, the stored ones {d}: {n} \
                     vector(s) deleted, re-embedding everything"
                );
                self.cleared += n;
                self.done = 0;
                self.todo = Reembed::missing(store)?.map(|j| j.todo).unwrap_or_default();
                return Ok(!self.todo.is_empty());
            }
            let items: Vec<(VectorKind, u64, &[f32])> = ids
                .iter()
                .zip(&vectors)
                .map(|(&(k, id), v)| (k, id, v.as_slice()))
                .collect();
            self.done += ms.set_vectors(&items)?;
        }
        self.todo.drain(..take);
        Ok(!self.todo.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::recall::{RecallMode, recall_with_mode};
    use crate::memory::vectors::trigram_vector;
    use crate::memory::{Memory, Observation, ObservationType};
    use crate::store::StoreOptions;
    use crate::store::tests::TempDir;

    fn obs(text: &str) -> Observation {
        Observation {
            id: 0,
            ts: 1,
            text: text.into(),
            kind: ObservationType::Pattern,
            confidence: 0.8,
            related_sources: vec![],
            node: "pi".into(),
        }
    }

    fn mem(fact: &str, active: bool) -> Memory {
        Memory {
            id: 0,
            fact: fact.into(),
            confidence: 0.5,
            times_confirmed: 1,
            active,
            first_seen: 1,
            last_seen: 1,
            node: "pi".into(),
        }
    }

    /// A deterministic stand-in for an embedding model of dimension `dim`.
    fn model(dim: usize) -> impl Fn(&[&str]) -> Result<Vec<Vec<f32>>, String> {
        move |texts: &[&str]| Ok(texts.iter().map(|t| trigram_vector(t, dim)).collect())
    }

    const TEXTS: [&str; 5] = [
        "The garage door opened at night",
        "CPU temperature rose during the backup",
        "Kitchen humidity is stable",
        "Hallway motion every morning",
        "Fridge compressor cycles every 40 minutes",
    ];

    #[test]
    fn a_model_change_redoes_every_vector_in_batches() {
        let dir = TempDir::new("reembed-model");
        let store = Store::open(&dir.0, &StoreOptions { map_size: 16 << 20 }).unwrap();
        let ms = store.memory();
        let old = model(384);
        assert!(
            Reembed::plan(&store, "old").unwrap().is_none(),
            "empty store"
        );
        for t in TEXTS {
            ms.add_observation(&obs(t), Some(&old(&[t]).unwrap()[0]))
                .unwrap();
        }
        ms.add_memory(&mem("The fan cools the CPU", true), None)
            .unwrap();
        ms.add_memory(&mem("An old fact", false), None).unwrap();
        // Same model: only the active memory without a vector is missing.
        let job = Reembed::plan(&store, "old").unwrap().unwrap();
        assert_eq!((job.remaining(), job.cleared), (1, 0));

        // Another model of another dimension: everything is redone, two per request.
        let new = model(64);
        let calls = std::cell::Cell::new(0);
        let counting = |t: &[&str]| {
            calls.set(calls.get() + 1);
            assert!(t.len() <= 2);
            new(t)
        };
        let mut job = Reembed::plan(&store, "new").unwrap().unwrap();
        assert_eq!((job.remaining(), job.cleared), (6, 5));
        assert_eq!(
            ms.dimension().unwrap(),
            None,
            "the old dimension is forgotten"
        );
        // Recall in the meantime answers by words.
        let q = "fridge compressor";
        let (r, mode) = recall_with_mode(&store, Some(&new(&[q]).unwrap()[0]), q, 1).unwrap();
        assert_eq!(mode, RecallMode::Lexical);
        assert_eq!(r.observations[0].0.text, TEXTS[4]);
        while job.step(&store, &counting, 2).unwrap() {}
        assert_eq!((job.done, calls.get()), (6, 3));
        assert_eq!(ms.dimension().unwrap(), Some(64));
        assert_eq!(ms.memory_counts().unwrap().vectors, 6);
        let (r, mode) = recall_with_mode(&store, Some(&new(&[q]).unwrap()[0]), q, 1).unwrap();
        assert_eq!(mode, RecallMode::Vector);
        assert_eq!(r.observations[0].0.text, TEXTS[4]);
        assert!(Reembed::plan(&store, "new").unwrap().is_none(), "done");
    }

    #[test]
    fn a_new_dimension_under_the_same_name_starts_over_and_failures_keep_their_place() {
        let dir = TempDir::new("reembed-dim");
        let store = Store::open(&dir.0, &StoreOptions { map_size: 16 << 20 }).unwrap();
        let ms = store.memory();
        let small = model(32);
        for t in &TEXTS[..3] {
            ms.add_observation(&obs(t), Some(&small(&[t]).unwrap()[0]))
                .unwrap();
        }
        for t in &TEXTS[3..] {
            ms.add_observation(&obs(t), None).unwrap();
        }
        let mut job = Reembed::plan(&store, "m").unwrap().unwrap();
        assert_eq!(job.remaining(), 2);
        // The server is away: an error, and the job still has both.
        let down = |_: &[&str]| -> Result<Vec<Vec<f32>>, String> { Err("refused".into()) };
        assert!(matches!(
            job.step(&store, &down, 8),
            Err(ReembedError::Embed(_))
        ));
        assert_eq!(job.remaining(), 2);
        // Back, with a bigger dimension: the 3 old vectors go, all 5 are redone.
        let big = model(96);
        while job.step(&store, &big, 8).unwrap() {}
        assert_eq!(job.cleared, 3);
        assert_eq!(ms.dimension().unwrap(), Some(96));
        assert_eq!(ms.memory_counts().unwrap().vectors, 5);
    }
}
