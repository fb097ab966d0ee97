//! A connection's pending output: owned bytes and shared (broadcast) frames, written
//! with one vectored write per attempt, and handed back entirely once drained.
//!
//! Owns ordering, corking and partial-write bookkeeping. It must never decide
//! limits or policy (the driver does) or build a frame (the core does). An
//! empty outbox is one null pointer: the queue lives in a box that exists only
//! while bytes wait, and a drained box (its queue and one corking buffer of at
//! most [`MAX_POOLED_BYTES`]) goes to the thread's [`Pool`] for the next
//! connection that sends, so a busy turn allocates nothing once warm.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

use crate::core::OwnedFrame;
use crate::server::pool::{Pool, MAX_POOLED_BYTES};

/// Buffers below this size take further small appends (corking).
const COALESCE_LIMIT: usize = 64 * 1024;
/// The first capacity of a corking buffer made for an empty queue.
const CORK_INITIAL: usize = 1000;
/// Frame payloads at least this large are queued whole, without copying.
pub const ZERO_COPY_MIN: usize = 4 * 1024;
/// The most slices handed to one `writev`.
const MAX_IOVECS: usize = 64;
/// Drained queues kept per thread for reuse.
const POOLED_QUEUES: usize = 256;
/// A pooled queue whose ring grew past this many chunks is freed instead.
const POOLED_CHUNKS: usize = 64;

thread_local! {
    static QUEUES: Pool<Box<Queue>> = const { Pool::new(POOLED_QUEUES) };
}

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

/// One connection's queue: `None` exactly while nothing waits.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: Option<Box<Queue>>,
}

/// What a non-empty outbox holds.
#[derive(Debug, Default)]
struct Queue {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    offset: usize,
    /// Bytes still to write.
    len: usize,
    /// An emptied corking buffer kept for the next one (capacity only).
    spare: Vec<u8>,
}

impl Outbox {
    pub fn len(&self) -> usize {
        self.queue.as_ref().map_or(0, |q| q.len)
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_none()
    }

    /// Lets `fill` append bytes to the end of the queue; returns how many it added.
    pub fn append(&mut self, fill: impl FnOnce(&mut Vec<u8>)) -> usize {
        let added = self.queue().append(fill);
        self.release_if_empty();
        added
    }

