"""The outbox: every SMS the gateway sends is a row here first, and the row is the record.

Whoever wants an SMS sent (the inbound pipeline, an agency's status change,
the deadline watch) adds a row with ``queue_reply`` inside its own transaction
and, after the commit, calls ``dispatch`` to ring the senders' doorbell in
Redis. Nothing is lost if the doorbell is not heard (Redis down, a sender
restarting): senders also look at the table every second when idle. The
senders (``sms_gateway.sender``) claim rows with ``claim`` (queued → sending,
one conditional UPDATE, so a row is claimed once however many senders run),
hand them to their channel and record what happened with ``record_results``.
Provider status callbacks move a row on with ``record_delivery``, never
backwards. Nothing here knows RQ.

Lanes: a reply to a citizen's own message (acknowledgement, CEK status, help)
is lane 0 and goes before agency notifications (lane 1), which go before bulk
messages (lane 2); within a lane, oldest first.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import Engine, Select, bindparam, select, text, update
from sqlalchemy.orm import Session

from . import groupcommit, gsm, queue
from .config import Settings
from .db import execute_autocommit, get_engine, json_default, session_factory
from .models import OUTBOUND_RANK, OutboundMessage, OutboundState, UTCDateTime, utcnow
from .outage import DATABASE_DOWN

log = logging.getLogger(__name__)

REPLY, NOTIFICATION, BULK = 0, 1, 2
LANES = {REPLY: "reply", NOTIFICATION: "notification", BULK: "bulk"}
# Purposes that answer something the citizen just sent; anything else an
# agency or the gateway starts is a notification unless the caller says bulk.
REPLY_PURPOSES = frozenset({"ack", "status", "help", "reply", "stop", "start"})

WAKE_PREFIX = "sms-gateway:outbox:wake:"


def lane_for(purpose: str, inbound_id: int | None) -> int:
    """The lane of a new SMS: replies to a citizen's message first."""
    return REPLY if inbound_id is not None or purpose in REPLY_PURPOSES else NOTIFICATION


def new_message(*, key: str, channel: str, recipient: str, text: str, purpose: str,
                inbound_id: int | None = None, report_id: int | None = None,
                lane: int | None = None) -> OutboundMessage:
    """An outbound row, not added to any session (the pipeline adds a batch at once)."""
    return OutboundMessage(
        idempotency_key=key, channel=channel, recipient=recipient, text=text, purpose=purpose,
        inbound_id=inbound_id, report_id=report_id, state=OutboundState.QUEUED, attempts=0,
        lane=lane_for(purpose, inbound_id) if lane is None else lane,
        segments=gsm.measure(text).segments,
    )


def reply_row(*, key: str, channel: str, recipient: str, text: str, purpose: str, inbound_id: int,
              report_id: int | None, now: datetime) -> dict[str, Any]:
    """The columns of a reply to inbound message ``inbound_id``, for a batch insert (``db.insert_rows``)."""
    return {"idempotency_key": key, "channel": channel, "recipient": recipient, "text": text, "purpose": purpose,
            "inbound_id": inbound_id, "report_id": report_id, "state": OutboundState.QUEUED.value,
            "lane": lane_for(purpose, inbound_id), "attempts": 0, "segments": gsm.measure(text).segments,
            "created_at": now, "updated_at": now}


def queue_reply(
    session: Session,
    *,
    key: str,
    channel: str,
    recipient: str,
    text: str,
    purpose: str,
    inbound_id: int | None = None,
    report_id: int | None = None,
    lane: int | None = None,
) -> OutboundMessage:
    """Add an outbound SMS unless one with ``key`` exists (then return that one). Not committed."""
    existing = session.scalar(select(OutboundMessage).where(OutboundMessage.idempotency_key == key))
    if existing is not None:
        return existing
    row = new_message(key=key, channel=channel, recipient=recipient, text=text, purpose=purpose,
                      inbound_id=inbound_id, report_id=report_id, lane=lane)
    session.add(row)
    session.flush()
    return row


