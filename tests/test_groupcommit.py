"""Group commit: concurrent requests share a writer's transactions, each gets its own answer."""

from __future__ import annotations

import threading
import time

import pytest

from sms_gateway.groupcommit import GroupCommitter


def test_concurrent_items_share_flushes_and_each_gets_its_own_result() -> None:
    flushes: list[list[int]] = []
    first = threading.Event()

    def flush(items: list[int]) -> list[int | BaseException]:
        flushes.append(list(items))
        first.wait(5)  # the first flush is slow: the others pile up behind it
        return [i * 10 if i != 13 else ValueError("thirteen") for i in items]

    writer: GroupCommitter[int, int] = GroupCommitter("test-writer", flush, max_batch=8)
    results: dict[int, int | BaseException] = {}

    def submit(i: int) -> None:
        try:
            results[i] = writer.submit(i, timeout=10)
        except ValueError as exc:
            results[i] = exc

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
        time.sleep(0.005)
    first.set()
    for t in threads:
        t.join(10)
    assert {i: r for i, r in results.items() if i != 13} == {i: i * 10 for i in range(20) if i != 13}
    assert isinstance(results[13], ValueError)  # only the item that failed gets its error
    assert sorted(i for batch in flushes for i in batch) == list(range(20))
    assert len(flushes) < 20 and max(map(len, flushes)) <= 8


def test_a_failed_flush_fails_every_item_of_its_batch_and_the_writer_goes_on() -> None:
    calls = 0

    def flush(items: list[str]) -> list[str | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database down")
        return [s.upper() for s in items]

    writer: GroupCommitter[str, str] = GroupCommitter("test-writer", flush)
    with pytest.raises(ConnectionError):
        writer.submit("a")
    assert writer.submit("b") == "B"


def test_a_request_waits_no_longer_than_its_timeout() -> None:
    release = threading.Event()
    writer: GroupCommitter[int, int] = GroupCommitter(
        "test-writer", lambda items: [release.wait(5) and 1 for _ in items])
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        writer.submit(1, timeout=0.2)
    assert time.monotonic() - began < 2
    release.set()
