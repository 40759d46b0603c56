"""A scratch PostgreSQL database for a benchmark: created empty, dropped afterwards whatever happens."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sms_gateway.db import dispose_engines

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@contextmanager
def scratch_database(prefix: str, server_url: str = DEFAULT_SERVER) -> Iterator[str]:
    """Yield the URL of a new database `<prefix>_<pid>` on the server of `server_url`; drop it at the end."""
    server = make_url(server_url)
    name = f"{prefix}_{os.getpid()}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()  # the gateway's pooled connections would keep the database from being dropped
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile p (0-100) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
