//! Sensor tools: `read_source`, `list_sources`, `get_reading_history`.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use super::schema::{args_obj, int_arg, str_arg};
use super::{Tool, ToolContext};
use crate::clock::{iso8601, now_us};
use crate::graph::origin::{full_name, origin};
use crate::graph::reading::value_json;
use crate::graph::registry::{Registry, SourceInfo};
use crate::graph::{MICROS_PER_SEC, Micros};

/// The type of a source id: the part before the first `:` (`system` of
/// `system:cpu_temp`); a name without `:` is its own type.
pub fn source_type(id: &str) -> &str {
    id.split_once(':').map_or(id, |(t, _)| t)
}

/// Known source ids, sorted.
fn all_ids(registry: &Registry) -> Vec<String> {
    let mut ids: Vec<String> = registry.all().iter().map(|i| i.name.to_string()).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The original's answer for an unknown source (a result, not an error, so the model
/// sees which types exist), plus the sources of that id on other nodes when there are
/// some (`system:cpu_temp` asked on a node without one: `kitchen:system:cpu_temp`).
fn not_found(id: &str, ctx: &ToolContext) -> Json {
    let registry = &ctx.registry;
    let ids = all_ids(registry);
    let mut types: Vec<String> = ids.iter().map(|i| source_type(i).to_string()).collect();
    types.dedup();
    let mut out = json!({
        "error": format!("Source '{id}' not found"),
        "available_types": types,
    });
    let this = ctx.settings.node.name.as_str();
    let elsewhere: Vec<&String> = ids
        .iter()
        .filter(|full| {
            let (node, source) = origin(registry, full, this);
            node != this && source == id.trim()
        })
        .collect();
    if !elsewhere.is_empty() {
        out["on_other_nodes"] = json!(elsewhere);
    }
    out
}

/// The source a model names. Another node's source is `<node>:<id>`
/// (`kitchen:system:cpu_temp`: the registry holds what arrives over MQTT so); models also
/// write `kitchen/system:cpu_temp` or `system:cpu_temp@kitchen`, or put this node's own
/// name in front, so those are read the same way.
fn lookup(ctx: &ToolContext, id: &str) -> Option<std::sync::Arc<SourceInfo>> {
    let id = id.trim();
    if let Some(info) = ctx.registry.lookup(id) {
        return Some(info);
    }
    let this = ctx.settings.node.name.as_str();
    let (node, source) = if let Some((node, source)) = id.split_once('/')
        && !node.contains(':')
    {
        (node, source)
    } else if let Some((source, node)) = id.rsplit_once('@') {
        (node, source)
    } else if let Some((node, source)) = id.split_once(':')
        && node == this
    {
        (node, source)
    } else {
        return None;
    };
    let (node, source) = (node.trim(), source.trim());
    if node.is_empty() || source.is_empty() {
        return None;
    }
    ctx.registry.lookup(&full_name(node, source, this))
}

pub struct ReadSource;

impl Tool for ReadSource {
    fn name(&self) -> &'static str {
        "read_source"
    }

    fn description(&self) -> &'static str {
        "Read the latest value of one sensor source by its full id, such as 'gpio:17', \
         'system:cpu_temp' or 'mqtt:kitchen/temp'; another node's source is '<node>:<id>', \
         such as 'garage:system:cpu_temp' (use list_sources to see the ids)."
    }

    fn parameters(&self) -> Json {
        json!({
            "type": "object",
            "properties": {
                "source_id": {
                    "type": "string",
                    "description": "Full source id, '<type>:<name>', e.g. 'system:cpu_temp'",
                },
            },
            "required": ["source_id"],
        })
    }

    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let args = args_obj(args);
        let id = str_arg(&args, "source_id").unwrap_or("");
        let Some(info) = lookup(ctx, id) else {
            return Ok(not_found(id, ctx));
        };
        let latest = match info.live.last() {
            Some(l) => Some(l),
            None => ctx
                .store
                .latest(info.id)
                .map_err(|e| format!("could not read the store: {e}"))?
                .map(|r| (r.ts, r.value)),
        };
        let Some((ts, value)) = latest else {
            return Err(format!("Source '{}' has no readings yet", info.name));
        };
        Ok(json!({
            "source_id": &*info.name,
            "value": value_json(&value),
            "unit": &*info.unit,
            "timestamp": iso8601(ts),
            "metadata": null,
        }))
    }
}

