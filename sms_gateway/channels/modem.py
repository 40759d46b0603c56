"""GSM modem through python-gammu: the one process that owns the modem.

A serial device can be opened by one process only, so ``sms-gateway modem``
does both directions in a single loop:

- inbound: read every SMS in the SIM and phone inboxes, join multipart messages
  (``gammu.LinkSMS`` + ``gammu.DecodeSMS``) whatever order the parts are in,
  hold an incomplete one until its parts come or ``MODEM_MULTIPART_TIMEOUT``
  passes (then store what arrived, marked incomplete), store each message with
  ``ingest.accept`` and delete it from the modem only after that committed. The
  external id is derived from the parts themselves (sender, SMSC time stamp,
  concatenation reference, text), so a crash between storing and deleting finds
  the same id on the next read and the duplicate is recognised;
- outbound: run the modem's outbox sender (``sender.ChannelSender``, one
  send at a time, ``MODEM_MPM``) in this loop; its ``Channel.send`` is
  ``ModemChannel.send``, which sends through this process's connection. While
  the modem is away nothing is claimed, so replies wait in the outbox,
  ``queued``. Each send is written to a small journal (``var/``, fsynced)
  before and after ``SendSMS``, so a send cut short by a crash is settled
  from it on restart: sent, never started (sent now), or cut mid-call (the
  modem keeps no record of what it sent: not sent again, and the row says so);
- a Gammu error tears the connection down; reconnection backs off from 1 s up
  to ``MODEM_RECONNECT_MAX_DELAY``. SIGTERM lets the current message finish.
- every ``MODEM_STATUS_INTERVAL`` it logs signal, battery and counters and
  writes them to Redis for ``sms-gateway modem --status``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import gammu
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from .. import gsm, ingest, phone
from .. import queue as rq_queue
from ..config import VAR_DIR, Settings
from ..db import session_factory
from ..models import InboundMessage, OutboundMessage, OutboundState, utcnow
from ..outage import Outage
from .base import NOT_SENT, SENT, UNKNOWN, IncomingSMS, OutgoingSMS, Reconciled, SendError, SendResult, register

log = logging.getLogger(__name__)

NAME = "modem"
STATUS_KEY_PREFIX = "sms-gateway:modem-status:"

# Gammu errors that mean the modem itself is gone or not answering: the
# connection is torn down and opened again (with backoff).
CONNECTION_ERRORS = frozenset({
    "ERR_DEVICEBUSY", "ERR_DEVICECHANGESPEEDERROR", "ERR_DEVICEDTRRTSERROR", "ERR_DEVICELOCKED",
    "ERR_DEVICENODRIVER", "ERR_DEVICENOPERMISSION", "ERR_DEVICENOTEXIST", "ERR_DEVICENOTWORK",
    "ERR_DEVICEOPENERROR", "ERR_DEVICEPARITYERROR", "ERR_DEVICEREADERROR", "ERR_DEVICEWRITEERROR",
    "ERR_NOTCONNECTED", "ERR_PHONEOFF", "ERR_TIMEOUT", "ERR_NOSIM", "ERR_UNKNOWNRESPONSE",
})
# Send errors that the same message will hit again however often it is tried:
# the modem cannot do it, the number or the text is refused, no SMSC is set.
PERMANENT_ERRORS = frozenset({"ERR_NOTSUPPORTED", "ERR_NOTIMPLEMENTED", "ERR_INVALIDDATA", "ERR_EMPTYSMSC"})
# Optional readings (battery on a USB stick) that some modems do not have.
_UNSUPPORTED = (gammu.ERR_NOTSUPPORTED, gammu.ERR_NOTIMPLEMENTED)

_ACTIVE: ModemService | None = None


def error_name(exc: BaseException) -> str:
    """Gammu's name of an error (``ERR_TIMEOUT``)."""
    return type(exc).__name__


def describe(exc: BaseException) -> str:
    """``ERR_NAME: Gammu's text`` for logs and the outbound row."""
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    text = info.get("Text") or str(exc)
    return f"{error_name(exc)}: {text}"


class ModemConfigError(Exception):
    """The gammurc cannot be used (missing file, no such section)."""