def dispatch(settings: Settings, messages: list[OutboundMessage] | list[str]) -> bool:
    """After commit: wake the senders of these messages' channels (or of these channel names).

    False (logged) when Redis is unreachable; the messages are not lost, the
    senders find them at their next look at the table.
    """
    channels = sorted({m if isinstance(m, str) else m.channel for m in messages
                       if isinstance(m, str) or m.state == OutboundState.QUEUED})
    if not channels:
        return True
    try:
        pipe = queue.get_redis(settings).pipeline(transaction=False)
        for channel in channels:
            # A doorbell, not a queue: one pending ring is enough for any number of rows.
            pipe.lpush(WAKE_PREFIX + channel, 1)
            pipe.ltrim(WAKE_PREFIX + channel, 0, 0)
        pipe.execute()
    except RedisError as exc:
        log.warning("could not wake the %s sender(s) (%s); they will find the messages within a second",
                    ", ".join(channels), exc)
        return False
    return True


# --------------------------------------------------------------------------- the senders' side

@dataclass(frozen=True)
class Claimed:
    """A row a sender has claimed (state sending) and must now hand to its channel."""

    id: int
    recipient: str
    text: str
    segments: int
    attempts: int
    lane: int
    claimed_at: datetime


_CLAIM_COLUMNS = (OutboundMessage.id, OutboundMessage.recipient, OutboundMessage.text,
                  OutboundMessage.segments, OutboundMessage.attempts, OutboundMessage.lane,
                  OutboundMessage.claimed_at)


def _due(channel: str, now: datetime) -> Any:
    return (OutboundMessage.channel == channel, OutboundMessage.state == OutboundState.QUEUED,
            (OutboundMessage.next_attempt_at.is_(None)) | (OutboundMessage.next_attempt_at <= now))


def limited(query: Select[Any], dialect: str) -> Any:
    """``query`` (ids, with LIMIT and FOR UPDATE SKIP LOCKED) as the set an UPDATE may take.

    PostgreSQL: a MATERIALIZED CTE, evaluated once. As a plain ``IN (SELECT
    … LIMIT n FOR UPDATE SKIP LOCKED)`` it may rescan the subquery for each
    row it updates, each rescan skipping and taking other rows, so one claim
    of n could take far more than n (a two-sender test caught 70 taking 120).
    SQLite: the subquery (evaluated once); a statement that begins with WITH
    would not begin a transaction in Python's sqlite3 and commit at once.
    """
    if dialect == "postgresql":
        return select(query.cte("picked").prefix_with("MATERIALIZED").c.id)
    return query.scalar_subquery()


# The senders' two statements on PostgreSQL, where they run on every round of
# every sender: constant text (prepared once by psycopg), sent in autocommit so
# that the statement is its own transaction (one round trip instead of BEGIN,
# statement, COMMIT), with no ORM statement built and compiled each time. The
# sender's CPU per message fell by a quarter to a third (docs/BENCHMARKS.md). SQLite
# runs the same logic through SQLAlchemy below.
_PG_CLAIM = """
WITH picked AS MATERIALIZED (
    SELECT id FROM outbound_messages
    WHERE channel = %(channel)s AND state = 'queued' AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s)
    ORDER BY lane, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
UPDATE outbound_messages AS o
SET state = 'sending', attempts = o.attempts + 1, claimed_at = %(now)s, updated_at = %(now)s
FROM picked WHERE o.id = picked.id AND o.state = 'queued'
RETURNING o.id, o.recipient, o.text, o.segments, o.attempts, o.lane, o.claimed_at
"""


def _postgresql(session: Session) -> Engine | None:
    """The engine behind ``session`` when it is PostgreSQL's."""
    engine = session.get_bind()
    return engine if isinstance(engine, Engine) and engine.dialect.name == "postgresql" else None


