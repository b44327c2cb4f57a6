//! The gateway found by its mDNS beacon when `[openclaw] url` is empty: browse
//! `_openclaw-gw._tcp.local.` (what the gateway's `bonjour` plugin announces, with
//! @homebridge/ciao) until a usable beacon resolves, and connect to the first.
//!
//! What a beacon says (openclaw 2026.9.6, `extensions/bonjour/src/advertiser.ts`): the
//! instance `<host> (OpenClaw)`, SRV port = the gateway's WS+HTTP port, TXT `role=gateway`,
//! `transport=gateway`, `displayName`, `lanHost`, `gatewayPort`, and `gatewayTls=1` /
//! `gatewayDirectReachable=1` only when true. The gateway announces only with its
//! `bonjour` plugin enabled (`openclaw plugins enable bonjour`; on by default on macOS
//! alone), never in a container unless `OPENCLAW_DISABLE_BONJOUR=0`, and says
//! `gatewayDirectReachable=1` only when it is bound to a non-loopback address. TXT is
//! unauthenticated: the address and port come from the resolved SRV and A/AAAA records,
//! never from `lanHost`/`gatewayPort`.
//!
//! The mDNS daemon (mdns-sd's thread) runs only while looking; it is shut down once a
//! gateway is found, so a connected node has no extra thread.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use mdns_sd::{IfKind, ResolvedService, ServiceDaemon, ServiceEvent};

/// The gateway's service type (`_openclaw-gw._tcp`) in the `local.` domain.
pub(crate) const SERVICE_TYPE: &str = "_openclaw-gw._tcp.local.";

/// How often the search looks at its stop pipe between mDNS events.
const STOP_CHECK: Duration = Duration::from_millis(250);
/// After mDNS could not start (no interface yet, say), the next try.
const RETRY: Duration = Duration::from_secs(5);

/// A usable gateway as its beacon announced it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Beacon {
    /// The instance's full name (`vm (OpenClaw)._openclaw-gw._tcp.local.`).
    pub instance: String,
    /// TXT `displayName` (the gateway machine's name), or the instance's label.
    pub display_name: String,
    /// `ws://addr:port` (`wss://` when the beacon says `gatewayTls=1`).
    pub url: String,
}

/// A resolved beacon as a [`Beacon`], or why it cannot be used.
pub(crate) fn read(r: &ResolvedService) -> Result<Beacon, String> {
    let txt = |k: &str| r.get_property_val_str(k).unwrap_or("").trim().to_string();
    if txt("role") != "gateway" {
        return Err("its TXT does not say role=gateway".into());
    }
    if txt("gatewayDirectReachable") != "1" {
        return Err(
            "it is not directly reachable (bound to loopback on its host: gateway.bind must be lan or custom)"
                .into(),
        );
    }
    let tls = txt("gatewayTls") == "1";
    if tls && !cfg!(feature = "openclaw-tls") {
        return Err("it uses TLS and this build has no openclaw-tls feature".into());
    }
    let mut addrs: Vec<IpAddr> = r
        .get_addresses()
        .iter()
        .map(|a| a.to_ip_addr())
        .filter(reachable)
        .collect();
    addrs.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    let ip = addrs
        .first()
        .ok_or("its records carry no routable address")?;
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let scheme = if tls { "wss" } else { "ws" };
    let instance = r.get_fullname().to_string();
    let label = instance
        .strip_suffix(SERVICE_TYPE)
        .and_then(|s| s.strip_suffix('.'))
        .unwrap_or(&instance)
        .to_string();
    let display = txt("displayName");
    Ok(Beacon {
        display_name: if display.is_empty() { label } else { display },
        url: format!("{scheme}://{host}:{}", r.get_port()),
        instance,
    })
}

/// An address another machine's gateway can be reached at: no loopback, no
/// unspecified or multicast, no IPv6 link-local (a URL cannot carry its scope).
fn reachable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_unspecified() || v4.is_multicast()),
        IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Browse until a usable gateway resolves (`Some`) or `stopped` says to stop (`None`).
