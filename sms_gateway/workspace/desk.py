"""The disposition desk: route by hand what the rules could not, one key per report, with undo.

Who: a central admin (the central queue, which also holds every report an
agency gave back as *bukan wewenang*) and the admin of an agency with units, a
city's disposition admin (reports addressed to the city and not yet given to
one of its units). Everyone else gets a 404. A unit's *bukan wewenang* goes to
the central queue, as in the API, so it shows on the central desk.

Each row explains why the rules engine did not decide (the reason, the scores,
the words that matched), from the evidence stored with the report at decision
time; a report without it (made before the evidence was kept, or routed by a
prefix) is explained by the current rules, and the page says so. The best
guesses become keys 1–3.

Undo: a disposition is applied at once through ``lifecycle.dispose`` (the
API's function: history, deadlines, labelled example), but what it tells the
outside world is held for ``UNDO_SECONDS``: the reporter's SMS waits in the
outbox (``next_attempt_at``), the agency's webhook is scheduled for then. An
undo inside the window cancels both (conditionally on their still waiting, so
it races safely with the sender), deletes the labelled example, restores the
report's agency and status, and appends an ``undo`` event: nobody outside ever
heard of the disposition. After the window the undo is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, select, update
from sqlalchemy.orm import Session

from ..agencies import lifecycle, push
from ..agencies.scope import units
from ..agencies.statuses import DISPOSABLE, RECEIVED
from ..config import Settings
from ..models import (
    LabelledExample,
    OutboundMessage,
    OutboundState,
    Report,
    ReportEvent,
    WebhookDelivery,
    utcnow,
)
from ..registry import Registry
from ..rules import engine_for
from .access import AGENCY_ADMIN, Viewer, principal_for
from .inbox import Clock, clock

UNDO_SECONDS = 10
GUESSES = 3
PAGE_SIZE = 100
UNDO_ACTION = "undo"


def now() -> datetime:
    """The desk's clock (tests replace it)."""
    return utcnow()


class UndoRefused(Exception):
    """An undo that cannot be done; ``key`` names why for the page."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


# --------------------------------------------------------------------------- who and what

def desk_units(registry: Registry, viewer: Viewer) -> list[str] | None:
    """The units a city's disposition admin disposes to; None for a central admin; [] for nobody."""
    if viewer.central:
        return None
    if viewer.role == AGENCY_ADMIN and viewer.agency in registry.agencies:
        return sorted(units(registry, viewer.agency) - {viewer.agency})
    return []


def may_use(registry: Registry, viewer: Viewer | None) -> bool:
    """Central admins, and admins of an agency with units."""
    return viewer is not None and (viewer.central or bool(desk_units(registry, viewer)))


def waiting(registry: Registry, viewer: Viewer) -> ColumnElement[bool]:
    """The reports on ``viewer``'s desk (inside the session's scope, which still applies)."""
    if viewer.central:
        return and_(Report.agency.is_(None), Report.status.in_(sorted(DISPOSABLE)))
    return and_(Report.agency == viewer.agency, Report.status.in_(sorted(DISPOSABLE)))


@dataclass(frozen=True)
class Guess:
    """An agency the rules lean to, and the points behind it."""

    agency: str
    score: float
    why: str  # the words, ``terminal, bus``


@dataclass
class Row:
    """One report on the desk, explained."""

    report: Report
    clock: Clock
    rules: dict[str, Any]  # the engine's evidence (Verdict.evidence())
    decided_by: str | None  # prefix, rules, central (None: not stored)
    unknown_code: str | None  # an agency code the citizen typed that nobody has
    recomputed: bool  # explained by the current rules, not the stored evidence
    returned: list[tuple[str, str]] = field(default_factory=list)  # (agency, reason) of each bukan wewenang
    guesses: list[Guess] = field(default_factory=list)


