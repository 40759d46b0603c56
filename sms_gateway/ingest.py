"""The one path every inbound SMS takes: store, commit, then enqueue its id.

``accept`` returns only after the message is committed; the channel answers
the provider after that. Enqueueing happens after the commit so the worker
never looks for a row that is not there yet; if Redis is down at that moment
the message is still stored and the sweeper enqueues it later. A provider
retry of the same message meets the unique (channel, external_id) key and is
answered as a duplicate: nothing new is stored and nothing new is sent.

Group commit: the request threads of one process hand their messages to one
writer thread, which stores whatever is waiting in a single multi-row INSERT
and COMMIT and enqueues the ids in one Redis pipeline. Under light load a
batch is one message and nothing waits; under a surge the cost of a commit
and of the Redis round trips is shared by the batch (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from . import phone, queue
from .channels.base import IncomingSMS
from .config import Settings
from .db import get_engine
from .models import InboundMessage, InboundState, utcnow

log = logging.getLogger(__name__)

MAX_BATCH = 64
WAIT_SECONDS = 60.0  # a request never waits forever for the writer


@dataclass(frozen=True)
class Accepted:
    """Result of ``accept``: the stored row and whether this call created it."""

    inbound_id: int
    created: bool
    enqueued: bool


@dataclass
class _Pending:
    sms: IncomingSMS
    done: threading.Event = field(default_factory=threading.Event)
    result: Accepted | None = None
    error: BaseException | None = None


def accept(settings: Settings, sms: IncomingSMS) -> Accepted:
    """Store ``sms`` exactly once and enqueue its processing. Raises if it could not be stored."""
    return _committer(settings).submit(sms)


class _GroupCommitter:
    """Stores messages submitted by concurrent threads in shared transactions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cond = threading.Condition()
        self._pending: list[_Pending] = []
        threading.Thread(target=self._run, name="ingest-writer", daemon=True).start()

    def submit(self, sms: IncomingSMS) -> Accepted:
        """Queue ``sms`` for the next batch and wait until that batch is committed."""
        item = _Pending(sms)
        with self._cond:
            self._pending.append(item)
            self._cond.notify()
        if not item.done.wait(WAIT_SECONDS):
            raise TimeoutError("the message store did not answer in time")
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                results = _store_and_enqueue(self.settings, [item.sms for item in batch])
                for item, result in zip(batch, results, strict=True):
                    item.result = result
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting request, which raises it
                for item in batch:
                    item.error = exc
            finally:
                for item in batch:
                    item.done.set()


_COMMITTERS: dict[tuple[int, str, str], _GroupCommitter] = {}
_COMMITTERS_LOCK = threading.Lock()


def _committer(settings: Settings) -> _GroupCommitter:
    # Keyed by pid: a forked process (gunicorn worker) must not share its parent's thread.
    key = (os.getpid(), settings.DATABASE_URL, str(settings.REDIS_URL))
    with _COMMITTERS_LOCK:
        committer = _COMMITTERS.get(key)
        if committer is None:
            committer = _COMMITTERS[key] = _GroupCommitter(settings)
        return committer


def _insert(url: str) -> Any:
    dialect = postgresql if url.startswith("postgresql") else sqlite
    return dialect.insert(InboundMessage)


def _store_and_enqueue(settings: Settings, messages: list[IncomingSMS]) -> list[Accepted]:
    now = utcnow()
    rows: list[dict[str, Any]] = [{
        "channel": sms.channel,
        "external_id": sms.external_id,
        "sender": phone.normalize(sms.sender, settings.DEFAULT_REGION),
        "recipient": sms.recipient,
        "text": sms.text,
        "received_at": now,
        "provider_time": sms.provider_time,
        "incomplete": sms.incomplete,
        "state": InboundState.RECEIVED,
        "meta": sms.meta or {},
    } for sms in messages]
    table = InboundMessage.__table__
    # One statement for every batch size: SQLAlchemy's "insertmanyvalues" turns
    # the executemany into multi-row INSERTs without compiling anew each time.
    stmt = (_insert(settings.DATABASE_URL)
            .on_conflict_do_nothing(index_elements=["channel", "external_id"])
            .returning(table.c.id, table.c.channel, table.c.external_id))
    keys = {(sms.channel, sms.external_id) for sms in messages}
    with get_engine(settings.DATABASE_URL).begin() as conn:
        created = {(ch, ext): i for i, ch, ext in conn.execute(stmt, rows)}
        missing = keys - created.keys()
        existing = {(ch, ext): i for i, ch, ext in conn.execute(
            select(table.c.id, table.c.channel, table.c.external_id)
            .where(tuple_(table.c.channel, table.c.external_id).in_(list(missing))))} if missing else {}

    enqueued = _enqueue(settings, sorted(created.values())) if created else False
    results: list[Accepted] = []
    first_seen: set[tuple[str, str]] = set()
    for sms, row in zip(messages, rows, strict=True):
        key = (sms.channel, sms.external_id)
        if key in created and key not in first_seen:
            first_seen.add(key)
            log.info("stored %s message #%s from %s", sms.channel, created[key], phone.mask(row["sender"]))
            results.append(Accepted(created[key], created=True, enqueued=enqueued))
        else:
            inbound_id = created.get(key) or existing[key]
            log.info("duplicate %s message %s from %s ignored (stored as #%s)",
                     sms.channel, sms.external_id, phone.mask(row["sender"]), inbound_id)
            results.append(Accepted(inbound_id, created=False, enqueued=False))
    return results


def _enqueue(settings: Settings, inbound_ids: list[int]) -> bool:
    """Enqueue processing of committed messages; False when Redis is down (the sweeper retries)."""
    from .jobs import process_inbound

    try:
        queue.enqueue_many(settings, queue.INBOUND, process_inbound,
                           [((i,), f"inbound-{i}") for i in inbound_ids])
    except Exception:  # stored already; the sweeper will enqueue them
        log.exception("could not enqueue inbound %s; the sweeper will retry", inbound_ids)
        return False
    return True
