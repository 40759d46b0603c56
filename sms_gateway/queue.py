"""RQ queues on Redis: where stored message ids wait for the worker.

The one module that enqueues. Jobs are named by their import path in
``sms_gateway.jobs`` (RQ imports them in the worker), so the code that hands
work on (ingest, the pipeline, the agencies' webhooks) never imports the jobs
module and the jobs module can import all of them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry

from .config import VAR_DIR, ConfigError, Settings

log = logging.getLogger(__name__)

INBOUND = "inbound"  # retries of messages whose processing failed (and jobs of earlier versions)
DEFAULT = "default"  # webhooks to agencies, housekeeping: sweeps, escalations
QUEUES = (INBOUND, DEFAULT)
# Stored messages are claimed from the database by the workers' inbound loops,
# woken by this doorbell; SMS are sent by `sms-gateway sender` from the outbox.
INBOUND_WAKE = "sms-gateway:inbound:wake"

JOBS = "sms_gateway.jobs."

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


def enqueue(settings: Settings, queue: str, func: str, *args: Any, job_id: str, timeout: int | None = None,
            at: datetime | None = None) -> None:
    """Enqueue the job at import path ``func`` with ``args`` and the retry policy (at ``at``: RQ's scheduler,
    which every worker runs, moves it to the queue then). Raises if Redis is unreachable.

    Through RQ's enqueue_many in one pipeline: one round trip to Redis, where
    Queue.enqueue takes two (it first checks dependencies, which we never use).
    """
    if at is not None:
        get_queue(settings, queue).enqueue_at(at, func, *args, job_id=job_id, retry=retry_policy(settings),
                                              result_ttl=0, job_timeout=timeout, failure_ttl=7 * 24 * 3600)
        return
    job = Queue.prepare_data(func, args, job_id=job_id, retry=retry_policy(settings), result_ttl=0, timeout=timeout,
                             failure_ttl=7 * 24 * 3600)  # results live in the database
    get_queue(settings, queue).enqueue_many([job])


def enqueue_processing(settings: Settings, inbound_ids: list[int]) -> bool:
    """Tell the workers that committed messages wait: ring their doorbell. The messages
    themselves wait in the database, where the workers' inbound loops claim them
    (``pipeline.work_waiting``); without the ring (Redis down) a loop finds them
    within a second. False (logged) when Redis is unreachable."""
    try:
        pipe = get_redis(settings).pipeline(transaction=False)
        pipe.lpush(INBOUND_WAKE, 1)
        pipe.ltrim(INBOUND_WAKE, 0, 0)  # a doorbell, not a queue
        pipe.execute()
    except RedisError as exc:
        log.warning("could not wake the workers for %s stored message(s) (%s); they look every second",
                    len(inbound_ids), exc)
        return False
    return True


def enqueue_retry(settings: Settings, inbound_id: int) -> bool:
    """Process one message whose processing failed again, on its own, with RQ's backoff
    (``process_inbound``, job ``inbound-<id>``). False (logged) when Redis is down: the sweeper retries."""
    try:
        enqueue(settings, INBOUND, JOBS + "process_inbound", inbound_id, job_id=f"inbound-{inbound_id}")
    except RedisError:
        log.exception("could not enqueue the retry of inbound #%s; the sweeper will", inbound_id)
        return False
    return True
