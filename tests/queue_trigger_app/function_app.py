"""Queue-triggered functions that record what the runtime gave them and fail on demand.

A JSON-object body steers them: ``{"sleep": 0.5}`` holds the invocation, ``{"fail": true}``
always raises, ``{"failUntil": 3}`` raises while the dequeue count is below 3. Every invocation
writes one JSON file into ``QT_RECORD_DIR`` (the message as ``func.QueueMessage`` holds it,
start and end times), also when it then raises.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import azure.functions as func

app = func.FunctionApp()


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _run(kind: str, msg: func.QueueMessage) -> None:
    started = time.time()
    body = msg.get_body()
    try:
        spec = json.loads(body)
    except ValueError:
        spec = None
    if not isinstance(spec, dict):
        spec = {}
    time.sleep(float(spec.get("sleep", 0)))
    fail = bool(spec.get("fail")) or (msg.dequeue_count or 0) < int(spec.get("failUntil", 0))
    record = {
        "function": kind,
        "id": msg.id,
        "body": body.hex(),
        "dequeue_count": msg.dequeue_count,
        "insertion_time": _iso(msg.insertion_time),
        "expiration_time": _iso(msg.expiration_time),
        "time_next_visible": _iso(msg.time_next_visible),
        "pop_receipt": msg.pop_receipt,
        "started": started,
        "ended": time.time(),
        "thread": threading.get_ident(),
        "failed": fail,
    }
    folder = Path(os.environ["QT_RECORD_DIR"])
    tmp = folder / f".{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(record), encoding="utf-8")
    tmp.rename(folder / f"{uuid.uuid4().hex}.json")
    if fail:
        raise RuntimeError(f"asked to fail (dequeue count {msg.dequeue_count})")


@app.function_name("qt_text")
@app.queue_trigger(arg_name="msg", queue_name="%QT_QUEUE%", connection="AzureWebJobsStorage")
def qt_text(msg: func.QueueMessage) -> None:
    _run("qt_text", msg)


@app.function_name("qt_binary")
@app.queue_trigger(
    arg_name="msg", queue_name="%QT_QUEUE%", connection="AzureWebJobsStorage", data_type=func.DataType.BINARY
)
def qt_binary(msg: func.QueueMessage) -> None:
    _run("qt_binary", msg)
