//! Every kind this build knows, one line each. Adding a kind: write its file (with a
//! `pub const KIND: Kind`) and add one line here. External plugins are not kinds of this
//! list: they are declared by manifests (`plugins::manifest`), which `plugins list` shows
//! after these and whose tools the agent adds after the built-in ones.

use super::{Kind, Role};
#[cfg(feature = "agent")]
use crate::agent::tools;
use crate::{sinks, sources, stages};

/// The built-in kinds, in the order `plugins list` shows them.
pub const KINDS: &[&Kind] = &[
    &sources::system::KIND,
    &sources::gpio::KIND,
    &sources::mqtt::KIND,
    &sources::file::KIND,
    &sources::exec::KIND,
    &sources::http::KIND,
    &sources::bme280::KIND,
    &sources::dht::DHT11,
    &sources::dht::DHT22,
    &sources::ds18b20::KIND,
    &sources::iio::KIND,
    &sources::contract_file::KIND,
    &sources::hcsr04::KIND,
    #[cfg(feature = "test-kinds")]
    &sources::counter::KIND,
    &stages::filter::KIND,
    &stages::adaptive::KIND,
    &stages::retention::KIND,
    &sinks::store::KIND,
    &sinks::log::KIND,
    &sinks::mqtt_params::KIND,
    &sinks::observer::KIND,
    &sinks::lcd1602::KIND,
    &sinks::led::KIND,
    &sinks::seven_segment::s5161as::KIND,
    &sinks::seven_segment::sh5461as::KIND,
    &sinks::events::KIND,
    &sinks::openclaw::KIND,
    #[cfg(feature = "agent")]
    &tools::readings::READ_SOURCE,
    #[cfg(feature = "agent")]
    &tools::readings::LIST_SOURCES,
    #[cfg(feature = "agent")]
    &tools::readings::GET_READING_HISTORY,
    #[cfg(feature = "agent")]
    &tools::mqtt::PUBLISH,
    #[cfg(feature = "agent")]
    &tools::mqtt::GET_RECENT_MESSAGES,
    #[cfg(feature = "agent")]
    &tools::gpio::READ_GPIO,
    #[cfg(feature = "agent")]
    &tools::gpio::LIST_GPIO,
    #[cfg(feature = "agent")]
    &tools::gpio::WRITE_GPIO,
    #[cfg(feature = "agent")]
    &tools::memory::RECALL,
    #[cfg(feature = "agent")]
    &tools::memory::REMEMBER,
    #[cfg(feature = "agent")]
    &tools::memory::OBSERVE,
    #[cfg(feature = "agent")]
    &tools::cross_node::CROSS_NODE_RECALL,
    #[cfg(feature = "agent")]
    &tools::notify_human::NOTIFY_HUMAN,
    #[cfg(feature = "agent")]
    &tools::ask_gateway::ASK_GATEWAY,
    // Device tools: offered only while their device is attached, after the core ones.
    #[cfg(feature = "agent")]
    &tools::lcd1602::LCD_WRITE,
    #[cfg(feature = "agent")]
    &tools::lcd1602::LCD_CLEAR,
    #[cfg(feature = "agent")]
    &tools::led::SET_LED,
    #[cfg(feature = "agent")]
    &tools::seven_segment::DISPLAY_DIGIT,
    #[cfg(feature = "agent")]
    &tools::seven_segment::DISPLAY_VALUE,
];

/// Every built-in kind.
pub fn all() -> impl Iterator<Item = &'static Kind> {
    KINDS.iter().copied()
}

/// The id types of this build's own sources (`system`, `gpio`, `file`, ...), for
/// [`crate::graph::registry::Registry::with_local_types`].
pub fn local_id_types() -> Vec<&'static str> {
    all()
        .filter_map(|k| match k.make {
            super::Make::Source { ids, .. } if !ids.is_empty() => Some(ids),
            _ => None,
        })
        .collect()
}

/// The kind called `name` in `role`.
pub fn find(role: Role, name: &str) -> Option<&'static Kind> {
    all().find(|k| k.role == role && k.name == name)
}

/// The names of `role`'s kinds, in registry order.
pub fn names(role: Role) -> Vec<&'static str> {
    all().filter(|k| k.role == role).map(|k| k.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_within_a_role() {
        for a in KINDS {
            let same = KINDS
                .iter()
                .filter(|b| b.role == a.role && b.name == a.name)
                .count();
            assert_eq!(same, 1, "{a:?} is registered twice");
            for p in a.params {
                assert!(!p.spec.doc.is_empty(), "{a:?}: {} has no doc", p.spec.name);
            }
        }
    }

    /// A tool's kind and the tool it makes answer to the same name (the model calls it by
    /// the tool's own).
    #[cfg(feature = "agent")]
    #[test]
    fn tool_kinds_make_their_tool() {
        for k in KINDS {
            if let crate::plugins::Make::Tool { make } = k.make {
                assert_eq!(make().name(), k.name);
            }
        }
    }
}
