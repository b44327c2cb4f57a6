//! Wires a validated pipeline into tasks on one `smol::LocalExecutor` and runs it.
