"""What agencies do to a report: change its status, dispose it, answer the reporter.

Every action adds a ``ReportEvent`` (the history), keeps the deadline columns
up to date, and, when the reporter should know, queues an SMS on the channel
the report came in on. A disposition also records the report's text and its
new agency as a labelled example (``rules/examples.py``): every caller — the
API, the workspace, the central desk — feeds the rules' evaluation. Nothing here commits: the caller commits, then calls
``send`` so the SMS job finds its row (commit before enqueue).
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import deadlines, gsm, outbox
from ..channels import reply_channel
from ..config import Settings
from ..models import OptOut, OutboundMessage, Report, ReportEvent, utcnow
from ..registry import Registry
from ..rules import examples
from . import push, views
from .scope import Principal, units
from .statuses import (
    ARCHIVED,
    CLOSED,
    DISPOSABLE,
    DISPOSED,
    DONE,
    FOLLOWED_UP,
    MEETS_DISPOSITION,
    NEEDS_AGENCY,
    RECEIVED,
    STATUSES,
    TRANSITIONS,
)

# Status changes the reporter hears about, and the reply template that says so.
# diverifikasi is internal; a return to the central queue is the gateway's business.
NOTIFY_TEMPLATE = {
    DISPOSED: "notify_disposed",
    FOLLOWED_UP: "notify_followup",
    DONE: "notify_done",
    ARCHIVED: "notify_archived",
}
ANSWER_MODES = ("split", "shorten")
ANSWER_MAX_CHARS = 5000  # input of a shortened answer; a split one is bounded by ANSWER_MAX_SEGMENTS
POINTER_MAX_CHARS = 60
OPTED_OUT = "opted_out"


class LifecycleError(Exception):
    """An action refused: ``status`` is the HTTP status (400 malformed, 422 not allowed), ``reason`` why.

    ``key`` and ``params`` name the refusal for pages that say it in the
    user's language (sms_gateway/workspace/messages.py); ``reason`` is the API's English.
    """

    def __init__(self, http_status: int, reason: str, key: str = "", **params: object) -> None:
        super().__init__(reason)
        self.status = http_status
        self.reason = reason
        self.key = key
        self.params = params


@dataclass
class Outcome:
    """What an action did: its history entry and the SMS to the reporter, if any."""

    event: ReportEvent
    sms: OutboundMessage | None = None
    sms_skipped: str | None = None  # opted_out: the reporter sent BERHENTI/STOP


def send(settings: Settings, outcome: Outcome) -> None:
    """After commit: wake the sender of the SMS of ``outcome`` (it finds the row anyway within a second)."""
    if outcome.sms is not None:
        outbox.dispatch(settings, [outcome.sms])


def clean_note(settings: Settings, note: object, *, required: bool = False, what: str = "note") -> str | None:
    """A note as stored: stripped, at most API_NOTE_MAX_LENGTH characters."""
    if note is None or (isinstance(note, str) and not note.strip()):
        if required:
            raise LifecycleError(400, f"{what} is required", "required", what=what)
        return None
    if not isinstance(note, str):
        raise LifecycleError(400, f"{what} must be a string")
    note = note.strip()
    if len(note) > settings.API_NOTE_MAX_LENGTH:
        raise LifecycleError(422, f"{what} is {len(note)} characters long; the limit is "
                             f"{settings.API_NOTE_MAX_LENGTH}", "too_long", what=what, length=len(note),
                             limit=settings.API_NOTE_MAX_LENGTH)
    return note


# --------------------------------------------------------------------------- status

def change_status(session: Session, settings: Settings, registry: Registry, report: Report, status: str, *,
                  note: str | None, actor: str, now: datetime | None = None) -> Outcome:
    """Move ``report`` to ``status`` if the transition table allows it."""
    now = now or utcnow()
    if status not in STATUSES:
        raise LifecycleError(422, f"unknown status {status!r} (expected one of {', '.join(STATUSES[1:])})",
                             "unknown_status", status=status)
    if status == RECEIVED:
        raise LifecycleError(422, "diterima is the status of a new report; to give a report back to the "
                             "central queue, POST …/disposition with return_to_central", "status_received")
    allowed = TRANSITIONS[report.status]
    if status not in allowed:
        options = ", ".join(s for s in STATUSES if s in allowed) or "none, it is final"
        raise LifecycleError(422, f"a report that is {report.status} cannot become {status} "
                             f"(allowed: {options})", "transition", current=report.status, status=status)
    if status in NEEDS_AGENCY and report.agency is None:
        raise LifecycleError(422, f"the report is in the central queue: dispose it to an agency "
                             f"(POST …/disposition) before it can become {status}", "needs_agency", status=status)
    _apply(settings, report, status, now)
    event = _event(session, report, status, "status", note, actor, now)
    return notify_reporter(session, settings, registry, report, event, NOTIFY_TEMPLATE.get(status))


def _apply(settings: Settings, report: Report, status: str, now: datetime) -> None:
    report.status = status
    report.updated_at = now
    if status in MEETS_DISPOSITION and report.agency is not None and report.disposed_at is None:
        report.disposed_at = now
    if status == FOLLOWED_UP:
        _open_response_window(settings, report, now)
    if status in CLOSED:
        report.closed_at = now


def _open_response_window(settings: Settings, report: Report, now: datetime) -> None:
    # The reporter may answer (BALAS) until RESPONSE_WINDOW_DAYS working days
    # after the latest follow-up; without an answer the report then closes itself.
    if report.followed_up_at is None:
        report.followed_up_at = now
    report.last_followup_at = now
    report.response_due = deadlines.add_working_days(now, settings.RESPONSE_WINDOW_DAYS)


def _event(session: Session, report: Report, status: str, action: str, note: str | None, actor: str,
           now: datetime) -> ReportEvent:
    event = ReportEvent(status=status, action=action, note=note, actor=actor, agency=report.agency,
                        created_at=now)
    report.events.append(event)
    session.flush()
    return event


# --------------------------------------------------------------------------- disposition

def dispose(session: Session, settings: Settings, registry: Registry, principal: Principal, report: Report,
            to: str, *, note: str | None, now: datetime | None = None) -> Outcome:
    """Give the report to agency ``to``: the admin to any agency, an agency to one of its units."""
    now = now or utcnow()
    if to not in registry.agencies:
        raise LifecycleError(422, f"unknown agency {to!r}", "unknown_agency", agency=to)
    if report.status not in DISPOSABLE:
        raise LifecycleError(422, f"a report that is {report.status} cannot be disposed any more",
                             "not_disposable", current=report.status)
    if to == report.agency:
        raise LifecycleError(422, f"the report is already at {to}", "already_at", agency=to)
    if not principal.admin:
        assert principal.code is not None
        mine = units(registry, principal.code)
        if to not in mine:
            own = ", ".join(sorted(mine - {principal.code})) or "none"
            raise LifecycleError(422, f"{principal.code} can dispose only to its units ({own}); a report "
                                 "that is not yours goes back to the central queue (return_to_central)",
                                 "not_a_unit", agency=to, units=own)
    previous = report.agency
    report.agency = to
    # A person chose the agency: the text becomes a labelled example the rules are measured on.
    examples.record(session, report, to, previous=previous, actor=principal.actor, now=now)
    _apply(settings, report, DISPOSED, now)
    event = _event(session, report, DISPOSED, "disposition", note, principal.actor, now)
    outcome = notify_reporter(session, settings, registry, report, event, NOTIFY_TEMPLATE[DISPOSED])
    push.queue_delivery(session, settings, registry, key=f"report.disposed:{report.id}:{event.id}",
                        recipient=to, kind=push.AGENCY, event_name="report.disposed",
                        payload=lambda: {"report": views.detail(session, report, registry, views.as_agency(to),
                                                                 deadlines.local_date(now))},
                        report_id=report.id)
    return outcome


def return_to_central(session: Session, settings: Settings, registry: Registry, principal: Principal,
                      report: Report, *, reason: str, now: datetime | None = None) -> Outcome:
    """"Bukan wewenang": an agency gives the report back to the central queue, saying why."""
    now = now or utcnow()
    if principal.admin:
        raise LifecycleError(422, "the central admin disposes a report with \"to\": an agency code",
                             "central_cannot_return")
    if report.status not in DISPOSABLE:
        raise LifecycleError(422, f"a report that is {report.status} cannot be returned to the central queue",
                             "not_returnable", current=report.status)
    report.agency = None
    report.disposed_at = None  # the disposition deadline runs again, now for the central admin
    report.status = RECEIVED
    report.updated_at = now
    event = _event(session, report, RECEIVED, "return", f"bukan wewenang: {reason}", principal.actor, now)
    return Outcome(event)


# --------------------------------------------------------------------------- answers

def answer(session: Session, settings: Settings, registry: Registry, report: Report, *, text: object,
           mode: object = "split", pointer: object = None, actor: str, idempotency_key: str | None = None,
           now: datetime | None = None) -> Outcome:
    """Answer the reporter by SMS: whole (in as many parts as needed) or shortened with a pointer.

    The answer is kept in the history. While the report is ditindaklanjuti it
    counts as a further follow-up: the reporter's window to answer restarts.
    """
    now = now or utcnow()
    if not isinstance(text, str) or not text.strip():
        raise LifecycleError(400, "text is required: the answer to send to the reporter", "required", what="text")
    text = " ".join(text.split())
    if mode not in ANSWER_MODES:
        raise LifecycleError(400, f"mode must be one of {', '.join(ANSWER_MODES)}")
    header = registry.render("answer_header", tracking=report.tracking_number,
                             agency=registry.agency_label(report.agency))
    if mode == "split":
        sms_text = f"{header} {text}"
        parts = gsm.measure(sms_text).segments
        if parts > settings.ANSWER_MAX_SEGMENTS:
            raise LifecycleError(422, f"the answer takes {parts} SMS parts, more than {settings.ANSWER_MAX_SEGMENTS}: "
                                 "shorten it, or send it with \"mode\": \"shorten\" and a pointer to the full text",
                                 "too_many_parts", parts=parts, limit=settings.ANSWER_MAX_SEGMENTS)
    else:
        if len(text) > ANSWER_MAX_CHARS:
            raise LifecycleError(422, f"text is {len(text)} characters long; the limit is {ANSWER_MAX_CHARS}",
                                 "too_long", what="text", length=len(text), limit=ANSWER_MAX_CHARS)
        if pointer is None:
            pointer_text = registry.render("answer_pointer", tracking=report.tracking_number,
                                           short_code=settings.SHORT_CODE)
        elif not isinstance(pointer, str) or not pointer.strip():
            raise LifecycleError(400, "pointer must be a non-empty string (where the full answer is)")
        else:
            pointer_text = pointer.strip()
            if len(pointer_text) > POINTER_MAX_CHARS or not gsm.is_gsm7(pointer_text):
                raise LifecycleError(422, f"pointer must be at most {POINTER_MAX_CHARS} GSM-7 characters "
                                     "(letters, digits, basic punctuation), e.g. a short URL", "bad_pointer",
                                     limit=POINTER_MAX_CHARS)
        sms_text = shorten(header, text, pointer_text)
    if report.status == FOLLOWED_UP:
        _open_response_window(settings, report, now)
    report.updated_at = now
    event = _event(session, report, report.status, "answer", text, actor, now)
    key = _answer_key(report, idempotency_key) if idempotency_key else f"answer:{report.id}:{event.id}"
    return _to_reporter(session, settings, report, event, key, sms_text, "answer")


def existing_answer(session: Session, report: Report, idempotency_key: str) -> OutboundMessage | None:
    """The SMS already queued for this ``Idempotency-Key`` (a retried request), if any."""
    key = _answer_key(report, idempotency_key)
    return session.scalar(select(OutboundMessage).where(OutboundMessage.idempotency_key == key))


def _answer_key(report: Report, idempotency_key: str) -> str:
    return f"answer:{report.id}:key:{hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]}"


# Punctuation phones type that GSM-7 lacks; anything else outside GSM-7 is dropped
# from a shortened answer, which is only a teaser for the full text.
_GSM_FRIENDLY = str.maketrans({"‘": "'", "’": "'", "‚": "'", "“": '"', "”": '"', "„": '"', "–": "-", "—": "-",
                               "…": "...", "\u00a0": " ", "•": "-"})


def shorten(header: str, text: str, pointer: str) -> str:
    """One GSM-7 SMS: header, as much of the text as fits, and the pointer to the full answer."""
    teaser = unicodedata.normalize("NFKD", text.translate(_GSM_FRIENDLY))
    teaser = "".join(c for c in teaser if gsm.is_gsm7(c))
    teaser = " ".join(teaser.split())
    return gsm.fit_one_segment(f"{header} {teaser}", f" {pointer}")


# --------------------------------------------------------------------------- notifications

def notify_values(settings: Settings, registry: Registry, report: Report) -> dict[str, str]:
    """Placeholder values of the reporter's notifications."""
    return {
        "tracking": report.tracking_number,
        "agency": registry.agency_label(report.agency),
        "short_code": settings.SHORT_CODE,
        "date": report.response_due.strftime("%d-%m-%Y") if report.response_due else "",
        "days": str(settings.RESPONSE_WINDOW_DAYS),
    }


