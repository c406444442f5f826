"""A small write-through LRU cache of projection rows and their ETags (per processor)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from shared.nif.queue.merge import RowState

CACHE_SIZE = 20_000

#: ``(table name, PartitionKey, RowKey)``
CacheKey = tuple[str, str, str]


class RowCache:
    """Last known ``(state, etag)`` per row written by this process. Only an optimisation: a
    stale entry costs one Conflict and a re-read, never a wrong write."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._rows: OrderedDict[CacheKey, tuple[RowState, str]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> tuple[RowState, str] | None:
        with self._lock:
            hit = self._rows.get(key)
            if hit is not None:
                self._rows.move_to_end(key)
            return hit

    def put(self, key: CacheKey, state: RowState, etag: str | None) -> None:
        with self._lock:
            if not etag:
                self._rows.pop(key, None)
                return
            self._rows[key] = (state, etag)
            self._rows.move_to_end(key)
            while len(self._rows) > self._size:
                self._rows.popitem(last=False)

    def drop(self, key: CacheKey) -> None:
        with self._lock:
            self._rows.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
