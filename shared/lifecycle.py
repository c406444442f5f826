"""Process-wide state registry.

Clients and caches are created on first use and live for the worker process. Each registers a
reset hook here so tests (and the local host after a settings change) can drop them all at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
_hooks: list[Callable[[], None]] = []


def on_reset(hook: Callable[[], None]) -> Callable[[], None]:
    """Register ``hook`` to run on :func:`reset_process_state`. Usable as a decorator."""
    if hook not in _hooks:
        _hooks.append(hook)
    return hook


def reset_process_state() -> None:
    """Close and forget every process-wide client and cache, then the cached Settings."""
    from shared.config import reset_settings

    for hook in _hooks:
        hook()
    reset_settings()


def process_wide[T](factory: Callable[[], T], *, close: Callable[[T], object] | None = None) -> Callable[[], T]:
    """A getter for one value per process, built by ``factory`` on first call (thread-safe) and
    dropped, after ``close``, by :func:`reset_process_state`."""
    lock = threading.Lock()
    box: list[T] = []

    def get() -> T:
        if not box:
            with lock:
                if not box:
                    box.append(factory())
        return box[0]

    def reset() -> None:
        with lock:
            if box and close is not None:
                close(box[0])
            box.clear()

    on_reset(reset)
    get.__doc__ = factory.__doc__
    return get
