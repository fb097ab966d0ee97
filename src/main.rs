//! The `wsd` binary's entry point.

fn main() {
    println!("wsd {}", env!("CARGO_PKG_VERSION"));
}