def rows(session: Session, registry: Registry, viewer: Viewer, today: date, limit: int | None = None) -> list[Row]:
    """The desk, the oldest disposition deadline first (``PAGE_SIZE`` of them)."""
    query = (select(Report).where(waiting(registry, viewer))
             .order_by(Report.disposition_due.is_(None), Report.disposition_due, Report.id)
             .limit(limit or PAGE_SIZE))
    reports = list(session.scalars(query))
    returns = _returns(session, [r.id for r in reports])
    targets = desk_units(registry, viewer)
    out = []
    for report in reports:
        rules, recomputed = explanation(registry, report)
        evidence = report.evidence or {}
        returned = returns.get(report.id, [])
        excluded = {agency for agency, _reason in returned} | {report.agency or ""}
        row = Row(report=report, clock=clock(report, today), rules=rules, decided_by=evidence.get("decided_by"),
                  unknown_code=evidence.get("unknown_code"), recomputed=recomputed, returned=returned)
        row.guesses = guesses(registry, rules, targets, excluded)
        out.append(row)
    return out


def count(session: Session, registry: Registry, viewer: Viewer) -> int:
    """How many reports wait on the desk."""
    from sqlalchemy import func

    return int(session.scalar(select(func.count()).select_from(Report).where(waiting(registry, viewer))) or 0)


def explanation(registry: Registry, report: Report) -> tuple[dict[str, Any], bool]:
    """The rules' evidence for ``report``: stored at decision time, or computed now (then True)."""
    stored = (report.evidence or {}).get("rules")
    if isinstance(stored, dict) and stored:
        return stored, False
    return engine_for(registry).evaluate(report.text).evidence(), True


def guesses(registry: Registry, rules: dict[str, Any], targets: list[str] | None,
            excluded: set[str]) -> list[Guess]:
    """Up to ``GUESSES`` agencies to offer, best first.

    Central (``targets`` None): the agencies the rules scored. A city: its units,
    by the points of the words that counted for each (a unit scores for its
    city, so the city's own score says nothing about which unit).
    """
    words: dict[str, list[str]] = {}
    points: dict[str, float] = {}
    for match in rules.get("matched") or []:
        owner = str(match.get("for"))
        words.setdefault(owner, []).append(str(match.get("keyword")))
        points[owner] = points.get(owner, 0.0) + float(match.get("weight") or 0)
    if targets is None:
        ranked = [(str(a), float(s)) for a, s in (rules.get("scores") or {}).items()]
        ranked.sort(key=lambda item: -item[1])
        if not ranked and rules.get("agency"):
            ranked = [(str(rules["agency"]), float(rules.get("score") or 0))]
        allowed = set(registry.agencies)
        # A unit's words score for its city; show them under the city too.
        for owner, found in list(words.items()):
            parent = registry.agencies[owner].parent if owner in registry.agencies else None
            if parent:
                words.setdefault(parent, []).extend(found)
    else:
        ranked = sorted(((o, p) for o, p in points.items() if o in targets), key=lambda item: -item[1])
        unit = rules.get("unit")
        if unit in targets and all(o != unit for o, _p in ranked):
            ranked.insert(0, (str(unit), float(rules.get("score") or 0)))
        allowed = set(targets)
    out: list[Guess] = []
    for agency, score in ranked:
        if agency in allowed and agency not in excluded and all(g.agency != agency for g in out):
            out.append(Guess(agency, score, ", ".join(dict.fromkeys(words.get(agency, [])))))
        if len(out) == GUESSES:
            break
    return out


def _returns(session: Session, report_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
    """Per report: which agency gave it back (bukan wewenang) and why, oldest first."""
    if not report_ids:
        return {}
    out: dict[int, list[tuple[str, str]]] = {}
    holder: dict[int, str | None] = {}
    events = session.scalars(select(ReportEvent).where(ReportEvent.report_id.in_(report_ids))
                             .order_by(ReportEvent.report_id, ReportEvent.id))
    for event in events:
        if event.action == "return":
            reason = (event.note or "").removeprefix("bukan wewenang: ")
            out.setdefault(event.report_id, []).append((holder.get(event.report_id) or "?", reason))
        holder[event.report_id] = event.agency  # the agency holding the report after this event
    return out


# --------------------------------------------------------------------------- dispose, hold, undo

@dataclass(frozen=True)
class Held:
    """A disposition made on the desk whose notifications wait for the undo window."""

    number: str
    event_id: int
    to: str
    at: datetime
    deliveries: tuple[int, ...]

    @property
    def until(self) -> datetime:
        """The end of the undo window: the notifications leave then."""
        return self.at + timedelta(seconds=UNDO_SECONDS)


def dispose(session: Session, settings: Settings, registry: Registry, viewer: Viewer, report: Report, to: str,
            *, at: datetime) -> Held:
    """Dispose ``report`` to ``to`` now and hold its SMS and webhook for the undo window (not committed)."""
    if not may_use(registry, viewer):
        raise lifecycle.LifecycleError(422, "the desk is for central and disposition admins", "not_allowed")
    outcome = lifecycle.dispose(session, settings, registry, principal_for(viewer), report, to, note=None, now=at)
    until = at + timedelta(seconds=UNDO_SECONDS)
    if outcome.sms is not None:
        outcome.sms.next_attempt_at = until  # the senders claim only what is due
    deliveries = []
    for delivery in session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.idempotency_key == _delivery_key(report, outcome.event.id))):
        push.hold(session, delivery.id)
        deliveries.append(delivery.id)
    session.flush()
    return Held(report.tracking_number, outcome.event.id, to, at, tuple(deliveries))


