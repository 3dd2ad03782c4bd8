"""An acknowledged write survives the database being killed: the services commit Kafka
offsets on the strength of that acknowledgement."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from pymongo import MongoClient

from shared.infra.embedded import mongo_process, mongo_url
from shared.infra.processes import free_port
from shared.mongo import make_client
from shared.settings import ServiceSettings

if TYPE_CHECKING:
    from pathlib import Path

    from shared.infra.processes import ManagedProcess

WRITING_S = 1.5


def _start(port: int, root: Path) -> ManagedProcess:
    process = mongo_process(port, root / "logs", root / "data")
    process.start(timeout=60)
    return process


async def test_every_write_the_service_client_saw_acknowledged_survives_a_kill_9(
    tmp_path: Path,
) -> None:
    port = free_port()
    database = _start(port, tmp_path)
    client = make_client(ServiceSettings(mongo_url=mongo_url(port)))
    docs = client["durability"]["docs"]
    acknowledged: list[int] = []

    async def write() -> None:
        while True:
            n = len(acknowledged)
            await docs.insert_one({"_id": n})
            acknowledged.append(n)

    writer = asyncio.create_task(write())
    try:
        await asyncio.sleep(WRITING_S)
        assert database.process is not None
        database.process.kill()  # mid-stream: no shutdown, no checkpoint
        database.process.wait(timeout=30)
        database.process = None
        await asyncio.sleep(0.2)
    finally:
        writer.cancel()
        with contextlib.suppress(BaseException):
            await writer
        await client.close()

    database = _start(port, tmp_path)
    try:
        with MongoClient(mongo_url(port)) as reader:
            stored = {d["_id"] for d in reader["durability"]["docs"].find({}, {"_id": 1})}
    finally:
        database.stop()
    lost = [n for n in acknowledged if n not in stored]
    assert len(acknowledged) > 50, "the writer barely ran; nothing was proven"
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged writes lost: {lost[:5]}"
