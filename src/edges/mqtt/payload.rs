//! Inbound payload parsing and outbound payload encoding.