def release(settings: Settings, held: Held) -> None:
    """After commit: schedule the held webhooks for the end of the window (the SMS needs nothing)."""
    for delivery_id in held.deliveries:
        push.enqueue_delivery(settings, delivery_id, at=held.until)


def undo(session: Session, viewer: Viewer, report: Report, event_id: int, *, at: datetime) -> ReportEvent:
    """Take back the desk disposition ``event_id`` of ``report`` inside its window (not committed)."""
    events = sorted(report.events, key=lambda e: e.id)
    event = next((e for e in events if e.id == event_id), None)
    actor = principal_for(viewer).actor
    if event is None or event.action != "disposition" or event.actor != actor:
        raise UndoRefused("unknown")
    if events[-1].id != event_id:
        raise UndoRefused("changed")  # someone acted on the report since
    if at >= event.created_at + timedelta(seconds=UNDO_SECONDS):
        raise UndoRefused("too_late", seconds=UNDO_SECONDS)
    before = [e for e in events if e.id < event_id]
    previous = before[-1] if before else None
    previous_agency = previous.agency if previous else None
    previous_status = previous.status if previous else RECEIVED
    note = f"disposisi ke {event.agency} dibatalkan"
    # Withdraw the notifications, each only while it still waits: a sender or a
    # webhook job that got there first wins, and the undo is refused.
    sms_key = f"notify:{report.id}:{event.id}"
    sms = session.scalar(select(OutboundMessage).where(OutboundMessage.idempotency_key == sms_key))
    if sms is not None:
        cancelled = session.execute(  # type: ignore[attr-defined]
            update(OutboundMessage)
            .where(OutboundMessage.id == sms.id, OutboundMessage.state == OutboundState.QUEUED)
            .values(state=OutboundState.CANCELLED, error=note, next_attempt_at=None, updated_at=at)
            .execution_options(synchronize_session=False)).rowcount
        if not cancelled:
            raise UndoRefused("already_sent")
    for delivery in session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.idempotency_key == _delivery_key(report, event.id))):
        withdrawn = session.execute(  # type: ignore[attr-defined]
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id, WebhookDelivery.state == push.PENDING)
            .values(state=push.CANCELLED, error=note, updated_at=at)
            .execution_options(synchronize_session=False)).rowcount
        if not withdrawn:
            raise UndoRefused("already_sent")
    # The labelled example of this disposition was a person's slip, not a label.
    session.execute(delete(LabelledExample).where(
        LabelledExample.report_id == report.id, LabelledExample.agency == event.agency,
        LabelledExample.created_at == event.created_at))
    report.agency = previous_agency
    report.status = previous_status
    if report.disposed_at == event.created_at:  # the disposition met the deadline; it no longer does
        report.disposed_at = None
    report.updated_at = at
    restored = ReportEvent(status=previous_status, action=UNDO_ACTION, note=note, actor=actor,
                           agency=previous_agency, created_at=at)
    report.events.append(restored)
    session.flush()
    return restored


def _delivery_key(report: Report, event_id: int) -> str:
    # lifecycle.dispose's key for the agency's report.disposed webhook
    return f"report.disposed:{report.id}:{event_id}"

