"""What the gateway stores: inbound SMS, outbound SMS, reports and their history.

The database, not Redis, is the source of truth: a job that runs twice, or a
job that was lost, is recovered from these rows.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, Mapper, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from .db import Base

# Row ids are 32-bit integers (PostgreSQL ``integer``): an id from a URL above this
# names no row, and must be answered as such rather than reach the database.
MAX_ID = 2**31 - 1


def parse_id(raw: str | None) -> int | None:
    """A row id from request text (ASCII digits, within ``MAX_ID``), or None."""
    if not raw or len(raw) > 10 or not (raw.isascii() and raw.isdigit()):
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ID else None


def utcnow() -> datetime:
    """Timezone-aware now in UTC (all timestamps are stored in UTC)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite returns naive ones otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class InboundState(enum.StrEnum):
    """Life of an inbound SMS."""

    RECEIVED = "received"  # stored, job enqueued (or to be re-enqueued by the sweeper)
    PROCESSED = "processed"  # parsed, report and reply created
    FAILED = "failed"  # processing raised after every retry; visible to operators


class OutboundState(enum.StrEnum):
    """Life of an outbound SMS; ``RANK`` orders them so callbacks never go backwards."""

    QUEUED = "queued"  # waiting for (another) send attempt
    SENDING = "sending"  # claimed by a send job, provider call in progress
    SENT = "sent"  # accepted by the provider
    DELIVERED = "delivered"  # handset confirmed
    UNDELIVERED = "undelivered"  # provider gave up
    FAILED = "failed"  # permanent error, or retries exhausted
    CANCELLED = "cancelled"  # withdrawn before it was sent (a disposition undone on the desk); final


# Higher rank = later in the life of a message. A status report may only move a
# message to a higher rank; delivered/undelivered/failed are final.
OUTBOUND_RANK: dict[str, int] = {
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
    "cancelled": 3,
}


