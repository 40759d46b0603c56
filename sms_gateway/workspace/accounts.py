"""Per-person accounts: creation, one-time set-password links, Argon2 passwords, server-side sessions.

The CLI (``sms-gateway user …``) and the admin pages call these same functions.
Secrets (session cookies, links) are 32 random bytes; only their SHA-256 is
stored, like API tokens. A session is a row checked on every request, so a
logout, a password change or disabling the account ends it at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..config import Settings
from ..models import PasswordLink, User, UserSession, utcnow
from ..registry import Registry
from . import hosts
from .access import AGENCY_ROLES, CENTRAL_ADMIN, COORDINATOR, OPERATOR, ROLES, Viewer

PASSWORD_MIN = 10
PASSWORD_MAX = 256  # Argon2 takes anything; a bound keeps a megabyte "password" from costing CPU
EMAIL_MAX = 254
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HASHER = PasswordHasher()  # argon2id with the library's defaults (RFC 9106 low-memory profile)


@cache
def _dummy_hash() -> str:
    # Verified against when the address is unknown, so both answers take as long.
    # Made on first use: hashing costs ~0.1 s that every web worker would pay at start.
    return _HASHER.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A refused account change; ``key``/``params`` let pages say it in the user's language."""

    def __init__(self, reason: str, key: str, **params: object) -> None:
        super().__init__(reason)
        self.key = key
        self.params = params


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def normalize_email(raw: str) -> str:
    """An e-mail address as stored and compared: stripped, lower case."""
    return raw.strip().lower()


def viewer_of(user: User) -> Viewer:
    """The ``Viewer`` the pages and the scope work with."""
    if user.role == COORDINATOR:  # its ``agency`` column holds the coordinator code
        return Viewer(user_id=user.id, email=user.email, name=user.name, role=user.role, agency=None,
                      coordinator=user.agency)
    return Viewer(user_id=user.id, email=user.email, name=user.name, role=user.role, agency=user.agency)


def home_agency(user: User) -> str | None:
    """The agency whose host the account signs in on; None: the central host (central admins, coordinators)."""
    return None if user.role in (CENTRAL_ADMIN, COORDINATOR) else user.agency


def find(session: Session, email: str) -> User | None:
    """The account with this e-mail address, if any."""
    return session.scalar(select(User).where(User.email == normalize_email(email)))


def create_user(session: Session, registry: Registry, *, email: str, name: str, role: str, agency: str | None,
                created_by: str) -> User:
    """Add an account (not committed) with no password yet: give the person a link (``issue_link``)."""
    email = normalize_email(email)
    if len(email) > EMAIL_MAX or not _EMAIL.match(email):
        raise AccountError(f"{email!r} is not an e-mail address", "bad_email", email=email)
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r} (expected {', '.join(ROLES)})", "bad_role", role=role)
    if role in (CENTRAL_ADMIN, OPERATOR) and agency is not None:
        raise AccountError("a central admin belongs to no agency", "central_agency")
    if role in AGENCY_ROLES:
        if not agency:
            raise AccountError(f"a {role} account needs an agency", "account_needs_agency")
        if agency not in registry.agencies:
            raise AccountError(f"{agency} is not an agency in {registry.path}", "unknown_agency", agency=agency)
    if role == COORDINATOR and (not agency or agency not in registry.coordinators):
        raise AccountError(f"{agency} is not a coordinator in {registry.path}", "unknown_coordinator",
                           coordinator=agency or "")
    if find(session, email) is not None:
        raise AccountError(f"{email} already has an account", "exists", email=email)
    user = User(email=email, name=name.strip()[:128], role=role, agency=agency, created_by=created_by)
    session.add(user)
    session.flush()
    return user


def issue_link(session: Session, settings: Settings, user: User) -> str:
    """A new one-time set-password link secret for ``user`` (earlier unused links stop working)."""
    now = utcnow()
    session.execute(update(PasswordLink).where(PasswordLink.user_id == user.id, PasswordLink.used_at.is_(None))
                    .values(used_at=now))
    secret = secrets.token_urlsafe(32)
    session.add(PasswordLink(token_hash=_digest(secret), user_id=user.id, created_at=now,
                             expires_at=now + timedelta(hours=settings.WORKSPACE_LINK_HOURS)))
    session.flush()
    return secret


def workspace_url(settings: Settings, registry: Registry, agency: str | None) -> str:
    """The base URL of the workspace an account of ``agency`` (None: central) signs in on."""
    base = str(settings.PUBLIC_BASE_URL)
    suffix = settings.WORKSPACE_HOST_SUFFIX
    if not suffix:
        return base
    scheme, _, rest = base.partition("://")
    authority = rest.split("/", 1)[0]
    port = authority.rpartition(":")[2] if ":" in authority else ""
    host = hosts.host_for(None if agency is None else hosts.realm_for_account(registry, agency), suffix)
    return f"{scheme}://{host}{':' + port if port else ''}"


