//! Rule-by-rule tests of the protocol core, one file per area, each test named for
//! the behaviour it pins down. They must never open a socket or read a clock.

mod closing;
mod deflate;
mod echo_in_place;
mod frames;
mod handshake_client;
mod handshake_server;
mod in_place;
mod properties;
mod rfc_examples;
mod split_points;
mod support;
