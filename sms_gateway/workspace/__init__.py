"""The agency workspace: server-rendered pages where agency staff and central admins work their reports.

- ``access``: roles, the viewer, and the one place that scopes reports (fails closed).
- ``hosts``: one host per agency under ``WORKSPACE_HOST_SUFFIX`` (the realm of a request).
- ``accounts``: per-person accounts, set-password links, Argon2 passwords, server-side sessions.
- ``inbox``: queues, filters, search, keyset pages, deadline clocks, CSV rows.
- ``actions``: bulk actions over the same lifecycle functions as the API.
- ``pages`` / ``admin``: the blueprint's views; ``cli``: ``sms-gateway user …``.

Every state change goes through ``sms_gateway.agencies.lifecycle`` (the API's
services), so pages and API cannot disagree; SMS go out through the same
reply queue after commit.
"""

from __future__ import annotations

from .web import init_app

__all__ = ["init_app"]