    /// Queues a buffer without copying it.
    pub fn push_owned(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            let queue = self.queue();
            queue.len += bytes.len();
            queue.chunks.push_back(Chunk::Whole(bytes));
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
            let queue = self.queue();
            queue.len += frame.len();
            queue.chunks.push_back(Chunk::Shared(frame));
        }
    }

    /// Writes until the queue is empty or the writer would block; returns the bytes written.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<(Flushed, usize)> {
        let Some(queue) = self.queue.as_mut() else {
            return Ok((Flushed::All, 0));
        };
        let result = queue.write_to(w);
        self.release_if_empty();
        result
    }

    /// Hands queued bytes to `sink` in order until it takes none or all are
    /// gone, consuming what it took; returns how many. For transports that
    /// transform bytes before the socket (TLS).
    pub fn drain_into(
        &mut self,
        sink: impl FnMut(&[u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let Some(queue) = self.queue.as_mut() else {
            return Ok(0);
        };
        let result = queue.drain_into(sink);
        self.release_if_empty();
        result
    }

    /// Drops everything queued (the connection is going away).
    pub fn clear(&mut self) {
        if let Some(queue) = self.queue.take() {
            recycle(queue);
        }
    }

    /// The queue, taken from the pool (or made) if there is none yet.
    fn queue(&mut self) -> &mut Queue {
        self.queue.get_or_insert_with(|| {
            QUEUES
                .try_with(Pool::take)
                .ok()
                .flatten()
                .unwrap_or_default()
        })
    }

    fn release_if_empty(&mut self) {
        if self.queue.as_ref().is_some_and(|q| q.len == 0) {
            self.clear();
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Empties `queue` and keeps it for reuse, within the pool's bounds.
fn recycle(mut queue: Box<Queue>) {
    while let Some(chunk) = queue.chunks.pop_front() {
        queue.keep_spare(chunk);
    }
    if queue.chunks.capacity() > POOLED_CHUNKS {
        queue.chunks = VecDeque::new();
    }
    queue.offset = 0;
    queue.len = 0;
    let _ = QUEUES.try_with(|pool| pool.put(queue));
}

impl Queue {
    fn append(&mut self, fill: impl FnOnce(&mut Vec<u8>)) -> usize {
        let reuse = matches!(self.chunks.back(), Some(Chunk::Buffer(v)) if v.len() < COALESCE_LIMIT)
            && !(self.chunks.len() == 1 && self.offset > 0);
        if !reuse {
            // A kept buffer first; else the first buffer of an empty queue
            // gets room for a turn's worth of small frames at once, instead
            // of a doubling series from 8 bytes, and a buffer behind a whole
            // payload (usually one frame header) starts small.
            let buffer = if self.spare.capacity() > 0 {
                std::mem::take(&mut self.spare)
            } else if self.chunks.is_empty() {
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
            if let Some(chunk) = self.chunks.pop_back() {
                self.keep_spare(chunk);
            }
        }
        self.len += added;
        added
    }

    fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<(Flushed, usize)> {
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

    fn drain_into(
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
                if let Some(chunk) = self.chunks.pop_front() {
                    self.keep_spare(chunk);
                }
            } else {
                self.offset += n;
                n = 0;
            }
        }
    }

    /// Keeps a written corking buffer's room for the next one, if there is
    /// no spare yet and it is not oversized; anything else is dropped.
    fn keep_spare(&mut self, chunk: Chunk) {
        if let Chunk::Buffer(mut buffer) = chunk {
            if self.spare.capacity() == 0 && buffer.capacity() <= MAX_POOLED_BYTES {
                buffer.clear();
                self.spare = buffer;
            }
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
        assert!(ob.queue.is_none(), "a drained outbox holds no allocation");
    }

    fn queue(ob: &Outbox) -> &Queue {
        ob.queue.as_deref().expect("bytes are queued")
    }

    #[test]
    fn a_drained_queue_and_its_buffer_are_reused() {
        let mut ob = Outbox::default();
        ob.append(|v| v.extend_from_slice(b"first turn"));
        let first = queue(&ob) as *const Queue;
        let Some(Chunk::Buffer(buffer)) = queue(&ob).chunks.front() else {
            panic!("a corking buffer");
        };
        let buffer_ptr = buffer.as_ptr();
        let mut sink = Vec::new();
        assert_eq!(ob.write_to(&mut sink).unwrap(), (Flushed::All, 10));
        assert!(ob.is_empty());
        ob.append(|v| v.extend_from_slice(b"second"));
        assert_eq!(queue(&ob) as *const Queue, first, "the same box");
        let Some(Chunk::Buffer(buffer)) = queue(&ob).chunks.front() else {
            panic!("a corking buffer");
        };
        assert_eq!(buffer.as_ptr(), buffer_ptr, "the same buffer");
        ob.clear();
        assert_eq!(ob.len(), 0);
    }

    #[test]
    fn an_oversized_buffer_is_not_kept() {
        let mut ob = Outbox::default();
        ob.append(|v| v.resize(MAX_POOLED_BYTES + 1, 0));
        let mut sink = Vec::new();
        ob.write_to(&mut sink).unwrap();
        ob.append(|v| v.push(1));
        let Some(Chunk::Buffer(buffer)) = queue(&ob).chunks.front() else {
            panic!("a corking buffer");
        };
        assert!(buffer.capacity() <= MAX_POOLED_BYTES);
    }

    #[test]
    fn an_append_of_nothing_leaves_it_empty() {
        let mut ob = Outbox::default();
        assert_eq!(ob.append(|_| {}), 0);
        assert!(ob.is_empty());
    }

    #[test]
    fn appends_never_grow_a_buffer_queued_whole() {
        let mut ob = Outbox::default();
        let payload = vec![7u8; 4096];
        let ptr = payload.as_ptr();
        ob.push_owned(payload);
        ob.append(|v| v.extend_from_slice(b"next header"));
        assert_eq!(
            queue(&ob).chunks.len(),
            2,
            "the header goes into a chunk of its own"
        );
        assert_eq!(
            queue(&ob).chunks[0].bytes().as_ptr(),
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
        assert_eq!(queue(&ob).chunks.len(), 1);
        assert_eq!(ob.len(), 1000);
    }
}
