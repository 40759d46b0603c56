"""GSM modem loop overhead, against Gammu's dummy phone, next to the bare work it wraps.

Inbound: ``poll_inbox`` on a dummy phone holding N SMS (a quarter of them in
three parts, parts in reverse order) reads, links, decodes, stores through
``ingest.accept`` and deletes each one. The baseline stores the same N
messages with ``ingest.accept`` alone (fresh ids): the difference is what the
modem loop adds per SMS (Gammu reads and deletes on the dummy's files, the
crash-safety lookups, the joining).

Outbound: ``send_queued`` runs N queued replies through the real send job
(claim, ``gammu.EncodeSMS``, ``SendSMS`` on the dummy, RQ bookkeeping). The
baseline calls ``EncodeSMS`` + ``SendSMS`` on the same dummy directly. The
dummy answers at once; a real modem needs seconds per SMS part, so
these figures show how far the gateway stays from being the bottleneck.

Rounds alternate baseline and subject so that load from other processes hits both.

    .venv/bin/python bench/modem.py [--messages 200] [--rounds 3] [--database-url URL] [--redis-url URL]

Default database: a scratch SQLite file; default Redis: 127.0.0.1:6379/13 (flushed).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gammu  # noqa: E402
from redis import Redis  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from sms_gateway import ingest, outbox  # noqa: E402
from sms_gateway.channels import modem  # noqa: E402
from sms_gateway.channels.base import IncomingSMS  # noqa: E402
from sms_gateway.cli import upgrade_database  # noqa: E402
from sms_gateway.config import Settings, set_settings  # noqa: E402
from sms_gateway.db import Base, session_factory  # noqa: E402

TEXT = "KEMENHUB ADUAN bus AKAP masih jual tiket mudik di terminal kampung rambutan, mohon ditindak"
LONG = "KEMENKES ADUAN " + "klinik dekat stasiun minta bayar tes antigen tanpa kwitansi, tarifnya tidak wajar. " * 4


def fill_phone(device: Path, n: int) -> int:
    """Put ``n`` received SMS on the dummy phone; every fourth is a 3-part one. Returns files written."""
    name = 0
    start = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
    for i in range(n):
        long = i % 4 == 3
        parts = gammu.EncodeSMS({"Class": -1, "Unicode": False,
                                 "Entries": [{"ID": "ConcatenatedTextLong", "Buffer": LONG if long else TEXT}]})
        for part in reversed(parts):
            part.update({"Type": "Deliver", "Folder": 3, "State": "UnRead", "Number": f"+62812{i:07d}",
                         "DateTime": start + timedelta(seconds=i), "SMSC": {"Location": 0, "Number": "+6281"}})
            name += 1
            gammu.SaveSMSBackup(str(device / "sms" / "3" / str(name)), [part])
    return name


def empty_tables(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))
    engine.dispose()


def inbound_baseline(settings: Settings, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        ingest.accept(settings, IncomingSMS(channel="bench", external_id=uuid.uuid4().hex,
                                            sender=f"+62812{i:07d}", text=LONG if i % 4 == 3 else TEXT))
    return time.perf_counter() - start


def inbound_subject(service: modem.ModemService, device: Path, n: int) -> float:
    fill_phone(device, n)
    start = time.perf_counter()
    stored = service.poll_inbox()
    elapsed = time.perf_counter() - start
    assert stored == n, f"stored {stored} of {n}"
    assert not any((device / "sms" / "3").iterdir()), "files left on the phone"
    return elapsed


def queue_replies(settings: Settings, n: int) -> None:
    with session_factory(settings.DATABASE_URL)() as session:
        rows = [outbox.queue_reply(session, key=uuid.uuid4().hex, channel="modem", recipient=f"+62812{i:07d}",
                                   text="Laporan Anda diterima & diteruskan ke KEMENHUB. Nomor laporan: 27005518. "
                                        "Cek status: kirim CEK 27005518 ke 1708. Terima kasih.", purpose="ack")
                for i in range(n)]
        session.commit()
    outbox.dispatch(settings, rows)


def outbound_baseline(machine: object, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        for part in modem.encode("Laporan Anda diterima & diteruskan ke KEMENHUB. Nomor laporan: 27005518. "
                                 "Cek status: kirim CEK 27005518 ke 1708. Terima kasih."):
            part["SMSC"], part["Number"] = {"Location": 1}, f"+62812{i:07d}"
            machine.SendSMS(part)  # type: ignore[attr-defined]
    return time.perf_counter() - start


def outbound_subject(service: modem.ModemService, n: int) -> float:
    queue_replies(service.settings, n)  # not timed: that is the worker's part
    sent_before = service.counters.sent
    start = time.perf_counter()
    service.send_queued(deadline=0.0, block=False)
    elapsed = time.perf_counter() - start
    assert service.counters.sent - sent_before == n
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="default: a scratch SQLite file")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="bench-modem-"))
    device = tmp / "device"
    for folder in range(1, 6):
        (device / "sms" / str(folder)).mkdir(parents=True)
    gammurc = tmp / "gammurc"
    gammurc.write_text(f"[gammu]\nmodel = dummy\nconnection = none\ndevice = {device}\n")
    url = args.database_url or f"sqlite:///{tmp / 'bench.sqlite3'}"
    settings = Settings({"DATABASE_URL": url, "REDIS_URL": args.redis_url, "LOG_LEVEL": "WARNING",
                         "PREFIXES_FILE": str(ROOT / "prefixes.yaml"), "JOB_RETRY_INTERVALS": "0",
                         "MODEM_MPM": "1000000"})  # the dummy phone has no network to wait for
    set_settings(settings)
    upgrade_database(settings)
    Redis.from_url(args.redis_url).flushdb()

    service = modem.ModemService(settings, str(gammurc)).open()
    assert service.connect()
    direct = gammu.StateMachine()
    direct.ReadConfig(Filename=str(gammurc))
    direct.Init()

    n = args.messages
    results: dict[str, list[float]] = {k: [] for k in ("in-base", "in-modem", "out-base", "out-modem")}
    for _ in range(args.rounds):
        empty_tables(url)
        results["in-base"].append(inbound_baseline(settings, n))
        empty_tables(url)
        results["in-modem"].append(inbound_subject(service, device, n))
        results["out-base"].append(outbound_baseline(direct, n))
        results["out-modem"].append(outbound_subject(service, n))
    service.close()
    direct.Terminate()
    Redis.from_url(args.redis_url).flushdb()

    backend = url.split(":", 1)[0]
    print(f"machine: {os.cpu_count()} cores (shared); database {backend}; {n} SMS per round "
          f"({n // 4} of them in 3 parts), {args.rounds} rounds, median")
    print(f"{'path':44} {'SMS/s':>8} {'ms/SMS':>8}")
    labels = {
        "in-base": "inbound baseline: ingest.accept only",
        "in-modem": "inbound modem loop: read+join+accept+delete",
        "out-base": "outbound baseline: EncodeSMS+SendSMS only",
        "out-modem": "outbound modem loop: RQ job+claim+send",
    }
    for key, label in labels.items():
        median = statistics.median(results[key])
        print(f"{label:44} {n / median:8.0f} {1000 * median / n:8.2f}")
    extra_in = statistics.median(results["in-modem"]) - statistics.median(results["in-base"])
    extra_out = statistics.median(results["out-modem"]) - statistics.median(results["out-base"])
    print(f"added by the modem loop: inbound {1000 * extra_in / n:.2f} ms/SMS, "
          f"outbound {1000 * extra_out / n:.2f} ms/SMS")


if __name__ == "__main__":
    main()
