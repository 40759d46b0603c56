"""The long-running roles of the gateway (worker, scheduler), made to outlive their dependencies.

RQ's worker quits when Redis goes away at the wrong moment (its suspension
check, a heartbeat, the end of a job), RQ's cron scheduler dies in its own
shutdown, and the retry scheduler a worker forks lingers as an orphan holding
its lock when the worker is killed. Here each role waits for Redis with a
backoff and carries on, logging one line when an outage starts and one when it
ends (``outage.Outage``); the worker's retry scheduler stops with its worker
and rides out outages itself, and a restarted worker takes over the lock a
killed one left behind at once instead of a minute later.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from typing import Any

from redis import Redis
from rq import SimpleWorker, Worker
from rq.cron import CronScheduler
from rq.exceptions import StopRequested
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.scripts import release_lock

from . import pipeline
from . import queue as q
from .config import Settings
from .outage import REDIS_DOWN, Outage

log = logging.getLogger(__name__)

# RQ cleans its registries (abandoned jobs of killed workers) and restarts a dead
# retry scheduler at this interval; its default, 10 minutes, is too long a wait.
MAINTENANCE_INTERVAL = 60


def _pid_alive(pid: int) -> bool:
    """True when ``pid`` runs on this host; a zombie (killed, not yet reaped by its new parent) is dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")


def release_stale_locks(connection: Redis, queue_names: list[str], logger: logging.Logger) -> list[str]:
    """Free the retry-scheduler locks of ``queue_names`` held by a dead process of this host.

    A worker killed with its scheduler (its whole process group: systemd's stop
    timeout, `docker kill`) leaves the lock for 61 s, and the retries due
    meanwhile wait with it. Only a scheduler of this host whose pid is gone
    counts as dead; the release is atomic on the owner's name.
    """
    released = []
    host = socket.gethostname()
    for name in queue_names:
        key = RQScheduler.get_locking_key(name)
        raw = connection.get(key)
        if not raw:
            continue
        owner = _text(raw)
        info = {_text(k): _text(v) for k, v in connection.hgetall(SCHEDULER_KEY_TEMPLATE % owner).items()}
        pid = int(info.get("pid") or 0)
        if info.get("hostname") == host and pid and not _pid_alive(pid) and release_lock(connection, key, owner):
            released.append(name)
    if released:
        logger.warning("released the retry-scheduler locks of a dead worker for %s", ", ".join(released))
    return released


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RetryScheduler(RQScheduler):
    """RQ's scheduler of retries and delayed jobs, as a worker forks it.

    Differences from RQ's: it stops within a second of its worker's death (its
    parent pid changes), releasing the lock; it rides out Redis outages
    (RQ's exits at the first error and comes back only with the worker's
    maintenance); and every worker runs one, those without the lock standing by
    and taking it within a second of its release (RQ's worker starts one only
    if it got the lock, and looks again ten minutes later).
    """

    max_delay = 10.0

    def work(self) -> None:
        """The scheduling loop of the forked process."""
        worker = os.getppid()
        self._install_signal_handlers()
        outage = Outage("Redis (retry scheduler)", self.log, self.max_delay)
        born = False
        while True:
            try:
                if not born:
                    self.register_birth()
                    born = True
                if os.getppid() != worker:  # the worker died (SIGKILL, OOM): release its locks and go
                    self._stop_requested = True
                if self._stop_requested:
                    self.stop()
                    return
                if self.acquired_locks != self._queue_names:  # standing by: a few calls a second
                    release_stale_locks(self.connection, sorted(self._queue_names - self.acquired_locks), self.log)
                    self.acquire_locks()
                self.heartbeat()  # re-acquires a lock that vanished with a restarted Redis
                self.enqueue_scheduled_jobs()
                outage.up()
                delay = float(self.interval)
            except REDIS_DOWN as exc:
                if self._stop_requested:
                    return  # stopping during an outage: the lock expires by itself
                delay = outage.down(exc)
            time.sleep(delay)


