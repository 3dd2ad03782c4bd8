"""Poison on every input topic: each message lands in `<topic>.dlq` with its reason, every
consumer counts it and keeps going, and a valid event afterwards is still processed."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from shared.command_signing import sign_headers
from shared.commands import COMMAND_MODELS
from shared.events import EVENT_MODELS, FeedbackRequested, make_event
from shared.topics import Topics
from tests.faults.harness import API_KEY, metric_sum, open_command
from tests.support import Tap, consumers_of, eventually

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from shared.infra.mailcatcher import MailCatcher
    from tests.faults.harness import System

pytestmark = pytest.mark.faults

PER_TOPIC = 600  # hypothesis examples per input topic (plus the huge ones)
HUGE_PER_TOPIC = 2  # 1-2 MB values
DRAIN_S = 120.0

Poison = tuple[str, bytes | None]  # (kind, value)


JSON: SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def envelope(kind: str, data: Any, version: int = 1, subject: str = "t-poison") -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"poison-{time.monotonic_ns()}",
            "source": "/faults/poison",
            "type": kind,
            "subject": subject,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "dataschemaversion": version,
            "correlationid": "poison",
            "data": data,
        }
    ).encode()


def poison(known_types: list[str]) -> SearchStrategy[Poison]:
    known = st.sampled_from(known_types)
    return st.one_of(
        st.binary(max_size=300).map(lambda b: ("random_bytes", b)),
        st.text(max_size=200).map(lambda t: ("broken_json", ("{" + t).encode())),
        JSON.map(lambda v: ("json_not_an_event", json.dumps(v).encode())),
        st.tuples(known, st.dictionaries(st.text(max_size=10), JSON, max_size=5)).map(
            lambda p: ("wrong_data", envelope(p[0], {"not": "this", **p[1]}))
        ),
        st.text(min_size=1, max_size=40).map(
            lambda t: ("unknown_type", envelope(f"x.unknown.{t}", {}))
        ),
        known.map(lambda k: ("version_99", envelope(k, {}, version=99))),
        st.just(("empty", b"")),
        st.just(("tombstone", None)),
    )


def huge(index: int) -> Poison:
    size = 1_000_000 + index * 500_000
    if index % 2:
        return ("huge", b"\x00\xff" * (size // 2))
    return ("huge", envelope("helpstream.ticket.created", {"subject": "x" * size}))


def generate(strategy: SearchStrategy[Poison], count: int) -> list[Poison]:
    out: list[Poison] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(item: Poison) -> None:
        out.append(item)

    collect()
    return out


async def test_poison_on_every_input_topic_goes_to_the_dlq_and_consumers_keep_going(
    system: System, mail: MailCatcher
) -> None:
    started = time.monotonic()
    readers = consumers_of(system.topics)
    types_for = {
        system.topics.commands: sorted(COMMAND_MODELS),
        **{t: sorted(EVENT_MODELS) for t in readers if t != system.topics.commands},
    }
    sent: dict[str, Counter[str]] = {}
    producer = AIOKafkaProducer(
        bootstrap_servers=system.infra.bootstrap,
        acks="all",
        max_request_size=4 * 1024 * 1024,
        linger_ms=5,
    )
    await producer.start()
    try:
        for topic in readers:
            items = generate(poison(types_for[topic]), PER_TOPIC)
            items += [huge(i) for i in range(HUGE_PER_TOPIC)]
            # Commands are signed, so the poison reaches the parser (unsigned and forged
            # commands: tests/security/test_signed_commands.py).
            signed = topic == system.topics.commands
            futures = [
                await producer.send(
                    topic,
                    value,
                    key=f"k{n % 7}".encode(),
                    headers=sign_headers(API_KEY, value or b"", datetime.now(UTC))
                    if signed
                    else None,
                )
                for n, (_, value) in enumerate(items)
            ]
            for future in futures:
                await future
            sent[topic] = Counter(kind for kind, _ in items)
    finally:
        await producer.stop()
    produced = {t: sum(c.values()) for t, c in sent.items()}
    print(f"\n[poison] produced in {time.monotonic() - started:.0f}s: {produced}")
    for topic, kinds in sent.items():
        print(f"[poison]   {topic}: {dict(kinds)}")

    def rejected() -> dict[tuple[str, str, str], float]:
        out = {}
        for topic, pairs in readers.items():
            for service, consumer in pairs:
                text = system.metrics(service)
                out[(service, consumer, topic)] = metric_sum(
                    text,
                    f"helpstream_{service}_consumer_messages_rejected_total",
                    consumer=consumer,
                    topic=topic,
                )
        return out

    async def all_rejected() -> bool:
        return all(n >= produced[topic] for (_, _, topic), n in rejected().items())

    drain_started = time.monotonic()
    try:
        await eventually(all_rejected, timeout=DRAIN_S, interval=1.0)
    finally:
        counted = rejected()
        print(
            f"[poison] rejected counters after {time.monotonic() - drain_started:.0f}s: {counted}"
        )
        print(f"[poison] alive: {system.alive()}")
    assert all(system.alive().values()), system.alive()
    assert all(n == produced[t] for (_, _, t), n in counted.items()), (counted, produced)

    dlq: dict[str, Counter[str]] = {}
    reasons: Counter[str] = Counter()
    for topic, pairs in readers.items():
        expected = produced[topic] * len(pairs)
        async with Tap(system.infra.bootstrap, Topics.dlq(topic)) as tap:
            await tap.collect(expected, timeout=60)
            records = await tap.settle(quiet=1.0)
        per_consumer: Counter[str] = Counter()
        for record in records:
            headers = dict(record.headers or ())
            assert headers.get("error-type"), f"DLQ record without error-type: {headers}"
            per_consumer[headers.get("consumer", b"?").decode()] += 1
            reasons[headers["error-type"].decode()] += 1
        dlq[topic] = per_consumer
    print(f"[poison] DLQ records per consumer: { {t: dict(c) for t, c in dlq.items()} }")
    print(f"[poison] DLQ error-type headers: {dict(reasons)}")
    for topic, pairs in readers.items():
        wanted = {f"{service}.{consumer}": produced[topic] for service, consumer in pairs}
        assert dict(dlq[topic]) == wanted, (topic, dict(dlq[topic]), wanted)

    # A valid command after all that poison: a ticket, its acknowledgement, a survey event.
    command_id, value = open_command(1, "after-poison")
    producer = AIOKafkaProducer(bootstrap_servers=system.infra.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            system.topics.commands,
            value,
            key=b"after",
            headers=sign_headers(API_KEY, value, datetime.now(UTC)),
        )
        before = len(mail.messages)
        mails = mail.wait_for(before + 1, timeout=60)
        acks = [m for m in mails if "We received your request" in m.subject]
        assert acks, "no acknowledgement for a valid command sent after the poison"
        ticket_id = acks[-1].subject[1:].split("]", 1)[0]
        survey = FeedbackRequested(
            ticket_id=ticket_id,
            survey_id=f"s-{command_id}",
            requester_id="u-after-poison-1",
            locale="en",
            survey_url="https://example.com/s",
            expires_at=datetime.now(UTC) + timedelta(days=7),
        )
        event = make_event(
            survey, source="/helpstream/feedback", time=datetime.now(UTC), correlationid="after"
        )
        await producer.send_and_wait(
            system.topics.feedback, event.to_bytes(), key=ticket_id.encode()
        )
    finally:
        await producer.stop()

    def processed() -> dict[tuple[str, str, str], float]:
        return {
            (service, consumer, topic): metric_sum(
                system.metrics(service),
                f"helpstream_{service}_consumer_messages_processed_total",
                consumer=consumer,
                topic=topic,
            )
            for topic, pairs in readers.items()
            for service, consumer in pairs
        }

    async def all_processed() -> bool:
        return all(n > 0 for n in processed().values())

    try:
        await eventually(all_processed, timeout=60, interval=1.0)
    finally:
        print(f"[poison] processed after the poison: {processed()}")
        print(f"[poison] whole test {time.monotonic() - started:.0f}s")
