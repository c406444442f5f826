"""Deliver Storage queue messages to a queue-triggered function through the runtime (local only).

The Functions host's Storage Queues extension polls a queue and hands each message to the
function; the .NET host cannot run here (platform notes §2), so this module plays that listener
in front of :class:`devtools.runtime.driver.RuntimeDriver`, the way :mod:`devtools.outbox_pump`
plays Service Bus. Each message becomes an ``InvocationRequest`` built by
:func:`devtools.runtime.invocations.queue_trigger` and runs on Microsoft's Python runtime.

**Modelled on the extension's source** (Azure/azure-sdk-for-net,
``Microsoft.Azure.WebJobs.Extensions.Storage.Common``: ``QueueListener``, ``QueueProcessor``,
``QueuesOptions``, ``RandomizedExponentialBackoffStrategy``; read, not run), with the settings
from host.json ``extensions.queues``:

- ``batchSize`` (default 16, at most 32): messages received at once, each run concurrently;
- ``newBatchThreshold`` (default ``batchSize / 2 × processors``): after a batch the listener
  waits until the number still running drops to it, then receives again, so at most
  ``batchSize + newBatchThreshold`` run at once;
- received messages are hidden for 10 minutes, renewed at half that while the function runs;
- success: the message is deleted;
- failure (the function raised, or the host could not convert the body, e.g. invalid UTF-8
  for a string trigger): if its ``DequeueCount`` has reached ``maxDequeueCount`` (default 5) it
  is moved to ``<queue>-poison`` (copied, the poison queue created if needed, then deleted);
  otherwise its visibility is set to ``visibilityTimeout`` (default 0): it is retried after that
  delay, and the service increments its ``DequeueCount`` on the next receive;
- a message received with ``DequeueCount`` above ``maxDequeueCount`` is moved to the poison
  queue without running; a queue whose name ends in ``-poison`` (or would be too long with the
  suffix) has no poison queue: failed messages are then left hidden (the 10 minutes);
- ``messageEncoding`` ``base64`` (default) or ``none``: a message that is not valid base64 is
  copied to the poison queue as received and deleted (the extension's decoding-failure handler);
- empty polls back off exponentially from 100 ms to ``maxPollingInterval`` (default 1 min),
  ±20 % randomised, back to 100 ms after a poll that found messages;
- the queue name (``%SETTING%`` resolved from the environment) is lower-cased as the binding
  does; a missing queue is polled with back-off, not created.

**Not modelled**: the real listener (it is the .NET host, not this code), dynamic concurrency,
scale-out to several instances (one poller per function here), the shared-queue "new message"
notification (polling only), the host's ``functionTimeout``, queue message TTL handling beyond
what the service does, and the speed-up of visibility renewals after a failed renewal.

Usage (see docs/runtime.md, "Storage queue triggers")::

    driver = get_driver()
    with QueuePoller(driver, "idrott_export_worker", max_polling_interval=0.5) as poller:
        ...  # send messages
        poller.drain(until_empty=True, timeout=30)
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import random
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Self

from devtools.runtime import invocations as inv
from devtools.runtime.driver import IndexedFunction, InvocationFailed, RuntimeDriver

log = logging.getLogger("devtools.queue_poller")

POISON_SUFFIX = "-poison"
MIN_POLLING_INTERVAL = 0.1  # QueuePollingIntervals.Minimum
RUNNING_VISIBILITY = 600.0  # QueueListener: received messages are hidden for 10 minutes
MAX_BATCH_SIZE = 32
_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
_TIMESPAN = re.compile(r"^\s*(-)?(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?\s*$")
_BASE64_WS = str.maketrans("", "", " \t\r\n")


def parse_timespan(value: Any) -> float:
    """A .NET ``TimeSpan`` as the configuration binder reads it (``TimeSpan.Parse``), in seconds.

    ``"00:00:30"``, ``"1.02:00:00"``, ``"00:00:00.5"``; a bare number means **days**, as in .NET.
    """
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text) * 86400.0
    m = _TIMESPAN.match(text)
    if not m:
        raise ValueError(f"not a TimeSpan: {value!r}")
    sign, days, hours, minutes, seconds, fraction = m.groups()
    total = float(int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0))
    total += float(f"0.{fraction}") if fraction else 0.0
    return -total if sign else total


@dataclass(frozen=True)
class QueueOptions:
    """host.json ``extensions.queues`` (``QueuesOptions``); times in seconds."""

    batch_size: int = 16
    new_batch_threshold: int | None = None  # None: batch_size // 2 * processors, as the host
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    _HOST_KEYS: ClassVar[dict[str, str]] = {
        "batchsize": "batch_size",
        "newbatchthreshold": "new_batch_threshold",
        "maxpollinginterval": "max_polling_interval",
        "visibilitytimeout": "visibility_timeout",
        "maxdequeuecount": "max_dequeue_count",
        "messageencoding": "message_encoding",
    }

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batchSize must be 1..{MAX_BATCH_SIZE}, not {self.batch_size}")
        if self.new_batch_threshold is not None and self.new_batch_threshold < 0:
            raise ValueError("newBatchThreshold must not be negative")
        if self.max_dequeue_count < 1:
            raise ValueError("maxDequeueCount must not be less than 1")
        if self.max_polling_interval < MIN_POLLING_INTERVAL:
            raise ValueError(f"maxPollingInterval must not be less than {MIN_POLLING_INTERVAL} s")
        if self.message_encoding.lower() not in ("base64", "none"):
            raise ValueError(f"messageEncoding must be base64 or none, not {self.message_encoding!r}")

    @property
    def threshold(self) -> int:
        if self.new_batch_threshold is not None:
            return self.new_batch_threshold
        return (self.batch_size // 2) * (os.cpu_count() or 1)

    @classmethod
    def from_host_json(cls, path: Path | str | None, **overrides: Any) -> QueueOptions:
        """Read ``extensions.queues`` of ``path`` (keys ignore case, as .NET configuration does);
        ``overrides`` (field names, seconds for times) win. A missing file or block: the defaults."""
        values: dict[str, Any] = {}
        if path is not None and Path(path).exists():
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
            extensions = _get_ignoring_case(doc, "extensions") or {}
            queues = _get_ignoring_case(extensions, "queues") or {}
            for key, raw in queues.items():
                name = cls._HOST_KEYS.get(key.lower())
                if name is None:
                    log.debug("host.json extensions.queues.%s is not modelled", key)
                    continue
                if name in ("max_polling_interval", "visibility_timeout"):
                    values[name] = parse_timespan(raw)
                elif name == "message_encoding":
                    values[name] = str(raw).lower()
                else:
                    values[name] = int(raw)
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown queue option(s): {sorted(unknown)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _get_ignoring_case(doc: Any, key: str) -> Any:
    if not isinstance(doc, dict):
        return None
    return next((v for k, v in doc.items() if k.lower() == key.lower()), None)


class Backoff:
    """``RandomizedExponentialBackoffStrategy(minimum, maximum)``: the delay after each poll."""

    RANDOMIZATION = 0.2

    def __init__(self, maximum: float, minimum: float = MIN_POLLING_INTERVAL, *, rng: random.Random | None = None):
        self.minimum, self.maximum = minimum, max(maximum, minimum)
        self._current = 0.0
        self._exponent = 0
        self._rng = rng or random.Random()

    def next_delay(self, found_messages: bool) -> float:
        if found_messages:
            self._current, self._exponent = self.minimum, 1
        elif self._current != self.maximum:
            interval = self.minimum
            if self._exponent > 0:
                factor = self._rng.uniform(1 - self.RANDOMIZATION, 1 + self.RANDOMIZATION)
                interval += factor * 2 ** (self._exponent - 1) * self.minimum
            if interval < self.maximum:
                self._current = interval
                self._exponent += 1
            else:
                self._current = self.maximum
        return self._current


@dataclass
class PollerStats:
    """What the poller did (for tests and logs)."""

    polls: int = 0
    empty_polls: int = 0
    received: int = 0
    invoked: int = 0
    succeeded: int = 0
    failed: int = 0
    released: int = 0
    poisoned: int = 0
    max_in_flight: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def queue_trigger_functions(driver: RuntimeDriver) -> list[IndexedFunction]:
    """Every function the runtime indexed with a ``queueTrigger`` (one poller each)."""
    return [f for f in driver.functions.values() if str(f.trigger.get("type", "")).lower() == "queuetrigger"]


def resolve_setting_expression(value: str, environ: dict[str, str] | None = None) -> str:
    """``%NAME%`` parts replaced by app settings (the environment), as the host resolves bindings."""
    env = os.environ if environ is None else environ

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            raise KeyError(f"binding expression %{name}% names an app setting that is not set")
        return env[name]

    return re.sub(r"%([^%]+)%", sub, value)


class QueuePoller:
    """The queue extension's listener for one queue-triggered function, over a :class:`RuntimeDriver`.

    ``function``: the indexed function name. ``queue``: the queue (default: the binding's
    ``queueName`` with ``%SETTING%`` resolved). ``host_json``: where ``extensions.queues`` is read
    (default: ``host.json`` in the driver's app directory). ``connection_string``: default the app
    setting the binding's ``connection`` names (``AzureWebJobsStorage``). ``overrides``:
    :class:`QueueOptions` fields (seconds for times), e.g. ``max_polling_interval=0.2``.
    ``running_visibility``: how long a received message stays hidden while it runs (10 min).
    """

    def __init__(
        self,
        driver: RuntimeDriver,
        function: str,
        *,
        queue: str | None = None,
        host_json: Path | str | None = None,
        connection_string: str | None = None,
        running_visibility: float = RUNNING_VISIBILITY,
        **overrides: Any,
    ) -> None:
        if function not in driver.functions:
            raise KeyError(f"the runtime indexed no function {function!r}")
        self.driver = driver
        self.function = function
        self.trigger = driver.functions[function].trigger
        if str(self.trigger.get("type", "")).lower() != "queuetrigger":
            raise ValueError(f"{function} is not queue-triggered ({self.trigger.get('type')})")
        self.arg_name = str(self.trigger["name"])
        self.data_type = self.trigger.get("dataType")
        self.queue_name = (queue or resolve_setting_expression(str(self.trigger["queueName"]))).lower()
        poison = self.queue_name + POISON_SUFFIX
        has_poison = not self.queue_name.endswith(POISON_SUFFIX) and bool(_QUEUE_NAME.match(poison))
        self.poison_name: str | None = poison if has_poison else None
        self.options = QueueOptions.from_host_json(
            Path(host_json) if host_json else driver.app_dir / "host.json", **overrides
        )
        self.running_visibility = running_visibility
        setting = str(self.trigger.get("connection") or "AzureWebJobsStorage")
        conn = connection_string or os.environ.get(setting)
        if not conn:
            raise KeyError(f"app setting {setting} (the trigger's connection) is not set")
        self._conn = conn
        self._queue = self._client(self.queue_name)
        self._poison = self._client(self.poison_name) if self.poison_name else None
        self.stats = PollerStats()
        self._backoff = Backoff(self.options.max_polling_interval)
        self._lock = threading.Lock()
        self._in_flight: set[Future[None]] = set()
        self._running = 0  # messages received and not yet settled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> Self:
        if self._thread is not None:
            return self
        self._stop.clear()
        workers = self.options.batch_size + self.options.threshold
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"queue-{self.function}")
        self._thread = threading.Thread(target=self._run, name=f"queue-poller-{self.function}", daemon=True)
        self._thread.start()
        log.info(
            "queue poller: %s ← %s (batchSize %d, newBatchThreshold %d, maxDequeueCount %d, visibilityTimeout %.1f s)",
            self.function,
            self.queue_name,
            self.options.batch_size,
            self.options.threshold,
            self.options.max_dequeue_count,
            self.options.visibility_timeout,
        )
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling and wait for the running invocations (the host's StopAsync does too)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def close(self) -> None:
        self.stop()
        for client in (self._queue, self._poison):
            if client is not None:
                client.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def drain(self, *, until_empty: bool = True, timeout: float = 60.0) -> PollerStats:
        """Wait until the work is done; returns the stats. Starts the poller if it is not running.

        ``until_empty=True``: until the queue holds no message at all (hidden ones waiting for a
        retry included) and nothing runs. ``False``: until a poll found no visible message while
        nothing ran (messages hidden for a retry may remain). Raises ``TimeoutError``.
        """
        self.start()
        deadline = time.monotonic() + timeout
        with self._lock:
            seen = self.stats.empty_polls
        while True:
            with self._lock:
                idle = self._running == 0 and self.stats.empty_polls > seen
            if idle and (not until_empty or self.length() == 0):
                return self.stats
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"queue {self.queue_name} not drained in {timeout} s "
                    f"(running {self._running}, length {self.length()})"
                )
            time.sleep(0.05)

    def length(self) -> int:
        """The service's approximate message count (hidden messages included); 0 for a missing queue."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return int(self._queue.get_queue_properties().approximate_message_count or 0)
        except ResourceNotFoundError:
            return 0

    # -- the listener loop ----------------------------------------------------------------------
    def _client(self, name: str) -> Any:
        from azure.storage.queue import QueueClient

        # no encode/decode policy: messageEncoding is applied per message, so one undecodable
        # message does not fail the whole receive (the extension handles it per message too)
        return QueueClient.from_connection_string(
            self._conn, name, connection_timeout=10, read_timeout=10, retry_total=2
        )

    def _run(self) -> None:
        found_since_delay = False
        while not self._stop.is_set():
            batch = self._receive()
            if not batch:
                delay = self._backoff.next_delay(found_since_delay)
                found_since_delay = False
                self._stop.wait(delay)
                continue
            found_since_delay = True
            assert self._pool is not None
            with self._lock:
                self._running += len(batch)
                self.stats.max_in_flight = max(self.stats.max_in_flight, self._running)
                for raw in batch:
                    future = self._pool.submit(self._process, raw)
                    self._in_flight.add(future)
                    future.add_done_callback(self._forget)
            self._wait_for_new_batch_threshold()

    def _receive(self) -> list[Any]:
        from azure.core.exceptions import AzureError

        with self._lock:
            idle_before = self._running == 0
        try:
            page = self._queue.receive_messages(
                messages_per_page=self.options.batch_size,
                max_messages=self.options.batch_size,
                visibility_timeout=int(self.running_visibility),
            )
            batch = list(page)
        except AzureError as exc:  # missing queue, server errors, connection: back off, as the host does
            log.debug("queue %s: receive failed: %s", self.queue_name, type(exc).__name__)
            batch = []
        with self._lock:
            self.stats.polls += 1
            self.stats.received += len(batch)
            if not batch and idle_before and self._running == 0:
                self.stats.empty_polls += 1
        return batch

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._in_flight.discard(future)

    def _wait_for_new_batch_threshold(self) -> None:
        """``WaitForNewBatchThreshold``: receive again once at most ``newBatchThreshold`` run."""
        while True:
            with self._lock:
                pending = set(self._in_flight)
            if len(pending) <= self.options.threshold:
                return
            wait(pending, return_when=FIRST_COMPLETED)

    # -- one message (QueueProcessor) -------------------------------------------------------------
    def _process(self, raw: Any) -> None:
        try:
            self._process_one(raw)
        except Exception as exc:  # the host reports it and keeps listening
            log.exception("queue %s: message %s: %s", self.queue_name, raw.id, type(exc).__name__)
            with self._lock:
                self.stats.errors.append(f"{raw.id}: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._running -= 1

    def _process_one(self, raw: Any) -> None:
        content = raw.content if isinstance(raw.content, str) else bytes(raw.content).decode("utf-8", "replace")
        try:
            body = self._decode(content)
        except ValueError:
            log.warning("queue %s: message %s is not valid base64: moved to the poison queue", self.queue_name, raw.id)
            self._to_poison(raw, raw_content=content)
            return
        dequeue_count = int(raw.dequeue_count or 0)
        if dequeue_count > self.options.max_dequeue_count:
            self._to_poison(raw, body=body)
            return
        record = inv.QueueMessageRecord(
            body=body,
            id=str(raw.id),
            dequeue_count=dequeue_count,
            pop_receipt=str(raw.pop_receipt),
            inserted_on=raw.inserted_on,
            expires_on=raw.expires_on,
            next_visible_on=raw.next_visible_on,
        )
        renewal = _VisibilityRenewal(self._queue, raw.id, raw.pop_receipt, self.running_visibility)
        renewal.start()
        try:
            ok = self._invoke(record)
        finally:
            raw.pop_receipt = renewal.stop()
        if ok:
            self._settle("delete", self._queue.delete_message, raw.id, raw.pop_receipt)
        elif self._poison is None:
            pass  # no poison queue: left hidden, so a failing message does not loop fast
        elif dequeue_count >= self.options.max_dequeue_count:
            self._to_poison(raw, body=body)
        else:
            self._settle(
                "release",
                self._queue.update_message,
                raw.id,
                raw.pop_receipt,
                visibility_timeout=int(self.options.visibility_timeout),
            )
            with self._lock:
                self.stats.released += 1

    def _invoke(self, record: inv.QueueMessageRecord) -> bool:
        with self._lock:
            self.stats.invoked += 1
        try:
            input_data, metadata = inv.queue_trigger(
                self.driver.protos,
                self.arg_name,
                record,
                data_type=self.data_type,
                capabilities=self.driver.capabilities,
            )
            self.driver.invoke(self.function, input_data, metadata)
        except (InvocationFailed, inv.TriggerConversionFailed) as exc:
            log.warning(
                "function %s failed on message %s (dequeue count %d): %s",
                self.function,
                record.id,
                record.dequeue_count,
                exc,
            )
            with self._lock:
                self.stats.failed += 1
            return False
        with self._lock:
            self.stats.succeeded += 1
        return True

    def _decode(self, content: str) -> bytes:
        if self.options.message_encoding.lower() == "none":
            return content.encode("utf-8")
        try:  # Convert.FromBase64String: white space ignored, padding required
            return base64.b64decode(content.translate(_BASE64_WS), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("not base64") from exc

    def _to_poison(self, raw: Any, *, body: bytes | None = None, raw_content: str | None = None) -> None:
        """``HandlePoisonMessageAsync``: copy to ``<queue>-poison`` (created if needed), then delete."""
        if self._poison is None:
            return
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        if raw_content is not None:
            text = raw_content  # the decoding-failure handler copies through a non-encoding client
        elif self.options.message_encoding.lower() == "none":
            text = (body or b"").decode("utf-8", "replace")
        else:
            text = base64.b64encode(body or b"").decode("ascii")
        log.warning(
            "Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            self.options.max_dequeue_count,
            self.poison_name,
        )
        try:
            self._poison.send_message(text)
        except ResourceNotFoundError:
            try:
                self._poison.create_queue()
            except ResourceExistsError:
                pass
            self._poison.send_message(text)
        self._settle("delete", self._queue.delete_message, raw.id, raw.pop_receipt)
        with self._lock:
            self.stats.poisoned += 1

    def _settle(self, what: str, call: Any, *args: Any, **kwargs: Any) -> None:
        """Delete or update, ignoring what the host ignores: a pop receipt that no longer matches
        (someone else has the message) and a message or queue that is gone."""
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        try:
            call(*args, **kwargs)
        except ResourceNotFoundError:
            log.debug("queue %s: %s: message or queue not found", self.queue_name, what)
        except HttpResponseError as exc:
            code = getattr(exc, "error_code", None)
            if code in ("PopReceiptMismatch", "QueueBeingDeleted", "QueueDisabled"):
                log.debug("queue %s: %s: %s", self.queue_name, what, code)
                return
            raise


class _VisibilityRenewal:
    """``UpdateQueueMessageVisibilityCommand``: while the function runs, hide the message again
    for ``visibility`` seconds every ``visibility / 2``; keeps the newest pop receipt."""

    def __init__(self, client: Any, message_id: str, pop_receipt: str, visibility: float) -> None:
        self._client, self._id, self._receipt, self._visibility = client, message_id, pop_receipt, visibility
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-visibility", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._visibility / 2):
            try:
                updated = self._client.update_message(self._id, self._receipt, visibility_timeout=int(self._visibility))
                self._receipt = updated.pop_receipt
            except Exception as exc:  # noqa: BLE001 - a later renewal, or the settle, will tell
                log.debug("visibility renewal of %s failed: %s", self._id, type(exc).__name__)

    def stop(self) -> str:
        self._stop.set()
        self._thread.join()
        return self._receipt


def pollers_for_app(driver: RuntimeDriver, **kwargs: Any) -> list[QueuePoller]:
    """One (not started) poller per queue-triggered function of the app, for ``make run``;
    ``kwargs`` go to every :class:`QueuePoller` (e.g. ``max_polling_interval``)."""
    return [QueuePoller(driver, f.name, **kwargs) for f in queue_trigger_functions(driver)]


__all__ = [
    "Backoff",
    "PollerStats",
    "QueueOptions",
    "QueuePoller",
    "parse_timespan",
    "pollers_for_app",
    "queue_trigger_functions",
    "resolve_setting_expression",
]
