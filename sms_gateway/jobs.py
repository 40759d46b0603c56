"""Every RQ job of the gateway. Jobs take ids, read the database, and can run twice.

- ``process_inbound(id)``: parse a stored SMS, create its report (or answer the
  command), create the reply row, commit, enqueue the send. A second run finds
  the message processed and only re-enqueues a reply that is still waiting.
- ``process_inbound_batch(ids)``: the same for the messages one ingest batch
  stored together; a message that fails is handed to its own job.
- ``send_outbound(id)``: claim the reply (queued → sending) in one UPDATE, so
  two runs cannot both send; hand it to its channel; record the outcome.
  Temporary failures raise so RQ retries with backoff; permanent ones mark the
  row failed with the provider's reason.
- ``sweep()``: periodic; re-enqueues what a crash between commit and enqueue
  left behind (not what is merely waiting in a backlog), and surfaces sends
  interrupted mid-call.

Failures are never swallowed: a job that cannot do its work raises, RQ keeps it
in the failed registry, and the row's state tells the operator what happened.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import gsm, phone, queue, reports, tracking
from .channels import reply_channel
from .channels.base import OutgoingSMS, SendError, get_channel
from .config import Settings, get_settings
from .db import session_factory
from .decision import decide
from .models import (
    OUTBOUND_RANK,
    InboundMessage,
    InboundState,
    OptOut,
    OutboundMessage,
    OutboundState,
    Report,
    utcnow,
)
from .parsing import ParsedSMS, original_body, parse
from .registry import UNKNOWN_CODE_MAX, Registry, RegistryHolder

log = logging.getLogger(__name__)

_HOLDERS: dict[str, RegistryHolder] = {}


_CHECKED_VERSIONS: dict[tuple[str, str], str] = {}


def registry_for(settings: Settings) -> Registry:
    """The registry in force for this process (re-read when the file changes)."""
    path = str(settings.PREFIXES_FILE)
    holder = _HOLDERS.get(path)
    if holder is None:
        holder = _HOLDERS[path] = RegistryHolder(path)
    registry = holder.get()
    key = (path, str(settings.DATABASE_URL))
    if _CHECKED_VERSIONS.get(key) != registry.version:  # loaded or reloaded: do reports hold dropped codes?
        _CHECKED_VERSIONS[key] = registry.version
        _warn_orphaned_codes(settings, registry)
    return registry


def _warn_orphaned_codes(settings: Settings, registry: Registry) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from .agencies import codes

    try:
        with session_factory(settings.DATABASE_URL)() as session:
            found = codes.orphaned(session, registry)
    except SQLAlchemyError as exc:  # a warning's own check must not stop the job that reloaded
        log.warning("could not check reports for agency codes dropped from %s: %s", registry.path,
                    str(exc).splitlines()[0])
        return
    for line in codes.describe(found):
        log.warning("%s: %s", registry.path, line)


# --------------------------------------------------------------------------- enqueueing

def enqueue_processing(settings: Settings, inbound_ids: list[int]) -> bool:
    """Enqueue processing of committed messages: a lone message as its own
    ``process_inbound`` job (``inbound-<id>``), messages stored together as one
    ``process_inbound_batch`` job. False (logged) when Redis is down: the sweeper retries."""
    try:
        if len(inbound_ids) == 1:
            queue.enqueue(settings, queue.INBOUND, process_inbound, inbound_ids[0],
                          job_id=f"inbound-{inbound_ids[0]}")
        else:
            queue.enqueue(settings, queue.INBOUND, process_inbound_batch, inbound_ids,
                          job_id=f"inbound-batch-{inbound_ids[0]}")
    except Exception:
        log.exception("could not enqueue inbound %s; the sweeper will retry", inbound_ids)
        return False
    return True


def enqueue_send(settings: Settings, outbound: OutboundMessage) -> bool:
    """Enqueue ``send_outbound`` on its channel's queue; False when Redis is down."""
    try:
        channel_queue = get_channel(outbound.channel, settings).queue
        queue.enqueue(settings, channel_queue, send_outbound, outbound.id,
                      job_id=f"outbound-{outbound.id}-{outbound.attempts}")
    except Exception:
        log.exception("could not enqueue outbound #%s; the sweeper will retry", outbound.id)
        return False
    return True