def notify_reporter(session: Session, settings: Settings, registry: Registry, report: Report, event: ReportEvent,
                    template: str | None) -> Outcome:
    """Queue the ``template`` SMS about ``event`` to the reporter, unless they opted out."""
    if template is None:
        return Outcome(event)
    text = registry.render(template, **notify_values(settings, registry, report))
    return _to_reporter(session, settings, report, event, f"notify:{report.id}:{event.id}", text, "notify")


def _to_reporter(session: Session, settings: Settings, report: Report, event: ReportEvent, key: str,
                 text: str, purpose: str) -> Outcome:
    if session.get(OptOut, report.reporter) is not None:
        return Outcome(event, sms_skipped=OPTED_OUT)
    sms = outbox.queue_reply(session, key=key, channel=reply_channel(report.channel, settings),
                           recipient=report.reporter, text=text, purpose=purpose, report_id=report.id)
    return Outcome(event, sms=sms)


def announce_new_report(session: Session, settings: Settings, registry: Registry, report: Report) -> None:
    """Push a new report to its agency's webhook, if it has one (in the report's transaction)."""
    agency = report.agency
    if agency is None:
        return
    push.queue_delivery(session, settings, registry, key=f"report.created:{report.id}", recipient=agency,
                        kind=push.AGENCY, event_name="report.created", report_id=report.id,
                        payload=lambda: {"report": views.detail(session, report, registry, views.as_agency(agency),
                                                                deadlines.local_date(report.created_at))})

