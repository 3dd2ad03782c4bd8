"""API keys: bounded key cache, revoke, rotate.

Before: 2,000 requests with random 12 KB bearer keys grew intake by 26 MiB for good (the
key cache kept every miss, unbounded); keys could not be revoked or rotated, and a
revoked key would have kept working for 30 s from the cache. Now malformed keys are
refused before any lookup and leave nothing behind, the cache is an LRU with a bound and
a 0.5 s life, `DELETE /v1/api-keys/{id}` stops a key on every instance within a second and
`POST /v1/api-keys/{id}/rotate` issues a new secret while the old one works for an overlap.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import CollectorRegistry

from services.intake.app import create_app
from services.intake.auth import ApiKeyStore, Scope
from services.intake.metrics import intake_metrics
from services.intake.settings import IntakeSettings
from shared.clock import FixedClock
from shared.mongo import make_client, service_database
from shared.runtime import ServiceRuntime
from tests.integration.intake.conftest import ADMIN_KEY, Intake
from tests.support import running

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import httpx

CACHE_SECONDS = 0.5  # ApiKeyStore's documented cache life: a revoke reaches every instance
LOOKUPS = "helpstream_intake_api_key_lookups_total"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def intake(make_settings: Any, clock: FixedClock) -> AsyncIterator[Intake]:
    """intake on a clock the test moves (rotation overlaps end without waiting)."""
    settings = make_settings(IntakeSettings, bootstrap_api_key=ADMIN_KEY)
    runtime = ServiceRuntime("intake", settings, clock=clock)
    async with running(create_app(settings, runtime)) as http:
        yield Intake(http, settings, runtime)


def lookups(intake: Intake) -> float:
    registry = intake.runtime.registry
    return sum(
        registry.get_sample_value(LOOKUPS, {"outcome": o}) or 0.0 for o in ("found", "missing")
    )


def key_store(intake: Intake) -> ApiKeyStore:
    store = intake.http._transport.app.state.api_keys  # type: ignore[attr-defined]
    assert isinstance(store, ApiKeyStore)
    return store


async def status(http: httpx.AsyncClient, key: str) -> int:
    response = await http.get("/v1/tickets", headers={"Authorization": f"Bearer {key}"})
    return response.status_code


def key_id(key: str) -> str:
    return key.split("_")[1]


async def test_2000_random_12_kb_bearer_keys_are_refused_without_a_lookup_and_leave_no_cache_entry(
    intake: Intake,
) -> None:
    store = key_store(intake)
    assert await status(intake.http, ADMIN_KEY) == 200
    cached, looked_up = store.cached, lookups(intake)

    for n in range(2000):
        junk = secrets.token_urlsafe(9000)  # 12 KB
        key = f"hs_{junk}_{secrets.token_urlsafe(16)}" if n % 2 else junk
        assert await status(intake.http, key) == 401

    assert store.cached == cached
    assert lookups(intake) == looked_up


@pytest.mark.parametrize(
    "key",
    [
        "hs_",
        "hs__0123456789abcdefghij",
        "hs_abc_short",
        "hs_ab-c_0123456789abcdefghij",
        "hs_abc_0123456789abcdefghij\n",
        "hs_abc_0123456789abcdefghij/..",
        "hs_ключ_0123456789abcdefghij",
        f"hs_{'a' * 65}_0123456789abcdefghij",
        f"hs_abc_{'a' * 129}",
    ],
)
async def test_a_malformed_key_gets_401_without_a_database_lookup(intake: Intake, key: str) -> None:
    looked_up = lookups(intake)

    response = await intake.http.get("/v1/tickets", headers={b"X-API-Key": key.encode()})

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert lookups(intake) == looked_up
    assert key_store(intake).cached == 0


async def test_a_flood_of_unknown_well_formed_key_ids_stays_within_the_cache_bound(
    make_settings: Any,
) -> None:
    settings = make_settings(IntakeSettings, bootstrap_api_key=ADMIN_KEY)
    client = make_client(settings)
    try:
        db = service_database(client, settings, "intake")
        registry = CollectorRegistry()
        store = ApiKeyStore(db, intake_metrics(registry), max_entries=100)
        real = await store.create("real", frozenset({Scope.read}), datetime.now(UTC))

        for _ in range(2000):
            assert (
                await store.verify(f"hs_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}") is None
            )
        assert await store.verify(real.secret) == real.key

        assert store.cached <= store.max_entries == 100
        missing = registry.get_sample_value(LOOKUPS, {"outcome": "missing"})
        assert missing == 2000  # one read per unknown id, none repeated
    finally:
        await client.close()


async def test_a_revoked_key_is_refused_by_every_instance_within_the_cache_life(
    intake: Intake, make_settings: Any
) -> None:
    key = await intake.key_with("tickets:read")
    settings = make_settings(IntakeSettings, bootstrap_api_key=ADMIN_KEY)  # the same database
    async with running(create_app(settings, ServiceRuntime("intake", settings))) as other:
        assert await status(other, key) == 200  # now in the other instance's cache

        revoked = await intake.http.delete(f"/v1/api-keys/{key_id(key)}", headers=intake.auth())

        assert revoked.status_code == 204
        assert await status(intake.http, key) == 401  # the instance that revoked: at once
        await asyncio.sleep(CACHE_SECONDS + 0.1)
        assert await status(other, key) == 401
        again = await intake.http.delete(f"/v1/api-keys/{key_id(key)}", headers=intake.auth())
        assert again.status_code == 204


async def test_after_a_rotation_the_old_secret_works_during_the_overlap_and_not_after(
    intake: Intake, clock: FixedClock
) -> None:
    old = await intake.key_with("tickets:read")

    rotated = await intake.http.post(
        f"/v1/api-keys/{key_id(old)}/rotate", json={"overlap_seconds": 600}, headers=intake.auth()
    )

    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    new = body["key"]
    assert (body["id"], body["scopes"]) == (key_id(old), ["tickets:read"])
    assert key_id(new) == key_id(old)
    assert new != old
    assert datetime.fromisoformat(body["previous_valid_until"]) == clock.now() + timedelta(
        minutes=10
    )
    assert (await status(intake.http, old), await status(intake.http, new)) == (200, 200)
    clock.advance(timedelta(minutes=9))
    assert await status(intake.http, old) == 200
    clock.advance(timedelta(minutes=1, seconds=1))
    assert (await status(intake.http, old), await status(intake.http, new)) == (401, 200)


async def test_key_management_needs_the_admin_scope_and_names_unknown_keys(
    intake: Intake,
) -> None:
    writer = await intake.key_with("tickets:write", "tickets:agent", "tickets:read")
    victim = await intake.key_with("tickets:read")
    as_writer = intake.auth(writer)

    refused_revoke = await intake.http.delete(f"/v1/api-keys/{key_id(victim)}", headers=as_writer)
    refused_rotate = await intake.http.post(
        f"/v1/api-keys/{key_id(victim)}/rotate", json={}, headers=as_writer
    )
    unknown = await intake.http.delete("/v1/api-keys/nosuchkey", headers=intake.auth())
    unknown_rotate = await intake.http.post(
        "/v1/api-keys/nosuchkey/rotate", json={}, headers=intake.auth()
    )
    too_long = await intake.http.post(
        f"/v1/api-keys/{key_id(victim)}/rotate",
        json={"overlap_seconds": 30 * 86_400},
        headers=intake.auth(),
    )

    assert (refused_revoke.status_code, refused_rotate.status_code) == (403, 403)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "api_key_not_found")
    assert unknown_rotate.status_code == 404
    assert too_long.status_code == 422
    assert await status(intake.http, victim) == 200
    await intake.http.delete(f"/v1/api-keys/{key_id(victim)}", headers=intake.auth())
    revived = await intake.http.post(
        f"/v1/api-keys/{key_id(victim)}/rotate", json={}, headers=intake.auth()
    )
    assert (revived.status_code, revived.json()["code"]) == (409, "revoked")
    assert await status(intake.http, victim) == 401


async def test_restarting_with_a_revoked_bootstrap_key_does_not_bring_it_back(
    make_settings: Any,
) -> None:
    settings = make_settings(IntakeSettings, bootstrap_api_key=ADMIN_KEY)
    async with running(create_app(settings, ServiceRuntime("intake", settings))) as first:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        assert (
            await first.delete(f"/v1/api-keys/{key_id(ADMIN_KEY)}", headers=admin)
        ).status_code == 204

    async with running(create_app(settings, ServiceRuntime("intake", settings))) as restarted:
        assert await status(restarted, ADMIN_KEY) == 401