class InboundMessage(Base):
    """An SMS as received from a channel, stored before the provider is acknowledged."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_inbound_channel_external_id"),
        Index("ix_inbound_state_received", "state", "received_at"),
        # Flood control counts a number's messages in a window (migration 0005).
        Index("ix_inbound_sender_received", "sender", "received_at"),
        # The surge rate of /metrics and the operations page: the last hour's messages (migration 0008).
        Index("ix_inbound_received", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    # Provider's id of the message (Twilio MessageSid, Kannel %I, modem hash):
    # the deduplication key of provider retries.
    external_id: Mapped[str] = mapped_column(String(128))
    sender: Mapped[str] = mapped_column(String(32), index=True)  # E.164 where parseable
    recipient: Mapped[str] = mapped_column(String(32), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    provider_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A multipart SMS stored with parts missing (modem timeout).
    incomplete: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default=InboundState.RECEIVED)
    error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # How the parser read it (kind, agency, command, flags) for operators.
    parsed: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Why this message got no reply (migration 0005, pipeline.flood_control):
    # "flood" (the number sent too many messages in FLOOD_WINDOW and had its
    # one reply of the window), "unreplyable" (an alphanumeric sender or a
    # short code, answered once per window at most). None: answered normally.
    no_reply: Mapped[str | None] = mapped_column(String(16))

    report: Mapped[Report | None] = relationship(back_populates="inbound", uselist=False)
    replies: Mapped[list[OutboundMessage]] = relationship(
        back_populates="inbound", order_by="OutboundMessage.id"
    )


class OutboundMessage(Base):
    """An SMS the gateway sends: acknowledgement, status reply, help, notification."""

    __tablename__ = "outbound_messages"
    __table_args__ = (
        Index("ix_outbound_state_updated", "state", "updated_at"),
        # The senders' claim: the queued rows of one channel, best lane first,
        # oldest first (migration 0005). Partial: sent rows never slow it down.
        Index("ix_outbound_claim", "channel", "lane", "id",
              postgresql_where=sql_text("state = 'queued'"), sqlite_where=sql_text("state = 'queued'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Makes "create the reply" idempotent: a re-run job finds the existing row.
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(32), index=True)
    text: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(32))  # ack, status, help, notify, reply …
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"), index=True)
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=OutboundState.QUEUED)
    # Priority lane (outbox.REPLY, NOTIFICATION, BULK): a lower lane is sent first.
    lane: Mapped[int] = mapped_column(Integer, default=1)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Not sent before this time: the backoff after a temporary failure.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the current (or last) attempt was claimed: reconciliation asks the
    # provider what it received since then.
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    provider_id: Mapped[str | None] = mapped_column(String(128), index=True)
    provider_status: Mapped[str | None] = mapped_column(String(32))  # raw, as reported
    error_code: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    segments: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow
    )
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    inbound: Mapped[InboundMessage | None] = relationship(back_populates="replies")


# The date the holder of an open report must act by next: disposition, then
# follow-up, then (ditindaklanjuti) the end of the reporter's window to answer.
# A generated column, so every writer (ORM, bulk UPDATE, a later batch INSERT)
# keeps it right, and the workspace inbox sorts and pages on an index
# (migration 0007). Closed reports, and open ones without a date, sort last.
NEXT_DUE_SQL = (
    "COALESCE(CASE WHEN status IN ('selesai', 'diarsipkan') THEN NULL "
    "WHEN disposed_at IS NULL THEN disposition_due "
    "WHEN followed_up_at IS NULL THEN followup_due "
    "ELSE response_due END, '9999-12-31')"
)
NO_DUE_DATE = date(9999, 12, 31)
# The open statuses (agencies.statuses.OPEN, which imports this module): the
# board's partial index of open reports (migration 0009) is on these.
OPEN_STATUSES = ("diterima", "diverifikasi", "didisposisikan", "ditindaklanjuti")
_OPEN_SQL = "status IN ('diterima', 'diverifikasi', 'didisposisikan', 'ditindaklanjuti')"


class Report(Base):
    """A complaint, suggestion or information request, identified by its tracking number."""

    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_agency_next_due", "agency", "next_due", "id"),
        Index("ix_reports_next_due", "next_due", "id"),
        # The coordinators' board (migration 0009, workspace/board.py): both of its GROUP BY
        # agency scans read these in agency order, index-only on PostgreSQL — the open
        # reports for today's state, the period's reports for the medians and shares.
        Index("ix_reports_board_open", "agency",
              postgresql_include=["status", "next_due", "disposed_at", "disposition_due", "followed_up_at",
                                  "followup_due"],
              postgresql_where=sql_text(_OPEN_SQL), sqlite_where=sql_text(_OPEN_SQL)),
        Index("ix_reports_board_period", "agency", "created_at",
              postgresql_include=["disposed_at", "followed_up_at", "followup_due"]),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tracking_number: Mapped[str] = mapped_column(String(12), unique=True)
    # One report per inbound message: the guard that makes processing idempotent.
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
    agency: Mapped[str | None] = mapped_column(String(32), index=True)  # None: central queue
    kind: Mapped[str] = mapped_column(String(16))  # aduan, aspirasi, info
    text: Mapped[str] = mapped_column(Text)
    reporter: Mapped[str] = mapped_column(String(32), index=True)  # E.164
    confidential: Mapped[bool] = mapped_column(Boolean, default=False)  # RAHASIA
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)  # ANONIM
    status: Mapped[str] = mapped_column(String(24), default="diterima", index=True)
    category: Mapped[str | None] = mapped_column(String(64), index=True)
    special: Mapped[bool] = mapped_column(Boolean, default=False)
    disposition_due: Mapped[date | None] = mapped_column(Date)
    followup_due: Mapped[date | None] = mapped_column(Date)
    # Lifecycle (migration 0002, see sms_gateway/agencies/lifecycle.py): when the
    # deadlines were met, and the reporter's window to answer a follow-up (BALAS).
    disposed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    followed_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # first follow-up
    last_followup_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    response_due: Mapped[date | None] = mapped_column(Date)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_due: Mapped[date] = mapped_column(Date, Computed(NEXT_DUE_SQL, persisted=True))
    # Why the report went where it went: prefix, matched keywords, rule, score.
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The same text again from the same number within FLOOD_WINDOW adds no
    # report: it counts here (migration 0005).
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    last_repeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow
    )

    inbound: Mapped[InboundMessage | None] = relationship(back_populates="report")
    events: Mapped[list[ReportEvent]] = relationship(
        back_populates="report", order_by="ReportEvent.id", cascade="all, delete-orphan"
    )


class ReportEvent(Base):
    """One entry of a report's status history (append-only: see ``_append_only``)."""

    __tablename__ = "report_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    status: Mapped[str] = mapped_column(String(24))
    # What happened (migration 0002): status, disposition, return, answer,
    # citizen_response, auto_close; None for the entry created with the report.
    action: Mapped[str | None] = mapped_column(String(24))
    note: Mapped[str | None] = mapped_column(Text)
    # "sms", "system", "reporter", "admin"/"agency:CODE" (API tokens) or a
    # workspace user's e-mail address (migration 0007 widened it for those).
    actor: Mapped[str] = mapped_column(String(254), default="system")
    agency: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    report: Mapped[Report] = relationship(back_populates="events")


class OptOut(Base):
    """A number that sent BERHENTI/STOP: no more status notifications to it."""

    __tablename__ = "opt_outs"

    recipient: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --------------------------------------------------------------------------- agencies (issue 6)


