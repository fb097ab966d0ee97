//! The per-connection WebSocket state machine after the handshake: frames in,
//! messages and control events out, automatic replies queued for sending.
//!
//! Owns frame reassembly, the masking rule for its role, size limits, incremental
//! UTF-8 validation, ping/pong replies and the closing handshake (RFC 6455 §5-§7).
//! It must never touch a socket or a clock, and holds no heap memory while idle:
//! every buffer it fills is handed over with the event that completes it.
//!
//! Driving it, the one loop every caller writes:
//!
//! 0. Optionally, [`WebSocket::read_in_place`] while it returns a message: whole
//!    messages at the front of the buffer are unmasked where they lie and lent
//!    out, with nothing queued or allocated. Pass what it declines to step 1.
//! 1. [`WebSocket::handle_read`] with the received bytes: it consumes every whole
//!    frame and any partial payload, queues the events they complete, and returns
//!    how many bytes it took (the caller keeps the rest, at most a partial header).
//! 2. [`WebSocket::poll_event`] until `None`, answering each event and then
//!    calling [`WebSocket::poll_transmit`] for the automatic replies it caused (a
//!    pong, a close reply), so every reply keeps the order of what it answers.
//! 3. [`WebSocket::poll_transmit`] once more (the close frame of a failed
//!    connection comes here, after the replies to the messages before the
//!    failure), then write everything out.
//!
//! Outgoing data goes through [`WebSocket::send`] / [`WebSocket::send_owned`], or
//! [`crate::core::encode_shared`] with [`WebSocket::shared_encoding`] for fan-out.
//! permessage-deflate, once negotiated ([`WebSocket::with_deflate`]), allows RSV1
//! on a message's first frame, inflates a compressed message when its last
//! frame arrives and compresses what is sent; TLS sits below, as a byte-stream
//! layer between socket and core.

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::core::close::{parse_close_payload, write_close_payload, CloseFrame};
use crate::core::close_code::CloseCode;
use crate::core::deflate::PerMessageDeflate;
use crate::core::encode::{
    encode_message, encode_message_with, encode_owned, encode_unmasking, Encoding, OwnedFrame, RSV1,
};
use crate::core::error::ProtocolError;
use crate::core::frame::{encode_frame, FrameHeader, OpCode};
use crate::core::mask::apply_mask;
use crate::core::message::{Message, MessageKind};
use crate::core::utf8::Utf8Validator;

/// What [`WebSocket::echo_in_place`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Echoed {
    /// Bytes of the input the echoed frames took.
    pub consumed: usize,
    /// Messages echoed.
    pub messages: u64,
    /// Their payload bytes, all together.
    pub payload_bytes: usize,
}

/// A whole message at the front of the input (see `WebSocket::whole_message_at`).
struct WholeMessage {
    kind: MessageKind,
    mask: Option<[u8; 4]>,
    /// Where its payload starts and ends in the input.
    payload_at: usize,
    end: usize,
}

/// Which end of the connection this state machine plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Expects masked frames, sends unmasked ones.
    Server,
    /// Expects unmasked frames, sends masked ones.
    Client,
}

/// Size limits, checked against a frame's declared length before its payload is buffered.
/// A connection keeps them as 32 bits each: a limit above 4 GiB - 1 acts as
/// 4 GiB - 1 (a message is buffered whole, so larger ones are not useful).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest single frame accepted. Default 16 MiB.
    pub max_frame_size: u64,
    /// The largest message (sum of its fragments) accepted. Default 16 MiB.
    pub max_message_size: u64,
}

/// [`Limits`] as a connection stores them: 32 bits each, so that the state
/// machine of every idle connection stays six words.
#[derive(Debug, Clone, Copy)]
struct StoredLimits {
    max_frame_size: u32,
    max_message_size: u32,
}

impl StoredLimits {
    fn new(limits: Limits) -> Self {
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        StoredLimits {
            max_frame_size: clamp(limits.max_frame_size),
            max_message_size: clamp(limits.max_message_size),
        }
    }

    fn max_frame_size(self) -> u64 {
        u64::from(self.max_frame_size)
    }