# --------------------------------------------------------------------------- replies

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
) -> OutboundMessage:
    """Add an outbound SMS unless one with ``key`` exists (then return that one)."""
    existing = session.scalar(select(OutboundMessage).where(OutboundMessage.idempotency_key == key))
    if existing is not None:
        return existing
    row = OutboundMessage(
        idempotency_key=key,
        channel=channel,
        recipient=recipient,
        text=text,
        purpose=purpose,
        inbound_id=inbound_id,
        report_id=report_id,
        state=OutboundState.QUEUED,
        segments=gsm.measure(text).segments,
    )
    session.add(row)
    session.flush()
    return row


def _status_reply(session: Session, registry: Registry, parsed: ParsedSMS,
                  sender: str, short_code: str) -> str:
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
    return registry.render(
        "status",
        tracking=report.tracking_number,
        status=report.status,
        agency=registry.agency_label(report.agency),
        date=updated.astimezone(_jakarta()).strftime("%d-%m-%Y"),
        short_code=short_code,
    )


def _ack(registry: Registry, report: Report, unknown_code: str | None, short_code: str) -> str:
    """The acknowledgement of a new report; it names a code the citizen wrote that we do not know."""
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


def _jakarta() -> Any:
    from .deadlines import JAKARTA

    return JAKARTA


# --------------------------------------------------------------------------- jobs

def process_inbound(inbound_id: int) -> str:
    """Parse stored SMS ``inbound_id``, create its report or answer, and queue the reply."""
    settings = get_settings()
    try:
        return _process_inbound(settings, inbound_id)
    except Exception as exc:
        # Leave a trace an operator sees in `sms-gateway messages`, then let RQ retry.
        with session_factory(settings.DATABASE_URL)() as session:
            session.execute(update(InboundMessage).where(
                InboundMessage.id == inbound_id, InboundMessage.state == InboundState.RECEIVED,
            ).values(error=f"{type(exc).__name__}: {exc}"[:2000]))
            session.commit()
        raise


