"""An independent permessage-deflate client for tests/daemon_deflate.rs: Python's
`websockets` library (its own zlib use, its own framing) connects to URL with
its default deflate offer, sends text and binary messages of several sizes (each
twice, so a context kept between messages is exercised), checks every echo, and
prints one JSON line: the Sec-WebSocket-Extensions answer and what it checked.

Usage: python3 echo_client.py URL
It must never talk to anything but the URL it is given, and every wait is bounded.
"""

import json
import sys

from websockets.sync.client import connect


def payloads():
    chat = '{"type":"message","user":"ada","text":"hello, deflate"}'
    for size in (0, 10, 300, 5000, 100_000):
        text = (chat * (size // len(chat) + 1))[:size]
        yield text
        yield text
        yield text.encode() + bytes(range(256)) * (size // 512)


def main():
    url = sys.argv[1]
    checked = 0
    with connect(url, max_size=None, open_timeout=10, close_timeout=5) as ws:
        answer = ws.response.headers.get("Sec-WebSocket-Extensions")
        for message in payloads():
            ws.send(message)
            echo = ws.recv(timeout=10)
            if echo != message:
                print(json.dumps({"error": f"echo of {len(message)} differs"}))
                return 1
            checked += 1
    print(json.dumps({"extensions": answer, "checked": checked}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