    fn max_message_size(self) -> u64 {
        u64::from(self.max_message_size)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
        }
    }
}

/// What the peer did, in the order it did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete text or binary message.
    Message(Message),
    /// A ping; polling it queues its pong for [`WebSocket::poll_transmit`].
    Ping(Vec<u8>),
    /// A pong, solicited or not. Useful as a sign of life.
    Pong(Vec<u8>),
    /// The peer's close frame (`None`: it carried no code). Polling it queues our
    /// reply, if one was owed, and moves the state to [`State::Closed`].
    Close(Option<CloseFrame>),
}

/// Where the closing handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We sent a close and wait for the peer's; its data frames are discarded.
    Closing,
    /// The closing handshake is over, or the connection failed. The caller MUST
    /// flush [`WebSocket::poll_transmit`] and then close the TCP connection (the
    /// server side closes first, §7.1.1).
    Closed,
}

/// The sending side was used after a close was sent or received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotOpen;

impl std::fmt::Display for NotOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the WebSocket is not open")
    }
}

impl std::error::Error for NotOpen {}

/// The frame being received.
#[derive(Debug)]
struct FrameInProgress {
    header: FrameHeader,
    /// Payload bytes still to come.
    remaining: u64,
    /// Payload bytes received so far (the masking offset).
    received: u64,
    /// A data frame that arrived after we sent our close: read and dropped.
    discard: bool,
}

/// The data message being reassembled.
#[derive(Debug)]
struct PartialMessage {
    kind: MessageKind,
    /// The payload, or while `compressed` the compressed payload.
    data: Vec<u8>,
    utf8: Utf8Validator,
    /// RSV1 on the first frame: inflate `data` when the message ends.
    compressed: bool,
}

/// The largest buffer reserved up front for a frame; more grows as bytes arrive,
/// so a peer that declares a large frame and sends nothing costs little.
const MAX_UPFRONT_RESERVE: u64 = 256 * 1024;

/// One WebSocket connection's protocol state.
#[derive(Debug)]
pub struct WebSocket {
    role: Role,
    limits: StoredLimits,
    state: State,
    /// Client role: the CSPRNG that draws masking keys (§5.3, §10.3). Boxed so
    /// that server-side connections, which never mask, stay one word.
    masks: Option<Box<StdRng>>,
    /// Receive-side work under way; `None` while idle, so an idle connection's
    /// state is a few words and no heap (the daemon holds thousands of them).
    in_progress: Option<Box<InProgress>>,
    /// permessage-deflate, if negotiated. Without context takeover it holds no
    /// heap memory; see [`PerMessageDeflate`].
    deflate: Option<PerMessageDeflate>,
}

/// What exists only while bytes are being received or replies wait: allocated
/// when a read starts, released when a call ends with nothing left in it.
#[derive(Debug, Default)]
struct InProgress {
    frame: Option<FrameInProgress>,
    message: Option<PartialMessage>,
    /// The payload of the control frame being received (at most 125 bytes).
    control: Vec<u8>,
    /// Events not yet polled, in the order the peer caused them.
    events: VecDeque<Event>,
    /// The error that failed the connection; it takes effect (close frame queued,
    /// state `Closed`) once every event before it has been polled.
    failure: Option<ProtocolError>,
    /// A close frame or an error ended the input: later bytes are ignored.
    input_ended: bool,
    /// Automatic replies (pong, close) waiting for `poll_transmit`.
    transmit: Vec<u8>,
}

/// Room for this many events is made at once: one read often completes several
/// messages (pipelining clients), and growing one by one would reallocate.
const EVENTS_RESERVED: usize = 16;

impl InProgress {
    fn push_event(&mut self, event: Event) {
        if self.events.capacity() == 0 {
            self.events.reserve(EVENTS_RESERVED);
        }
        self.events.push_back(event);
    }

    fn is_idle(&self) -> bool {
        self.frame.is_none()
            && self.message.is_none()
            && self.events.is_empty()
            && self.failure.is_none()
            && !self.input_ended
            && self.control.is_empty()
            && self.transmit.is_empty()
    }
}

