//! The memory work of the `llm` thread, beside answering questions: the observation
//! cycle, compaction when the board runs short of memory, and the re-embedding job.
//! `worker.rs` decides when each runs; this file is what they do.

use std::sync::atomic::Ordering;

use serde_json::json;

use super::worker::Agent;
use crate::clock::{iso8601, now_us};
use crate::edges::llm::Message;
use crate::graph::Micros;
use crate::memory::observe::{
    SourceStats, answer_schema, build_prompt, compaction_prompt, parse_answer,
};
use crate::memory::recall::{self, Recorded};
use crate::memory::reembed::{self, Reembed, ReembedError};
use crate::memory::{Memory, Observation, ObservationType};
use crate::messages::Publish;

/// Minutes of history each observation looks at.
const LOOKBACK_MIN: u32 = 60;
/// Past observations recalled into the prompt.
const PAST: usize = 5;
/// Compaction needs at least this many observations (as the original).
const COMPACT_MIN: usize = 5;
/// Confidence of a compaction summary (as the original).
const SUMMARY_CONFIDENCE: f32 = 0.9;
/// After a failed embedding request, the job waits this long before trying again.
const REEMBED_RETRY: Micros = 60_000_000;

/// One observation cycle: current values, statistics over the lookback window (not raw
/// rows: small boards have small context windows) and the past observations most
/// relevant to the sources now reporting; the model answers in the structured shape;
/// observations are stored (a near-duplicate merges), memories reinforced or added, new
/// observations published on `<prefix>/observations`, and old ones aged off.
pub fn observe(a: &Agent) {
    let ctx = &a.ctx;
    let now = now_us();
    let from = now - i64::from(LOOKBACK_MIN) * 60_000_000;
    let mut current = Vec::new();
    let mut history = Vec::new();
    for info in ctx.registry.all() {
        let Some((_, v)) = info.live.last() else {
            continue;
        };
        current.push((info.name.to_string(), v, info.unit.to_string()));
        let rows = ctx
            .store
            .history(info.id, from, now + 1, 100_000)
            .unwrap_or_default();
        let nums: Vec<f64> = rows.iter().filter_map(|r| r.value.as_f64()).collect();
        history.push(SourceStats {
            id: info.name.to_string(),
            unit: info.unit.to_string(),
            count: rows.len() as u64,
            min: nums.iter().copied().reduce(f64::min),
            max: nums.iter().copied().reduce(f64::max),
            mean: (!nums.is_empty()).then(|| nums.iter().sum::<f64>() / nums.len() as f64),
        });
    }
    if current.is_empty() {
        return; // nothing to look at (as the original: no readings, no LLM call)
    }
    // As the original: the query is the ids of the sources reporting now.
    let query = current
        .iter()
        .map(|(id, _, _)| id.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let past: Vec<Observation> =
        recall::recall(&ctx.store, ctx.embed(&query).as_deref(), &query, PAST)
            .map(|r| r.observations.into_iter().map(|(o, _)| o).collect())
            .unwrap_or_default();
    let prompt = build_prompt(LOOKBACK_MIN, &current, &history, &past);
    let Some(content) = ask(a, &prompt, Some(&answer_schema()), "observation") else {
        return;
    };
    let parsed = parse_answer(&content);
    let node = ctx.settings.node.name.clone();
    let m = &ctx.settings.memory;
    let (mut new, mut merged) = (0, 0);
    for o in &parsed.observations {
        let obs = Observation {
            id: 0,
            ts: now_us(),
            text: o.text.clone(),
            kind: o.kind,
            confidence: o.confidence,
            related_sources: o.related_sources.clone(),
            node: node.clone(),
        };
        match ctx.record_observation(&obs) {
            Ok(Recorded::New(id)) => {
                new += 1;
                publish_observation(a, id, &obs);
            }
            Ok(Recorded::Merged { .. }) => merged += 1,
            Err(e) => log::warn!("memory: cannot store an observation: {e}"),
        }
    }
    for nm in &parsed.memories {
        let mem = Memory {
            id: 0,
            fact: nm.fact.clone(),
            confidence: nm.confidence,
            times_confirmed: 1,
            active: true,
            first_seen: now_us(),
            last_seen: now_us(),
            node: node.clone(),
        };
        if let Err(e) = ctx.remember(&mem) {
            log::warn!("memory: cannot store a memory: {e}");
        }
    }
    // Age-off: old observations go (summaries stay), in a bounded batch.
    let cutoff = now_us() - m.observation_max_age;
    let _ = ctx.store.memory().age_off_observations(cutoff, true, 1000);
    log::info!(
        "memory: observation cycle: {new} new observation(s), {merged} merged, {} memory(ies){}",
        parsed.memories.len(),
        if parsed.raw_fallback {
            " (answer was not JSON; kept as text)"
        } else {
            ""
        }
    );
}

/// MemAvailable in MB, from /proc/meminfo; `None` where there is none (never compacts).
fn mem_available_mb() -> Option<u64> {
    let buf = std::fs::read("/proc/meminfo").ok()?;
    crate::sources::system::parse_meminfo(&buf).map(|(_, avail_kb)| avail_kb / 1024)
}

/// Compaction: when MemAvailable is below `[memory] compact_below_mb`, the oldest
/// observations (summaries excepted, at least 5) are summarised by the model into one
/// `summary` observation, which replaces them in one transaction. Returns whether it
/// compacted.
pub fn compact_if_low(a: &Agent) -> bool {
    let ctx = &a.ctx;
    let m = &ctx.settings.memory;
    if m.compact_below_mb == 0 {
        return false;
    }
    let Some(avail) = mem_available_mb() else {
        return false;
    };
    if avail >= m.compact_below_mb {
        return false;
    }
    let old = match ctx
        .store
        .memory()
        .oldest_observations(m.compact_batch as usize)
    {
        Ok(o) if o.len() >= COMPACT_MIN => o,
        Ok(o) => {
            log::debug!(
                "memory: MemAvailable {avail} MB < {} MB, but only {} observation(s) to compact",
                m.compact_below_mb,
                o.len()
            );
            return false;
        }
        Err(e) => {
            log::warn!("memory: compaction cannot read observations: {e}");
            return false;
        }
    };
    let Some(text) = ask(a, &compaction_prompt(&old), None, "compaction") else {
        return false;
    };
    let text = text.trim();
    if text.is_empty() {
        log::warn!("memory: compaction skipped: the model gave an empty summary");
        return false;
    }
    let mut related: Vec<String> = Vec::new();
    for s in old.iter().flat_map(|o| &o.related_sources) {
        if !related.contains(s) {
            related.push(s.clone());
        }
    }
    let summary = Observation {
        id: 0,
        ts: now_us(),
        text: text.to_string(),
        kind: ObservationType::Summary,
        confidence: SUMMARY_CONFIDENCE,
        related_sources: related,
        node: ctx.settings.node.name.clone(),
    };
    let ids: Vec<u64> = old.iter().map(|o| o.id).collect();
    let v = ctx.embed(&summary.text);
    let written = recall::with_vector_or_without(v.as_deref(), |v| {
        ctx.store.memory().replace_with_summary(&ids, &summary, v)
    });
    match written {
        Ok(id) => {
            log::info!(
                "memory: MemAvailable {avail} MB < {} MB: compacted {} observation(s) into summary {id}",
                m.compact_below_mb,
                ids.len()
            );
            publish_observation(a, id, &summary);
            true
        }
        Err(e) => {
            log::warn!("memory: compaction could not write its summary: {e}");
            false
        }
    }
}

/// One plain model call (no tools) for the memory work; `None` (logged, counted in the
/// LLM status) when it failed.
fn ask(a: &Agent, prompt: &str, format: Option<&serde_json::Value>, what: &str) -> Option<String> {
    let messages = [
        Message::system(&a.ctx.settings.agent.system_prompt),
        Message::user(prompt),
    ];
    let started = std::time::Instant::now();
    match a.llm.chat(&messages, &json!([]), format) {
        Ok(r) => {
            a.stats.calls.fetch_add(1, Ordering::Relaxed);
            a.stats
                .call_us
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            Some(r.content)
        }
        Err(e) => {
            a.stats.set_error(&e.to_string());
            log::warn!("memory: {what} skipped: {e}");
            None
        }
    }
}

/// Publishes a new observation on `<state prefix>/observations` (QoS 1), when MQTT is on.
fn publish_observation(a: &Agent, id: u64, obs: &Observation) {
    let Some(p) = &a.publish else {
        return;
    };
    let body = json!({
        "id": id,
        "node": obs.node,
        "text": obs.text,
        "type": obs.kind.as_str(),
        "confidence": obs.confidence,
        "related_sources": obs.related_sources,
        "timestamp": iso8601(obs.ts),
    });
    let _ = p.try_send(Publish {
        topic: format!("{}/observations", a.ctx.settings.mqtt_state_prefix()),
        payload: body.to_string().into_bytes(),
        qos: 1,
        retain: false,
    });
}

/// The background re-embedding job: vectors missing (texts stored while Ollama was away,
/// imports) or stale (the embedding model changed), a batch per turn of the worker loop.
#[derive(Default)]
pub struct ReembedJob {
    job: Option<Reembed>,
    /// Not before this time (after a failed request).
    not_before: Micros,
}

impl ReembedJob {
    /// Looks for work (records the model; deletes every vector if it changed).
    pub fn plan(&mut self, a: &Agent) {
        if self.job.is_some() || a.ctx.embedder.is_none() {
            return;
        }
        match Reembed::plan(&a.ctx.store, &a.ctx.settings.memory.embedding_model) {
            Ok(Some(j)) => {
                log::info!(
                    "memory: embedding {} item(s) without a vector in the background",
                    j.remaining()
                );
                self.job = Some(j);
            }
            Ok(None) => {}
            Err(e) => log::warn!("memory: cannot plan re-embedding: {e}"),
        }
    }

    /// When the next batch may run, if there is work.
    pub fn due(&self) -> Option<Micros> {
        self.job.as_ref().map(|_| self.not_before)
    }

    /// One batch.
    pub fn step(&mut self, a: &Agent) {
        let (Some(job), Some(embedder)) = (self.job.as_mut(), a.ctx.embedder.as_ref()) else {
            self.job = None;
            return;
        };
        let embed = |t: &[&str]| embedder.embed(t).map_err(|e| e.to_string());
        match job.step(&a.ctx.store, &embed, reembed::BATCH) {
            Ok(true) => {}
            Ok(false) => {
                log::info!("memory: re-embedding done: {} vector(s)", job.done);
                self.job = None;
            }
            Err(ReembedError::Embed(e)) => {
                log::debug!(
                    "memory: re-embedding waits ({e}); {} item(s) left",
                    job.remaining()
                );
                self.not_before = now_us() + REEMBED_RETRY;
            }
            Err(e) => {
                log::warn!("memory: re-embedding stopped: {e}");
                self.job = None;
            }
        }
    }
}
