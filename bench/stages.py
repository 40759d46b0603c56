"""CPU per message of the two stages after ingest, each next to its floor, in-process.

- **pipeline**: ``pipeline.process`` on batches of 1, 16 and 64 stored
  messages (the shared sample's mix: prefixed reports, an unprefixed one, a
  CEK), one transaction per batch, on a scratch PostgreSQL database; the
  baseline is parse + decide alone on the same texts (no database).
- **sender**: ``ChannelSender.drain`` of N queued replies through the Twilio
  SDK to ``bench/fake_twilio.py`` (one asyncio process) with
  ``SEND_CONCURRENCY`` calls in flight; the baseline is N bare urllib3 POSTs of
  the same form to the same fake from one thread (no SDK, no database).
- **RQ**: what one RQ job costs (enqueue, and a SimpleWorker running a job
  that does nothing), next to the Redis doorbell that replaced the job per
  inbound batch.

CPU is the process's (all threads), from ``time.process_time``.

    .venv/bin/python bench/stages.py [--messages 2000] [--concurrency 16]

Creates a scratch database and a private redis-server; removes both.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.e2e import Scratch, fake_provider  # noqa: E402
from bench.ingest import free_port  # noqa: E402

TEXTS = ["KEMENHUB ADUAN bus AKAP masih jual tiket mudik di terminal kampung rambutan",
         "PLN ADUAN listrik mati dr jam 5 sore di kel. margahayu bekasi timur", "CEK 45218736",
         "jalan rusak parah di jl. siliwangi bekasi timur dekat lampu merah"]
ACK = ("Laporan Anda diterima & diteruskan ke KEMENHUB. Nomor laporan: 27005518. "
       "Cek status: kirim CEK 27005518 ke 1708. Terima kasih.")


def cpu_ms_per(n: int, run) -> float:  # type: ignore[no-untyped-def]
    start = time.process_time()
    run()
    return (time.process_time() - start) * 1000 / n


def pipeline_stage(settings, batches: int) -> None:  # type: ignore[no-untyped-def]
    from sms_gateway import ingest, pipeline
    from sms_gateway.channels.base import IncomingSMS
    from sms_gateway.decision import decide
    from sms_gateway.parsing import parse
    from sms_gateway.registry import registry_for

    registry = registry_for(settings)
    n = 64 * 8
    texts = [TEXTS[i % len(TEXTS)] for i in range(n)]
    floor = cpu_ms_per(n, lambda: [decide(parse(t, registry), registry, ingest.utcnow()) for t in texts])
    print(f"pipeline baseline, parse + decide alone: {floor:.3f} ms CPU per message")
    for size in (1, 16, 64):
        ids = []
        for b in range(batches):
            rows = [ingest._row(settings, IncomingSMS(channel="twilio", external_id=uuid.uuid4().hex,
                                                      sender=f"+62812{size:02d}{b:03d}{i:03d}",
                                                      text=TEXTS[i % len(TEXTS)]), ingest.utcnow())
                    for i in range(size)]
            created, _ = ingest._store(settings.DATABASE_URL, rows)
            ids.append(sorted(created.values()))
        per = cpu_ms_per(size * batches,
                         lambda ids=ids: [pipeline.process(settings, batch, steal=False) for batch in ids])
        print(f"pipeline, batches of {size:2}: {per:.3f} ms CPU per message ({per / floor:.1f} x the baseline)")


def sender_stage(settings, n: int, concurrency: int, fake_url: str) -> None:  # type: ignore[no-untyped-def]
    import urllib3

    from sms_gateway import outbox
    from sms_gateway.db import session_factory
    from sms_gateway.sender import ChannelSender

    pool = urllib3.PoolManager(maxsize=4)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **urllib3.make_headers(basic_auth="AC:x")}

    def bare() -> None:
        for i in range(n):
            answer = pool.request("POST", f"{fake_url}/2010-04-01/Accounts/AC/Messages.json", headers=headers,
                                  body=urlencode({"To": f"+62813{i:08d}", "From": "1708", "Body": ACK}),
                                  retries=False)
            assert answer.status == 201

    floor = cpu_ms_per(n, bare)
    print(f"sender baseline, bare urllib3 POSTs: {floor:.3f} ms CPU per message")
    with session_factory(settings.DATABASE_URL)() as session:
        session.add_all([outbox.new_message(key=f"k{i}", channel="twilio", recipient=f"+62812{i:08d}", text=ACK,
                                            purpose="ack") for i in range(n)])
        session.commit()
    sender = ChannelSender(settings, "twilio", concurrency=concurrency)
    wall = time.perf_counter()
    per = cpu_ms_per(n, sender.drain)
    wall = time.perf_counter() - wall
    print(f"sender, {concurrency} in flight: {per:.3f} ms CPU per message ({per / floor:.1f} x the baseline), "
          f"{n / wall:,.0f} messages/s")


def rq_stage(redis_url: str, n: int) -> None:
    from redis import Redis
    from rq import Queue, SimpleWorker

    from sms_gateway import queue as q
    from sms_gateway.config import Settings

    settings = Settings({"REDIS_URL": redis_url})
    redis = Redis.from_url(redis_url)
    enqueue = cpu_ms_per(n, lambda: [q.enqueue(settings, "bench", "time.sleep", 0, job_id=f"j{i}") for i in range(n)])
    run = cpu_ms_per(n, lambda: SimpleWorker([Queue("bench", connection=redis)], connection=redis)
                     .work(burst=True, logging_level="WARNING"))
    ring = cpu_ms_per(n, lambda: [q.enqueue_processing(settings, [i]) for i in range(n)])
    print(f"RQ job: enqueue {enqueue:.3f} ms CPU, run an empty job {run:.3f} ms CPU; the doorbell: {ring:.3f} ms CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batches", type=int, default=40, help="batches per size for the pipeline")
    args = parser.parse_args()

    from sms_gateway.cli import upgrade_database
    from sms_gateway.config import Settings, set_settings

    tmp = Path(tempfile.mkdtemp(prefix="bench-stages-"))
    scratch = Scratch(tmp)
    fake = None
    try:
        port = free_port()
        fake = fake_provider(port, {**os.environ, "PYTHONPATH": str(ROOT)}, tmp / "fake.log")
        settings = Settings({"DATABASE_URL": scratch.db_url, "REDIS_URL": scratch.redis_url, "LOG_LEVEL": "WARNING",
                             "TWILIO_ACCOUNT_SID": "AC", "TWILIO_AUTH_TOKEN": "x", "TWILIO_FROM_NUMBER": "1708",
                             "TWILIO_MPS": "100000", "TWILIO_API_BASE_URL": f"http://127.0.0.1:{port}",
                             "PREFIXES_FILE": str(ROOT / "prefixes.yaml")})
        set_settings(settings)
        upgrade_database(settings)
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; PostgreSQL, private Redis")
        sender_stage(settings, args.messages, args.concurrency, f"http://127.0.0.1:{port}")
        pipeline_stage(settings, args.batches)
        rq_stage(scratch.redis_url.rsplit("/", 1)[0] + "/3", args.messages)
    finally:
        if fake is not None:
            fake.terminate()
            fake.wait(10)
        from sms_gateway.db import dispose_engines

        dispose_engines()
        scratch.close()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    main()