def check_config(gammurc: str, section: int) -> dict[str, Any]:
    """Read ``gammurc``'s section ``section``; its settings, or ``ModemConfigError``."""
    machine = gammu.StateMachine()
    try:
        machine.ReadConfig(Section=section, Filename=gammurc)
    except gammu.GSMError as exc:
        raise ModemConfigError(f"{gammurc} section {section}: {describe(exc)}") from exc
    config: dict[str, Any] = machine.GetConfig(section)
    return config


# --------------------------------------------------------------------------- reading

def _part_text(part: dict[str, Any]) -> str:
    text = part.get("Text") or ""
    # 8-bit data SMS carry bytes; they are kept (never dropped) as best we can read them.
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _concat(part: dict[str, Any]) -> tuple[int, int, int] | None:
    """(reference, part number, parts) of a part of a concatenated SMS, else None."""
    udh = part.get("UDH") or {}
    total, number = udh.get("AllParts", -1), udh.get("PartNumber", -1)
    if total is None or total <= 1 or number is None or number < 1:
        return None
    ref = udh.get("ID16bit", -1)
    if ref is None or ref < 0:
        ref = udh.get("ID8bit", -1)
    return int(ref), int(number), int(total)


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    # python-gammu gives aware times when the SMSC sent a zone; a naive one is
    # the modem's local time, which is this server's local time.
    return value.astimezone(UTC)


def part_key(part: dict[str, Any]) -> str:
    """Stable identity of one received part: the same bytes read again give the same key."""
    concat = _concat(part) or (0, 1, 1)
    when = _aware(part.get("DateTime"))
    raw = "\x1f".join([str(part.get("Number") or ""), *map(str, concat),
                       when.isoformat() if when else "", _part_text(part)])
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:24]


@dataclass
class ModemSMS:
    """One SMS as read from the modem, joined from its parts (all of them, or those that came)."""

    sender: str
    parts: list[dict[str, Any]]  # in part order
    total: int  # parts the sender sent (1 for a plain SMS)
    text: str

    @property
    def multipart(self) -> bool:
        """True for a concatenated SMS."""
        return self.total > 1

    @property
    def numbers(self) -> list[int]:
        """Part numbers that arrived."""
        return [(_concat(p) or (0, 1, 1))[1] for p in self.parts]

    @property
    def complete(self) -> bool:
        """Every part is here."""
        return sorted(self.numbers) == list(range(1, self.total + 1))

    @property
    def group_key(self) -> tuple[str, int, int]:
        """Sender, concatenation reference and size: what parts of one SMS share."""
        concat = _concat(self.parts[0]) or (0, 1, 1)
        return self.sender, concat[0], self.total

    @property
    def locations(self) -> list[int]:
        """Where the parts are stored on the modem."""
        return [int(p["Location"]) for p in self.parts]

    @property
    def part_keys(self) -> list[str]:
        """Identity of each part (see ``part_key``)."""
        return [part_key(p) for p in self.parts]

    @property
    def external_id(self) -> str:
        """Deduplication key: the same parts read again give the same id."""
        return "gsm-" + hashlib.sha256("\n".join(self.part_keys).encode()).hexdigest()[:40]

    @property
    def provider_time(self) -> datetime | None:
        """SMSC time stamp of the earliest part."""
        times = [t for t in (_aware(p.get("DateTime")) for p in self.parts) if t is not None]
        return min(times) if times else None


def read_inbox(machine: Any) -> list[list[dict[str, Any]]]:
    """Every received SMS part in the modem's inboxes (SIM and phone), with its location."""
    try:
        status = machine.GetSMSStatus()
        if status.get("SIMUsed", 0) + status.get("PhoneUsed", 0) == 0:
            return []
    except _UNSUPPORTED:
        pass  # cannot count them: read through all folders anyway
    found: list[list[dict[str, Any]]] = []
    seen: set[int] = set()
    try:
        batch = machine.GetNextSMS(Start=True, Folder=0)
        while True:
            location = int(batch[0]["Location"])
            if location in seen:  # a driver that loops; everything has been read once
                break
            seen.add(location)
            # Folder 0 walks every folder; outboxes and templates hold our own "Submit" SMS.
            if all(p.get("Type") == "Deliver" for p in batch):
                found.append(batch)
            batch = machine.GetNextSMS(Location=location, Folder=0)
    except gammu.ERR_EMPTY:
        pass
    return found