class _GatewayWorkerMixin:
    """What our workers change in RQ's: the retry scheduler they fork, and stale locks."""

    connection: Redis
    queues: list[Any]
    scheduler: RQScheduler | None
    log: logging.Logger
    max_reconnect_delay: float = 10.0
    stop_asked = False  # RQ raises StopRequested when idle without recording why its loop ended
    outage: Outage | None = None  # shared with run_worker: one pair of log lines per outage

    def request_stop(self, signum: int, frame: Any) -> None:
        """SIGTERM/SIGINT: remember it, then RQ's warm shutdown."""
        self.stop_asked = True
        super().request_stop(signum, frame)  # type: ignore[misc]

    def ride_out(self, exc: BaseException) -> None:
        """Wait, with backoff, until Redis answers again (RQ would quit its loop instead)."""
        if self.outage is None:
            self.outage = Outage("Redis", log, self.max_reconnect_delay)
        while True:
            time.sleep(self.outage.down(exc))  # SIGTERM meanwhile: RQ's handler raises StopRequested
            try:
                self.connection.ping()
            except REDIS_DOWN as again:
                exc = again
                continue
            self.outage.up()
            return

    def heartbeat(self, *args: Any, **kwargs: Any) -> Any:
        """RQ's heartbeat, riding out a Redis outage: the first call of every dequeue round."""
        try:
            return super().heartbeat(*args, **kwargs)  # type: ignore[misc]
        except REDIS_DOWN as exc:
            self.ride_out(exc)
            return super().heartbeat(*args, **kwargs)  # type: ignore[misc]

    def check_for_suspension(self, burst: bool) -> None:
        """RQ's suspension check (``rq suspend``), riding out a Redis outage (RQ's worker died here)."""
        try:
            super().check_for_suspension(burst)  # type: ignore[misc]
        except REDIS_DOWN as exc:
            self.ride_out(exc)

    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO",
                         date_format: str = "", log_format: str = "") -> None:
        release_stale_locks(self.connection, [queue.name for queue in self.queues], self.log)
        # logging_level None: the level LOG_LEVEL gave RQ's logger stays (as RQ's own worker does).
        level = logging_level if logging_level is not None else logging.getLogger("rq.scheduler").level
        scheduler = RetryScheduler(self.queues, connection=self.connection, logging_level=level,
                                   serializer=getattr(self, "serializer", None))
        scheduler.max_delay = self.max_reconnect_delay
        self.scheduler = scheduler
        scheduler.acquire_locks()
        if burst:
            if not scheduler.acquired_locks:
                return
            try:
                scheduler.register_birth()
                scheduler.enqueue_scheduled_jobs()
            finally:
                scheduler.release_locks()
                scheduler.register_death()
        else:
            if scheduler.acquired_locks:
                # Name the lock's holder now, with this worker's pid, so that a worker
                # killed before its scheduler registered leaves a lock that
                # release_stale_locks can still recognise as dead; the child re-registers.
                scheduler.register_birth()
            scheduler.start()  # with or without the lock: see RetryScheduler


class GatewayWorker(_GatewayWorkerMixin, SimpleWorker):
    """RQ's SimpleWorker (jobs in the worker process) with our retry scheduler."""


class GatewayForkWorker(_GatewayWorkerMixin, Worker):
    """RQ's forking Worker (a work horse per job) with our retry scheduler."""


def run_worker(settings: Settings, queues: list[str], burst: bool = False, fork: bool = False) -> int:
    """Work ``queues`` until stopped; after a Redis outage RQ gave up on, wait for Redis and start again.

    With the ``inbound`` queue, the inbound loop (``pipeline.run_inbound``) runs
    beside RQ in a thread, claiming stored messages from the database; it
    rides out outages by itself and stops with the worker.
    """
    if q.INBOUND in queues and burst:
        pipeline.drain(settings)
    if q.INBOUND not in queues or burst:
        return _run_rq(settings, queues, burst, fork)
    stop = threading.Event()
    inbound = threading.Thread(target=pipeline.run_inbound, args=(settings, stop), name="inbound")
    inbound.start()
    try:
        return _run_rq(settings, queues, burst, fork)
    finally:
        stop.set()
        inbound.join()


