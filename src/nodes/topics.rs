//! Which MQTT topics name a node: `<root>/<node>/status`, `/readings`, `/sync`, `/state/…`
//! under the roots of this node's own prefixes (`smollama` for `smollama/<node>`).

/// The roots to look under and the filters to subscribe to for status.
#[derive(Clone, Debug)]
pub struct NodeTopics {
    roots: Vec<String>,
}

/// What a message on a node's topic says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard<'a> {
    /// Its status topic: the payload is `online` or `offline`.
    Status(&'a str, bool),
    /// Readings or state: it is alive.
    Traffic(&'a str),
    /// Its replicated log: alive, and a sync peer.
    Sync(&'a str),
}

impl NodeTopics {
    /// From this node's `[mqtt] topic_prefix` and `state_prefix` (each `<root>/<node>`).
    pub fn new(prefixes: &[&str]) -> NodeTopics {
        let mut roots: Vec<String> = Vec::new();
        for p in prefixes {
            if let Some((root, _)) = p.rsplit_once('/')
                && !roots.iter().any(|r| r == root)
            {
                roots.push(root.to_string());
            }
        }
        NodeTopics { roots }
    }

    /// The status topics of every node (`smollama/+/status`).
    pub fn filters(&self) -> Vec<String> {
        self.roots.iter().map(|r| format!("{r}/+/status")).collect()
    }

    /// The node a topic names, and what kind of message it is; `None` for any other
    /// topic (ask topics, Home Assistant's, a user's). No allocation.
    pub fn classify<'a>(&self, topic: &'a str, payload: &[u8]) -> Option<Heard<'a>> {
        let rest = self.roots.iter().find_map(|r| {
            topic
                .strip_prefix(r.as_str())
                .and_then(|t| t.strip_prefix('/'))
        })?;
        let (node, kind) = rest.split_once('/')?;
        if node.is_empty() || node.contains(['+', '#']) {
            return None;
        }
        match kind {
            "status" => match payload.trim_ascii() {
                b"online" => Some(Heard::Status(node, true)),
                b"offline" => Some(Heard::Status(node, false)),
                _ => None,
            },
            "readings" => Some(Heard::Traffic(node)),
            "sync" => Some(Heard::Sync(node)),
            k if k.starts_with("state/") => Some(Heard::Traffic(node)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_name_their_node() {
        let t = NodeTopics::new(&["smollama/me", "smollama/me", "site2/me"]);
        assert_eq!(t.filters(), ["smollama/+/status", "site2/+/status"]);
        assert_eq!(
            t.classify("smollama/kitchen/status", b"online\n"),
            Some(Heard::Status("kitchen", true))
        );
        assert_eq!(
            t.classify("site2/garage/status", b"offline"),
            Some(Heard::Status("garage", false))
        );
        assert_eq!(t.classify("smollama/kitchen/status", b"maybe"), None);
        assert_eq!(
            t.classify("smollama/kitchen/readings", b"{}"),
            Some(Heard::Traffic("kitchen"))
        );
        assert_eq!(
            t.classify("smollama/kitchen/state/system/cpu_temp", b"{}"),
            Some(Heard::Traffic("kitchen"))
        );
        assert_eq!(
            t.classify("smollama/kitchen/sync", b"{}"),
            Some(Heard::Sync("kitchen"))
        );
        // Requests to a node do not say who sent them; other topics name no node.
        assert_eq!(t.classify("smollama/kitchen/sync/request", b"{}"), None);
        assert_eq!(t.classify("smollama/kitchen/ask", b"hi"), None);
        assert_eq!(t.classify("homeassistant/status", b"online"), None);
        assert_eq!(t.classify("smollamax/kitchen/status", b"online"), None);
    }
}