def claim(session: Session, channel: str, limit: int, now: datetime | None = None) -> list[Claimed]:
    """Claim up to ``limit`` due rows of ``channel``, best lane and oldest first; committed.

    One statement: ``WITH picked AS MATERIALIZED (SELECT … LIMIT n FOR UPDATE
    SKIP LOCKED) UPDATE … WHERE id IN picked AND state = 'queued' RETURNING …``. On PostgreSQL concurrent
    senders skip each other's rows instead of waiting; SQLite runs the
    statement under its database lock. Either way a row is claimed once.
    """
    now = now or utcnow()
    engine = _postgresql(session)
    if engine is not None:
        session.commit()  # as below: whatever the session holds is committed first
        taken = execute_autocommit(engine, _PG_CLAIM, {"channel": channel, "now": now, "limit": limit})
        claimed = [Claimed(i, recipient, text_, segments or 1, attempts, lane, at.astimezone(UTC))
                   for i, recipient, text_, segments, attempts, lane, at in taken]
        claimed.sort(key=lambda c: (c.lane, c.id))
        return claimed
    due = limited(select(OutboundMessage.id).where(*_due(channel, now))
                  .order_by(OutboundMessage.lane, OutboundMessage.id).limit(limit)
                  .with_for_update(skip_locked=True), "sqlite")
    rows = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id.in_(due), OutboundMessage.state == OutboundState.QUEUED)
        .values(state=OutboundState.SENDING, attempts=OutboundMessage.attempts + 1, claimed_at=now,
                updated_at=now)
        .returning(*_CLAIM_COLUMNS)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    claimed = [Claimed(r.id, r.recipient, r.text, r.segments or 1, r.attempts, r.lane, r.claimed_at) for r in rows]
    claimed.sort(key=lambda c: (c.lane, c.id))
    return claimed


def release(session: Session, ids: list[int]) -> None:
    """Give back claimed rows that were not sent (the rate allowed fewer); the claim did not count."""
    if ids:
        session.execute(update(OutboundMessage)
                        .where(OutboundMessage.id.in_(ids), OutboundMessage.state == OutboundState.SENDING)
                        .values(state=OutboundState.QUEUED, attempts=OutboundMessage.attempts - 1)
                        .execution_options(synchronize_session=False))
        session.commit()


@dataclass(frozen=True)
class Outcome:
    """What happened to one claimed row."""

    id: int
    state: str  # sent, delivered (console), queued (retry), failed
    provider_id: str | None = None
    segments: int | None = None
    error: str | None = None
    error_code: str | None = None
    next_attempt_at: datetime | None = None
    uncount: bool = False  # the attempt does not count (throttled: not the message's fault)


