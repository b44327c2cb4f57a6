//! The `smollama` command line: parse, load config, hand over.

fn main() {
    println!("smollama {}", env!("CARGO_PKG_VERSION"));
}
