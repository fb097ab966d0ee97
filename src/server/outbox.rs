//! A connection's pending output: owned bytes and shared (broadcast) frames, written
//! with one vectored write per attempt, and released entirely once drained.
//!
//! Owns ordering, corking and partial-write bookkeeping. It must never decide
//! limits or policy (the driver does) or build a frame (the core does), and
//! holds no allocation while empty.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

use crate::core::OwnedFrame;

/// Buffers below this size take further small appends (corking).
const COALESCE_LIMIT: usize = 64 * 1024;
/// The first capacity of the corking buffer of an empty queue.
const CORK_INITIAL: usize = 1000;
/// Frame payloads at least this large are queued whole, without copying.
pub const ZERO_COPY_MIN: usize = 4 * 1024;
/// The most slices handed to one `writev`.
const MAX_IOVECS: usize = 64;

#[derive(Debug)]
enum Chunk {
    /// A buffer that later small writes are appended to (corking).
    Buffer(Vec<u8>),
    /// A buffer queued whole, e.g. a large frame payload; never appended to, since
    /// growing it would reallocate and copy the payload.
    Whole(Vec<u8>),
    /// A frame shared with other connections' queues.
    Shared(Rc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Buffer(v) | Chunk::Whole(v) => v,
            Chunk::Shared(s) => s,
        }
    }
}

/// How a write attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything went out.
    All,
    /// The socket would block with bytes still queued.
    Partial,
}

#[derive(Debug, Default)]
pub struct Outbox {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    offset: usize,
    /// Bytes still to write.
    len: usize,
}

impl Outbox {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Lets `fill` append bytes to the end of the queue; returns how many it added.
    pub fn append(&mut self, fill: impl FnOnce(&mut Vec<u8>)) -> usize {
        let reuse = matches!(self.chunks.back(), Some(Chunk::Buffer(v)) if v.len() < COALESCE_LIMIT)
            && !(self.chunks.len() == 1 && self.offset > 0);
        if !reuse {
            // The first buffer of an empty queue gets room for a turn's worth
            // of small frames at once, instead of a doubling series from 8
            // bytes (small enough for the allocator's per-thread cache); a
            // buffer behind a whole payload usually holds one frame header.
            let buffer = if self.chunks.is_empty() {
                Vec::with_capacity(CORK_INITIAL)
            } else {
                Vec::new()
            };
            self.chunks.push_back(Chunk::Buffer(buffer));
        }
        let Some(Chunk::Buffer(tail)) = self.chunks.back_mut() else {
            return 0;
        };
        let before = tail.len();
        fill(tail);
        let added = tail.len() - before;
        if added == 0 && tail.is_empty() {
            self.chunks.pop_back();
        }
        self.len += added;
        added
    }

    /// Queues a buffer without copying it.
    pub fn push_owned(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.len += bytes.len();
            self.chunks.push_back(Chunk::Whole(bytes));
        }
    }

    /// Queues a frame the core encoded: a small one is copied into the corking
    /// buffer, a large payload is queued whole behind its header.
    pub fn push_frame(&mut self, frame: OwnedFrame) {
        if frame.payload.len() >= ZERO_COPY_MIN {
            self.append(|out| out.extend_from_slice(frame.head.as_bytes()));
            self.push_owned(frame.payload);
        } else {
            self.append(|out| {
                out.extend_from_slice(frame.head.as_bytes());
                out.extend_from_slice(&frame.payload);
            });
        }
    }

    /// Queues a frame shared with other connections' queues.
    pub fn push_shared(&mut self, frame: Rc<[u8]>) {
        if !frame.is_empty() {
            self.len += frame.len();
            self.chunks.push_back(Chunk::Shared(frame));
        }
    }

    /// Writes until the queue is empty or the writer would block; returns the bytes written.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<(Flushed, usize)> {
        let mut written = 0;
        while self.len > 0 {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, chunk) in self.chunks.iter().take(MAX_IOVECS).enumerate() {
                let bytes = chunk.bytes();
                slices[i] = IoSlice::new(if i == 0 { &bytes[self.offset..] } else { bytes });
                count += 1;
            }
            // One slice (the usual case: a turn's corked frames) takes the
            // lighter `send` path in the kernel rather than `writev`'s.
            let result = match count {
                1 => w.write(&slices[0]),
                _ => w.write_vectored(&slices[..count]),
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    self.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok((Flushed::Partial, written))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((Flushed::All, written))
    }

    /// Hands queued bytes to `sink` in order until it takes none or all are
    /// gone, consuming what it took; returns how many. For transports that
    /// transform bytes before the socket (TLS).
    pub fn drain_into(
        &mut self,
        mut sink: impl FnMut(&[u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut total = 0;
        while let Some(front) = self.chunks.front() {
            let n = sink(&front.bytes()[self.offset..])?;
            if n == 0 {
                break;
            }
            total += n;
            self.consume(n);
        }
        Ok(total)
    }

    /// Drops everything queued (the connection is going away).
    pub fn clear(&mut self) {
        *self = Outbox::default();
    }

    fn consume(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.bytes().len() - self.offset;
            if n >= left {
                n -= left;
                self.offset = 0;
                self.chunks.pop_front();
            } else {
                self.offset += n;
                n = 0;
            }
        }
        if self.len == 0 {
            // Release the queue's own allocation too: an idle connection holds nothing.
            self.chunks = VecDeque::new();
            self.offset = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that accepts at most `step` bytes per call and then blocks every other call.
    struct Trickle {
        out: Vec<u8>,
        step: usize,
        block_next: bool,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.block_next {
                self.block_next = false;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.block_next = true;
            let n = buf.len().min(self.step);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn bytes_come_out_in_order_across_partial_writes() {
        let mut ob = Outbox::default();
        ob.append(|v| v.extend_from_slice(b"hello "));
        ob.push_shared(Rc::from(&b"shared "[..]));
        ob.push_owned(b"owned ".to_vec());
        ob.append(|v| v.extend_from_slice(b"tail"));
        assert_eq!(ob.len(), 23);
        let mut w = Trickle {
            out: Vec::new(),
            step: 3,
            block_next: false,
        };
        let mut rounds = 0;
        while !ob.is_empty() {
            let _ = ob.write_to(&mut w).unwrap();
            rounds += 1;
            assert!(rounds < 100);
        }
        assert_eq!(w.out, b"hello shared owned tail");
        assert_eq!(
            ob.chunks.capacity(),
            0,
            "a drained outbox holds no allocation"
        );
    }

    #[test]
    fn appends_never_grow_a_buffer_queued_whole() {
        let mut ob = Outbox::default();
        let payload = vec![7u8; 4096];
        let ptr = payload.as_ptr();
        ob.push_owned(payload);
        ob.append(|v| v.extend_from_slice(b"next header"));
        assert_eq!(
            ob.chunks.len(),
            2,
            "the header goes into a chunk of its own"
        );
        assert_eq!(
            ob.chunks[0].bytes().as_ptr(),
            ptr,
            "the payload was not moved"
        );
    }

    #[test]
    fn small_appends_share_one_chunk() {
        let mut ob = Outbox::default();
        for _ in 0..100 {
            ob.append(|v| v.extend_from_slice(b"0123456789"));
        }
        assert_eq!(ob.chunks.len(), 1);
        assert_eq!(ob.len(), 1000);
    }
}
