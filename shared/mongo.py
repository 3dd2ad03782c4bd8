"""MongoDB client factory and the errors that mean "try again later"."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pymongo import AsyncMongoClient
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    NetworkTimeout,
    NotPrimaryError,
    ServerSelectionTimeoutError,
    WriteConcernError,
)

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from shared.settings import ServiceSettings

Document = dict[str, Any]

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    AutoReconnect,
    ConnectionFailure,
    NetworkTimeout,
    NotPrimaryError,
    ServerSelectionTimeoutError,
    WriteConcernError,
)


def make_client(settings: ServiceSettings) -> AsyncMongoClient[Document]:
    """Majority writes: an effect is "durable" only once the replica set has it."""
    return AsyncMongoClient(
        settings.mongo_url,
        tz_aware=True,
        w="majority",
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=3000,
        appname="helpstream",
    )


def service_database(
    client: AsyncMongoClient[Document], settings: ServiceSettings, service: str
) -> AsyncDatabase[Document]:
    return client[f"{settings.mongo_db_prefix}_{service}"]


async def mongo_ready(client: AsyncMongoClient[Document]) -> bool:
    try:
        await client.admin.command("ping")
    except TRANSIENT_ERRORS:
        return False
    return True
