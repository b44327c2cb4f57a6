//! `recall`, `remember`, `observe`: the model's memory, with the original's parameters
//! and result shapes. Texts are embedded through Ollama when it answers; without an
//! embedding, recall matches words (BM25) and the vector can be filled in later.

use serde_json::{Value as Json, json};

use super::schema::{args_obj, int_arg, num_arg, str_arg};
use super::{Tool, ToolContext};
use crate::clock::{iso8601, now_us};
use crate::memory::recall::{self, Remembered};
use crate::memory::{Memory, Observation, ObservationType};

const DEFAULT_CONFIDENCE: f64 = 0.8;

fn round2(x: f32) -> f64 {
    (f64::from(x) * 100.0).round() / 100.0
}

fn confidence(args: &serde_json::Map<String, Json>) -> f32 {
    num_arg(args, "confidence")
        .unwrap_or(DEFAULT_CONFIDENCE)
        .clamp(0.0, 1.0) as f32
}

pub struct Recall;

impl Tool for Recall {
    fn name(&self) -> &'static str {
        "recall"
    }

    fn description(&self) -> &'static str {
        "Search past observations and remembered facts by meaning; returns the most relevant of each."
    }

    fn parameters(&self) -> Json {
        json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for"},
                "limit": {"type": "integer", "description": "Results per kind (default 5)"},
            },
            "required": ["query"],
        })
    }

    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let args = args_obj(args);
        let query = str_arg(&args, "query").unwrap_or("");
        let limit = int_arg(&args, "limit").unwrap_or(5).clamp(1, 50) as usize;
        let vector = ctx.embed(query);
        let found = recall::recall(&ctx.store, vector.as_deref(), query, limit)
            .map_err(|e| format!("recall failed: {e}"))?;
        let observations: Vec<Json> = found
            .observations
            .iter()
            .map(|(o, r)| {
                json!({
                    "text": o.text,
                    "timestamp": iso8601(o.ts),
                    "type": o.kind.as_str(),
                    "confidence": round2(o.confidence),
                    "relevance": round2(*r),
                    "node": o.node,
                })
            })
            .collect();
        let memories: Vec<Json> = found
            .memories
            .iter()
            .map(|(m, r)| {
                json!({
                    "fact": m.fact,
                    "confidence": round2(m.confidence),
                    "times_confirmed": m.times_confirmed,
                    "relevance": round2(*r),
                    "node": m.node,
                })
            })
            .collect();
        Ok(json!({
            "query": query,
            "total_results": observations.len() + memories.len(),
            "observations": observations,
            "memories": memories,
        }))
    }
}

pub struct Remember;

impl Tool for Remember {
    fn name(&self) -> &'static str {
        "remember"
    }

    fn description(&self) -> &'static str {
        "Store a durable fact worth keeping (a fact seen again is reinforced, not duplicated)."
    }

    fn parameters(&self) -> Json {
        json!({
            "type": "object",
            "properties": {
                "fact": {"type": "string", "description": "The fact, in one sentence"},
                "confidence": {"type": "number", "description": "0 to 1 (default 0.8)"},
            },
            "required": ["fact"],
        })
    }

    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let args = args_obj(args);
        let fact = str_arg(&args, "fact").unwrap_or("").trim().to_string();
        if fact.is_empty() {
            return Err("fact is empty".into());
        }
        let conf = confidence(&args);
        let now = now_us();
        let mem = Memory {
            id: 0,
            fact: fact.clone(),
            confidence: conf,
            times_confirmed: 1,
            active: true,
            first_seen: now,
            last_seen: now,
            node: ctx.settings.node.name.clone(),
        };
        let outcome = ctx
            .remember(&mem)
            .map_err(|e| format!("could not store the memory: {e}"))?;
        let (id, reinforced) = match outcome {
            Remembered::New(id) => (id, false),
            Remembered::Reinforced { id, .. } => (id, true),
        };
        Ok(json!({
            "status": "stored",
            "memory_id": id,
            "fact": fact,
            "confidence": round2(conf),
            "reinforced": reinforced,
        }))
    }
}

pub struct Observe;

