"""Group commit: the requests of one web process share transactions.

A provider's webhooks (an inbound SMS, a delivery report) each need one small
write before the answer. Under gevent (or gthread) many requests are in flight
in one process; each hands its item to the process's writer thread for that
kind of write and waits. The writer takes whatever is waiting, up to
``max_batch``, and writes it with one ``flush`` call (one transaction, one
commit). Under light load a batch is one item and nothing waits; under a surge
the commit, the round trip and the statement are shared by the batch
(docs/BENCHMARKS.md). RapidPro's courier batches its status writes the same way.

``flush`` returns one result per item, an exception for an item that failed
alone; an exception raised by ``flush`` itself goes to every item of the batch.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

WAIT_SECONDS = 60.0  # a request never waits forever for the writer


@dataclass
class _Batch(Generic[T, R]):
    """Items written by one ``flush``; their requests wait on one event."""

    items: list[T] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    results: list[R | BaseException] = field(default_factory=list)


class GroupCommitter(Generic[T, R]):
    """Writes items submitted by concurrent threads in shared transactions."""

    def __init__(self, name: str, flush: Callable[[list[T]], list[R | BaseException]], max_batch: int = 64) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._batches: list[_Batch[T, R]] = []  # filled by requests, not yet taken by the writer
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def submit(self, item: T, timeout: float = WAIT_SECONDS) -> R:
        """Add ``item`` to the next batch and wait until that batch is written; its result.

        Raises the item's exception, or ``TimeoutError`` after ``timeout`` seconds
        (the write may still happen: callers must be safe against that).
        """
        with self._cond:
            if not self._batches or len(self._batches[-1].items) >= self._max_batch:
                self._batches.append(_Batch())
            batch = self._batches[-1]
            index = len(batch.items)
            batch.items.append(item)
            self._cond.notify()
        if not batch.done.wait(timeout):
            raise TimeoutError("the database did not answer in time")
        result = batch.results[index]
        if isinstance(result, BaseException):
            raise result
        return result

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._batches:
                    self._cond.wait()
                batches, self._batches = self._batches, []
            for batch in batches:
                try:
                    batch.results = self._flush(batch.items)
                except BaseException as exc:  # noqa: BLE001 - handed to every waiting request, which raises it
                    batch.results = [exc] * len(batch.items)
                finally:
                    batch.done.set()


_COMMITTERS: dict[tuple[int, Hashable], GroupCommitter[object, object]] = {}
_LOCK = threading.Lock()


def committer(key: Hashable, make: Callable[[], GroupCommitter[T, R]]) -> GroupCommitter[T, R]:
    """This process's committer for ``key``, made by ``make`` on first use.

    Keyed by pid too: a forked process (a gunicorn worker) must not share its parent's writer thread.
    """
    full_key = (os.getpid(), key)
    found = _COMMITTERS.get(full_key)
    if found is None:
        with _LOCK:
            found = _COMMITTERS.get(full_key)
            if found is None:
                found = _COMMITTERS[full_key] = make()  # type: ignore[assignment]
    return found  # type: ignore[return-value]