# Results: each UPDATE applies only while the row is still ours ("sending"),
# except that a provider's status report may have raced ahead (Kannel's DLRs
# arrive within milliseconds of the sendsms answer): then the state it set
# stays, and only what the report could not know (our provider id, the send
# time, the segments) is filled in. On PostgreSQL both kinds are one statement
# (two data-modifying CTEs over JSON documents: one transaction, one round
# trip); on SQLite, one executemany per kind in one transaction.
# Statements that change several rows lock them first, in id order: two of
# them (a sender's results and a web process's batch of delivery reports)
# taking the same rows in different orders would deadlock, and PostgreSQL
# would break the tie only after deadlock_timeout (1 s), stalling both.
_LOCK_IN_ORDER = "SELECT id FROM outbound_messages WHERE id IN ({ids}) ORDER BY id FOR NO KEY UPDATE"
_SENT_SET = """
    state = CASE WHEN o.state IN ('queued', 'sending') THEN r.state ELSE o.state END,
    provider_id = COALESCE(o.provider_id, r.provider_id),
    sent_at = COALESCE(o.sent_at, {now}),
    delivered_at = CASE WHEN o.delivered_at IS NULL AND (o.state = 'delivered' OR r.state = 'delivered')
                        THEN {now} ELSE o.delivered_at END,
    segments = COALESCE(r.segments, o.segments),
    error = CASE WHEN o.state IN ('failed', 'undelivered') THEN o.error ELSE NULL END,
    error_code = CASE WHEN o.state IN ('failed', 'undelivered') THEN o.error_code ELSE NULL END,
    next_attempt_at = NULL,
    updated_at = {now}
"""
_NOT_SENT_SET = """
    state = r.state, error = r.error, error_code = r.error_code, next_attempt_at = r.next_attempt_at,
    attempts = o.attempts - r.uncount, updated_at = {now}
"""
_PG_RESULTS = f"""
WITH s AS (
    SELECT * FROM json_to_recordset(%(sent)s::json) AS r(id integer, state text, provider_id text, segments integer)
), n AS (
    SELECT * FROM json_to_recordset(%(other)s::json)
        AS r(id integer, state text, error text, error_code text, next_attempt_at timestamptz, uncount integer)
), locked AS MATERIALIZED ({_LOCK_IN_ORDER.format(ids="SELECT id FROM s UNION ALL SELECT id FROM n")}
), sent AS (
    UPDATE outbound_messages AS o SET {_SENT_SET.format(now="%(now)s")}
    FROM s AS r, locked WHERE o.id = locked.id AND o.id = r.id
    RETURNING 1
), other AS (
    UPDATE outbound_messages AS o SET {_NOT_SENT_SET.format(now="%(now)s")}
    FROM n AS r, locked WHERE o.id = locked.id AND o.id = r.id AND o.state = 'sending'
    RETURNING 1
)
SELECT (SELECT count(*) FROM sent), (SELECT count(*) FROM other)
"""  # noqa: S608 - constant text (the SET clauses above)
_SENT_SQL = text(f"""
UPDATE outbound_messages AS o SET {_SENT_SET.format(now=":now")}
FROM (SELECT :id AS id, :state AS state, :provider_id AS provider_id, :segments AS segments) AS r
WHERE o.id = r.id
""").bindparams(bindparam("now", type_=UTCDateTime()))  # noqa: S608 - constant text
_NOT_SENT_SQL = text(f"""
UPDATE outbound_messages AS o SET {_NOT_SENT_SET.format(now=":now")}
FROM (SELECT :id AS id, :state AS state, :error AS error, :error_code AS error_code,
             :next_attempt_at AS next_attempt_at, :uncount AS uncount) AS r
WHERE o.id = r.id AND o.state = 'sending'
""").bindparams(bindparam("now", type_=UTCDateTime()),  # noqa: S608 - constant text
                bindparam("next_attempt_at", type_=UTCDateTime()))


def record_results(session: Session, outcomes: list[Outcome], now: datetime | None = None) -> None:
    """Write the outcomes of a sender's calls in one transaction."""
    if not outcomes:
        return
    now = now or utcnow()
    sent = [{"id": o.id, "state": o.state, "provider_id": o.provider_id, "segments": o.segments}
            for o in outcomes if o.state in (OutboundState.SENT, OutboundState.DELIVERED)]
    other = [{"id": o.id, "state": o.state, "error": o.error, "error_code": o.error_code,
              "next_attempt_at": o.next_attempt_at, "uncount": int(o.uncount)}
             for o in outcomes if o.state not in (OutboundState.SENT, OutboundState.DELIVERED)]
    engine = _postgresql(session)
    if engine is not None:
        session.commit()
        execute_autocommit(engine, _PG_RESULTS, {"now": now, "sent": json.dumps(sent),
                                          "other": json.dumps(other, default=json_default)})
        return
    if sent:
        session.execute(_SENT_SQL, [{**row, "now": now} for row in sent])
    if other:
        session.execute(_NOT_SENT_SQL, [{**row, "now": now} for row in other])
    session.commit()


