"""API keys: stored hashed, scoped, revocable and rotatable; checked on every request and
on every command from `helpstream.commands`.

Keys are 32 random bytes, so a fast hash is enough (no password-style stretching); only
the hash is stored, and the key is shown once when it is created or rotated. Next to the
hash sits the key's command-signing key (`shared.command_signing.signing_key`), derived
from the key, so one credential carries the same authority through both doors.

Lookups go through a small cache, bounded both ways:
- in size: an LRU of `max_entries` key ids, so no stream of requests can grow it;
- in time: an entry lives `cache_seconds` (0.5 s). A revoke is a write to MongoDB; every
  instance re-reads a key at most 0.5 s after it cached it, so a revoked key is refused
  on every instance within 0.5 s plus one read (under 1 s). The price is at most two
  reads a second per key in use and instance.
A malformed key (anything but `hs_<id>_<random>` of bounded length) is refused before
any lookup and leaves nothing in the cache; unknown well-formed ids are cached as misses
for the same 0.5 s, so a flood of them costs one read per id and stays inside the LRU.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from pymongo.errors import DuplicateKeyError

from shared.clock import SystemClock
from shared.command_signing import SignatureError, check, signing_key
from shared.commands import (
    AddMessage,
    DeclareIncident,
    EscalateTicket,
    LinkTicket,
    OpenTicket,
    ReceiveMail,
    ResolveIncident,
    SolveByArticle,
    UpdateIncident,
    UpdateTicket,
)
from shared.events import Author

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping
    from datetime import datetime

    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from services.intake.metrics import IntakeMetrics
    from shared.clock import Clock
    from shared.command_signing import SignedBy
    from shared.commands import Command
    from shared.mongo import Document


class Scope(StrEnum):
    read = "tickets:read"  # read tickets
    write = "tickets:write"  # open tickets, add requester messages, ask for escalation
    agent = "tickets:agent"  # agent replies, notes, system notices, status, priority, escalation
    admin = "admin"  # create, revoke and rotate API keys
    incidents = "incidents:write"  # declare, update and resolve incidents (support and platform)
    privacy = "privacy:admin"  # erase requesters, place and lift legal holds


ALL_SCOPES = frozenset(Scope)
KEY_PREFIX = "hs_"
MAX_ID_LENGTH = 64
MAX_RANDOM_LENGTH = 128
MAX_KEY_LENGTH = len(KEY_PREFIX) + MAX_ID_LENGTH + 1 + MAX_RANDOM_LENGTH
_KEY_ID = re.compile(rf"[A-Za-z0-9]{{1,{MAX_ID_LENGTH}}}")
_KEY = re.compile(rf"hs_([A-Za-z0-9]{{1,{MAX_ID_LENGTH}}})_[A-Za-z0-9_-]{{16,{MAX_RANDOM_LENGTH}}}")
MAX_OVERLAP = timedelta(days=7)
MAX_PREVIOUS = 5  # credentials of earlier rotations still inside their overlap


def required_scope(cmd: Command) -> Scope:
    """The scope a command needs, whichever door it comes through (HTTP or Kafka).

    Agent replies, internal notes and official system notices need the agent scope: they
    speak as support, which is what a forged "send us your 12 words" would abuse.
    """
    if isinstance(cmd, AddMessage):
        # An unverified message is held as internal whatever `public` says: reporting one is
        # what a mail gateway with tickets:write is for.
        by_requester = cmd.author == Author.requester
        return Scope.write if by_requester and (cmd.public or not cmd.verified) else Scope.agent
    if isinstance(cmd, EscalateTicket):
        return Scope.agent if cmd.by == "agent" else Scope.write
    if isinstance(cmd, OpenTicket | ReceiveMail | SolveByArticle):
        return Scope.write  # what mail becomes is intake's to decide, never the sender's
    if isinstance(cmd, UpdateTicket | LinkTicket):
        return Scope.agent
    if isinstance(cmd, DeclareIncident | UpdateIncident | ResolveIncident):
        return Scope.incidents  # speaks to every linked requester at once
    return Scope.admin  # a command type nobody thought about: only the most trusted key


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: frozenset[Scope]


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str  # the whole key, shown once
    previous_valid_until: datetime | None = None  # rotation: when the old secret stops


@dataclass(frozen=True)
class Credential:
    """One secret of a key: the current one (`until` None) or one still in its overlap."""

    hash: str
    signing_key: bytes | None  # None: stored before commands were signed; rotate to sign
    until: datetime | None = None

    def live(self, now: datetime) -> bool:
        return self.until is None or now < self.until


@dataclass(frozen=True)
class StoredKey:
    key: ApiKey
    revoked: bool
    credentials: tuple[Credential, ...] = field(default=())

    def live(self, now: datetime) -> list[Credential]:
        return [] if self.revoked else [c for c in self.credentials if c.live(now)]


class CommandKeys(Protocol):
    """Where the commands consumer finds the key a record claims (one round trip a batch)."""

    async def lookup_many(self, key_ids: Collection[str]) -> Mapping[str, StoredKey | None]: ...


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(secret: str) -> str | None:
    """The key id inside `hs_<id>_<random>`, or None when the shape (or length) is wrong."""
    if len(secret) > MAX_KEY_LENGTH:
        return None
    match = _KEY.fullmatch(secret)
    return match.group(1) if match else None


def is_key_id(key_id: str) -> bool:
    return len(key_id) <= MAX_ID_LENGTH and _KEY_ID.fullmatch(key_id) is not None


def _new_secret(key_id: str) -> str:
    return f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def _credential_doc(secret: str) -> Document:
    return {"hash": _hash(secret), "signing_key": signing_key(secret).hex()}


def _stored(doc: Document) -> StoredKey:
    current = Credential(doc["hash"], _key_bytes(doc.get("signing_key")))
    previous = tuple(
        Credential(p["hash"], _key_bytes(p.get("signing_key")), p["until"])
        for p in doc.get("previous", ())
    )
    key = ApiKey(doc["_id"], doc["name"], frozenset(Scope(s) for s in doc["scopes"]))
    return StoredKey(key, bool(doc.get("revoked")), (current, *previous))


def _key_bytes(value: object) -> bytes | None:
    return bytes.fromhex(value) if isinstance(value, str) else None


def verify_command(
    claim: SignedBy,
    stored: StoredKey | None,
    value: bytes,
    now: datetime,
    window_s: float,
) -> ApiKey:
    """The key whose authority a record carries, or `SignatureError` saying why it has none."""
    if stored is None:
        raise SignatureError("unknown_key", f"no API key {claim.key_id}")
    if stored.revoked:
        raise SignatureError("revoked_key", f"API key {claim.key_id} is revoked")
    keys = [c.signing_key for c in stored.live(now) if c.signing_key is not None]
    if not keys:
        raise SignatureError("unknown_key", f"API key {claim.key_id} has no signing key")
    refused = SignatureError("bad_signature", f"not signed by key {claim.key_id}")
    for key in keys:
        try:
            check(claim, key, value, now, window_s)
        except SignatureError as exc:
            if exc.reason != "bad_signature":
                raise  # the signature matched: its verdict (stale) is final
            refused = exc
        else:
            return stored.key
    raise refused


class KeyRevoked(Exception):
    """A revoked key cannot be rotated back to life; create a new one."""


class ApiKeyStore:
    """Keys in MongoDB behind the bounded, short-lived cache described above."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        metrics: IntakeMetrics,
        clock: Clock | None = None,
        cache_seconds: float = 0.5,
        max_entries: int = 10_000,
    ) -> None:
        self.keys: AsyncCollection[Document] = db["api_keys"]
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._cache: OrderedDict[str, tuple[float, StoredKey | None]] = OrderedDict()
        self._cache_seconds = cache_seconds
        self.max_entries = max_entries

    @property
    def cached(self) -> int:
        """Entries in the cache now (never more than `max_entries`)."""
        return len(self._cache)

    async def create(
        self, name: str, scopes: frozenset[Scope], now: datetime, secret: str | None = None
    ) -> IssuedKey:
        """`secret` lets an operator install a key it generated (the bootstrap key); a
        revoked key is never brought back that way, the revoke stands."""
        secret = secret or _new_secret(secrets.token_hex(6))
        key_id = split_key(secret)
        if key_id is None:
            raise ValueError(
                f"an API key looks like {KEY_PREFIX}<id>_<random>: an id of 1-{MAX_ID_LENGTH} "
                f"letters or digits, 16-{MAX_RANDOM_LENGTH} random URL-safe characters"
            )
        doc = {
            "_id": key_id,
            "name": name,
            **_credential_doc(secret),
            "scopes": sorted(s.value for s in scopes),
            "created_at": now,
            "revoked": False,
        }
        try:
            await self.keys.insert_one(doc)
        except DuplicateKeyError:
            replaced = await self.keys.replace_one({"_id": key_id, "revoked": False}, doc)
            if replaced.matched_count == 0:
                raise KeyRevoked(key_id) from None
        self._forget(key_id)
        self._metrics.api_keys_changed.labels("created").inc()
        return IssuedKey(ApiKey(key_id, name, scopes), secret)

    async def revoke(self, key_id: str) -> bool:
        """False when there is no such key. Other instances refuse it within `cache_seconds`."""
        if not is_key_id(key_id):
            return False
        done = await self.keys.update_one(
            {"_id": key_id},
            {"$set": {"revoked": True, "revoked_at": self._clock.now()}},
        )
        self._forget(key_id)
        if done.matched_count:
            self._metrics.api_keys_changed.labels("revoked").inc()
        return done.matched_count == 1

    async def rotate(self, key_id: str, overlap: timedelta) -> IssuedKey | None:
        """A new secret for the same key id; the old ones keep working for at most `overlap`
        (so their holders can switch), then stop. None when there is no such key."""
        if not timedelta(0) <= overlap <= MAX_OVERLAP:
            raise ValueError(f"the overlap is between 0 and {MAX_OVERLAP}")
        if not is_key_id(key_id):
            return None
        for _ in range(5):
            doc = await self.keys.find_one({"_id": key_id})
            if doc is None:
                return None
            if doc.get("revoked"):
                raise KeyRevoked(key_id)
            now = self._clock.now()
            until = now + overlap
            # No secret outlives the new overlap: a rotation with 0 s stops every old one now.
            old = {"hash": doc["hash"], "signing_key": doc.get("signing_key"), "until": until}
            kept = [{**p, "until": min(p["until"], until)} for p in doc.get("previous", ())]
            previous = [p for p in [old, *kept] if p["until"] > now][:MAX_PREVIOUS]
            secret = _new_secret(key_id)
            changed = await self.keys.update_one(
                {"_id": key_id, "hash": doc["hash"], "revoked": False},
                {"$set": {**_credential_doc(secret), "previous": previous, "rotated_at": now}},
            )
            if changed.modified_count == 1:
                self._forget(key_id)
                self._metrics.api_keys_changed.labels("rotated").inc()
                scopes = frozenset(Scope(s) for s in doc["scopes"])
                return IssuedKey(ApiKey(key_id, doc["name"], scopes), secret, until)
        raise RuntimeError(f"API key {key_id} kept changing while it was rotated")

    async def verify(self, secret: str) -> ApiKey | None:
        """The key of an HTTP request, or None; malformed keys are refused without a lookup."""
        key_id = split_key(secret)
        if key_id is None:
            return None
        stored = (await self.lookup_many([key_id]))[key_id]
        if stored is None:
            return None
        digest = _hash(secret)
        for credential in stored.live(self._clock.now()):
            if hmac.compare_digest(credential.hash, digest):
                return stored.key
        return None

    async def lookup_many(self, key_ids: Collection[str]) -> dict[str, StoredKey | None]:
        """Stored keys by id, from the cache or one read for all the ids it lacks.
        Ids that are not key ids are answered None and never cached or looked up."""
        found: dict[str, StoredKey | None] = {}
        unseen: list[str] = []
        clock = time.monotonic()
        for key_id in set(key_ids):
            if not is_key_id(key_id):
                found[key_id] = None
                continue
            cached = self._cache.get(key_id)
            if cached is not None and cached[0] > clock:
                self._cache.move_to_end(key_id)
                found[key_id] = cached[1]
            else:
                unseen.append(key_id)
        if unseen:
            loaded = {
                doc["_id"]: _stored(doc) async for doc in self.keys.find({"_id": {"$in": unseen}})
            }
            self._metrics.api_key_lookups.labels("found").inc(len(loaded))
            self._metrics.api_key_lookups.labels("missing").inc(len(unseen) - len(loaded))
            expires = time.monotonic() + self._cache_seconds
            for key_id in unseen:
                found[key_id] = loaded.get(key_id)
                self._remember(key_id, expires, found[key_id])
        return found

    def _remember(self, key_id: str, expires: float, stored: StoredKey | None) -> None:
        self._cache[key_id] = (expires, stored)
        self._cache.move_to_end(key_id)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    def _forget(self, key_id: str) -> None:
        self._cache.pop(key_id, None)
