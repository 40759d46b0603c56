"""gunicorn's access log, without the provider webhooks that were answered 2xx.

Each such webhook already has its own line from the gateway, at INFO, naming
the message (``stored twilio message #12 from +6281*****90``, ``duplicate …``,
``spooled …``, ``Twilio status delivered for outbound #7``): a second, access
line per SMS doubled the log of a surge and cost the web process about 15 % of
its CPU per webhook (docs/BENCHMARKS.md). A refused webhook (403, 400, 413)
and every other request (pages, API, health, metrics) keep their access line.

gunicorn's master imports this module before it forks the workers, and the
gevent workers monkey-patch only after the fork: nothing here may import the
application (psycopg imported before the patch waits for the database without
yielding, and one outage then blocks a whole worker; tests/web/test_server.py).
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

WEBHOOK_PREFIX = "/sms/"


def is_webhook(path: str) -> bool:
    """Whether ``path`` is a provider's webhook (inbound SMS, delivery reports)."""
    return path.startswith(WEBHOOK_PREFIX)


class AccessLogger(Logger):
    """``gunicorn --logger-class sms_gateway.access_log.AccessLogger``."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        status = getattr(resp, "status_code", None) or 0
        if status < 400 and is_webhook(environ.get("PATH_INFO", "")):
            return
        super().access(resp, req, environ, request_time)
