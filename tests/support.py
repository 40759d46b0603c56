"""Test helpers: real local peers (an HTTP recorder standing in for Twilio's API) and signing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
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
    """Twilio's Messages API on loopback: create (201 with a SID, or a scripted error) and list.

    Created messages are kept like Twilio keeps them, so ``GET …/Messages.json?To=…``
    answers the same JSON page the real API does (newest first), for reconciliation.
    """

    def __init__(self) -> None:
        self.failures: list[tuple[int, dict[str, Any]]] = []
        # Load tests: answer 429 to everything until this time.time(), and 500
        # (creating nothing) to POSTs for which ``fail_500`` says so.
        self.throttle_until = 0.0
        self.fail_500: Callable[[dict[str, str]], bool] | None = None
        self.counter = 0
        self.created: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        super().__init__(responder=self._respond)

    def _respond(self, req: RecordedRequest) -> tuple[int, dict[str, Any]]:
        if req.method == "GET":
            return 200, self._list(req)
        with self._lock:
            if self.failures:
                return self.failures.pop(0)
        if time.time() < self.throttle_until:
            return 429, {"code": 20429, "message": "Too Many Requests", "status": 429}
        if self.fail_500 is not None and self.fail_500(req.form):
            return 500, {"code": 20500, "message": "Internal Server Error", "status": 500}
        return 201, self.create(req.form.get("To", ""), req.form.get("Body", ""), req.form.get("From"))

    def create(self, to: str, body: str, from_: str | None = "1708") -> dict[str, Any]:
        """Keep a message as Twilio would after accepting it (also: one a killed sender got through)."""
        with self._lock:
            self.counter += 1
            sid = f"SMfake{self.counter:026d}"
            message = {"sid": sid, "status": "queued", "to": to, "from": from_, "body": body, "num_segments": "1",
                       "account_sid": "ACtest", "direction": "outbound-api", "error_code": None,
                       "date_created": formatdate(time.time(), usegmt=True), "date_sent": None,
                       "date_updated": formatdate(time.time(), usegmt=True),
                       "uri": f"/2010-04-01/Accounts/ACtest/Messages/{sid}.json"}
            self.created.append(message)
        return message

    def _list(self, req: RecordedRequest) -> dict[str, Any]:
        path, _, query = req.path.partition("?")
        params = {k: v[0] for k, v in parse_qs(query).items()}
        found = [m for m in reversed(self.created) if "To" not in params or m["to"] == params["To"]]
        size = int(params.get("PageSize", 50))
        return {"messages": found[:size], "end": min(size, len(found)) - 1, "first_page_uri": path, "page": 0,
                "page_size": size, "next_page_uri": None, "previous_page_uri": None, "start": 0, "uri": req.path}

    @property
    def messages(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/Messages.json")]

    def fail_next(self, status: int, code: int | None = None, message: str = "error") -> None:
        body: dict[str, Any] = {"status": status, "message": message}
        if code is not None:
            body["code"] = code
        self.failures.append((status, body))


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """X-Twilio-Signature as Twilio computes it (the SDK's own validator)."""
    return RequestValidator(token).compute_signature(url, params)
