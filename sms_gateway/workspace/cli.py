"""``sms-gateway user …``: workspace accounts from the command line (the first central admin, agency admins)."""

from __future__ import annotations

import click

from ..config import get_settings


@click.group()
def user() -> None:
    """Workspace accounts: create, list, disable, new set-password link."""


@user.command("create")
@click.argument("email")
@click.option("--agency", help="Agency code of a staff or admin account.")
@click.option("--role", type=click.Choice(["staff", "admin"]), default="staff", show_default=True,
              help="staff works reports; admin also manages the agency's staff, canned answers, webhook.")
@click.option("--central", is_flag=True, help="A central admin: every report, every agency.")
@click.option("--coordinator", help="A coordinator's account (a code under coordinators: in prefixes.yaml): "
              "the board of the agencies it watches, intervensi and teguran.")
@click.option("--operator", is_flag=True, help="An operator: the operations page only, no report content.")
@click.option("--name", default="", help="The person's name, shown in report histories.")
def user_create(email: str, agency: str | None, role: str, central: bool, coordinator: str | None,
                operator: bool, name: str) -> None:
    """Create an account; the one-time set-password link is the last line."""
    from ..db import session_factory
    from ..registry import registry_for
    from . import accounts
    from .access import CENTRAL_ADMIN, COORDINATOR, OPERATOR

    if [central, agency is not None, coordinator is not None, operator].count(True) != 1:
        raise click.UsageError("give --agency CODE (with --role staff|admin), --coordinator CODE, --central, "
                               "or --operator")
    if coordinator is not None:
        role, agency = COORDINATOR, coordinator
    if operator:
        role = OPERATOR
    settings = get_settings()
    registry = registry_for(settings)
    with session_factory(settings.DATABASE_URL)() as session:
        try:
            row = accounts.create_user(session, registry, email=email, name=name,
                                       role=CENTRAL_ADMIN if central else role,
                                       agency=agency.upper() if agency else None, created_by="cli")
        except accounts.AccountError as exc:
            raise click.ClickException(str(exc)) from None
        secret = accounts.issue_link(session, settings, row)
        session.commit()
        holder = ("central admin" if central else f"coordinator {row.agency}" if coordinator
                  else "operator" if operator else f"{row.role} of {row.agency}")
        click.echo(f"account #{row.id} {row.email} ({holder}); give the person this one-time link "
                   f"(valid {settings.WORKSPACE_LINK_HOURS:g} hours) to set a password:")
        click.echo(accounts.link_url(settings, registry, row, secret))


@user.command("link")
@click.argument("email")
def user_link(email: str) -> None:
    """A new one-time set-password link for EMAIL (a forgotten password); the link is the last line."""
    from ..db import session_factory
    from ..registry import registry_for
    from . import accounts

    settings = get_settings()
    with session_factory(settings.DATABASE_URL)() as session:
        row = accounts.find(session, email)
        if row is None:
            raise click.ClickException(f"no account {email}")
        secret = accounts.issue_link(session, settings, row)
        session.commit()
        click.echo(f"one-time link for {row.email} (earlier links no longer work):")
        click.echo(accounts.link_url(settings, registry_for(settings), row, secret))


@user.command("list")
@click.option("--agency", help="Only accounts of this agency.")
def user_list(agency: str | None) -> None:
    """Accounts: id, e-mail, role, agency, state, last sign-in."""
    from sqlalchemy import select

    from ..db import session_factory
    from ..models import User

    settings = get_settings()
    with session_factory(settings.DATABASE_URL)() as session:
        query = select(User).order_by(User.agency, User.email)
        if agency:
            query = query.where(User.agency == agency.upper())
        rows = session.scalars(query).all()
    if not rows:
        click.echo("no accounts")
    for row in rows:
        state = "disabled" if row.disabled_at else ("active" if row.password_hash else "no password yet")
        last = row.last_login_at.isoformat(timespec="minutes") if row.last_login_at else "never"
        click.echo(f"#{row.id:<4} {row.email:40} {row.role:8} {row.agency or 'CENTRAL':16} {state:16} "
                   f"last sign-in {last}  {row.name}")


@user.command("disable")
@click.argument("email")
def user_disable(email: str) -> None:
    """Disable EMAIL's account; its open sessions end at once."""
    from ..db import session_factory
    from . import accounts

    settings = get_settings()
    with session_factory(settings.DATABASE_URL)() as session:
        row = accounts.find(session, email)
        if row is None:
            raise click.ClickException(f"no account {email}")
        changed = accounts.disable(session, row)
        session.commit()
    click.echo(f"{row.email} {'disabled; its sessions ended' if changed else 'was already disabled'}")
