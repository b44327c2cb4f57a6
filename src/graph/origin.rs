//! Which node a source belongs to, from its registry name: this node's own sources
//! (`system:cpu_temp`) and the bare topics it subscribes to (`mqtt:<topic>`) are this
//! node's; a name learned from another node's batch is `<node>:<source>`
//! (`kitchen:system:cpu_temp`). The cluster view and the agent's tools read it the same way.

use super::registry::{Registry, source_type};

/// The id type of readings from bare topics: received by this node, from no smollama node.
const BARE_TOPIC: &str = "mqtt";

/// `(node, source id on that node)` of a registry name; `this_node` for this node's own.
pub fn origin<'a>(registry: &Registry, name: &'a str, this_node: &'a str) -> (&'a str, &'a str) {
    let ty = source_type(name);
    if registry.is_local(name) || ty == BARE_TOPIC || ty.len() == name.len() {
        return (this_node, name);
    }
    (ty, &name[ty.len() + 1..])
}

/// The registry name of `source` on `node`, as [`origin`] reads it back.
pub fn full_name(node: &str, source: &str, this_node: &str) -> String {
    if node == this_node {
        source.to_string()
    } else {
        format!("{node}:{source}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_bare_topic_and_remote_names() {
        let reg = Registry::with_local_types(vec!["system", "gpio"]);
        assert_eq!(
            origin(&reg, "system:cpu_temp", "llm"),
            ("llm", "system:cpu_temp")
        );
        assert_eq!(
            origin(&reg, "mqtt:sensors/garden", "llm"),
            ("llm", "mqtt:sensors/garden")
        );
        assert_eq!(
            origin(&reg, "kitchen:system:cpu_temp", "llm"),
            ("kitchen", "system:cpu_temp")
        );
        assert_eq!(origin(&reg, "plain", "llm"), ("llm", "plain"));
        assert_eq!(
            full_name("kitchen", "system:cpu_temp", "llm"),
            "kitchen:system:cpu_temp"
        );
        assert_eq!(
            full_name("llm", "system:cpu_temp", "llm"),
            "system:cpu_temp"
        );
    }
}
