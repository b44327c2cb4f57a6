//! `[memory]`: recall by meaning, the observation loop and compaction.

use super::key::{Key, Section, duration, number, problem_hint, quoted};
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::graph::Micros;

#[derive(Clone, Debug, PartialEq)]
pub struct MemorySettings {
    /// The Ollama embedding model (on the [ollama] server). Without embeddings, recall
    /// falls back to word matching (BM25), so it always answers.
    pub embedding_model: String,
    /// A new memory at least this similar to an active one reinforces it instead.
    pub reinforce_similarity: f64,
    /// The observation loop: the LLM looks at what the sensors did and writes
    /// observations, sooner (`observe_min`) while a source is volatile, rarely
    /// (`observe_max`) when all is calm.
    pub observe: bool,
    pub observe_min: Micros,
    pub observe_max: Micros,
    /// Observations older than this are deleted (summaries kept).
    pub observation_max_age: Micros,
    /// A new observation at least this similar to one stored within `merge_window`
    /// merges into it (newer time, higher confidence) instead of being stored twice.
    pub merge_similarity: f64,
    pub merge_window: Micros,
    /// Compaction: when MemAvailable falls below this many MB, the `compact_batch`
    /// oldest observations (not summaries; at least 5) are summarised by the LLM into one
    /// `summary` observation and removed. 0 turns it off.
    pub compact_below_mb: u64,
    pub compact_batch: u32,
}

pub(crate) const SECTION: Section = Section {
    name: "memory",
    doc: "",
    keys: &[
        Key::new(
            Spec {
                default: "\"all-minilm:l6-v2\"",
                doc: "The Ollama embedding model (on the [ollama] server) used to recall by meaning. When it is missing or Ollama is away, recall matches words instead (BM25): it always answers.",
                ..Spec::new("embedding_model", Want::Text)
            },
            |s, v, _| {
                let v = v.text()?;
                if v.trim().is_empty() {
                    return Err(problem_hint(
                        "embedding_model is empty",
                        "e.g. \"all-minilm:l6-v2\"",
                    ));
                }
                s.memory.embedding_model = v.trim().to_string();
                Ok(())
            },
            |s| quoted(&s.memory.embedding_model),
        ),
        Key::new(
            Spec {
                range: Some((0.0, 1.0)),
                default: "0.9",
                doc: "A new memory at least this similar (cosine) to an active one reinforces it instead of being stored twice.",
                hint: "the original reinforced above 0.9",
                ..Spec::new("reinforce_similarity", Want::Number)
            },
            |s, v, _| {
                s.memory.reinforce_similarity = v.num()?;
                Ok(())
            },
            |s| number(s.memory.reinforce_similarity),
        ),
        Key::new(
            Spec {
                default: "true",
                doc: "The observation loop: the LLM looks at what the sensors did (statistics, not raw rows) and writes observations and memories. It looks after observe_min while a source is volatile (the pipeline's observer sink carries the adaptive stage's events), and after observe_max when all is calm.",
                ..Spec::new("observe", Want::Bool)
            },
            |s, v, _| {
                s.memory.observe = v.bool()?;
                Ok(())
            },
            |s| number(s.memory.observe),
        ),
        Key::new(
            Spec {
                range: Some((0.1, 86_400.0)),
                default: "\"5m\"",
                doc: "The next look while a source is volatile.",
                ..Spec::new("observe_min", Want::Duration)
            },
            |s, v, _| {
                s.memory.observe_min = v.dur()?;
                Ok(())
            },
            |s| duration(s.memory.observe_min),
        ),
        Key::new(
            Spec {
                range: Some((0.1, 7.0 * 86_400.0)),
                default: "\"1h\"",
                doc: "The next look when all is calm.",
                ..Spec::new("observe_max", Want::Duration)
            },
            |s, v, _| {
                s.memory.observe_max = v.dur()?;
                Ok(())
            },
            |s| duration(s.memory.observe_max),
        ),
        Key::new(
            Spec {
                range: Some((60.0, 3650.0 * 86_400.0)),
                default: "\"3d\"",
                doc: "Observations older than this are deleted; summaries are kept.",
                ..Spec::new("observation_max_age", Want::Duration)
            },
            |s, v, _| {
                s.memory.observation_max_age = v.dur()?;
                Ok(())
            },
            |s| duration(s.memory.observation_max_age),
        ),
        Key::new(
            Spec {
                range: Some((0.0, 1.0)),
                default: "0.95",
                doc: "A new observation at least this similar to one stored within merge_window merges into it (newer time, higher confidence, sources joined) instead of being stored twice.",
                hint: "e.g. 0.95",
                ..Spec::new("merge_similarity", Want::Number)
            },
            |s, v, _| {
                s.memory.merge_similarity = v.num()?;
                Ok(())
            },
            |s| number(s.memory.merge_similarity),
        ),
        Key::new(
            Spec {
                range: Some((0.0, 30.0 * 86_400.0)),
                default: "\"1h\"",
                doc: "How far back merge_similarity looks.",
                ..Spec::new("merge_window", Want::Duration)
            },
            |s, v, _| {
                s.memory.merge_window = v.dur()?;
                Ok(())
            },
            |s| duration(s.memory.merge_window),
        ),
        Key::new(
            Spec {
                range: Some((0.0, 1_073_741_824.0)),
                default: "200",
                doc: "Compaction: when MemAvailable falls below this many MB, the compact_batch oldest observations (summaries excepted; at least 5) are summarised by the LLM into one \"summary\" observation and removed. 0: never. Memories are never compacted.",
                hint: "e.g. 200, or 0 for never",
                ..Spec::new("compact_below_mb", Want::WholeNumber)
            },
            |s, v, _| {
                s.memory.compact_below_mb = v.int()? as u64;
                Ok(())
            },
            |s| number(s.memory.compact_below_mb),
        ),
        Key::new(
            Spec {
                range: Some((5.0, 10_000.0)),
                default: "20",
                doc: "Observations summarised into one by a compaction.",
                hint: "e.g. 20",
                ..Spec::new("compact_batch", Want::WholeNumber)
            },
            |s, v, _| {
                s.memory.compact_batch = v.int()? as u32;
                Ok(())
            },
            |s| number(s.memory.compact_batch),
        ),
    ],
};
