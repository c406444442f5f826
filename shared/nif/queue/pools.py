"""Concurrent storage calls: the processor's thread pools and how a list of writes goes out.

Independent storage calls overlap on threads (the GIL is released while a request waits).
Two named pools, created on first use: ``nifq`` for the per-table apply jobs and reads, and
``nifq-links`` for index-row writes, which are submitted from jobs already running in ``nifq``
(a job must never wait on a job of its own bounded pool: that deadlocks).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from shared.tables_contract import Op, StorageTable

_pools: dict[str, ThreadPoolExecutor] = {}
_pool_lock = threading.Lock()


def _named_pool(name: str) -> ThreadPoolExecutor:
    with _pool_lock:
        pool = _pools.get(name)
        if pool is None:
            from concurrent.futures import ThreadPoolExecutor

            pool = _pools[name] = ThreadPoolExecutor(max_workers=8, thread_name_prefix=name)
    return pool


def main_pool() -> ThreadPoolExecutor:
    """Pool for apply jobs and prefetching reads."""
    return _named_pool("nifq")


def links_pool() -> ThreadPoolExecutor:
    """Pool for index-row writes, which are submitted from jobs running in the main pool."""
    return _named_pool("nifq-links")


def parallel[T](jobs: list[Callable[[], T]], *, pool: Callable[[], ThreadPoolExecutor] = main_pool) -> list[T]:
    """Run independent storage calls concurrently; results in the order of ``jobs``. The first
    exception is raised after all jobs finished. Nested work uses another ``pool``."""
    if len(jobs) <= 1:
        return [job() for job in jobs]
    executor = pool()
    futures = [executor.submit(job) for job in jobs]
    results, error = [], None
    for f in futures:
        try:
            results.append(f.result())
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            error = error or exc
    if error is not None:
        raise error
    return results


def write_ops(table: StorageTable, ops: list[Op]) -> None:
    """One operation as a plain call (cheaper than a transaction of one), more as transactions."""
    if not ops:
        return
    if len(ops) > 1:
        table.submit(ops)
        return
    kind, entity, opts = ops[0]
    if kind == "upsert":
        table.upsert(entity, replace=bool(opts.get("replace")))
    elif kind == "create":
        from shared.tables import Conflict

        if not table.insert(entity):
            raise Conflict("row exists")
    elif kind == "update":
        table.update(entity, etag=opts.get("etag") or "*", replace=bool(opts.get("replace")))
    else:
        table.submit(ops)


def write_per_partition(
    table: StorageTable, ops: list[Op], *, pool: Callable[[], ThreadPoolExecutor] = main_pool
) -> None:
    """``ops`` grouped by PartitionKey (a transaction holds one partition), the groups in parallel."""
    by_partition: dict[str, list[Op]] = {}
    for op in ops:
        by_partition.setdefault(op.entity["PartitionKey"], []).append(op)
    parallel([partial(write_ops, table, group) for group in by_partition.values()], pool=pool)
