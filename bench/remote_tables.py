"""The in-memory table store in a process of its own, for benchmarks that simulate Flex instances
as processes (:mod:`bench.bench_night`).

Table Storage is a service every instance reaches over the network; no instance holds it in its
own memory. Here the store (``devtools.memtables``, the same contract as Azure's) lives in a
``multiprocessing`` manager process and every table call crosses a local socket, as every Table
Storage call crosses the network. A query answers with all its rows at once (a list), so measure
memory with an in-process store, not through this one. :class:`CountingStore` counts each
operation where it is served.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from multiprocessing import get_context
from multiprocessing.managers import BaseManager
from typing import Any

AUTHKEY = b"idrettsbro-bench"


class CountingStore:
    """Wraps a Storage and counts each table operation (``submit`` = one transaction per 100 ops
    of one partition, as the adapter sends them)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def table(self, name: str, *, chunked: bool = False) -> Any:
        return _CountingTable(self, self.inner.table(name, chunked=chunked))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def count(self, op: str, n: int = 1) -> None:
        with self._lock:
            self.counts[op] += n


class _CountingTable:
    def __init__(self, owner: CountingStore, inner: Any) -> None:
        self._owner, self._inner = owner, inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            if name == "submit":
                from shared.tables_contract import as_op, plan_batches

                ops = [as_op(o) for o in args[0]]
                self._owner.count("transactions", len(plan_batches(ops)))
                self._owner.count("transaction_ops", len(ops))
                args = (ops, *args[1:])
            elif name in ("query", "query_page"):
                self._owner.count("queries")
            else:
                self._owner.count("single_ops")
            return attr(*args, **kwargs)

        return counted


class _Service:
    """What the manager process serves: one counting in-memory store."""

    def __init__(self) -> None:
        from devtools.memtables import MemoryTableStore

        self.store = CountingStore(MemoryTableStore())

    def call(self, table: str, chunked: bool, method: str, args: tuple, kwargs: dict) -> Any:
        result = getattr(self.store.table(table, chunked=chunked), method)(*args, **kwargs)
        return list(result) if isinstance(result, Iterator) else result

    def store_call(self, method: str, args: tuple, kwargs: dict) -> Any:
        return getattr(self.store, method)(*args, **kwargs)

    def table_name(self, table: str, chunked: bool) -> str:
        return str(self.store.table(table, chunked=chunked).name)

    def counts(self) -> dict[str, int]:
        return dict(self.store.counts)


_SERVICE: _Service | None = None


def _service() -> _Service:
    global _SERVICE
    if _SERVICE is None:
        _SERVICE = _Service()
    return _SERVICE


class _Manager(BaseManager):
    pass


_Manager.register("service", callable=_service)


def start() -> tuple[BaseManager, Any]:
    """Start the store's process; returns the manager (``shutdown()`` when done) and its address."""
    manager = _Manager(address=("127.0.0.1", 0), authkey=AUTHKEY, ctx=get_context("spawn"))
    manager.start()
    return manager, manager.address


class RemoteStore:
    """A :class:`shared.tables_contract.Storage` whose tables live in the store's process."""

    def __init__(self, address: Any) -> None:
        self.address = address
        manager = _Manager(address=address, authkey=AUTHKEY)
        manager.connect()
        self._svc: Any = manager.service()  # type: ignore[attr-defined]
        self._tables: dict[tuple[str, bool], RemoteTable] = {}

    def table(self, name: str, *, chunked: bool = False) -> RemoteTable:
        key = (name, chunked)
        if key not in self._tables:
            self._tables[key] = RemoteTable(self._svc, name, chunked)
        return self._tables[key]

    def counts(self) -> Counter[str]:
        return Counter(self._svc.counts())

    def __getattr__(self, name: str) -> Any:
        svc = self._svc
        return lambda *args, **kwargs: svc.store_call(name, args, kwargs)


class RemoteTable:
    """A table of the store's process: each call one round trip (an iterator argument is sent
    as a list)."""

    def __init__(self, svc: Any, table: str, chunked: bool) -> None:
        self._svc, self._table, self._chunked = svc, table, chunked
        self.name = svc.table_name(table, chunked)

    def __getattr__(self, method: str) -> Any:
        from shared.tables_contract import as_op

        if method.startswith("_"):
            raise AttributeError(method)
        svc, table, chunked = self._svc, self._table, self._chunked

        def call(*args: Any, **kwargs: Any) -> Any:
            sent = tuple(list(a) if isinstance(a, Iterator) else a for a in args)
            if method == "submit":  # an Op's default options are a read-only mapping: send a dict
                sent = ([(o.kind, o.entity, dict(o.options)) for o in map(as_op, sent[0])], *sent[1:])
            return svc.call(table, chunked, method, sent, kwargs)

        return call
