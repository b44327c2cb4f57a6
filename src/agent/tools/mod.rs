//! Tools the model may call: a small trait and a registry. Names, parameters and result
//! shapes follow the Python original (prompts written for it keep working).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value as Json;

use crate::config::settings::Settings;
use crate::edges::gpio::GpioBackend;
use crate::graph::registry::Registry;
use crate::messages::{EventHub, EventKind, PublishTx, Recent};
use crate::stages::retention_policy::RetentionParams;
use crate::store::Store;

/// What the MQTT tools need (absent when no broker is configured).
#[derive(Clone)]
pub struct MqttTools {
    pub publish: PublishTx,
    pub recent: Arc<Mutex<Recent>>,
    /// This node's topic prefix (`smollama/<node>`).
    pub prefix: String,
}

/// Tool calls the bounds stopped, shown in `/api/status` (`connections.ollama.tools`).
#[derive(Debug, Default)]
pub struct ToolStats {
    /// Exec tool runs (programs started).
    pub exec_calls: AtomicU64,
    /// Of which failed for any reason (the model got an `{"error"}`).
    pub exec_failed: AtomicU64,
    /// Of which were killed at their timeout.
    pub exec_timed_out: AtomicU64,
    /// Of which printed more than `max_output_kb`.
    pub exec_over_cap: AtomicU64,
    /// Write tool calls refused for an untrusted question.
    pub writes_refused: AtomicU64,
}

