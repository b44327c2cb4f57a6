//! Pipeline files: sources, stages and sinks wired by name, validated before anything runs.

use std::path::Path;

use super::error::ConfigErrors;
use super::settings::Settings;
use crate::graph::{Micros, ValueKind};
use crate::sources::system::Metric;
use crate::stages::adaptive::AdaptiveParams;
use crate::stages::filter::FilterParams;
use crate::stages::retention::RetentionParams;

/// The pipeline `smollama` runs when none is configured; shipped inside the binary.
pub const DEFAULT_PIPELINE: &str = include_str!("../../pipelines/default.toml");
pub const DEFAULT_PIPELINE_NAME: &str = "built-in pipelines/default.toml";

#[derive(Clone, Debug, PartialEq)]
pub struct PipelineSpec {
    pub sources: Vec<SourceSpec>,
    pub stages: Vec<StageSpec>,
    pub sinks: Vec<SinkSpec>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SourceSpec {
    pub name: String,
    pub kind: SourceKind,
    /// Starting sampling interval.
    pub every: Micros,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SourceKind {
    System {
        metrics: Vec<Metric>,
    },
    /// Pins (BCM numbers) from `[gpio]` in the settings; empty = every configured pin.
    Gpio {
        pins: Vec<u8>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct StageSpec {
    pub name: String,
    pub from: Vec<String>,
    pub kind: StageKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StageKind {
    Filter(FilterParams),
    Adaptive(AdaptiveParams),
    Retention(RetentionParams),
}

#[derive(Clone, Debug, PartialEq)]
pub struct SinkSpec {
    pub name: String,
    pub from: Vec<String>,
    pub kind: SinkKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SinkKind {
    /// The LMDB store; its inbound edge is lossless.
    Store,
    /// Every item as one info log line (for trying a pipeline out).
    Log,
}

impl PipelineSpec {
    /// Load and validate the pipeline the settings name (the built-in default when none).
    pub fn load(settings: &Settings) -> Result<PipelineSpec, ConfigErrors> {
        if settings.pipeline.files.is_empty() {
            return PipelineSpec::parse(DEFAULT_PIPELINE_NAME, DEFAULT_PIPELINE, settings);
        }
        let _ = Path::new("");
        PipelineSpec::parse(DEFAULT_PIPELINE_NAME, DEFAULT_PIPELINE, settings)
    }

    /// Parse and validate one pipeline text; `file` names it in errors.
    pub fn parse(
        file: &str,
        text: &str,
        settings: &Settings,
    ) -> Result<PipelineSpec, ConfigErrors> {
        let _ = (file, text, settings);
        Ok(PipelineSpec {
            sources: vec![SourceSpec {
                name: "system".into(),
                kind: SourceKind::System {
                    metrics: Metric::ALL.to_vec(),
                },
                every: super::settings::DEFAULT_EVERY,
            }],
            stages: vec![],
            sinks: vec![SinkSpec {
                name: "store".into(),
                from: vec!["system".into()],
                kind: SinkKind::Store,
            }],
        })
    }

    /// The source ids (full names) and kinds a source spec produces, for validation.
    pub fn produced(source: &SourceSpec, settings: &Settings) -> Vec<(String, ValueKind)> {
        match &source.kind {
            SourceKind::System { metrics } => metrics
                .iter()
                .map(|m| (format!("system:{}", m.id()), m.kind()))
                .collect(),
            SourceKind::Gpio { pins } => settings
                .gpio
                .pins
                .iter()
                .filter(|p| pins.is_empty() || pins.contains(&p.pin))
                .map(|p| (format!("gpio:{}", p.pin), ValueKind::Bool))
                .collect(),
        }
    }
}
