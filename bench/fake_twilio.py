"""A local stand-in for Twilio's Messages API, cheap enough not to be what a benchmark measures.

``python -m bench.fake_twilio PORT [LATENCY]``: POST
``/2010-04-01/Accounts/<sid>/Messages.json`` answers 201 with the JSON the
SDK expects and records (arrival time, To, Body); ``GET /_count`` says how
many arrived and when the last one did, ``GET /_dump`` returns them all.
``LATENCY`` (seconds, default 0) delays every answer, as the real API's round
trip from Indonesia does (a few hundred ms), to measure the calls in flight a
rate needs.

One process, one asyncio loop, HTTP/1.1 keep-alive and nothing else. It
shares the benchmark's two cores with the gateway, and Twilio's own servers
cost the gateway nothing: under gunicorn (gevent) this fake took 0.42–0.48 ms
of CPU per message, a tenth of the whole pipeline's, which the end-to-end
figure then charged to the gateway; here it takes a fraction of that
(docs/BENCHMARKS.md, "The fake provider").
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

RECORDS: list[tuple[float, str, str]] = []


def handle(method: str, path: str, body: bytes) -> tuple[bytes, bytes]:
    """(status line, JSON body) for one request."""
    if method == "POST" and path.endswith("/Messages.json"):
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        RECORDS.append((time.time(), form.get("To", ""), form.get("Body", "")))
        n = len(RECORDS)
        return b"201 Created", json.dumps({
            "sid": f"SMbench{n:026d}", "status": "queued", "to": form.get("To"), "from": form.get("From"),
            "body": form.get("Body"), "num_segments": "1", "account_sid": "ACbench", "date_created": None,
            "error_code": None}).encode()
    if path == "/_count":
        return b"200 OK", json.dumps({"count": len(RECORDS), "last": RECORDS[-1][0] if RECORDS else None}).encode()
    if path == "/_dump":
        return b"200 OK", json.dumps(RECORDS).encode()
    return b"404 Not Found", b'{"message": "not found"}'


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The same as a WSGI application (``gunicorn -k gevent -w 1 bench.fake_twilio:app``), the
    previous way of serving it, kept to compare (``bench/e2e.py --fake gunicorn``)."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    status, payload = handle(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), body)
    start_response(status.decode(), [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


class _Connection(asyncio.Protocol):
    """Requests of one keep-alive connection, answered in order (after ``latency`` seconds)."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                           if line.lower().startswith("content-length:")), 0)
            if len(self.buffer) < end + 4 + length:
                return  # the body is still on its way
            body, self.buffer = self.buffer[end + 4:end + 4 + length], self.buffer[end + 4 + length:]
            status, payload = handle(method, path.split("?", 1)[0], body)
            answer = (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                      b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
            if self.latency and not path.startswith("/_"):
                asyncio.get_running_loop().call_later(self.latency, self.transport.write, answer)
            else:
                self.transport.write(answer)


async def serve(port: int, latency: float = 0.0) -> None:
    """Serve on 127.0.0.1:``port`` until killed."""
    server = await asyncio.get_running_loop().create_server(lambda: _Connection(latency), "127.0.0.1", port,
                                                            backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0))
