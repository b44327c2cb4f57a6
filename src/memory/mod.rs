//! Memory: observations the LLM writes about what the sensors did, long-lived memories
//! (facts), their embedding vectors, and recall by meaning.

pub mod by_node;
pub mod cli;
pub mod jsonl;
pub mod lexical;
pub mod observe;
pub mod recall;
pub mod reembed;
pub mod replica;
pub mod schedule;
pub mod store;
pub mod vectors;

use crate::graph::Micros;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObservationType {
    Pattern,
    Anomaly,
    Status,
    Summary,
    General,
}

impl ObservationType {
    pub const ALL: [ObservationType; 5] = [
        ObservationType::Pattern,
        ObservationType::Anomaly,
        ObservationType::Status,
        ObservationType::Summary,
        ObservationType::General,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObservationType::Pattern => "pattern",
            ObservationType::Anomaly => "anomaly",
            ObservationType::Status => "status",
            ObservationType::Summary => "summary",
            ObservationType::General => "general",
        }
    }

    /// Unknown names are `general`, as the original stored them.
    pub fn parse(s: &str) -> ObservationType {
        ObservationType::ALL
            .into_iter()
            .find(|t| t.as_str() == s.trim().to_ascii_lowercase())
            .unwrap_or(ObservationType::General)
    }
}

/// Something the LLM noticed (a pattern, an anomaly, a status; or a summary of older
/// observations after compaction). Observations age off; summaries are kept longer.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub id: u64,
    pub ts: Micros,
    pub text: String,
    pub kind: ObservationType,
    pub confidence: f32,
    pub related_sources: Vec<String>,
    pub node: String,
}

/// A durable fact. Reinforced when seen again, deactivated, never aged off.
#[derive(Clone, Debug, PartialEq)]
pub struct Memory {
    pub id: u64,
    pub fact: String,
    pub confidence: f32,
    pub times_confirmed: u32,
    pub active: bool,
    pub first_seen: Micros,
    pub last_seen: Micros,
    pub node: String,
}
