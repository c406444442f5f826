"""Narrow receiver interface over azure-servicebus, for the recovery commands.

:class:`MessageSource` is all the dead-letter drain needs: receive a few messages (peek-lock),
complete one, abandon one, close. :class:`SdkDeadLetterSource` implements it with
azure-servicebus (imported lazily); tests run it against ``devtools.fake_broker``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class MessageSource(Protocol):
    def receive(self, max_messages: int, max_wait_seconds: float) -> Sequence[Any]: ...

    def complete(self, message: Any) -> None: ...

    def abandon(self, message: Any) -> None: ...

    def close(self) -> None: ...


class SdkDeadLetterSource:
    """The dead-letter sub-queue of ``queue_name`` (peek-lock receiver)."""

    def __init__(self, connection_string: str, queue_name: str, *, dead_letter: bool = True) -> None:
        from azure.servicebus import ServiceBusClient, ServiceBusReceiveMode, ServiceBusSubQueue

        # bounded: 2 retries, at most 10 s apart; receive waits are bounded by max_wait_time
        self._client = ServiceBusClient.from_connection_string(
            connection_string, retry_total=2, retry_backoff_factor=0.5, retry_backoff_max=10
        )
        self._receiver = self._client.get_queue_receiver(
            queue_name,
            sub_queue=ServiceBusSubQueue.DEAD_LETTER if dead_letter else None,
            receive_mode=ServiceBusReceiveMode.PEEK_LOCK,
            prefetch_count=0,
        )

    def receive(self, max_messages: int, max_wait_seconds: float) -> Sequence[Any]:
        return self._receiver.receive_messages(max_message_count=max_messages, max_wait_time=max_wait_seconds)

    def complete(self, message: Any) -> None:
        self._receiver.complete_message(message)

    def abandon(self, message: Any) -> None:
        self._receiver.abandon_message(message)

    def close(self) -> None:
        try:
            self._receiver.close()
        finally:
            self._client.close()