def process_inbound_batch(inbound_ids: list[int]) -> dict[str, int]:
    """``process_inbound`` for each message an ingest batch stored together.

    A message that raises gets its own ``process_inbound`` job, with the usual
    retries, and the batch goes on: one bad message neither blocks nor repeats
    its neighbours. If even that enqueue fails, the message stays ``received``
    and the sweeper picks it up.
    """
    settings = get_settings()
    outcomes: dict[str, int] = {}
    for inbound_id in inbound_ids:
        try:
            outcome = process_inbound(inbound_id)
        except Exception:
            log.exception("inbound #%s failed in a batch; retrying it on its own", inbound_id)
            outcome = "retrying" if enqueue_processing(settings, [inbound_id]) else "left for the sweeper"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def _process_inbound(settings: Settings, inbound_id: int) -> str:
    sessions = session_factory(settings.DATABASE_URL)
    with sessions() as session:
        msg = session.get(InboundMessage, inbound_id)
        if msg is None:
            # Enqueued only after commit, so a missing row means it was deleted.
            log.warning("inbound #%s no longer exists", inbound_id)
            return "missing"
        if msg.state == InboundState.PROCESSED:
            pending = [r for r in msg.replies if r.state == OutboundState.QUEUED]
            for reply in pending:
                enqueue_send(settings, reply)
            return "already processed"

        registry = registry_for(settings)
        parsed = parse(msg.text, registry)
        short_code = settings.SHORT_CODE
        out_channel = reply_channel(msg.channel, settings)
        report: Report | None = None

        if parsed.command == "status":
            text, purpose = _status_reply(session, registry, parsed, msg.sender, short_code), "status"
        elif parsed.command == "reply":
            from .agencies.citizen import handle_reply

            text, purpose = handle_reply(session, settings, registry, msg, parsed), "reply"
        elif parsed.command == "help":
            if parsed.agency:
                agency = registry.agencies[parsed.agency]
                text = registry.render("help_agency", agency=agency.code, agency_name=agency.name,
                                       short_code=short_code)
            else:
                text = registry.render("help", short_code=short_code)
            purpose = "help"
        elif parsed.command == "stop":
            if session.get(OptOut, msg.sender) is None:
                session.add(OptOut(recipient=msg.sender))
            text, purpose = registry.render("stop", short_code=short_code), "stop"  # says how to resume
        elif parsed.command == "start":
            opted_out = session.get(OptOut, msg.sender)
            if opted_out is not None:
                session.delete(opted_out)
            text, purpose = registry.render("start", short_code=short_code), "start"
        else:
            decision = decide(parsed, registry, msg.received_at)
            if decision.kind == "unknown":
                # Junk (a test, keyboard mash) gets the format; a greeting is asked for the content.
                template = "help" if decision.evidence["junk"] else "unknown"
                text, purpose = registry.render(template, short_code=short_code), "help"
            else:
                report = reports.create_report(
                    session,
                    inbound_id=msg.id,
                    channel=msg.channel,
                    reporter=msg.sender,
                    text=original_body(msg.text, parsed.body) or msg.text,  # as typed, not NFKC
                    kind=decision.kind,
                    agency=decision.agency,
                    confidential=parsed.confidential,
                    anonymous=parsed.anonymous,
                    category=decision.category,
                    special=decision.special,
                    disposition_due=decision.disposition_due,
                    followup_due=decision.followup_due,
                    evidence=decision.evidence,
                    received_at=msg.received_at,
                )
                from .agencies.lifecycle import announce_new_report

                announce_new_report(session, settings, registry, report)  # webhook, sent after commit
                text, purpose = _ack(registry, report, decision.evidence["unknown_code"], short_code), "ack"

        reply = queue_reply(
            session,
            key=f"reply:{msg.id}",
            channel=out_channel,
            recipient=msg.sender,
            text=text,
            purpose=purpose,
            inbound_id=msg.id,
            report_id=report.id if report else None,
        )
        msg.parsed = parsed.to_dict()
        msg.state = InboundState.PROCESSED
        msg.processed_at = utcnow()
        msg.error = None
        session.commit()
        log.info("inbound #%s from %s: %s%s", msg.id, phone.mask(msg.sender), purpose,
                 f" report {report.tracking_number} -> {report.agency or 'central'}" if report else "")
        enqueue_send(settings, reply)
        return purpose


