"""The two ways a contract suite reads what a repository left to publish: from the
in-memory implementation's `published` list, or from the outboxes of a MongoDB
collection, oldest document first and each outbox in its order, as the relay reads them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from shared.events import parse_event
from shared.mongo import make_client, service_database
from shared.outbox import OUTBOX, OUTBOX_SINCE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from shared.events import Outgoing
    from shared.mongo import Document
    from shared.settings import ServiceSettings


class Publishing(Protocol):
    published: list[Outgoing]


P = TypeVar("P", bound=Publishing)
R = TypeVar("R")


@dataclass(frozen=True)
class MemoryHarness(Generic[P]):
    repository: P

    async def pending(self) -> list[Outgoing]:
        return list(self.repository.published)


@dataclass(frozen=True)
class MongoHarness(Generic[R]):
    repository: R
    collection: AsyncCollection[Document]

    async def pending(self) -> list[Outgoing]:
        docs = (
            await self.collection.find({OUTBOX_SINCE: {"$exists": True}}, {OUTBOX: 1})
            .sort([(OUTBOX_SINCE, 1), ("_id", 1)])
            .to_list()
        )
        return [
            (entry["topic"], parse_event(bytes(entry["value"])))
            for doc in docs
            for entry in doc.get(OUTBOX) or []
        ]


@contextlib.asynccontextmanager
async def fresh_database(
    settings: ServiceSettings, service: str
) -> AsyncIterator[AsyncDatabase[Document]]:
    """The service's database under the test's own prefix, dropped afterwards."""
    client = make_client(settings)
    db = service_database(client, settings, service)
    try:
        yield db
    finally:
        await client.drop_database(db.name)
        await client.close()
