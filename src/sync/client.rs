//! The HTTP sync client, for peers that share no broker: the original's protocol and
//! retry rules (reference §8). A round with a peer is push (our own entries it has not
//! accepted yet, `POST /api/sync/push`), then pull (`GET /api/sync/pull?since=&limit=`,
//! since the highest Lamport time it sent us before). A request is retried after 1 s,
//! 2 s, 4 s, ... on a server error (5xx), a connection error or a timeout, up to
//! `retry_max_attempts`; any other status fails at once. After a failed round the next
//! waits `min(interval × 2^failures, 1 h)`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::apply;
use super::stats::{STATS, SyncStats};
use crate::config::settings::SyncSettings;
use crate::graph::Micros;
use crate::store::Store;
use crate::store::sync_log::Entry;

/// Rounds of push or pull per peer per sync, at most (each `batch` entries).
const MAX_ROUNDS: usize = 20;
/// An answer larger than this is refused.
const MAX_ANSWER: u64 = 16 << 20;

/// One peer's schedule.
struct Peer {
    url: String,
    failures: u32,
    /// When the next round is due (follows a backward step of the clock).
    next: super::worker::Every,
}

/// The client: every configured peer, synced in turn when due.
pub struct Client {
    store: Arc<Store>,
    node: String,
    settings: SyncSettings,
    agent: ureq::Agent,
    peers: Vec<Peer>,
    /// Whether to stop (checked between retries, so a stop is never held a minute).
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

/// Why a request failed: worth retrying or not.
enum Failure {
    Retry(String),
    Fatal(String),
}

impl Client {
    pub fn new(
        store: Arc<Store>,
        node: &str,
        settings: &SyncSettings,
        stopping: Arc<std::sync::atomic::AtomicBool>,
    ) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .user_agent(concat!("smollama/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client {
            store,
            node: node.to_string(),
            peers: settings
                .peers
                .iter()
                .map(|u| Peer {
                    url: u.clone(),
                    failures: 0,
                    next: super::worker::Every::new(Micros::MIN, 0),
                })
                .collect(),
            settings: settings.clone(),
            agent,
            stopping,
        }
    }

    /// Sync every peer that is due; returns when the next is.
    pub fn run_due(&mut self, now: Micros) -> Option<Micros> {
        for i in 0..self.peers.len() {
            if !self.peers[i].next.is_due(now) {
                continue;
            }
            let url = self.peers[i].url.clone();
            let r = self.sync(&url);
            let p = &mut self.peers[i];
            match r {
                Ok((pushed, pulled)) => {
                    SyncStats::add(&STATS.peer_ok, 1);
                    p.failures = 0;
                    log::debug!("sync: {url}: pushed {pushed}, pulled {pulled}");
                }
                Err(e) => {
                    SyncStats::add(&STATS.peer_failed, 1);
                    p.failures = p.failures.saturating_add(1);
                    log::warn!("sync: {url}: {e}");
                }
            }
            let wait = (self.settings.interval as f64 * 2f64.powi(p.failures.min(20) as i32))
                .min(3_600e6) as Micros;
            p.next.ran(crate::clock::now_us(), wait);
        }
        let now = crate::clock::now_us();
        self.peers.iter_mut().map(|p| p.next.due(now)).min()
    }

    /// Push then pull with one peer: `(entries accepted, entries received)`.
    fn sync(&self, url: &str) -> Result<(u64, u64), String> {
        let batch = self.settings.batch as usize;
        let (mut pushed, mut pulled) = (0, 0);
        let key = format!("pushed:{url}");
        for _ in 0..MAX_ROUNDS {
            let since = self.store.sync_cursor(&key).map_err(|e| e.to_string())?;
            let entries = self
                .store
                .sync_since(since, batch, Some(&self.node))
                .map_err(|e| e.to_string())?;
            let Some(last) = entries.last().map(|e| e.lamport_ts) else {
                break;
            };
            let list: Vec<Json> = entries.iter().map(Entry::to_json).collect();
            let body = json!({ "node_id": self.node, "entries": list });
            let answer = self.request(&format!("{url}/api/sync/push"), Some(&body))?;
            let accepted = answer
                .get("accepted_ids")
                .and_then(Json::as_array)
                .map_or(0, Vec::len);
            if accepted < entries.len() {
                return Err(format!(
                    "push: {accepted} of {} entries accepted",
                    entries.len()
                ));
            }
            pushed += accepted as u64;
            self.store
                .sync_raise_cursor(&key, last)
                .map_err(|e| e.to_string())?;
            let _ = self.store.sync_raise_cursor(&format!("acked:{url}"), last);
            if entries.len() < batch {
                break;
            }
        }
        let key = format!("pulled:{url}");
        for _ in 0..MAX_ROUNDS {
            let since = self.store.sync_cursor(&key).map_err(|e| e.to_string())?;
            let answer = self.request(
                &format!("{url}/api/sync/pull?since={since}&limit={batch}"),
                None,
            )?;
            let entries = apply::entries_of(answer.get("entries"));
            let Some(top) = entries.iter().map(|e| e.lamport_ts).max() else {
                break;
            };
            let m = apply::merge(&self.store, &entries, self.settings.max_remote_items)
                .map_err(|e| e.to_string())?;
            pulled += m.new;
            self.store
                .sync_raise_cursor(&key, top)
                .map_err(|e| e.to_string())?;
            if entries.len() < batch {
                break;
            }
        }
        Ok((pushed, pulled))
    }

    /// One request with the retry rules; the answer's JSON on 200.
    fn request(&self, url: &str, body: Option<&Json>) -> Result<Json, String> {
        let attempts = self.settings.retry_max_attempts.max(1);
        for attempt in 0..attempts {
            match self.once(url, body) {
                Ok(j) => return Ok(j),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(e)) => {
                    log::debug!("sync: {url}: {e} (attempt {})", attempt + 1);
                    if attempt + 1 < attempts {
                        let wait = Duration::from_secs(1 << attempt.min(10));
                        let until = std::time::Instant::now() + wait;
                        while std::time::Instant::now() < until {
                            if self.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                                return Err("stopping".into());
                            }
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            }
        }
        Err(format!("Max retries ({attempts}) exceeded"))
    }

    fn once(&self, url: &str, body: Option<&Json>) -> Result<Json, Failure> {
        let auth = self
            .settings
            .peer_token
            .as_ref()
            .map(|t| format!("Bearer {}", t.0));
        let resp = match body {
            Some(b) => {
                let mut req = self.agent.post(url);
                if let Some(a) = &auth {
                    req = req.header("Authorization", a.as_str());
                }
                req.header("Content-Type", "application/json")
                    .send(b.to_string().as_bytes())
            }
            None => {
                let mut req = self.agent.get(url);
                if let Some(a) = &auth {
                    req = req.header("Authorization", a.as_str());
                }
                req.call()
            }
        };
        let mut resp = resp.map_err(|e| Failure::Retry(e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(|e| Failure::Retry(e.to_string()))?;
        match status {
            200 => serde_json::from_str(&text)
                .map_err(|e| Failure::Fatal(format!("the answer is not JSON ({e})"))),
            s if s >= 500 => Err(Failure::Retry(format!("HTTP {s}"))),
            s => Err(Failure::Fatal(format!(
                "HTTP {s}: {}",
                text.chars().take(200).collect::<String>()
            ))),
        }
    }
}