def _run_rq(settings: Settings, queues: list[str], burst: bool, fork: bool) -> int:
    connection = q.get_redis(settings)
    outage = Outage("Redis", log, settings.RECONNECT_MAX_DELAY)
    worker_class = GatewayForkWorker if fork else GatewayWorker
    while True:
        worker = worker_class([q.get_queue(settings, n) for n in queues], connection=connection,
                              maintenance_interval=MAINTENANCE_INTERVAL)
        worker.max_connection_wait_time = settings.RECONNECT_MAX_DELAY  # RQ's own dequeue retries
        worker.max_reconnect_delay = settings.RECONNECT_MAX_DELAY
        worker.outage = outage
        log.info("worker %s on %s", worker.name, ", ".join(queues))
        try:
            # logging_level=None: RQ keeps the levels LOG_LEVEL gave its loggers instead of resetting them.
            worked = worker.work(with_scheduler=True, burst=burst, logging_level=None)
        except REDIS_DOWN as exc:  # at start (birth) or in RQ's teardown (death)
            if burst:
                raise
            if worker.stop_asked:
                log.warning("worker stopped while Redis is unreachable; its registration expires by itself")
                return 0
            if not _wait_for_redis(connection, outage, exc):
                return 0
            continue
        if burst:
            return 0 if worked else 1
        if worker.stop_asked:
            return 0
        # RQ's loop returned on its own: it logged an error it does not handle and
        # quit, which for a Redis outage (the usual cause) is the wrong thing to do.
        try:
            connection.ping()
        except REDIS_DOWN as exc:
            if not _wait_for_redis(connection, outage, exc):
                return 0
            continue
        log.error("worker loop ended without a stop request; starting a new worker in 1 s")
        time.sleep(1)


def _wait_for_redis(connection: Redis, outage: Outage, exc: BaseException) -> bool:
    """Sleep with backoff until Redis answers a PING; False when SIGTERM/SIGINT came meanwhile."""
    stop = _StopFlag()
    try:
        while not stop.requested:
            time.sleep(outage.down(exc))
            try:
                connection.ping()
            except REDIS_DOWN as again:
                exc = again
                continue
            outage.up()
            return True
        return False
    finally:
        stop.restore()


class _StopFlag:
    """SIGTERM/SIGINT while waiting for Redis: stop instead of waiting on."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = {s: signal.signal(s, self._set) for s in (signal.SIGTERM, signal.SIGINT)}

    def _set(self, _signum: int, _frame: Any) -> None:
        self.requested = True

    def restore(self) -> None:
        """Put back the handlers that were installed before."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class GatewayCronScheduler(CronScheduler):
    """RQ's cron scheduler (our periodic jobs) that rides out Redis outages instead of dying."""

    max_delay = 10.0

    def start(self) -> None:
        """Enqueue the periodic jobs when due until SIGTERM/SIGINT."""
        self.log.info("CronScheduler %s: starting...", self.name)
        self._install_signal_handlers()
        outage = Outage("Redis", log, self.max_delay)
        born = False
        try:
            while True:
                try:
                    if not born:
                        self.register_birth()
                        born = True
                    if self.enqueue_jobs():
                        self.save()
                    self.heartbeat()  # re-registers us in a Redis that restarted empty
                    outage.up()
                    delay = self.calculate_sleep_interval()
                except REDIS_DOWN as exc:
                    delay = outage.down(exc)
                if delay > 0:
                    time.sleep(delay)
        except (KeyboardInterrupt, StopRequested):
            self.log.info("CronScheduler %s: stop requested", self.name)
        finally:
            try:
                self.register_death()
            except REDIS_DOWN:
                log.warning("scheduler stopped while Redis is unreachable; its registration expires by itself")
            self.log.info("CronScheduler %s: shutdown complete", self.name)


def run_scheduler(settings: Settings) -> None:
    """Run the gateway's periodic jobs (``jobs.periodic_jobs``) until stopped."""
    from . import jobs

    cron = GatewayCronScheduler(connection=q.get_redis(settings), logging_level=logging.getLogger("rq.cron").level)
    cron.max_delay = settings.RECONNECT_MAX_DELAY
    for func, interval in jobs.periodic_jobs(settings):
        cron.register(func, queue_name=q.DEFAULT, interval=interval)
    cron.start()