impl ToolStats {
    pub(crate) fn hit(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything a tool may touch.
#[derive(Clone)]
pub struct ToolContext {
    pub settings: Settings,
    pub store: Arc<Store>,
    pub registry: Arc<Registry>,
    pub gpio: Arc<dyn GpioBackend>,
    /// The attached devices (displays, LEDs) the device tools drive.
    pub hardware: Arc<crate::edges::hw::Hardware>,
    /// The pipeline's retention windows (raw vs rollups for history).
    pub retention: Option<RetentionParams>,
    pub mqtt: Option<MqttTools>,
    /// Embeddings for the memory tools (the model server's client set to the embedding
    /// model); `None`: memory works on words alone.
    pub embedder: Option<Arc<crate::edges::llm::Llm>>,
    /// Whether the question being answered came from a trusted origin
    /// (`messages::Origin::trusted`); write tools refuse to run otherwise. False unless
    /// whoever runs the tool loop says so.
    pub trusted: bool,
    pub stats: Arc<ToolStats>,
    /// Set when the agent stops: a running exec tool is killed rather than waited for
    /// (its timeout may be minutes; systemd allows 10 s to stop).
    pub stopping: Arc<AtomicBool>,
    /// The live events (`/api/events`): stored observations and memories are published
    /// there. `None` without HTTP, and for CLI commands.
    pub events: Option<Arc<EventHub>>,
    /// The OpenClaw gateway's node events: stored observations are sent there too
    /// (`[openclaw] send_observations`). `None` with `[openclaw]` off.
    pub node_events: Option<Arc<crate::messages::NodeEvents>>,
}

impl ToolContext {
    /// The embedding of `text`, or `None` when there is no embedder or it failed (the
    /// memory then falls back to words, and the vector can be filled in later).
    pub fn embed(&self, text: &str) -> Option<Vec<f32>> {
        let e = self.embedder.as_ref()?;
        // Vectors are only comparable within one model: while the store's were made by
        // another (the re-embedding job has not run yet), words it is.
        let model = &self.settings.memory.embedding_model;
        match self.store.memory().vectors_match(model) {
            Ok(true) => {}
            Ok(false) => {
                log::debug!("memory: stored vectors are not {model}'s yet; using words");
                return None;
            }
            Err(err) => {
                log::warn!("memory: cannot check the embedding model: {err}");
                return None;
            }
        }
        match e.embed(&[text]) {
            Ok(mut v) if !v.is_empty() => Some(v.swap_remove(0)),
            Ok(_) => None,
            Err(err) => {
                log::debug!("memory: no embedding ({err}); using words");
                None
            }
        }
    }
}

impl ToolContext {
    /// Store an observation as `[memory]` says: embedded, merged into a near-duplicate
    /// stored within `merge_window` (`merge_similarity`).
    pub fn record_observation(
        &self,
        obs: &crate::memory::Observation,
    ) -> Result<crate::memory::recall::Recorded, crate::memory::store::MemoryError> {
        let m = &self.settings.memory;
        let v = self.embed(&obs.text);
        let recorded = crate::memory::recall::record_observation(
            &self.store,
            obs,
            v.as_deref(),
            m.merge_similarity as f32,
            m.merge_window,
        )?;
        if let Some(hub) = &self.events {
            use crate::memory::recall::Recorded;
            let (id, merged) = match recorded {
                Recorded::New(id) => (id, false),
                Recorded::Merged { id, .. } => (id, true),
            };
            hub.publish_json(
                EventKind::Observation,
                &serde_json::json!({
                    "id": id,
                    "merged": merged,
                    "text": obs.text,
                    "type": obs.kind.as_str(),
                    "confidence": obs.confidence,
                    "related_sources": obs.related_sources,
                    "node": obs.node,
                    "ts": obs.ts,
                }),
            );
        }
        if let Some(q) = self
            .node_events
            .as_ref()
            .filter(|_| self.settings.openclaw.send_observations)
        {
            use crate::memory::recall::Recorded;
            let id = match recorded {
                Recorded::New(id) | Recorded::Merged { id, .. } => id,
            };
            q.push(crate::messages::NodeEvent {
                key: format!("smollama.observation.{id}"),
                title: format!(
                    "smollama {}: {} observation (confidence {:.2})",
                    self.settings.node.name,
                    obs.kind.as_str(),
                    obs.confidence
                ),
                text: obs.text.clone(),
            });
        }
        Ok(recorded)
    }

    /// Store a fact as `[memory]` says: embedded, reinforcing an active memory at least
    /// `reinforce_similarity` alike instead of adding a duplicate.
    pub fn remember(
        &self,
        mem: &crate::memory::Memory,
    ) -> Result<crate::memory::recall::Remembered, crate::memory::store::MemoryError> {
        let v = self.embed(&mem.fact);
        let remembered = crate::memory::recall::remember(
            &self.store,
            mem,
            v.as_deref(),
            self.settings.memory.reinforce_similarity as f32,
            crate::memory::recall::REINFORCE_STEP,
        )?;
        if let Some(hub) = &self.events {
            use crate::memory::recall::Remembered;
            let (id, reinforced) = match remembered {
                Remembered::New(id) => (id, false),
                Remembered::Reinforced { id, .. } => (id, true),
            };
            hub.publish_json(
                EventKind::Memory,
                &serde_json::json!({
                    "id": id,
                    "reinforced": reinforced,
                    "fact": mem.fact,
                    "confidence": mem.confidence,
                    "node": mem.node,
                    "ts": mem.last_seen,
                }),
            );
        }
        Ok(remembered)
    }
}

/// One tool. `call` gets arguments already validated against `parameters`.
pub trait Tool: Send + Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    /// JSON schema of the arguments: `{type:"object", properties:{...}, required:[...]}`.
    fn parameters(&self) -> Json;
    /// The result as JSON, or an error message (the registry wraps it as `{"error": ...}`).
    fn call(&self, args: &Json, ctx: &ToolContext) -> Result<Json, String>;
    /// Whether it changes the world in a way the asker must be trusted for: the registry
    /// runs it only when `ctx.trusted` (exec tools declared with `writes = true`).
    fn writes(&self) -> bool {
        false
    }
    /// The device kind it drives (`"lcd1602"` for `lcd_write`): offered to the model only
    /// while a device of that kind is attached, as the original lists a plugin's tools
    /// only after its setup.
    fn device(&self) -> Option<&'static str> {
        None
    }
}

pub mod ask_gateway;
pub mod cross_node;
pub mod exec;
pub mod gpio;
pub mod lcd1602;
pub mod led;
pub mod memory;
pub mod mqtt;
pub mod notify_human;
pub mod readings;
pub mod registry;
pub mod schema;
pub mod seven_segment;
#[cfg(test)]
pub(crate) mod testutil;

pub use registry::ToolRegistry;
