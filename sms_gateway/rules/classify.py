"""The final decision on one SMS text, as ``sms-gateway classify`` and the quality bench show it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..decision import decide
from ..parsing import parse
from ..registry import Registry

# Commands map onto the kinds admins label messages with: BERHENTI/STOP is
# answered like a help request (a service reply, no report), BALAS concerns an
# existing report like a status request. ``command`` keeps the exact command.
COMMAND_KINDS = {"status": "status", "help": "help", "stop": "help", "reply": "status"}


def classify(text: str, registry: Registry, received_at: datetime | None = None) -> dict[str, Any]:
    """Agency, kind, category, special flag, matched keywords and deadlines for ``text``."""
    received_at = received_at or datetime.now(UTC)
    parsed = parse(text, registry)
    result: dict[str, Any] = {
        "text": text,
        "agency": parsed.agency,
        "kind": COMMAND_KINDS.get(parsed.command or "", parsed.kind),
        "category": None,
        "special": False,
        "matched": [],
        "command": parsed.command,
        "tracking": parsed.tracking,
        "decided_by": "command" if parsed.command else None,
        "unit": None,
        "rule": None,
        "score": None,
        "reason": None,
        "kind_by": "command" if parsed.command else None,
        "kind_cues": [],
        "places": [],
        "corrections": [],
        "junk": False,
        "unknown_code": None,
        "prefix": parsed.prefix,
        "prefix_match": parsed.prefix_match,
        "disposition_due": None,
        "followup_due": None,
        "confidential": parsed.confidential,
        "anonymous": parsed.anonymous,
    }
    if parsed.command:
        return result
    decision = decide(parsed, registry, received_at)
    rules = decision.evidence["rules"]
    result.update(
        agency=decision.agency,
        kind=decision.kind,
        category=decision.category,
        special=decision.special,
        matched=[{"keyword": m["keyword"], "for": m["for"], "weight": m["weight"]} for m in rules["matched"]],
        decided_by=decision.evidence["decided_by"],
        unit=rules["unit"] if decision.evidence["decided_by"] == "rules" else None,
        rule=rules["rule"],
        score=rules["score"],
        reason="junk: no word of the language" if decision.evidence["junk"] else rules["reason"],
        kind_by=decision.evidence["kind_by"],
        kind_cues=rules["kind_cues"],
        places=rules["places"],
        corrections=rules["corrections"],
        junk=decision.evidence["junk"],
        unknown_code=decision.evidence["unknown_code"],
    )
    if decision.kind != "unknown":
        result["disposition_due"] = decision.disposition_due.isoformat() if decision.disposition_due else None
        result["followup_due"] = decision.followup_due.isoformat() if decision.followup_due else None
    return result
