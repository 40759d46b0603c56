"""The store → commit → enqueue path under concurrency, duplicates and a Redis outage."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from rq import Queue
from sqlalchemy import func, select

from sms_gateway import ingest
from sms_gateway import queue as q
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
    assert sorted(queued_ids(settings, redis_conn)) == sorted(r.inbound_id for r in created)  # each once


def queued_ids(settings, redis_conn) -> list[int]:
    """Inbound ids waiting for the workers' inbound loops, having rung their doorbell (no RQ job)."""
    assert redis_conn.llen(q.INBOUND_WAKE) == 1 and Queue(q.INBOUND, connection=redis_conn).count == 0
    with session_factory(settings.DATABASE_URL)() as s:
        return list(s.scalars(select(InboundMessage.id).where(InboundMessage.state == "received")))


def test_message_is_stored_even_when_redis_is_down(env) -> None:
    settings = Settings({**env, "REDIS_URL": "redis://127.0.0.1:9/0"})
    result = ingest.accept(settings, sms(1))
    assert result.created and not result.enqueued  # stored; a worker finds it within a second
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


def test_text_a_database_cannot_hold_is_kept_with_a_replacement_character(settings, redis_conn) -> None:
    # A UCS-2 SMS can carry NUL or half a surrogate pair; PostgreSQL text refuses both.
    result = ingest.accept(settings, IncomingSMS(channel="kannel", external_id="k1", sender="081234567890",
                                                 text="lampu\x00mati \ud83d di gang 5"))
    with session_factory(settings.DATABASE_URL)() as s:
        assert s.get(InboundMessage, result.inbound_id).text == "lampu\ufffdmati \ufffd di gang 5"


def test_a_message_the_database_refuses_fails_alone_not_its_batch(settings, redis_conn) -> None:
    if not settings.DATABASE_URL.startswith("postgresql"):
        pytest.skip("SQLite does not enforce column lengths")
    # Provider fields are made to fit (see the test below); a channel name too long for its
    # column is a programming error the database still refuses.
    refused = IncomingSMS(channel="k" * 40, external_id="k-long", sender="081234567890", text="PLN ADUAN mati")
    results = ingest._store_and_enqueue(settings, [sms(1), refused, sms(2)])
    assert isinstance(results[1], Exception)  # only that request answers 500; the provider retries it
    assert [r.created for r in (results[0], results[2])] == [True, True]  # type: ignore[union-attr]
    with session_factory(settings.DATABASE_URL)() as s:
        assert sorted(s.scalars(select(InboundMessage.external_id))) == ["SM0001", "SM0002"]
    assert sorted(queued_ids(settings, redis_conn)) == sorted(r.inbound_id for r in (results[0], results[2]))  # type: ignore[union-attr]


def test_oversized_and_nul_fields_are_stored_cut_and_flagged_not_refused(settings, redis_conn) -> None:
    long_sid = "SM" + "7" * 300
    message = IncomingSMS(channel="twilio", external_id=long_sid, sender="+62812" + "9" * 40,
                          recipient="17\x0008" + "8" * 40, text="PLN ADUAN listrik mati",
                          meta={"account_sid": "AC\x00x", "n\x00": ["a\x00"]})
    first = ingest.accept(settings, message)
    again = ingest.accept(settings, message)  # the provider's retry: the same (hashed) key
    assert first.created and not again.created and again.inbound_id == first.inbound_id
    with session_factory(settings.DATABASE_URL)() as s:
        row = s.get(InboundMessage, first.inbound_id)
        assert row.sender == ("+62812" + "9" * 40)[:32]
        assert row.recipient == ("17\ufffd08" + "8" * 40)[:32]
        assert row.external_id == "sha256:" + hashlib.sha256(long_sid.encode()).hexdigest()
        assert row.meta["truncated"] == {"sender": 46, "recipient": 45, "external_id": 302}
        assert row.meta["account_sid"] == "AC\ufffdx" and row.meta["n\ufffd"] == ["a\ufffd"]
        assert row.text == "PLN ADUAN listrik mati"


def test_a_stored_batch_rings_the_workers_doorbell_and_queues_no_job(settings, redis_conn) -> None:
    ingest._store_and_enqueue(settings, [sms(1), sms(2), sms(3)])
    ingest._store_and_enqueue(settings, [sms(4)])
    assert sorted(queued_ids(settings, redis_conn)) == [1, 2, 3, 4]
    assert redis_conn.lrange(q.INBOUND_WAKE, 0, -1) == [b"1"]  # a doorbell: one ring is enough
