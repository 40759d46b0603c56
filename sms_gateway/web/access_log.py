"""gunicorn's access log, without the provider webhooks that were answered 2xx.

Each such webhook already has its own line from the gateway, at INFO, naming
the message (``stored twilio message #12 from +6281*****90``, ``duplicate …``,
``spooled …``, ``Twilio status delivered for outbound #7``): a second, access
line per SMS doubled the log of a surge and cost the web process about 15 % of
its CPU per webhook (docs/BENCHMARKS.md). A refused webhook (403, 400, 413)
and every other request (pages, API, health, metrics) keep their access line.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from .webhooks import is_webhook


class AccessLogger(Logger):
    """``gunicorn --logger-class sms_gateway.web.access_log.AccessLogger``."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        status = getattr(resp, "status_code", None) or 0
        if status < 400 and is_webhook(environ.get("PATH_INFO", "")):
            return
        super().access(resp, req, environ, request_time)
