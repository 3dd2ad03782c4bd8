"""API keys: stored as SHA-256 hashes, scoped, checked on every request.

Keys are 32 random bytes, so a fast hash is enough (no password-style stretching);
only the hash is stored, and the key is shown once when it is created.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from pymongo.errors import DuplicateKeyError

if TYPE_CHECKING:
    from datetime import datetime

    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from shared.mongo import Document


class Scope(StrEnum):
    read = "tickets:read"  # read tickets
    write = "tickets:write"  # open tickets, add requester messages, ask for escalation
    agent = "tickets:agent"  # agent replies, notes, system notices, status, priority, escalation
    admin = "admin"  # create API keys


ALL_SCOPES = frozenset(Scope)
KEY_PREFIX = "hs_"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: frozenset[Scope]


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str  # the whole key, shown once


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(secret: str) -> str | None:
    """The key id inside `hs_<id>_<random>`, or None when the shape is wrong."""
    if not secret.startswith(KEY_PREFIX):
        return None
    parts = secret[len(KEY_PREFIX) :].split("_", 1)
    return parts[0] if len(parts) == 2 and parts[0] and parts[1] else None


class ApiKeyStore:
    """Keys in MongoDB, with a short in-process cache so a request costs no round trip."""

    def __init__(self, db: AsyncDatabase[Document], cache_seconds: float = 30.0) -> None:
        self.keys: AsyncCollection[Document] = db["api_keys"]
        self._cache: dict[str, tuple[float, Document | None]] = {}
        self._cache_seconds = cache_seconds

    async def create(
        self, name: str, scopes: frozenset[Scope], now: datetime, secret: str | None = None
    ) -> IssuedKey:
        """`secret` lets an operator install a key it generated (the bootstrap key)."""
        secret = secret or f"{KEY_PREFIX}{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
        key_id = split_key(secret)
        if key_id is None:
            raise ValueError(f"an API key looks like {KEY_PREFIX}<id>_<random>")
        doc = {
            "_id": key_id,
            "name": name,
            "hash": _hash(secret),
            "scopes": sorted(s.value for s in scopes),
            "created_at": now,
            "revoked": False,
        }
        try:
            await self.keys.insert_one(doc)
        except DuplicateKeyError:
            await self.keys.replace_one({"_id": key_id}, doc)
        self._cache.pop(key_id, None)
        return IssuedKey(ApiKey(key_id, name, scopes), secret)

    async def verify(self, secret: str) -> ApiKey | None:
        key_id = split_key(secret)
        if key_id is None:
            return None
        doc = await self._load(key_id)
        if doc is None or doc.get("revoked") or not hmac.compare_digest(doc["hash"], _hash(secret)):
            return None
        return ApiKey(key_id, doc["name"], frozenset(Scope(s) for s in doc["scopes"]))

    async def _load(self, key_id: str) -> Document | None:
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        doc = await self.keys.find_one({"_id": key_id})
        ttl = self._cache_seconds if doc is not None else 2.0  # new keys work at once
        self._cache[key_id] = (time.monotonic() + ttl, doc)
        return doc
