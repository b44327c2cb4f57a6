//! systemd integration (`Type=notify`): READY=1 once the event loop turns with the store
//! open and HTTP bound, human-readable STATUS= lines, and watchdog pings sent from the
//! event loop itself, so a stuck loop stops them and systemd restarts the process.
//! Without `NOTIFY_SOCKET` (a plain foreground run) every call here does nothing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sd_notify::NotifyState;

use crate::app::Shared;

/// Ping at half the watchdog interval systemd asked for (`WATCHDOG_USEC`).
pub fn watchdog_every() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

pub fn ready(status: &str) {
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)]) {
        log::warn!("systemd: cannot send READY: {e}");
    }
}

fn send(state: &[NotifyState]) {
    let _ = sd_notify::notify(state);
}

/// One line for `systemctl status`: e.g. "12 sources, mqtt connected, ollama unreachable
/// (queueing 3), store ok".
pub fn status_line(shared: &Shared) -> String {
    #[cfg(feature = "agent")]
    use crate::agent::worker::{LLM_MODEL_MISSING, LLM_REACHABLE, LLM_UNREACHABLE};
    #[cfg(feature = "mqtt")]
    use crate::edges::mqtt::connection::state_name;
    let sources = shared
        .registry
        .all()
        .iter()
        .filter(|i| i.live.count.load(Ordering::Relaxed) > 0)
        .count();
    #[cfg(not(feature = "mqtt"))]
    let mqtt = "mqtt not built in";
    #[cfg(feature = "mqtt")]
    let mqtt = match &shared.mqtt {
        Some(m) => format!("mqtt {}", state_name(m.stats.state.load(Ordering::Relaxed))),
        None => "mqtt off".into(),
    };
    #[cfg(not(feature = "agent"))]
    let llm = "agent not built in";
    #[cfg(feature = "agent")]
    let llm = match &shared.llm {
        Some(l) => {
            let queued = l.queued.load(Ordering::Relaxed);
            match l.state.load(Ordering::Relaxed) {
                LLM_REACHABLE => "ollama reachable".to_string(),
                LLM_UNREACHABLE if queued > 0 => format!("ollama unreachable (queueing {queued})"),
                LLM_UNREACHABLE => "ollama unreachable".to_string(),
                LLM_MODEL_MISSING => {
                    format!("ollama model {} missing", shared.settings.ollama.model)
                }
                _ => "ollama not contacted yet".to_string(),
            }
        }
        None => "agent off".into(),
    };
    let store = if shared.writer.degraded.load(Ordering::Relaxed) {
        "store degraded"
    } else {
        "store ok"
    };
    format!("{sources} sources reporting, {mqtt}, {llm}, {store}")
}

/// Runs on the event loop: READY at once (the loop is turning), then watchdog pings and
/// status updates. If the loop stalls, this task stops and so do the pings.
pub async fn run(shared: Arc<Shared>) {
    let mut last = status_line(&shared);
    ready(&last);
    let every = watchdog_every();
    // Without a watchdog, refresh the status line now and then (it is cheap).
    let period = every.unwrap_or(Duration::from_secs(30));
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return; // not under systemd: nothing to tell anyone
    }
    loop {
        smol::Timer::after(period).await;
        if every.is_some() {
            send(&[NotifyState::Watchdog]);
        }
        let now = status_line(&shared);
        if now != last {
            send(&[NotifyState::Status(&now)]);
            last = now;
        }
    }
}