def send_outbound(outbound_id: int) -> str:
    """Send reply ``outbound_id`` once, whatever the number of runs."""
    settings = get_settings()
    sessions = session_factory(settings.DATABASE_URL)
    with sessions() as session:
        claimed = session.execute(  # type: ignore[attr-defined]
            update(OutboundMessage)
            .where(OutboundMessage.id == outbound_id, OutboundMessage.state == OutboundState.QUEUED)
            .values(state=OutboundState.SENDING, attempts=OutboundMessage.attempts + 1,
                    updated_at=utcnow())
        ).rowcount
        session.commit()
        if not claimed:
            return "not queued"  # sent, being sent, or failed: nothing to do
        row = session.get(OutboundMessage, outbound_id)
        assert row is not None
        sms = OutgoingSMS(outbound_id=row.id, recipient=row.recipient, text=row.text)
        try:
            channel = get_channel(row.channel, settings)
            result = channel.send(sms)
        except SendError as exc:
            final = not exc.retryable or row.attempts >= settings.SEND_MAX_ATTEMPTS
            row.state = OutboundState.FAILED if final else OutboundState.QUEUED
            row.error, row.error_code = exc.reason, exc.code
            session.commit()
            log.warning("send #%s to %s failed (%s, attempt %s): %s", row.id, phone.mask(row.recipient),
                        "final" if final else "will retry", row.attempts, exc.reason)
            if final:
                return "failed"
            raise
        except Exception as exc:
            # An unexpected error (a bug, an unwrapped network error): keep the
            # message retryable and let RQ record the traceback.
            row.state = OutboundState.QUEUED
            row.error, row.error_code = f"{type(exc).__name__}: {exc}", "exception"
            session.commit()
            raise
        # A status callback may have raced ahead of us (Kannel's DLRs arrive
        # within milliseconds of sendsms' answer). The state moves forward only
        # through this UPDATE's WHERE, which also locks the row until our commit,
        # so a "delivered" committed after our read is never overwritten by "sent".
        behind = [state for state, rank in OUTBOUND_RANK.items() if rank < OUTBOUND_RANK[result.status]]
        session.execute(update(OutboundMessage)
                        .where(OutboundMessage.id == row.id, OutboundMessage.state.in_(behind))
                        .values(state=result.status))
        session.refresh(row)
        row.provider_id = result.provider_id
        row.sent_at = utcnow()
        if row.state not in (OutboundState.FAILED, OutboundState.UNDELIVERED):
            row.error = row.error_code = None  # a failure report that raced ahead keeps its reason
        if result.segments:
            row.segments = result.segments
        if row.state == OutboundState.DELIVERED and row.delivered_at is None:
            row.delivered_at = utcnow()
        session.commit()
        log.info("sent #%s to %s via %s (%s)", row.id, phone.mask(row.recipient), row.channel,
                 result.provider_id)
        return row.state


def record_delivery_status(
    session: Session,
    outbound_id: int,
    new_state: str,
    raw_status: str,
    error_code: str | None = None,
    error: str | None = None,
    provider_id: str | None = None,
) -> bool:
    """Apply a provider's delivery report; never moves a message backwards. True if it moved."""
    row = session.get(OutboundMessage, outbound_id, with_for_update=True)
    if row is None:
        return False
    if provider_id and row.provider_id and provider_id != row.provider_id:
        return False
    rank = OUTBOUND_RANK.get(new_state, -1)
    if rank <= OUTBOUND_RANK[row.state]:
        if new_state != row.state:
            return False  # a late report ("sent" after "delivered") changes nothing, not even the raw status
        # The same state again: only the provider's words are news. Conditional on the
        # state, like the move below: on SQLite (no FOR UPDATE) a report that moved the
        # message on since our read ("delivered" over this "sent") keeps its words.
        same: dict[str, Any] = {"provider_status": raw_status}
        if error_code:
            same["error_code"], same["error"] = error_code, error or row.error
        session.execute(update(OutboundMessage).where(OutboundMessage.id == outbound_id,
                                                      OutboundMessage.state == new_state)
                        .values(**same).execution_options(synchronize_session=False))
        session.expire(row)
        return False
    values: dict[str, Any] = {"state": new_state, "provider_status": raw_status}
    if provider_id and not row.provider_id:
        values["provider_id"] = provider_id
    if error_code:
        values["error_code"], values["error"] = error_code, error or row.error
    if new_state == OutboundState.DELIVERED:
        values["delivered_at"] = utcnow()
    if new_state == OutboundState.SENT and row.sent_at is None:
        values["sent_at"] = utcnow()
    # The move is conditional on the state still being behind: SQLite ignores
    # FOR UPDATE, so another report may have committed since the read above.
    behind = [state for state, r in OUTBOUND_RANK.items() if r < rank]
    moved = session.execute(  # type: ignore[attr-defined]
        update(OutboundMessage).where(OutboundMessage.id == outbound_id, OutboundMessage.state.in_(behind))
        .values(**values).execution_options(synchronize_session=False)
    ).rowcount
    session.expire(row)  # whatever happened, the database has the truth
    return bool(moved)


def retry_outbound(settings: Settings, outbound_id: int) -> bool:
    """Operator action: put a failed (or undelivered) SMS back in the queue and enqueue it."""
    sessions = session_factory(settings.DATABASE_URL)
    with sessions() as session:
        row = session.get(OutboundMessage, outbound_id)
        if row is None or row.state not in (OutboundState.FAILED, OutboundState.UNDELIVERED):
            return False
        row.state = OutboundState.QUEUED
        row.attempts = 0
        session.commit()
        return enqueue_send(settings, row)


