"""devtools.outbox_pump: sandbox outbox items → ServiceBusMessage → the registered function."""

from __future__ import annotations

import json

import httpx

from devtools import outbox_pump
from tests.queue_support import journaled, projection_row


def test_pump_once_delivers_new_items_and_advances_the_cursor(app_host, storage) -> None:
    outbox = [
        {
            "messageId": f"m{i}",
            "sequenceNumber": i,
            "enqueuedTimeUtc": f"2026-03-01T12:00:0{i}+00:00",
            "applicationProperties": {"ObjectId": 8756934, "EntityName": "TpPerson", "ChangeType": ct},
            "body": body,
        }
        for i, ct, body in (
            (1, 9, {"personId": 8756934, "firstName": "Ola", "lastName": "Dunk"}),
            (2, 1, {"personId": 8756934, "firstName": "Ola", "lastName": "Dunk"}),
            (3, 2, {"lastName": "Dunk-Hansen"}),
        )
    ]
    seen_after = []

    def handler(request: httpx.Request) -> httpx.Response:
        after = int(request.url.params["after"])
        seen_after.append(after)
        return httpx.Response(200, json=[m for m in outbox if m["sequenceNumber"] > after])

    client = httpx.Client(transport=httpx.MockTransport(handler))
    url = "http://sandbox.test"
    outbox_pump._cursors.pop(url, None)
    assert outbox_pump.pump_once(url, app_host, client=client) == 3
    assert outbox_pump.pump_once(url, app_host, client=client) == 0
    assert seen_after == [0, 3]
    assert projection_row(storage, "TpPerson", 8756934)["data"]["lastName"] == "Dunk-Hansen"
    assert len(journaled(storage)) == 3


def test_to_message_is_the_message_as_the_broker_holds_it() -> None:
    from devtools.runtime.invocations import BrokerMessage

    msg = outbox_pump.to_message(
        {
            "messageId": "x",
            "sequenceNumber": 7,
            "enqueuedTimeUtc": "2026-03-01T12:00:00Z",
            "applicationProperties": {"ObjectId": 1, "EntityName": "ToSport", "ChangeType": 1},
            "body": {"sportId": 1},
        }
    )
    assert isinstance(msg, BrokerMessage)
    assert msg.sequence_number == 7 and msg.message_id == "x" and json.loads(msg.body) == {"sportId": 1}
    assert msg.application_properties["EntityName"] == "ToSport" and msg.enqueued_time.tzinfo is not None


def test_large_body_survives_the_journal_on_azurite(app_host, storage) -> None:
    from shared.nif.queue.rows import row_data
    from shared.textsize import MAX_PROPERTY_UNITS, utf16_units
    from tests.queue_support import sb_message

    big = {"orgId": 5, "orgName": "Stor klubb", "description": "æøå " * 60_000}  # ~240 000 chars, > 64 KiB
    assert utf16_units(json.dumps(big, ensure_ascii=False)) > MAX_PROPERTY_UNITS  # more than one property holds
    item = {"properties": {"ObjectId": 5, "EntityName": "ToOrg", "ChangeType": 9}, "body": big}
    app_host.invoke("nif_queue", msgs=[sb_message(item, 11)])
    (raw,) = journaled(storage)
    assert json.loads(raw.body) == big
    assert row_data(projection_row(storage, "ToOrg", 5)) == big  # data chunked too
