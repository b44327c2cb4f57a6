//! Kinds of sources, stages, sinks and tools, each described once: what it is called,
//! which parameters it takes, what it produces or consumes, how its parameters are read
//! and how it is set up. The pipeline loader, `pipeline check`, the runner, status and
//! `smollama plugins list` all read these descriptors (`registry::KINDS`), so a new kind
//! is one file with its `KIND` plus one line in the registry.
//!
//! Lifecycle of a node: `setup` (may fail: the node is unavailable, with its reason, and
//! the rest runs), `start` (a task on the event loop), health (the runner's `Health`,
//! shown in status), stop (sources return on the shutdown signal; every other node when
//! its inbox closes: shutdown is channel closure, see ARCHITECTURE.md).

pub mod backoff;
pub mod list;
pub mod manifest;
pub mod params;
pub mod program;
pub mod registry;
mod roles;

pub use backoff::Backoff;
pub use roles::{Parts, Setup, Sink, Source, SourceCtx, Task, Woke};

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::Settings;
use crate::config::spec::Spec;
use crate::config::{SinkSpec, SourceSpec, StageSpec};
use crate::graph::ValueKind;
use crate::graph::stage::Stage;

/// The four roles a kind can play.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Source,
    Stage,
    Sink,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Stage => "stage",
            Role::Sink => "sink",
            Role::Tool => "tool",
        }
    }
}

/// What kind of readings a source produces or a parameter applies to, for the graph's
/// type checks (a debounce on a numeric source is refused before anything runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Number,
    Bool,
    Text,
    Any,
}

impl Flow {
    /// Whether readings of `k` are of this flow.
    pub fn admits(self, k: ValueKind) -> bool {
        match self {
            Flow::Number => k == ValueKind::Number,
            Flow::Bool => k == ValueKind::Bool,
            Flow::Text => k == ValueKind::Text,
            Flow::Any => true,
        }
    }

    /// "numeric", "boolean": how errors name the sources a parameter applies to.
    pub fn adjective(self) -> &'static str {
        match self {
            Flow::Number => "numeric",
            Flow::Bool => "boolean",
            Flow::Text => "text",
            Flow::Any => "any",
        }
    }
}

/// One parameter of a kind: the shared declaration (`Spec`: name, value kind, range,
/// default, doc, hint) and the readings it applies to (`Flow::Any` for most; a per-source
/// `debounce` applies to boolean sources only).
#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub spec: Spec,
    pub applies: Flow,
    /// What it takes, when `spec.want`'s phrase would mislead (`[min, max]`, a list of
    /// pin numbers); empty otherwise.
    pub takes: &'static str,
}

impl Param {
    /// A parameter that applies to any reading.
    pub const fn new(spec: Spec) -> Param {
        Param {
            spec,
            applies: Flow::Any,
            takes: "",
        }
    }

    /// A per-source parameter that applies only to readings of `applies`.
    pub const fn only(applies: Flow, spec: Spec) -> Param {
        Param {
            spec,
            applies,
            takes: "",
        }
    }

    /// The same, saying what it takes in these words.
    pub const fn taking(self, takes: &'static str) -> Param {
        Param { takes, ..self }
    }

    /// What it takes, in plain words.
    pub fn takes(&self) -> &'static str {
        if self.takes.is_empty() {
            self.spec.want.phrase()
        } else {
            self.takes
        }
    }
}

/// A kind's parsed parameters, type-erased so the pipeline spec holds every kind alike;
/// only the kind's own file knows (and downcasts to) the concrete type.
pub trait Params: Any + fmt::Debug + Send + Sync {}
impl<T: Any + fmt::Debug + Send + Sync> Params for T {}

/// The parameters of a node, shared between the spec and whatever reads it.
pub type ParamsBox = Arc<dyn Params>;

/// Downcast a node's parameters to its kind's type.
pub fn params_of<T: 'static>(p: &ParamsBox) -> Option<&T> {
    (p.as_ref() as &dyn Any).downcast_ref::<T>()
}

/// What a source produces, for the graph's type checks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Produced {
    /// Full source ids known before start, with their kinds.
    pub ids: Vec<(String, ValueKind)>,
    /// Readings of ids not known until run time: `Some(Flow::Bool)` for gpio (pins may be
    /// configured later), `Some(Flow::Any)` for what other nodes publish.
    pub open: Option<Flow>,
}

/// Why a node's setup failed. The node is left out (its edges with it), named with the
/// reason in status and the log; the rest of the node runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// Off by configuration or build (no broker, no mqtt feature): logged at info.
    Off(String),
    /// Could not be set up although asked for (a backend that cannot read any pin):
    /// logged as a warning.
    Failed(String),
}

impl Unavailable {
    pub fn reason(&self) -> &str {
        match self {
            Unavailable::Off(r) | Unavailable::Failed(r) => r,
        }
    }
}

/// Reads a node's parameters (already checked against the kind's names) into the
/// kind's own type; problems go to the reader, with their lines.
pub type ParseFn = fn(&mut params::Reader) -> ParamsBox;

/// Sets up one node from its spec: the running part, or why it cannot run.
pub type SetupFn<S, T> = fn(&S, &mut Setup) -> Result<Box<T>, Unavailable>;