def stale_sends(session: Session, channel: str, older_than: timedelta, limit: int = 100,
                now: datetime | None = None) -> list[Claimed]:
    """Take the sends of ``channel`` still "sending" after ``older_than``: their sender died mid-call.

    Taking one moves its ``updated_at`` on, so two senders never reconcile
    the same row at once and an undecided one comes back after ``older_than``.
    """
    now = now or utcnow()
    stale = limited(select(OutboundMessage.id)
                    .where(OutboundMessage.channel == channel, OutboundMessage.state == OutboundState.SENDING,
                           OutboundMessage.updated_at < now - older_than)
                    .order_by(OutboundMessage.id).limit(limit).with_for_update(skip_locked=True),
                    session.get_bind().dialect.name)
    rows = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id.in_(stale), OutboundMessage.state == OutboundState.SENDING)
        .values(updated_at=now)
        .returning(*_CLAIM_COLUMNS)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return [Claimed(r.id, r.recipient, r.text, r.segments or 1, r.attempts, r.lane, r.claimed_at or now)
            for r in rows]


# --------------------------------------------------------------------------- provider reports and operators

@dataclass(frozen=True)
class DeliveryReport:
    """A provider's word on an outbound message: Kannel's DLR, Twilio's status callback."""

    outbound_id: int
    state: str  # our outbound state it means
    raw_status: str  # the provider's words, stored as provider_status
    error_code: str | None = None
    error: str | None = None
    provider_id: str | None = None  # a report about another provider message than ours changes nothing


# A report moves a message on, never back: the row changes only while its
# state ranks below the report's (``r.allowed``) or is that state already, and
# then only the provider's words change. The condition on the state, not a
# read and a lock, makes it safe against a concurrent report: the second one
# finds the row moved on (PostgreSQL re-checks the condition after waiting for
# the first one's lock; SQLite writes one at a time). On PostgreSQL a batch of
# reports is one statement over a JSON document; on SQLite, one statement per
# report in one transaction.
_DELIVERY_SET = """
    state = r.state,
    provider_status = r.provider_status,
    error_code = COALESCE(r.error_code, o.error_code),
    error = CASE WHEN r.error_code IS NOT NULL AND r.error IS NOT NULL THEN r.error ELSE o.error END,
    provider_id = CASE WHEN o.state = r.state THEN o.provider_id ELSE COALESCE(o.provider_id, r.provider_id) END,
    delivered_at = CASE WHEN r.state = 'delivered' AND o.state <> r.state THEN r.at ELSE o.delivered_at END,
    sent_at = CASE WHEN r.state = 'sent' AND o.state <> r.state THEN COALESCE(o.sent_at, r.at) ELSE o.sent_at END,
    updated_at = r.at
"""
_DELIVERY_WHERE = """
    o.id = r.id AND r.allowed LIKE '%,' || o.state || ',%'
    AND (r.provider_id IS NULL OR o.provider_id IS NULL OR o.provider_id = r.provider_id)
"""
# psycopg's placeholders are %s: its literal % is written %%.
_PG_DELIVERY = f"""
WITH r AS (
    SELECT * FROM json_to_recordset(%s::json) AS r(i integer, id integer, state text, provider_status text,
        error_code text, error text, provider_id text, allowed text, at timestamptz)
), locked AS MATERIALIZED ({_LOCK_IN_ORDER.format(ids="SELECT id FROM r")})
UPDATE outbound_messages AS o SET {_DELIVERY_SET}
FROM r, locked
WHERE o.id = locked.id AND {_DELIVERY_WHERE.replace("%", "%%")}
RETURNING r.i
"""  # noqa: S608 - constant text
_DELIVERY_SQL = text(f"""
UPDATE outbound_messages AS o SET {_DELIVERY_SET}
FROM (SELECT :id AS id, :state AS state, :provider_status AS provider_status, :error_code AS error_code,
             :error AS error, :provider_id AS provider_id, :allowed AS allowed, :at AS at) AS r
WHERE {_DELIVERY_WHERE}
""").bindparams(bindparam("at", type_=UTCDateTime()))  # noqa: S608 - constant text


