//! Home Assistant MQTT discovery payloads.
//!
//! Each entity is announced (retained) on `<prefix>/<component>/<object_id>/config`,
//! with `object_id` equal to the entity's `unique_id` (`smollama_<node>_<source>`, so it
//! is stable across restarts). State payloads are this crate's JSON state
//! (`{"value": v, "unit": u, "time": t}`, see `payload::encode_state`), read with a
//! `value_template`. An empty retained payload on the config topic deletes the entity.

use serde_json::{Map, Value as Json, json};

/// The default discovery prefix Home Assistant listens on.
pub const DEFAULT_PREFIX: &str = "homeassistant";

/// The node announcing entities; one Home Assistant device per node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Device<'a> {
    pub node: &'a str,
    /// The smollama version (`sw_version` of the device and the origin).
    pub version: &'a str,
}

/// `smollama_<node>_<source>` with every char outside `[a-zA-Z0-9_-]` replaced by `_`:
/// usable both as the topic's object id and as the entity's `unique_id`.
pub fn object_id(node: &str, source_full_id: &str) -> String {
    format!("smollama_{node}_{source_full_id}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The config topic `<prefix>/<component>/<object_id>/config`. Trailing slashes on the
/// prefix are dropped; an empty prefix means [`DEFAULT_PREFIX`].
pub fn config_topic(prefix: &str, component: &str, object_id: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    let prefix = if prefix.is_empty() {
        DEFAULT_PREFIX
    } else {
        prefix
    };
    format!("{prefix}/{component}/{object_id}/config")
}

/// Home Assistant's unit and device class for one of our units: `celsius` -> `°C`
/// (temperature), `percent` -> `%`, `mb` -> `MB` (data_size), `mhz` -> `MHz`
/// (frequency), `seconds` -> `s` (duration), `load` -> no unit; anything else passes
/// through unchanged with no device class. Empty means no unit.
pub fn ha_unit(unit: &str) -> (Option<&str>, Option<&'static str>) {
    match unit {
        "celsius" => (Some("°C"), Some("temperature")),
        "percent" => (Some("%"), None),
        "mb" => (Some("MB"), Some("data_size")),
        "mhz" => (Some("MHz"), Some("frequency")),
        "seconds" => (Some("s"), Some("duration")),
        "load" | "" => (None, None),
        other => (Some(other), None),
    }
}

const ON_OFF_TEMPLATE: &str = "{{ 'ON' if value_json.value else 'OFF' }}";
const VALUE_TEMPLATE: &str = "{{ value_json.value }}";

/// The fields every entity shares: name, ids, state and availability, device, origin.
fn base(
    dev: &Device,
    source_full_id: &str,
    state_topic: &str,
    availability_topic: &str,
) -> Map<String, Json> {
    let id = object_id(dev.node, source_full_id);
    let mut m = Map::new();
    m.insert("name".into(), json!(source_full_id));
    m.insert("unique_id".into(), json!(id));
    m.insert("state_topic".into(), json!(state_topic));
    m.insert("availability_topic".into(), json!(availability_topic));
    m.insert("payload_available".into(), json!("online"));
    m.insert("payload_not_available".into(), json!("offline"));
    m.insert(
        "device".into(),
        json!({
            "identifiers": [format!("smollama_{}", dev.node)],
            "name": dev.node,
            "manufacturer": "smollama",
            "model": "smollama edge node",
            "sw_version": dev.version,
        }),
    );
    m.insert(
        "origin".into(),
        json!({"name": "smollama", "sw_version": dev.version}),
    );
    m
}

fn finish(
    prefix: &str,
    component: &str,
    dev: &Device,
    source_full_id: &str,
    m: Map<String, Json>,
) -> (String, Vec<u8>) {
    let topic = config_topic(prefix, component, &object_id(dev.node, source_full_id));
    let payload = serde_json::to_vec(&Json::Object(m)).unwrap_or_default();
    (topic, payload)
}

/// A numeric sensor (`state_class: measurement`), with the unit mapped by [`ha_unit`].
pub fn sensor(
    prefix: &str,
    dev: &Device,
    source_full_id: &str,
    unit: &str,
    state_topic: &str,
    availability_topic: &str,
) -> (String, Vec<u8>) {
    let mut m = base(dev, source_full_id, state_topic, availability_topic);
    m.insert("value_template".into(), json!(VALUE_TEMPLATE));
    let (ha_unit, device_class) = ha_unit(unit);
    if let Some(u) = ha_unit {
        m.insert("unit_of_measurement".into(), json!(u));
    }
    if let Some(c) = device_class {
        m.insert("device_class".into(), json!(c));
    }
    m.insert("state_class".into(), json!("measurement"));
    finish(prefix, "sensor", dev, source_full_id, m)
}

/// A text sensor (states such as `charging`): a `sensor` without unit or state class,
/// which Home Assistant would otherwise expect to be numeric.
pub fn text_sensor(
    prefix: &str,
    dev: &Device,
    source_full_id: &str,
    state_topic: &str,
    availability_topic: &str,
) -> (String, Vec<u8>) {
    let mut m = base(dev, source_full_id, state_topic, availability_topic);
    m.insert("value_template".into(), json!(VALUE_TEMPLATE));
    finish(prefix, "sensor", dev, source_full_id, m)
}

/// A boolean source: the template turns the state's JSON `value` into `ON`/`OFF`.
pub fn binary_sensor(
    prefix: &str,
    dev: &Device,
    source_full_id: &str,
    state_topic: &str,
    availability_topic: &str,
) -> (String, Vec<u8>) {
    let mut m = base(dev, source_full_id, state_topic, availability_topic);
    m.insert("value_template".into(), json!(ON_OFF_TEMPLATE));
    m.insert("payload_on".into(), json!("ON"));
    m.insert("payload_off".into(), json!("OFF"));
    finish(prefix, "binary_sensor", dev, source_full_id, m)
}

/// An output pin: Home Assistant publishes `ON`/`OFF` on `command_topic` (see
/// [`parse_command`]) and reads the pin's state topic like a binary sensor.
pub fn switch(
    prefix: &str,
    dev: &Device,
    source_full_id: &str,
    state_topic: &str,
    command_topic: &str,
    availability_topic: &str,
) -> (String, Vec<u8>) {
    let mut m = base(dev, source_full_id, state_topic, availability_topic);
    m.insert("command_topic".into(), json!(command_topic));
    m.insert("value_template".into(), json!(ON_OFF_TEMPLATE));
    m.insert("payload_on".into(), json!("ON"));
    m.insert("payload_off".into(), json!("OFF"));
    finish(prefix, "switch", dev, source_full_id, m)
}

/// Deletes an entity: an empty (retained) payload on its config topic.
pub fn removal(prefix: &str, component: &str, object_id: &str) -> (String, Vec<u8>) {
    (config_topic(prefix, component, object_id), Vec::new())
}

/// A switch command: `ON`/`OFF`, `1`/`0`, `true`/`false` (trimmed, any case).
pub fn parse_command(payload: &[u8]) -> Option<bool> {
    let s = std::str::from_utf8(payload).ok()?.trim();
    if s.eq_ignore_ascii_case("on") || s == "1" || s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("off") || s == "0" || s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edges::mqtt::topic::validate_topic;

    const DEV: Device = Device {
        node: "kitchen",
        version: "0.1.0",
    };
    const STATE: &str = "smollama/kitchen/state/system_cpu_temp";
    const AVAIL: &str = "smollama/kitchen/status";

    fn parsed(payload: &[u8]) -> Json {
        serde_json::from_slice(payload).unwrap()
    }

    fn assert_common(v: &Json, name: &str, uid: &str, state: &str) {
        assert_eq!(v["name"], name);
        assert_eq!(v["unique_id"], uid);
        assert_eq!(v["state_topic"], state);
        assert_eq!(v["availability_topic"], AVAIL);
        assert_eq!(v["payload_available"], "online");
        assert_eq!(v["payload_not_available"], "offline");
        assert_eq!(
            v["device"],
            json!({
                "identifiers": ["smollama_kitchen"],
                "name": "kitchen",
                "manufacturer": "smollama",
                "model": "smollama edge node",
                "sw_version": "0.1.0",
            })
        );
        assert_eq!(v["origin"]["name"], "smollama");
        assert_eq!(v["origin"]["sw_version"], "0.1.0");
    }

    #[test]
    fn object_ids_are_sanitised_and_stable() {
        assert_eq!(
            object_id("kitchen", "system:cpu_temp"),
            "smollama_kitchen_system_cpu_temp"
        );
        assert_eq!(
            object_id("pi-4 b", "gpio:17/door é#+"),
            "smollama_pi-4_b_gpio_17_door____"
        );
        assert_eq!(object_id("a", "b"), object_id("a", "b"));
        let id = object_id("Küche.1", "x:y");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{id}"
        );
    }

    #[test]
    fn sensor_payload() {
        let (topic, payload) = sensor(
            "homeassistant",
            &DEV,
            "system:cpu_temp",
            "celsius",
            STATE,
            AVAIL,
        );
        assert_eq!(
            topic,
            "homeassistant/sensor/smollama_kitchen_system_cpu_temp/config"
        );
        assert!(validate_topic(&topic, 256).is_ok());
        let v = parsed(&payload);
        assert_common(
            &v,
            "system:cpu_temp",
            "smollama_kitchen_system_cpu_temp",
            STATE,
        );
        assert_eq!(v["value_template"], "{{ value_json.value }}");
        assert_eq!(v["unit_of_measurement"], "°C");
        assert_eq!(v["device_class"], "temperature");
        assert_eq!(v["state_class"], "measurement");
        assert!(v.get("command_topic").is_none());
        assert!(v.get("payload_on").is_none());
    }

    #[test]
    fn units_map_to_home_assistant() {
        let cases = [
            ("celsius", Some("°C"), Some("temperature")),
            ("percent", Some("%"), None),
            ("mb", Some("MB"), Some("data_size")),
            ("mhz", Some("MHz"), Some("frequency")),
            ("seconds", Some("s"), Some("duration")),
            ("load", None, None),
            ("", None, None),
            ("lux", Some("lux"), None),
        ];
        for (unit, want_unit, want_class) in cases {
            let (_, p) = sensor("ha", &DEV, "s:x", unit, STATE, AVAIL);
            let v = parsed(&p);
            assert_eq!(
                v.get("unit_of_measurement").and_then(Json::as_str),
                want_unit,
                "{unit}"
            );
            assert_eq!(
                v.get("device_class").and_then(Json::as_str),
                want_class,
                "{unit}"
            );
            assert_eq!(v["state_class"], "measurement");
        }
    }

    #[test]
    fn text_sensor_payload() {
        let (topic, p) = text_sensor("homeassistant", &DEV, "ups:state", STATE, AVAIL);
        assert_eq!(
            topic,
            "homeassistant/sensor/smollama_kitchen_ups_state/config"
        );
        let v = parsed(&p);
        assert_common(&v, "ups:state", "smollama_kitchen_ups_state", STATE);
        assert_eq!(v["value_template"], "{{ value_json.value }}");
        assert!(v.get("state_class").is_none());
        assert!(v.get("unit_of_measurement").is_none());
    }

    #[test]
    fn binary_sensor_payload() {
        let (topic, p) = binary_sensor("homeassistant/", &DEV, "gpio:door", STATE, AVAIL);
        assert_eq!(
            topic,
            "homeassistant/binary_sensor/smollama_kitchen_gpio_door/config"
        );
        let v = parsed(&p);
        assert_common(&v, "gpio:door", "smollama_kitchen_gpio_door", STATE);
        assert_eq!(
            v["value_template"],
            "{{ 'ON' if value_json.value else 'OFF' }}"
        );
        assert_eq!(v["payload_on"], "ON");
        assert_eq!(v["payload_off"], "OFF");
        assert!(v.get("device_class").is_none());
        assert!(v.get("state_class").is_none());
        assert!(v.get("unit_of_measurement").is_none());
    }

    #[test]
    fn switch_payload() {
        let cmd = "smollama/kitchen/gpio/relay/set";
        let (topic, p) = switch("", &DEV, "gpio:relay", STATE, cmd, AVAIL);
        assert_eq!(
            topic,
            "homeassistant/switch/smollama_kitchen_gpio_relay/config"
        );
        let v = parsed(&p);
        assert_common(&v, "gpio:relay", "smollama_kitchen_gpio_relay", STATE);
        assert_eq!(v["command_topic"], cmd);
        assert_eq!(v["payload_on"], "ON");
        assert_eq!(v["payload_off"], "OFF");
        assert_eq!(
            v["value_template"],
            "{{ 'ON' if value_json.value else 'OFF' }}"
        );
        // The command HA sends parses back.
        assert_eq!(
            parse_command(v["payload_on"].as_str().unwrap().as_bytes()),
            Some(true)
        );
        assert_eq!(
            parse_command(v["payload_off"].as_str().unwrap().as_bytes()),
            Some(false)
        );
    }

    #[test]
    fn removal_is_empty() {
        let id = object_id("kitchen", "gpio:relay");
        let (topic, p) = removal("homeassistant", "switch", &id);
        assert_eq!(
            topic,
            "homeassistant/switch/smollama_kitchen_gpio_relay/config"
        );
        assert!(p.is_empty());
        // The same topic the announcement used.
        let (announced, _) = switch("homeassistant", &DEV, "gpio:relay", STATE, "c", AVAIL);
        assert_eq!(topic, announced);
    }

    #[test]
    fn commands_parse() {
        for (p, want) in [
            ("ON", Some(true)),
            ("on", Some(true)),
            (" On\n", Some(true)),
            ("1", Some(true)),
            ("true", Some(true)),
            ("TRUE", Some(true)),
            ("OFF", Some(false)),
            ("off", Some(false)),
            ("0", Some(false)),
            ("False", Some(false)),
            ("", None),
            ("toggle", None),
            ("2", None),
            ("onn", None),
            ("{\"state\": \"ON\"}", None),
        ] {
            assert_eq!(parse_command(p.as_bytes()), want, "{p:?}");
        }
        assert_eq!(parse_command(&[0xff, b'O', b'N']), None);
    }
}
