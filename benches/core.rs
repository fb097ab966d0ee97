//! Criterion benches of the protocol core (filled in by the bench work).
fn main() {}
