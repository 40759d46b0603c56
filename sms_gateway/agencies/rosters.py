"""On-duty rosters: who answers for an agency (or PUSAT, the central queue) on which days.

An entry names a person, their phone number (E.164, normalised like every
number the gateway stores) and, optionally, their workspace account; it holds
on some days of the week and/or on listed dates. Intervensi, teguran and
readiness alerts go by SMS to the people on duty that day. The agency admin
edits the roster on ``/admin/roster``; ``sms-gateway roster list CODE`` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import click
import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import RosterEntry, utcnow

WEEKDAYS = "1234567"  # ISO: 1 Monday … 7 Sunday
NAME_MAX = 128
DATES_MAX = 60


class RosterError(ValueError):
    """A refused roster entry; ``key``/``params`` name the reason for the pages."""

    def __init__(self, reason: str, key: str, **params: object) -> None:
        super().__init__(reason)
        self.key = key
        self.params = params


@dataclass(frozen=True)
class Entry:
    """A roster entry as typed in the form, checked."""

    name: str
    number: str
    email: str | None
    weekdays: str
    dates: list[str]


def parse_number(raw: str, region: str) -> str:
    """E.164 of a mobile number typed any usual way (``0812…``, ``+62 812…``); RosterError otherwise."""
    try:
        parsed = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise RosterError(f"{raw!r} is not a phone number", "bad_number", number=raw)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def parse_dates(raw: str) -> list[str]:
    """ISO dates separated by commas or spaces, sorted, without repeats."""
    found: set[str] = set()
    for token in raw.replace(",", " ").split():
        try:
            found.add(date.fromisoformat(token).isoformat())
        except ValueError:
            raise RosterError(f"{token!r} is not a date (YYYY-MM-DD)", "bad_date", value=token) from None
    if len(found) > DATES_MAX:
        raise RosterError(f"at most {DATES_MAX} dates", "too_many_dates", limit=DATES_MAX)
    return sorted(found)


def check(*, name: str, number: str, email: str, weekdays: list[str], dates: str, region: str) -> Entry:
    """A form's values as an entry, or RosterError naming what is wrong."""
    name = " ".join(name.split())[:NAME_MAX]
    if not name:
        raise RosterError("a name is required", "required", what="name")
    days = "".join(sorted({d for d in weekdays if d in WEEKDAYS}))
    listed = parse_dates(dates)
    if not days and not listed:
        raise RosterError("choose weekdays or dates", "no_days")
    return Entry(name=name, number=parse_number(number, region), email=email.strip().lower() or None,
                 weekdays=days, dates=listed)


def add(session: Session, agency: str, entry: Entry, created_by: str) -> RosterEntry:
    """Add an entry to ``agency``'s roster (not committed)."""
    row = RosterEntry(agency=agency, name=entry.name, number=entry.number, email=entry.email,
                      weekdays=entry.weekdays, dates=entry.dates, created_by=created_by, created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def entries(session: Session, agency: str) -> list[RosterEntry]:
    """``agency``'s roster, by name."""
    return list(session.scalars(select(RosterEntry).where(RosterEntry.agency == agency)
                                .order_by(RosterEntry.name, RosterEntry.id)))


def holds_on(entry: RosterEntry, day: date) -> bool:
    """True when ``entry`` is on duty on ``day``."""
    return str(day.isoweekday()) in entry.weekdays or day.isoformat() in (entry.dates or [])


def on_duty(session: Session, agency: str, day: date) -> list[RosterEntry]:
    """The people on duty for ``agency`` on ``day`` (one per number)."""
    found: dict[str, RosterEntry] = {}
    for entry in entries(session, agency):
        if holds_on(entry, day):
            found.setdefault(entry.number, entry)
    return list(found.values())


def describe_days(entry: RosterEntry, names: tuple[str, ...]) -> str:
    """``Sen, Sel, Rab + 2026-12-25`` for a list (``names``: Monday … Sunday, short)."""
    parts = [names[int(d) - 1] for d in entry.weekdays]
    text = ", ".join(parts)
    if entry.dates:
        text = f"{text} + {', '.join(entry.dates)}" if text else ", ".join(entry.dates)
    return text


# --------------------------------------------------------------------------- sms-gateway roster …

@click.group("roster")
def roster_group() -> None:
    """On-duty rosters (edited by each agency's admin on /admin/roster)."""


@roster_group.command("list")
@click.argument("code")
@click.option("--on", "day", help="Only who is on duty on this date (YYYY-MM-DD; `today` for today).")
def roster_list(code: str, day: str | None) -> None:
    """CODE's roster (an agency code, or PUSAT for the central queue): name, number, account, days."""
    from .. import deadlines
    from ..config import get_settings
    from ..db import session_factory
    from ..registry import registry_for
    from .scope import CENTRAL

    settings = get_settings()
    code = code.upper()
    if code != CENTRAL and code not in registry_for(settings).agencies:
        raise click.ClickException(f"{code} is not an agency (or PUSAT)")
    with session_factory(settings.DATABASE_URL)() as session:
        if day:
            try:
                when = deadlines.today() if day == "today" else date.fromisoformat(day)
            except ValueError:
                raise click.BadParameter(f"{day!r} is not a date", param_hint="--on") from None
            rows = on_duty(session, code, when)
        else:
            rows = entries(session, code)
    if not rows:
        click.echo(f"nobody on {code}'s roster" + (f" on {day}" if day else ""))
    names = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    for row in rows:
        click.echo(f"#{row.id:<4} {row.name:30} {row.number:16} {row.email or '-':30} {describe_days(row, names)}")