def _allowed(state: str) -> str | None:
    """The states a report of ``state`` may move a message from, as ",a,b,c," (None: not a state)."""
    rank = OUTBOUND_RANK.get(state)
    if rank is None:
        return None
    return "," + ",".join([s for s, r in OUTBOUND_RANK.items() if r < rank] + [state]) + ","


def apply_delivery_reports(engine: Engine, reports: list[DeliveryReport],
                           now: datetime | None = None) -> list[bool]:
    """Apply ``reports`` in their order, each as if alone; whether each applied (the message
    moved on, or was in that state already and got the provider's words)."""
    now = now or utcnow()
    applied = [False] * len(reports)
    rows: list[dict[str, Any]] = []
    for i, report in enumerate(reports):
        allowed = _allowed(report.state)
        if allowed is not None:
            # Cut to the columns' sizes: a provider's odd value must not fail the batch it is in.
            rows.append({"i": i, "id": report.outbound_id, "state": report.state,
                         "provider_status": report.raw_status[:32],
                         "error_code": (report.error_code or "")[:32] or None,
                         "error": report.error if report.error_code else None,
                         "provider_id": (report.provider_id or "")[:128] or None, "allowed": allowed, "at": now})
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            for row in rows:
                applied[row["i"]] = bool(conn.execute(_DELIVERY_SQL, row).rowcount)
        return applied
    # One UPDATE changes a row once: two reports on one message (Kannel's 8 and
    # 1, a millisecond apart) go in successive statements, in their order.
    waves: list[list[dict[str, Any]]] = []
    seen: dict[int, int] = {}
    for row in rows:
        wave = seen[row["id"]] = seen.get(row["id"], -1) + 1
        if wave == len(waves):
            waves.append([])
        waves[wave].append(row)
    for wave_rows in waves:
        for (i,) in execute_autocommit(engine, _PG_DELIVERY, (json.dumps(wave_rows, default=json_default),)):
            applied[i] = True
    return applied


def record_delivery(settings: Settings, report: DeliveryReport) -> bool:
    """Apply one report from a web request, in a batch with the process's other
    requests' reports (``groupcommit``); whether it applied. Raises when the
    database cannot be reached: the provider retries a report answered 5xx."""
    def make() -> groupcommit.GroupCommitter[DeliveryReport, bool]:
        engine = get_engine(settings.DATABASE_URL)
        return groupcommit.GroupCommitter("delivery-writer", lambda batch: _apply_batch(engine, batch),
                                          max_batch=128)
    return groupcommit.committer(("delivery", settings.DATABASE_URL), make).submit(report)


def _apply_batch(engine: Engine, batch: list[DeliveryReport]) -> list[bool | BaseException]:
    """``apply_delivery_reports``; a batch the database refuses is applied report by report,
    so that one bad report fails only its own request (as ``ingest`` does with messages)."""
    try:
        return list(apply_delivery_reports(engine, batch))
    except DATABASE_DOWN:
        raise  # one by one would fail the same way, once per report
    except Exception:
        if len(batch) == 1:
            raise
        log.exception("batch of %s delivery reports refused; applying them one by one", len(batch))
    results: list[bool | BaseException] = []
    for report in batch:
        try:
            results.extend(apply_delivery_reports(engine, [report]))
        except Exception as exc:  # noqa: BLE001 - this report alone fails: only its request gets the error
            results.append(exc)
    return results


def retry(settings: Settings, outbound_id: int) -> bool:
    """Operator action: put a failed (or undelivered) SMS back in the queue and wake its sender."""
    with session_factory(settings.DATABASE_URL)() as session:
        row = session.get(OutboundMessage, outbound_id)
        if row is None or row.state not in (OutboundState.FAILED, OutboundState.UNDELIVERED):
            return False
        row.state = OutboundState.QUEUED
        row.attempts = 0
        row.next_attempt_at = None
        session.commit()
        dispatch(settings, [row.channel])
        return True
