"""The store → commit → enqueue path under concurrency, duplicates and a Redis outage."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from rq import Queue
from sqlalchemy import func, select

from sms_gateway import ingest
from sms_gateway.channels.base import IncomingSMS
from sms_gateway.config import Settings
from sms_gateway.db import session_factory
from sms_gateway.models import InboundMessage


def sms(i: int) -> IncomingSMS:
    return IncomingSMS(channel="twilio", external_id=f"SM{i:04d}", sender="081234567890",
                       text=f"PLN ADUAN listrik mati #{i}", meta={"n": i})


def test_concurrent_submissions_and_retries_store_each_message_once(settings, redis_conn) -> None:
    messages = [sms(i % 40) for i in range(160)]  # each message arrives four times, concurrently
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda m: ingest.accept(settings, m), messages))
    created = [r for r in results if r.created]
    assert len(created) == 40
    assert all(r.enqueued for r in created)
    by_sid: dict[str, set[int]] = {}
    for m, r in zip(messages, results, strict=True):
        by_sid.setdefault(m.external_id, set()).add(r.inbound_id)
    assert all(len(ids) == 1 for ids in by_sid.values())  # duplicates point at the stored row
    with session_factory(settings.DATABASE_URL)() as s:
        assert s.scalar(select(func.count()).select_from(InboundMessage)) == 40
        row = s.scalars(select(InboundMessage).where(InboundMessage.external_id == "SM0007")).one()
        assert (row.sender, row.text, row.meta, row.state) == ("+6281234567890", "PLN ADUAN listrik mati #7",
                                                               {"n": 7}, "received")
    jobs = Queue("inbound", connection=redis_conn).job_ids
    assert sorted(jobs) == sorted(f"inbound-{r.inbound_id}" for r in created)


def test_message_is_stored_even_when_redis_is_down(env) -> None:
    settings = Settings({**env, "REDIS_URL": "redis://127.0.0.1:9/0"})
    result = ingest.accept(settings, sms(1))
    assert result.created and not result.enqueued  # stored; the sweeper will enqueue it
    with session_factory(settings.DATABASE_URL)() as s:
        assert s.get(InboundMessage, result.inbound_id).state == "received"


def test_database_down_raises_so_the_provider_retries(env) -> None:
    settings = Settings({**env, "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none"})
    try:
        ingest.accept(settings, sms(1))
    except Exception as exc:
        assert "127.0.0.1" in str(exc) or "connect" in str(exc).lower()
    else:
        raise AssertionError("accept() returned without storing")
