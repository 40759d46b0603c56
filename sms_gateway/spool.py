"""The local spool: where webhooks put inbound SMS while the database is unreachable.

Twilio does not retry a webhook that answered 5xx, and Kannel or an
aggregator gives up after a few tries, so "database down" must not mean
"message refused". ``ingest.accept_or_spool`` appends such a message to
``var/spool/inbound.jsonl`` (one JSON line per message, fsynced before the
provider gets its 200, with the provider id that deduplicates it) and the
replayer stores the file when the database is back. Replaying goes through the
same INSERT as every message, keyed on (channel, provider id): a message
replayed twice, or spooled while its retry was stored normally, is stored
once. The replayer runs in each web process (every ``SPOOL_REPLAY_INTERVAL``
seconds, one process at a time per host) and as ``sms-gateway spool replay``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .channels.base import IncomingSMS
from .config import Settings
from .outage import DATABASE_DOWN, Outage

log = logging.getLogger(__name__)

ACTIVE = "inbound.jsonl"  # appended to by the webhooks
REPLAY_SUFFIX = ".replay"  # taken by a replayer; deleted once stored
REJECTED = "rejected.jsonl"  # records the database refused for good, kept for an operator
_THREAD_LOCK = threading.Lock()
# The database as this web process sees it: the webhooks log when it goes away
# (and they start spooling), the replayer when it is back (and the spool is stored).
DATABASE = Outage("database", log)


def spool_dir(settings: Settings) -> Path:
    """The spool folder of this host (SPOOL_DIR)."""
    return Path(settings.SPOOL_DIR)


@contextmanager
def _flock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """An exclusive lock on ``path`` shared by every process of this host; yields False if busy."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _record(sms: IncomingSMS) -> dict[str, Any]:
    return {"channel": sms.channel, "external_id": sms.external_id, "sender": sms.sender,
            "recipient": sms.recipient, "text": sms.text,
            "provider_time": sms.provider_time.isoformat() if sms.provider_time else None,
            "incomplete": sms.incomplete, "meta": sms.meta, "spooled_at": time.time()}


def _message(record: dict[str, Any]) -> IncomingSMS:
    provider_time = record.get("provider_time")
    return IncomingSMS(channel=record["channel"], external_id=record["external_id"], sender=record["sender"],
                       text=record["text"], recipient=record.get("recipient", ""),
                       provider_time=datetime.fromisoformat(provider_time) if provider_time else None,
                       incomplete=bool(record.get("incomplete")), meta=dict(record.get("meta") or {},
                                                                             spooled=True))


def append(settings: Settings, sms: IncomingSMS) -> None:
    """Append ``sms`` to the spool and fsync it; returns once it is on disk."""
    folder = spool_dir(settings)
    # ASCII JSON: any character (a lone surrogate from a UCS-2 SMS too) survives as an escape.
    line = (json.dumps(_record(sms), ensure_ascii=True) + "\n").encode("ascii")
    path = folder / ACTIVE
    with _THREAD_LOCK, _flock(folder / "inbound.lock"):
        new = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            _fsync_dir(folder)  # the file's name must survive a crash too


def depth(settings: Settings) -> int:
    """Messages in the spool of this host, waiting to be stored."""
    folder = spool_dir(settings)
    if not folder.exists():
        return 0
    total = 0
    for path in [folder / ACTIVE, *folder.glob(f"*{REPLAY_SUFFIX}")]:
        try:
            with path.open("rb") as f:
                total += sum(1 for line in f if line.endswith(b"\n"))
        except FileNotFoundError:
            continue
    return total


def _take_active(folder: Path) -> None:
    """Move the active file aside (atomically, under the writers' lock) so writers start a new one."""
    path = folder / ACTIVE
    with _THREAD_LOCK, _flock(folder / "inbound.lock"):
        if path.exists() and path.stat().st_size:
            path.rename(folder / f"inbound-{time.time_ns()}{REPLAY_SUFFIX}")
            _fsync_dir(folder)


