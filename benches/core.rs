//! Criterion benches of the protocol core: how fast a server `WebSocket` turns
//! masked client text frames into messages (decode, unmask, UTF-8 validation,
//! reassembly), next to binary frames (no UTF-8 check), a plain `memcpy` of the
//! same bytes and `apply_mask` alone.
//!
//! Every case reports `Throughput::Bytes` of payload, so the figures read side by
//! side. Owns only measurement: it must never touch a socket or assert on speed.
//! Run with `cargo bench --bench core` (about a minute).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wsd::core::mask::apply_mask;
use wsd::core::{encode_frame, Event, Limits, OpCode, WebSocket};

/// Payload bytes per measured iteration, the same for every message size.
const TOTAL: usize = 1 << 20;

/// Valid UTF-8 of exactly `len` bytes: mostly ASCII with some two- and
/// three-byte characters, like chat text.
fn text(len: usize) -> Vec<u8> {
    let pattern = "Grüße aus Köln, price 12 € — ok; ";
    let mut s = String::with_capacity(len + 4);
    while s.len() < len {
        for c in pattern.chars() {
            if s.len() + c.len_utf8() > len {
                break;
            }
            s.push(c);
        }
        if s.len() + 4 > len {
            while s.len() < len {
                s.push('.');
            }
        }
    }
    s.into_bytes()
}

/// `TOTAL / size` masked frames of `size` bytes each, back to back, with a
/// different masking key per frame as a real client would send.
fn masked_stream(opcode: OpCode, size: usize) -> Vec<u8> {
    let payload = text(size);
    let mut out = Vec::with_capacity(TOTAL + (TOTAL / size) * 14);
    for i in 0..(TOTAL / size) as u32 {
        let key = i.wrapping_mul(0x9E37_79B9).to_le_bytes();
        encode_frame(&mut out, true, opcode, &payload, Some(key));
    }
    out
}

/// Drives a fresh server connection over the whole stream the way the reactor
/// does; returns the payload bytes delivered.
fn decode_all(stream: &[u8]) -> usize {
    let mut ws = WebSocket::server(Limits::default());
    let mut delivered = 0;
    let consumed = ws.handle_read(stream).expect("the bench stream is valid");
    assert_eq!(consumed, stream.len());
    while let Some(event) = ws.poll_event() {
        if let Event::Message(message) = event {
            delivered += message.data.len();
            black_box(message);
        }
    }
    delivered
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(TOTAL as u64));
    // The binary case is the text case without UTF-8 validation.
    let cases = [
        ("server_text", OpCode::Text, 16, "16B"),
        ("server_text", OpCode::Text, 1024, "1KiB"),
        ("server_text", OpCode::Text, 64 * 1024, "64KiB"),
        ("server_binary", OpCode::Binary, 64 * 1024, "64KiB"),
    ];
    for (name, opcode, size, label) in cases {
        let stream = masked_stream(opcode, size);
        assert_eq!(
            decode_all(&stream),
            TOTAL,
            "every payload byte is delivered"
        );
        group.bench_with_input(BenchmarkId::new(name, label), &stream, |b, stream| {
            b.iter(|| decode_all(black_box(stream)))
        });
    }
    let src = text(TOTAL);
    let mut dst = vec![0u8; TOTAL];
    group.bench_function(BenchmarkId::new("memcpy", "1MiB"), |b| {
        b.iter(|| dst.copy_from_slice(black_box(&src)))
    });

    group.throughput(Throughput::Bytes(64 * 1024));
    let src = text(64 * 1024);
    let mut dst = vec![0u8; 64 * 1024];
    group.bench_function(BenchmarkId::new("memcpy", "64KiB"), |b| {
        b.iter(|| dst.copy_from_slice(black_box(&src)))
    });
    let mut buf = src.clone();
    group.bench_function(BenchmarkId::new("apply_mask", "64KiB"), |b| {
        b.iter(|| apply_mask(black_box(&mut buf), black_box([0x37, 0xfa, 0x21, 0x3d]), 0))
    });
    // A small message, at an offset that is not 8-byte aligned, as most
    // payloads are in a receive buffer (after a 6-byte masked header).
    group.throughput(Throughput::Bytes(16));
    let mut small = text(64);
    group.bench_function(BenchmarkId::new("apply_mask", "16B"), |b| {
        b.iter(|| {
            apply_mask(
                black_box(&mut small[6..22]),
                black_box([0x37, 0xfa, 0x21, 0x3d]),
                0,
            )
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = decode
}
criterion_main!(benches);
