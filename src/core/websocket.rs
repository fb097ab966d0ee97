//! The per-connection WebSocket state machine after the handshake: frames in,
//! messages and control events out, automatic replies queued for sending.
//!
//! Owns frame reassembly, the masking rule for its role, size limits, incremental
//! UTF-8 validation, ping/pong replies and the closing handshake (RFC 6455 §5-§7).
//! It must never touch a socket or a clock, and holds no heap memory while idle:
//! every buffer it fills is handed over with the event that completes it.
//!
//! Driving it: call [`WebSocket::handle_read`] with received bytes; it consumes
//! bytes until it has produced one event or needs more input. Then drain
//! [`WebSocket::poll_event`] and [`WebSocket::poll_transmit`] and call again with the
//! unconsumed rest. Extensions (permessage-deflate) would hook in where a frame's
//! RSV bits are checked and where a finished message is handed out; TLS sits below,
//! as a byte-stream layer between socket and core.

use crate::core::close::{parse_close_payload, write_close_payload, CloseCode, CloseFrame};
use crate::core::error::ProtocolError;
use crate::core::frame::{encode_frame, FrameHeader, OpCode};
use crate::core::mask::apply_mask;
use crate::core::utf8::Utf8Validator;

/// Which end of the connection this state machine plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Expects masked frames, sends unmasked ones.
    Server,
    /// Expects unmasked frames, sends masked ones.
    Client,
}

/// Size limits, checked against a frame's declared length before its payload is buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest single frame accepted. Default 16 MiB.
    pub max_frame_size: u64,
    /// The largest message (sum of its fragments) accepted. Default 16 MiB.
    pub max_message_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
        }
    }
}

/// Whether a data message is text or binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    Text,
    Binary,
}

impl MessageKind {
    pub fn opcode(self) -> OpCode {
        match self {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        }
    }
}

/// A complete data message. Text messages are valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: MessageKind,
    pub data: Vec<u8>,
}

impl Message {
    /// The text of a text message.
    pub fn text(&self) -> Option<&str> {
        match self.kind {
            MessageKind::Text => std::str::from_utf8(&self.data).ok(),
            MessageKind::Binary => None,
        }
    }
}

/// What the peer did, in the order it did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete text or binary message.
    Message(Message),
    /// A ping; its pong is already queued for [`WebSocket::poll_transmit`].
    Ping(Vec<u8>),
    /// A pong, solicited or not. Useful as a sign of life.
    Pong(Vec<u8>),
    /// The peer's close frame (`None`: it carried no code). Our reply, if one was
    /// owed, is queued; the state is now [`State::Closed`].
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
    data: Vec<u8>,
    utf8: Utf8Validator,
}

/// The largest buffer reserved up front for a frame; more grows as bytes arrive,
/// so a peer that declares a large frame and sends nothing costs little.
const MAX_UPFRONT_RESERVE: u64 = 256 * 1024;

/// One WebSocket connection's protocol state.
#[derive(Debug)]
pub struct WebSocket {
    role: Role,
    limits: Limits,
    state: State,
    /// Client role: the state of the masking-key generator.
    mask_state: u64,
    /// Receive-side work under way; `None` while idle, so an idle connection's
    /// state is a few words and no heap (the daemon holds thousands of them).
    in_progress: Option<Box<InProgress>>,
}

/// What exists only while bytes are being received or replies wait: allocated
/// when a read starts, released when a call ends with nothing left in it.
#[derive(Debug, Default)]
struct InProgress {
    frame: Option<FrameInProgress>,
    message: Option<PartialMessage>,
    /// The payload of the control frame being received (at most 125 bytes).
    control: Vec<u8>,
    event: Option<Event>,
    /// Automatic replies (pong, close) waiting for `poll_transmit`.
    transmit: Vec<u8>,
}

impl InProgress {
    fn is_idle(&self) -> bool {
        self.frame.is_none()
            && self.message.is_none()
            && self.event.is_none()
            && self.control.is_empty()
            && self.transmit.is_empty()
    }
}

impl WebSocket {
    /// A server-side connection, open (the handshake is done).
    pub fn server(limits: Limits) -> Self {
        Self::new(Role::Server, limits, 0)
    }

    /// A client-side connection, open. `mask_seed` MUST come from a strong source of
    /// randomness (§5.3); masking keys are drawn from a generator seeded with it.
    pub fn client(limits: Limits, mask_seed: u64) -> Self {
        Self::new(Role::Client, limits, mask_seed | 1)
    }

