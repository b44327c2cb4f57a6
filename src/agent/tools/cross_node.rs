//! `cross_node_recall`: the Python original's Mem0 tool (smollama-python.md §12), with
//! its parameters and result shape, answered from this node's merged store instead of a
//! Mem0 server: sync already brings every node's observations and memories here, each
//! marked with its node.

use std::collections::BTreeSet;

use serde_json::{Value as Json, json};

use super::schema::{args_obj, int_arg, str_arg};
use super::{Tool, ToolContext};
use crate::clock::iso8601;
use crate::memory::recall;

/// Results when `limit` is not given (the original's).
const DEFAULT_LIMIT: i64 = 10;
const MAX_LIMIT: i64 = 50;
/// Candidates of each kind recalled before a node filter is applied, so a node with few
/// items among many still finds its own (recall is a fixed-size top-k, cheap at this size).
const FILTERED_POOL: usize = 1000;

fn round2(x: f32) -> f64 {
    (f64::from(x) * 100.0).round() / 100.0
}

/// One result in the original's form: `{text, relevance, node, type, confidence, timestamp}`.
struct Found {
    relevance: f32,
    json: Json,
}

/// By meaning where the embedding model answers (recall ranks items still without a
/// vector, as other nodes' arrive, by their words among them), else by words.
fn recall_both(
    ctx: &ToolContext,
    query: &str,
    pool: usize,
) -> Result<recall::RecallResult, crate::memory::store::MemoryError> {
    let v = ctx.embed(query);
    recall::recall(&ctx.store, v.as_deref(), query, pool)
}

pub struct CrossNodeRecall;

impl Tool for CrossNodeRecall {
    fn name(&self) -> &'static str {
        "cross_node_recall"
    }

    fn description(&self) -> &'static str {
        "Search memories and observations across ALL nodes in the network. \
         Use this to find patterns, events, or facts from any connected node. \
         You can optionally filter by specific node or data type."
    }

    fn parameters(&self) -> Json {
        json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to search for (e.g., 'motion detected', 'temperature spike')"},
                "node_filter": {"type": "string", "description": "Filter to a specific node name (e.g., 'alpaca-living-room')"},
                "type_filter": {"type": "string", "enum": ["observations", "memories"], "description": "Filter by data type"},
                "limit": {"type": "integer", "description": "Maximum results to return (default: 10)"},
            },
            "required": ["query"],
        })
    }

    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let args = args_obj(args);
        let query = str_arg(&args, "query").unwrap_or("").trim().to_string();
        let node_filter = str_arg(&args, "node_filter")
            .map(str::trim)
            .filter(|n| !n.is_empty());
        let type_filter = str_arg(&args, "type_filter").filter(|t| !t.is_empty());
        let limit = int_arg(&args, "limit")
            .unwrap_or(DEFAULT_LIMIT)
            .clamp(1, MAX_LIMIT) as usize;
        let failed = |e: String| json!({"error": e, "query": query, "results": []});
        if query.is_empty() {
            return Ok(failed("query is empty".into()));
        }
        let pool = if node_filter.is_some() {
            FILTERED_POOL
        } else {
            limit
        };
        let found = match recall_both(ctx, &query, pool) {
            Ok(f) => f,
            Err(e) => return Ok(failed(format!("recall failed: {e}"))),
        };
        let of_node = |n: &str| node_filter.is_none_or(|f| f == n);
        let mut results: Vec<Found> = Vec::new();
        if type_filter != Some("memories") {
            results.extend(
                found
                    .observations
                    .iter()
                    .filter(|(o, _)| of_node(&o.node))
                    .map(|(o, r)| Found {
                        relevance: *r,
                        json: json!({
                            "text": o.text,
                            "relevance": round2(*r),
                            "node": o.node,
                            "type": o.kind.as_str(),
                            "confidence": round2(o.confidence),
                            "timestamp": iso8601(o.ts),
                        }),
                    }),
            );
        }
        if type_filter != Some("observations") {
            results.extend(found.memories.iter().filter(|(m, _)| of_node(&m.node)).map(
                |(m, r)| Found {
                    relevance: *r,
                    json: json!({
                        "text": m.fact,
                        "relevance": round2(*r),
                        "node": m.node,
                        "type": "memories",
                        "confidence": round2(m.confidence),
                        "timestamp": iso8601(m.first_seen),
                    }),
                },
            ));
        }
        // Best first across both kinds (stable: observations before memories on a tie).
        results.sort_by(|a, b| b.relevance.total_cmp(&a.relevance));
        results.truncate(limit);
        let nodes: BTreeSet<&str> = results
            .iter()
            .filter_map(|r| r.json["node"].as_str())
            .collect();
        Ok(json!({
            "query": query,
            "node_filter": node_filter,
            "type_filter": type_filter,
            "total_results": results.len(),
            "nodes_with_results": nodes,
            "results": results.iter().map(|r| &r.json).collect::<Vec<_>>(),
        }))
    }
}