pub struct ListSources;

impl Tool for ListSources {
    fn name(&self) -> &'static str {
        "list_sources"
    }

    fn description(&self) -> &'static str {
        "List the sensor sources this node knows, grouped by type (gpio, system, mqtt, ...), \
         optionally only those of one type."
    }

    fn parameters(&self) -> Json {
        json!({
            "type": "object",
            "properties": {
                "source_type": {
                    "type": "string",
                    "description": "Only list sources of this type, e.g. 'system' or 'gpio'",
                },
            },
            "required": [],
        })
    }

    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let args = args_obj(args);
        let filter = str_arg(&args, "source_type")
            .map(|t| t.trim().trim_end_matches(':'))
            .filter(|t| !t.is_empty());
        let ids: Vec<String> = all_ids(&ctx.registry)
            .into_iter()
            .filter(|id| filter.is_none_or(|f| source_type(id) == f))
            .collect();
        let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for id in &ids {
            by_type
                .entry(source_type(id).to_string())
                .or_default()
                .push(id.clone());
        }
        Ok(json!({
            "total_count": ids.len(),
            "sources_by_type": by_type,
            "all_sources": ids,
        }))
    }
}

pub struct GetReadingHistory;

pub const DEFAULT_MINUTES: i64 = 60;
pub const MAX_MINUTES: i64 = 525_600;
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The original's reply for an empty window.
fn no_readings(source: &str, minutes: i64) -> Json {
    json!({
        "source_id": source,
        "count": 0,
        "readings": [],
        "message": format!("No readings found for {source} in last {minutes} minutes"),
    })
}

impl Tool for GetReadingHistory {
    fn name(&self) -> &'static str {
        "get_reading_history"
    }

    fn description(&self) -> &'static str {
        "Get the recent readings of one source, newest first, with min/max/average over the \
         period (default the last 60 minutes, at most 100 readings)."
    }

    fn parameters(&self) -> Json {
        json!({
            "type": "object",
            "properties": {
                "source_id": {
                    "type": "string",
                    "description": "Full source id, e.g. 'system:cpu_temp', or another node's: 'garage:system:cpu_temp'",
                },
                "minutes": {
                    "type": "integer",
                    "description": "How far back to look, in minutes (default 60)",
                },
                "limit": {
                    "type": "integer",
                    "description": "At most this many readings (default 100)",
                },
            },
            "required": ["source_id"],
        })
    }

    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String> {
        let args = args_obj(args);
        let id = str_arg(&args, "source_id").unwrap_or("");
        let minutes = int_arg(&args, "minutes")
            .unwrap_or(DEFAULT_MINUTES)
            .clamp(1, MAX_MINUTES);
        let limit = int_arg(&args, "limit")
            .unwrap_or(DEFAULT_LIMIT)
            .clamp(1, MAX_LIMIT);
        let Some(info) = lookup(ctx, id) else {
            return Ok(not_found(id, ctx));
        };
        let window = minutes * 60 * MICROS_PER_SEC;
        let from = now_us() - window;
        // Beyond the raw retention window only rollups remain: answer from the finest
        // level that covers the window (each entry is a bucket's mean).
        if let Some(ret) = &ctx.retention
            && let Some(level) = ret.level_for(window)
        {
            let rows = ctx
                .store
                .rollups(info.id, level as u8, from, Micros::MAX, limit as usize)
                .map_err(|e| format!("could not read the store: {e}"))?;
            if rows.is_empty() {
                return Ok(no_readings(&info.name, minutes));
            }
            let n: u64 = rows.iter().map(|r| u64::from(r.count)).sum();
            let sum: f64 = rows.iter().map(|r| r.sum).sum();
            let min = rows.iter().map(|r| r.min).fold(f64::INFINITY, f64::min);
            let max = rows.iter().map(|r| r.max).fold(f64::NEG_INFINITY, f64::max);
            let resolution = crate::config::duration::format_duration(ret.rollups[level].every);
            let list: Vec<Json> = rows
                .iter()
                .map(|r| {
                    json!({
                        "timestamp": iso8601(r.bucket_start),
                        "value": round2(r.mean()),
                        "unit": &*info.unit,
                        "metadata": {"count": r.count, "min": r.min, "max": r.max, "resolution": resolution},
                    })
                })
                .collect();
            return Ok(json!({
                "source_id": &*info.name,
                "count": list.len(),
                "period_minutes": minutes,
                "resolution": resolution,
                "statistics": {"min": round2(min), "max": round2(max), "avg": round2(sum / n.max(1) as f64)},
                "readings": list,
            }));
        }
        // No upper bound at "now": a remote node's clock may run slightly ahead.
        let readings = ctx
            .store
            .history(info.id, from, Micros::MAX, limit as usize)
            .map_err(|e| format!("could not read the store: {e}"))?;
        if readings.is_empty() {
            return Ok(no_readings(&info.name, minutes));
        }
        let nums: Vec<f64> = readings
            .iter()
            .filter_map(|r| r.value.as_f64())
            .filter(|x| x.is_finite())
            .collect();
        let statistics = if nums.is_empty() {
            json!({})
        } else {
            let min = nums.iter().copied().fold(f64::INFINITY, f64::min);
            let max = nums.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let avg = nums.iter().sum::<f64>() / nums.len() as f64;
            json!({"min": round2(min), "max": round2(max), "avg": round2(avg)})
        };
        let list: Vec<Json> = readings
            .iter()
            .map(|r| {
                json!({
                    "timestamp": iso8601(r.ts),
                    "value": value_json(&r.value),
                    "unit": &*info.unit,
                    "metadata": null,
                })
            })
            .collect();
        Ok(json!({
            "source_id": &*info.name,
            "count": list.len(),
            "period_minutes": minutes,
            "statistics": statistics,
            "readings": list,
        }))
    }
}