def link_url(settings: Settings, registry: Registry, user: User, secret: str) -> str:
    """The set-password link to give the person (on their own agency's host)."""
    return f"{workspace_url(settings, registry, home_agency(user))}/password/{secret}"


def redeem_link(session: Session, secret: str) -> tuple[PasswordLink, User] | None:
    """The valid link for ``secret`` and its account; None if unknown, used, expired or disabled."""
    if not secret or len(secret) > 100:
        return None
    link = session.scalar(select(PasswordLink).where(PasswordLink.token_hash == _digest(secret)))
    if link is None or link.used_at is not None or link.expires_at <= utcnow():
        return None
    user = session.get(User, link.user_id)
    if user is None or user.disabled_at is not None:
        return None
    return link, user


def check_new_password(user: User, password: str, confirm: str) -> None:
    """Refuse a password that is too short, too long, the e-mail address, or not typed twice alike."""
    if password != confirm:
        raise AccountError("the two passwords differ", "password_mismatch")
    if len(password) < PASSWORD_MIN:
        raise AccountError(f"a password needs at least {PASSWORD_MIN} characters", "password_short",
                           minimum=PASSWORD_MIN)
    if len(password) > PASSWORD_MAX:
        raise AccountError(f"a password has at most {PASSWORD_MAX} characters", "password_long",
                           maximum=PASSWORD_MAX)
    if password.strip().lower() in (user.email, user.email.split("@")[0]):
        raise AccountError("the password must not be the e-mail address", "password_email")


def set_password(session: Session, user: User, password: str, confirm: str,
                 link: PasswordLink | None = None) -> None:
    """Store a new password; every open session of the account ends (not committed)."""
    check_new_password(user, password, confirm)
    now = utcnow()
    user.password_hash = _HASHER.hash(password)
    user.password_changed_at = now
    if link is not None:
        link.used_at = now
    revoke_all(session, user.id)


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The enabled account whose password this is, or None (same work whether or not it exists)."""
    user = find(session, email) if len(email) <= EMAIL_MAX else None
    stored = user.password_hash if user is not None and user.password_hash else _dummy_hash()
    try:
        ok = len(password) <= PASSWORD_MAX and _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None or user.password_hash is None or user.disabled_at is not None:
        return None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    return user


def verify_password(user: User, password: str) -> bool:
    """True when ``password`` is the account's current password."""
    if not user.password_hash or len(password) > PASSWORD_MAX:
        return False
    try:
        return _HASHER.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def open_session(session: Session, user: User, realm: str) -> str:
    """Start a session for ``user`` on ``realm``'s host; returns the cookie secret (not committed)."""
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(UserSession(token_hash=_digest(secret), user_id=user.id, realm=realm, created_at=now,
                            last_seen_at=now))
    user.last_login_at = now
    session.flush()
    return secret


TOUCH_INTERVAL = timedelta(minutes=1)  # how stale last_seen_at may get before it is written again


def session_user(session: Session, settings: Settings, secret: str, realm: str) -> User | None:
    """The account behind a session cookie, if the session is live on this realm and the account enabled."""
    if not secret or len(secret) > 100:
        return None
    row = session.scalar(select(UserSession).where(UserSession.token_hash == _digest(secret)))
    now = utcnow()
    if row is None or row.revoked_at is not None or row.realm != realm:
        return None
    if now - row.last_seen_at > timedelta(hours=settings.WORKSPACE_SESSION_IDLE_HOURS):
        row.revoked_at = now
        session.commit()
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled_at is not None:
        return None
    if now - row.last_seen_at > TOUCH_INTERVAL:
        row.last_seen_at = now
        session.commit()
    return user


def end_session(session: Session, secret: str) -> None:
    """Log out: the session row is revoked (not committed)."""
    session.execute(update(UserSession).where(UserSession.token_hash == _digest(secret),
                                              UserSession.revoked_at.is_(None)).values(revoked_at=utcnow()))


def revoke_all(session: Session, user_id: int) -> int:
    """End every open session of an account (not committed); returns how many."""
    result = session.execute(update(UserSession).where(UserSession.user_id == user_id,
                                                       UserSession.revoked_at.is_(None))
                             .values(revoked_at=utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


def disable(session: Session, user: User) -> bool:
    """Disable an account and end its sessions at once (not committed); False if it already was."""
    if user.disabled_at is not None:
        return False
    user.disabled_at = utcnow()
    revoke_all(session, user.id)
    return True


def enable(user: User) -> bool:
    """Enable a disabled account again (it signs in with its password, or a new link)."""
    if user.disabled_at is None:
        return False
    user.disabled_at = None
    return True
