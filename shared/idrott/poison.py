"""The export queue's poison messages: list them, put them back on the queue.

    python -m shared.idrott.poison list
    python -m shared.idrott.poison requeue [--club CLUB_ID ...]

A work item lands in ``<IDROTTONLINE_EXPORT_QUEUE>-poison`` when its club's export failed on each
of the host's ``maxDequeueCount`` deliveries, or at once when it is not a work item at all. Fix the
cause (the ledger's ``errorCode`` says which: docs/idrottonline.md), then requeue: each item is
sent to the export queue again as it was (``deferrals`` reset) and deleted from the poison queue.
An unreadable message is listed, never requeued (it would only come back). The same operations are
the admin routes ``GET /api/idrottonline/export/poison`` and ``POST …/poison/requeue``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Collection
from typing import Any

from shared.idrott.workitem import parse_work_item

__all__ = ["list_poison", "requeue_poison"]

LISTED_MAX = 32  # the service peeks at most 32 messages


def _queues() -> tuple[Any, Any]:
    from shared.config import get_settings
    from shared.queues import get_queue_store, poison_name

    name = get_settings().IDROTTONLINE_EXPORT_QUEUE
    store = get_queue_store()
    return store.queue(name), store.queue(poison_name(name))


def list_poison() -> dict[str, Any]:
    """The first (up to 32) poison items, and the poison queue's approximate length."""
    _, poison = _queues()
    items = []
    for msg in poison.peek(LISTED_MAX):
        item = parse_work_item(msg.content)
        entry: dict[str, Any] = {"messageId": msg.id, "insertedOn": msg.inserted_on, "readable": item is not None}
        if item is not None:
            entry.update(json.loads(item.to_json()))
        else:
            entry["bytes"] = len(msg.content)
        items.append(entry)
    return {"approximateCount": poison.length(), "items": items}


def requeue_poison(club_ids: Collection[str] = ()) -> dict[str, Any]:
    """Move poison items (of ``club_ids`` only, if given) back to the export queue."""
    main, poison = _queues()
    moved: list[str] = []
    kept = 0
    for msg in poison.drain(visibility_timeout=120):
        item = parse_work_item(msg.content)
        if item is None or (club_ids and item.club_id not in club_ids):
            kept += 1
            continue  # hidden for 2 minutes, then visible in the poison queue again
        main.send(item.model_copy(update={"deferrals": 0}).to_json())
        poison.delete(msg)  # after the send: a crash in between duplicates, never loses
        moved.append(item.club_id)
    return {"requeued": len(moved), "clubs": sorted(set(moved)), "kept": kept}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.idrott.poison", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the poison items")
    rq = sub.add_parser("requeue", help="put poison items back on the export queue")
    rq.add_argument("--club", action="append", default=[], help="only this club (repeatable)")
    args = parser.parse_args(argv)
    out = list_poison() if args.cmd == "list" else requeue_poison(args.club)
    print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