def _read(path: Path) -> list[dict[str, Any]]:
    records = []
    for number, raw in enumerate(path.read_bytes().splitlines(keepends=True), 1):
        if not raw.endswith(b"\n"):
            # A write cut short by a crash: it was never acknowledged, so the provider retries it.
            log.warning("spool %s:%s: incomplete last record ignored", path.name, number)
            continue
        try:
            records.append(json.loads(raw))
        except ValueError:
            log.error("spool %s:%s: unreadable record kept in %s", path.name, number, REJECTED)
            _reject(path.parent, raw)
    return records


def _reject(folder: Path, raw: bytes) -> None:
    with (folder / REJECTED).open("ab") as f:
        f.write(raw if raw.endswith(b"\n") else raw + b"\n")
        f.flush()
        os.fsync(f.fileno())


def replay(settings: Settings) -> int:
    """Store every spooled message (exactly once); the number newly stored.

    Raises a ``DATABASE_DOWN`` error when the database is still unreachable: the
    files stay for the next attempt. Returns 0 at once if another process is replaying.
    """
    from .ingest import store_batch

    folder = spool_dir(settings)
    if not folder.exists():
        return 0
    with _flock(folder / "replay.lock", blocking=False) as mine:
        if not mine:
            return 0
        _take_active(folder)
        created = 0
        for path in sorted(folder.glob(f"*{REPLAY_SUFFIX}")):
            records = _read(path)
            for start in range(0, len(records), 500):
                chunk = records[start:start + 500]
                arrived = [datetime.fromtimestamp(float(r.get("spooled_at") or time.time()), UTC) for r in chunk]
                results = store_batch(settings, [_message(r) for r in chunk], arrived)
                for record, result in zip(chunk, results, strict=True):
                    if isinstance(result, DATABASE_DOWN):
                        raise result
                    if isinstance(result, BaseException):
                        log.error("spooled %s message %s refused by the database (%s); kept in %s",
                                  record["channel"], record["external_id"], result, REJECTED)
                        _reject(folder, (json.dumps(record, ensure_ascii=True) + "\n").encode("ascii"))
                    elif result.created:
                        created += 1
            path.unlink()
            _fsync_dir(folder)
        if created:
            log.warning("spool: %s message(s) stored now that the database is back", created)
        return created


class Replayer:
    """Replays the spool every ``interval`` seconds in a background thread of the web process."""

    def __init__(self, settings: Settings, interval: float) -> None:
        self.settings = settings
        self.interval = interval
        self.outage = DATABASE
        self.outage.max_delay = max(float(settings.RECONNECT_MAX_DELAY), 0.5)

    def start(self) -> Replayer:
        """Start the thread (a daemon: it holds nothing that a stop could lose)."""
        threading.Thread(target=self._run, name="spool-replayer", daemon=True).start()
        return self

    def _run(self) -> None:
        while True:
            delay = self.interval
            folder = spool_dir(self.settings)
            if (folder / ACTIVE).exists() or any(folder.glob(f"*{REPLAY_SUFFIX}")):
                try:
                    replay(self.settings)
                    self.outage.up()
                except DATABASE_DOWN as exc:
                    delay = max(delay, self.outage.down(exc))
                except Exception:
                    log.exception("spool replay failed; trying again in %.0f s", delay)
            time.sleep(delay)


_REPLAYERS: dict[tuple[int, str, str], Replayer] = {}


def ensure_replayer(settings: Settings) -> None:
    """Start this process's replayer of SPOOL_DIR once (keyed by pid: a forked gunicorn worker needs its own)."""
    key = (os.getpid(), str(settings.SPOOL_DIR), settings.DATABASE_URL)
    with _THREAD_LOCK:
        if key not in _REPLAYERS:
            _REPLAYERS[key] = Replayer(settings, settings.SPOOL_REPLAY_INTERVAL).start()
