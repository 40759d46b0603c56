"""API tokens: random, shown once, stored as SHA-256, revocable.

A token is 32 random bytes, so a fast hash is enough: there is nothing to
guess, and looking the hash up by index keeps the comparison off the secret.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..models import ApiToken, utcnow

PREFIX = "lpr_"
HINT_LENGTH = len(PREFIX) + 8


def generate() -> str:
    """A new token: ``lpr_`` and 43 URL-safe characters."""
    return PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What is stored and looked up: the SHA-256 of the token, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create(session: Session, *, agency: str | None, admin: bool, label: str | None = None) -> tuple[ApiToken, str]:
    """Store a new token (not committed) and return it with its secret, which is not kept."""
    if admin == (agency is not None):
        raise ValueError("a token is either for an agency or for the central admin")
    token = generate()
    row = ApiToken(token_hash=hash_token(token), hint=token[:HINT_LENGTH], agency=agency, admin=admin,
                   label=label)
    session.add(row)
    session.flush()
    return row, token


def authenticate(session: Session, token: str) -> ApiToken | None:
    """The live token row for ``token``, or None (unknown or revoked)."""
    if not token.startswith(PREFIX) or len(token) > 100:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def find(session: Session, ident: str) -> list[ApiToken]:
    """Tokens matching an id or a hint (the first characters shown by ``token list``)."""
    conditions = []
    if ident.startswith(PREFIX):
        # The whole token pasted: exactly that one; a hint: every token sharing it.
        conditions.append(ApiToken.token_hash == hash_token(ident) if len(ident) > HINT_LENGTH
                          else ApiToken.hint == ident)
    if ident.isdigit():
        conditions.append(ApiToken.id == int(ident))
    if not conditions:
        return []
    return list(session.scalars(select(ApiToken).where(or_(*conditions))))


def revoke(row: ApiToken) -> bool:
    """Revoke a token; False if it already was."""
    if row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True
