"""The one path every inbound SMS takes: store, commit, then wake the workers.

``accept`` returns only after the message is committed; the channel answers
the provider after that. The stored row is the work item: the workers' inbound
loops claim ``received`` messages from the database (``pipeline``), and the
writer only rings their doorbell in Redis after the commit, so a worker never
looks for a row that is not there yet. If Redis is down at that moment the
message is still stored and a worker finds it within a second. A provider
retry of the same message meets the unique (channel, external_id) key and is
answered as a duplicate: nothing new is stored and nothing new is sent.

Group commit (``groupcommit``): the requests of one process (greenlets under
the default gevent workers, threads under gthread) hand their messages to one
writer, which stores whatever is waiting in one INSERT and one COMMIT and rings
the doorbell once. Under light load a batch is one message and nothing waits; under a surge
the cost of the commit and the Redis round trip is shared by the batch
(docs/BENCHMARKS.md). A batch the database refuses is stored again message by
message, so one bad message cannot fail the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.dialects import sqlite

from . import groupcommit, phone, queue
from .channels.base import IncomingSMS
from .config import Settings
from .db import execute_autocommit, get_engine, json_default
from .models import InboundMessage, InboundState, utcnow
from .outage import DATABASE_DOWN

log = logging.getLogger(__name__)

MAX_BATCH = 64
# A webhook spools instead after this long: Twilio gives up on a webhook after 15 s.
SPOOL_AFTER = 10.0
_SPOOL_ON: tuple[type[BaseException], ...] = (*DATABASE_DOWN, TimeoutError)

Key = tuple[str, str]  # (channel, external_id): what makes a message the same message


@dataclass(frozen=True)
class Accepted:
    """Result of ``accept``: the stored row and whether this call created it."""

    inbound_id: int
    created: bool
    enqueued: bool  # the workers' doorbell rang (False: Redis was down; a worker finds it anyway)


def accept(settings: Settings, sms: IncomingSMS) -> Accepted:
    """Store ``sms`` exactly once and enqueue its processing. Raises if it could not be stored."""
    return _committer(settings).submit(sms)


def accept_or_spool(settings: Settings, sms: IncomingSMS) -> Accepted | None:
    """``accept``, or, when the database is unreachable or too slow for the provider's
    timeout, append ``sms`` to the local spool (``spool``); None when spooled.

    For webhooks, whose provider may never retry a 5xx. Safe if the slow commit
    lands after all: the replay meets the stored row and stores nothing twice.
    """
    from . import spool

    try:
        return _committer(settings).submit(sms, timeout=SPOOL_AFTER)
    except _SPOOL_ON as exc:
        spool.append(settings, sms)
        log.info("spooled %s message %s from %s", sms.channel, sms.external_id, phone.mask(sms.sender))
        spool.ensure_replayer(settings)
        if not spool.DATABASE.active:  # one line per outage; the replayer logs the recovery
            spool.DATABASE.down(exc)
            log.error("inbound SMS go to the local spool %s until the database is back", settings.SPOOL_DIR)
        return None


def _committer(settings: Settings) -> groupcommit.GroupCommitter[IncomingSMS, Accepted]:
    def make() -> groupcommit.GroupCommitter[IncomingSMS, Accepted]:
        return groupcommit.GroupCommitter("ingest-writer", lambda batch: _store_and_enqueue(settings, batch),
                                          MAX_BATCH)
    return groupcommit.committer(("ingest", settings.DATABASE_URL, str(settings.REDIS_URL)), make)


# Column sizes of inbound_messages (models.InboundMessage).
FIELD_LIMITS = {"sender": 32, "recipient": 32}
EXTERNAL_ID_LIMIT = 128


def _row(settings: Settings, sms: IncomingSMS, now: datetime) -> dict[str, Any]:
    """The row of ``sms``, storable whatever the provider sent.

    A citizen's message is never refused for its envelope: a field too long
    for its column is cut, an over-long provider id is replaced by its SHA-256
    (still the same key for the provider's retries), and ``meta["truncated"]``
    names each such field with its original length, for an operator.
    """
    truncated: dict[str, int] = {}
    values = {"sender": phone.normalize(_storable(sms.sender), settings.DEFAULT_REGION),
              "recipient": _storable(sms.recipient)}
    for name, limit in FIELD_LIMITS.items():
        if len(values[name]) > limit:
            truncated[name] = len(values[name])
            values[name] = values[name][:limit]
    external_id = _storable(sms.external_id)
    if len(external_id) > EXTERNAL_ID_LIMIT:
        truncated["external_id"] = len(external_id)
        external_id = "sha256:" + hashlib.sha256(external_id.encode()).hexdigest()
    meta = _storable_json(sms.meta or {})
    if truncated:
        meta["truncated"] = truncated
    return {
        "channel": sms.channel,
        "external_id": external_id,
        "sender": values["sender"],
        "recipient": values["recipient"],
        "text": _storable(sms.text),
        "received_at": now,
        "provider_time": sms.provider_time,
        "incomplete": sms.incomplete,
        "state": InboundState.RECEIVED.value,
        "meta": meta,
    }


def _storable(text: str) -> str:
    """``text`` as PostgreSQL can store it: a UCS-2 SMS can carry NUL or half a
    surrogate pair, which text columns refuse. Keep the message, mark the character."""
    text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _storable_json(value: Any) -> Any:
    """``value`` (meta) with every string storable, keys included."""
    if isinstance(value, str):
        return _storable(value)
    if isinstance(value, dict):
        return {_storable(str(k)): _storable_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable_json(v) for v in value]
    return value


def store_batch(settings: Settings, messages: list[IncomingSMS],
                received_at: list[datetime] | None = None) -> list[Accepted | BaseException]:
    """Store ``messages`` in one transaction and enqueue the new ones; one result per message.

    The group committer's writer and the spool's replayer call this (the replayer
    with the time each message reached us, which its deadlines count from). When
    the database is unreachable every result is that error.
    """
    return _store_and_enqueue(settings, messages, received_at)


def _store_and_enqueue(settings: Settings, messages: list[IncomingSMS],
                       received_at: list[datetime] | None = None) -> list[Accepted | BaseException]:
    now = utcnow()
    rows = [_row(settings, sms, received_at[i] if received_at else now) for i, sms in enumerate(messages)]
    try:
        created, existing = _store(settings.DATABASE_URL, rows)
    except DATABASE_DOWN as exc:
        return [exc] * len(rows)  # one by one would fail the same way, once per message
    except Exception:
        if len(rows) == 1:
            raise
        log.exception("batch of %s messages refused; storing them one by one", len(rows))
        return [_one_by_one(settings, sms, row) for sms, row in zip(messages, rows, strict=True)]
    enqueued = _enqueue(settings, sorted(created.values())) if created else False
    return _results(messages, rows, created, existing, enqueued)


def _one_by_one(settings: Settings, sms: IncomingSMS, row: dict[str, Any]) -> Accepted | BaseException:
    try:
        created, existing = _store(settings.DATABASE_URL, [row])
    except Exception as exc:  # noqa: BLE001 - this message alone fails: only its request gets the error
        log.error("could not store %s message %s from %s: %s",
                  sms.channel, sms.external_id, phone.mask(row["sender"]), exc)
        return exc
    enqueued = _enqueue(settings, list(created.values())) if created else False
    return _results([sms], [row], created, existing, enqueued)[0]


def _results(messages: list[IncomingSMS], rows: list[dict[str, Any]], created: dict[Key, int],
             existing: dict[Key, int], enqueued: bool) -> list[Accepted | BaseException]:
    results: list[Accepted | BaseException] = []
    first_seen: set[Key] = set()
    verbose = log.isEnabledFor(logging.INFO)
    for sms, row in zip(messages, rows, strict=True):
        key = (row["channel"], row["external_id"])  # as stored (an over-long id is hashed)
        if key in created and key not in first_seen:
            first_seen.add(key)
            if verbose:
                log.info("stored %s message #%s from %s", sms.channel, created[key], phone.mask(row["sender"]))
            results.append(Accepted(created[key], created=True, enqueued=enqueued))
        else:
            inbound_id = created.get(key) or existing[key]
            log.info("duplicate %s message %s from %s ignored (stored as #%s)",
                     sms.channel, row["external_id"], phone.mask(row["sender"]), inbound_id)
            results.append(Accepted(inbound_id, created=False, enqueued=False))
    return results


# One statement whatever the batch size: the rows travel as one JSON document,
# so the query text is constant (prepared once by psycopg) and adapting the
# batch is one C-level json.dumps instead of a bound parameter per field.
_PG_INSERT = """
INSERT INTO inbound_messages
    (channel, external_id, sender, recipient, text, received_at, provider_time, incomplete, state, meta)
SELECT channel, external_id, sender, recipient, text, received_at, provider_time, incomplete, state, meta
FROM json_to_recordset(%s::json) AS t(
    channel text, external_id text, sender text, recipient text, text text,
    received_at timestamptz, provider_time timestamptz, incomplete boolean, state text, meta json)
ON CONFLICT (channel, external_id) DO NOTHING
RETURNING id, channel, external_id
"""


def _store(url: str, rows: list[dict[str, Any]]) -> tuple[dict[Key, int], dict[Key, int]]:
    """Insert ``rows`` in one transaction; the ids created, and the ids of rows already there."""
    engine = get_engine(url)
    keys = {(row["channel"], row["external_id"]) for row in rows}
    table = InboundMessage.__table__
    if engine.dialect.name == "postgresql":
        # One statement is one transaction in autocommit: INSERT and COMMIT in a
        # single round trip instead of three (BEGIN, INSERT, COMMIT).
        document = json.dumps(rows, default=json_default)
        created = {(ch, ext): i for i, ch, ext in execute_autocommit(engine, _PG_INSERT, (document,))}
    else:  # SQLite, the first-run default: the plain SQLAlchemy statement
        stmt = (sqlite.insert(InboundMessage)
                .on_conflict_do_nothing(index_elements=["channel", "external_id"])
                .returning(table.c.id, table.c.channel, table.c.external_id))
        with engine.begin() as conn:
            created = {(ch, ext): i for i, ch, ext in conn.execute(stmt, rows)}
    missing = keys - created.keys()
    if not missing:
        return created, {}
    # The rows we collided with are committed: ON CONFLICT waited for their transaction.
    with engine.connect() as conn:
        existing = {(ch, ext): i for i, ch, ext in conn.execute(
            select(table.c.id, table.c.channel, table.c.external_id)
            .where(tuple_(table.c.channel, table.c.external_id).in_(list(missing))))}
    return created, existing


def _enqueue(settings: Settings, inbound_ids: list[int]) -> bool:
    return queue.enqueue_processing(settings, inbound_ids)
