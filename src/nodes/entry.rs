//! One known node: what it announced about itself, how it was learned and when it was
//! last heard.

use std::net::IpAddr;

use crate::graph::Micros;

/// Addresses kept per node, at most (an announcement may list many interfaces).
pub const MAX_ADDRESSES: usize = 8;
/// Longest announced text (node type, version) kept, bytes.
pub const MAX_TEXT: usize = 32;

/// How a node was learned. A node may be known several ways at once (a set of bits); it
/// leaves the directory when the last way is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Mdns = 1,
    Mqtt = 2,
    Sync = 4,
}

impl Via {
    pub const ALL: [Via; 3] = [Via::Mdns, Via::Mqtt, Via::Sync];

    pub fn name(self) -> &'static str {
        match self {
            Via::Mdns => "mdns",
            Via::Mqtt => "mqtt",
            Via::Sync => "sync",
        }
    }
}

/// What a node says about what it offers (the `capabilities` TXT record:
/// `sources=12,tools=9,llm=yes`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub sources: u32,
    pub tools: u32,
    pub llm: bool,
}

impl Capabilities {
    /// The TXT form.
    pub fn to_txt(self) -> String {
        format!(
            "sources={},tools={},llm={}",
            self.sources,
            self.tools,
            if self.llm { "yes" } else { "no" }
        )
    }

    /// Read the TXT form; unknown parts are ignored (a newer node may add some).
    pub fn from_txt(s: &str) -> Capabilities {
        let mut c = Capabilities::default();
        for part in s.split(',') {
            let Some((k, v)) = part.split_once('=') else {
                continue;
            };
            match k.trim() {
                "sources" => c.sources = v.trim().parse().unwrap_or(0),
                "tools" => c.tools = v.trim().parse().unwrap_or(0),
                "llm" => c.llm = v.trim() == "yes",
                _ => {}
            }
        }
        c
    }
}

/// What a node announced over mDNS (its SRV, addresses and TXT records).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Announcement {
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    pub node_type: String,
    pub version: String,
    pub capabilities: Capabilities,
}

/// The last word on a node's MQTT status topic (retained; `offline` is also its last will).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Online,
    Offline,
}

/// One node the directory knows. Bounded: its texts are cut to `MAX_TEXT`, its addresses
/// to `MAX_ADDRESSES`.
#[derive(Clone, Debug)]
pub struct NodeEntry {
    pub name: Box<str>,
    /// Set by its mDNS announcement; `None` for a node only heard over MQTT.
    pub announced: Option<Announcement>,
    pub status: Option<Status>,
    /// A set of `Via` bits.
    pub via: u8,
    pub first_seen: Micros,
    /// Its last message of any kind, or mDNS confirmation.
    pub last_seen: Micros,
    /// When mDNS last confirmed it (announcement or an answered query); 0 if never.
    pub mdns_seen: Micros,
    /// Messages heard from it over MQTT.
    pub messages: u64,
}

impl NodeEntry {
    pub(crate) fn new(name: &str, now: Micros) -> NodeEntry {
        NodeEntry {
            name: name.into(),
            announced: None,
            status: None,
            via: 0,
            first_seen: now,
            last_seen: now,
            mdns_seen: 0,
            messages: 0,
        }
    }

    pub fn has(&self, via: Via) -> bool {
        self.via & via as u8 != 0
    }

    /// The ways it is known, by name, in a fixed order.
    pub fn via_names(&self) -> Vec<&'static str> {
        Via::ALL
            .into_iter()
            .filter(|v| self.has(*v))
            .map(Via::name)
            .collect()
    }
}

/// `s` cut to at most `MAX_TEXT` bytes on a character boundary.
pub(crate) fn bounded(s: &str) -> String {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_round_trip_through_their_txt_form() {
        let c = Capabilities {
            sources: 12,
            tools: 9,
            llm: true,
        };
        assert_eq!(c.to_txt(), "sources=12,tools=9,llm=yes");
        assert_eq!(Capabilities::from_txt(&c.to_txt()), c);
        assert_eq!(
            Capabilities::from_txt("llm=no,future=1,sources=x"),
            Capabilities::default()
        );
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let s = "é".repeat(40);
        let b = bounded(&s);
        assert!(b.len() <= MAX_TEXT && s.starts_with(&b));
    }
}
