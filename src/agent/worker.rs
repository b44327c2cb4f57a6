//! The agent's thread ("llm"): takes questions (from the intake, `intake.rs`: MQTT,
//! HTTP) one at a time, runs the tool loop against the model server (`edges::llm`: Ollama
//! or an OpenAI-compatible one), and sends the answer back
//! where the question came from (`messages::Answer::deliver`). One model call at a time
//! per node: a small board cannot run two, and the observation loop queues here too.
//!
//! When the model server is away, `fallback_mode = "queue"` keeps questions (bounded, persisted in
//! the store so a restart does not lose them) and answers them in order once a probe
//! finds the server again; `"skip"` answers at once with an error payload, and so does a
//! question whose asker cannot wait (an HTTP request).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use super::tool_loop;
use super::tools::ToolContext;
use super::tools::registry::ToolRegistry;
use crate::clock::{iso8601, now_us};
use crate::config::settings::FallbackMode;
use crate::edges::llm::{Llm, LlmError};
use crate::graph::Micros;
use crate::messages::{Answer, EventKind, PublishTx, Question, Undelivered};

pub const LLM_UNKNOWN: u8 = 0;
pub const LLM_REACHABLE: u8 = 1;
pub const LLM_UNREACHABLE: u8 = 2;
pub const LLM_MODEL_MISSING: u8 = 3;

pub fn llm_state_name(s: u8) -> &'static str {
    match s {
        LLM_REACHABLE => "reachable",
        LLM_UNREACHABLE => "unreachable",
        LLM_MODEL_MISSING => "model missing",
        _ => "not contacted yet",
    }
}

#[derive(Default)]
pub struct LlmStats {
    pub state: AtomicU8,
    pub questions: AtomicU64,
    pub answered: AtomicU64,
    pub failed: AtomicU64,
    /// Model calls (rounds) and their total time, for the mean latency.
    pub calls: AtomicU64,
    pub call_us: AtomicU64,
    /// Seconds from a question's start to its answer (tool rounds included).
    pub answer_latency: crate::graph::histogram::Histogram,
    pub queued: AtomicU64,
    /// Questions dropped because the queue was full (oldest first).
    pub queue_dropped: AtomicU64,
    /// Bytes of question text handed to this thread and not yet taken up (the intake
    /// adds, the thread subtracts; bounded by `[agent] queue_kb`).
    pub arriving_bytes: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// The tools' bounds hit (shared with the tools' context).
    pub tools: Arc<super::tools::ToolStats>,
}

