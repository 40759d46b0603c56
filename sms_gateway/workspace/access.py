"""Who may do what in the workspace, and the one place that scopes reports.

Roles are explicit: ``staff`` works an agency's reports, ``admin`` (agency
admin) also manages its staff, canned answers and webhook, ``central`` (central
admin) sees and disposes every report, ``coordinator`` (issue 11: an account
of a ``coordinators:`` code of prefixes.yaml) reads the reports of the
agencies it watches and acts only through the board (intervensi, teguran):
``may_post`` is the list of what it may post, everything else is refused.

Scoping is the API's (``agencies.scope``): a viewer is turned into the same
``Principal`` and sees what ``visible_agencies`` says. Every workspace query
on ``Report`` runs in a session whose scope is applied by
``with_loader_criteria`` (``scoped_sessions``); a session that has no scope
raises instead of showing everything, and an unknown role sees nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, event, false, or_, true
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker, with_loader_criteria

from ..agencies.scope import Principal, units, visible_agencies, watched
from ..db import get_engine
from ..models import Report
from ..registry import Registry

STAFF, AGENCY_ADMIN, CENTRAL_ADMIN, COORDINATOR = "staff", "admin", "central", "coordinator"
# The operations page only (queues, workers, channels, failed sends): no report, no complaint text.
OPERATOR = "operator"
ROLES = (STAFF, AGENCY_ADMIN, CENTRAL_ADMIN, COORDINATOR, OPERATOR)
AGENCY_ROLES = (STAFF, AGENCY_ADMIN)

SCOPE_KEY = "report_scope"


class ScopeError(RuntimeError):
    """A workspace query on reports ran in a session without a scope: refused, never unscoped."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in person, as the pages and the services need them."""

    user_id: int
    email: str
    name: str
    role: str
    agency: str | None  # None for a central admin and a coordinator
    coordinator: str | None = None  # the coordinator code of a coordinator's account

    @property
    def central(self) -> bool:
        """A central admin: every report, every agency."""
        return self.role == CENTRAL_ADMIN

    @property
    def monitors(self) -> bool:
        """May open the board: central admins and coordinators."""
        return self.role == CENTRAL_ADMIN or (self.role == COORDINATOR and self.coordinator is not None)

    @property
    def read_only(self) -> bool:
        """Reads reports but works none of them (a coordinator: it acts through the board only)."""
        return self.role not in (*AGENCY_ROLES, CENTRAL_ADMIN)

    @property
    def manages_staff(self) -> bool:
        """May open the admin pages (staff, canned answers, webhook)."""
        return self.role in (AGENCY_ADMIN, CENTRAL_ADMIN)

    @property
    def operates(self) -> bool:
        """May open the operations page (central admins and operators)."""
        return self.role in (CENTRAL_ADMIN, OPERATOR)

    @property
    def display(self) -> str:
        """Name, or e-mail address when the name is empty."""
        return self.name or self.email


def principal_for(viewer: Viewer) -> Principal:
    """The API's ``Principal`` for this person: the same lifecycle and scope rules apply to both."""
    if viewer.role == CENTRAL_ADMIN:
        return Principal(token_id=0, admin=True, code=None, person=viewer.email)
    if viewer.role in AGENCY_ROLES and viewer.agency:
        return Principal(token_id=0, admin=False, code=viewer.agency, person=viewer.email)
    if viewer.role == COORDINATOR and viewer.coordinator:
        # A coordinator's API token is the same Principal: it monitors, and owns no reports.
        return Principal(token_id=0, admin=False, code=viewer.coordinator, person=viewer.email)
    raise ScopeError(f"role {viewer.role!r} has no scope")


