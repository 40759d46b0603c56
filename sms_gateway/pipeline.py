"""The inbound pipeline, as the data flows: stored SMS → parse → decide → report → reply.

Stored messages wait in the database (state ``received``). Each worker runs
``run_inbound``: it claims the oldest waiting messages, up to ``MAX_BATCH``,
processes them in one transaction, and sleeps on a Redis doorbell (rung by
ingest after each commit) when none wait. ``process`` is one batch:

1. **claim**: one conditional UPDATE moves the messages from ``received`` to
   ``processed`` (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so a message is
   processed once however many workers look;
2. **parse** each text against the registry in force, and apply **flood
   control** (a number over ``FLOOD_MAX_MESSAGES`` in ``FLOOD_WINDOW``, or one
   that cannot receive replies, gets at most one reply per window; the same
   text again from the same number in the window adds to the report it made);
3. **decide** the agency, kind and deadlines (prefix, then rules), or answer
   the command (CEK, BALAS, BANTUAN, BERHENTI);
4. **report**: the new reports and their first history entries, each table
   one INSERT for the batch, and the agency's webhook row;
5. **reply**: one outbox row per message that is answered, one INSERT;
6. **commit**, then ring the senders' doorbell (``outbox.dispatch``).

No RQ job per message or batch: a job costs a worker 2.5 ms of CPU, more than
processing a message (docs/BENCHMARKS.md). RQ carries only the exceptions: a
message whose own reading raises (a bug, a broken rule) is put back to
``received`` with the error and retried on its own by an RQ job with backoff;
its neighbours go on. If a batch's transaction fails (the database), each
message is tried again on its own. Everything is keyed so that a second run
changes nothing: the claim, one report per inbound message, one reply per key.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, and_, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session

from . import outbox, phone, queue, reports, tracking
from .agencies import push
from .agencies.citizen import handle_reply
from .agencies.lifecycle import announce_new_report
from .channels import reply_channel
from .config import Settings
from .db import insert_rows, session_factory, update_rows
from .deadlines import JAKARTA, add_working_days
from .decision import decide
from .models import (
    InboundMessage,
    InboundState,
    OptOut,
    OutboundMessage,
    Report,
    ReportEvent,
    UTCDateTime,
    utcnow,
)
from .outage import DATABASE_DOWN, REDIS_DOWN, Outage
from .parsing import ParsedSMS, original_body, parse
from .registry import UNKNOWN_CODE_MAX, Registry, registry_for

log = logging.getLogger(__name__)

FLOOD, UNREPLYABLE = "flood", "unreplyable"
MAX_BATCH = 100  # messages one transaction processes at most (its own batch is never cut)
# After a small batch a worker's loop waits this long before it claims again.
# Under a flood each web commit rings the doorbell and the workers claimed
# whatever was there: 9 messages a batch on average, when a message costs
# ~4.8 ms of CPU alone, 0.6 in a batch of 16 and 0.35 in one of 64 (bench/stages.py).
# An idle worker still wakes at once on the doorbell; a message that comes while
# a worker lingers waits 50 ms at most (docs/BENCHMARKS.md: +25-50 ms at p50).
LINGER = 0.05
SMALL_BATCH = MAX_BATCH // 4


@dataclass(frozen=True)
class ReportRef:
    """What an answer needs of a report: made by this batch (``row`` to insert) or earlier."""

    tracking_number: str
    agency: str | None
    kind: str
    row: dict[str, Any] | None = None  # the new report's columns, inserted with the batch


@dataclass
class Answer:
    """What one message gets: a reply text (None: no reply), and the report it made or repeated."""

    text: str | None
    purpose: str
    report: ReportRef | None = None
    new_report: bool = False  # False: the same text again, added to ``report``


def process(settings: Settings, inbound_ids: list[int], steal: bool = True) -> dict[str, int]:
    """Process stored messages ``inbound_ids`` (with ``steal``, topped up with the oldest waiting
    ones; none given: those alone) in one transaction; outcome counts by purpose.

    If the transaction fails, each message is tried again alone (``steal``
    False). A message that still fails keeps its error on the row; given alone
    it raises (RQ retries its job), in a batch it is handed to its own job and
    the rest go on.
    """
    sessions = session_factory(settings.DATABASE_URL)
    try:
        with sessions() as session:
            outcomes, failed, channels = _process(session, settings, inbound_ids, steal)
    except Exception as exc:
        if not steal:
            _record_error(settings, inbound_ids, exc)
            raise
        batch = inbound_ids or _waiting(settings)
        log.warning("a batch of %s inbound messages failed (%s: %s); processing them one by one", len(batch),
                    type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        outcomes, failed, channels = Counter(), {}, []
        for inbound_id in batch:
            try:
                outcomes.update(process(settings, [inbound_id], steal=False))
            except Exception as one:  # noqa: BLE001 - recorded on the row; retried by its own job
                failed[inbound_id] = one
    outbox.dispatch(settings, channels)
    if failed and len(inbound_ids) == 1:
        raise next(iter(failed.values()))
    for inbound_id in failed:
        outcome = "retrying" if queue.enqueue_retry(settings, inbound_id) else "left for the sweeper"
        outcomes[outcome] += 1
    return dict(outcomes)


def work_waiting(settings: Settings) -> int:
    """Process the oldest waiting messages (up to ``MAX_BATCH``, one transaction); how many were."""
    outcomes = process(settings, [])
    return sum(n for outcome, n in outcomes.items() if outcome not in ("retrying", "left for the sweeper"))


def drain(settings: Settings) -> int:
    """Process everything waiting now (tests, ``sms-gateway worker --burst``)."""
    total = 0
    while done := work_waiting(settings):
        total += done
    return total


def run_inbound(settings: Settings, stop: threading.Event) -> None:
    """A worker's inbound loop: claim and process waiting messages until ``stop``; between
    batches sleep on the doorbell, a second at most; after a small batch, ``LINGER``.
    An outage is logged once and waited out."""
    warm_up(settings)
    redis = queue.get_redis(settings)
    redis_down = Outage("inbound loop: Redis (no doorbell; the database is looked at every second)", log,
                        settings.RECONNECT_MAX_DELAY)
    database_down = Outage("inbound loop: database (messages wait)", log, settings.RECONNECT_MAX_DELAY)
    while not stop.is_set():
        try:
            done = work_waiting(settings)
            database_down.up()
        except DATABASE_DOWN as exc:
            stop.wait(database_down.down(exc))
            continue
        if done:
            if done < SMALL_BATCH:
                stop.wait(LINGER)  # more are coming: let them make a bigger batch
            continue
        try:
            redis.blpop([queue.INBOUND_WAKE], timeout=1)
            redis_down.up()
        except REDIS_DOWN as exc:
            redis_down.down(exc)
            stop.wait(1.0)


def warm_up(settings: Settings) -> None:
    """Load what the first message would (the registry, the rules engine, this year's and
    next year's holidays), so that neither it nor the first batch of a surge waits for it."""
    try:
        registry = registry_for(settings)
        now = utcnow()
        decide(parse(f"{next(iter(registry.agencies), 'LAPOR')} ADUAN jalan rusak", registry), registry, now)
        add_working_days(now.astimezone(JAKARTA).date().replace(month=12, day=20), 10)
    except Exception as exc:  # noqa: BLE001 - best effort: the first message meets the same problem and says it
        log.warning("inbound loop: could not warm up (%s: %s)", type(exc).__name__, exc)


def _waiting(settings: Settings) -> list[int]:
    """The messages a batch without given ids would have claimed (to try them one by one)."""
    with session_factory(settings.DATABASE_URL)() as session:
        return list(session.scalars(
            select(InboundMessage.id).where(InboundMessage.state == InboundState.RECEIVED,
                                            InboundMessage.error.is_(None))
            .order_by(InboundMessage.id).limit(MAX_BATCH)))


def _record_error(settings: Settings, inbound_ids: list[int], exc: BaseException) -> None:
    """Leave a trace an operator sees in `sms-gateway messages` (the message stays received)."""
    with session_factory(settings.DATABASE_URL)() as session:
        session.execute(update(InboundMessage).where(
            InboundMessage.id.in_(inbound_ids), InboundMessage.state == InboundState.RECEIVED,
        ).values(error=f"{type(exc).__name__}: {exc}"[:2000]))
        session.commit()


def _process(session: Session, settings: Settings, inbound_ids: list[int], steal: bool
             ) -> tuple[Counter[str], dict[int, BaseException], list[str]]:
    now = utcnow()
    messages = claim(session, inbound_ids, now, steal)
    outcomes: Counter[str] = Counter()
    mine = len({m.id for m in messages} & set(inbound_ids))
    if mine < len(set(inbound_ids)):
        outcomes["already processed"] = len(set(inbound_ids)) - mine
    if not messages:
        session.commit()
        return outcomes, {}, []
    # The batch's own rows are written back by one statement (``_save``), not
    # by the unit of work, which spent a fifth of a worker's CPU at flush
    # working out these rows' relationships (docs/BENCHMARKS.md).
    for msg in messages:
        session.expunge(msg)
    registry = registry_for(settings)
    flood = FloodControl.load(session, settings, messages, now)
    numbers = iter(reports.new_tracking_numbers(session, len(messages)))
    failed: dict[int, BaseException] = {}
    answered: list[tuple[InboundMessage, Answer]] = []
    for msg in messages:
        try:
            parsed = parse(msg.text, registry)
            answer = respond(session, settings, registry, msg, parsed, flood, lambda: next(numbers))
        except Exception as exc:
            log.exception("inbound #%s could not be processed; retrying it on its own", msg.id)
            msg.state, msg.processed_at, msg.error = InboundState.RECEIVED, None, f"{type(exc).__name__}: {exc}"[:2000]
            failed[msg.id] = exc
            continue
        msg.parsed = parsed.to_dict()
        if answer.report is not None and not answer.new_report:
            msg.parsed["repeat_of"] = answer.report.tracking_number
        answered.append((msg, answer))
    report_ids = _store_reports(session, settings, registry, [a.report.row for _m, a in answered
                                                              if a.new_report and a.report and a.report.row])
    flood.store_repeats(session)
    # A reply exists already only if a message was put back to "received" by
    # hand after it was answered: the batch then fails on the reply's unique
    # key, and the messages are tried one at a time, looked at here.
    keys = [f"reply:{msg.id}" for msg, _answer in answered]
    answered_before = set(session.scalars(select(OutboundMessage.idempotency_key)
                                          .where(OutboundMessage.idempotency_key.in_(keys)))) \
        if not steal else set()
    replies = []
    for msg, answer in answered:
        if answer.text is None or f"reply:{msg.id}" in answered_before:
            outcomes["no reply" if answer.text is None else "already answered"] += 1
            continue
        reply = outbox.reply_row(
            key=f"reply:{msg.id}", channel=reply_channel(msg.channel, settings), recipient=msg.sender,
            text=answer.text, purpose=answer.purpose, inbound_id=msg.id, now=now,
            report_id=report_ids.get(answer.report.tracking_number) if answer.report else None)
        replies.append(reply)
        outcomes[answer.purpose] += 1
    insert_rows(session, OutboundMessage.__table__, replies)  # type: ignore[arg-type]
    _save(session, messages)
    session.commit()
    if log.isEnabledFor(logging.INFO):
        for msg, answer in answered:
            ref = answer.report
            log.info("inbound #%s from %s: %s%s%s", msg.id, phone.mask(msg.sender), answer.purpose,
                     f" report {ref.tracking_number} -> {ref.agency or 'central'}" if ref else "",
                     f" (no reply: {msg.no_reply})" if msg.no_reply else "")
    return outcomes, failed, sorted({r["channel"] for r in replies})


def _store_reports(session: Session, settings: Settings, registry: Registry,
                   rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert new reports and their first history entries; their ids by tracking number.
    A report for an agency with a webhook also gets its delivery row (pushed after commit)."""
    if not rows:
        return {}
    ids = {row[1]: row[0] for row in insert_rows(
        session, Report.__table__, rows, returning=("id", "tracking_number"))}  # type: ignore[arg-type]
    insert_rows(session, ReportEvent.__table__, [  # type: ignore[arg-type]
        reports.first_event_row(ids[row["tracking_number"]], row) for row in rows])
    for row in rows:
        if row["agency"] and push.webhook_url(registry, row["agency"], push.AGENCY):
            report = session.get(Report, ids[row["tracking_number"]])
            assert report is not None
            announce_new_report(session, settings, registry, report)
    return ids


# Built once: a statement object costs more to build than to run from SQLAlchemy's cache.
_CLAIMABLE = (select(InboundMessage.id)
              .where(InboundMessage.state == InboundState.RECEIVED,
                     or_(InboundMessage.id.in_(bindparam("ids", expanding=True)),
                         and_(bindparam("steal", type_=Boolean()), InboundMessage.error.is_(None))))
              .order_by(case((InboundMessage.id.in_(bindparam("ids", expanding=True)), 0), else_=1),
                        InboundMessage.id)
              .limit(bindparam("limit"))
              .with_for_update(skip_locked=True))
_CLAIM = {dialect: update(InboundMessage)
          .where(InboundMessage.id.in_(outbox.limited(_CLAIMABLE, dialect)),
                 InboundMessage.state == InboundState.RECEIVED)
          .values(state=InboundState.PROCESSED, processed_at=bindparam("now", type_=UTCDateTime()), error=None)
          .returning(InboundMessage)
          .execution_options(synchronize_session=False)
          for dialect in ("postgresql", "sqlite")}


def _save(session: Session, messages: list[InboundMessage]) -> None:
    """Write what processing set on the claimed (expunged) ``messages``, in the session's transaction."""
    update_rows(session, InboundMessage.__table__, [  # type: ignore[arg-type]
        {"id": m.id, "state": m.state, "processed_at": m.processed_at, "error": m.error, "parsed": m.parsed,
         "no_reply": m.no_reply} for m in messages])


def claim(session: Session, inbound_ids: Iterable[int], now: datetime, steal: bool = True) -> list[InboundMessage]:
    """Move the ``received`` messages among ``inbound_ids`` to ``processed`` (in the caller's
    transaction) and load them; the others are done or another worker has them.

    With ``steal``, the batch is topped up to ``MAX_BATCH`` with the oldest
    other messages still waiting (not those that failed: their own job
    retries them with its backoff). Under a surge a worker thus processes
    what has piled up in one transaction, whatever the size of the ingest
    batch that woke it, and the jobs of what it took find nothing left to do.
    """
    ids = sorted(set(inbound_ids))
    params = {"ids": ids, "now": now, "steal": steal, "limit": max(len(ids), MAX_BATCH if steal else 0)}
    statement = _CLAIM[session.get_bind().dialect.name]
    return sorted(session.scalars(statement, params).all(), key=lambda m: m.id)


# --------------------------------------------------------------------------- decide and answer

def respond(session: Session, settings: Settings, registry: Registry, msg: InboundMessage, parsed: ParsedSMS,
            flood: FloodControl, tracking_number: Callable[[], str]) -> Answer:
    """Decide what ``msg`` means, record it (report, opt-out, response) and say what to answer."""
    short_code = settings.SHORT_CODE
    if parsed.command == "status":
        answer = Answer(status_reply(session, registry, parsed, msg.sender, short_code), "status")
    elif parsed.command == "reply":
        answer = Answer(handle_reply(session, settings, registry, msg, parsed), "reply")
    elif parsed.command == "help":
        if parsed.agency:
            agency = registry.agencies[parsed.agency]
            text = registry.render("help_agency", agency=agency.code, agency_name=agency.name, short_code=short_code)
        else:
            text = registry.render("help", short_code=short_code)
        answer = Answer(text, "help")
    elif parsed.command == "stop":
        if session.get(OptOut, msg.sender) is None:
            session.add(OptOut(recipient=msg.sender))
        answer = Answer(registry.render("stop", short_code=short_code), "stop")  # says how to resume
    elif parsed.command == "start":
        opted_out = session.get(OptOut, msg.sender)
        if opted_out is not None:
            session.delete(opted_out)
        answer = Answer(registry.render("start", short_code=short_code), "start")
    else:
        decision = decide(parsed, registry, msg.received_at)
        if decision.kind == "unknown":
            # Junk (a test, keyboard mash) gets the format; a greeting is asked for the content.
            template = "help" if decision.evidence["junk"] else "unknown"
            answer = Answer(registry.render(template, short_code=short_code), "help")
        else:
            text = original_body(msg.text, parsed.body) or msg.text  # as typed, not NFKC
            ref = flood.repeated_report(msg, text)
            new = ref is None
            if ref is None:
                number = tracking_number()
                ref = ReportRef(number, decision.agency, decision.kind, reports.report_row(
                    tracking_number=number, inbound_id=msg.id, channel=msg.channel, reporter=msg.sender,
                    text=text, kind=decision.kind, agency=decision.agency, confidential=parsed.confidential,
                    anonymous=parsed.anonymous, category=decision.category, special=decision.special,
                    disposition_due=decision.disposition_due, followup_due=decision.followup_due,
                    evidence=decision.evidence, received_at=msg.received_at))
                flood.remember_report(msg, text, ref)
            else:
                flood.repeat(ref, msg.received_at)
            answer = Answer(ack_text(registry, ref, decision.evidence["unknown_code"], short_code), "ack", ref, new)
    if not flood.may_reply(msg):
        msg.no_reply = flood.reason(msg)
        answer.text = None
    return answer


def ack_text(registry: Registry, report: ReportRef, unknown_code: str | None, short_code: str) -> str:
    """The acknowledgement of a report: its tracking number, where it went, and a code the citizen
    wrote that we do not know."""
    values: dict[str, str] = {"tracking": report.tracking_number, "short_code": short_code}
    if unknown_code:
        values["code"] = unknown_code[:UNKNOWN_CODE_MAX]
    if report.agency:
        agency = registry.agencies.get(report.agency)
        values.update(agency=report.agency, agency_name=agency.name if agency else report.agency, kind=report.kind)
        template = "ack_unknown_code" if unknown_code and "ack_unknown_code" in registry.replies else "ack"
    else:
        template = ("ack_unknown_code_central" if unknown_code and "ack_unknown_code_central" in registry.replies
                    else "ack_central")
    return registry.render(template, **values)


def status_reply(session: Session, registry: Registry, parsed: ParsedSMS, sender: str, short_code: str) -> str:
    """The answer to ``CEK <nomor>``: status, agency and date, never the text."""
    number = parsed.tracking
    if number is None:
        return registry.render("status_usage", short_code=short_code)
    if not tracking.is_valid(number):
        return registry.render("status_invalid", tracking=number[:12], short_code=short_code)
    report = reports.find_by_tracking(session, number)
    # A confidential report is "not found" for anybody but its reporter: the
    # answer must not even confirm that it exists.
    if report is None or (report.confidential and report.reporter != sender):
        return registry.render("status_not_found", tracking=number, short_code=short_code)
    updated = reports.last_update(report)
    return registry.render("status", tracking=report.tracking_number, status=report.status,
                           agency=registry.agency_label(report.agency),
                           date=updated.astimezone(JAKARTA).strftime("%d-%m-%Y"), short_code=short_code)


# --------------------------------------------------------------------------- flood control

def same_text(text: str) -> str:
    """The form two texts are compared in: case and spacing do not make a new report."""
    return " ".join(text.casefold().split())


@dataclass
class FloodControl:
    """What the batch's senders did in the last FLOOD_WINDOW, read with three grouped queries.

    A number's n-th message in the window (counting every stored message, the
    batch's included, in order) is over the limit when n > FLOOD_MAX_MESSAGES;
    then, or always for a sender that cannot receive replies, it is answered
    only if nothing was answered to it in the window yet.
    """

    limit: int
    earlier: Counter[str] = field(default_factory=Counter)  # messages before this batch's first
    replied: set[str] = field(default_factory=set)  # numbers answered in the window
    reports_by_text: dict[tuple[str, str], ReportRef] = field(default_factory=dict)
    ordinal: dict[int, int] = field(default_factory=dict)  # inbound id -> its number in the window
    repeats: dict[str, tuple[int, datetime]] = field(default_factory=dict)  # tracking -> (count, last)

    @classmethod
    def load(cls, session: Session, settings: Settings, messages: list[InboundMessage],
             now: datetime) -> FloodControl:
        """Read the window's counts, replies and reports for the senders of ``messages``."""
        since = now - timedelta(seconds=settings.FLOOD_WINDOW)
        flood = cls(limit=int(settings.FLOOD_MAX_MESSAGES))
        senders = sorted({m.sender for m in messages})
        first = min(m.id for m in messages)
        flood.earlier.update(dict(session.execute(
            select(InboundMessage.sender, func.count()).where(
                InboundMessage.sender.in_(senders), InboundMessage.received_at >= since,
                InboundMessage.id < first).group_by(InboundMessage.sender)).all()))
        # Most numbers sent nothing else in the window: nothing more to read for them.
        known = sorted(sender for sender in senders if flood.earlier[sender])
        if known:
            flood.replied.update(session.scalars(
                select(OutboundMessage.recipient).where(
                    OutboundMessage.recipient.in_(known), OutboundMessage.created_at >= since,
                    OutboundMessage.inbound_id.is_not(None)).distinct()))
            for number, agency, kind, reporter, text, sent in session.execute(
                    select(Report.tracking_number, Report.agency, Report.kind, Report.reporter, Report.text,
                           InboundMessage.text).join(InboundMessage, Report.inbound_id == InboundMessage.id)
                    .where(Report.reporter.in_(known), Report.created_at >= since)):
                ref = ReportRef(number, agency, kind)
                flood.reports_by_text.setdefault((reporter, same_text(text)), ref)
                flood.reports_by_text.setdefault((reporter, same_text(sent)), ref)
        seen: Counter[str] = Counter()
        for m in messages:
            seen[m.sender] += 1
            flood.ordinal[m.id] = flood.earlier[m.sender] + seen[m.sender]
        return flood

    def repeated_report(self, msg: InboundMessage, text: str) -> ReportRef | None:
        """The report this number made with the same text within the window, if any."""
        return self.reports_by_text.get((msg.sender, same_text(text)))

    def remember_report(self, msg: InboundMessage, text: str, report: ReportRef) -> None:
        """A report made by this batch counts for the messages after it."""
        self.reports_by_text.setdefault((msg.sender, same_text(text)), report)

    def repeat(self, report: ReportRef, at: datetime) -> None:
        """Count one more copy of ``report``'s text."""
        count, _last = self.repeats.get(report.tracking_number, (0, at))
        self.repeats[report.tracking_number] = (count + 1, at)

    def store_repeats(self, session: Session) -> None:
        """Add the batch's repeats to their reports (after the batch's new reports are inserted)."""
        for number, (count, last) in self.repeats.items():
            session.execute(update(Report).where(Report.tracking_number == number)
                            .values(repeats=Report.repeats + count, last_repeat_at=last)
                            .execution_options(synchronize_session=False))

    def reason(self, msg: InboundMessage) -> str | None:
        """Why ``msg`` falls under flood control (None: it does not)."""
        if not phone.can_receive_replies(msg.sender):
            return UNREPLYABLE
        if self.ordinal.get(msg.id, 0) > self.limit:
            return FLOOD
        return None

    def may_reply(self, msg: InboundMessage) -> bool:
        """Whether ``msg`` is answered; answering it uses the window's one reply when it is limited."""
        if self.reason(msg) is not None and msg.sender in self.replied:
            return False
        self.replied.add(msg.sender)
        return True


def throttled_senders(session: Session, settings: Settings, now: datetime | None = None) -> list[dict[str, Any]]:
    """Numbers under flood control in the current window (over FLOOD_MAX_MESSAGES, or with
    messages left unanswered), busiest first: the operators' view."""
    since = (now or utcnow()) - timedelta(seconds=settings.FLOOD_WINDOW)
    unanswered = func.count(InboundMessage.no_reply)
    rows = session.execute(
        select(InboundMessage.sender, func.count(), unanswered, func.max(InboundMessage.received_at))
        .where(InboundMessage.received_at >= since)
        .group_by(InboundMessage.sender)
        .having((func.count() > settings.FLOOD_MAX_MESSAGES) | (unanswered > 0))
        .order_by(func.count().desc()).limit(100)).all()
    return [{"number": sender, "messages": count, "unanswered": quiet, "last": last}
            for sender, count, quiet, last in rows]
