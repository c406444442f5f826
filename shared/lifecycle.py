"""Process-wide state registry.

Clients and caches are created on first use and live for the worker process. Each registers a
reset hook here so tests (and the local host after a settings change) can drop them all at once.
"""

from __future__ import annotations

from typing import Callable

_hooks: list[Callable[[], None]] = []


def on_reset(hook: Callable[[], None]) -> Callable[[], None]:
    """Register ``hook`` to run on :func:`reset_process_state`. Usable as a decorator."""
    if hook not in _hooks:
        _hooks.append(hook)
    return hook


def reset_process_state() -> None:
    """Close and forget every process-wide client and cache, then the cached Settings."""
    from shared.config import reset_settings

    for hook in list(_hooks):
        hook()
    reset_settings()
