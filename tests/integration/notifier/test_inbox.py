"""The in-app inbox (list, mark read, live stream) and per-user preferences."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx

from services.notifier.app import create_app
from services.notifier.settings import NotifierSettings
from shared.events import Author, Status
from shared.infra.mailcatcher import MailCatcher
from shared.infra.modes import Infra
from shared.infra.processes import free_port
from shared.runtime import ServiceRuntime
from tests.integration.notifier.builders import created, reply, status, survey
from tests.integration.notifier.conftest import (
    Notifier,
    Receiver,
    mails,
    served,
    settle_mail,
    until,
)
from tests.support import eventually


async def test_the_inbox_lists_newest_first_and_marks_read_for_its_owner_only(
    notifier: Notifier, mail: MailCatcher
) -> None:
    mine = notifier.token("u-42")
    items: list[dict[str, str]] = []

    def listed(count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:  # a held acknowledgement's channels leave one by one
            items[:] = (await notifier.http.get("/v1/inbox", headers=mine)).json()["items"]
            return len(items) == count

        return check

    await notifier.publish(("tickets", created("T-box")))
    await mails(mail, 1)
    await eventually(listed(1))
    await notifier.publish(("tickets", reply("T-box", "Found your deposit.")))
    await mails(mail, 2)
    await eventually(listed(2))
    assert [i["template"] for i in items] == ["agent_reply", "ticket_acknowledged"]
    first = items[0]["id"]
    assert (
        await notifier.http.post(f"/v1/inbox/{first}/read", headers=notifier.token("u-9"))
    ).status_code == 404
    marked = await notifier.http.post(f"/v1/inbox/{first}/read", headers=mine)
    assert marked.json()["read_at"] is not None
    unread = await notifier.http.get("/v1/inbox?unread_only=true", headers=mine)
    assert [i["template"] for i in unread.json()["items"]] == ["ticket_acknowledged"]
    assert (await notifier.http.get("/v1/inbox")).status_code == 401
    forged = {"Authorization": "Bearer abc.def"}
    assert (await notifier.http.get("/v1/inbox", headers=forged)).status_code == 401


async def test_opted_out_categories_are_not_sent_but_security_notices_always_are(
    notifier: Notifier, mail: MailCatcher, receiver: Receiver
) -> None:
    headers = notifier.token("u-42")
    put = await notifier.http.put(
        "/v1/preferences/u-42",
        json={"opt_out": {"email": ["surveys", "progress"], "webhook": ["surveys"]}},
        headers=headers,
    )
    assert put.status_code == 200, put.text
    assert put.json()["opt_out"] == {"email": ["progress", "surveys"], "webhook": ["surveys"]}
    refused = await notifier.http.put(
        "/v1/preferences/u-42", json={"opt_out": {"email": ["security"]}}, headers=headers
    )
    assert refused.status_code == 422
    assert refused.json()["refused"] == ["email:security"]
    other = await notifier.http.get("/v1/preferences/u-42", headers=notifier.token("u-7"))
    assert other.status_code == 403

    await notifier.publish(
        ("tickets", created("T-pref")),
        ("tickets", status("T-pref", Status.solved)),
        ("feedback", survey("T-pref")),
        ("tickets", reply("T-pref", "warning", author=Author.system)),
    )
    await until(lambda: len(receiver.to("/push")) == 3)  # ack, solved, warning (no survey)
    caught = await settle_mail(mail)
    assert [m.subject for m in caught] == ["[T-pref] 安全提醒：请勿泄露助记词或私钥"]
    inbox = (await notifier.http.get("/v1/inbox", headers=headers)).json()["items"]
    assert len(inbox) == 4  # nothing muted on the inbox
    muted = notifier.runtime.registry.get_sample_value(
        "helpstream_notifier_messages_muted_total", {"channel": "email", "category": "progress"}
    )
    assert muted == 2


async def first_item(
    http: httpx.AsyncClient, headers: dict[str, str], params: dict[str, str] | None = None
) -> dict[str, object]:
    """The first `inbox.item` event of a stream opened with these headers and params."""
    async with http.stream("GET", "/v1/inbox/stream", headers=headers, params=params) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            if line.startswith("data: ") and event == "inbox.item":
                return dict(json.loads(line[6:]))
    raise AssertionError("stream ended")


async def test_the_inbox_stream_pushes_a_new_item_as_a_server_sent_event(
    notifier_settings: Callable[..., NotifierSettings], infra: Infra, mail: MailCatcher
) -> None:
    settings = notifier_settings(ack_sla_wait_s=0)  # the acknowledgement at once
    runtime = ServiceRuntime("notifier", settings)
    app = create_app(settings, runtime)
    async with served(app, free_port()) as url, httpx.AsyncClient(base_url=url) as http:
        notifier = Notifier(http, app, settings, runtime, infra)
        reader = asyncio.create_task(first_item(http, notifier.token("u-42")))
        await asyncio.sleep(0.5)
        await notifier.publish(("tickets", created("T-sse")))
        item = await asyncio.wait_for(reader, 20)
    assert item["template"] == "ticket_acknowledged"
    assert item["ticket_id"] == "T-sse"


async def test_a_stream_resumes_where_its_reader_left_off_and_never_further_back(
    notifier_settings: Callable[..., NotifierSettings], infra: Infra, mail: MailCatcher
) -> None:
    """A page rendered before an item arrived, and a browser reconnecting with the id of
    the last item it saw, both get what came after; nothing of another requester's."""
    settings = notifier_settings(ack_sla_wait_s=0)  # items in the order of their events
    runtime = ServiceRuntime("notifier", settings)
    app = create_app(settings, runtime)
    async with served(app, free_port()) as url, httpx.AsyncClient(base_url=url) as http:
        notifier = Notifier(http, app, settings, runtime, infra)
        mine = notifier.token("u-42")
        rendered = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        await notifier.publish(("tickets", created("T-early")))
        await mails(mail, 1)
        await notifier.publish(("tickets", reply("T-early", "Found your deposit.")))
        await mails(mail, 2)
        listed = (await http.get("/v1/inbox", headers=mine)).json()["items"]
        older, newer = listed[1]["id"], listed[0]["id"]

        since = await asyncio.wait_for(first_item(http, mine, {"since": rendered}), 20)
        resumed = await asyncio.wait_for(first_item(http, {**mine, "Last-Event-ID": older}), 20)
        other = notifier.token("u-9")
        stranger = asyncio.create_task(first_item(http, {**other, "Last-Event-ID": older}))
        garbled = await http.get("/v1/inbox/stream", headers=mine, params={"since": "lately"})
        await asyncio.sleep(1.5)
        assert not stranger.done(), "another requester's stream replayed u-42's items"
        stranger.cancel()
    assert since["id"] == older
    assert since["template"] == "ticket_acknowledged"
    assert resumed["id"] == newer
    assert resumed["template"] == "agent_reply"
    assert garbled.status_code == 422
    assert garbled.headers["content-type"] == "application/problem+json"
