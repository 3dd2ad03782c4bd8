"""Per-requester keys in MongoDB, and the two places that use them: the outbox relay seals
personal fields on the way out, consumers open them on the way in (`shared.sealing`).

One document per requester in the `<prefix>_keyring` database, `requester_keys`
collection: `{_id: requester id, key_id, key, created_at}`. Erasure destroys the key and
leaves `{_id, destroyed_at}` behind: an event made before that time (still in some
outbox when the erasure came) leaves with its personal fields erased, never under a
fresh key; a ticket the same requester opens later gets a new key.

Keys are read from the database for every batch, never cached: a destroyed key must stop
opening at once in every instance of every service (a batch of sealed events costs one
indexed read). In production the keyring database is readable by helpstream's services
only, and its backups expire within the erasure deadline.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bson import Binary
from pymongo import ASCENDING
from pymongo.errors import BulkWriteError

from shared import sealing
from shared.command_signing import SIGNATURE_HEADER
from shared.ids import new_id

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from aiokafka.structs import ConsumerRecord
    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from shared.metrics import SealingMetrics
    from shared.mongo import Document

COLLECTION = "requester_keys"


class Keyring:
    """Keys for sealing are cached for `seal_cache_s` (a relay round of 1,000 new
    requesters would otherwise read and write the keyring twice). That is safe for
    privacy: a key destroyed meanwhile seals only fields nobody can open any more. Its
    one cost is a requester who returns within that time after an erasure: their new
    ticket's fields open as erased. Destroying through this instance forgets its cache.
    Keys for opening are never cached (see the module docstring)."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        metrics: SealingMetrics,
        *,
        seal_cache_s: float = 60.0,
        seal_cache_size: int = 100_000,
    ) -> None:
        self._keys: AsyncCollection[Document] = db[COLLECTION]
        self._metrics = metrics
        self._cache: dict[str, tuple[float, sealing.RequesterKey]] = {}
        self._destroyed: dict[str, float] = {}  # when this instance destroyed a key
        self._cache_s = seal_cache_s
        self._cache_size = seal_cache_size

    async def ensure_indexes(self) -> None:
        await self._keys.create_index([("key_id", ASCENDING)], unique=True, sparse=True)

    async def for_sealing(self, requester_ids: Iterable[str]) -> dict[str, sealing.RequesterKey]:
        """Each requester's key, made for those who have none (or whose key was destroyed)."""
        started = time.perf_counter()
        now = time.monotonic()
        asked = set(requester_ids)
        keys: dict[str, sealing.RequesterKey] = {}
        for requester in asked:
            cached = self._cache.get(requester)
            if cached is not None and now - cached[0] < self._cache_s:
                keys[requester] = cached[1]
        wanted = asked - set(keys)
        if wanted:
            found = await self._read(wanted)
            keys.update({r: key for r, doc in found.items() if (key := _key_of(doc)) is not None})
            missing = wanted - set(keys)
            if missing:
                keys.update(await self._create(missing, found))
            # a key destroyed while this read was under way is not remembered
            self._remember(
                {
                    r: keys[r]
                    for r in wanted
                    if r in keys and self._destroyed.get(r, -float("inf")) < now
                },
                now,
            )
        self._metrics.keyring_seconds.labels("seal").observe(time.perf_counter() - started)
        return keys

    def _remember(self, keys: dict[str, sealing.RequesterKey], now: float) -> None:
        if len(self._cache) + len(keys) > self._cache_size:
            self._cache.clear()
        for requester, key in keys.items():
            self._cache[requester] = (now, key)

    async def by_key_id(self, key_ids: Iterable[str]) -> dict[str, bytes]:
        started = time.perf_counter()
        wanted = sorted(set(key_ids))
        docs = await self._keys.find({"key_id": {"$in": wanted}}, {"key_id": 1, "key": 1}).to_list()
        self._metrics.keyring_seconds.labels("open").observe(time.perf_counter() - started)
        return {doc["key_id"]: bytes(doc["key"]) for doc in docs if doc.get("key") is not None}

    async def destroy(self, requester_ids: Iterable[str], now: datetime) -> int:
        """Destroys the keys (idempotent); returns how many keys existed."""
        destroyed = 0
        if len(self._destroyed) > self._cache_size:
            self._destroyed.clear()
        for requester in set(requester_ids):
            self._cache.pop(requester, None)
            self._destroyed[requester] = time.monotonic()
            result = await self._keys.update_one(
                {"_id": requester},
                {"$set": {"destroyed_at": now}, "$unset": {"key": "", "key_id": ""}},
                upsert=True,
            )
            destroyed += result.modified_count
        self._metrics.keys_destroyed.inc(destroyed)
        return destroyed

    async def seal_as(self, owner: str, value: bytes) -> bytes:
        """One event or command sealed under `owner`'s key (the mail gateway's, by address)."""
        event = json.loads(value)
        key = (await self.for_sealing([owner]))[owner]
        sealed, erased = sealing.seal_event(event, key)
        self._metrics.sealed_fields.labels("sealed").inc(sealed)
        self._metrics.sealed_fields.labels("erased").inc(erased)
        return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()

    async def _read(self, requester_ids: set[str]) -> dict[str, Document]:
        docs = await self._keys.find({"_id": {"$in": sorted(requester_ids)}}).to_list()
        return {doc["_id"]: doc for doc in docs}

    async def _create(
        self, requester_ids: set[str], found: dict[str, Document]
    ) -> dict[str, sealing.RequesterKey]:
        """New keys; of two relays racing for one requester, both end with the winner's."""
        made: dict[str, Document] = {}
        for requester in requester_ids:
            made[requester] = {"key_id": new_id(), "key": Binary(sealing.new_key())}
        fresh = [{"_id": r, **doc} for r, doc in made.items() if r not in found]
        lost: set[str] = set()
        if fresh:
            try:
                await self._keys.insert_many(fresh, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != 11000 for e in errors):
                    raise
                lost = {fresh[e["index"]]["_id"] for e in errors}
        for requester in requester_ids & set(found):  # destroyed: a new key, erasure time kept
            result = await self._keys.update_one(
                {"_id": requester, "key": {"$exists": False}}, {"$set": made[requester]}
            )
            if not result.modified_count:
                lost.add(requester)
        keys = {
            r: sealing.RequesterKey(
                key_id=doc["key_id"],
                key=bytes(doc["key"]),
                erased_before=found.get(r, {}).get("destroyed_at"),
            )
            for r, doc in made.items()
            if r not in lost
        }
        if lost:  # another relay made them first: take its keys
            winners = await self._read(lost)
            keys.update({r: k for r, doc in winners.items() if (k := _key_of(doc)) is not None})
        return keys


