"""The start-up check every role runs: settings, database, Redis, prefixes.yaml, channels, workspace.

Each problem is one line that names the setting, says what is wrong with its
value and how to fix it. ``sms-gateway`` prints the errors and exits with
status 2 (a configuration error, not a crash) instead of a traceback at the
first request or job; warnings are logged and the role starts.

A dependency that is merely down at start-up (the database or Redis refusing
connections) is a warning for the long-lived roles, which wait for it like
for any outage, and an error for the one-shot ``db upgrade``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

from .config import ConfigError, Settings, channel_list
from .phone import mask
from .registry import Registry

log = logging.getLogger(__name__)

# Roles that serve, consume or send for as long as they run.
LONG_LIVED = ("web", "worker", "scheduler", "modem", "run")
# What the database server says when the URL itself is wrong (not a passing outage).
_URL_MISTAKES = ("does not exist", "authentication failed", "no password supplied", "unable to open database",
                 "invalid dsn", "could not translate host name", "name or service not known")


@dataclass
class Findings:
    """Problems found by the check: errors stop the role, warnings are logged."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check(settings: Settings, role: str) -> Findings:
    """Everything ``role`` needs from its configuration; see the module docstring."""
    found = Findings()
    _database(settings, role, found)
    if role == "db upgrade":
        return found
    _redis(settings, found)
    registry = _registry(settings, found)
    _holidays(settings, found)
    _channels(settings, registry, found)
    if role in ("web", "run"):
        _workspace(settings, found)
    return found


