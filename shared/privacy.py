"""Requester erasure mechanics every service shares: routing erasure events out of a
consumer's batch, and confirming an erasure through the service's own outbox.

Erasure requests travel on helpstream.tickets beside ticket events; confirmations on each
service's own topic (the topic-owner rule). Consumers written before erasure existed must
not see them as ticket events, so `with_erasures` takes them out of the batch first and
hands them to the service's eraser after the rest of the batch is applied (an event read
in the same batch is erased too, never written back afterwards).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Protocol

from shared.events import RequesterErasedData, RequesterErasureRequested, make_event
from shared.ids import stable_id
from shared.kafka import decode_events
from shared.metrics import privacy_metrics
from shared.mongo import insert_new
from shared.unit_of_work import with_events

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from aiokafka.structs import ConsumerRecord
    from pymongo.asynchronous.collection import AsyncCollection

    from shared.clock import Clock
    from shared.events import CloudEvent, Contract
    from shared.kafka import BatchHandler, Rejected
    from shared.metrics import PrivacyMetrics
    from shared.mongo import Document
    from shared.runtime import ServiceRuntime

COLLECTION = "erasures"  # each service's confirmations, with their outbox
ERASED = "[erased]"  # what replaces an erased text wherever a record is kept
# A cheap look at the bytes before any parsing: only records that may be privacy events
# are decoded here; a false positive is decoded and handed back to the service's handler.
_MARK = re.compile(rb"helpstream\.(requester\.erasure_requested|[a-z_]+\.requester_erased)")


def with_erasures(
    inner: BatchHandler,
    on_privacy: Callable[[Sequence[CloudEvent[Contract]]], Awaitable[None]],
) -> BatchHandler:
    """A batch handler that applies `inner` to everything but privacy events (erasure
    requests and confirmations), then `on_privacy` to those. Poison that looks like a
    privacy event is rejected here (to the DLQ), like any other."""

    async def handle(records: Sequence[ConsumerRecord[bytes, bytes]]) -> Sequence[Rejected]:
        marked = [r for r in records if r.value is not None and _MARK.search(r.value)]
        if not marked:
            return await inner(records)
        accepted, rejected = decode_events(marked)
        privacy = [a for a in accepted if is_privacy_event(a.value.data)]
        taken = {id(a.record) for a in privacy} | {id(r.record) for r in rejected}
        rest = [r for r in records if id(r) not in taken]
        refused = list(await inner(rest)) if rest else []
        if privacy:
            await on_privacy([a.value for a in privacy])
        return [*refused, *rejected]

    return handle


def is_privacy_event(data: object) -> bool:
    return isinstance(data, (RequesterErasureRequested, RequesterErasedData))


class Eraser(Protocol):
    """One service's copy of requester data: erase it (idempotently) and say how much."""

    async def erase(self, request: RequesterErasureRequested) -> Mapping[str, int]: ...


class ErasureConfirmations:
    """Runs a service's eraser for each request and confirms it once, through an outbox
    in the service's `erasures` collection (`_id` = erasure id): a redelivered request
    erases again (nothing is left, counts are zero) and confirms nothing new."""

    def __init__(
        self,
        *,
        eraser: Eraser,
        collection: AsyncCollection[Document],
        service: str,
        source: str,
        topic: str,
        confirmation: type[RequesterErasedData],
        clock: Clock,
        metrics: PrivacyMetrics,
        on_events: Callable[[int], None] = lambda _: None,
    ) -> None:
        self._eraser = eraser
        self.collection = collection
        self._service = service
        self._source = source
        self._topic = topic
        self._confirmation = confirmation
        self._clock = clock
        self._metrics = metrics
        self._on_events = on_events

    async def on_events(self, events: Sequence[CloudEvent[Contract]]) -> None:
        started = time.perf_counter()
        docs: list[Document] = []
        for event in events:
            request = event.data
            if not isinstance(request, RequesterErasureRequested):
                continue  # another service's confirmation: intake's business
            counts = dict(await self._eraser.erase(request))
            for kind, count in counts.items():
                self._metrics.erased_records.labels(kind).inc(count)
            self._metrics.erasures.labels("erased").inc()
            docs.append(self._confirmation_doc(request, counts, event.correlationid))
        written = await insert_new(self.collection, docs)
        if written:
            self._on_events(len(written))
        self._metrics.erasure_seconds.observe(time.perf_counter() - started)

    def _confirmation_doc(
        self, request: RequesterErasureRequested, counts: dict[str, int], correlation_id: str
    ) -> Document:
        now = self._clock.now()
        data = self._confirmation(
            erasure_id=request.erasure_id,
            requester_id=request.requester_id,
            service=self._service,
            counts=counts,
        )
        event = make_event(
            data,
            source=self._source,
            time=now,
            correlationid=correlation_id,
            event_id=stable_id("requester_erased", request.erasure_id, self._service),
            subject=request.requester_id,
        )
        # the requester id leaves with the event; the kept document holds only counts
        return with_events(
            {"_id": request.erasure_id, "counts": counts, "erased_at": now},
            [(self._topic, event)],
            now,
        )


def confirm_erasures(
    rt: ServiceRuntime,
    eraser: Eraser,
    confirmation: type[RequesterErasedData],
    topic: str,
    on_events: Callable[[int], None],
) -> Callable[[Sequence[CloudEvent[Contract]]], Awaitable[None]]:
    """What a service's ticket-event consumer does with erasure requests (`with_erasures`);
    the service's outbox relay must drain `rt.db[COLLECTION]`."""
    return ErasureConfirmations(
        eraser=eraser,
        collection=rt.db[COLLECTION],
        service=rt.service,
        source=f"/helpstream/{rt.service}",
        topic=topic,
        confirmation=confirmation,
        clock=rt.clock,
        metrics=privacy_metrics(rt.registry, rt.service),
        on_events=on_events,
    ).on_events
