//! `smollama memory export|import|recall`: move observations and memories between
//! stores as JSON lines, and search them from a shell.

use std::io::Write;
use std::path::Path;

use super::jsonl::{self, Item};
use super::recall;
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
}

/// Read JSON lines back: malformed lines are reported by number and skipped; items
/// already present (same text and time, or same fact) are skipped as duplicates; each
/// new item is embedded when an embedder answers. Observations go in one transaction.
pub fn import(ctx: &ToolContext, path: &Path) -> Result<Imported, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (items, bad) = jsonl::parse_lines(&text);
    let ms = ctx.store.memory();
    let have_obs: Vec<Observation> = ms
        .observations(i64::MIN, None, usize::MAX)
        .map_err(|e| e.to_string())?;
    let have_mem: Vec<Memory> = ms.memories(false, usize::MAX).map_err(|e| e.to_string())?;
    let mut out = Imported {
        bad_lines: bad,
        ..Imported::default()
    };
    let mut new_obs: Vec<(Observation, Option<Vec<f32>>)> = Vec::new();
    for item in items {
        match item {
            Item::Observation(o) => {
                let dup = have_obs.iter().any(|h| h.text == o.text && h.ts == o.ts)
                    || new_obs
                        .iter()
                        .any(|(n, _)| n.text == o.text && n.ts == o.ts);
                if dup {
                    out.duplicates += 1;
                } else {
                    let v = ctx.embed(&o.text);
                    new_obs.push((o, v));
                }
            }
            Item::Memory(m) => {
                if have_mem.iter().any(|h| h.fact == m.fact) {
                    out.duplicates += 1;
                    continue;
                }
                let v = ctx.embed(&m.fact);
                ms.add_memory(&m, v.as_deref()).map_err(|e| e.to_string())?;
                out.memories += 1;
            }
        }
    }
    let batch: Vec<(&Observation, Option<&[f32]>)> =
        new_obs.iter().map(|(o, v)| (o, v.as_deref())).collect();
    out.observations = ms
        .add_observations(&batch)
        .map_err(|e| e.to_string())?
        .len() as u64;
    Ok(out)
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
