"""What the gateway says on Kafka: signed `ReceiveMail` commands and `MailBounced` events.

Both are awaited until the broker acknowledged them (`acks=all`): the SMTP reply 250 is
given only after that, so a mail the relay was told we have is on the topic.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from shared import tracing
from shared.command_signing import sign_headers
from shared.commands import ReceiveMail
from shared.events import CloudEvent, make_event
from shared.kafka import event_headers, publish_event
from shared.sealing import mail_owner

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aiokafka import AIOKafkaProducer

    from services.mail_gateway.gateway import BounceReport, Receive
    from shared.clock import Clock
    from shared.topics import Topics

SOURCE = "/helpstream/mail_gateway"


class Sealer(Protocol):
    async def seal_as(self, owner: str, value: bytes) -> bytes: ...


class KafkaPublisher:
    """Sender addresses, names, subjects, bodies and file names leave sealed under a key
    of the sender's address (`shared.sealing.mail_owner`), which erasure destroys."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topics: Topics,
        api_key: str,
        clock: Clock,
        sealer: Sealer,
    ) -> None:
        self._producer, self._topics, self._api_key, self._clock = producer, topics, api_key, clock
        self._sealer = sealer

    async def command(self, receive: Receive) -> None:
        """The command, signed with the gateway's API key (intake checks its scope)."""
        now = self._clock.now()
        event = CloudEvent[ReceiveMail](
            id=receive.command_id,
            source=SOURCE,
            type=ReceiveMail.command_type,
            subject=receive.subject,
            time=now,
            dataschemaversion=ReceiveMail.schema_version,
            correlationid=receive.command_id,
            data=receive.command,
        )
        value = await self._sealer.seal_as(mail_owner(receive.command.sender), event.to_bytes())
        span = tracing.start_publish(self._topics.commands, None, receive.subject)
        try:
            await self._producer.send_and_wait(
                self._topics.commands,
                value,
                key=receive.subject.encode(),
                headers=[*event_headers(span), *sign_headers(self._api_key, value, now)],
            )
        except BaseException as exc:
            tracing.end_spans([span], exc)
            raise
        tracing.end_spans([span])

    async def bounces(self, reports: Sequence[BounceReport]) -> None:
        now = self._clock.now()
        events = [
            make_event(
                r.event,
                source=SOURCE,
                time=now,
                correlationid=r.event_id,
                event_id=r.event_id,
                subject=r.subject,
            )
            for r in reports
        ]
        values = [
            await self._sealer.seal_as(mail_owner(r.event.address), e.to_bytes())
            for r, e in zip(reports, events, strict=True)
        ]
        await asyncio.gather(
            *(
                publish_event(self._producer, self._topics.mail, e, v)
                for e, v in zip(events, values, strict=True)
            )
        )