def safe_url(url: str) -> str:
    """A database URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable>"


def _database(settings: Settings, role: str, found: Findings) -> None:
    from .db import get_engine, pending_migrations

    url = str(settings.DATABASE_URL)
    shown = f"DATABASE_URL={safe_url(url)}"
    try:
        make_url(url)
        engine = get_engine(url)
    except ArgumentError:
        found.errors.append("DATABASE_URL is not a database URL; expected e.g. "
                            "postgresql+psycopg://user@host/db or sqlite:///var/gateway.sqlite3")
        return
    except (NoSuchModuleError, ImportError) as exc:
        found.errors.append(f"{shown}: unknown database driver ({exc}); use postgresql+psycopg:// or sqlite://")
        return
    try:
        with engine.connect() as conn:
            problem = None if role in ("db upgrade", "run") else pending_migrations(conn)
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        line = f"{shown}: cannot connect: {reason}"
        if role == "db upgrade" or any(m in reason.lower() for m in _URL_MISTAKES):
            found.errors.append(line + " (fix DATABASE_URL or create the database)")
        else:
            found.warnings.append(line + " (waiting for it like for any outage)")
        return
    except SQLAlchemyError as exc:
        found.errors.append(f"{shown}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        return
    if problem is None:
        return
    if role == "web":  # readiness (/healthz) says 503 until the migration runs; nothing is lost meanwhile
        found.warnings.append(f"{shown}: {problem}")
    else:
        found.errors.append(f"{shown}: {problem}")


def _redis(settings: Settings, found: Findings) -> None:
    from redis.exceptions import RedisError

    from . import queue

    try:
        url = queue.redis_url(settings)
        conn = queue.get_redis(settings)
    except ConfigError as exc:
        found.errors.append(str(exc))
        return
    except ValueError as exc:  # redis-py's verdict on a malformed URL
        found.errors.append(f"REDIS_URL: {exc} (expected redis://host:port/db, rediss://… or unix:///path)")
        return
    try:
        conn.ping()
    except RedisError as exc:
        shown = url.split("@")[-1]  # no password in messages
        found.warnings.append(f"REDIS_URL …{shown}: not reachable ({exc}); waiting for it like for any outage")


def _registry(settings: Settings, found: Findings) -> Registry | None:
    from .registry import RegistryError, parse_registry

    path = str(settings.PREFIXES_FILE)
    if not Path(path).is_file():
        found.errors.append(f"PREFIXES_FILE={path}: no such file; point PREFIXES_FILE at the agency "
                            "registry (the repository's prefixes.yaml is the shipped one)")
        return None
    try:
        return parse_registry(path)
    except RegistryError as exc:
        found.errors.extend(f"PREFIXES_FILE: {problem.render()}" for problem in exc.problems)
        return None


def _holidays(settings: Settings, found: Findings) -> None:
    from .deadlines import OverrideError, parse_overrides

    path = str(settings.HOLIDAYS_OVERRIDE_FILE)
    if not Path(path).is_file():
        return  # documented: a missing override file changes nothing
    try:
        parse_overrides(path)
    except OverrideError as exc:
        found.errors.extend(f"HOLIDAYS_OVERRIDE_FILE: {problem.render()}" for problem in exc.problems)


# What each webhook channel needs to receive, and what it needs to send.
_RECEIVES = {
    "twilio": lambda s: bool(s.TWILIO_AUTH_TOKEN) or not s.TWILIO_VALIDATE_SIGNATURE,
    "kannel": lambda s: bool(s.KANNEL_INBOUND_TOKEN),
}
_RECEIVES_BECAUSE = {"twilio": "TWILIO_AUTH_TOKEN is set", "kannel": "KANNEL_INBOUND_TOKEN is set"}


def _channels(settings: Settings, registry: Registry | None, found: Findings) -> None:
    from .channels.base import SendError, get_channel

    console = channel_list(settings.CONSOLE_CHANNELS)

    def unsendable(name: str) -> str | None:
        if name in console or "*" in console:
            return None
        try:
            get_channel(name, settings)
        except SendError as exc:
            return exc.reason.split(": ", 1)[-1]  # the factory's own words: which settings are missing
        return None

    for name, receives in _RECEIVES.items():
        if receives(settings) and (reason := unsendable(name)):
            found.errors.append(
                f"{reason}: {name} messages are accepted ({_RECEIVES_BECAUSE[name]}) but their replies "
                f"could not be sent; set the {name.upper()} sending settings, or CONSOLE_CHANNELS={name} "
                "to print them instead")
    admins = _admin_numbers(registry)
    notify = str(settings.NOTIFY_SMS_CHANNEL)
    if admins and (reason := unsendable(notify)):
        found.errors.append(
            f"NOTIFY_SMS_CHANNEL={notify}: {reason}, but prefixes.yaml gives admin numbers "
            f"({', '.join(mask(n) for n in admins[:2])}…); configure that channel, choose another "
            f"NOTIFY_SMS_CHANNEL, or CONSOLE_CHANNELS={notify}")


def _workspace(settings: Settings, found: Findings) -> None:
    from limits import parse_many

    try:
        parse_many(str(settings.WORKSPACE_LOGIN_LIMIT))
    except ValueError:
        found.errors.append(f"WORKSPACE_LOGIN_LIMIT={settings.WORKSPACE_LOGIN_LIMIT!r}: expected a rate such as "
                            "10/minute (the default) or 20 per hour")
    suffix = settings.WORKSPACE_HOST_SUFFIX
    if suffix and ("/" in suffix or ":" in suffix or "." not in suffix.strip(".")):
        found.errors.append(f"WORKSPACE_HOST_SUFFIX={suffix!r}: expected a bare domain such as lapor.go.id "
                            "(no scheme, port or path); agencies then get kemenhub.lapor.go.id")
    elif suffix:
        host = (make_url_host(str(settings.PUBLIC_BASE_URL)) or "").lower()
        bare = suffix.strip(".").lower()
        if host != bare and not host.endswith("." + bare):
            found.warnings.append(f"PUBLIC_BASE_URL={settings.PUBLIC_BASE_URL} is not on WORKSPACE_HOST_SUFFIX="
                                  f"{suffix}: the set-password links of `sms-gateway user create` use its scheme "
                                  f"and port with the agencies' hosts under {bare}")
    if settings.SECRET_KEY is not None and len(str(settings.SECRET_KEY)) < 32:
        found.errors.append("SECRET_KEY is shorter than 32 characters: anybody who guesses it can sign a "
                            "session cookie; generate one with `python -c 'import secrets; "
                            "print(secrets.token_urlsafe(48))'`")


def make_url_host(url: str) -> str | None:
    """The host part of an http(s) URL."""
    from urllib.parse import urlsplit

    return urlsplit(url).hostname


def _admin_numbers(registry: Registry | None) -> list[str]:
    if registry is None:
        return []
    numbers = [str(a.extra["admin_number"]) for a in registry.agencies.values() if a.extra.get("admin_number")]
    return numbers + [c.admin_number for c in registry.coordinators.values() if c.admin_number]


def run_check(settings: Settings, role: str) -> list[str]:
    """Run the check for ``role``; log the warnings, return the error lines."""
    found = check(settings, role)
    for warning in found.warnings:
        log.warning("%s", warning)
    return found.errors
