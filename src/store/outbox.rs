//! The MQTT outbox: QoS 1 messages waiting for the broker's acknowledgement.
