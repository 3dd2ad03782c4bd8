"""One message a handler keeps failing on must not stall a consumer.

Before: `ü@[` as a requester address passed intake, notifier's message builder raised
`AttributeError`, the batch was retried every few seconds for ever and every partition
lagged. Now the address gets a 422 at intake, a forged event carrying it is dead-lettered,
and any non-outage exception a handler raises for one message sends that message to the
DLQ (after `poison_max_attempts`) while the rest of the batch is applied.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient
from pymongo.errors import AutoReconnect

from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.notifier.settings import NotifierSettings
from shared.consumer import BatchConsumer
from shared.events import make_event
from shared.kafka import DeadLetters, Rejected, make_producer
from shared.metrics import consumer_metrics
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings
from shared.topics import Topics
from tests.integration.intake.conftest import ADMIN_KEY, ticket_body
from tests.integration.notifier.builders import created, reply
from tests.integration.notifier.conftest import Notifier, mails, start
from tests.support import Tap, create_topic, eventually, produce, running

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

    from shared.infra.mailcatcher import MailCatcher
    from shared.infra.modes import Infra

INTAKE = "/helpstream/intake"
BAD_ADDRESS = "ü@["


@pytest.fixture
async def notifier(make_settings: Any, mail: MailCatcher, infra: Infra) -> AsyncIterator[Notifier]:
    """notifier with the shipped rules, mailing through the test's SMTP catcher."""
    settings = make_settings(
        NotifierSettings, smtp_port=mail.port, smtp_timeout_s=2.0, digest_window_s=0
    )
    async with start(settings, infra) as running_notifier:
        yield running_notifier


def ticket_created(ticket_id: str, email: str) -> bytes:
    """A ticket.created as intake publishes it; `email` is put in as given (unchecked)."""
    event = make_event(
        created(ticket_id, locale="en"),
        source=INTAKE,
        time=datetime.now(UTC),
        correlationid=f"corr-{ticket_id}",
    )
    raw = json.loads(event.to_bytes())
    raw["data"]["requester"]["email"] = email
    return json.dumps(raw, ensure_ascii=False).encode()


def consumer_lag(registry: CollectorRegistry, group_part: str) -> float | None:
    """Summed lag of the groups whose name contains `group_part` (None: not measured yet)."""
    found = [
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "helpstream_kafka_consumer_lag_messages"
        and group_part in sample.labels["group"]
    ]
    return sum(found) if found else None


async def test_a_forged_bad_address_between_good_tickets_does_not_stall_notifier(
    notifier: Notifier, mail: MailCatcher, infra: Infra
) -> None:
    topic = notifier.runtime.topics.tickets
    run = notifier.settings.topic_prefix.strip(".")
    good = [
        ("T-good-1", "li.wei@example.com"),
        ("T-good-2", "李伟@例子.cn"),  # internationalized: sent with SMTPUTF8
        ("T-good-3", "amir@example.com"),
    ]
    messages: list[tuple[bytes | None, bytes]] = [
        (b"same-partition", ticket_created(f"{t}-{run}", e)) for t, e in good[:2]
    ]
    messages.append((b"same-partition", ticket_created(f"T-bad-{run}", BAD_ADDRESS)))
    messages.append((b"same-partition", ticket_created(f"{good[2][0]}-{run}", good[2][1])))

    async with Tap(infra.kafka_bootstrap, Topics.dlq(topic)) as dlq:
        await produce(infra.kafka_bootstrap, topic, messages)
        delivered = await mails(mail, 3, timeout=60)
        records = await dlq.collect(1, timeout=30)

    recipients = sorted(r for m in delivered for r in m.rcpt_tos)
    assert recipients == sorted(e for _, e in good)
    assert BAD_ADDRESS not in recipients
    assert len(records) == 1
    headers = dict(records[0].headers)
    assert headers["consumer"] == b"notifier.events"
    assert headers["error-type"] == b"invalid_data"
    assert b"email" in headers["error-message"]

    async def caught_up() -> bool:
        ready = await notifier.http.get("/readyz")
        return ready.status_code == 200 and consumer_lag(notifier.runtime.registry, run) == 0

    await eventually(caught_up, timeout=30)


async def test_a_bad_address_stored_before_validation_fails_its_mail_not_the_batch(
    notifier: Notifier, mail: MailCatcher, infra: Infra
) -> None:
    """A ticket notifier learned about before intake checked addresses: its requester's mail
    is recorded failed (`notification.failed`, DLQ), the other ticket's mail goes out."""
    run = notifier.settings.topic_prefix.strip(".")
    old, fresh = f"T-old-{run}", f"T-fresh-{run}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url)
    try:
        await client[f"{notifier.settings.mongo_db_prefix}_notifier"]["tickets"].insert_one(
            {
                "_id": old,
                "requester": {"id": "u-old", "email": BAD_ADDRESS, "locale": "en"},
                "subject": "from before",
                "created_by": "e-old",
            }
        )
    finally:
        await client.close()
    topics = notifier.runtime.topics
    replies = [
        make_event(reply(ticket), source=INTAKE, time=datetime.now(UTC), correlationid="c")
        for ticket in (old, fresh)
    ]
    created_fresh = ticket_created(fresh, "amir@example.com")
    # A tap subscribed before its topic exists may not see it appear for minutes.
    with contextlib.suppress(TopicAlreadyExistsError):
        await create_topic(infra.kafka_bootstrap, topics.notifications, 4)
    async with Tap(infra.kafka_bootstrap, topics.notifications) as outcomes:
        await produce(
            infra.kafka_bootstrap,
            topics.tickets,
            [(b"k", created_fresh), *((b"k", r.to_bytes()) for r in replies)],
        )
        delivered = await mails(mail, 2, timeout=60)

        async def failed_recorded() -> bool:
            await outcomes.collect(len(outcomes.records) + 1, timeout=1)  # read on, always
            return any(e.type.endswith("notification.failed") for e in outcomes.events())

        await eventually(failed_recorded, timeout=30)

    assert {r for m in delivered for r in m.rcpt_tos} == {"amir@example.com"}
    failed = [e for e in outcomes.events() if e.type.endswith("notification.failed")]
    assert {e.subject for e in failed} == {old}
    assert all("bad_address" in str(e.data.model_dump()) for e in failed)

    async def caught_up() -> bool:
        ready = await notifier.http.get("/readyz")
        return ready.status_code == 200 and consumer_lag(notifier.runtime.registry, run) == 0

    await eventually(caught_up, timeout=30)