pub const READ_SOURCE: crate::plugins::Kind =
    crate::plugins::tool("read_source", "the latest reading of one source", || {
        Box::new(ReadSource)
    });
pub const LIST_SOURCES: crate::plugins::Kind = crate::plugins::tool(
    "list_sources",
    "every source with its unit and latest value",
    || Box::new(ListSources),
);
pub const GET_READING_HISTORY: crate::plugins::Kind = crate::plugins::tool(
    "get_reading_history",
    "a source's readings (or rollups) over a time range",
    || Box::new(GetReadingHistory),
);

#[cfg(test)]
mod tests {
    use super::super::registry::ToolRegistry;
    use super::super::testutil::Fixture;
    use super::*;
    use crate::graph::{ShortText, Value, ValueKind};

    fn fixture(tag: &str) -> Fixture {
        let fx = Fixture::new(tag);
        let now = now_us();
        let min = 60 * MICROS_PER_SEC;
        fx.write(
            "system:cpu_temp",
            "celsius",
            ValueKind::Number,
            &[
                (now - 90 * min, Value::Number(40.0)),
                (now - 3 * min, Value::Number(50.123)),
                (now - 2 * min, Value::Number(52.0)),
                (now - min, Value::Number(51.0)),
            ],
        );
        fx.write(
            "gpio:17",
            "boolean",
            ValueKind::Bool,
            &[(now - min, Value::Bool(true))],
        );
        fx.write(
            "mqtt:kitchen/state",
            "",
            ValueKind::Text,
            &[(now - min, Value::Text(ShortText::new("open")))],
        );
        fx.registry
            .intern("system:load_avg", "load", ValueKind::Number);
        fx
    }

    fn required(tool: &dyn Tool) -> Json {
        tool.parameters()["required"].clone()
    }

