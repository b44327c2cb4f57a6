//! The `store` sink.
