"""Rate limits on public pages and write routes, and the cap on inbox streams.

Each test repeats a request past its limit, as a scraper, a link-guesser or a runaway
integration would, and checks that the client over the limit gets a 429 problem with
`Retry-After` while a different address, link, key or inbox is still served.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from services.feedback.app import create_app as feedback_app
from services.feedback.settings import FeedbackSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.notifier.app import create_app as notifier_app
from services.notifier.settings import NotifierSettings
from shared.infra.processes import free_port
from shared.tokens import sign
from tests.integration.notifier.conftest import INBOX_SECRET, served
from tests.support import eventually

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from fastapi import FastAPI

    from shared.infra.mailcatcher import MailCatcher

ADMIN_KEY = "hs_ratelimits_0123456789abcdefghijklmnopqrstuvwxyz"
ATTACKER = ("203.0.113.7", 40000)
NEIGHBOUR = ("198.51.100.9", 40001)


@contextlib.asynccontextmanager
async def clients(
    app: FastAPI, *addresses: tuple[str, int]
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """The app in this event loop (lifespan included), one client per source address."""
    async with app.router.lifespan_context(app), contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app, client=address),
                    base_url="http://service",
                )
            )
            for address in addresses
        ]


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 429
    assert body["code"] in ("rate_limited", "too_many_streams")
    assert body["detail"]
    assert int(response.headers["retry-after"]) >= 1


def refused(metrics: str, name: str, **labels: str) -> dict[str, float]:
    """Samples of counter `name` with these labels, by their whole label set."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(name + "{") and all(w in line for w in wanted)
    }


async def test_a_link_token_over_its_limit_gets_429_and_another_link_does_not(
    make_settings: Callable[..., Any],
) -> None:
    cfg = make_settings(
        FeedbackSettings,
        rate_limit_pages_per_ip="1000/minute",
        rate_limit_pages_per_token="3/minute",
    )
    async with clients(feedback_app(cfg), ATTACKER) as (http,):
        answers = [(await http.get("/s/guessed-token-1")).status_code for _ in range(3)]
        over = await http.get("/s/guessed-token-1")
        api_over = await http.get("/v1/surveys/guessed-token-1")  # one budget per link
        other = await http.get("/s/guessed-token-2")
        metrics = (await http.get("/metrics")).text
    assert answers == [404, 404, 404]  # the friendly "link not found" page
    assert_limited(over)
    assert_limited(api_over)
    assert other.status_code == 404
    counted = refused(
        metrics, "helpstream_feedback_http_rate_limited_total", route="/s/{token}", counted="token"
    )
    assert sum(counted.values()) == 1


async def test_an_address_over_its_page_limit_gets_429_and_another_address_does_not(
    make_settings: Callable[..., Any],
) -> None:
    cfg = make_settings(
        FeedbackSettings,
        rate_limit_pages_per_ip="5/minute",
        rate_limit_pages_per_token="1000/minute",
    )
    async with clients(feedback_app(cfg), ATTACKER, NEIGHBOUR) as (attacker, neighbour):
        # a different link each time: guessing links does not get round the address limit
        answers = [(await attacker.get(f"/s/guess-{n}")).status_code for n in range(5)]
        # nor does moving to another page of the service
        over = await attacker.post("/s/guess-99", data={"x": "1"})
        over_score = await attacker.get("/s/guess-100/score/1")
        elsewhere = await neighbour.get("/s/guess-0")
    assert answers == [404] * 5
    assert_limited(over)
    assert_limited(over_score)
    assert elsewhere.status_code == 404


async def test_an_api_key_over_its_write_limit_gets_429_and_another_key_does_not(
    make_settings: Callable[..., Any],
) -> None:
    cfg = make_settings(
        IntakeSettings, bootstrap_api_key=ADMIN_KEY, rate_limit_writes_per_key="3/minute"
    )
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    ticket = {
        "requester": {"id": "u-42", "email": "li.wei@example.com", "locale": "en"},
        "channel": "app",
        "subject": "Withdrawal pending",
        "description": "My USDT withdrawal has been pending for 3 hours",
    }
    async with clients(intake_app(cfg), ATTACKER) as (http,):
        issued = await http.post(
            "/v1/api-keys", json={"name": "second", "scopes": ["tickets:write"]}, headers=admin
        )
        assert issued.status_code == 201, issued.text
        second = {"Authorization": f"Bearer {issued.json()['key']}"}
        created = [(await http.post("/v1/tickets", json=ticket, headers=admin)) for _ in range(3)]
        over = await http.post("/v1/tickets", json=ticket, headers=admin)
        other_key = await http.post("/v1/tickets", json=ticket, headers=second)
        reads = await http.get("/v1/tickets", headers=admin)  # reads are not write-limited
    assert [r.status_code for r in created] == [201, 201, 201], created[-1].text
    assert_limited(over)
    assert "API key" in over.json()["detail"]
    assert other_key.status_code == 201, other_key.text
    assert reads.status_code == 200


def inbox_token(requester_id: str) -> dict[str, str]:
    token = sign(
        INBOX_SECRET.encode(),
        "inbox",
        {"requester_id": requester_id},
        datetime.now(UTC),
        timedelta(hours=1),
    )
    return {"Authorization": f"Bearer {token}"}


async def test_inbox_streams_past_the_per_inbox_and_total_caps_get_429(
    make_settings: Callable[..., Any], mail: MailCatcher
) -> None:
    cfg = make_settings(
        NotifierSettings,
        smtp_port=mail.port,
        webhook_secret="whsec-test-0123456789abcdefghijklmnop",
        inbox_secret=INBOX_SECRET,
        inbox_poll_s=0.2,
        inbox_streams_per_requester=2,
        inbox_streams_total=3,
        rate_limit_pages_per_ip="10000/minute",  # the probes below are not what is tested
        rate_limit_pages_per_token="10000/minute",
    )
    app = notifier_app(cfg)
    async with (
        served(app, free_port()) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
        contextlib.AsyncExitStack() as streams,
    ):

        async def open_stream(requester_id: str) -> httpx.Response:
            return await streams.enter_async_context(
                http.stream("GET", "/v1/inbox/stream", headers=inbox_token(requester_id))
            )

        first = await open_stream("u-1")
        second = await open_stream("u-1")
        third_same = await http.get("/v1/inbox/stream", headers=inbox_token("u-1"))
        other = await open_stream("u-2")  # three open: the total cap is reached
        past_total = await http.get("/v1/inbox/stream", headers=inbox_token("u-3"))
        assert [first.status_code, second.status_code, other.status_code] == [200, 200, 200]
        assert_limited(third_same)
        assert "per inbox" in third_same.json()["detail"]
        assert_limited(past_total)

        await first.aclose()  # the reader goes: its slot comes back

        # a stream answering 200 would never end, so probe with a client that gives up
        async with httpx.AsyncClient(base_url=base, timeout=1) as probe:

            async def slot_free() -> bool:
                try:
                    async with probe.stream(
                        "GET", "/v1/inbox/stream", headers=inbox_token("u-3")
                    ) as again:
                        return again.status_code == 200
                except httpx.TimeoutException:
                    return False

            await eventually(slot_free, timeout=10)
        metrics = (await http.get("/metrics")).text
    counted = refused(
        metrics, "helpstream_notifier_http_streams_refused_total", route="/v1/inbox/stream"
    )
    assert sum(v for k, v in counted.items() if 'cap="per_key"' in k) == 1
    assert sum(v for k, v in counted.items() if 'cap="total"' in k) >= 1