impl Tool for Observe {
    fn name(&self) -> &'static str {
        "observe"
    }

    fn description(&self) -> &'static str {
        "Record an observation about the sensors or the system (a pattern, an anomaly or a status)."
    }

    fn parameters(&self) -> Json {
        json!({
            "type": "object",
            "properties": {
                "observation": {"type": "string", "description": "What was observed"},
                "observation_type": {
                    "type": "string",
                    "enum": ["pattern", "anomaly", "status", "general"],
                    "description": "Kind of observation (default general)",
                },
                "related_sources": {"type": "array", "description": "Source ids it is about, e.g. ['system:cpu_temp']"},
                "confidence": {"type": "number", "description": "0 to 1 (default 0.8)"},
            },
            "required": ["observation"],
        })
    }

    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let args = args_obj(args);
        let text = str_arg(&args, "observation")
            .unwrap_or("")
            .trim()
            .to_string();
        if text.is_empty() {
            return Err("observation is empty".into());
        }
        let kind = match str_arg(&args, "observation_type").map(ObservationType::parse) {
            // Summaries come from compaction only.
            Some(ObservationType::Summary) | None => ObservationType::General,
            Some(k) => k,
        };
        let related: Vec<String> = args
            .get("related_sources")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let conf = confidence(&args);
        let obs = Observation {
            id: 0,
            ts: now_us(),
            text: text.clone(),
            kind,
            confidence: conf,
            related_sources: related.clone(),
            node: ctx.settings.node.name.clone(),
        };
        let outcome = ctx
            .record_observation(&obs)
            .map_err(|e| format!("could not store the observation: {e}"))?;
        let (id, merged) = match outcome {
            recall::Recorded::New(id) => (id, false),
            recall::Recorded::Merged { id, .. } => (id, true),
        };
        Ok(json!({
            "status": "recorded",
            "observation_id": id,
            "merged": merged,
            "observation": text,
            "type": kind.as_str(),
            "confidence": round2(conf),
            "related_sources": related,
        }))
    }
}

pub const RECALL: crate::plugins::Kind = crate::plugins::tool(
    "recall",
    "observations and memories relevant to a query",
    || Box::new(Recall),
);
pub const REMEMBER: crate::plugins::Kind =
    crate::plugins::tool("remember", "store a fact for later", || Box::new(Remember));
pub const OBSERVE: crate::plugins::Kind =
    crate::plugins::tool("observe", "record an observation about the node", || {
        Box::new(Observe)
    });

#[cfg(test)]
mod tests {
    use super::super::registry::ToolRegistry;
    use super::super::testutil::Fixture;
    use serde_json::json;

    #[test]
    fn observe_remember_and_recall_by_words_without_embeddings() {
        let f = Fixture::new("memory-tools");
        let r = ToolRegistry::with_core_tools();
        let o = r.execute(
            "observe",
            &json!({"observation": "CPU temperature climbs every afternoon", "observation_type": "pattern", "related_sources": ["system:cpu_temp"], "confidence": 1.5}),
            &f.ctx,
        );
        assert_eq!(o["status"], "recorded", "{o}");
        assert_eq!(o["type"], "pattern");
        assert_eq!(o["confidence"], 1.0, "clamped");
        assert_eq!(o["related_sources"], json!(["system:cpu_temp"]));
        r.execute(
            "observe",
            &json!({"observation": "The door opened twice at night"}),
            &f.ctx,
        );
        let m = r.execute(
            "remember",
            &json!({"fact": "The fan on pin 22 cools the CPU"}),
            &f.ctx,
        );
        assert_eq!(m["status"], "stored", "{m}");
        assert_eq!(m["confidence"], 0.8);
        assert!(m["memory_id"].as_u64().unwrap() >= 1);

        let found = r.execute("recall", &json!({"query": "cpu temperature"}), &f.ctx);
        assert_eq!(found["query"], "cpu temperature");
        assert_eq!(
            found["observations"][0]["text"], "CPU temperature climbs every afternoon",
            "{found}"
        );
        assert!(found["observations"][0]["relevance"].as_f64().unwrap() > 0.0);
        assert_eq!(
            found["memories"][0]["fact"],
            "The fan on pin 22 cools the CPU"
        );
        assert!(found["total_results"].as_u64().unwrap() >= 2);

        // Errors are shapes for the model, not crashes.
        assert!(r.execute("observe", &json!({"observation": "  "}), &f.ctx)["error"].is_string());
        assert!(r.execute("remember", &json!({}), &f.ctx)["error"].is_string());
        // A model asking for a summary gets a general observation.
        let s = r.execute(
            "observe",
            &json!({"observation": "x y z", "observation_type": "summary"}),
            &f.ctx,
        );
        assert!(s["error"].is_string() || s["type"] == "general", "{s}");
    }
}