/// How a kind is made, by role. Plain function pointers: no macros, no generics.
#[derive(Clone, Copy)]
pub enum Make {
    Source {
        /// The type its ids begin with (`file` for `file:…`): ids of this node's own, which
        /// no message from another node may create or feed, and which status lists as local.
        /// Empty for a source that forwards other nodes' readings (`mqtt`).
        ids: &'static str,
        parse: ParseFn,
        /// The ids and kinds a source (its name and parameters) produces.
        produces: fn(&SourceSpec, &Settings) -> Produced,
        setup: SetupFn<SourceSpec, dyn Source>,
    },
    Stage {
        parse: ParseFn,
        setup: SetupFn<StageSpec, dyn Stage>,
    },
    Sink {
        parse: ParseFn,
        /// A lossless inbox (backpressure) instead of drop-oldest: durable sinks.
        lossless: bool,
        setup: SetupFn<SinkSpec, dyn Sink>,
    },
    /// A tool the model may call; its parameters are the tool's JSON schema.
    #[cfg(feature = "agent")]
    Tool {
        make: fn() -> Box<dyn crate::agent::tools::Tool>,
    },
}

/// One kind: everything the rest of the program knows about it.
pub struct Kind {
    pub role: Role,
    pub name: &'static str,
    /// The crate's version for built-in kinds.
    pub version: &'static str,
    /// One line for `plugins list` and the docs.
    pub doc: &'static str,
    /// The parameters a pipeline may give it (besides name, kind and from).
    pub params: &'static [Param],
    pub make: Make,
}

impl Kind {
    /// The parameter declared under `key`.
    pub fn param(&self, key: &str) -> Option<&'static Param> {
        self.params.iter().find(|p| p.spec.name == key)
    }

    pub fn parse_fn(&self) -> Option<ParseFn> {
        match self.make {
            Make::Source { parse, .. } | Make::Stage { parse, .. } | Make::Sink { parse, .. } => {
                Some(parse)
            }
            #[cfg(feature = "agent")]
            Make::Tool { .. } => None,
        }
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role.as_str(), self.name)
    }
}

impl PartialEq for Kind {
    fn eq(&self, other: &Kind) -> bool {
        self.role == other.role && self.name == other.name
    }
}

/// A parse function for kinds without parameters.
pub fn no_params(_: &mut params::Reader) -> ParamsBox {
    Arc::new(())
}

/// A running node's health as status shows it: starting, running or stopped (set by the
/// runner around the node's task), or degraded with a reason (set by the node itself, e.g.
/// a gpio source whose edge events failed and that now only samples).
#[derive(Debug, Default)]
pub struct Health {
    state: AtomicU8,
    why: Mutex<Option<String>>,
}

impl Health {
    const STARTING: u8 = 0;
    const RUNNING: u8 = 1;
    const STOPPED: u8 = 2;
    const DEGRADED: u8 = 3;

    pub fn set_running(&self) {
        // A degradation reported before the first poll stays.
        let _ = self.state.compare_exchange(
            Self::STARTING,
            Self::RUNNING,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    pub fn set_stopped(&self) {
        self.state.store(Self::STOPPED, Ordering::Relaxed);
    }

    /// Running, but not fully: `why` is shown in status.
    pub fn set_degraded(&self, why: impl Into<String>) {
        if let Ok(mut w) = self.why.lock() {
            *w = Some(why.into());
        }
        self.state.store(Self::DEGRADED, Ordering::Relaxed);
    }

    /// Running fully again after a degradation (a file source whose file is back, an http source whose next poll succeeded); the
    /// reason is cleared. A stopped node stays stopped.
    pub fn set_recovered(&self) {
        if self
            .state
            .compare_exchange(
                Self::DEGRADED,
                Self::RUNNING,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
            && let Ok(mut w) = self.why.lock()
        {
            *w = None;
        }
    }

    /// "starting", "running", "degraded" or "stopped".
    pub fn as_str(&self) -> &'static str {
        match self.state.load(Ordering::Relaxed) {
            Self::STARTING => "starting",
            Self::RUNNING => "running",
            Self::DEGRADED => "degraded",
            _ => "stopped",
        }
    }

    /// Why it is degraded (`None` otherwise).
    pub fn reason(&self) -> Option<String> {
        if self.state.load(Ordering::Relaxed) != Self::DEGRADED {
            return None;
        }
        self.why.lock().ok().and_then(|w| w.clone())
    }
}

/// A built-in tool's kind: the model sees its name, description and JSON schema (the
/// tool's own); this adds the one-line doc for `plugins list`.
#[cfg(feature = "agent")]
pub const fn tool(
    name: &'static str,
    doc: &'static str,
    make: fn() -> Box<dyn crate::agent::tools::Tool>,
) -> Kind {
    Kind {
        role: Role::Tool,
        name,
        version: env!("CARGO_PKG_VERSION"),
        doc,
        params: &[],
        make: Make::Tool { make },
    }
}

#[cfg(test)]
mod tests {
    use super::Health;

    #[test]
    fn health_moves_through_its_states_and_keeps_a_degradation() {
        let h = Health::default();
        assert_eq!(h.as_str(), "starting");
        h.set_degraded("edge events unavailable");
        h.set_running();
        assert_eq!(h.as_str(), "degraded");
        assert_eq!(h.reason().as_deref(), Some("edge events unavailable"));
        h.set_stopped();
        assert_eq!((h.as_str(), h.reason()), ("stopped", None));
        h.set_recovered();
        assert_eq!(h.as_str(), "stopped", "a stopped node stays stopped");
        let h = Health::default();
        h.set_running();
        assert_eq!((h.as_str(), h.reason()), ("running", None));
        h.set_degraded("file missing");
        h.set_recovered();
        assert_eq!((h.as_str(), h.reason()), ("running", None));
        h.set_stopped();
        h.set_recovered();
        assert_eq!(h.as_str(), "stopped");
    }
}