async def test_intake_refuses_an_undeliverable_address_and_takes_an_international_one(
    make_settings: Any,
) -> None:
    settings = make_settings(IntakeSettings, bootstrap_api_key=ADMIN_KEY)
    runtime = ServiceRuntime("intake", settings)
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with running(create_intake(settings, runtime)) as http:
        refused = await http.post(
            "/v1/tickets",
            json=ticket_body(requester={"id": "u-1", "email": BAD_ADDRESS}),
            headers=auth,
        )
        taken = await http.post(
            "/v1/tickets",
            json=ticket_body(requester={"id": "u-2", "email": "李伟@例子.CN"}),
            headers=auth,
        )

    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "not a valid email address" in refused.text
    assert taken.status_code == 201, taken.text
    assert taken.json()["requester"]["email"] == "李伟@例子.cn"  # stored normalized


# --- the shared consumer, on its own --------------------------------------------------------


async def consume(
    settings: ServiceSettings,
    infra: Infra,
    values: list[bytes],
    handle: Any,
    done: Callable[[BatchConsumer], Awaitable[bool]],
) -> tuple[list[Any], CollectorRegistry]:
    """Produces `values`, runs a BatchConsumer with `handle` until `done(consumer)`; returns
    what reached the DLQ (read until quiet) and the consumer's metrics."""
    topic = f"{settings.topic_prefix}input"
    await produce(infra.kafka_bootstrap, topic, [(b"one-partition", v) for v in values])
    registry = CollectorRegistry()
    producer = make_producer(settings, "test")
    await producer.start()
    consumer = BatchConsumer(
        name="probe",
        service="test",
        topics=[topic],
        group_id=f"{settings.topic_prefix}probe",
        settings=settings,
        handle=handle,
        dead_letters=DeadLetters(producer, "test.probe"),
        metrics=consumer_metrics(registry, "test"),
    )
    async with Tap(infra.kafka_bootstrap, Topics.dlq(topic)) as dlq:
        await consumer.start()
        try:
            await eventually(lambda: done(consumer), timeout=30)
            records = await dlq.settle(quiet=1.5)
        finally:
            await consumer.stop()
            await producer.stop()
    return records, registry


async def test_a_record_the_handler_raises_on_goes_to_the_dlq_and_the_rest_is_applied(
    infra: Infra, make_settings: Any
) -> None:
    settings = make_settings(ServiceSettings, poison_max_attempts=2)
    values = [b"ok-1", b"ok-2", b"ok-3", b"poison", b"ok-4", b"ok-5"]
    applied: list[bytes] = []

    async def handle(records: Sequence[ConsumerRecord[bytes, bytes]]) -> Sequence[Rejected]:
        if any(r.value == b"poison" for r in records):
            raise ValueError("cannot handle this one")
        applied.extend(r.value for r in records if r.value is not None)
        return []

    async def done(consumer: BatchConsumer) -> bool:
        return set(applied) == set(values) - {b"poison"} and consumer.last_error is None

    records, registry = await consume(settings, infra, values, handle, done)

    assert [r.value for r in records] == [b"poison"]
    headers = dict(records[0].headers)
    assert headers["error-type"] == b"ValueError"
    assert headers["error-message"] == b"cannot handle this one"
    topic = f"{settings.topic_prefix}input"
    assert (
        registry.get_sample_value(
            "helpstream_test_consumer_messages_rejected_total",
            {"consumer": "probe", "topic": topic, "reason": "ValueError"},
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "helpstream_test_consumer_poison_isolations_total", {"consumer": "probe"}
        )
        or 0
    ) >= 1


async def test_an_outage_error_is_retried_until_it_passes_and_never_dead_lettered(
    infra: Infra, make_settings: Any
) -> None:
    settings = make_settings(ServiceSettings, poison_max_attempts=2)
    values = [b"a", b"b", b"c"]
    applied: list[bytes] = []
    calls = 0

    async def handle(records: Sequence[ConsumerRecord[bytes, bytes]]) -> Sequence[Rejected]:
        nonlocal calls
        calls += 1
        if calls <= 5:  # well past poison_max_attempts: an outage is waited out
            raise AutoReconnect("database unreachable")
        applied.extend(r.value for r in records if r.value is not None)
        return []

    async def done(_: BatchConsumer) -> bool:
        return set(applied) == set(values)

    records, registry = await consume(settings, infra, values, handle, done)

    assert records == []
    assert (
        registry.get_sample_value(
            "helpstream_test_consumer_batch_retries_total", {"consumer": "probe"}
        )
        or 0
    ) >= 5
