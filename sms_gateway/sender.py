"""Long-lived senders: hand the outbox's queued SMS to their channel at the provider's pace.

One ``ChannelSender`` per channel (``sms-gateway sender`` runs one thread per
configured channel; the modem process runs the modem's in its own loop). Each
round it:

1. claims due rows from the outbox, best lane first (``outbox.claim``: one
   conditional UPDATE, so a row is sent by one sender however many run), no
   more than it has free call slots and than the channel's rate allows now;
2. asks the channel's shared segment rate (``ratelimit.SegmentRate``, in
   Redis, so every sender process of a channel counts together) for the
   claimed messages' segments, and gives back what it may not send yet;
3. hands the rest to the channel on a thread pool (``SEND_CONCURRENCY`` calls
   in flight over one pooled HTTP session);
4. writes the outcomes of finished calls in one transaction: sent; a
   temporary failure back to queued with a time for the next attempt
   (``JOB_RETRY_INTERVALS``), failed after ``SEND_MAX_ATTEMPTS``; a permanent
   one failed with the provider's reason; a 429 parks the whole channel with
   a growing backoff (1, 2, 4 … 60 s) and does not count as an attempt;
5. when idle, sleeps on the outbox's doorbell in Redis, at most a second.

Every ``SWEEP_INTERVAL`` it reconciles sends still "sending" after
``SWEEP_GRACE`` + ``SEND_TIMEOUT`` (their sender died during the provider
call): ``Channel.reconcile`` asks the provider whether the SMS arrived, and
the row becomes sent, is sent again, or — where the provider cannot tell —
failed with the reason, never sent twice. It also logs when the channel's
queue holds more than ``SEND_BACKLOG_LIMIT`` seconds of segments.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import timedelta
from types import FrameType
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import outbox, phone, queue
from .channels import load_all
from .channels.base import (
    NOT_SENT,
    SENT,
    UNKNOWN,
    Channel,
    NotConfigured,
    OutgoingSMS,
    SendError,
    get_channel,
    registered,
)
from .config import Settings
from .db import session_factory
from .models import OutboundMessage, OutboundState, utcnow
from .outage import DATABASE_DOWN, REDIS_DOWN, Outage
from .ratelimit import SegmentRate

log = logging.getLogger(__name__)

PARK_MAX = 60.0  # seconds: the longest a 429 parks a channel
IDLE_WAIT = 1.0  # seconds between looks at the table when the doorbell stays silent
BACKLOG_CHECK = 30.0  # seconds between backlog checks
GATHER = 0.02  # seconds a sender waits to record finished calls together


class ChannelSender:
    """Sends the queued SMS of one channel (see the module docstring)."""

    def __init__(self, settings: Settings, name: str, *, channel: Channel | None = None,
                 concurrency: int | None = None, redis: Redis | None = None) -> None:
        self.settings = settings
        self.name = name
        self.channel = channel or get_channel(name, settings)
        self.redis = redis or queue.get_redis(settings)
        self.rate = SegmentRate(self.redis, name, self.channel.rate)
        self.concurrency = max(1, int(concurrency or self.channel.concurrency or settings.SEND_CONCURRENCY))
        self.batch = max(1, self.concurrency // 2)
        self.claim_size = self.concurrency
        self.sessions = session_factory(settings.DATABASE_URL)
        # One slot: the call runs in the caller's thread (the modem's device is not thread-safe).
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"send-{name}") \
            if self.concurrency > 1 else None
        self.inflight: dict[Future[outbox.Outcome], outbox.Claimed] = {}
        self.throttles = 0
        self.sent = self.failed = 0
        self._unrecorded: list[outbox.Outcome] = []
        self._next_reconcile = 0.0
        self._next_backlog = 0.0

    # ---------------------------------------------------------------- one round

    def step(self, idle_wait: float = IDLE_WAIT) -> int:
        """Record finished sends, start new ones; wait up to ``idle_wait`` when nothing could start."""
        now = time.monotonic()
        if now >= self._next_reconcile:
            self._next_reconcile = now + self.settings.SWEEP_INTERVAL
            self.reconcile()
        if now >= self._next_backlog:
            self._next_backlog = now + BACKLOG_CHECK
            self.check_backlog()
        self._record(self._finished(block=False))  # also what an outage kept unrecorded
        started, rate_wait = self._start()
        if started:
            if self.pool is None:
                self._record(self._finished(block=False))
            return started
        if self.inflight:
            self._record(self._finished(block=True, timeout=min(idle_wait, rate_wait or idle_wait)))
        elif rate_wait:
            time.sleep(min(rate_wait, idle_wait))
        elif idle_wait > 0:
            self._doze(idle_wait)
        return 0

    def _start(self) -> tuple[int, float]:
        """Claim, rate-limit and start sends; (how many started, seconds to wait for the rate)."""
        free = self.concurrency - len(self.inflight)
        # Claim for at least half the slots at once: a claim, a rate check and
        # a results transaction each cost about as much as a provider call.
        if free <= 0 or (self.inflight and free < self.batch):
            return 0, 0.0
        with self.sessions() as session:
            claimed = outbox.claim(session, self.name, min(free, self.claim_size))
            if not claimed:
                return 0, 0.0
            try:
                grant = self.rate.acquire([c.segments for c in claimed])
            except RedisError:
                outbox.release(session, [c.id for c in claimed])
                raise
            if grant.granted < len(claimed):
                outbox.release(session, [c.id for c in claimed[grant.granted:]])
        # Claim what the rate let through last time (a slow channel claims one
        # at a time instead of claiming and giving back a batch every round).
        self.claim_size = max(1, grant.granted) if grant.granted < len(claimed) \
            else min(self.concurrency, 2 * self.claim_size)
        for item in claimed[:grant.granted]:
            if self.pool is None:
                done: Future[outbox.Outcome] = Future()
                done.set_result(self._send(item))
                self.inflight[done] = item
            else:
                self.inflight[self.pool.submit(self._send, item)] = item
        return grant.granted, grant.wait

    def _send(self, item: outbox.Claimed) -> outbox.Outcome:
        """One provider call, classified; never raises."""
        sms = OutgoingSMS(outbound_id=item.id, recipient=item.recipient, text=item.text)
        try:
            result = self.channel.send(sms)
        except SendError as exc:
            return self._failure(item, exc.reason, exc.code, retryable=exc.retryable, throttled=exc.throttled)
        except Exception as exc:
            # A bug or an unwrapped library error: keep the message retryable
            # (it counts as an attempt) and keep the traceback in the log.
            log.exception("send #%s via %s raised", item.id, self.name)
            return self._failure(item, f"{type(exc).__name__}: {exc}", "exception", retryable=True)
        return outbox.Outcome(item.id, result.status, provider_id=result.provider_id, segments=result.segments)

    def _failure(self, item: outbox.Claimed, reason: str, code: str | None, *, retryable: bool,
                 throttled: bool = False) -> outbox.Outcome:
        now = utcnow()
        if throttled:
            return outbox.Outcome(item.id, OutboundState.QUEUED, error=reason, error_code=code,
                                  next_attempt_at=now, uncount=True)
        if not retryable or item.attempts >= self.settings.SEND_MAX_ATTEMPTS:
            return outbox.Outcome(item.id, OutboundState.FAILED, error=reason, error_code=code)
        intervals = self.settings.retry_intervals or [10]
        delay = intervals[min(item.attempts, len(intervals)) - 1]
        return outbox.Outcome(item.id, OutboundState.QUEUED, error=reason, error_code=code,
                              next_attempt_at=now + timedelta(seconds=delay))

    def _finished(self, block: bool, timeout: float = 0.0) -> list[outbox.Outcome]:
        """Outcomes of the calls done now; with ``block``, wait (up to ``timeout``) for a batch of them."""
        if not self.inflight:
            return []
        done, pending = wait(list(self.inflight), timeout=timeout if block else 0, return_when=FIRST_COMPLETED)
        gather_until = time.monotonic() + GATHER
        while block and pending and len(done) < self.batch and time.monotonic() < gather_until:
            more, pending = wait(pending, timeout=max(0.0, gather_until - time.monotonic()),
                                 return_when=FIRST_COMPLETED)
            done |= more
        outcomes = []
        for future in done:
            del self.inflight[future]
            outcomes.append(future.result())
        return outcomes

    def _record(self, outcomes: list[outbox.Outcome]) -> None:
        outcomes = self._unrecorded + outcomes
        self._unrecorded = []
        if not outcomes:
            return
        try:
            with self.sessions() as session:
                outbox.record_results(session, outcomes)
        except Exception:
            self._unrecorded = outcomes  # the calls happened: record them when the database is back
            raise
        throttled = False
        for o in outcomes:
            if o.state in (OutboundState.SENT, OutboundState.DELIVERED):
                self.sent += 1
                log.debug("sent #%s via %s (%s)", o.id, self.name, o.provider_id)
            elif o.uncount:
                throttled = True
            elif o.state == OutboundState.FAILED:
                self.failed += 1
                log.warning("send #%s via %s failed for good: %s", o.id, self.name, o.error)
            else:
                log.warning("send #%s via %s failed, next attempt at %s: %s", o.id, self.name,
                            o.next_attempt_at and o.next_attempt_at.strftime("%H:%M:%S"), o.error)
        if throttled:
            seconds = min(PARK_MAX, 2.0 ** self.throttles)
            self.throttles += 1
            self.rate.park(seconds)
            log.warning("%s throttled us (429): channel parked for %.0f s", self.name, seconds)
        elif any(o.state in (OutboundState.SENT, OutboundState.DELIVERED) for o in outcomes):
            self.throttles = 0

    def _doze(self, seconds: float) -> None:
        """Sleep until the outbox's doorbell rings or ``seconds`` pass."""
        try:
            self.redis.blpop([outbox.WAKE_PREFIX + self.name], timeout=max(0.01, seconds))
        except RedisError as exc:
            log.warning("sender %s: Redis unavailable (%s); looking at the table every second", self.name, exc)
            time.sleep(seconds)

    # ---------------------------------------------------------------- housekeeping

    def reconcile(self) -> dict[str, int]:
        """Settle sends a dead sender left "sending", asking the provider first."""
        older = timedelta(seconds=self.settings.SWEEP_GRACE + self.settings.SEND_TIMEOUT)
        counts = {SENT: 0, NOT_SENT: 0, UNKNOWN: 0}
        with self.sessions() as session:
            stale = outbox.stale_sends(session, self.name, older)
        mine = {item.id for item in self.inflight.values()}
        outcomes = []
        for item in stale:
            if item.id in mine:
                continue
            sms = OutgoingSMS(outbound_id=item.id, recipient=item.recipient, text=item.text)
            try:
                verdict = self.channel.reconcile(sms, item.claimed_at)
            except Exception:
                log.exception("could not reconcile interrupted send #%s via %s", item.id, self.name)
                continue
            if verdict.outcome == SENT:
                outcomes.append(outbox.Outcome(item.id, OutboundState.SENT, provider_id=verdict.provider_id))
            elif verdict.outcome == NOT_SENT:
                outcomes.append(outbox.Outcome(
                    item.id, OutboundState.QUEUED, error=f"send interrupted; {verdict.detail}: sending again",
                    error_code="reconciled", next_attempt_at=utcnow(), uncount=True))
            elif verdict.outcome == UNKNOWN:
                outcomes.append(outbox.Outcome(
                    item.id, OutboundState.FAILED, error_code="interrupted",
                    error=f"sender stopped during the send and {verdict.detail}: not sent again, so as never "
                          "to send twice (`sms-gateway messages retry ID` if the citizen did not get it)"))
            else:
                continue
            counts[verdict.outcome] += 1
            log.warning("interrupted send #%s to %s via %s: %s (%s)", item.id, phone.mask(item.recipient),
                        self.name, verdict.outcome, verdict.detail)
        if outcomes:
            with self.sessions() as session:
                outbox.record_results(session, outcomes)
            self.wake()
        return counts

    def check_backlog(self) -> float | None:
        """Seconds of segments queued on this channel at its rate; logged when over SEND_BACKLOG_LIMIT."""
        with self.sessions() as session:
            segments = queued_segments(session, self.name)
        seconds = self.rate.queue_seconds(segments)
        if seconds is not None and seconds > self.settings.SEND_BACKLOG_LIMIT:
            log.warning("%s backlog: %s segments queued, %.1f hours at %s/s, more than SEND_BACKLOG_LIMIT "
                        "(%s s): replies will be late; raise the rate if the provider allows it",
                        self.name, segments, seconds / 3600, self.rate.per_second,
                        self.settings.SEND_BACKLOG_LIMIT)
        return seconds

    def wake(self) -> None:
        """Ring this channel's doorbell (after putting rows back in the queue)."""
        outbox.dispatch(self.settings, [self.name])

    # ---------------------------------------------------------------- whole runs

    def drain(self, timeout: float = 30.0) -> int:
        """Send everything due now, waiting for the rate if needed (tests, benchmarks, ``--burst``)."""
        deadline = time.monotonic() + timeout
        total = 0
        while time.monotonic() < deadline:
            started = self.step(idle_wait=0.05)
            total += started
            if not started and not self.inflight and not self._due_now():
                break
        self.shutdown()
        return total

    def _due_now(self) -> bool:
        with self.sessions() as session:
            return session.scalar(select(OutboundMessage.id).where(
                OutboundMessage.channel == self.name, OutboundMessage.state == OutboundState.QUEUED,
                (OutboundMessage.next_attempt_at.is_(None)) | (OutboundMessage.next_attempt_at <= utcnow()))
                .limit(1)) is not None

    def close(self) -> None:
        """Wait for the calls in flight and record them."""
        while self.inflight:
            self._record(self._finished(block=True, timeout=1.0))

    def shutdown(self) -> None:
        """``close`` and stop the thread pool."""
        self.close()
        if self.pool is not None:
            self.pool.shutdown()


