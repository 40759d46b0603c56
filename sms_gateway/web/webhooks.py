"""The providers' webhooks (``/sms/…``) skip the workspace's per-request machinery.

The workspace's extensions hook every request of the app: the cookie session
is opened and saved, Flask-Login refreshes its remember cookie, Flask-Limiter
looks for limits that apply, CSRFProtect looks at the method. A provider's
webhook has no cookie, no sign-in and no limit of ours (Twilio signs it; the
channel checks it), and it is the request that comes by the thousand in a
surge: in-process these hooks took 0.10 ms of the 0.23 ms a Twilio webhook
costs before it is stored (docs/BENCHMARKS.md). Every other request, API
included, goes through them as before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, Request, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from ..access_log import is_webhook

__all__ = ["is_webhook", "spare_webhooks"]

# The extensions whose app-wide hooks serve the workspace's pages, not the providers.
WORKSPACE_EXTENSIONS = ("flask_login", "flask_limiter", "flask_wtf")


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, not opened (nor saved) for a provider's webhook."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if is_webhook(request.path):
            return self.make_null_session(app)  # read-only and empty; never saved
        return super().open_session(app, request)


def spare_webhooks(app: Flask) -> None:
    """Make the workspace extensions' app-wide hooks pass over the webhooks. Call after their ``init_app``."""
    app.session_interface = SessionInterface()
    registries: tuple[dict[Any, list[Any]], ...] = (
        app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
    for hooks in registries:
        hooks[None] = [_unless_webhook(hook) if _from_workspace_extension(hook) else hook
                       for hook in hooks.get(None, [])]


def _from_workspace_extension(hook: Callable[..., Any]) -> bool:
    module = getattr(getattr(hook, "func", hook), "__module__", "") or ""  # functools.partial has .func
    return module.split(".")[0] in WORKSPACE_EXTENSIONS


def _unless_webhook(hook: Callable[..., Any]) -> Callable[..., Any]:
    """``hook`` for every request but a webhook's, where it hands back its first argument
    (an after_request hook's response; None for before_request and teardown hooks)."""

    @functools.wraps(hook)
    def skipping(*args: Any) -> Any:
        if is_webhook(request.path):
            return args[0] if args else None
        return hook(*args)

    return skipping