    fn new(role: Role, limits: Limits, mask_state: u64) -> Self {
        WebSocket {
            role,
            limits,
            state: State::Open,
            mask_state,
            in_progress: None,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Whether data may still be sent (no close sent or received).
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Consumes bytes from the front of `input` until one event is ready or more
    /// input is needed, and returns how many bytes it consumed; the caller keeps the
    /// rest and passes it again. After a protocol error the connection is failed: a
    /// close frame with the error's code is queued and the state is `Closed`.
    pub fn handle_read(&mut self, input: &[u8]) -> Result<usize, ProtocolError> {
        if input.is_empty() && self.in_progress.is_none() {
            return Ok(0);
        }
        let result = self.read_frames(input);
        self.release_if_idle();
        result
    }

    fn read_frames(&mut self, input: &[u8]) -> Result<usize, ProtocolError> {
        let mut pos = 0;
        while self.work().event.is_none() {
            if self.state == State::Closed {
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

    /// The next event, if one is ready.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.in_progress.as_mut().and_then(|p| p.event.take())
    }

    /// Moves the automatic replies (pongs, close replies, the close frame of a
    /// failed connection) onto the end of `out`; returns how many bytes.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
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
        self.send_frame(kind.opcode(), payload, out)
    }

    /// Appends a ping to `out`. `payload` is cut to 125 bytes.
    pub fn ping(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), NotOpen> {
        let payload = &payload[..payload.len().min(125)];
        self.send_frame(OpCode::Ping, payload, out)
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
        self.send_frame(OpCode::Close, &payload, out)?;
        self.state = State::Closing;
        if let Some(p) = self.in_progress.as_mut() {
            p.message = None;
        }
        self.release_if_idle();
        Ok(())
    }

    fn send_frame(
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
        // No extension is negotiated, so every RSV bit is reserved. An extension
        // such as permessage-deflate would allow RSV1 here.
        if header.rsv != 0 {
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
            if len > self.limits.max_frame_size {
                return Err(ProtocolError::FrameTooBig {
                    len,
                    max: self.limits.max_frame_size,
                });
            }
            let buffered = match (header.opcode, &self.work().message) {
                (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
                (OpCode::Continuation, Some(msg)) => msg.data.len() as u64,
                (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
                (_, None) => 0,
            };
            let total = buffered.saturating_add(len);
            if total > self.limits.max_message_size {
                return Err(ProtocolError::MessageTooBig {
                    len: total,
                    max: self.limits.max_message_size,
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
        if let Some(msg) = p.message.as_mut().filter(|m| m.kind == MessageKind::Text) {
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
                if self.state == State::Open {
                    self.queue_control(OpCode::Pong, &payload);
                }
                self.work().event = Some(Event::Ping(payload));
            }
            OpCode::Pong => {
                self.work().event = Some(Event::Pong(std::mem::take(&mut self.work().control)))
            }
            OpCode::Close => {
                let payload = std::mem::take(&mut self.work().control);
                let close = parse_close_payload(&payload)?;
                if self.state == State::Open {
                    let mut reply = Vec::with_capacity(2);
                    if let Some(frame) = &close {
                        write_close_payload(&mut reply, frame.code, "");
                    }
                    self.queue_control(OpCode::Close, &reply);
                }
                self.state = State::Closed;
                self.work().message = None;
                self.work().event = Some(Event::Close(close));
            }
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if frame.header.fin {
                    if let Some(mut msg) = self.work().message.take() {
                        if msg.kind == MessageKind::Text {
                            msg.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                        }
                        self.work().event = Some(Event::Message(Message {
                            kind: msg.kind,
                            data: msg.data,
                        }));
                    }
                }
            }
        }
        Ok(())
    }

    /// Fails the connection (§7.1.7): queues a close with the error's code unless a
    /// close was already sent, drops partial state, and moves to `Closed`.
    fn fail(&mut self, error: ProtocolError) -> ProtocolError {
        if self.state == State::Open {
            let mut payload = Vec::new();
            write_close_payload(&mut payload, error.close_code(), &error.to_string());
            self.queue_control(OpCode::Close, &payload);
        }
        self.state = State::Closed;
        if let Some(p) = self.in_progress.as_mut() {
            p.frame = None;
            p.message = None;
            p.control = Vec::new();
        }
        error
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

    /// A fresh masking key on the client side (xorshift64*), none on the server side.
    fn next_mask(&mut self) -> Option<[u8; 4]> {
        if self.role == Role::Server {
            return None;
        }
        let mut x = self.mask_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.mask_state = x;
        let word = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        Some(((word >> 32) as u32).to_ne_bytes())
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
        let (mut pos, mut events, mut sent) = (0, Vec::new(), Vec::new());
        loop {
            let n = ws.handle_read(&input[pos..]).unwrap();
            pos += n;
            let event = ws.poll_event();
            ws.poll_transmit(&mut sent);
            match event {
                Some(e) => events.push(e),
                None if n == 0 => return events,
                None => {}
            }
        }
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
