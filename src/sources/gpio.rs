//! The `gpio` source: configured pins as boolean readings `gpio:<pin>`.