def _key_of(doc: Document) -> sealing.RequesterKey | None:
    if doc.get("key") is None:
        return None
    return sealing.RequesterKey(
        key_id=doc["key_id"], key=bytes(doc["key"]), erased_before=doc.get("destroyed_at")
    )


class EventSealer:
    """The relay's step between reading an outbox entry and publishing it."""

    def __init__(self, keyring: Keyring, metrics: SealingMetrics) -> None:
        self._keyring = keyring
        self._metrics = metrics

    async def seal(self, entries: Sequence[Document]) -> list[bytes]:
        """Each entry's value, with its personal fields sealed (or erased)."""
        values = [bytes(entry["value"]) for entry in entries]
        parsed: dict[int, dict[str, Any]] = {}
        for n, entry in enumerate(entries):
            if str(entry.get("type")) in sealing.PERSONAL_FIELDS:
                event = json.loads(values[n])
                if sealing.requester_of(event) is not None:
                    parsed[n] = event
        if not parsed:
            return values
        keys = await self._keyring.for_sealing(
            r for e in parsed.values() if (r := sealing.requester_of(e)) is not None
        )
        for n, event in parsed.items():
            requester = sealing.requester_of(event)
            key = keys.get(requester or "")
            if key is None:
                continue  # cannot happen after for_sealing; never publish unsealed silently
            sealed, erased = sealing.seal_event(event, key)
            self._metrics.sealed_fields.labels("sealed").inc(sealed)
            self._metrics.sealed_fields.labels("erased").inc(erased)
            values[n] = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        return values


class EventOpener:
    """The consumer's step before decoding: sealed fields opened, or erased.

    Without a keyring it withholds: every sealed field gets its erased value at no cost,
    for consumers that never use personal fields (SLA clocks)."""

    def __init__(self, keyring: Keyring | None, metrics: SealingMetrics) -> None:
        self._keyring = keyring
        self._metrics = metrics

    async def open_values(self, values: Sequence[bytes | None]) -> list[tuple[bytes | None, int]]:
        """Each value with its sealed fields opened, and how many of them were erased (the
        key is destroyed). A value without sealed fields comes back as the same object;
        an undecodable one is left for the decoder to reject."""
        events: dict[int, dict[str, Any]] = {}
        for n, value in enumerate(values):
            if value is None or sealing.MARK not in value:
                continue
            try:
                event = json.loads(value)
            except ValueError:
                continue
            if isinstance(event, dict) and sealing.sealed_key_ids(event):
                events[n] = event
        result: list[tuple[bytes | None, int]] = [(value, 0) for value in values]
        if not events:
            return result
        keys = (
            await self._keyring.by_key_id(
                key_id for event in events.values() for key_id in sealing.sealed_key_ids(event)
            )
            if self._keyring is not None
            else {}
        )
        for n, event in events.items():
            opened, erased = sealing.open_event(event, keys)
            self._metrics.opened_fields.labels("opened").inc(opened)
            self._metrics.opened_fields.labels(
                "erased" if self._keyring is not None else "withheld"
            ).inc(erased)
            value = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
            result[n] = (value, erased)
        return result

    async def open(
        self, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """The batch with sealed fields opened; records without any are the same objects.
        Signed records (commands) are left sealed: their signature covers the sealed
        bytes, so their handler opens them once the signature is checked."""
        unsigned = [n for n, r in enumerate(records) if not is_signed(r)]
        opened = await self.open_values([records[n].value for n in unsigned])
        result = list(records)
        for n, (value, _) in zip(unsigned, opened, strict=True):
            if value is not records[n].value and value is not None:
                result[n] = _with_value(records[n], value)
        return result


def is_signed(record: ConsumerRecord[bytes, bytes]) -> bool:
    return any(name == SIGNATURE_HEADER for name, _ in record.headers or ())


def _with_value(record: ConsumerRecord[bytes, bytes], value: bytes) -> ConsumerRecord[bytes, bytes]:
    return replace(record, value=value, serialized_value_size=len(value))
