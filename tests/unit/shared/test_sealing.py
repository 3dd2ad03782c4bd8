"""Personal fields of events are sealed per requester; a destroyed key leaves them erased."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.events import Requester, TicketCreated, TicketMessageAdded, make_event
from shared.sealing import (
    ERASED_TEXT,
    PREFIX,
    RequesterKey,
    new_key,
    open_event,
    requester_of,
    seal_event,
    sealed_key_ids,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def summary(requester: str = "u-1") -> dict[str, Any]:
    return {
        "id": "t-1",
        "number": 100001,
        "status": "new",
        "priority": "normal",
        "category": "withdrawal_delay",
        "channel": "web",
        "group": "general",
        "requester_id": requester,
        "created_at": NOW,
    }


def created(at: datetime = NOW) -> dict[str, Any]:
    data = TicketCreated(
        ticket_id="t-1",
        ticket=summary(),  # type: ignore[arg-type]
        requester=Requester(id="u-1", email="li.wei@example.com"),
        subject="My USDT withdrawal to TXYZ is stuck",
        crypto={"asset": "USDT", "network": "TRC20", "address": "TXYZabc"},  # type: ignore[arg-type]
    )
    event = make_event(data, source="/helpstream/intake", time=at, correlationid="c-1")
    parsed: dict[str, Any] = json.loads(event.to_bytes())
    return parsed


def key(erased_before: datetime | None = None) -> RequesterKey:
    return RequesterKey(key_id="k-1", key=new_key(), erased_before=erased_before)


def test_sealed_event_holds_none_of_the_personal_text_and_opens_with_its_key() -> None:
    event, requester_key = created(), key()
    sealed, erased = seal_event(event, requester_key)
    raw = json.dumps(event, ensure_ascii=False)
    assert (sealed, erased) == (3, 0)
    for personal in ("li.wei@example.com", "withdrawal to TXYZ", "TXYZabc"):
        assert personal not in raw
    assert event["data"]["subject"].startswith(PREFIX)
    assert event["data"]["ticket"]["status"] == "new"  # the rest stays readable
    assert open_event(event, {"k-1": requester_key.key}) == (3, 0)
    assert event["data"]["subject"] == "My USDT withdrawal to TXYZ is stuck"
    assert event["data"]["requester"]["email"] == "li.wei@example.com"
    assert event["data"]["crypto"]["address"] == "TXYZabc"


def test_fields_of_a_destroyed_key_open_as_erased_values_every_consumer_accepts() -> None:
    event = created()
    seal_event(event, key())
    assert open_event(event, {}) == (0, 3)
    assert event["data"]["subject"] == ERASED_TEXT
    assert event["data"]["requester"]["email"] is None
    assert event["data"]["crypto"] is None
    TicketCreated.model_validate(event["data"])


def test_an_event_made_before_the_erasure_leaves_with_its_fields_erased() -> None:
    event = created(at=NOW)
    assert seal_event(event, key(erased_before=NOW + timedelta(seconds=1))) == (0, 3)
    assert event["data"]["subject"] == ERASED_TEXT
    assert not sealed_key_ids(event)


def test_an_event_made_after_the_erasure_is_sealed_under_the_new_key() -> None:
    event = created(at=NOW + timedelta(seconds=5))
    assert seal_event(event, key(erased_before=NOW)) == (3, 0)
    assert sealed_key_ids(event) == {"k-1"}


def test_a_sealed_value_moved_to_another_event_or_field_does_not_open() -> None:
    requester_key = key()
    first, second = created(), created()
    seal_event(first, requester_key)
    seal_event(second, requester_key)
    second["data"]["subject"] = first["data"]["subject"]  # another event id
    first["data"]["requester"]["email"] = first["data"]["subject"]  # another field
    keys = {"k-1": requester_key.key}
    assert open_event(second, keys) == (2, 1)
    assert second["data"]["subject"] == ERASED_TEXT
    open_event(first, keys)
    assert first["data"]["requester"]["email"] is None


def test_message_bodies_are_sealed_and_events_without_personal_fields_are_left_alone() -> None:
    message = TicketMessageAdded(
        ticket_id="t-1",
        ticket=summary(),  # type: ignore[arg-type]
        message_id="m-1",
        author="requester",  # type: ignore[arg-type]
        body="Still waiting, my phone is 138 0000 0000",
    )
    event: dict[str, Any] = json.loads(
        make_event(message, source="/helpstream/intake", time=NOW, correlationid="c").to_bytes()
    )
    assert requester_of(event) == "u-1"
    assert seal_event(event, key()) == (1, 0)
    assert "138 0000" not in json.dumps(event)
    other = {"type": "helpstream.ticket.assigned", "id": "e", "data": {"ticket": summary()}}
    assert requester_of(other) is None
    assert seal_event(other, key()) == (0, 0)


def test_sealing_twice_does_not_seal_a_sealed_value_again() -> None:
    event, requester_key = created(), key()
    seal_event(event, requester_key)
    assert seal_event(event, requester_key) == (0, 0)
    assert open_event(event, {"k-1": requester_key.key}) == (3, 0)