impl WebSocket {
    /// A server-side connection, open (the handshake is done).
    pub fn server(limits: Limits) -> Self {
        Self::new(Role::Server, limits, None)
    }

    /// A client-side connection, open. `mask_seed` MUST come from the operating
    /// system's randomness (e.g. `getrandom`): masking keys are drawn from a
    /// ChaCha CSPRNG seeded with it, so they are unpredictable (§5.3, §10.3).
    pub fn client(limits: Limits, mask_seed: [u8; 32]) -> Self {
        let masks = Box::new(StdRng::from_seed(mask_seed));
        Self::new(Role::Client, limits, Some(masks))
    }

    fn new(role: Role, limits: Limits, masks: Option<Box<StdRng>>) -> Self {
        WebSocket {
            role,
            limits: StoredLimits::new(limits),
            state: State::Open,
            masks,
            in_progress: None,
            deflate: None,
        }
    }

    /// Turns on permessage-deflate as negotiated in the handshake.
    pub fn with_deflate(mut self, deflate: PerMessageDeflate) -> Self {
        self.deflate = Some(deflate);
        self
    }

    /// permessage-deflate, if it was negotiated.
    pub fn deflate(&self) -> Option<&PerMessageDeflate> {
        self.deflate.as_ref()
    }

    /// Which end this state machine plays.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the closing handshake stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether data may still be sent (no close sent or received).
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Consumes every whole frame and any partial payload from the front of
    /// `input`, queues the events they complete (see [`WebSocket::poll_event`]) and
    /// returns how many bytes it took; the caller keeps the rest (at most a partial
    /// frame header) and passes it again with more.
    ///
    /// A protocol error fails the connection and is returned here. Events from
    /// before the error stay queued and MUST still be polled: the close frame with
    /// the error's code is queued, and the state becomes `Closed`, once they have
    /// been, so replies to them go out before the close.
    pub fn handle_read(&mut self, input: &[u8]) -> Result<usize, ProtocolError> {
        if input.is_empty() && self.in_progress.is_none() {
            return Ok(0);
        }
        let result = self.read_frames(input);
        self.apply_failure_when_due();
        self.release_if_idle();
        result
    }

    fn read_frames(&mut self, input: &[u8]) -> Result<usize, ProtocolError> {
        let mut pos = 0;
        loop {
            if self.state == State::Closed || self.work().input_ended {
                return Ok(input.len());
            }
            let step = match &self.work().frame {
                None => match FrameHeader::decode(&input[pos..]) {
                    Ok(None) => break,
                    Ok(Some((header, n))) => {
                        pos += n;
                        self.begin_frame(header)
                    }
                    Err(e) => Err(e),
                },
                Some(frame) => {
                    let take = frame.remaining.min((input.len() - pos) as u64) as usize;
                    if take == 0 && frame.remaining > 0 {
                        break;
                    }
                    let chunk = &input[pos..pos + take];
                    pos += take;
                    self.take_payload(chunk)
                }
            };
            let step = step.and_then(|()| match &self.work().frame {
                Some(frame) if frame.remaining == 0 => self.end_frame(),
                _ => Ok(()),
            });
            if let Err(e) = step {
                return Err(self.fail(e));
            }
        }
        Ok(pos)
    }

