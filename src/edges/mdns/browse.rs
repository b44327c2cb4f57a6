//! The browsing side, a task on the main event loop (no thread of ours): peers' mDNS
//! events into the node directory, and every third of `cache_ttl` a verification query
//! to each known peer (RFC 6762 §10.4). A peer that answers keeps its records and is
//! marked confirmed; one that does not has its records flushed by mdns-sd, which reports
//! it removed, and the directory drops it. A goodbye (a peer's clean stop) removes it at
//! once. The directory's own expiry after `cache_ttl` is the backstop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mdns_sd::{ServiceDaemon, ServiceEvent};

use super::announce;
use crate::clock::now_us;
use crate::graph::Micros;
use crate::nodes::NodeDirectory;

/// What the task needs.
pub struct Browse {
    pub daemon: ServiceDaemon,
    pub events: mdns_sd::Receiver<ServiceEvent>,
    pub ty: String,
    pub directory: Arc<NodeDirectory>,
}

/// Verification round period and how long a peer has to answer (a LAN peer answers in
/// milliseconds; the shorter the wait, the narrower the window in which a goodbye could
/// be taken for silence, see `run`).
fn periods(cache_ttl: Micros) -> (Duration, Duration) {
    let round = Duration::from_micros((cache_ttl / 3).max(1_000_000) as u64);
    let answer = (round / 2).clamp(Duration::from_millis(500), Duration::from_secs(2));
    (round, answer)
}

enum Wake {
    Event(Option<ServiceEvent>),
    Round,
}

/// Run until the daemon stops (its event channel closes).
pub async fn run(b: Browse) {
    let (round, answer_within) = periods(b.directory.thresholds.cache_ttl);
    let me = b.directory.me().0.to_string();
    // Peers asked to confirm in the last round, not reported removed since.
    let mut asked: HashMap<String, Micros> = HashMap::new();
    let mut next = smol::Timer::after(round);
    loop {
        let wake = smol::future::or(
            async { Wake::Event(b.events.recv_async().await.ok()) },
            async {
                (&mut next).await;
                Wake::Round
            },
        )
        .await;
        match wake {
            Wake::Event(None) => return,
            Wake::Event(Some(ServiceEvent::ServiceResolved(r))) => {
                let Some(name) = announce::instance_name(r.get_fullname(), &b.ty) else {
                    continue;
                };
                if name == me {
                    continue;
                }
                let a = announce::announcement(&r);
                let line = format!(
                    "discovery: {name} at {} port {} ({}, version {})",
                    a.addresses
                        .iter()
                        .map(|ip| ip.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    a.port,
                    if a.node_type.is_empty() {
                        "unknown type"
                    } else {
                        &a.node_type
                    },
                    a.version
                );
                // Re-resolved unchanged (a record refreshed): only the first or a change is news.
                if b.directory.announced(name, a, now_us()) {
                    log::info!("{line}");
                } else {
                    log::debug!("{line}");
                }
            }
            Wake::Event(Some(ServiceEvent::ServiceRemoved(_, fullname))) => {
                let Some(name) = announce::instance_name(&fullname, &b.ty) else {
                    continue;
                };
                // Removed when its time to answer ran out (mdns-sd flushes the records
                // then, on its timer): it did not answer. At any other time the removal
                // is a goodbye (or, rarely, its records' own TTL running out). A goodbye
                // that lands in that one-second window is counted as silence: the node
                // is gone either way, only the word differs.
                let within = answer_within.as_micros() as Micros;
                let silent = asked.remove(name).is_some_and(|at| {
                    let since = now_us() - at;
                    since >= within - 250_000 && since <= within + 750_000
                });
                let goodbye = !silent;
                log::info!(
                    "discovery: {name} {}",
                    if goodbye {
                        "said goodbye"
                    } else {
                        "no longer answers; dropped"
                    }
                );
                b.directory.mdns_gone(name, goodbye);
            }
            Wake::Event(Some(_)) => {}
            Wake::Round => {
                let now = now_us();
                // Still there a round after we asked: it answered in time.
                for (name, _) in asked.drain() {
                    b.directory.confirmed(&name, now);
                }
                for name in b.directory.expire(now) {
                    log::info!("discovery: {name} not confirmed within cache_ttl; dropped");
                }
                for name in b.directory.mdns_names() {
                    let full = format!("{name}.{}", b.ty);
                    match b.daemon.verify(full, answer_within) {
                        Ok(()) => {
                            asked.insert(name, now);
                        }
                        Err(e) => log::debug!("discovery: cannot ask {name} to confirm: {e}"),
                    }
                }
                next.set_after(round);
            }
        }
    }
}