def report_scope(registry: Registry, viewer: Viewer | None) -> ColumnElement[bool]:
    """SQL condition on ``Report`` for what ``viewer`` may see; nothing for nobody or an unknown role."""
    if viewer is None:
        return false()
    if viewer.role == CENTRAL_ADMIN:
        return true()
    if viewer.role in AGENCY_ROLES and viewer.agency in registry.agencies:
        visible = visible_agencies(registry, principal_for(viewer))
        assert visible is not None
        return Report.agency.in_(sorted(visible))
    if viewer.role == COORDINATOR:
        codes, central = monitored_by(registry, viewer)
        condition = Report.agency.in_(sorted(codes)) if codes else false()
        return or_(condition, Report.agency.is_(None)) if central else condition
    return false()  # an agency removed from prefixes.yaml, a role this code does not know


def monitored_by(registry: Registry, viewer: Viewer) -> tuple[frozenset[str], bool]:
    """(agencies on ``viewer``'s board, whether the central queue is on it); nothing for anybody else.

    Central admins see every agency and the central queue; a coordinator what
    prefixes.yaml says it watches (a code no longer there watches nothing).
    """
    if viewer.role == CENTRAL_ADMIN:
        return frozenset(registry.agencies), True
    if viewer.role == COORDINATOR and viewer.coordinator in registry.coordinators:
        return watched(registry, registry.coordinators[viewer.coordinator])
    return frozenset(), False


# What a coordinator may post: the board's actions and its own account; every
# other form (a report's status, an answer, the admin pages) is refused with 404.
COORDINATOR_POSTS = frozenset({"workspace.login", "workspace.logout", "workspace.set_password",
                               "workspace.choose_language", "workspace.account",
                               "workspace.intervene", "workspace.reprimand"})
# What an operator may post: its sign-in and account, and the operations page's retry and replay.
OPERATOR_POSTS = frozenset({"workspace.login", "workspace.logout", "workspace.set_password",
                            "workspace.choose_language", "workspace.account",
                            "workspace.ops_retry", "workspace.ops_replay"})


def may_post(viewer: Viewer | None, endpoint: str | None) -> bool:
    """False when ``viewer`` may read but not post to ``endpoint`` (a coordinator outside the board)."""
    if viewer is None or not viewer.read_only:
        return True
    if viewer.role == OPERATOR:
        return endpoint in OPERATOR_POSTS
    return viewer.role == COORDINATOR and endpoint in COORDINATOR_POSTS


def manageable_agencies(registry: Registry, viewer: Viewer) -> list[str] | None:
    """Agencies whose accounts ``viewer`` manages (its own and its units'); None: all (central)."""
    if viewer.role == CENTRAL_ADMIN:
        return None
    if viewer.role == AGENCY_ADMIN and viewer.agency in registry.agencies:
        return sorted(units(registry, viewer.agency))
    return []


def assignable_roles(viewer: Viewer) -> tuple[str, ...]:
    """Roles ``viewer`` may give to an account it creates."""
    if viewer.role == CENTRAL_ADMIN:
        return (*AGENCY_ROLES, CENTRAL_ADMIN, OPERATOR)  # coordinators' accounts come from the CLI
    if viewer.role == AGENCY_ADMIN:
        return AGENCY_ROLES
    return ()


# --------------------------------------------------------------------------- scoped sessions

_MAKERS: dict[str, sessionmaker[Session]] = {}


def scoped_sessions(url: str) -> sessionmaker[Session]:
    """Sessions whose queries on ``Report`` carry their scope (set with ``set_scope``)."""
    maker = _MAKERS.get(url)
    if maker is None:
        maker = _MAKERS[url] = sessionmaker(bind=get_engine(url), expire_on_commit=False,
                                            info={SCOPE_KEY: None})
        event.listen(maker, "do_orm_execute", _apply_scope)
    return maker


def set_scope(session: Session, condition: ColumnElement[bool]) -> None:
    """Scope every later query of ``session`` on reports to ``condition``."""
    session.info[SCOPE_KEY] = condition


def _apply_scope(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if not any(m.class_ is Report for m in state.all_mappers):
        return
    condition = state.session.info.get(SCOPE_KEY)
    if condition is None:
        raise ScopeError("a workspace query on reports without a scope (call set_scope first)")
    state.statement = state.statement.options(with_loader_criteria(Report, condition, include_aliases=True))