def sweep() -> dict[str, int]:
    """Re-enqueue work a crash left behind; surface sends interrupted mid-call."""
    settings = get_settings()
    sessions = session_factory(settings.DATABASE_URL)
    now = utcnow()
    grace = timedelta(seconds=settings.SWEEP_GRACE)
    # A reply waiting for an RQ retry is not lost: leave it the longest backoff.
    retry_wait = timedelta(seconds=max(settings.retry_intervals or [0]))
    counts = {"inbound": 0, "outbound": 0, "interrupted": 0}
    # During a backlog the messages behind the oldest waiting job are still
    # queued, not lost: re-enqueueing them would only add work to the backlog.
    # The queue is first in, first out, so a message received well before that
    # job was enqueued has had its own job taken already (or never had one).
    stale_before = now - grace
    backlog_since = _oldest_waiting(settings, queue.INBOUND)
    if backlog_since is not None:
        stale_before = min(stale_before, backlog_since - grace)
    with sessions() as session:
        stale_in = session.scalars(
            select(InboundMessage.id).where(InboundMessage.state == InboundState.RECEIVED,
                                            InboundMessage.received_at < stale_before).limit(1000)
        ).all()
        for inbound_id in stale_in:
            counts["inbound"] += enqueue_processing(settings, [inbound_id])
        stale_out = session.scalars(
            select(OutboundMessage).where(OutboundMessage.state == OutboundState.QUEUED,
                                          OutboundMessage.updated_at < now - grace - retry_wait)
            .limit(1000)
        ).all()
        for row in stale_out:
            row.updated_at = now  # do not pick it again at the next sweep
            counts["outbound"] += 1
        session.commit()
        for row in stale_out:
            enqueue_send(settings, row)
        # "sending" for this long means the worker died during the provider
        # call: the SMS may or may not have left. Sending again could double
        # it, so it is marked failed, visible, for an operator to retry.
        interrupted = session.execute(  # type: ignore[attr-defined]
            update(OutboundMessage)
            .where(OutboundMessage.state == OutboundState.SENDING,
                   OutboundMessage.updated_at < now - grace - timedelta(seconds=settings.SEND_TIMEOUT))
            .values(state=OutboundState.FAILED, error_code="interrupted",
                    error="worker stopped during the send; outcome unknown "
                          "(retry with `sms-gateway messages retry ID`)")
        ).rowcount
        session.commit()
        counts["interrupted"] = interrupted
    if any(counts.values()):
        log.warning("sweep: re-enqueued %(inbound)s inbound, %(outbound)s outbound; "
                    "%(interrupted)s interrupted sends marked failed", counts)
    return counts


def _oldest_waiting(settings: Settings, queue_name: str) -> datetime | None:
    """When the job at the head of ``queue_name`` was enqueued; None when the queue is empty."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    rq_queue = queue.get_queue(settings, queue_name)
    for job_id in rq_queue.get_job_ids(0, 10):
        try:
            enqueued_at = Job.fetch(job_id, connection=rq_queue.connection).enqueued_at
        except NoSuchJobError:  # taken by a worker since the LRANGE
            continue
        if enqueued_at is not None:
            return enqueued_at
    return None


# Periodic jobs run by `sms-gateway scheduler` (RQ's CronScheduler): (function, seconds).
def periodic_jobs(settings: Settings) -> list[tuple[Any, int]]:
    """Jobs the scheduler enqueues at intervals."""
    from .agencies.citizen import close_unanswered
    from .agencies.escalation import run_escalations
    from .agencies.push import sweep_deliveries

    return [(sweep, settings.SWEEP_INTERVAL), (sweep_deliveries, settings.SWEEP_INTERVAL),
            (run_escalations, settings.ESCALATION_INTERVAL), (close_unanswered, settings.ESCALATION_INTERVAL)]
