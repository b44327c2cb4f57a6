//! `[discovery]`: mDNS/DNS-SD announcing and browsing, and the node directory's bounds and
//! health thresholds (which nodes this one knows, from mDNS and MQTT).

use super::key::{Key, Section, duration, number, problem_hint, quoted};
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::graph::Micros;

/// How this node finds and judges the others. The Python original's keys, with
/// `cache_ttl_seconds` as the duration `cache_ttl`.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscoverySettings {
    /// mDNS at all (announce and/or browse); off by itself where multicast is unavailable
    /// or HTTP listens on loopback only.
    pub enabled: bool,
    pub announce: bool,
    pub browse: bool,
    /// `_smollama._tcp` (the `.local.` domain is added).
    pub service_type: String,
    /// An mDNS-known node not confirmed for this long is dropped; peers are asked to
    /// confirm every third of it.
    pub cache_ttl: Micros,
    /// A node silent this long is `stale`.
    pub stale_after: Micros,
    /// A node silent this long (and with no `online` status) is `offline`.
    pub offline_after: Micros,
    /// Nodes the directory holds at most; past it new ones are refused (counted).
    pub max_nodes: u32,
}

pub(crate) const SECTION: Section = Section {
    name: "discovery",
    doc: "",
    keys: &[
        Key::new(
            Spec {
                default: "true",
                doc: "mDNS/DNS-SD: announce this node as <[node] name>._smollama._tcp.local. with its LAN addresses and HTTP port, and list the others it hears (GET /api/nodes, smollama nodes). Off by itself, with one log line, where no interface can multicast or [http] bind is a loopback address (nobody could reach the announced port). Needs the mdns feature.",
                ..Spec::new("enabled", Want::Bool)
            },
            |s, v, _| {
                s.discovery.enabled = v.bool()?;
                Ok(())
            },
            |s| Some(s.discovery.enabled.to_string()),
        ),
        Key::new(
            Spec {
                default: "true",
                doc: "Announce this node (with discovery enabled); a goodbye is sent on a clean stop, so peers drop it at once.",
                ..Spec::new("announce", Want::Bool)
            },
            |s, v, _| {
                s.discovery.announce = v.bool()?;
                Ok(())
            },
            |s| Some(s.discovery.announce.to_string()),
        ),
        Key::new(
            Spec {
                default: "true",
                doc: "Browse for other nodes (with discovery enabled).",
                ..Spec::new("browse", Want::Bool)
            },
            |s, v, _| {
                s.discovery.browse = v.bool()?;
                Ok(())
            },
            |s| Some(s.discovery.browse.to_string()),
        ),
        Key::new(
            Spec {
                default: "\"_smollama._tcp\"",
                doc: "The DNS-SD service type announced and browsed (the .local. domain is added). Nodes find each other only with the same one.",
                ..Spec::new("service_type", Want::Text)
            },
            |s, v, _| {
                let t = v.text()?;
                let t = t
                    .trim_end_matches('.')
                    .trim_end_matches(".local")
                    .to_string();
                let ok = t.starts_with('_') && (t.ends_with("._tcp") || t.ends_with("._udp"));
                if !ok {
                    return Err(problem_hint(
                        format!("{t:?} is not a DNS-SD service type"),
                        "give _<name>._tcp or _<name>._udp, e.g. \"_smollama._tcp\"",
                    ));
                }
                s.discovery.service_type = t;
                Ok(())
            },
            |s| quoted(&s.discovery.service_type),
        ),
        Key::new(
            Spec {
                range: Some((2.0, 86400.0)),
                default: "\"5m\"",
                doc: "A node learned over mDNS is asked to confirm itself every third of this; one that has not answered for this long is dropped (a goodbye drops it at once). The original's cache_ttl_seconds, which never refreshed.",
                ..Spec::new("cache_ttl", Want::Duration)
            },
            |s, v, _| {
                s.discovery.cache_ttl = v.dur()?;
                Ok(())
            },
            |s| duration(s.discovery.cache_ttl),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 86400.0)),
                default: "\"2m\"",
                doc: "A known node with no message (status, readings, sync) and no mDNS confirmation for this long is shown as stale.",
                ..Spec::new("stale_after", Want::Duration)
            },
            |s, v, _| {
                s.discovery.stale_after = v.dur()?;
                Ok(())
            },
            |s| duration(s.discovery.stale_after),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 30.0 * 86400.0)),
                default: "\"10m\"",
                doc: "A node silent for this long is shown as offline, unless its MQTT status topic says online (the broker's last will would say offline). An offline status shows it offline at once.",
                ..Spec::new("offline_after", Want::Duration)
            },
            |s, v, _| {
                s.discovery.offline_after = v.dur()?;
                Ok(())
            },
            |s| duration(s.discovery.offline_after),
        ),
        Key::new(
            Spec {
                range: Some((1.0, 100000.0)),
                default: "1000",
                doc: "Nodes the directory holds at most (outside input is bounded); past it a new node is refused, counted in status (nodes.refused).",
                ..Spec::new("max_nodes", Want::WholeNumber)
            },
            |s, v, _| {
                s.discovery.max_nodes = v.int()? as u32;
                Ok(())
            },
            |s| number(s.discovery.max_nodes),
        ),
    ],
};