pub const CROSS_NODE_RECALL: crate::plugins::Kind = crate::plugins::tool(
    "cross_node_recall",
    "observations and memories of every node, by meaning, optionally of one node or kind",
    || Box::new(CrossNodeRecall),
);

#[cfg(test)]
mod tests {
    use super::super::registry::ToolRegistry;
    use super::super::testutil::Fixture;
    use super::*;
    use crate::memory::{Memory, Observation, ObservationType};

    fn fixture() -> Fixture {
        let f = Fixture::new("cross-node");
        let ms = f.store.memory();
        let obs = |node: &str, text: &str, kind| Observation {
            id: 0,
            ts: 1_795_771_723_000_000,
            text: text.into(),
            kind,
            confidence: 0.9,
            related_sources: vec![],
            node: node.into(),
        };
        ms.add_observation(
            &obs(
                "kitchen",
                "Motion detected near the kitchen door",
                ObservationType::Anomaly,
            ),
            None,
        )
        .unwrap();
        ms.add_observation(
            &obs(
                "garage",
                "Motion detected in the garage at night",
                ObservationType::Pattern,
            ),
            None,
        )
        .unwrap();
        ms.add_memory(
            &Memory {
                id: 0,
                fact: "The garage motion sensor is on pin 17".into(),
                confidence: 0.8,
                times_confirmed: 2,
                active: true,
                first_seen: 1_795_771_000_000_000,
                last_seen: 1_795_771_723_000_000,
                node: "garage".into(),
            },
            None,
        )
        .unwrap();
        f
    }

    #[test]
    fn schema_is_the_originals() {
        let p = CrossNodeRecall.parameters();
        assert_eq!(p["required"], json!(["query"]));
        assert_eq!(p["properties"].as_object().unwrap().len(), 4);
        assert_eq!(
            p["properties"]["type_filter"]["enum"],
            json!(["observations", "memories"])
        );
        assert_eq!(p["properties"]["limit"]["type"], "integer");
        assert!(
            CrossNodeRecall
                .description()
                .to_lowercase()
                .contains("all nodes")
        );
    }

    #[test]
    fn every_node_then_one_node_then_one_kind() {
        let f = fixture();
        let r = ToolRegistry::with_core_tools();
        let all = r.execute("cross_node_recall", &json!({"query": "motion"}), &f.ctx);
        assert_eq!(all["query"], "motion");
        assert_eq!(all["total_results"], 3, "{all}");
        assert_eq!(all["nodes_with_results"], json!(["garage", "kitchen"]));
        assert!(all["node_filter"].is_null() && all["type_filter"].is_null());
        let first = all["results"][0].as_object().unwrap();
        let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "confidence",
                "node",
                "relevance",
                "text",
                "timestamp",
                "type"
            ]
        );

        let garage = r.execute(
            "cross_node_recall",
            &json!({"query": "motion", "node_filter": "garage"}),
            &f.ctx,
        );
        assert_eq!(garage["node_filter"], "garage");
        assert_eq!(garage["total_results"], 2, "{garage}");
        assert_eq!(garage["nodes_with_results"], json!(["garage"]));
        let types: BTreeSet<&str> = garage["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, BTreeSet::from(["memories", "pattern"]));

        let mems = r.execute(
            "cross_node_recall",
            &json!({"query": "motion sensor pin", "type_filter": "memories", "limit": 5}),
            &f.ctx,
        );
        assert_eq!(mems["total_results"], 1, "{mems}");
        assert_eq!(
            mems["results"][0]["text"],
            "The garage motion sensor is on pin 17"
        );
        assert_eq!(mems["results"][0]["node"], "garage");
        assert_eq!(mems["results"][0]["confidence"], 0.8);

        let one = r.execute(
            "cross_node_recall",
            &json!({"query": "motion", "limit": 1}),
            &f.ctx,
        );
        assert_eq!(one["results"].as_array().unwrap().len(), 1);

        let none = r.execute(
            "cross_node_recall",
            &json!({"query": "motion", "node_filter": "attic"}),
            &f.ctx,
        );
        assert_eq!(none["total_results"], 0);
        assert_eq!(none["nodes_with_results"], json!([]));

        let bad = r.execute("cross_node_recall", &json!({"query": "  "}), &f.ctx);
        assert_eq!(bad["results"], json!([]));
        assert!(bad["error"].is_string());
    }
}
