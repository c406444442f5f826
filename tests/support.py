"""Small helpers shared by test modules (domain-specific ones live in idrott_support / queue_support)."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_in_threads(target: Callable[[int], object], n: int) -> None:
    """Start ``target(i)`` for i in 0..n-1 on n threads at once and wait for all of them."""
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