class ApiToken(Base):
    """An API token of an agency (or of the central admin); only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the token
    hint: Mapped[str] = mapped_column(String(16))  # first characters, to recognise it in lists
    agency: Mapped[str | None] = mapped_column(String(32), index=True)  # None for admin tokens
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    label: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Escalation(Base):
    """A missed deadline recorded against an agency: level 1 intervention, level 2 reprimand."""

    __tablename__ = "escalations"
    __table_args__ = (
        # The guard that makes the escalation job idempotent.
        UniqueConstraint("report_id", "deadline", "level", name="uq_escalation_report_deadline_level"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    agency: Mapped[str | None] = mapped_column(String(32), index=True)  # None: central queue
    deadline: Mapped[str] = mapped_column(String(16))  # disposition, followup
    level: Mapped[int] = mapped_column(Integer)
    due: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class CitizenResponse(Base):
    """The reporter's answer to a follow-up (``BALAS <nomor> <teks>``)."""

    __tablename__ = "citizen_responses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    # One response per SMS: processing the same SMS twice adds nothing.
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"), unique=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """One JSON POST to an agency's or coordinator's webhook, and how it went."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_state_updated", "state", "updated_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Makes "push this event" idempotent: a re-run finds the existing row.
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    recipient: Mapped[str] = mapped_column(String(32), index=True)  # agency or coordinator code
    recipient_kind: Mapped[str] = mapped_column(String(16), default="agency")  # agency, coordinator
    event: Mapped[str] = mapped_column(String(32))
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    url: Mapped[str | None] = mapped_column(String(512))  # where the last attempt went
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending, delivering, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    response_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# --------------------------------------------------------------------------- routing feedback (issue 15)


class LabelledExample(Base):
    """A report's text and the agency a person re-routed it to: what the rules are measured on.

    One row per re-routing (append-only); the latest row of a report is its label.
    Written by ``agencies.lifecycle.dispose`` in the disposition's transaction.
    """

    __tablename__ = "labelled_examples"
    __table_args__ = (Index("ix_labelled_examples_report_created", "report_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"))
    text: Mapped[str] = mapped_column(Text)  # the report's text, as the rules read it
    agency: Mapped[str] = mapped_column(String(32), index=True)  # where the person sent it
    previous_agency: Mapped[str | None] = mapped_column(String(32))  # where it was (None: central queue)
    # What the gateway decided when the report arrived: prefix/rules/central, and the rules' agency.
    decided_by: Mapped[str | None] = mapped_column(String(16))
    rules_agency: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(24))  # disposition (API), later the workspace's actions
    actor: Mapped[str] = mapped_column(String(254))  # as in the history: a workspace user's e-mail too (0007)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


# --------------------------------------------------------------------------- rules backtests (issue 11)


class RuleBacktest(Base):
    """A proposed prefixes.yaml tried on stored texts and labelled examples (``rules/backtest.py``).

    The job ``jobs.run_backtest`` takes the id; the row is the record: the text
    tried, who, when, the window, the progress and the result.
    """

    __tablename__ = "rule_backtests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor: Mapped[str] = mapped_column(String(254))  # a workspace user's e-mail, or cli
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    filename: Mapped[str] = mapped_column(String(255), default="")  # as uploaded, or pasted
    rules_text: Mapped[str] = mapped_column(Text)  # the proposed file, whole
    base_text: Mapped[str] = mapped_column(Text)  # the file in force when it was asked for
    base_version: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(32))  # of the proposed file
    params: Mapped[dict[str, Any]] = mapped_column(JSON)  # days, since, until (ISO)
    state: Mapped[str] = mapped_column(String(16), default="queued")  # queued, running, done, failed
    done: Mapped[int] = mapped_column(Integer, default=0)  # texts decided so far
    total: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RuleChange(Base):
    """A prefixes.yaml written from the rules page (RULES_EDITABLE=1): who, when, what it replaced."""

    __tablename__ = "rule_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    backtest_id: Mapped[int | None] = mapped_column(ForeignKey("rule_backtests.id"))
    actor: Mapped[str] = mapped_column(String(254))
    path: Mapped[str] = mapped_column(Text)
    backup_path: Mapped[str] = mapped_column(Text)
    version_before: Mapped[str] = mapped_column(String(32))
    version_after: Mapped[str] = mapped_column(String(32))
    previous_text: Mapped[str] = mapped_column(Text)  # the version replaced, even if the backup file goes
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --------------------------------------------------------------------------- workspace (issue 10)


