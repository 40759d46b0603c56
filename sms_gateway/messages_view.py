"""What happened to the SMS from a number: the operator's view of recent messages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from . import phone
from .config import Settings
from .db import session_factory
from .models import InboundMessage, OutboundMessage, Report


def latest(settings: Settings, number: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Latest inbound and outbound SMS, newest first, merged into one list."""
    sessions = session_factory(settings.DATABASE_URL)
    wanted = phone.normalize(number, settings.DEFAULT_REGION) if number else None
    with sessions() as session:
        q_in = select(InboundMessage).options(selectinload(InboundMessage.report))
        q_out = select(OutboundMessage)
        if wanted:
            q_in = q_in.where(or_(InboundMessage.sender == wanted, InboundMessage.sender == number))
            q_out = q_out.where(or_(OutboundMessage.recipient == wanted, OutboundMessage.recipient == number))
        inbound = session.scalars(q_in.order_by(InboundMessage.id.desc()).limit(limit)).all()
        outbound = session.scalars(q_out.order_by(OutboundMessage.id.desc()).limit(limit)).all()
        report_ids = {o.report_id for o in outbound if o.report_id}
        numbers = dict(session.execute(select(Report.id, Report.tracking_number)
                                       .where(Report.id.in_(report_ids))).all()) if report_ids else {}
        rows: list[dict[str, Any]] = []
        for m in inbound:
            rows.append({
                "direction": "in", "id": m.id, "time": m.received_at.isoformat(), "channel": m.channel,
                "state": m.state + (" (incomplete)" if m.incomplete else "")
                + (f" (no reply: {m.no_reply})" if m.no_reply else ""), "number": m.sender,
                "tracking": m.report.tracking_number if m.report else (m.parsed or {}).get("repeat_of"),
                "text": m.text,
                "error": m.error, "external_id": m.external_id,
            })
        for o in outbound:
            rows.append({
                "direction": "out", "id": o.id, "time": o.created_at.isoformat(), "channel": o.channel,
                "state": o.state, "number": o.recipient, "tracking": numbers.get(o.report_id or -1),
                "text": o.text, "error": (f"[{o.error_code}] {o.error}" if o.error_code else o.error),
                "external_id": o.provider_id, "attempts": o.attempts, "purpose": o.purpose,
            })
    rows.sort(key=lambda r: r["time"], reverse=True)
    return rows[:limit]