def _decoded_text(parts: list[dict[str, Any]]) -> str:
    try:
        decoded = gammu.DecodeSMS(parts)
    except (gammu.GSMError, ValueError, TypeError):
        decoded = None
    if decoded:
        texts = [e["Buffer"] for e in decoded.get("Entries", []) if isinstance(e.get("Buffer"), str)]
        if texts:
            return "".join(texts)
    # A plain SMS (DecodeSMS gives None), or parts Gammu cannot join: their texts in order.
    return "".join(_part_text(p) for p in parts)


def join_parts(batches: list[list[dict[str, Any]]]) -> list[ModemSMS]:
    """Group parts into messages, any arrival order; incomplete ones keep the parts that came."""
    messages: list[ModemSMS] = []
    pieces: list[dict[str, Any]] = []
    for group in gammu.LinkSMS(batches):
        concat = _concat(group[0])
        if concat is None:
            messages.append(ModemSMS(str(group[0].get("Number") or ""), list(group), 1, _decoded_text(group)))
            continue
        total = concat[2]
        numbers = sorted((_concat(p) or (0, 0, 0))[1] for p in group)
        if numbers == list(range(1, total + 1)):
            ordered = sorted(group, key=lambda p: (_concat(p) or (0, 0, 0))[1])
            messages.append(ModemSMS(str(group[0].get("Number") or ""), ordered, total, _decoded_text(ordered)))
        else:
            pieces.extend(group)  # LinkSMS leaves an incomplete message in pieces
    for parts in _merge_pieces(pieces):
        first = parts[0]
        total = (_concat(first) or (0, 1, 1))[2]
        messages.append(ModemSMS(str(first.get("Number") or ""), parts, total,
                                 "".join(_part_text(p) for p in parts)))
    return messages


