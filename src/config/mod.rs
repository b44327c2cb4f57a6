//! Configuration: the agent's settings file (`smollama.toml`) and pipeline files
//! (`pipelines/*.toml`). Parsing, defaults, environment overrides and validation all live
//! here; every error names the file, the line and a hint.

pub mod duration;
pub mod error;
pub mod expect;
pub mod pipeline;
pub mod settings;
pub mod spec;
pub mod suggest;

pub use error::{ConfigError, ConfigErrors};
pub use pipeline::{PipelineSpec, SinkSpec, SourceSpec, StageSpec};
pub use settings::Settings;
