//! `smollama memory export|import|recall`: move observations and memories between
//! stores as JSON lines, and search them from a shell.

use std::io::Write;
use std::path::Path;

use super::jsonl::{self, Item, Line};
use super::recall;
use super::reembed::{self, Reembed};
use super::{Memory, Observation};
use crate::agent::tools::ToolContext;

/// Every observation and memory (active or not) as JSON lines, oldest first.
pub fn export(ctx: &ToolContext, out: &mut dyn Write) -> Result<(u64, u64), String> {
    let ms = ctx.store.memory();
    let mut obs = ms
        .observations(i64::MIN, None, usize::MAX)
        .map_err(|e| e.to_string())?;
    obs.reverse();
    let mut mems = ms.memories(false, usize::MAX).map_err(|e| e.to_string())?;
    mems.reverse();
    for o in &obs {
        writeln!(out, "{}", jsonl::observation_line(o)).map_err(|e| e.to_string())?;
    }
    for m in &mems {
        writeln!(out, "{}", jsonl::memory_line(m)).map_err(|e| e.to_string())?;
    }
    Ok((obs.len() as u64, mems.len() as u64))
}

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub observations: u64,
    pub memories: u64,
    pub duplicates: u64,
    /// (1-based line, reason) of every line that could not be read; those are skipped.
    pub bad_lines: Vec<(usize, String)>,
    /// Items given a vector now; the rest are embedded later by the agent.
    pub embedded: u64,
}

/// Read JSON lines back: malformed lines are reported by number and skipped; items
/// already present (same text and time, or same fact; a line without a time is the same
/// as any item with its text) are skipped as duplicates. Every
/// new item is stored in one transaction, then embedded in batches when the embedding
/// model answers (if it does not, the running agent fills the vectors in later).
pub fn import(ctx: &ToolContext, path: &Path) -> Result<Imported, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (items, bad) = jsonl::parse_lines(&text, crate::clock::now_us());
    let ms = ctx.store.memory();
    let have_obs: Vec<Observation> = ms
        .observations(i64::MIN, None, usize::MAX)
        .map_err(|e| e.to_string())?;
    let have_mem: Vec<Memory> = ms.memories(false, usize::MAX).map_err(|e| e.to_string())?;
    let mut out = Imported {
        bad_lines: bad,
        ..Imported::default()
    };
    let mut new_obs: Vec<Observation> = Vec::new();
    let mut new_mem: Vec<Memory> = Vec::new();
    for Line { item, dated } in items {
        let dup = match &item {
            Item::Observation(o) => have_obs
                .iter()
                .chain(&new_obs)
                .any(|h| h.text == o.text && (h.ts == o.ts || !dated)),
            Item::Memory(m) => have_mem.iter().chain(&new_mem).any(|h| h.fact == m.fact),
        };
        match item {
            _ if dup => out.duplicates += 1,
            Item::Observation(o) => new_obs.push(o),
            Item::Memory(m) => new_mem.push(m),
        }
    }
    // Imported items are this node's entries in the replicated log, as if learned here.
    if ctx.settings.sync.enabled {
        ctx.store.set_sync_node(&ctx.settings.node.name);
    }
    (out.observations, out.memories) = ms.add_all(&new_obs, &new_mem).map_err(|e| e.to_string())?;
    if out.observations + out.memories > 0 {
        match reembed(ctx, false) {
            Ok(n) => out.embedded = n,
            Err(e) => log::warn!("memory import: not embedded now ({e}); the agent will do it"),
        }
    }
    Ok(out)
}

/// Give every item that lacks one a vector from `[memory] embedding_model` (with
/// `everything`, redo all vectors first), in batches. Returns how many were embedded.
pub fn reembed(ctx: &ToolContext, everything: bool) -> Result<u64, String> {
    let Some(embedder) = ctx.embedder.as_ref() else {
        return Err("no embedding model configured".into());
    };
    let model = &ctx.settings.memory.embedding_model;
    let job = if everything {
        Reembed::everything(&ctx.store, model)
    } else {
        Reembed::plan(&ctx.store, model)
    };
    let Some(mut job) = job.map_err(|e| e.to_string())? else {
        return Ok(0);
    };
    let embed = |t: &[&str]| embedder.embed(t).map_err(|e| e.to_string());
    while job
        .step(&ctx.store, &embed, reembed::BATCH)
        .map_err(|e| format!("{e} ({} done, {} left)", job.done, job.remaining()))?
    {}
    Ok(job.done)
}

/// Ranked results as text lines.
pub fn recall_text(ctx: &ToolContext, query: &str, limit: usize) -> Result<String, String> {
    let v = ctx.embed(query);
    let (found, mode) = recall::recall_with_mode(&ctx.store, v.as_deref(), query, limit)
        .map_err(|e| e.to_string())?;
    let mut s = format!("recall '{query}' (by {mode:?}):\n");
    for (o, r) in &found.observations {
        s.push_str(&format!(
            "  {r:.2}  [{}] {}  ({})\n",
            o.kind.as_str(),
            o.text,
            crate::clock::iso8601(o.ts)
        ));
    }
    for (m, r) in &found.memories {
        s.push_str(&format!(
            "  {r:.2}  memory: {}  (confirmed {}×)\n",
            m.fact, m.times_confirmed
        ));
    }
    if found.observations.is_empty() && found.memories.is_empty() {
        s.push_str("  nothing found\n");
    }
    Ok(s)
}
