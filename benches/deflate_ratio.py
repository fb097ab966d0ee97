#!/usr/bin/env python3
"""What permessage-deflate costs on the wire: sends the 64 JSON-like bodies of
`wsd load echo --json-like -s 1024` (the same generator, rewritten here) uncompressed
to a WebSocket echo endpoint that offers compression, and sums the payload sizes
of the server's compressed echoes.

Usage: benches/deflate_ratio.py HOST PORT PATH      e.g. 127.0.0.1 9001 /echo-shared
It talks only to the address it is given; every read is bounded by a timeout.
"""
import base64
import os
import socket
import struct
import sys

WORDS = ["the", "server", "message", "hello", "room", "quick", "latency", "deploy",
         "green", "socket", "review", "coffee", "merge", "build", "tonight", "release",
         "again", "thanks", "meeting", "queue", "window", "frame", "client", "metrics",
         "memory", "idle", "lunch", "done", "ok", "please", "check", "later"]


def bodies(size=1024, count=64):
    """The generator of src/load/echo.rs (Payloads::json_like), step for step."""
    state, ident, out = 0x2545F491, 1000, []

    def nxt(n):
        nonlocal state
        state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
        return (state >> 8) % n

    for _ in range(count):
        body = b""
        while len(body) < size:
            ident += 1 + nxt(7)
            words = [WORDS[nxt(len(WORDS))] for _ in range(4 + nxt(9))]
            user = nxt(50)
            body += ('{"id":%d,"user":"user-%d","room":"lobby","text":"%s","ts":%d},'
                     % (ident, user, " ".join(words), 1_700_000_000_000 + ident * 937)).encode()
        out.append(body[:size])
    return out


def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    s = socket.create_connection((host, port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, buf = buf.split(b"\r\n\r\n", 1)
    if b" 101 " not in head.split(b"\r\n")[0]:
        sys.exit(f"no upgrade: {head[:80]!r}")
    sent = received = 0
    for body in bodies():
        mask = os.urandom(4)
        s.sendall(bytes([0x81, 0x80 | 126]) + struct.pack(">H", len(body)) + mask
                  + bytes(b ^ mask[i % 4] for i, b in enumerate(body)))
        while True:
            if len(buf) >= 4 or (len(buf) >= 2 and buf[1] & 0x7F < 126):
                n, off = buf[1] & 0x7F, 2
                if n == 126:
                    n, off = struct.unpack(">H", buf[2:4])[0], 4
                if len(buf) >= off + n:
                    sent, received, buf = sent + len(body), received + n, buf[off + n:]
                    break
            buf += s.recv(65536)
    print(f"{path}: {sent} bytes sent, {received} bytes echoed on the wire, ratio {sent / received:.2f}:1")


if __name__ == "__main__":
    main()
