"""``sms-gateway agency …`` (tokens, webhooks, deadline watch) and ``sms-gateway deadlines …``."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from ..config import get_settings


@click.group()
def agency() -> None:
    """Agency access: API tokens, webhooks, the deadline watch."""


@agency.group()
def token() -> None:
    """API tokens (Authorization: Bearer …)."""


@token.command("create")
@click.argument("code", required=False)
@click.option("--admin", is_flag=True, help="A central-admin token: every report, every agency.")
@click.option("--label", help="Who holds it (shown by `token list`).")
def token_create(code: str | None, admin: bool, label: str | None) -> None:
    """Create a token for agency (or coordinator) CODE, or --admin; the token is the last line, shown once."""
    from ..db import session_factory
    from ..registry import registry_for
    from . import tokens
    from .scope import known_code

    if admin == (code is not None):
        raise click.UsageError("give an agency CODE, or --admin for a central-admin token")
    settings = get_settings()
    if code is not None:
        code = code.upper()
        if not known_code(registry_for(settings), code):
            raise click.ClickException(f"{code} is neither an agency nor a coordinator in {settings.PREFIXES_FILE}")
    with session_factory(settings.DATABASE_URL)() as session:
        row, secret = tokens.create(session, agency=code, admin=admin, label=label)
        session.commit()
        click.echo(f"token #{row.id} for {'the central admin' if admin else code}; it is shown only now, "
                   "store it safely:")
        click.echo(secret)


@token.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include revoked tokens.")
def token_list(show_all: bool) -> None:
    """List tokens (id, hint, holder, label, created, last used)."""
    from sqlalchemy import select

    from ..db import session_factory
    from ..models import ApiToken

    settings = get_settings()
    with session_factory(settings.DATABASE_URL)() as session:
        query = select(ApiToken).order_by(ApiToken.id)
        if not show_all:
            query = query.where(ApiToken.revoked_at.is_(None))
        rows = session.scalars(query).all()
    if not rows:
        click.echo("no tokens")
    for row in rows:
        holder = "ADMIN" if row.admin else row.agency
        used = row.last_used_at.isoformat(timespec="seconds") if row.last_used_at else "never"
        revoked = f"  REVOKED {row.revoked_at.isoformat(timespec='seconds')}" if row.revoked_at else ""
        click.echo(f"#{row.id:<4} {row.hint}…  {holder:16} created {row.created_at.isoformat(timespec='seconds')}"
                   f"  used {used}  {row.label or ''}{revoked}")


@token.command("revoke")
@click.argument("ident")
def token_revoke(ident: str) -> None:
    """Revoke token IDENT: its id (#3 or 3), its hint (lpr_Ab12Cd34) or the token itself."""
    from ..db import session_factory
    from . import tokens

    settings = get_settings()
    with session_factory(settings.DATABASE_URL)() as session:
        rows = tokens.find(session, ident.lstrip("#"))
        if not rows:
            raise click.ClickException(f"no token matches {ident!r}")
        if len(rows) > 1:
            raise click.ClickException(f"{len(rows)} tokens match {ident!r}: revoke by id")
        changed = tokens.revoke(rows[0])
        session.commit()
    click.echo(f"token #{rows[0].id} {'revoked' if changed else 'was already revoked'}")


@agency.group()
def webhook() -> None:
    """Pushes to agencies' and coordinators' webhook_url."""


@webhook.command("secret")
@click.argument("code")
def webhook_secret(code: str) -> None:
    """Print the HMAC key CODE's receiver checks X-Lapor-Signature with (derived from AGENCY_WEBHOOK_SECRET)."""
    from .push import signing_key

    key = signing_key(get_settings(), code.upper())
    if key is None:
        raise click.ClickException("AGENCY_WEBHOOK_SECRET is not set")
    click.echo(key)


@webhook.command("deliveries")
@click.option("--state", type=click.Choice(["pending", "delivering", "delivered", "failed"]))
@click.option("--to", "recipient", help="Only deliveries to this agency/coordinator code.")
@click.option("--limit", default=30, show_default=True)
def webhook_deliveries(state: str | None, recipient: str | None, limit: int) -> None:
    """The delivery log, newest first."""
    from sqlalchemy import select

    from ..db import session_factory
    from ..models import WebhookDelivery

    settings = get_settings()
    with session_factory(settings.DATABASE_URL)() as session:
        query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
        if state:
            query = query.where(WebhookDelivery.state == state)
        if recipient:
            query = query.where(WebhookDelivery.recipient == recipient.upper())
        rows = session.scalars(query).all()
    if not rows:
        click.echo("no deliveries")
    for row in rows:
        click.echo(f"#{row.id:<6} {row.created_at.isoformat(timespec='seconds')} {row.event:18} {row.recipient:16} "
                   f"{row.state:10} attempts {row.attempts} {row.response_status or '-'} {row.url or ''}")
        if row.error:
            click.echo(f"{'':8}error: {row.error}")


@webhook.command("replay")
@click.argument("delivery_ids", nargs=-1, type=int)
@click.option("--failed", is_flag=True, help="Replay every failed delivery (with --to: of that recipient).")
@click.option("--to", "recipient", help="With --failed: only deliveries to this code.")
def webhook_replay(delivery_ids: tuple[int, ...], failed: bool, recipient: str | None) -> None:
    """Send deliveries again (same delivery id, fresh signature): by id, or every failed one."""
    from sqlalchemy import select

    from ..db import session_factory
    from ..models import WebhookDelivery
    from .push import FAILED, replay

    settings = get_settings()
    ids = list(delivery_ids)
    if failed:
        with session_factory(settings.DATABASE_URL)() as session:
            query = select(WebhookDelivery.id).where(WebhookDelivery.state == FAILED)
            if recipient:
                query = query.where(WebhookDelivery.recipient == recipient.upper())
            ids += list(session.scalars(query.order_by(WebhookDelivery.id)))
    if not ids:
        raise click.UsageError("give delivery ids, or --failed")
    problems = 0
    for delivery_id in ids:
        result = replay(settings, delivery_id)
        problems += result != "replayed"
        click.echo(f"#{delivery_id}: {result}")
    if problems:
        sys.exit(1)


@agency.command("watch")
def watch() -> None:
    """Run the deadline watch once now: record escalations, notify, close unanswered follow-ups."""
    from .citizen import close_unanswered
    from .escalation import run_escalations

    escalated = run_escalations()
    closed = close_unanswered()
    click.echo(f"{escalated['escalations']} new escalation(s), {escalated['sms']} SMS to admins; "
               f"{closed['closed']} report(s) closed for lack of an answer")


# --------------------------------------------------------------------------- deadlines

@click.group("deadlines")
def deadlines_group() -> None:
    """Working days: holidays in force and the decree override file."""


@deadlines_group.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def deadlines_check(file: str | None) -> None:
    """Validate the override FILE (default HOLIDAYS_OVERRIDE_FILE); print file:line: problem on errors."""
    from ..deadlines import OverrideError, parse_overrides

    path = file or get_settings().HOLIDAYS_OVERRIDE_FILE
    try:
        found = parse_overrides(path)
    except OverrideError as exc:
        for problem in exc.problems:
            click.echo(problem.render(), err=True)
        sys.exit(1)
    click.echo(f"{path}: ok ({len(found.added)} day(s) added, {len(found.removed)} given back)")


@deadlines_group.command("holidays")
@click.argument("year", type=int)
def deadlines_holidays(year: int) -> None:
    """Days off of YEAR in force: public holidays, collective leave, overrides."""
    from ..deadlines import holidays_in

    for day, name in holidays_in(year).items():
        click.echo(f"{day} {day.strftime('%a')} {name}")


@deadlines_group.command("due")
@click.argument("received", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M"]))
@click.option("--special", is_flag=True, help="A special category (1 and 2 working days).")
def deadlines_due(received: datetime, special: bool) -> None:
    """Disposition and follow-up due dates of a report RECEIVED (Jakarta date or date-time)."""
    from ..deadlines import JAKARTA, due_dates

    disposition, followup = due_dates(received.replace(tzinfo=JAKARTA), special)
    click.echo(f"disposition {disposition} {disposition.strftime('%a')}")
    click.echo(f"follow-up   {followup} {followup.strftime('%a')}")
