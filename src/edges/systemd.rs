//! systemd integration (`Type=notify`): READY=1 once the event loop turns with the store
//! open and HTTP bound, human-readable STATUS= lines, and watchdog pings sent from the
//! event loop itself, so a stuck loop stops them and systemd restarts the process.
//! Without `NOTIFY_SOCKET` (a plain foreground run) every call here does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

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

/// Runs on the event loop: READY at once (the loop is turning), then watchdog pings and
/// status updates. If the loop stalls, this task stops and so do the pings. `status_line`
/// renders the STATUS= line (app passes the status module's; this edge does not look
/// inside the agent).
pub async fn run(status_line: impl Fn() -> String) {
    let mut last = status_line();
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
        let now = status_line();
        if now != last {
            send(&[NotifyState::Status(&now)]);
            last = now;
        }
    }
}
