//! mDNS/DNS-SD discovery (mdns-sd, `docs/multi-node.md` "Discovery"): this node announced
//! as `<node>._smollama._tcp.local.`, the others browsed into the node directory.
//!
//! mdns-sd runs its own thread, `mDNS_daemon` (its name is the crate's: one thread for
//! the sockets, the record cache, probing and retransmissions, talked to over channels);
//! our side is one task on the main event loop (`browse.rs`) and nothing else.
//!
//! - `interfaces.rs`: the LAN addresses (up, multicast, never loopback);
//! - `announce.rs`: the service record and TXT, and a peer's read back;
//! - `browse.rs`: events into the directory, verification rounds, expiry.

mod announce;
mod browse;
pub mod interfaces;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mdns_sd::{IfKind, ServiceDaemon};

use crate::config::Settings;
use crate::nodes::NodeDirectory;

/// How long a clean stop waits for mdns-sd to send the goodbye and stop.
const STOP_WAIT: Duration = Duration::from_secs(1);

/// The running discovery; `stop` sends the goodbye (peers drop this node at once).
pub struct MdnsHandle {
    daemon: ServiceDaemon,
    announced: Option<String>,
}

impl MdnsHandle {
    pub fn stop(self) {
        if let Some(full) = &self.announced
            && let Ok(rx) = self.daemon.unregister(full)
        {
            match rx.recv_timeout(STOP_WAIT) {
                Ok(_) => log::info!("discovery: goodbye sent for {full}"),
                Err(_) => log::warn!("discovery: the goodbye for {full} was not confirmed in time"),
            }
        }
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = rx.recv_timeout(STOP_WAIT);
        }
    }
}

/// Why discovery does not run here, if it does not (logged once by the caller).
pub fn unavailable(settings: &Settings, have_interfaces: bool) -> Option<String> {
    let d = &settings.discovery;
    if !d.enabled {
        return Some("off ([discovery] enabled = false)".into());
    }
    if !(d.announce || d.browse) {
        return Some("off ([discovery] announce and browse are both false)".into());
    }
    let bind = settings.http.bind;
    if !settings.http.enabled {
        return Some("off: [http] enabled = false, so there is no port to announce".into());
    }
    if bind.ip().is_loopback() {
        return Some(format!(
            "off: HTTP listens on {bind} only, so no other node could reach the announced port; set [http] bind = \"0.0.0.0:{}\" (and a token) to announce and browse",
            bind.port()
        ));
    }
    if !have_interfaces {
        return Some("off: no network interface is up with multicast and a LAN address (mDNS needs one); nodes are still learned over MQTT".into());
    }
    None
}

/// Start announcing and browsing. Returns the handle and the browse task (for the main
/// executor; it ends when the daemon stops), or `None` with the reason logged.
pub fn start(
    settings: &Settings,
    directory: Arc<NodeDirectory>,
) -> Option<(MdnsHandle, impl Future<Output = ()> + use<>)> {
    let d = &settings.discovery;
    let daemon = match ServiceDaemon::new() {
        Ok(daemon) => daemon,
        Err(e) => {
            log::info!(
                "discovery: off: cannot start mDNS ({e}); nodes are still learned over MQTT"
            );
            return None;
        }
    };
    // Never on loopback (127.x is no address for another machine); only the bound
    // address's interface when HTTP is bound to one address.
    let _ = daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6]);
    let bind: SocketAddr = settings.http.bind;
    if !bind.ip().is_unspecified() {
        let _ = daemon.disable_interface(IfKind::All);
        let _ = daemon.enable_interface(IfKind::Addr(bind.ip()));
    }
    let ty = announce::ty_domain(&d.service_type);
    let (me, own) = directory.me();
    let mut announced = None;
    if d.announce {
        match announce::service(&ty, me, own).and_then(|s| {
            let full = s.get_fullname().to_string();
            daemon.register(s).map(|()| full).map_err(|e| e.to_string())
        }) {
            Ok(full) => {
                log::info!(
                    "discovery: announcing {full} at {} port {}",
                    own.addresses
                        .iter()
                        .map(|ip| ip.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    own.port
                );
                announced = Some(full);
            }
            Err(e) => log::warn!("discovery: cannot announce this node: {e}"),
        }
    }
    let events = if d.browse {
        match daemon.browse(&ty) {
            Ok(rx) => Some(rx),
            Err(e) => {
                log::warn!("discovery: cannot browse for {ty}: {e}");
                None
            }
        }
    } else {
        None
    };
    let task = {
        let daemon = daemon.clone();
        async move {
            if let Some(events) = events {
                browse::run(browse::Browse {
                    daemon,
                    events,
                    ty,
                    directory,
                })
                .await;
            }
        }
    };
    Some((MdnsHandle { daemon, announced }, task))
}
