"""Small helpers shared by test modules (domain-specific ones live in idrott_support / queue_support)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Canned inputs: ``nif/`` (the seed document's examples, verbatim) and ``queue/`` (queue messages).
EVENTS = Path(__file__).parent / "events"


def event_text(name: str) -> str:
    """The text of ``tests/events/<name>`` as it is, e.g. ``event_text("nif/token_response.txt")``."""
    return (EVENTS / name).read_text(encoding="utf-8")


def load_event(name: str) -> Any:
    """``tests/events/<name>`` parsed, e.g. ``load_event("queue/TpPerson_added.json")``.

    ``.json`` files are strict JSON. NIF's seed examples (``nif/*.txt``) are kept verbatim and are
    not strict JSON: they are read as the app reads NIF (:func:`shared.nif.lenient_json.loads`).
    """
    text = event_text(name)
    if name.endswith(".json"):
        return json.loads(text)
    from shared.nif import lenient_json

    return lenient_json.loads(text)


def event_names(pattern: str) -> list[str]:
    """The names (for :func:`load_event`) of the events matching ``pattern``, sorted:
    ``event_names("queue/T*_*.json")``."""
    return sorted(p.relative_to(EVENTS).as_posix() for p in EVENTS.glob(pattern))


def run_in_threads(target: Callable[[int], object], n: int) -> None:
    """Start ``target(i)`` for i in 0..n-1 on n threads at once and wait for all of them."""
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def wait_for(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll ``check`` until it returns something truthy or ``timeout`` passes; its last value.
    A bound for work on another thread or process to show, never a timing assertion."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
