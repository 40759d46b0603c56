"""RQ queues on Redis: where stored message ids wait for the worker."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Queue, Retry

from .config import VAR_DIR, ConfigError, Settings

log = logging.getLogger(__name__)

INBOUND = "inbound"  # parse a stored SMS, create the report and the reply
OUTBOUND = "outbound"  # hand a reply to its channel
DEFAULT = "default"  # housekeeping: sweeps, escalations, pushes
QUEUES = (INBOUND, OUTBOUND, DEFAULT)

# Written by `sms-gateway run` when it starts its private Redis, so that the
# other commands of a local install (simulate, messages, worker) find it.
LOCAL_REDIS_URL_FILE = VAR_DIR / "redis.url"

_CONNECTIONS: dict[str, Redis] = {}


def redis_url(settings: Settings) -> str:
    """REDIS_URL, or the private Redis of a local `sms-gateway run`."""
    if settings.REDIS_URL:
        return str(settings.REDIS_URL)
    path = Path(LOCAL_REDIS_URL_FILE)
    if path.exists():
        return path.read_text().strip()
    raise ConfigError("REDIS_URL is not set: set it to the Redis of the queues (redis://host:6379/0), "
                      "or start `sms-gateway run`, which runs a private one")


def get_redis(settings: Settings) -> Redis:
    """A Redis connection for ``settings`` (shared per URL within a process)."""
    url = redis_url(settings)
    conn = _CONNECTIONS.get(url)
    if conn is None:
        conn = _CONNECTIONS[url] = Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
    return conn


def reset_connections() -> None:
    """Forget cached connections (tests, after fork)."""
    _CONNECTIONS.clear()


def get_queue(settings: Settings, name: str) -> Queue:
    """RQ queue ``name``."""
    return Queue(name, connection=get_redis(settings))


def retry_policy(settings: Settings) -> Retry:
    """Backoff used by every job: RQ retries a job that raises."""
    intervals = settings.retry_intervals or [10]
    return Retry(max=max(len(intervals), settings.SEND_MAX_ATTEMPTS - 1), interval=intervals)


def enqueue(settings: Settings, queue: str, func: Callable[..., Any], *args: Any, job_id: str) -> None:
    """Enqueue ``func(*args)`` with the retry policy. Raises if Redis is unreachable.

    Through RQ's enqueue_many in one pipeline: one round trip to Redis, where
    Queue.enqueue takes two (it first checks dependencies, which we never use).
    """
    job = Queue.prepare_data(func, args, job_id=job_id, retry=retry_policy(settings), result_ttl=0,
                             failure_ttl=7 * 24 * 3600)  # results live in the database
    get_queue(settings, queue).enqueue_many([job])