    #[test]
    fn schemas() {
        assert_eq!(ReadSource.name(), "read_source");
        assert_eq!(required(&ReadSource), json!(["source_id"]));
        assert_eq!(
            ReadSource.parameters()["properties"]["source_id"]["type"],
            "string"
        );
        assert!(ReadSource.description().contains("gpio:17"));
        assert!(ReadSource.description().contains("system:cpu_temp"));
        assert!(ReadSource.description().contains("mqtt:kitchen/temp"));

        assert_eq!(ListSources.name(), "list_sources");
        assert_eq!(required(&ListSources), json!([]));
        assert_eq!(
            ListSources.parameters()["properties"]["source_type"]["type"],
            "string"
        );

        let p = GetReadingHistory.parameters();
        assert_eq!(GetReadingHistory.name(), "get_reading_history");
        assert_eq!(p["required"], json!(["source_id"]));
        assert_eq!(p["properties"]["source_id"]["type"], "string");
        assert_eq!(p["properties"]["minutes"]["type"], "integer");
        assert_eq!(p["properties"]["limit"]["type"], "integer");
    }

    #[test]
    fn read_source_from_store_and_live() {
        let fx = fixture("read-source");
        let r = ToolRegistry::with_core_tools();
        let out = r.execute(
            "read_source",
            &json!({"source_id": "system:cpu_temp"}),
            &fx.ctx,
        );
        assert_eq!(out["source_id"], "system:cpu_temp");
        assert_eq!(out["value"], json!(51.0));
        assert_eq!(out["unit"], "celsius");
        assert!(out["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(out["metadata"].is_null());
        assert_eq!(out.as_object().unwrap().len(), 5);

        let out = r.execute("read_source", &json!({"source_id": "gpio:17"}), &fx.ctx);
        assert_eq!(out["value"], json!(true));
        let out = r.execute(
            "read_source",
            &json!({"source_id": "mqtt:kitchen/state"}),
            &fx.ctx,
        );
        assert_eq!(out["value"], json!("open"));

        // The live value wins over the store.
        let info = fx.registry.lookup("system:cpu_temp").unwrap();
        info.live.record(1_795_771_723_123_000, Value::Number(60.5));
        let out = r.execute(
            "read_source",
            &json!({"source_id": "system:cpu_temp"}),
            &fx.ctx,
        );
        assert_eq!(out["value"], json!(60.5));
        assert_eq!(out["timestamp"], "2026-11-27T09:28:43.123Z");
    }

    #[test]
    fn read_source_unknown_and_empty() {
        let fx = fixture("read-source-unknown");
        let r = ToolRegistry::with_core_tools();
        let out = r.execute("read_source", &json!({"source_id": "system:nope"}), &fx.ctx);
        assert_eq!(
            out,
            json!({
                "error": "Source 'system:nope' not found",
                "available_types": ["gpio", "mqtt", "system"],
            })
        );
        let out = r.execute(
            "read_source",
            &json!({"source_id": "system:load_avg"}),
            &fx.ctx,
        );
        assert_eq!(
            out,
            json!({"error": "Source 'system:load_avg' has no readings yet"})
        );
    }

    #[test]
    fn other_nodes_sources_by_every_spelling() {
        let mut fx = fixture("remote-sources");
        fx.ctx.settings.node.name = "llm".into();
        let now = now_us();
        let min = 60 * MICROS_PER_SEC;
        // What the MQTT worker interns for a batch from node kitchen.
        fx.write(
            "kitchen:system:cpu_temp",
            "celsius",
            ValueKind::Number,
            &[
                (now - 2 * min, Value::Number(47.0)),
                (now - min, Value::Number(48.5)),
            ],
        );
        let r = ToolRegistry::with_core_tools();
        for spelling in [
            "kitchen:system:cpu_temp",
            "kitchen/system:cpu_temp",
            "system:cpu_temp@kitchen",
            " kitchen:system:cpu_temp ",
        ] {
            let out = r.execute("read_source", &json!({"source_id": spelling}), &fx.ctx);
            assert_eq!(
                out["source_id"], "kitchen:system:cpu_temp",
                "{spelling}: {out}"
            );
            assert_eq!(out["value"], json!(48.5));
            assert_eq!(out["unit"], "celsius");
            let h = r.execute(
                "get_reading_history",
                &json!({"source_id": spelling, "minutes": 10}),
                &fx.ctx,
            );
            assert_eq!(h["count"], 2, "{spelling}: {h}");
            assert_eq!(h["statistics"]["max"], 48.5);
        }
        // This node's own name in front finds its own source.
        let out = r.execute("read_source", &json!({"source_id": "llm:gpio:17"}), &fx.ctx);
        assert_eq!(out["source_id"], "gpio:17", "{out}");
        // A node without such a source: not found, with where it does exist.
        let out = r.execute(
            "read_source",
            &json!({"source_id": "system:cpu_temp@garage"}),
            &fx.ctx,
        );
        assert_eq!(out["error"], "Source 'system:cpu_temp@garage' not found");
        let out = r.execute(
            "read_source",
            &json!({"source_id": "system:cpu_temp"}),
            &fx.ctx,
        );
        assert_eq!(out["value"], json!(51.0), "the local one: {out}");
        let out = r.execute(
            "get_reading_history",
            &json!({"source_id": "gpio:cpu_temp"}),
            &fx.ctx,
        );
        assert!(out.get("on_other_nodes").is_none(), "{out}");
        fx.registry
            .intern("kitchen:system:disk_percent", "%", ValueKind::Number);
        let out = r.execute(
            "read_source",
            &json!({"source_id": "system:disk_percent"}),
            &fx.ctx,
        );
        assert_eq!(
            out["on_other_nodes"],
            json!(["kitchen:system:disk_percent"]),
            "{out}"
        );
    }

    #[test]
    fn list_sources_grouped_and_filtered() {
        let fx = fixture("list-sources");
        let r = ToolRegistry::with_core_tools();
        let out = r.execute("list_sources", &json!({}), &fx.ctx);
        assert_eq!(
            out,
            json!({
                "total_count": 4,
                "sources_by_type": {
                    "gpio": ["gpio:17"],
                    "mqtt": ["mqtt:kitchen/state"],
                    "system": ["system:cpu_temp", "system:load_avg"],
                },
                "all_sources": ["gpio:17", "mqtt:kitchen/state", "system:cpu_temp", "system:load_avg"],
            })
        );
        let out = r.execute("list_sources", &json!({"source_type": "system"}), &fx.ctx);
        assert_eq!(out["total_count"], 2);
        assert_eq!(
            out["all_sources"],
            json!(["system:cpu_temp", "system:load_avg"])
        );
        assert_eq!(out["sources_by_type"].as_object().unwrap().len(), 1);
        let out = r.execute("list_sources", &json!({"source_type": "zigbee"}), &fx.ctx);
        assert_eq!(
            out,
            json!({"total_count": 0, "sources_by_type": {}, "all_sources": []})
        );
        // Null means no filter.
        let out = r.execute("list_sources", &json!({"source_type": null}), &fx.ctx);
        assert_eq!(out["total_count"], 4);
    }

    #[test]
    fn history_newest_first_with_statistics() {
        let fx = fixture("history");
        let r = ToolRegistry::with_core_tools();
        let out = r.execute(
            "get_reading_history",
            &json!({"source_id": "system:cpu_temp"}),
            &fx.ctx,
        );
        assert_eq!(out["source_id"], "system:cpu_temp");
        assert_eq!(
            out["count"], 3,
            "the 90-minute-old reading is outside the hour"
        );
        assert_eq!(out["period_minutes"], 60);
        assert_eq!(
            out["statistics"],
            json!({"min": 50.12, "max": 52.0, "avg": 51.04})
        );
        let values: Vec<f64> = out["readings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["value"].as_f64().unwrap())
            .collect();
        assert_eq!(values, [51.0, 52.0, 50.123]);
        let first = &out["readings"][0];
        assert_eq!(first["unit"], "celsius");
        assert!(first["metadata"].is_null());
        assert!(first["timestamp"].as_str().unwrap().ends_with('Z'));

        // Minutes as a string, a limit, a longer window.
        let out = r.execute(
            "get_reading_history",
            &json!({"source_id": "system:cpu_temp", "minutes": "120", "limit": 2.0}),
            &fx.ctx,
        );
        assert_eq!(out["count"], 2);
        assert_eq!(out["period_minutes"], 120);
        assert_eq!(out["readings"][1]["value"], json!(52.0));

        // Clamped: 0 minutes is one minute, a huge window is a year.
        let out = r.execute(
            "get_reading_history",
            &json!({"source_id": "system:cpu_temp", "minutes": 10_000_000_000i64, "limit": 0}),
            &fx.ctx,
        );
        assert_eq!(out["period_minutes"], MAX_MINUTES);
        assert_eq!(out["count"], 1);

        // Text values give no statistics; booleans count as 0/1.
        let out = r.execute(
            "get_reading_history",
            &json!({"source_id": "mqtt:kitchen/state"}),
            &fx.ctx,
        );
        assert_eq!(out["statistics"], json!({}));
        assert_eq!(out["readings"][0]["value"], "open");
        let out = r.execute(
            "get_reading_history",
            &json!({"source_id": "gpio:17"}),
            &fx.ctx,
        );
        assert_eq!(
            out["statistics"],
            json!({"min": 1.0, "max": 1.0, "avg": 1.0})
        );
    }

    #[test]
    fn history_beyond_the_raw_window_comes_from_rollups() {
        use crate::graph::{Item, Rollup};
        use crate::stages::retention_policy::{RetentionParams, RollupLevel};
        let mut f = Fixture::new("hist-rollups");
        f.ctx.retention = Some(RetentionParams {
            raw_for: 3_600 * MICROS_PER_SEC,
            rollups: vec![RollupLevel {
                every: 60 * MICROS_PER_SEC,
                keep: 30 * 86_400 * MICROS_PER_SEC,
            }],
            ..RetentionParams::default()
        });
        let info = f
            .registry
            .intern("system:cpu_temp", "celsius", ValueKind::Number);
        let now = now_us();
        let bucket = |mins_ago: i64, min: f64, max: f64, n: u32, sum: f64| {
            Item::Rollup(Rollup {
                source: info.id,
                level: 0,
                bucket_start: now - mins_ago * 60 * MICROS_PER_SEC,
                count: n,
                min,
                max,
                sum,
            })
        };
        f.store
            .write_batch(
                &f.registry.take_unsaved(),
                &[
                    bucket(300, 40.0, 44.0, 4, 168.0),
                    bucket(200, 45.0, 50.0, 2, 95.0),
                ],
            )
            .unwrap();
        // 6 hours > the 1 hour raw window: the minute rollups answer.
        let r = ToolRegistry::with_core_tools().execute(
            "get_reading_history",
            &json!({"source_id": "system:cpu_temp", "minutes": 360}),
            &f.ctx,
        );
        assert_eq!(r["resolution"], "1m", "{r}");
        assert_eq!(r["count"], 2);
        assert_eq!(r["statistics"]["min"], 40.0);
        assert_eq!(r["statistics"]["max"], 50.0);
        assert_eq!(r["statistics"]["avg"], 43.83);
        assert_eq!(r["readings"][0]["value"], 47.5, "newest first: {r}");
        assert_eq!(r["readings"][1]["metadata"]["count"], 4);
    }

    #[test]
    fn history_empty_and_unknown() {
        let fx = fixture("history-empty");
        let r = ToolRegistry::with_core_tools();
        let out = r.execute(
            "get_reading_history",
            &json!({"source_id": "system:load_avg", "minutes": 5}),
            &fx.ctx,
        );
        assert_eq!(
            out,
            json!({
                "source_id": "system:load_avg",
                "count": 0,
                "readings": [],
                "message": "No readings found for system:load_avg in last 5 minutes",
            })
        );
        let out = r.execute(
            "get_reading_history",
            &json!({"source_id": "gpio:4", "minutes": 0}),
            &fx.ctx,
        );
        assert_eq!(out["error"], "Source 'gpio:4' not found");
        assert_eq!(out["available_types"], json!(["gpio", "mqtt", "system"]));
    }
}
