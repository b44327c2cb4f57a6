//! HTTP on its own thread (tiny_http): health, status, readings.
