"""Personal fields of ticket events reach Kafka sealed; erasure destroys the key, so a
consumer reading the topic from its beginning afterwards finds none of them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from shared.keyring import EventOpener, Keyring
from shared.metrics import sealing_metrics
from shared.mongo import service_database
from shared.sealing import ERASED_TEXT, PREFIX
from shared.topics import Topics
from tests.integration.intake.conftest import Intake
from tests.support import Tap

SUBJECT = "提现未到账 TXq9sealedSubject"
DESCRIPTION = "My withdrawal to TXq9sealedAddress has been pending for three hours"
EMAIL = "sealed.requester@example.com"
MESSAGE = "Any news? My phone is 138-0013-8000"


@pytest.fixture
async def mongo(intake: Intake) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(intake.settings.mongo_url)
    yield client
    await client.close()


def opener(intake: Intake, client: AsyncMongoClient[dict[str, Any]]) -> EventOpener:
    """What every helpstream consumer runs before decoding a batch."""
    metrics = sealing_metrics(CollectorRegistry(), "test")
    keyring = Keyring(service_database(client, intake.settings, "keyring"), metrics)
    return EventOpener(keyring, metrics)


async def read_from_beginning(intake: Intake, until: int) -> list[Any]:
    topic = Topics(intake.settings.topic_prefix).tickets
    async with Tap(intake.settings.kafka_bootstrap, topic) as tap:
        await tap.collect(until)
        return await tap.settle()


def events(records: Sequence[Any], ticket_id: str) -> dict[str, dict[str, Any]]:
    found = {}
    for record in records:
        event = json.loads(record.value)
        if event.get("subject") == ticket_id:
            found[event["type"]] = event
    return found


async def open_a_ticket_with_a_message(intake: Intake, requester: str) -> str:
    ticket = await intake.open(
        requester={"id": requester, "email": EMAIL, "locale": "en"},
        subject=SUBJECT,
        description=DESCRIPTION,
        crypto={"asset": "USDT", "network": "TRC20", "address": "TXq9sealedAddressOfTheUser"},
    )
    response = await intake.http.post(
        f"/v1/tickets/{ticket['id']}/messages",
        json={"author": "requester", "body": MESSAGE},
        headers=intake.auth(),
    )
    assert response.status_code in (200, 201), response.text
    return str(ticket["id"])


async def test_personal_fields_are_on_kafka_only_sealed_and_helpstream_consumers_read_them(
    intake: Intake, mongo: AsyncMongoClient[dict[str, Any]], uid: str
) -> None:
    ticket_id = await open_a_ticket_with_a_message(intake, f"u-{uid}")

    records = await read_from_beginning(intake, until=2)
    raw = b"".join(r.value for r in records)
    for personal in (SUBJECT, EMAIL, MESSAGE, "TXq9sealedAddressOfTheUser"):
        assert personal.encode() not in raw, personal
    assert PREFIX.encode() in raw

    opened = events(await opener(intake, mongo).open(records), ticket_id)
    created = opened["helpstream.ticket.created"]["data"]
    assert created["subject"] == SUBJECT
    assert created["requester"]["email"] == EMAIL
    assert created["crypto"]["address"] == "TXq9sealedAddressOfTheUser"
    assert opened["helpstream.ticket.message_added"]["data"]["body"] == MESSAGE


async def test_after_erasure_a_consumer_from_the_beginning_finds_the_fields_erased(
    intake: Intake, mongo: AsyncMongoClient[dict[str, Any]], uid: str
) -> None:
    erased_requester, kept_requester = f"u-{uid}-erased", f"u-{uid}-kept"
    erased_ticket = await open_a_ticket_with_a_message(intake, erased_requester)
    kept_ticket = await open_a_ticket_with_a_message(intake, kept_requester)
    privacy_key = await intake.key_with("privacy:admin")

    response = await intake.http.post(
        f"/v1/requesters/{erased_requester}/erasure",
        headers=intake.auth(privacy_key),
    )
    assert response.status_code == 202, response.text

    records = await read_from_beginning(intake, until=5)  # 4 events and the request
    opened_records = await opener(intake, mongo).open(records)
    erased = events(opened_records, erased_ticket)
    assert erased["helpstream.ticket.created"]["data"]["subject"] == ERASED_TEXT
    assert erased["helpstream.ticket.created"]["data"]["requester"]["email"] is None
    assert erased["helpstream.ticket.created"]["data"]["crypto"] is None
    assert erased["helpstream.ticket.message_added"]["data"]["body"] == ERASED_TEXT
    kept = events(opened_records, kept_ticket)  # another requester's data is intact
    assert kept["helpstream.ticket.created"]["data"]["subject"] == SUBJECT
    assert kept["helpstream.ticket.message_added"]["data"]["body"] == MESSAGE

    keys = service_database(mongo, intake.settings, "keyring")["requester_keys"]
    assert await keys.find_one({"_id": erased_requester, "key": {"$exists": True}}) is None


async def test_a_ticket_opened_after_erasure_gets_a_new_key_the_old_events_stay_erased(
    intake: Intake, mongo: AsyncMongoClient[dict[str, Any]], uid: str
) -> None:
    requester = f"u-{uid}"
    first = await open_a_ticket_with_a_message(intake, requester)
    privacy_key = await intake.key_with("privacy:admin")
    response = await intake.http.post(
        f"/v1/requesters/{requester}/erasure", headers=intake.auth(privacy_key)
    )
    assert response.status_code == 202, response.text
    later = await open_a_ticket_with_a_message(intake, requester)

    opened = await opener(intake, mongo).open(await read_from_beginning(intake, until=5))
    assert events(opened, first)["helpstream.ticket.created"]["data"]["subject"] == ERASED_TEXT
    assert events(opened, later)["helpstream.ticket.created"]["data"]["subject"] == SUBJECT
