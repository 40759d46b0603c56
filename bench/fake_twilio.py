"""A local stand-in for Twilio's Messages API, fast enough not to be what a benchmark measures.

``gunicorn -k gevent -w 1 bench.fake_twilio:app``: POST
``/2010-04-01/Accounts/<sid>/Messages.json`` answers 201 with the JSON the
SDK expects and records (arrival time, To, Body); ``GET /_count`` says how
many arrived and when the last one did, ``GET /_dump`` returns them all. One
worker: the record lives in its memory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

RECORDS: list[tuple[float, str, str]] = []


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI application."""
    path = environ.get("PATH_INFO", "")
    if environ["REQUEST_METHOD"] == "POST" and path.endswith("/Messages.json"):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = {k: v[0] for k, v in parse_qs(environ["wsgi.input"].read(length).decode()).items()}
        RECORDS.append((time.time(), form.get("To", ""), form.get("Body", "")))
        n = len(RECORDS)
        body = json.dumps({"sid": f"SMbench{n:026d}", "status": "queued", "to": form.get("To"),
                           "from": form.get("From"), "body": form.get("Body"), "num_segments": "1",
                           "account_sid": "ACbench", "date_created": None, "error_code": None}).encode()
        start_response("201 Created", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/_count":
        body = json.dumps({"count": len(RECORDS), "last": RECORDS[-1][0] if RECORDS else None}).encode()
    elif path == "/_dump":
        body = json.dumps(RECORDS).encode()
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
