"""Erasure events are taken out of a consumer's batch, after the rest is applied."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiokafka.structs import ConsumerRecord

from shared.events import (
    FeedbackRequesterErased,
    RequesterErasureRequested,
    make_event,
)
from shared.privacy import with_erasures

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shared.events import CloudEvent, Contract
    from shared.kafka import Rejected

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def record(i: int, value: bytes, topic: str = "helpstream.tickets") -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, i, 0, 0, b"k", value, None, 0, len(value), ())


def event(data: Contract, source: str = "/helpstream/intake", subject: str = "T-1") -> bytes:
    return make_event(data, source=source, time=NOW, correlationid="c", subject=subject).to_bytes()


REQUEST = RequesterErasureRequested(
    erasure_id="e-1", requester_id="u-1", pseudonym="erased-1", ticket_ids=["T-1"]
)


class Seen:
    def __init__(self) -> None:
        self.order: list[str] = []
        self.inner: list[int] = []
        self.privacy: list[str] = []

    async def handle(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[Rejected]:
        self.order.append("inner")
        self.inner.extend(r.offset for r in records)
        return []

    async def on_privacy(self, events: Sequence[CloudEvent[Contract]]) -> None:
        self.order.append("privacy")
        self.privacy.extend(e.type for e in events)


async def test_erasure_requests_skip_the_ticket_handler_and_come_after_it() -> None:
    seen = Seen()
    handle = with_erasures(seen.handle, seen.on_privacy)
    ticket_event = b'{"type": "helpstream.ticket.status_changed"}'  # the inner handler judges
    rejected = await handle(
        [record(0, ticket_event), record(1, event(REQUEST, subject="u-1")), record(2, b"{}")]
    )
    assert rejected == []
    assert seen.inner == [0, 2]
    assert seen.privacy == ["helpstream.requester.erasure_requested"]
    assert seen.order == ["inner", "privacy"]


async def test_a_batch_without_privacy_events_goes_to_the_handler_untouched() -> None:
    seen = Seen()
    rejected = await with_erasures(seen.handle, seen.on_privacy)([record(0, b"{}")])
    assert (rejected, seen.inner, seen.privacy) == ([], [0], [])


async def test_poison_that_looks_like_an_erasure_is_rejected_and_a_forged_one_too() -> None:
    seen = Seen()
    forged = event(REQUEST, source="/helpstream/notifier", subject="u-1")  # not the owner
    poison = b'{"type": "helpstream.requester.erasure_requested", "data": 1}'
    rejected = await with_erasures(seen.handle, seen.on_privacy)(
        [record(0, poison), record(1, forged)]
    )
    assert sorted(r.error.reason for r in rejected) == ["invalid_envelope", "not_topic_owner"]
    assert seen.privacy == []
    assert seen.inner == []


async def test_a_confirmation_on_its_owners_topic_reaches_the_privacy_handler() -> None:
    seen = Seen()
    confirmation = FeedbackRequesterErased(
        erasure_id="e-1", requester_id="u-1", service="feedback", counts={"surveys": 2}
    )
    value = event(confirmation, source="/helpstream/feedback", subject="u-1")
    await with_erasures(seen.handle, seen.on_privacy)([record(0, value, "helpstream.feedback")])
    assert seen.privacy == ["helpstream.feedback.requester_erased"]