def _merge_pieces(pieces: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Parts of incomplete messages grouped by sender, reference and size."""
    buckets: dict[tuple[str, int, int], list[list[dict[str, Any]]]] = {}
    ordered = sorted(pieces, key=lambda p: (_aware(p.get("DateTime")) or datetime.min.replace(tzinfo=UTC),
                                            int(p.get("Location", 0))))
    for part in ordered:
        ref, number, total = _concat(part) or (0, 1, 1)
        groups = buckets.setdefault((str(part.get("Number") or ""), ref, total), [])
        # The same reference reused by the sender: a second part with the same
        # number belongs to another message.
        target = next((g for g in groups if number not in {(_concat(p) or (0, 0, 0))[1] for p in g}), None)
        if target is None:
            groups.append([part])
        else:
            target.append(part)
    return [sorted(g, key=lambda p: (_concat(p) or (0, 0, 0))[1]) for gs in buckets.values() for g in gs]


# --------------------------------------------------------------------------- sending

def encode(text: str) -> list[dict[str, Any]]:
    """The SMS parts for ``text``: GSM-7 where it allows, UCS-2 otherwise, concatenated when long."""
    return list(gammu.EncodeSMS({
        "Class": -1,
        "Unicode": not gsm.is_gsm7(text),
        "Entries": [{"ID": "ConcatenatedTextLong", "Buffer": text}],
    }))


@dataclass
class ModemChannel:
    """Sends through the modem connection of this process (only ``sms-gateway modem`` has one)."""

    name: str = NAME
    rate: float | None = None
    concurrency: int | None = None

    def send(self, sms: OutgoingSMS) -> SendResult:
        """Send ``sms`` with the running modem; retryable error when this process has none."""
        if _ACTIVE is None:
            raise SendError("no modem in this process: only `sms-gateway modem` sends the modem's replies",
                            retryable=True, code="ERR_NOTCONNECTED")
        return _ACTIVE.send_sms(sms)

    def reconcile(self, sms: OutgoingSMS, attempt_started: datetime) -> Reconciled:
        """Settle an interrupted send from this modem's send journal."""
        if _ACTIVE is None:
            raise SendError("no modem in this process", retryable=True, code="ERR_NOTCONNECTED")
        return _ACTIVE.journal.verdict(sms.outbound_id)


@register(NAME)
def build(settings: Settings) -> ModemChannel:
    """Factory for the registry. Always configured: replies wait in the outbox for the modem process."""
    return ModemChannel(rate=float(settings.MODEM_MPM) / 60 if settings.MODEM_MPM else None)


def active() -> ModemService | None:
    """The modem service of this process, if it runs one."""
    return _ACTIVE


@dataclass
class SendJournal:
    """What this modem was sending when it stopped: "start <id>" before SendSMS, "sent <id> <refs>"
    after, each line fsynced. The device itself keeps no record of SMS sent with SendSMS."""

    path: Path
    keep: int = 500  # lines kept when the file is rewritten

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def start(self, outbound_id: int) -> None:
        """Record that a send of ``outbound_id`` is about to start."""
        self._append(f"start {outbound_id}")

    def sent(self, outbound_id: int, provider_id: str) -> None:
        """Record that the modem accepted ``outbound_id``."""
        self._append(f"sent {outbound_id} {provider_id}")

    def verdict(self, outbound_id: int) -> Reconciled:
        """What the journal says about an interrupted send of ``outbound_id``."""
        started = False
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            lines = []
        for line in reversed(lines):
            parts = line.split()
            if len(parts) >= 2 and parts[1] == str(outbound_id):
                if parts[0] == "sent":
                    return Reconciled(SENT, "the modem's send journal has it sent",
                                      provider_id=parts[2] if len(parts) > 2 else None)
                started = True
                break
        if started:
            return Reconciled(UNKNOWN, "the modem stopped during SendSMS and keeps no sent record")
        return Reconciled(NOT_SENT, "the modem's send journal shows no attempt")

    def compact(self) -> None:
        """Keep the last ``keep`` lines (called at start)."""
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return
        if len(lines) > self.keep:
            self.path.write_text("\n".join(lines[-self.keep:]) + "\n")


# --------------------------------------------------------------------------- the process

@dataclass
class Counters:
    """What the modem did since the process started."""

    received: int = 0  # SMS stored (duplicates not counted)
    sent: int = 0  # replies the modem accepted
    failed: int = 0  # send attempts that raised
    reconnects: int = 0


@dataclass
class ModemService:
    """The loop that owns one modem: reads and stores inbound SMS, sends queued replies."""

    settings: Settings
    gammurc: str
    section: int = 0
    state_machine: Callable[[], Any] = gammu.StateMachine
    clock: Callable[[], float] = time.monotonic
    counters: Counters = field(default_factory=Counters)
    journal_path: Path | None = None  # default var/modem-<host>-<section>.journal

    machine: Any = None
    stopping: bool = False
    last_error: str | None = None
    connected_since: datetime | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    signal_percent: int | None = None
    battery_percent: int | None = None
    started_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        self._held: dict[tuple[str, int, int], float] = {}  # incomplete SMS -> first seen
        self._failures = 0  # consecutive connection failures, for the backoff
        self._connected_before = False
        self._next_connect = self._next_poll = self._next_status = 0.0
        self._broken: str | None = None  # a send hit a connection error: reconnect after the job
        self._sender: Any = None  # sender.ChannelSender, created at the first send
        self.journal = SendJournal(self.journal_path
                                   or VAR_DIR / f"modem-{socket.gethostname()}-{self.section}.journal")
        # One log line when Redis or the database goes away, one when it is back (not one per poll).
        self._redis = Outage("modem: Redis (replies wait)", log, self.settings.RECONNECT_MAX_DELAY)
        self._database = Outage("modem: database (SMS kept on the modem)", log, self.settings.RECONNECT_MAX_DELAY)

    # ---------------------------------------------------------------- lifecycle

    def open(self) -> ModemService:
        """Make this the process's modem (``ModemChannel.send`` uses it)."""
        global _ACTIVE
        _ACTIVE = self
        self.journal.compact()
        return self

    def close(self) -> None:
        """Disconnect, record the last send, write a last status record."""
        global _ACTIVE
        if self._sender is not None:
            self._sender.shutdown()
            self._sender = None
        self.disconnect(None)
        self.write_status(running=False)
        if _ACTIVE is self:
            _ACTIVE = None

    def stop(self, reason: str = "stop requested") -> None:
        """Finish the current message, then leave the loop."""
        if not self.stopping:
            log.info("modem: %s; finishing the current message", reason)
        self.stopping = True

    def connect(self) -> bool:
        """Open the modem; on failure schedule the next attempt with backoff."""
        machine = self.state_machine()
        try:
            machine.ReadConfig(Section=self.section, Filename=self.gammurc)
            machine.Init()
            identity = {"manufacturer": self._optional(machine.GetManufacturer),
                        "model": self._optional(machine.GetModel)}
        except gammu.GSMError as exc:
            try:
                machine.Terminate()
            except gammu.GSMError:
                pass  # it never connected
            hint = (" (is this user in the group that owns the serial device, usually dialout?)"
                    if error_name(exc) in {"ERR_DEVICENOPERMISSION", "ERR_PERMISSION"} else "")
            self._retry_later(f"cannot connect: {describe(exc)}{hint}")
            return False
        if self._connected_before:
            self.counters.reconnects += 1
        self.machine, self.identity = machine, identity
        self.connected_since, self._broken, self._connected_before = utcnow(), None, True
        self._next_poll = self.clock()
        log.info("modem: connected to %s (%s section %s)", " ".join(str(v) for v in _flatten(identity.values()) if v),
                 self.gammurc, self.section)
        self.write_status()
        return True

    def _retry_later(self, reason: str) -> None:
        """Record ``reason`` and schedule the next connection attempt: 1, 2, 4 … s, capped."""
        self._failures += 1
        delay = min(2 ** (self._failures - 1), max(1, int(self.settings.MODEM_RECONNECT_MAX_DELAY)))
        self._next_connect = self.clock() + delay
        self.last_error = reason
        log.warning("modem: %s; next attempt in %s s", reason, delay)
        self.write_status()

    def disconnect(self, reason: str | None) -> None:
        """Drop the connection; with a ``reason`` (an error), reconnect after a backoff."""
        machine, self.machine = self.machine, None
        self.connected_since = None
        if machine is not None:
            try:
                machine.Terminate()
            except gammu.GSMError:
                pass  # the device is already gone, which is why we are here
        if reason is not None:
            self._retry_later(reason)

    @staticmethod
    def _optional(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except _UNSUPPORTED:
            return None

    # ---------------------------------------------------------------- inbound

    def poll_inbox(self) -> int:
        """Store every complete (or timed-out) SMS on the modem, deleting each after it committed."""
        messages = join_parts(read_inbox(self.machine))
        now = self.clock()
        waiting: set[tuple[str, int, int]] = set()
        stored = 0
        interrupted = False  # by SIGTERM or the database: some SMS were not looked at
        for message in messages:
            if self.stopping:
                interrupted = True
                break
            try:
                created = self._take(message, now, waiting)
            except OperationalError as exc:
                # The database is unreachable: everything stays on the modem until it is back.
                self._database.down(exc.orig or exc)
                self.last_error = f"database: {type(exc.orig).__name__}"
                interrupted = True
                break
            except gammu.GSMError:
                raise  # the modem itself: the loop reconnects
            except Exception:
                # One SMS the gateway cannot store must not stop the others; it stays on the modem.
                log.exception("modem: cannot store SMS from %s; kept on the modem", phone.mask(message.sender))
                continue
            if created:
                self.counters.received += 1
                stored += 1
        if not interrupted:  # forget SMS that left the modem some other way; keep the clocks of those not reached
            self._held = {k: v for k, v in self._held.items() if k in waiting}
            if messages:
                self._database.up()
        return stored

    def _take(self, message: ModemSMS, now: float, waiting: set[tuple[str, int, int]]) -> bool:
        """Store ``message`` and delete it from the modem, or hold it for its missing parts.

        True when a new row was stored.
        """
        if message.multipart and self._already_stored(message):
            # Parts left on the modem by a crash between storing the message and deleting all of it.
            log.info("modem: deleting %s leftover part(s) of an SMS already stored", len(message.parts))
            self._delete(message)
            return False
        if not message.complete:
            first_seen = self._held.setdefault(message.group_key, now)
            if now - first_seen < float(self.settings.MODEM_MULTIPART_TIMEOUT):
                waiting.add(message.group_key)
                return False
            log.warning("modem: parts %s of %s from %s never came; storing the SMS incomplete",
                        sorted(set(range(1, message.total + 1)) - set(message.numbers)), message.total,
                        phone.mask(message.sender))
        accepted = ingest.accept(self.settings, self._incoming(message))
        self._delete(message)
        self._held.pop(message.group_key, None)
        return accepted.created

    def _incoming(self, message: ModemSMS) -> IncomingSMS:
        first = message.parts[0]
        meta: dict[str, Any] = {"part_keys": message.part_keys, "parts": len(message.parts),
                                "smsc": (first.get("SMSC") or {}).get("Number") or None,
                                "memory": first.get("Memory") or None}
        if message.multipart:
            meta["total"] = message.total
            missing = sorted(set(range(1, message.total + 1)) - set(message.numbers))
            if missing:
                meta["missing_parts"] = missing
        return IncomingSMS(channel=NAME, external_id=message.external_id, sender=message.sender,
                           text=message.text, provider_time=message.provider_time,
                           incomplete=not message.complete, meta=meta)

    def _already_stored(self, message: ModemSMS) -> bool:
        """True when every part of ``message`` belongs to an SMS stored before (see ``part_key``)."""
        keys = set(message.part_keys)
        sender = phone.normalize(message.sender, self.settings.DEFAULT_REGION)
        sessions = session_factory(self.settings.DATABASE_URL)
        with sessions() as session:
            metas = session.scalars(
                select(InboundMessage.meta)
                .where(InboundMessage.channel == NAME, InboundMessage.sender == sender,
                       InboundMessage.received_at >= utcnow() - timedelta(days=30))
                .order_by(InboundMessage.id.desc()).limit(200)
            ).all()
        return any(keys <= set((meta or {}).get("part_keys") or ()) for meta in metas)

    def _delete(self, message: ModemSMS) -> None:
        for location in message.locations:
            try:
                self.machine.DeleteSMS(Folder=0, Location=location)
            except gammu.ERR_EMPTY:
                pass  # deleted already (a previous run stopped halfway)

    # ---------------------------------------------------------------- outbound

    def send_sms(self, sms: OutgoingSMS) -> SendResult:
        """Send ``sms`` through the modem (called by the send job, in this process)."""
        machine = self.machine
        if machine is None or self._broken:
            raise SendError("modem not connected", retryable=True, code="ERR_NOTCONNECTED")
        if not sms.recipient:
            raise SendError("no recipient number", retryable=False, code="invalid-number")
        try:
            parts = encode(sms.text)
        except (ValueError, gammu.GSMError) as exc:
            raise SendError(f"cannot encode the text: {exc}", retryable=False, code="encode") from exc
        smsc: dict[str, Any] = ({"Location": 0, "Number": self.settings.MODEM_SMSC_NUMBER}
                                if self.settings.MODEM_SMSC_NUMBER
                                else {"Location": int(self.settings.MODEM_SMSC_LOCATION)})
        references: list[str] = []
        self.journal.start(sms.outbound_id)
        for part in parts:
            part["SMSC"], part["Number"] = smsc, sms.recipient
            try:
                references.append(str(machine.SendSMS(part)))
            except gammu.GSMError as exc:
                name = error_name(exc)
                self.counters.failed += 1
                self.last_error = describe(exc)
                if name in CONNECTION_ERRORS:
                    self._broken = describe(exc)
                done = f" (after {len(references)} of {len(parts)} parts)" if references else ""
                raise SendError(describe(exc) + done, retryable=name not in PERMANENT_ERRORS, code=name) from exc
        self.counters.sent += 1
        provider_id = "gammu:" + ",".join(references)
        self.journal.sent(sms.outbound_id, provider_id)
        return SendResult(provider_id=provider_id, status="sent", segments=len(parts))

    def send_queued(self, deadline: float, block: bool = False) -> int:
        """Send due replies from the outbox: until none is due, or (``block``) waiting for more
        until ``deadline``, the next inbox read; past it, what is already claimed is finished."""
        if self._sender is None:
            from ..sender import ChannelSender

            self._sender = ChannelSender(self.settings, NAME, concurrency=1)
        done = 0
        while not self.stopping and self.machine is not None and not self._broken:
            now = self.clock()
            if block and done and now >= deadline:
                break  # time to read the inbox again
            # Short waits: a reply goes as soon as it is queued, and SIGTERM
            # (which only sets a flag) is noticed within a second.
            started = self._sender.step(idle_wait=min(1.0, max(0.0, deadline - now)) if block else 0.0)
            done += started
            if not started and (not block or now >= deadline):
                break
        return done

    # ---------------------------------------------------------------- status

    def read_signal(self) -> None:
        """Refresh signal strength and battery level."""
        if self.machine is None:
            self.signal_percent = self.battery_percent = None
            return
        quality = self._optional(self.machine.GetSignalQuality) or {}
        battery = self._optional(self.machine.GetBatteryCharge) or {}
        self.signal_percent = quality.get("SignalPercent")
        self.battery_percent = battery.get("BatteryPercent")

    def status(self, running: bool = True) -> dict[str, Any]:
        """The record ``sms-gateway modem --status`` shows."""
        return {
            "host": socket.gethostname(),
            "section": self.section,
            "config": self.gammurc,
            "running": running,
            "connected": self.machine is not None,
            "connected_since": _iso(self.connected_since),
            "started_at": _iso(self.started_at),
            "updated_at": _iso(utcnow()),
            "interval": int(self.settings.MODEM_STATUS_INTERVAL),
            "manufacturer": self.identity.get("manufacturer"),
            "model": " ".join(str(v) for v in _flatten([self.identity.get("model")]) if v) or None,
            "signal_percent": self.signal_percent,
            "battery_percent": self.battery_percent,
            "received": self.counters.received,
            "sent": self.counters.sent,
            "failed": self.counters.failed,
            "reconnects": self.counters.reconnects,
            "waiting_multipart": len(self._held),
            "last_error": self.last_error,
        }

    def write_status(self, running: bool = True) -> None:
        """Publish the status record in Redis (best effort: the modem works without it)."""
        record = self.status(running)
        ttl = max(30, 3 * int(self.settings.MODEM_STATUS_INTERVAL))
        try:
            rq_queue.get_redis(self.settings).set(status_key(record["host"], self.section),
                                                  json.dumps(record), ex=ttl)
        except RedisError as exc:
            log.warning("modem: could not write the status to Redis: %s", exc)

    def report_status(self) -> None:
        """Log and publish signal, battery and counters."""
        self.read_signal()
        log.info("modem: %s, signal %s, battery %s, received %s, sent %s, failed %s, waiting multipart %s",
                 "connected" if self.machine is not None else f"disconnected ({self.last_error})",
                 _percent(self.signal_percent), _percent(self.battery_percent), self.counters.received,
                 self.counters.sent, self.counters.failed, len(self._held))
        self.write_status()

    # ---------------------------------------------------------------- loop

    def tick(self, block: bool = False) -> None:
        """One round: connect if needed, read the inbox when due, send queued replies, report."""
        now = self.clock()
        if self.machine is None and now >= self._next_connect:
            self.connect()
        if self.machine is not None:
            try:
                if now >= self._next_poll:
                    self.poll_inbox()
                    self._failures = 0  # a full read worked: the connection is healthy
                    interval = float(self.settings.MODEM_POLL_INTERVAL)
                    self._next_poll = now + (max(interval, 0.2) if block else interval)
                if now >= self._next_status:
                    self.report_status()
                    self._next_status = now + float(self.settings.MODEM_STATUS_INTERVAL)
                self.send_queued(self._next_poll, block)
                self._redis.up()
            except gammu.GSMError as exc:
                self.disconnect(describe(exc))
            except RedisError as exc:
                # Inbound keeps working (stored messages wait for the workers); sends wait.
                # redis-py reconnects by itself at the next command.
                self._redis.down(exc)
                self.last_error = f"redis: {exc}"
                if block:
                    self._sleep(min(float(self.settings.MODEM_POLL_INTERVAL), 5.0))
            except SQLAlchemyError as exc:
                # Replies live in the database: they wait for it (the inbox is not emptied either).
                self._database.down(exc)
                self.last_error = self.last_error if str(self.last_error).startswith("database") \
                    else f"database: {exc}"
                if block:
                    self._sleep(min(float(self.settings.MODEM_POLL_INTERVAL), 5.0))
            if self._broken:
                self.disconnect(self._broken)
        else:
            if now >= self._next_status:
                self.report_status()
                self._next_status = now + float(self.settings.MODEM_STATUS_INTERVAL)
            if block:
                self._sleep(min(self._next_connect, self._next_status) - self.clock())

    def _sleep(self, seconds: float) -> None:
        end = self.clock() + max(0.0, seconds)
        while not self.stopping and self.clock() < end:
            time.sleep(min(0.2, end - self.clock()))

    def run(self) -> int:
        """Loop until SIGTERM/SIGINT; exit code 0 after a clean stop."""

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            self.stop(f"got {signal.Signals(signum).name}")

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        self.open()
        try:
            while not self.stopping:
                self.tick(block=True)
        finally:
            self.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        log.info("modem: stopped cleanly (received %s, sent %s, failed %s)",
                 self.counters.received, self.counters.sent, self.counters.failed)
        return 0


def _flatten(values: Iterable[Any]) -> list[Any]:
    # GetModel() answers a (name, model) pair.
    out: list[Any] = []
    for value in values:
        out.extend(value if isinstance(value, tuple | list) else [value])
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _percent(value: int | None) -> str:
    return "n/a" if value is None else f"{value}%"


# --------------------------------------------------------------------------- status, read from elsewhere

def status_key(host: str, section: int) -> str:
    """Redis key of the status record of the modem process on ``host`` for gammurc ``section``."""
    return f"{STATUS_KEY_PREFIX}{host}:{section}"


def read_status(settings: Settings) -> list[dict[str, Any]]:
    """Status records of the modem processes (fresh or not), with their age in seconds."""
    redis = rq_queue.get_redis(settings)
    records = []
    for key in sorted(redis.scan_iter(match=STATUS_KEY_PREFIX + "*")):
        raw = redis.get(key)
        if raw is None:
            continue
        record = json.loads(raw)
        updated = datetime.fromisoformat(record["updated_at"])
        record["age"] = round((utcnow() - updated).total_seconds(), 1)
        record["stale"] = record["running"] and record["age"] > 2 * max(1, record.get("interval") or 60)
        records.append(record)
    return records


def queued_replies(settings: Settings) -> dict[str, int]:
    """Replies waiting for the modem in the outbox: due now, and retries waiting for their time."""
    now = utcnow()
    queued = (OutboundMessage.channel == NAME, OutboundMessage.state == OutboundState.QUEUED)
    with session_factory(settings.DATABASE_URL)() as session:
        total = session.scalar(select(func.count()).where(*queued)) or 0
        retry = session.scalar(select(func.count()).where(*queued, OutboundMessage.next_attempt_at > now)) or 0
    return {"queued": int(total) - int(retry), "retry_scheduled": int(retry)}


def format_status(record: dict[str, Any]) -> list[str]:
    """Human-readable lines for one status record."""
    if not record["running"]:
        state = "stopped"
    elif record["stale"]:
        state = "NOT REPORTING (process dead or hung?)"
    else:
        state = "connected" if record["connected"] else "DISCONNECTED"
    lines = [f"modem {record['host']} section {record['section']} ({record['config']}): {state}, "
             f"updated {record['age']:.0f} s ago"]
    if record.get("model") or record.get("manufacturer"):
        lines.append(f"  device: {record.get('manufacturer') or ''} {record.get('model') or ''}".rstrip())
    lines.append(f"  signal {_percent(record['signal_percent'])}, battery {_percent(record['battery_percent'])}")
    lines.append(f"  since {record['started_at'][:19]}: received {record['received']}, sent {record['sent']}, "
                 f"failed {record['failed']}, reconnects {record['reconnects']}, "
                 f"multipart waiting for parts {record['waiting_multipart']}")
    if record.get("last_error"):
        lines.append(f"  last error: {record['last_error']}")
    return lines
