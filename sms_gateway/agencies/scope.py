"""Who is calling, and what they may see: an agency sees its reports and its units'.

Anything outside the caller's scope is answered exactly like a report that
does not exist (404), so a token never confirms that somebody else's report is there.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models import Report
from ..registry import Coordinator, Registry

ALL = "*"
CENTRAL = "PUSAT"  # how the central queue (reports with no agency) is named in the API


@dataclass(frozen=True)
class Principal:
    """Who acts: an API token's holder (central admin, agency or coordinator code) or a workspace user."""

    token_id: int
    admin: bool
    code: str | None  # agency or coordinator code; None for the central admin
    person: str | None = None  # a workspace user's e-mail address: the history names the person
    label: str | None = None  # an API token's label (who holds it), named after the holder

    @property
    def actor(self) -> str:
        """How this caller is written in report histories: the person, or the token's holder and label."""
        if self.person:
            return self.person
        holder = "admin" if self.admin else f"agency:{self.code}"
        return f"{holder} ({self.label})" if self.label else holder


def units(registry: Registry, code: str) -> frozenset[str]:
    """``code`` and every agency below it (units, their units …) per the ``parent`` column."""
    children: dict[str, list[str]] = {}
    for agency in registry.agencies.values():
        if agency.parent:
            children.setdefault(agency.parent, []).append(agency.code)
    found = {code}
    todo = [code]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:  # a parent cycle in the file must not loop forever
                found.add(child)
                todo.append(child)
    return frozenset(found)


def visible_agencies(registry: Registry, principal: Principal) -> frozenset[str] | None:
    """Agency codes whose reports the caller sees; None means every report (central admin)."""
    if principal.admin:
        return None
    assert principal.code is not None
    return units(registry, principal.code)


def can_see(registry: Registry, principal: Principal, report: Report) -> bool:
    """True when the report is in the caller's scope."""
    visible = visible_agencies(registry, principal)
    return visible is None or (report.agency is not None and report.agency in visible)


def delivery_visible(registry: Registry, principal: Principal, recipient: str) -> bool:
    """True when a webhook delivery to ``recipient`` is in the caller's scope (its own or its units')."""
    if principal.admin:
        return True
    if principal.code is None:
        return False
    return recipient == principal.code or recipient in units(registry, principal.code)


def reporter_visible(principal: Principal, report: Report) -> bool:
    """Confidential reports hide the number from all but the admin; anonymous ones from agencies."""
    return principal.admin or not (report.confidential or report.anonymous)


def watched(registry: Registry, coordinator: Coordinator) -> tuple[frozenset[str], bool]:
    """(agency codes a coordinator watches, whether it also watches the central queue)."""
    if ALL in coordinator.watches:
        return frozenset(registry.agencies), True
    codes: set[str] = set()
    for code in coordinator.watches:
        codes |= units(registry, code)
    return frozenset(codes), False


def monitored(registry: Registry, principal: Principal) -> tuple[frozenset[str], bool]:
    """(agency codes in the caller's monitoring view, whether the central queue is included).

    The admin sees everything; an agency its own units; a coordinator also what it watches.
    """
    if principal.admin:
        return frozenset(registry.agencies), True
    assert principal.code is not None
    codes: set[str] = set(units(registry, principal.code)) if principal.code in registry.agencies else set()
    central = False
    coordinator = registry.coordinators.get(principal.code)
    if coordinator is not None:
        more, central = watched(registry, coordinator)
        codes |= more
    return frozenset(codes), central


def coordinators_for(registry: Registry, agency: str | None) -> list[Coordinator]:
    """Coordinators watching ``agency`` (None: the central queue, watched by ``*`` only)."""
    found = []
    for coordinator in registry.coordinators.values():
        codes, central = watched(registry, coordinator)
        if (agency is None and central) or (agency is not None and agency in codes):
            found.append(coordinator)
    return found


def known_code(registry: Registry, code: str) -> bool:
    """True for a registered agency or a configured coordinator (who may hold a token)."""
    return code in registry.agencies or code in registry.coordinators
