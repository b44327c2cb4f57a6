//! How an external program is started, for every kind that runs one (the `exec` source,
//! the `exec` tool): the program and its arguments without a shell, and without the
//! agent's own secrets or its systemd socket in the environment (`[http] token` and
//! `[mqtt] password` may come from `SMOLLAMA_*` variables; `NOTIFY_SOCKET` would let the
//! program talk to systemd as the agent).

use std::process::Command;

/// A command for `argv` (`argv[0]` the program), with the environment cleaned as above.
/// The caller sets the pipes and anything else it needs.
pub fn command(argv: &[String]) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SMOLLAMA_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
    cmd
}
