"""MongoDB client factory and the errors that mean "try again later"."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar

import pymongo
from pymongo import AsyncMongoClient
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    NetworkTimeout,
    NotPrimaryError,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Iterable, Mapping, Sequence

    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from shared.settings import ServiceSettings

Document = dict[str, Any]
T = TypeVar("T")
DUPLICATE_KEY = 11000

# SecantusDB compares each candidate document with the whole `$in` list, so one lookup
# of 500 ids cost 0.17 s where ten of 50 cost 0.03 s; on MongoDB the chunks cost a few
# round trips more.
IN_CHUNK = 50

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    AutoReconnect,
    ConnectionFailure,
    NetworkTimeout,
    NotPrimaryError,
    ServerSelectionTimeoutError,
    WriteConcernError,
)


def make_client(settings: ServiceSettings) -> AsyncMongoClient[Document]:
    """Majority, journaled writes: an effect is "durable" (and its offset may be committed)
    only once the replica set has it in its journal. Without `j`, a standalone server
    acknowledges a write still in its log buffer, and a kill -9 can lose it."""
    return AsyncMongoClient(
        settings.mongo_url,
        tz_aware=True,
        w="majority",
        journal=True,
        serverSelectionTimeoutMS=5000,
        timeoutMS=settings.mongo_timeout_ms,  # no operation hangs while the database is away
        connectTimeoutMS=3000,
        appname="helpstream",
    )


def service_database(
    client: AsyncMongoClient[Document], settings: ServiceSettings, service: str
) -> AsyncDatabase[Document]:
    return client[f"{settings.mongo_db_prefix}_{service}"]


async def mongo_ready(client: AsyncMongoClient[Document], timeout_s: float = 1.0) -> bool:
    """Bounded by the driver's own timeout, never by cancelling: see `uncancelled`."""
    try:
        with pymongo.timeout(timeout_s):
            await client.admin.command("ping")
    except PyMongoError:
        return False
    return True


_running: set[asyncio.Future[Any]] = set()  # holds them while nobody awaits them any more


def _finished(task: asyncio.Future[Any]) -> None:
    _running.discard(task)
    if not task.cancelled():
        task.exception()  # read, so an outcome nobody awaits is not reported as lost


async def uncancelled(operation: Awaitable[T]) -> T:
    """Runs a database operation to its end even if the caller is cancelled meanwhile.

    On Python 3.11 a cancellation that reaches PyMongo while it waits for a server (as it
    does all through an outage) can land inside its own `asyncio.wait_for` and release the
    client's topology lock twice: every later operation of the process then fails with
    "Lock is not acquired" or waits forever. Operations whose caller may be cancelled
    (a stream whose client went away) go through here; the operation itself stays bounded
    by `timeoutMS`.
    """
    task = asyncio.ensure_future(operation)
    _running.add(task)
    task.add_done_callback(_finished)
    return await asyncio.shield(task)


def is_unavailable(exc: BaseException) -> bool:
    """The database is away or too slow (not a bad request): worth a retry later."""
    return isinstance(exc, TRANSIENT_ERRORS) or bool(isinstance(exc, PyMongoError) and exc.timeout)


async def find_in(
    collection: AsyncCollection[Document],
    field: str,
    values: Iterable[Any],
    *,
    where: Mapping[str, Any] | None = None,
    projection: Mapping[str, Any] | None = None,
) -> list[Document]:
    """Documents whose `field` is one of `values` (and that match `where`), looked up
    `IN_CHUNK` values at a time."""
    unique = list(dict.fromkeys(values))
    found: list[Document] = []
    for start in range(0, len(unique), IN_CHUNK):
        query = {**(where or {}), field: {"$in": unique[start : start + IN_CHUNK]}}
        found += await collection.find(query, projection).to_list()
    return found


async def insert_new(collection: AsyncCollection[Document], docs: Sequence[Document]) -> list[int]:
    """Inserts, unordered, every document whose unique keys are still free; returns the
    positions of those inserted. One whose key exists (a redelivered event, a repeated
    command) is left as the earlier write made it; any other error, or a write concern
    not met, raises."""
    if not docs:
        return []
    try:
        await collection.insert_many(list(docs), ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors") or []
        if exc.details.get("writeConcernErrors") or any(
            e.get("code") != DUPLICATE_KEY for e in errors
        ):
            raise
        taken = {e["index"] for e in errors}
        return [i for i in range(len(docs)) if i not in taken]
    return list(range(len(docs)))
