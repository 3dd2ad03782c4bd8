"""The embedded (or container, or external) broker and database behave as the real thing."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo.errors import DuplicateKeyError

from shared.infra.modes import Infra
from shared.mongo import IN_CHUNK, find_in, insert_new
from tests.support import create_topic, produce

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase


def _consumer(infra: Infra, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=infra.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
    )


async def test_group_member_resumes_from_committed_offset_after_restart(
    infra: Infra, uid: str
) -> None:
    topic, group = f"t{uid}.resume", f"g{uid}"
    await create_topic(infra.kafka_bootstrap, topic, 1)
    await produce(
        infra.kafka_bootstrap, topic, [(b"ticket-1", f"m{i}".encode()) for i in range(20)]
    )

    first = _consumer(infra, topic, group)
    await first.start()
    taken: list[bytes] = []
    while len(taken) < 10:
        batches = await first.getmany(timeout_ms=500, max_records=10 - len(taken))
        for records in batches.values():
            taken.extend(r.value for r in records)
    await first.commit({TopicPartition(topic, 0): 10})
    await first.stop()

    second = _consumer(infra, topic, group)
    await second.start()
    try:
        record = await asyncio.wait_for(second.getone(), 20)
    finally:
        await second.stop()

    assert taken == [f"m{i}".encode() for i in range(10)]
    assert record.value == b"m10"
    assert record.key == b"ticket-1"


async def test_two_group_members_split_the_partitions(infra: Infra, uid: str) -> None:
    topic, group = f"t{uid}.split", f"g{uid}"
    await create_topic(infra.kafka_bootstrap, topic, 4)
    one, two = _consumer(infra, topic, group), _consumer(infra, topic, group)
    await one.start()
    await two.start()
    try:
        for _ in range(100):
            await asyncio.gather(one.getmany(timeout_ms=100), two.getmany(timeout_ms=100))
            if len(one.assignment()) == 2 and len(two.assignment()) == 2:
                break
        assert {tp.partition for tp in one.assignment() | two.assignment()} == {0, 1, 2, 3}
        assert not one.assignment() & two.assignment()
    finally:
        await one.stop()
        await two.stop()


async def test_headers_and_keys_survive_the_round_trip(infra: Infra, uid: str) -> None:
    from aiokafka import AIOKafkaProducer

    topic = f"t{uid}.headers"
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all")
    await producer.start()
    await producer.send_and_wait(topic, b"body", key=b"k1", headers=[("h", b"\xff\x00")])
    await producer.stop()
    consumer = _consumer(infra, topic, f"g{uid}")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 20)
    finally:
        await consumer.stop()
    assert (record.key, record.value, list(record.headers)) == (
        b"k1",
        b"body",
        [("h", b"\xff\x00")],
    )


async def test_unique_index_rejects_a_second_document_with_the_same_key(
    scratch_db: AsyncDatabase[dict[str, Any]],
) -> None:
    deliveries = scratch_db["deliveries"]
    await deliveries.create_index("key", unique=True)
    await deliveries.insert_one({"key": "event-1/email/li.wei@example.com"})
    with pytest.raises(DuplicateKeyError):
        await deliveries.insert_one({"key": "event-1/email/li.wei@example.com"})
    assert await deliveries.count_documents({}) == 1


async def test_find_in_returns_every_match_of_a_list_longer_than_one_chunk_once(
    scratch_db: AsyncDatabase[dict[str, Any]],
) -> None:
    tickets = scratch_db["tickets"]
    await tickets.insert_many(
        [{"_id": f"T-{i}", "state": "open" if i % 2 else "solved"} for i in range(300)]
    )
    wanted = [f"T-{i}" for i in range(0, 300, 2)] + ["T-1", "T-3", "T-1", "missing"]

    found = await find_in(tickets, "_id", wanted, where={"state": "open"})

    assert len(wanted) > 2 * IN_CHUNK
    assert sorted(d["_id"] for d in found) == ["T-1", "T-3"]
    every = await find_in(tickets, "_id", wanted, projection={"state": 1})
    assert len(every) == 152  # 150 even ids and T-1, T-3, each once


async def test_insert_new_keeps_what_exists_and_tells_which_documents_it_inserted(
    scratch_db: AsyncDatabase[dict[str, Any]],
) -> None:
    surveys = scratch_db["surveys"]
    await surveys.insert_one({"_id": "S-2", "status": "answered"})

    inserted = await insert_new(
        surveys, [{"_id": f"S-{i}", "status": "requested"} for i in range(4)]
    )

    assert inserted == [0, 1, 3]
    assert await surveys.find_one({"_id": "S-2"}) == {"_id": "S-2", "status": "answered"}
    assert await surveys.count_documents({}) == 4
    assert await insert_new(surveys, []) == []
