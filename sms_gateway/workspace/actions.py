"""Bulk actions: the lifecycle functions applied report by report, each checked on its own.

Like RapidPro's BulkActionMixin: the posted numbers are looked up again in the
viewer's scope (a report that moved away since the page was drawn is "not
found"), each change runs in its own savepoint so a refusal leaves the others
done, and the page is told exactly which changed and why the others did not.
SMS are queued only after the one commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy.orm import Session

from .. import reports
from ..agencies import lifecycle
from ..config import Settings
from ..registry import Registry
from .access import Viewer, principal_for
from .messages import refusal

BULK_MAX = 200
ACTIONS = ("dispose", "status")


@dataclass
class BulkResult:
    """Tracking numbers changed, and (number, reason) of those left as they were."""

    done: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def bulk(session: Session, settings: Settings, registry: Registry, viewer: Viewer, numbers: list[str],
         action: str, *, to: str = "", status: str = "", note: str = "") -> BulkResult:
    """Dispose (``to``) or change the status (``status``) of each report in ``numbers``; commits once."""
    if action not in ACTIONS:
        raise lifecycle.LifecycleError(400, f"unknown action {action!r}", "required", what="action")
    if action == "dispose" and not to:
        raise lifecycle.LifecycleError(400, "to is required", "required", what="to")
    if action == "status" and not status:
        raise lifecycle.LifecycleError(400, "status is required", "required", what="status")
    clean = lifecycle.clean_note(settings, note)
    principal = principal_for(viewer)
    result = BulkResult()
    outcomes: list[lifecycle.Outcome] = []
    for number in dict.fromkeys(numbers):  # once each, in the order given
        report = reports.find_by_tracking(session, number, lock=True)
        if report is None:  # out of scope, or never existed: the same answer
            result.refused.append((number, _("tidak ditemukan di ruang kerja Anda")))
            continue
        savepoint = session.begin_nested()
        try:
            if action == "dispose":
                outcome = lifecycle.dispose(session, settings, registry, principal, report, to.upper(), note=clean)
            else:
                outcome = lifecycle.change_status(session, settings, registry, report, status, note=clean,
                                                  actor=principal.actor)
        except lifecycle.LifecycleError as exc:
            savepoint.rollback()
            result.refused.append((number, refusal(exc)))
            continue
        savepoint.commit()
        outcomes.append(outcome)
        result.done.append(number)
    session.commit()
    for outcome in outcomes:
        lifecycle.send(settings, outcome)
    return result
