"""Events in, messages out, each exactly once per (event, channel, recipient)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from prometheus_client import Counter

from services.notifier.domain import Email, acknowledgement
from shared.errors import Invalid, Retryable
from shared.events import TicketCreated
from shared.kafka import decode_events

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aiokafka.structs import ConsumerRecord
    from prometheus_client import CollectorRegistry

    from services.notifier.mail import SmtpSender
    from services.notifier.store import DeliveryStore
    from shared.clock import Clock
    from shared.kafka import Rejected


class Notifications:
    def __init__(
        self,
        store: DeliveryStore,
        sender: SmtpSender,
        clock: Clock,
        registry: CollectorRegistry,
        max_parallel: int,
    ) -> None:
        self._store = store
        self._sender = sender
        self._clock = clock
        self._gate = asyncio.Semaphore(max_parallel)
        # messages accepted by the channel, by channel and template
        self.sent = Counter(
            "helpstream_notifier_messages_sent",
            "Messages accepted by the channel.",
            ("channel", "template"),
            registry=registry,
        )
        # messages the channel refused for good, by channel and template
        self.failed = Counter(
            "helpstream_notifier_messages_failed",
            "Messages refused for good.",
            ("channel", "template"),
            registry=registry,
        )

    async def on_ticket_events(
        self, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> Sequence[Rejected]:
        accepted, rejected = decode_events(records)
        emails = [
            email
            for item in accepted
            if isinstance(item.value.data, TicketCreated)
            and (email := acknowledgement(item.value.id, item.value.data)) is not None
        ]
        now = self._clock.now()
        to_send = await self._store.claim(emails, now)
        pending = [e for e in emails if e.delivery_key in to_send]
        results = await asyncio.gather(*(self._send(e) for e in pending), return_exceptions=True)
        outcomes: list[tuple[str, str, str | None]] = []
        transient: BaseException | None = None
        for email, result in zip(pending, results, strict=True):
            if result is None:
                outcomes.append((email.delivery_key, "sent", None))
                self.sent.labels("email", email.template).inc()
            elif isinstance(result, Invalid):
                outcomes.append((email.delivery_key, "failed", result.detail))
                self.failed.labels("email", email.template).inc()
            else:
                transient = result
        await self._store.finish(outcomes, self._clock.now())
        if transient is not None:
            raise Retryable("some messages could not be sent yet") from transient
        return rejected

    async def _send(self, email: Email) -> None:
        async with self._gate:
            await self._sender.send(email)
