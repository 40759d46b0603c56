"""Outages of what a process depends on (Redis, the database): one log line when one
starts, one when it ends, and a backoff for the waits in between.

Every long-running role (worker, scheduler, modem loop, spool replayer) rides out
an outage instead of exiting: it waits 0.5 s, 1 s, 2 s … up to
``RECONNECT_MAX_DELAY`` between attempts, and an operator reads one line saying
what went away and one saying when it came back, not one line per attempt.
"""

from __future__ import annotations

import logging
import time

import psycopg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError

# What "Redis is unreachable" looks like: redis-py's own errors, and a socket
# error it let through (a reset during a reply, seen in RQ's suspension check).
REDIS_DOWN: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, ConnectionError)
# What "the database is unreachable" looks like: refused, reset or timed out, through
# SQLAlchemy or straight from psycopg (ingest's one-statement INSERT uses the driver).
DATABASE_DOWN: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, psycopg.OperationalError,
                                                   psycopg.InterfaceError)

FIRST_DELAY = 0.5


class Outage:
    """One dependency of one process: logs the start and the end of each outage, paces the retries."""

    def __init__(self, what: str, log: logging.Logger, max_delay: float = 10.0) -> None:
        self.what = what
        self.log = log
        self.max_delay = max(max_delay, FIRST_DELAY)
        self.since: float | None = None
        self.count = 0  # outages seen by this process
        self._delay = FIRST_DELAY

    @property
    def active(self) -> bool:
        """True while the dependency is known to be down."""
        return self.since is not None

    def down(self, exc: BaseException) -> float:
        """Record a failed attempt; the seconds to wait before the next one."""
        if self.since is None:
            self.since = time.monotonic()
            self.count += 1
            self.log.error("%s unreachable (%s: %s); retrying every %.1f-%.0f s until it is back",
                           self.what, type(exc).__name__, str(exc).strip()[:200], FIRST_DELAY, self.max_delay)
        delay = self._delay
        self._delay = min(self._delay * 2, self.max_delay)
        return delay

    def up(self) -> None:
        """Record a successful attempt (logs the recovery if an outage was running)."""
        if self.since is not None:
            self.log.warning("%s back after %.1f s", self.what, time.monotonic() - self.since)
            self.since = None
        self._delay = FIRST_DELAY