/// `stopped(d)` waits up to `d` for the stop pipe and says whether it rang. `last`: the
/// url found before (a reconnect looks again): finding it again is not news.
pub(crate) fn look(stopped: impl Fn(Duration) -> bool, last: &str) -> Option<Beacon> {
    if last.is_empty() {
        log::info!(
            "openclaw: no [openclaw] url; looking for a gateway on the LAN (mDNS {SERVICE_TYPE})"
        );
    }
    let mut said_unusable: HashSet<String> = HashSet::new();
    let mut said_no_mdns = false;
    loop {
        let daemon = match ServiceDaemon::new() {
            Ok(d) => d,
            Err(e) => {
                if !said_no_mdns {
                    log::warn!(
                        "openclaw: cannot start mDNS to look for a gateway ({e}); retrying every {} s",
                        RETRY.as_secs()
                    );
                    said_no_mdns = true;
                }
                if stopped(RETRY) {
                    return None;
                }
                continue;
            }
        };
        let _ = daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6]);
        let found = match daemon.browse(SERVICE_TYPE) {
            Ok(events) => wait(&events, &stopped, &mut said_unusable, last),
            Err(e) => {
                log::warn!("openclaw: cannot browse for {SERVICE_TYPE}: {e}");
                Err(stopped(RETRY))
            }
        };
        // Only while looking: the daemon's thread ends here.
        if let Ok(rx) = daemon.shutdown() {
            let _ = rx.recv_timeout(Duration::from_secs(1));
        }
        match found {
            Ok(b) => return Some(b),
            Err(true) => return None,
            Err(false) => continue,
        }
    }
}

/// The first usable beacon; `Err(stopped)` when the browse ended without one.
fn wait(
    events: &mdns_sd::Receiver<ServiceEvent>,
    stopped: &impl Fn(Duration) -> bool,
    said_unusable: &mut HashSet<String>,
    last: &str,
) -> Result<Beacon, bool> {
    loop {
        match events.recv_timeout(STOP_CHECK) {
            Ok(ServiceEvent::ServiceResolved(r)) => match read(&r) {
                Ok(b) => {
                    let line = format!(
                        "openclaw: found gateway {:?} ({}) at {} by its mDNS beacon",
                        b.display_name, b.instance, b.url
                    );
                    if b.url == last {
                        log::debug!("{line}");
                    } else {
                        log::info!("{line}");
                    }
                    return Ok(b);
                }
                Err(why) => {
                    // A beacon re-resolves every few minutes: said once.
                    if said_unusable.insert(r.get_fullname().to_string()) {
                        log::info!(
                            "openclaw: skipping gateway beacon {}: {why}",
                            r.get_fullname()
                        );
                    }
                }
            },
            Ok(_) | Err(mdns_sd::RecvTimeoutError::Timeout) => {}
            Err(mdns_sd::RecvTimeoutError::Disconnected) => return Err(stopped(RETRY)),
        }
        if stopped(Duration::ZERO) {
            return Err(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdns_sd::ServiceInfo;

    /// A beacon as the gateway's advertiser builds it (TXT keys and instance name as in
    /// `extensions/bonjour/src/advertiser.ts`, openclaw 2026.9.6).
    fn beacon(addrs: &[&str], extra: &[(&str, &str)]) -> ResolvedService {
        let mut props = vec![
            ("role", "gateway"),
            ("gatewayPort", "18789"),
            ("lanHost", "vm.local"),
            ("displayName", "vm"),
            ("transport", "gateway"),
        ];
        props.extend_from_slice(extra);
        let ips: Vec<IpAddr> = addrs.iter().map(|a| a.parse().unwrap()).collect();
        ServiceInfo::new(
            SERVICE_TYPE,
            "vm (OpenClaw)",
            "vm.local.",
            &ips[..],
            18789,
            &props[..],
        )
        .unwrap()
        .as_resolved_service()
    }

    #[test]
    fn a_reachable_beacon_gives_the_gateway_url_from_its_records() {
        let b = read(&beacon(
            &["fe80::1", "10.77.0.1", "::1"],
            &[("gatewayDirectReachable", "1")],
        ))
        .unwrap();
        assert_eq!(b.url, "ws://10.77.0.1:18789");
        assert_eq!(b.display_name, "vm");
        assert_eq!(b.instance, "vm (OpenClaw)._openclaw-gw._tcp.local.");
        let v6 = read(&beacon(&["fd00::7"], &[("gatewayDirectReachable", "1")])).unwrap();
        assert_eq!(v6.url, "ws://[fd00::7]:18789");
    }

    #[test]
    fn unusable_beacons_say_why() {
        let loopback_bound = read(&beacon(&["10.77.0.1"], &[])).unwrap_err();
        assert!(
            loopback_bound.contains("not directly reachable"),
            "{loopback_bound}"
        );
        let no_addr = read(&beacon(&["127.0.0.1"], &[("gatewayDirectReachable", "1")]));
        assert!(no_addr.unwrap_err().contains("no routable address"));
        let tls = read(&beacon(
            &["10.77.0.1"],
            &[("gatewayDirectReachable", "1"), ("gatewayTls", "1")],
        ));
        if cfg!(feature = "openclaw-tls") {
            assert_eq!(tls.unwrap().url, "wss://10.77.0.1:18789");
        } else {
            assert!(tls.unwrap_err().contains("openclaw-tls"));
        }
    }
}
