"""Read the next chunk of a source while the loader works on the current one.

Why: the machine has two cores and ingest used one. Reading (SQLite steps, Parquet decoding)
releases the GIL for much of its time, and so does DuckDB while it types and stages a chunk, so
reading chunk n+1 in a worker thread overlaps with loading chunk n. Order, values and errors are
exactly those of the plain iterator: items come out in order, an exception raised by the source
is re-raised in the consumer, and a consumer that stops early closes the source (its `finally`
blocks and `with` statements run, in the worker thread that was iterating it).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()
_POLL_SECONDS = 0.1


def prefetched(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Iterate `items` in a worker thread, at most `depth` items ahead of the consumer."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put((True, item)):
                    return
            put((True, _DONE))
        except BaseException as exc:  # handed to the consumer, raised there
            put((False, exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name="ingest-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = slots.get()
            if not ok:
                raise item  # type: ignore[misc]
            if item is _DONE:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()
