//! Home Assistant MQTT discovery payloads.
