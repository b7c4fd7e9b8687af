"""prefetched(): same items, same order, same errors as the plain iterator; early stop closes
the source (crm/ingest/prefetch.py)."""

from __future__ import annotations

import threading

import pytest

from crm.ingest.prefetch import prefetched


def test_items_come_out_in_order_and_complete():
    assert list(prefetched(iter(range(1000)), depth=3)) == list(range(1000))
    assert list(prefetched([])) == []


def test_the_source_runs_in_another_thread():
    seen: list[str] = []

    def source():
        for i in range(3):
            seen.append(threading.current_thread().name)
            yield i

    assert list(prefetched(source())) == [0, 1, 2]
    assert set(seen) == {"ingest-prefetch"}


def test_an_error_of_the_source_reaches_the_consumer_after_the_items_before_it():
    def source():
        yield 1
        yield 2
        raise ValueError("db:orders: reading failed")

    got = []
    with pytest.raises(ValueError, match="db:orders: reading failed"):
        for item in prefetched(source()):
            got.append(item)
    assert got == [1, 2]


def test_stopping_early_closes_the_source():
    closed = threading.Event()

    def source():
        try:
            yield from range(10**9)
        finally:
            closed.set()  # a `with engine.connect()` would close here

    for item in prefetched(source(), depth=2):
        if item == 5:
            break
    assert closed.wait(5)


def test_a_consumer_error_stops_and_closes_the_source():
    closed = threading.Event()

    def source():
        try:
            yield from range(100)
        finally:
            closed.set()

    with pytest.raises(RuntimeError):
        for item in prefetched(source()):
            if item == 3:
                raise RuntimeError("validation blew up")
    assert closed.wait(5)
