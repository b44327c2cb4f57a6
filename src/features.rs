//! Which optional parts this build carries (cargo features), and what to say when the
//! config asks for one that is not here: a node built lean keeps running on what it has.

use crate::config::Settings;

/// The cargo features compiled in, for `--version` and status.
pub const COMPILED: &[&str] = &[
    #[cfg(feature = "rpi")]
    "rpi",
    #[cfg(feature = "mqtt")]
    "mqtt",
    #[cfg(feature = "mqtt-tls")]
    "mqtt-tls",
    #[cfg(feature = "agent")]
    "agent",
    #[cfg(feature = "mdns")]
    "mdns",
];

/// `rpi, mqtt, agent`, or `none`.
pub fn list() -> String {
    if COMPILED.is_empty() {
        "none".into()
    } else {
        COMPILED.join(", ")
    }
}

/// The error for a command this build does not have.
pub fn missing(feature: &str, what: &str) -> String {
    format!(
        "this build has no {feature} feature, so {what} is not available \
         (rebuild with `cargo build --release --features {feature}`)"
    )
}

/// The settings that ask for something compiled out, one warning line each (empty when
/// the build has everything the config uses). Logged once at start-up.
pub fn ignored(settings: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    if !cfg!(feature = "mqtt") && settings.mqtt.broker.is_some() {
        out.push(
            "this build has no mqtt feature; [mqtt] is ignored (the pipeline's mqtt sources and sinks are skipped)"
                .to_string(),
        );
    }
    if !cfg!(feature = "agent") && settings.agent.enabled {
        out.push(
            "this build has no agent feature; [agent] is ignored (no questions, observations or memory; set [agent] enabled = false to silence this)"
                .to_string(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_what_is_compiled_in() {
        assert_eq!(COMPILED.contains(&"agent"), cfg!(feature = "agent"));
        assert_eq!(COMPILED.contains(&"mqtt"), cfg!(feature = "mqtt"));
        assert!(!list().is_empty());
    }

    #[test]
    fn warns_only_about_what_is_missing() {
        let mut s = Settings::defaults();
        s.mqtt.broker = Some("localhost".into());
        s.agent.enabled = true;
        let w = ignored(&s);
        assert_eq!(
            w.iter().any(|l| l.contains("no mqtt feature")),
            !cfg!(feature = "mqtt")
        );
        assert_eq!(
            w.iter().any(|l| l.contains("no agent feature")),
            !cfg!(feature = "agent")
        );
        s.mqtt.broker = None;
        s.agent.enabled = false;
        assert!(ignored(&s).is_empty());
    }
}
