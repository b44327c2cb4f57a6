//! The `log` sink.