class User(Base):
    """A person who works in the web workspace: staff or admin of an agency, or a central admin."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-case
    name: Mapped[str] = mapped_column(String(128), default="")
    role: Mapped[str] = mapped_column(String(16))  # sms_gateway.workspace.roles
    agency: Mapped[str | None] = mapped_column(String(32), index=True)  # None: central
    password_hash: Mapped[str | None] = mapped_column(String(255))  # None until the link is used
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(254), default="cli")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UserSession(Base):
    """A signed-in browser: the cookie holds the token, only its SHA-256 is stored.

    Revoked on logout, on a password change and when the user is disabled; the
    workspace checks the row on every request, so revocation is immediate.
    """

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    realm: Mapped[str] = mapped_column(String(32))  # the host it was opened on (see workspace.hosts)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PasswordLink(Base):
    """A one-time link to set a password (new account, reset); only its SHA-256 is stored."""

    __tablename__ = "password_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CannedAnswer(Base):
    """A prepared answer to the reporter, offered on reports in ``status``; edited by the agency admin."""

    __tablename__ = "canned_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency: Mapped[str | None] = mapped_column(String(32), index=True)  # None: the central admins'
    status: Mapped[str] = mapped_column(String(24))
    title: Mapped[str] = mapped_column(String(80))
    text: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(254))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ReportNote(Base):
    """An internal note on a report, for the staff only (never sent, never in the API's history)."""

    __tablename__ = "report_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    author: Mapped[str] = mapped_column(String(254))
    agency: Mapped[str | None] = mapped_column(String(32))  # the author's agency; None: central
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --------------------------------------------------------------------------- coordinators, rosters (issue 11)


class CoordinationAction(Base):
    """An intervensi (act on a report) or teguran (a formal reprimand) from a coordinator to an agency.

    Append-only, like the history: the agency's answer is a row of its own
    (``CoordinationAnswer``); an action without one is shown as a banner in the agency's inbox.
    """

    __tablename__ = "coordination_actions"
    __table_args__ = (Index("ix_coordination_actions_agency_created", "agency", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # intervensi, teguran
    agency: Mapped[str] = mapped_column(String(32))  # the agency asked to act / reprimanded
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"), index=True)  # required for intervensi
    coordinator: Mapped[str | None] = mapped_column(String(32))  # coordinator code; None: a central admin
    author: Mapped[str] = mapped_column(String(254))  # the person's e-mail address
    author_name: Mapped[str] = mapped_column(String(128), default="")
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CoordinationAnswer(Base):
    """The agency's answer to an intervensi or teguran: one per action; it clears the banner."""

    __tablename__ = "coordination_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("coordination_actions.id"), unique=True)
    author: Mapped[str] = mapped_column(String(254))
    author_name: Mapped[str] = mapped_column(String(128), default="")
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReportView(Base):
    """That a workspace user opened a report's page (the first time): who has looked at what.

    One row per (report, user), written with INSERT … ON CONFLICT DO NOTHING, so
    a page view costs one index probe; the readiness check asks whether anybody
    on duty has opened a report that is about to miss its deadline.
    """

    __tablename__ = "report_views"
    __table_args__ = (UniqueConstraint("report_id", "user_id", name="uq_report_views_report_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RosterEntry(Base):
    """A person on duty for an agency (or PUSAT, the central queue) on some weekdays and/or dates."""

    __tablename__ = "roster_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency: Mapped[str] = mapped_column(String(32), index=True)  # agency code, or PUSAT
    name: Mapped[str] = mapped_column(String(128))
    number: Mapped[str] = mapped_column(String(32))  # E.164
    email: Mapped[str | None] = mapped_column(String(254))  # their workspace account, if any
    weekdays: Mapped[str] = mapped_column(String(7), default="")  # ISO weekdays, "12345" = Monday to Friday
    dates: Mapped[list[str]] = mapped_column(JSON, default=list)  # ISO dates, in addition to the weekdays
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReadinessAlert(Base):
    """A readiness alert that was raised; ``key`` (condition, subject, period) makes raising it idempotent."""

    __tablename__ = "readiness_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    condition: Mapped[str] = mapped_column(String(32))  # at_risk, central_backlog, workers_stalled
    agency: Mapped[str | None] = mapped_column(String(32), index=True)  # None: the gateway as a whole
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class AppendOnlyError(RuntimeError):
    """Somebody tried to change or delete a history entry."""


def _append_only(_mapper: Mapper[Any], _connection: Any, target: object) -> None:
    # Like pretix's LogEntry.delete(): who did what stays as it was written.
    raise AppendOnlyError(f"{type(target).__name__} is append-only")


for _model in (ReportEvent, ReportNote, RuleChange, CoordinationAction, CoordinationAnswer):
    event.listen(_model, "before_update", _append_only)
    event.listen(_model, "before_delete", _append_only)