    /// Reads one whole message where it lies, if the front of `input` is one:
    /// a single unfragmented, uncompressed text or binary frame, entirely in
    /// `input`, within the limits, while nothing else is under way. Its payload
    /// is unmasked in place and returned borrowed with how many bytes of `input`
    /// the frame took; no event is queued and nothing is allocated.
    ///
    /// `None` means "not this way": the caller passes the same bytes to
    /// [`WebSocket::handle_read`], which handles every other case (partial
    /// frames, fragments, control frames, compressed messages, errors). `input`
    /// is then exactly as it was: a text payload that is not valid UTF-8 is
    /// masked again, so the error comes from `handle_read` in its proper order.
    /// The two may be mixed freely; the messages come out in the peer's order.
    pub fn read_in_place<'a>(
        &mut self,
        input: &'a mut [u8],
    ) -> Option<(MessageKind, &'a [u8], usize)> {
        let WholeMessage {
            kind,
            mask,
            payload_at,
            end,
        } = self.whole_message_at(input)?;
        let payload = &mut input[payload_at..end];
        if let Some(key) = mask {
            apply_mask(payload, key, 0);
        }
        if kind == MessageKind::Text && simdutf8::basic::from_utf8(payload).is_err() {
            if let Some(key) = mask {
                apply_mask(payload, key, 0);
            }
            return None;
        }
        Some((kind, &input[payload_at..end], end))
    }

    /// A server's echo of whole messages: while the front of `input` is one
    /// whole message that [`WebSocket::read_in_place`] would take, with at most
    /// `max_payload` bytes, appends it back to the peer as one frame to `out`,
    /// unmasked on the way there. `input` is left as it was, and no event is
    /// queued. Stops at the first frame it does not take (the caller hands the
    /// rest to `read_in_place` or [`WebSocket::handle_read`], as if nothing had
    /// been echoed); takes nothing on the client side or with
    /// permessage-deflate, where an echo is not the received bytes unmasked.
    pub fn echo_in_place(&self, input: &[u8], out: &mut Vec<u8>, max_payload: usize) -> Echoed {
        let mut echoed = Echoed::default();
        if self.role != Role::Server || self.deflate.is_some() {
            return echoed;
        }
        let mut rest = input;
        while let Some(message) = self.whole_message_at(rest) {
            let len = message.end - message.payload_at;
            // On the server side every message taken is masked.
            let (Some(key), true) = (message.mask, len <= max_payload) else {
                break;
            };
            let start = out.len();
            let payload = &rest[message.payload_at..message.end];
            encode_unmasking(out, message.kind, payload, key);
            if message.kind == MessageKind::Text
                && simdutf8::basic::from_utf8(&out[out.len() - len..]).is_err()
            {
                out.truncate(start);
                break;
            }
            rest = &rest[message.end..];
            echoed.consumed += message.end;
            echoed.messages += 1;
            echoed.payload_bytes += len;
        }
        echoed
    }

    /// The frame at the front of `input`, if it is one whole message that may
    /// be taken where it lies (by [`WebSocket::read_in_place`] or
    /// [`WebSocket::echo_in_place`]): a single unfragmented, uncompressed text
    /// or binary frame, masked as this side expects, within the limits and
    /// entirely in `input`, while the connection is open and nothing else is
    /// under way.
    fn whole_message_at(&self, input: &[u8]) -> Option<WholeMessage> {
        if self.state != State::Open || self.in_progress.is_some() {
            return None;
        }
        let (header, head_len) = FrameHeader::decode(input).ok()??;
        let kind = match header.opcode {
            OpCode::Text => MessageKind::Text,
            OpCode::Binary => MessageKind::Binary,
            _ => return None,
        };
        let masked_as_expected = header.mask.is_some() == (self.role == Role::Server);
        let len = header.payload_len;
        if !header.fin
            || header.rsv != 0
            || !masked_as_expected
            || len > self.limits.max_frame_size()
            || len > self.limits.max_message_size()
            || len > (input.len() - head_len) as u64
        {
            return None;
        }
        Some(WholeMessage {
            kind,
            mask: header.mask,
            payload_at: head_len,
            end: head_len + len as usize,
        })
    }

    /// The next event, in the order the peer caused them. Polling a ping queues
    /// its pong; polling a close queues the close reply and ends the connection.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.in_progress.as_mut()?.events.pop_front();
        match &event {
            Some(Event::Ping(payload)) if self.state == State::Open => {
                self.queue_control(OpCode::Pong, payload);
            }
            Some(Event::Close(close)) => {
                if self.state == State::Open {
                    // The reply echoes the code alone (§5.5.1), from the stack.
                    let code = close.as_ref().map(|frame| frame.code.0.to_be_bytes());
                    self.queue_control(OpCode::Close, code.as_ref().map_or(&[], |c| &c[..]));
                }
                self.state = State::Closed;
            }
            Some(_) => {}
            // Every event before a failure has been handled: it takes effect now.
            None => self.apply_failure_when_due(),
        }
        self.release_if_idle();
        event
    }

    /// Moves the automatic replies (pongs, close replies, the close frame of a
    /// failed connection) onto the end of `out`; returns how many bytes. Call it
    /// after polling every event: a pending failure takes effect here at the latest.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        self.apply_failure_when_due();
        let Some(p) = self.in_progress.as_mut() else {
            return 0;
        };
        let n = p.transmit.len();
        if out.capacity() == 0 {
            *out = std::mem::take(&mut p.transmit);
        } else {
            out.extend_from_slice(&p.transmit);
            p.transmit = Vec::new();
        }
        self.release_if_idle();
        n
    }

    /// Whether automatic replies are waiting for `poll_transmit`.
    pub fn has_transmit(&self) -> bool {
        self.in_progress
            .as_ref()
            .is_some_and(|p| !p.transmit.is_empty())
    }

    /// Appends one message as a single frame to `out` (masked on the client side).
    pub fn send(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), NotOpen> {
        if self.state != State::Open {
            return Err(NotOpen);
        }
        let mask = self.next_mask();
        if let Some(deflate) = self.deflate.as_mut() {
            let mut compressed = Vec::new();
            if deflate.compress(payload, &mut compressed) {
                encode_message(out, RSV1, kind, &compressed, mask);
                return Ok(());
            }
        }
        encode_message(out, 0, kind, payload, mask);
        Ok(())
    }

    /// Like [`WebSocket::send`] for a payload of `len` bytes that `fill` writes
    /// straight into `out` (then masked there on the client side), so a caller
    /// that makes its payloads saves building them elsewhere first. With
    /// permessage-deflate the payload is compressed, through a temporary buffer.
    pub fn send_with(
        &mut self,
        kind: MessageKind,
        len: usize,
        out: &mut Vec<u8>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), NotOpen> {
        if self.state != State::Open {
            return Err(NotOpen);
        }
        if self.deflate.is_some() {
            let mut payload = vec![0; len];
            fill(&mut payload);
            return self.send(kind, &payload, out);
        }
        let mask = self.next_mask();
        encode_message_with(out, kind, len, mask, fill);
        Ok(())
    }

    /// Encodes one message as a frame that keeps `payload`'s buffer, so the
    /// caller can queue a large payload without copying it.
    pub fn send_owned(
        &mut self,
        kind: MessageKind,
        payload: Vec<u8>,
    ) -> Result<OwnedFrame, NotOpen> {
        if self.state != State::Open {
            return Err(NotOpen);
        }
        let mask = self.next_mask();
        if let Some(deflate) = self.deflate.as_mut() {
            let mut compressed = Vec::new();
            if deflate.compress(&payload, &mut compressed) {
                return Ok(encode_owned(RSV1, kind, compressed, mask));
            }
        }
        Ok(encode_owned(0, kind, payload, mask))
    }

    /// The encoding a frame shared with other connections must have to be sent
    /// on this one, for a message of `len` bytes (see
    /// [`crate::core::encode_shared`]); `None` if only [`WebSocket::send`] may
    /// encode it: on the client side (every frame has a mask of its own), with a
    /// compressor that keeps its history, or when the connection is not open.
    pub fn shared_encoding(&self, len: usize) -> Option<Encoding> {
        if self.role != Role::Server || self.state != State::Open {
            return None;
        }
        match &self.deflate {
            None => Some(Encoding::Plain),
            Some(deflate) => deflate.shared_encoding(len),
        }
    }

    /// Appends a ping to `out`. `payload` is cut to 125 bytes.
    pub fn ping(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), NotOpen> {
        let payload = &payload[..payload.len().min(125)];
        self.send_control(OpCode::Ping, payload, out)
    }

    /// Starts the closing handshake: appends a close frame to `out` and moves to
    /// `Closing`, where the peer's data is discarded until its close arrives.
    pub fn close(
        &mut self,
        code: CloseCode,
        reason: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), NotOpen> {
        let mut payload = Vec::with_capacity(2 + reason.len().min(123));
        write_close_payload(&mut payload, code, reason);
        self.send_control(OpCode::Close, &payload, out)?;
        self.state = State::Closing;
        if let Some(p) = self.in_progress.as_mut() {
            p.message = None;
        }
        self.release_if_idle();
        Ok(())
    }

    fn send_control(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), NotOpen> {
        if self.state != State::Open {
            return Err(NotOpen);
        }
        let mask = self.next_mask();
        encode_frame(out, true, opcode, payload, mask);
        Ok(())
    }

    fn begin_frame(&mut self, header: FrameHeader) -> Result<(), ProtocolError> {
        // RSV2 and RSV3 are always reserved. RSV1 marks a compressed message
        // under permessage-deflate, on its first frame only (RFC 7692 §6.1).
        let compressed = header.rsv == RSV1
            && self.deflate.is_some()
            && matches!(header.opcode, OpCode::Text | OpCode::Binary);
        if header.rsv != 0 && !compressed {
            return Err(ProtocolError::ReservedBitsSet { rsv: header.rsv });
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedClientFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedServerFrame),
            _ => {}
        }
        let len = header.payload_len;
        let discard = !header.opcode.is_control() && self.state != State::Open;
        if header.opcode.is_control() {
            self.work().control = Vec::with_capacity(len as usize);
        } else if !discard {
            if len > self.limits.max_frame_size() {
                return Err(ProtocolError::FrameTooBig {
                    len,
                    max: self.limits.max_frame_size(),
                });
            }
            let buffered = match (header.opcode, &self.work().message) {
                (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
                (OpCode::Continuation, Some(msg)) => msg.data.len() as u64,
                (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
                (_, None) => 0,
            };
            let total = buffered.saturating_add(len);
            if total > self.limits.max_message_size() {
                return Err(ProtocolError::MessageTooBig {
                    len: total,
                    max: self.limits.max_message_size(),
                });
            }
            let kind = if header.opcode == OpCode::Binary {
                MessageKind::Binary
            } else {
                MessageKind::Text
            };
            let msg = self.work().message.get_or_insert_with(|| PartialMessage {
                kind,
                data: Vec::new(),
                utf8: Utf8Validator::new(),
                compressed,
            });
            msg.data.reserve(len.min(MAX_UPFRONT_RESERVE) as usize);
        }
        self.work().frame = Some(FrameInProgress {
            header,
            remaining: len,
            received: 0,
            discard,
        });
        Ok(())
    }

    fn take_payload(&mut self, chunk: &[u8]) -> Result<(), ProtocolError> {
        let p = self.work();
        let Some(frame) = p.frame.as_mut() else {
            return Ok(());
        };
        let offset = frame.received as usize;
        frame.remaining -= chunk.len() as u64;
        frame.received += chunk.len() as u64;
        if frame.discard {
            return Ok(());
        }
        let key = frame.header.mask;
        let buf = if frame.header.opcode.is_control() {
            &mut p.control
        } else if let Some(msg) = p.message.as_mut() {
            &mut msg.data
        } else {
            return Ok(());
        };
        let start = buf.len();
        buf.extend_from_slice(chunk);
        if let Some(key) = key {
            apply_mask(&mut buf[start..], key, offset);
        }
        if let Some(msg) = p
            .message
            .as_mut()
            .filter(|m| m.kind == MessageKind::Text && !m.compressed)
        {
            if !frame.header.opcode.is_control() {
                msg.utf8
                    .feed(&msg.data[start..])
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
        }
        Ok(())
    }

    fn end_frame(&mut self) -> Result<(), ProtocolError> {
        let Some(frame) = self.work().frame.take() else {
            return Ok(());
        };
        if frame.discard {
            return Ok(());
        }
        match frame.header.opcode {
            OpCode::Ping => {
                let payload = std::mem::take(&mut self.work().control);
                self.work().push_event(Event::Ping(payload));
            }
            OpCode::Pong => {
                let payload = std::mem::take(&mut self.work().control);
                self.work().push_event(Event::Pong(payload));
            }
            OpCode::Close => {
                let payload = std::mem::take(&mut self.work().control);
                let close = parse_close_payload(&payload)?;
                let work = self.work();
                work.message = None;
                work.input_ended = true;
                work.push_event(Event::Close(close));
            }
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if frame.header.fin {
                    if let Some(mut msg) = self.work().message.take() {
                        let text = msg.kind == MessageKind::Text;
                        if msg.compressed {
                            msg.data = self.inflate(&msg.data, text)?;
                        } else if text {
                            msg.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                        }
                        self.work().push_event(Event::Message(Message {
                            kind: msg.kind,
                            data: msg.data,
                        }));
                    }
                }
            }
        }
        Ok(())
    }

    /// Inflates a compressed message, within the message size limit.
    fn inflate(&mut self, compressed: &[u8], text: bool) -> Result<Vec<u8>, ProtocolError> {
        let max = self.limits.max_message_size();
        match self.deflate.as_mut() {
            Some(deflate) => deflate.inflate(compressed, max, text),
            None => Err(ProtocolError::ReservedBitsSet { rsv: RSV1 }),
        }
    }

    /// Fails the connection (§7.1.7): drops partial state and ignores further
    /// input; the close frame follows once the events before it are polled.
    fn fail(&mut self, error: ProtocolError) -> ProtocolError {
        let work = self.work();
        work.frame = None;
        work.message = None;
        work.control = Vec::new();
        work.input_ended = true;
        work.failure = Some(error.clone());
        error
    }

    /// Once no event precedes a failure: queues a close with the error's code
    /// (unless a close was already sent) and moves to `Closed`.
    fn apply_failure_when_due(&mut self) {
        let Some(p) = self.in_progress.as_mut() else {
            return;
        };
        if !p.events.is_empty() {
            return;
        }
        let Some(error) = p.failure.take() else {
            return;
        };
        if self.state == State::Open {
            let mut payload = Vec::new();
            write_close_payload(&mut payload, error.close_code(), &error.to_string());
            self.queue_control(OpCode::Close, &payload);
        }
        self.state = State::Closed;
    }

    fn queue_control(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = self.next_mask();
        encode_frame(&mut self.work().transmit, true, opcode, payload, mask);
    }

    /// The receive-side state, allocated on first use.
    fn work(&mut self) -> &mut InProgress {
        self.in_progress.get_or_insert_with(Box::default)
    }

    fn release_if_idle(&mut self) {
        if self.in_progress.as_ref().is_some_and(|p| p.is_idle()) {
            self.in_progress = None;
        }
    }

    /// A fresh, unpredictable masking key on the client side; none on the server side.
    fn next_mask(&mut self) -> Option<[u8; 4]> {
        self.masks.as_mut().map(|rng| rng.next_u32().to_ne_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, fin, opcode, payload, Some([1, 2, 3, 4]));
        out
    }

    /// Feeds `input` like the reactor does and drains every event and reply.
    fn feed_and_drain(ws: &mut WebSocket, input: &[u8]) -> Vec<Event> {
        let (mut events, mut sent) = (Vec::new(), Vec::new());
        let n = ws.handle_read(input).unwrap();
        assert_eq!(n, input.len());
        while let Some(e) = ws.poll_event() {
            events.push(e);
        }
        ws.poll_transmit(&mut sent);
        events
    }

    #[test]
    fn an_idle_connection_holds_no_receive_state_between_messages() {
        let mut ws = WebSocket::server(Limits::default());
        assert!(ws.in_progress.is_none());
        let mut input = masked(OpCode::Text, false, b"hel");
        input.extend(masked(OpCode::Ping, true, b"p"));
        input.extend(masked(OpCode::Continuation, true, b"lo"));
        input.extend(masked(OpCode::Binary, true, &[7; 300]));
        let events = feed_and_drain(&mut ws, &input);
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(
            ws.in_progress.is_none(),
            "drained and between frames: nothing held"
        );
    }

    #[test]
    fn a_partial_frame_keeps_its_state_until_it_completes() {
        let mut ws = WebSocket::server(Limits::default());
        let frame = masked(OpCode::Text, true, b"hello");
        assert_eq!(ws.handle_read(&frame[..8]).unwrap(), 8);
        assert!(ws.in_progress.is_some(), "a frame is under way");
        let events = feed_and_drain(&mut ws, &frame[8..]);
        assert_eq!(events.len(), 1);
        assert!(ws.in_progress.is_none());
    }
}
