//! What this node tells an OpenClaw gateway as it happens (docs/openclaw.md, "Readings,
//! changes and observations"): readings and volatile/calm changes from the `openclaw`
//! sink, observations from the agent, handed to the `openclaw` thread, which sends each
//! as the one node event the gateway makes visible for them (`notifications.changed`);
//! and the one question the agent may be waiting on from the gateway's agent.
//!
//! Readings are not alerts: nothing here is persisted. The queue keeps at most `max`
//! events; past it the oldest is dropped and counted, so while the gateway is away the
//! newest `max` wait and go after the reconnect, and a restart loses them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// One event for the gateway: `key` names what it is about (the gateway's notification
/// key, e.g. `smollama.reading.system:cpu_temp`), `title` and `text` what it says (the
/// gateway keeps 120 characters of each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEvent {
    pub key: String,
    pub title: String,
    pub text: String,
}

/// A question for the gateway's agent (the `ask_gateway` tool): its answer, or why there
/// is none, goes back on `reply`.
pub struct GatewayQuestion {
    pub question: String,
    pub reply: std::sync::mpsc::SyncSender<Result<String, String>>,
}

/// The bounded queue between the producers (a sink on the event loop, the `llm`
/// thread) and the `openclaw` thread. Guarantees: at most `max` events held; a push
/// never waits (the lock is held for a `VecDeque` push); every event pushed is either
/// taken or counted in `dropped`; the wake hook runs after each push.
pub struct NodeEvents {
    queue: Mutex<VecDeque<NodeEvent>>,
    max: usize,
    wake: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// The one question waiting to go to the gateway's agent, if any.
    question: Mutex<Option<GatewayQuestion>>,
    /// Events pushed (accepted into the queue), over the process's life.
    pub pushed: AtomicU64,
    /// Events dropped, oldest first, to keep the queue within `max`.
    pub dropped: AtomicU64,
}

impl NodeEvents {
    pub fn new(max: usize) -> NodeEvents {
        NodeEvents {
            queue: Mutex::new(VecDeque::with_capacity(max.min(64))),
            max: max.max(1),
            wake: OnceLock::new(),
            question: Mutex::new(None),
            pushed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// What to run after a push (the gateway client's doorbell); set once.
    pub fn set_wake(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let _ = self.wake.set(wake);
    }

    /// Queue `e`, dropping the oldest when full.
    pub fn push(&self, e: NodeEvent) {
        {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.len() >= self.max {
                q.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(e);
        }
        self.pushed.fetch_add(1, Ordering::Relaxed);
        if let Some(w) = self.wake.get() {
            w();
        }
    }

    /// The oldest event waiting, if any.
    pub fn pop(&self) -> Option<NodeEvent> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    /// Hand a question to the gateway client; refused while another waits to go.
    pub fn ask(&self, q: GatewayQuestion) -> Result<(), String> {
        {
            let mut slot = self.question.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_some() {
                return Err("another question to the gateway is waiting".into());
            }
            *slot = Some(q);
        }
        if let Some(w) = self.wake.get() {
            w();
        }
        Ok(())
    }

    /// The question waiting to go, taken.
    pub fn take_question(&self) -> Option<GatewayQuestion> {
        self.question
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ev(i: usize) -> NodeEvent {
        NodeEvent {
            key: format!("k{i}"),
            title: "t".into(),
            text: "x".into(),
        }
    }

    #[test]
    fn the_oldest_go_first_and_past_the_bound_are_dropped_and_counted() {
        let q = NodeEvents::new(3);
        let rung = Arc::new(AtomicU64::new(0));
        let r = rung.clone();
        q.set_wake(Box::new(move || {
            r.fetch_add(1, Ordering::Relaxed);
        }));
        for i in 0..5 {
            q.push(ev(i));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(q.pushed.load(Ordering::Relaxed), 5);
        assert_eq!(rung.load(Ordering::Relaxed), 5);
        let keys: Vec<String> = std::iter::from_fn(|| q.pop()).map(|e| e.key).collect();
        assert_eq!(keys, ["k2", "k3", "k4"]);
        assert!(q.is_empty());
    }
}
