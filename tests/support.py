"""Test helpers: real local peers (an HTTP recorder standing in for Twilio's API) and signing."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from twilio.request_validator import RequestValidator


@dataclass
class RecordedRequest:
    """One HTTP request received by the recorder."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    body: bytes


Responder = Callable[[RecordedRequest], tuple[int, dict[str, Any]]]


@dataclass
class HttpRecorder:
    """A local HTTP server that records requests and answers with JSON from ``responder``."""

    responder: Responder
    requests: list[RecordedRequest] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HttpRecorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
                req = RecordedRequest(self.command, self.path, dict(self.headers), form, body)
                recorder.requests.append(req)
                status, payload = recorder.responder(req)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET = _handle  # noqa: N815

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


class FakeTwilioAPI(HttpRecorder):
    """Twilio's Messages API on loopback: 201 with a SID, or a scripted error."""

    def __init__(self) -> None:
        self.failures: list[tuple[int, dict[str, Any]]] = []
        self.counter = 0
        super().__init__(responder=self._respond)

    def _respond(self, req: RecordedRequest) -> tuple[int, dict[str, Any]]:
        if self.failures:
            return self.failures.pop(0)
        self.counter += 1
        sid = f"SMfake{self.counter:026d}"
        return 201, {"sid": sid, "status": "queued", "to": req.form.get("To"), "from": req.form.get("From"),
                     "body": req.form.get("Body"), "num_segments": "1",
                     "account_sid": "ACtest", "date_created": None, "error_code": None}

    @property
    def messages(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/Messages.json")]

    def fail_next(self, status: int, code: int | None = None, message: str = "error") -> None:
        body: dict[str, Any] = {"status": status, "message": message}
        if code is not None:
            body["code"] = code
        self.failures.append((status, body))


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """X-Twilio-Signature as Twilio computes it (the SDK's own validator)."""
    return RequestValidator(token).compute_signature(url, params)
