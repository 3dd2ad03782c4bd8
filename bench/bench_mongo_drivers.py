"""MongoDB store operations: PyMongo's AsyncMongoClient vs Motor, same SecantusDB.

Operations (each timed on both drivers, alternating, fresh collections):
insert_one, find_one by _id, update_one by _id, bulk_write of 500 upserts, find with
an indexed filter (50 documents back). Ratio = PyMongo ops/s ÷ Motor ops/s (per
operation, and the geometric mean as `pymongo_vs_motor_ratio`).
HELPSTREAM_BENCH_DRIVER_OPS sets the single-document operation count (default 1000).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import ASCENDING, AsyncMongoClient, UpdateOne

from bench._common import infrastructure, prefix, table

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from shared.infra.modes import Infra

OPS_DEFAULT = 1000
BULK_ROUNDS = 8
FIND_ROUNDS = 200


def document(i: int) -> dict[str, Any]:
    """A ticket-shaped document."""
    return {
        "_id": f"t-{i:08d}",
        "requester": {"id": f"u-{i % 100}", "email": f"u{i}@example.com", "locale": "en"},
        "status": "open",
        "priority": "normal",
        "category": "withdrawal_delay",
        "subject": f"Withdrawal {i} pending",
        "description": "My USDT withdrawal has not arrived after 3 hours.",
        "created_at": datetime.now(UTC),
        "version": 0,
    }


async def operations(coll: Any, n: int) -> dict[str, float]:
    """ops/s of each store operation on one collection (either driver's API)."""
    await coll.create_index([("requester.id", ASCENDING)])
    rates: dict[str, float] = {}

    async def rate(name: str, count: int, work: Callable[[int], Awaitable[Any]]) -> None:
        started = time.perf_counter()
        for i in range(count):
            await work(i)
        rates[name] = count / (time.perf_counter() - started)

    await rate("insert_one", n, lambda i: coll.insert_one(document(i)))
    await rate("find_one_by_id", n, lambda i: coll.find_one({"_id": f"t-{i:08d}"}))
    await rate(
        "update_one_by_id",
        n,
        lambda i: coll.update_one({"_id": f"t-{i:08d}"}, {"$inc": {"version": 1}}),
    )

    async def bulk(round_: int) -> None:
        base = 1_000_000 + round_ * 500
        ops = [
            UpdateOne({"_id": f"t-{base + j:08d}"}, {"$set": document(base + j)}, upsert=True)
            for j in range(500)
        ]
        await coll.bulk_write(ops, ordered=False)

    await rate("bulk_write_500_upserts", BULK_ROUNDS, bulk)
    rates["bulk_write_500_upserts"] *= 500  # documents/s

    async def find(i: int) -> None:
        docs = await coll.find({"requester.id": f"u-{i % 100}"}).limit(50).to_list(None)
        assert docs

    await rate("find_indexed", FIND_ROUNDS, find)
    return rates


async def one_driver(kind: str, url: str, n: int) -> dict[str, float]:
    client: Any = (
        AsyncMongoClient(url, tz_aware=True, w="majority")
        if kind == "pymongo"
        else AsyncIOMotorClient(url, tz_aware=True, w="majority")
    )
    db = client[f"{prefix()}_{kind}"]
    try:
        return await operations(db["tickets"], n)
    finally:
        await client.drop_database(db.name)
        if kind == "pymongo":
            await client.close()
        else:
            client.close()


async def main(infra: Infra, n: int) -> dict[str, float]:
    # Alternate the drivers twice (P M M P) so drift on the shared machine cancels out.
    runs: dict[str, list[dict[str, float]]] = {"pymongo": [], "motor": []}
    for kind in ("pymongo", "motor", "motor", "pymongo"):
        runs[kind].append(await one_driver(kind, infra.mongo_url, n))
        print(f"  {kind}: done", flush=True)
    names = list(runs["pymongo"][0])
    mean = {k: {op: sum(r[op] for r in v) / len(v) for op in names} for k, v in runs.items()}
    ratios = {op: mean["pymongo"][op] / mean["motor"][op] for op in names}
    rows = [(op, mean["pymongo"][op], mean["motor"][op], ratios[op]) for op in names]
    print(table(rows, ("operation", "pymongo ops/s", "motor ops/s", "ratio")))
    out: dict[str, float] = {}
    for op in names:
        out[f"mongo_{op}_pymongo_per_s"] = round(mean["pymongo"][op], 1)
        out[f"mongo_{op}_motor_per_s"] = round(mean["motor"][op], 1)
    geo = math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios))
    out["pymongo_vs_motor_ratio"] = round(geo, 3)
    return out


def run() -> dict[str, float]:
    n = int(os.environ.get("HELPSTREAM_BENCH_DRIVER_OPS", OPS_DEFAULT))
    with infrastructure() as infra:
        return asyncio.run(main(infra, n))