def queued_segments(session: Session, channel: str) -> int:
    """Segments waiting in the outbox for ``channel``."""
    return int(session.scalar(select(func.coalesce(func.sum(OutboundMessage.segments), 0)).where(
        OutboundMessage.channel == channel, OutboundMessage.state == OutboundState.QUEUED)) or 0)


def sender_channels(settings: Settings, wanted: list[str] | None = None) -> list[str]:
    """The channels a sender process serves: ``wanted``, or every configured one but the modem's."""
    load_all()
    names = wanted or [n for n in registered() if n != "modem"]
    usable = []
    for name in names:
        try:
            get_channel(name, settings)
        except (NotConfigured, SendError) as exc:
            if wanted:
                raise
            # The start-up check refuses a channel that receives SMS it cannot answer
            # (CONSOLE_CHANNELS routes those replies to the console instead).
            log.info("sender: %s", exc)
            continue
        usable.append(name)
    return usable


def run(settings: Settings, channels: list[str], *, burst: bool = False,
        stop: threading.Event | None = None, on_ready: Callable[[], Any] | None = None) -> int:
    """Run one sender thread per channel until SIGTERM/SIGINT (or, with ``burst``, until nothing is due)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("sender: %s, finishing the sends in flight", signal.Signals(signum).name)
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, on_signal)
    senders = [ChannelSender(settings, name) for name in channels]
    errors: list[BaseException] = []

    def loop(sender: ChannelSender) -> None:
        # One log line when Redis or the database goes away, one when it is back; meanwhile the
        # sender waits with backoff (its claimed sends finish; their outcomes are kept to record).
        redis = Outage(f"sender {sender.name}: Redis (sends wait)", log, settings.RECONNECT_MAX_DELAY)
        database = Outage(f"sender {sender.name}: database (sends wait)", log, settings.RECONNECT_MAX_DELAY)
        try:
            if burst:
                sender.drain()
                return
            while not stop.is_set():
                try:
                    sender.step()
                    redis.up()
                    database.up()
                except REDIS_DOWN as exc:
                    stop.wait(redis.down(exc))
                except DATABASE_DOWN as exc:
                    stop.wait(database.down(exc))
            sender.shutdown()
        except BaseException as exc:
            errors.append(exc)
            log.exception("sender %s stopped", sender.name)
            stop.set()

    threads = [threading.Thread(target=loop, args=(s,), name=f"sender-{s.name}") for s in senders]
    for t in threads:
        t.start()
    log.info("sender: sending on %s", ", ".join(f"{s.name} ({_rate(s)})" for s in senders) or "nothing")
    if on_ready:
        on_ready()
    beat = 0.0
    for t in threads:
        while t.is_alive():
            if time.monotonic() >= beat:  # alive, for `sms-gateway healthcheck sender`
                beat = time.monotonic() + 10
                try:
                    queue.get_redis(settings).set(heartbeat_key(), ",".join(channels), ex=60)
                except RedisError:
                    pass  # the senders' loops log the outage; the heartbeat resumes with Redis
            t.join(0.5)
    log.info("sender: stopped (%s)", ", ".join(f"{s.name}: sent {s.sent}, failed {s.failed}" for s in senders))
    return 1 if errors else 0


HEARTBEAT_PREFIX = "sms-gateway:sender:"


def heartbeat_key(host: str | None = None) -> str:
    """The Redis key a sender process refreshes while it runs (``host``: this one)."""
    return f"{HEARTBEAT_PREFIX}{host or socket.gethostname()}:{os.getpid()}"


def _rate(sender: ChannelSender) -> str:
    rate = sender.rate.per_second
    return f"{rate:g} segments/s, {sender.concurrency} in flight" if rate else f"{sender.concurrency} in flight"


def drain_all(settings: Settings, channels: list[str] | None = None) -> int:
    """Send everything due on every channel (or ``channels``), in this thread; how many were sent."""
    return sum(ChannelSender(settings, name, concurrency=1).drain()  # in order: lane, then age
               for name in channels or [*sender_channels(settings), "modem"]
               if name != "modem" or _modem_active())


def _modem_active() -> bool:
    from .channels import modem

    return modem.active() is not None
