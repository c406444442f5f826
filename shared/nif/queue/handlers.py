"""Entry points for the Service Bus trigger glue (functions/nif_queue.py).

``handle_batch`` is what production uses (``cardinality="many"``); ``handle_message`` is the
single-message variant (same processing, one message per invocation). Both raise on transient
failures so the host abandons the message(s) and Service Bus redelivers; poison messages are
quarantined and return normally so the host completes them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from shared.nif.queue.envelope import raw_batch_from_functions, raw_from_functions
from shared.nif.queue.processor import Outcome, get_processor

log = logging.getLogger("shared.nif.queue")


def handle_message(msg: Any) -> Outcome:
    return get_processor().process(raw_from_functions(msg))


def handle_batch(msgs: Sequence[Any]) -> list[Outcome]:
    outcomes = get_processor().process_batch(raw_batch_from_functions(msgs))
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    log.info("NIF queue batch processed", extra={"fields": {"messages": len(msgs), **counts}})
    return outcomes