impl LlmStats {
    pub(crate) fn set_error(&self, e: &str) {
        if let Ok(mut l) = self.last_error.lock() {
            *l = Some(e.to_string());
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

pub struct AgentHandle {
    pub questions: async_channel::Sender<Question>,
    pub stats: Arc<LlmStats>,
    stop: async_channel::Sender<()>,
    /// The tools' stop flag (`ToolContext::stopping`).
    stopping: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AgentHandle {
    /// Stop after the question in progress (queued ones stay in the store); an exec tool
    /// it is running is killed.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.stop.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const QUEUE_KEY: &str = "agent_queue";
/// Probing a missing server: first wait, doubling up to the maximum.
const PROBE_MIN: Duration = Duration::from_secs(2);
const PROBE_MAX: Duration = Duration::from_secs(60);

pub struct Agent {
    pub llm: Llm,
    pub tools: ToolRegistry,
    pub ctx: ToolContext,
    pub publish: Option<PublishTx>,
    pub stats: Arc<LlmStats>,
    /// The adaptive stage's volatile/calm events (from an observer sink); with
    /// `[memory] observe` the observation loop runs on this thread too.
    pub changes: Option<async_channel::Receiver<crate::graph::Change>>,
}

/// Sleeps until `at` (at once if it has passed); forever if `None`.
async fn sleep_until(at: Option<Micros>) {
    match at {
        Some(at) => {
            let d = (at - now_us()).max(0) as u64;
            smol::Timer::after(Duration::from_micros(d)).await;
        }
        None => std::future::pending().await,
    }
}

pub fn start(agent: Agent) -> Option<AgentHandle> {
    let (tx, rx) = async_channel::bounded::<Question>(64);
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let stats = agent.stats.clone();
    let stopping = agent.ctx.stopping.clone();
    let thread = std::thread::Builder::new()
        .name("llm".into())
        .spawn(move || {
            let mut w = Worker::new(agent);
            smol::block_on(w.run(rx, stop_rx));
        })
        .ok()?;
    Some(AgentHandle {
        questions: tx,
        stats,
        stop: stop_tx,
        stopping,
        thread: Some(thread),
    })
}

struct Worker {
    a: Agent,
    schedule: Option<crate::memory::schedule::ObserveSchedule>,
    reembed: super::memory_work::ReembedJob,
    queue: VecDeque<Question>,
    probe_wait: Duration,
    missing_model_reported: bool,
    /// The observation due time last logged (debug), so it is logged when it moves.
    logged_due: Option<Micros>,
}

impl Worker {
    fn new(a: Agent) -> Worker {
        let queue: VecDeque<Question> = a
            .ctx
            .store
            .state_get(QUEUE_KEY)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<Vec<Json>>(&b).ok())
            .unwrap_or_default()
            .iter()
            .filter_map(Question::from_json)
            .collect();
        if !queue.is_empty() {
            log::info!(
                "agent: {} question(s) waiting from before the restart",
                queue.len()
            );
        }
        a.stats.queued.store(queue.len() as u64, Ordering::Relaxed);
        let m = &a.ctx.settings.memory;
        let schedule = m.observe.then(|| {
            crate::memory::schedule::ObserveSchedule::new(m.observe_min, m.observe_max, now_us())
        });
        let mut reembed = super::memory_work::ReembedJob::default();
        reembed.plan(&a);
        Worker {
            schedule,
            reembed,
            a,
            queue,
            probe_wait: PROBE_MIN,
            missing_model_reported: false,
            logged_due: None,
        }
    }

    /// Logs (debug) when the next observation is due, each time that moves.
    fn log_next_observation(&mut self, due: Option<Micros>) {
        let (Some(due), Some(s)) = (due, self.schedule.as_ref()) else {
            return;
        };
        if self.logged_due == Some(due) {
            return;
        }
        self.logged_due = Some(due);
        // Rounded (`5m`, `200ms`), not `299987654us`.
        let left = (due - now_us()).max(0);
        let unit = if left < 10_000_000 { 1_000 } else { 1_000_000 };
        log::debug!(
            "memory: next observation at {} (in {}; {})",
            iso8601(due),
            crate::config::duration::Dur((left + unit / 2) / unit * unit),
            if s.is_volatile() {
                "a source was volatile: min interval"
            } else {
                "calm: max interval"
            }
        );
    }

    async fn run(
        &mut self,
        rx: async_channel::Receiver<Question>,
        stop: async_channel::Receiver<()>,
    ) {
        enum Wake {
            Question(Question),
            Probe,
            Change(crate::graph::Change),
            Observe,
            Reembed,
            Stop,
        }
        let changes = self.a.changes.clone();
        loop {
            let reembed_at = self.reembed.due();
            let waiting = !self.queue.is_empty();
            let wait = self.probe_wait;
            if let Some(s) = self.schedule.as_mut() {
                s.follow_clock(now_us());
            }
            let due = self.schedule.as_ref().map(|s| s.next_due());
            self.log_next_observation(due);
            let wake = smol::future::or(
                async {
                    let _ = stop.recv().await;
                    Wake::Stop
                },
                smol::future::or(
                    async {
                        match rx.recv().await {
                            Ok(q) => Wake::Question(q),
                            Err(_) => std::future::pending().await,
                        }
                    },
                    smol::future::or(
                        async {
                            if waiting {
                                smol::Timer::after(wait).await;
                                Wake::Probe
                            } else {
                                std::future::pending().await
                            }
                        },
                        async {
                            let change = async {
                                match &changes {
                                    Some(c) => match c.recv().await {
                                        Ok(ch) => Wake::Change(ch),
                                        Err(_) => std::future::pending().await,
                                    },
                                    None => std::future::pending().await,
                                }
                            };
                            let observe = async {
                                sleep_until(due).await;
                                Wake::Observe
                            };
                            // Last: re-embedding yields to everything else.
                            let reembed = async {
                                sleep_until(reembed_at).await;
                                Wake::Reembed
                            };
                            smol::future::or(change, smol::future::or(observe, reembed)).await
                        },
                    ),
                ),
            )
            .await;
            match wake {
                Wake::Stop => return,
                Wake::Change(ch) => {
                    if let Some(s) = self.schedule.as_mut() {
                        s.on_change(&ch, now_us());
                    }
                }
                Wake::Observe => {
                    if let Some(s) = self.schedule.as_mut() {
                        s.ran(now_us());
                    }
                    // Questions waiting for the server come first; a look can wait.
                    if self.queue.is_empty() {
                        super::memory_work::compact_if_low(&self.a);
                        // Devices with an observation hook (the LED) show the cycle.
                        self.a.ctx.hardware.devices.observing(true);
                        super::memory_work::observe(&self.a);
                        self.a.ctx.hardware.devices.observing(false);
                        self.reembed.plan(&self.a);
                    }
                }
                Wake::Reembed => self.reembed.step(&self.a),
                Wake::Question(q) => {
                    self.a.stats.questions.fetch_add(1, Ordering::Relaxed);
                    self.a
                        .stats
                        .arriving_bytes
                        .fetch_sub(q.text.len() as u64, Ordering::Relaxed);
                    // An asker that cannot wait (HTTP) is tried at once, and answered
                    // with the error if the server is still away.
                    if self.queue.is_empty() || !q.origin.can_wait() {
                        self.answer(q);
                        // Items other nodes sent (sync) arrive without vectors.
                        self.reembed.plan(&self.a);
                    } else {
                        // Keep the order: it waits behind the others.
                        self.enqueue(q);
                    }
                }
                Wake::Probe => match self.a.llm.version() {
                    Ok(v) => {
                        log::info!(
                            "agent: the model server ({v}) is back; answering {} queued question(s)",
                            self.queue.len()
                        );
                        self.a.stats.state.store(LLM_REACHABLE, Ordering::Relaxed);
                        self.probe_wait = PROBE_MIN;
                        self.drain();
                    }
                    Err(_) => self.probe_wait = (self.probe_wait * 2).min(PROBE_MAX),
                },
            }
        }
    }

    /// Answer queued questions in order until one fails for want of the server.
    fn drain(&mut self) {
        while let Some(q) = self.queue.pop_front() {
            self.save_queue();
            if !self.answer(q) {
                return;
            }
        }
    }

    /// Answer one question; false when it went (back) to the queue.
    fn answer(&mut self, q: Question) -> bool {
        // From the question's arrival at the MQTT worker, so the agent's overhead includes
        // the hop to this thread.
        let waited = (now_us() - q.received).max(0) as u64;
        let t0 = Instant::now();
        // For this question only: the observation loop on this thread is not trusted.
        self.a.ctx.trusted = q.origin.trusted(self.a.ctx.settings.agent.trust_mqtt);
        let result = match self.a.ctx.events.clone() {
            // With the live events on, the answer's text goes out as it arrives
            // (`answer_part`), a few pieces at a time, before the whole `answer`.
            Some(hub) => {
                let mut parts = AnswerParts::new(&q.id, &hub);
                let r = tool_loop::run_streamed(
                    &self.a.llm,
                    &self.a.tools,
                    &self.a.ctx,
                    &self.a.ctx.settings.agent.system_prompt,
                    &q.text,
                    self.a.ctx.settings.agent.max_tool_iterations,
                    &mut |piece| parts.push(piece),
                );
                parts.flush();
                r
            }
            None => tool_loop::run(
                &self.a.llm,
                &self.a.tools,
                &self.a.ctx,
                &self.a.ctx.settings.agent.system_prompt,
                &q.text,
                self.a.ctx.settings.agent.max_tool_iterations,
            ),
        };
        self.a.ctx.trusted = false;
        let elapsed = t0.elapsed();
        match result {
            Ok(out) => {
                self.a.stats.state.store(LLM_REACHABLE, Ordering::Relaxed);
                self.a
                    .stats
                    .calls
                    .fetch_add(out.rounds as u64, Ordering::Relaxed);
                self.a
                    .stats
                    .call_us
                    .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
                self.a.stats.answered.fetch_add(1, Ordering::Relaxed);
                self.a.stats.answer_latency.observe(elapsed);
                log::info!(
                    question = q.id.as_str(), rounds = out.rounds, ms = elapsed.as_millis() as u64,
                    tools = out.tools_used.join(",").as_str(), complete = out.answer.is_some();
                    "agent: answered question {} in {} ms ({} round(s))",
                    q.id, elapsed.as_millis(), out.rounds
                );
                let body = json!({
                    "id": q.id,
                    "question": q.text,
                    "answer": out.answer,
                    "complete": out.answer.is_some(),
                    "tools_used": out.tools_used,
                    "rounds": out.rounds,
                    "duration_ms": (elapsed.as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
                    "model_ms": (out.model_us as f64 / 100.0).round() / 10.0,
                    // Agent time per model round, excluding the model: from the question
                    // reaching the MQTT worker to the answer handed back to it.
                    "overhead_us_per_round": (waited + elapsed.as_micros() as u64).saturating_sub(out.model_us) / u64::from(out.rounds.max(1)),
                    "node": self.a.ctx.settings.node.name,
                    "model": self.a.llm.model(),
                    "timestamp": iso8601(now_us()),
                });
                self.reply(&q, body);
                true
            }
            Err(e) => self.failed(q, e),
        }
    }

    fn failed(&mut self, q: Question, e: LlmError) -> bool {
        self.a.stats.set_error(&e.to_string());
        let model_missing = e.is_model_missing();
        if model_missing {
            self.a
                .stats
                .state
                .store(LLM_MODEL_MISSING, Ordering::Relaxed);
            if !self.missing_model_reported {
                log::error!("agent: {e}");
                self.missing_model_reported = true;
            }
        } else if e.is_retryable() {
            self.a.stats.state.store(LLM_UNREACHABLE, Ordering::Relaxed);
        }
        if e.is_retryable()
            && self.a.ctx.settings.agent.fallback_mode == FallbackMode::Queue
            && q.origin.can_wait()
        {
            log::warn!(
                "agent: model server unavailable ({e}); question {} queued",
                q.id
            );
            self.queue.push_front(q);
            self.trim_queue();
            self.save_queue();
            return false;
        }
        self.a.stats.failed.fetch_add(1, Ordering::Relaxed);
        log::warn!("agent: question {} not answered: {e}", q.id);
        let body = json!({
            "id": q.id,
            "question": q.text,
            "error": e.to_string(),
            "node": self.a.ctx.settings.node.name,
            "timestamp": iso8601(now_us()),
        });
        self.reply(&q, body);
        true
    }

    fn enqueue(&mut self, q: Question) {
        self.queue.push_back(q);
        self.trim_queue();
        self.save_queue();
    }

    fn trim_queue(&mut self) {
        let max = self.a.ctx.settings.agent.queue_max as usize;
        let max_bytes = u64::from(self.a.ctx.settings.agent.queue_kb) << 10;
        let bytes = |q: &VecDeque<Question>| q.iter().map(|q| q.text.len() as u64).sum::<u64>();
        while self.queue.len() > max || (self.queue.len() > 1 && bytes(&self.queue) > max_bytes) {
            if let Some(old) = self.queue.pop_front() {
                self.a.stats.queue_dropped.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "agent: question queue full ({max} questions or {} KiB: [agent] queue_max, queue_kb); dropped the oldest ({})",
                    max_bytes >> 10,
                    old.id
                );
            }
        }
    }

    fn save_queue(&self) {
        self.a
            .stats
            .queued
            .store(self.queue.len() as u64, Ordering::Relaxed);
        let all: Vec<Json> = self.queue.iter().filter_map(Question::to_json).collect();
        let bytes = serde_json::to_vec(&all).unwrap_or_default();
        if let Err(e) = self.a.ctx.store.state_put(QUEUE_KEY, &bytes) {
            log::error!("agent: cannot save the question queue: {e}");
        }
    }

    /// Send `body` back where `q` came from (and to the live events, whatever the origin).
    fn reply(&self, q: &Question, body: Json) {
        if let Some(hub) = &self.a.ctx.events {
            hub.publish_json(EventKind::Answer, &body);
        }
        let answer = Answer {
            origin: q.origin.clone(),
            body: body.clone(),
        };
        let answer_topic = self.a.ctx.settings.answer_topic();
        match answer.deliver(self.a.publish.as_ref(), &answer_topic) {
            Ok(()) => {}
            Err(Undelivered::NoMqtt) => {
                log::info!("agent: answer to {} (no MQTT to publish it): {body}", q.id);
            }
            Err(Undelivered::QueueFull) => log::warn!(
                "agent: could not hand the answer to {} to MQTT (queue full)",
                q.id
            ),
            Err(Undelivered::AskerGone) => log::info!(
                "agent: the asker of {} ({}) stopped waiting before the answer came",
                q.id,
                q.origin.describe()
            ),
        }
    }
}

/// An answer's text on its way to the live events: pieces gathered until there are
/// `PART_BYTES` of them or `PART_EVERY` passed, so a model writing a token at a time
/// costs a handful of events a second, not one per token.
struct AnswerParts<'a> {
    id: &'a str,
    hub: &'a crate::messages::EventHub,
    text: String,
    since: Instant,
}

const PART_BYTES: usize = 64;
const PART_EVERY: std::time::Duration = std::time::Duration::from_millis(150);

impl<'a> AnswerParts<'a> {
    fn new(id: &'a str, hub: &'a crate::messages::EventHub) -> AnswerParts<'a> {
        AnswerParts {
            id,
            hub,
            text: String::new(),
            since: Instant::now(),
        }
    }

    fn push(&mut self, piece: &str) {
        self.text.push_str(piece);
        if self.text.len() >= PART_BYTES || self.since.elapsed() >= PART_EVERY {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.text.is_empty() {
            self.hub.publish_json(
                crate::messages::EventKind::AnswerPart,
                &json!({ "id": self.id, "text": self.text }),
            );
            self.text.clear();
        }
        self.since = Instant::now();
    }
}
