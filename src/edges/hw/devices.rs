//! The output devices kinds have attached (displays, LEDs): the agent's device tools find
//! theirs here (`lcd_write` needs an attached `lcd1602`), status lists what each shows,
//! and the agent tells them when an observation cycle begins and ends (the LED's hook).

use std::any::Any;
use std::sync::{Arc, Mutex};

use serde_json::{Value as Json, json};

/// One attached device. Implementations are thread-safe: a sink on the event loop, a tool
/// on the `llm` thread and status on `http-work` may reach it at once.
pub trait Device: Send + Sync {
    /// The kind that attached it (`"lcd1602"`), which its tools look for.
    fn kind(&self) -> &'static str;
    /// The pipeline node's name.
    fn name(&self) -> &str;
    /// What it shows now, for status (`{"lines": [..]}`, `{"on": true}`).
    fn state(&self) -> Json;
    /// An observation cycle begins (`true`) or ends: the LED is lit meanwhile, as the
    /// original's observation hook does. Most devices ignore it.
    fn observing(&self, _active: bool) {}
    /// For a tool to reach the concrete device (`downcast_ref`).
    fn as_any(&self) -> &dyn Any;
}

/// The attached devices, in the order their nodes were set up.
#[derive(Default)]
pub struct Devices {
    list: Mutex<Vec<Arc<dyn Device>>>,
}

impl Devices {
    pub fn attach(&self, device: Arc<dyn Device>) {
        self.lock().push(device);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<dyn Device>>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every attached device of `kind`.
    pub fn of_kind(&self, kind: &str) -> Vec<Arc<dyn Device>> {
        self.lock()
            .iter()
            .filter(|d| d.kind() == kind)
            .cloned()
            .collect()
    }

    /// Whether any device of `kind` is attached (its tools are offered only then).
    pub fn has(&self, kind: &str) -> bool {
        self.lock().iter().any(|d| d.kind() == kind)
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Tell every device that an observation cycle begins or ends.
    pub fn observing(&self, active: bool) {
        for d in self.lock().iter() {
            d.observing(active);
        }
    }

    /// `[{kind, name, state}]` for status.
    pub fn json(&self) -> Vec<Json> {
        self.lock()
            .iter()
            .map(|d| json!({ "kind": d.kind(), "name": d.name(), "state": d.state() }))
            .collect()
    }
}
