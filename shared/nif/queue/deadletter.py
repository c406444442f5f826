"""Drain the NIF queue's dead-letter sub-queue through the normal processing code.

    python -m shared.nif.queue.deadletter [--max N] [--wait SECONDS] [--queue NAME]

Connection: the ``NifServiceBus`` app setting (environment), else the secret of the same name
(Key Vault in Azure); queue: ``NIF_QUEUE_NAME``. Each message is journaled and applied exactly
as the trigger would (poison → quarantine), and completed only after that succeeded; a failure
abandons it (it stays in the dead-letter queue) and stops the drain.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from shared.nif.queue.envelope import RawMessage, raw_from_sdk
from shared.nif.queue.servicebus import MessageSource

if TYPE_CHECKING:
    from shared.nif.queue.processor import Outcome

log = logging.getLogger("shared.nif.queue.deadletter")

CONNECTION_SETTING = "NifServiceBus"


class Processor(Protocol):
    """What the drain needs of a processor (:class:`~shared.nif.queue.processor.QueueProcessor`)."""

    def process(self, raw: RawMessage) -> Outcome: ...


@dataclass
class DrainReport:
    completed: int = 0
    quarantined: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def drain(
    source: MessageSource,
    processor: Processor | None = None,
    *,
    max_messages: int | None = None,
    batch: int = 20,
    wait_seconds: float = 5.0,
) -> DrainReport:
    from shared.nif.queue.processor import get_processor

    proc = processor or get_processor()
    report = DrainReport()
    while max_messages is None or report.completed < max_messages:
        want = batch if max_messages is None else min(batch, max_messages - report.completed)
        messages = source.receive(want, wait_seconds)
        if not messages:
            break
        for i, msg in enumerate(messages):
            try:
                outcome = proc.process(raw_from_sdk(msg))
            except Exception as exc:  # noqa: BLE001 - transient: leave it (and the rest) in the DLQ
                report.failed += 1
                report.errors.append(type(exc).__name__)
                log.warning(
                    "queue.drain_failed message_id=%s error=%s: message not applied, drain stopped",
                    msg.message_id,
                    type(exc).__name__,
                    extra={"fields": {"messageId": str(msg.message_id), "error": type(exc).__name__}},
                )
                for rest in messages[i:]:
                    source.abandon(rest)
                return report
            source.complete(msg)
            report.completed += 1
            if outcome.status == "quarantined":
                report.quarantined += 1
    return report


def connection_string() -> str:
    """NIF's connection string: the ``NifServiceBus`` setting, else the secret of that name."""
    from shared.config import get_settings

    value = get_settings().NifServiceBus
    if value:
        return value.get_secret_value()
    from shared.secrets import get_secret_store

    return get_secret_store().get(CONNECTION_SETTING)


def main(argv: list[str] | None = None) -> int:
    from shared.config import get_settings
    from shared.nif.queue.servicebus import SdkDeadLetterSource

    parser = argparse.ArgumentParser(prog="python -m shared.nif.queue.deadletter", description=__doc__.split("\n\n")[0])
    parser.add_argument("--max", type=int, default=None, help="stop after N messages")
    parser.add_argument("--wait", type=float, default=5.0, help="seconds to wait for messages")
    parser.add_argument("--queue", default=None, help="queue name (default NIF_QUEUE_NAME)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    source = SdkDeadLetterSource(connection_string(), args.queue or get_settings().NIF_QUEUE_NAME)
    try:
        report = drain(source, max_messages=args.max, wait_seconds=args.wait)
    finally:
        source.close()
    print(f"completed={report.completed} quarantined={report.quarantined} failed={report.failed}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
