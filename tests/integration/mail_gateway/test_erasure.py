"""A requester's erasure reaches the files the mail gateway keeps.

intake and the gateway run in this event loop on the real broker and MongoDB. Requesters
mail files into their tickets over SMTP; intake's erasure names the erased requester's
files that nobody else sent, and the gateway deletes exactly those and says so on
helpstream.mail. An erasure request that intake did not write deletes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from gridfs import AsyncGridFSBucket
from pymongo import AsyncMongoClient

from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.mail_gateway.attachments import BUCKET, GridFsAttachments
from services.mail_gateway.privacy import AttachmentEraser
from shared.events import RequesterErasureRequested, make_event
from shared.infra.modes import Infra
from shared.mail_threading import reply_address
from shared.runtime import ServiceRuntime
from tests.integration.intake.conftest import ADMIN_KEY, Intake
from tests.integration.intake.test_http_api import get_ticket
from tests.integration.mail_gateway.conftest import (
    ATTACHMENTS_KEY,
    SUPPORT,
    Gateway,
    compose,
    start,
)
from tests.support import Tap, eventually, running

AUTH = {"Authorization": f"Bearer {ATTACHMENTS_KEY}"}


def content(what: str, uid: str) -> bytes:
    return f"%PDF-1.7 {what} {uid}\n".encode() + bytes(range(256)) * 8


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
async def stack(
    make_settings: Callable[..., Any],
    gateway_settings: Callable[..., Any],
    infra: Infra,
) -> AsyncIterator[tuple[Intake, Gateway]]:
    settings = make_settings(IntakeSettings, bootstrap_api_key=ADMIN_KEY)
    runtime = ServiceRuntime("intake", settings)
    async with (
        start(gateway_settings(), infra) as gateway,
        running(create_intake(settings, runtime)) as http,
    ):
        yield Intake(http, settings, runtime), gateway


async def mail_files(
    intake: Intake, gateway: Gateway, requester_id: str, files: list[tuple[str, bytes]]
) -> str:
    """A ticket of `requester_id`, and a reply by mail carrying `files`; its id once the
    files are on the ticket."""
    email = f"{requester_id}@example.com"
    ticket = await intake.open(requester={"id": requester_id, "email": email, "locale": "en"})
    address = reply_address(gateway.thread_secret, ticket["id"], SUPPORT)
    assert address is not None
    raw = compose(
        to=address,
        sender=email,
        body="The statements you asked for.",
        attachments=[(name, "application/pdf", data) for name, data in files],
    )
    assert (await gateway.deliver(raw, to=[address], mail_from=email)).code == 250

    async def on_ticket() -> bool:
        found = (await get_ticket(intake, ticket["id"]))["messages"]
        return any(len(m["attachments"]) == len(files) for m in found)

    await eventually(on_ticket, timeout=30)
    return str(ticket["id"])


async def download(gateway: Gateway, data: bytes) -> int:
    return (await gateway.http.get(f"/v1/attachments/{digest(data)}", headers=AUTH)).status_code


async def test_an_erased_requesters_files_are_gone_and_a_file_someone_else_sent_stays(
    stack: tuple[Intake, Gateway], uid: str
) -> None:
    intake, gateway = stack
    gone, stays = f"gone-{uid}", f"stays-{uid}"
    own, shared = content("bank statement", uid), content("exchange notice", uid)
    await mail_files(intake, gateway, gone, [("statement.pdf", own), ("notice.pdf", shared)])
    await mail_files(intake, gateway, stays, [("notice.pdf", shared)])
    assert await download(gateway, own) == 200

    url = f"/v1/requesters/{gone}/erasure"
    started = await intake.http.post(url, headers=intake.auth())
    assert started.status_code == 202, started.text

    async def gateway_confirmed() -> dict[str, Any] | None:
        progress = (await intake.http.get(url, headers=intake.auth())).json()
        by_service = {s["service"]: s for s in progress["services"]}
        return by_service["mail_gateway"] if by_service["mail_gateway"]["confirmed"] else None

    confirmed = await eventually(gateway_confirmed, timeout=30)
    assert confirmed is not None
    assert confirmed["counts"] == {"attachments": 1}
    assert await download(gateway, own) == 404
    assert await download(gateway, shared) == 200  # the other requester still sent it
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(gateway.infra.mongo_url)
    try:
        db = client[f"t{uid}_mail_gateway"]
        chunks = await db["attachments.chunks"].find({}, {"data": 1}).to_list()
        assert not any(b"bank statement" in bytes(c["data"]) for c in chunks)
    finally:
        await client.close()
    erased = gateway.runtime.registry.get_sample_value(
        "helpstream_mail_gateway_privacy_erased_records_total", {"kind": "attachments"}
    )
    assert erased == 1


async def test_a_redelivered_request_deletes_nothing_more(infra: Infra, uid: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url)
    try:
        db = client[f"t{uid}_eraser"]
        store = GridFsAttachments(db)
        await store.ensure_indexes()
        eraser = AttachmentEraser(store)
        bucket = AsyncGridFSBucket(db, bucket_name=BUCKET)
        files = [content(f"file {n}", uid) for n in range(3)]
        # the first twice: two concurrent uploads of one file leave two copies
        for data in [*files, files[0]]:
            await bucket.upload_from_stream(digest(data), data)
        request = RequesterErasureRequested(
            erasure_id="e-1",
            requester_id="u-1",
            pseudonym="erased-1",
            attachment_digests=[digest(files[0]), digest(files[1])],
        )

        assert await eraser.erase(request) == {"attachments": 3}
        assert await eraser.erase(request) == {"attachments": 0}
        assert [await store.has(digest(data)) for data in files] == [False, False, True]
        assert await db["attachments.chunks"].count_documents({}) == 1
    finally:
        await client.close()


async def test_a_forged_erasure_request_is_dead_lettered_and_deletes_nothing(
    gateway: Gateway, infra: Infra, uid: str
) -> None:
    data = content("passport scan", uid)
    raw = compose(attachments=[("passport.pdf", "application/pdf", data)])
    assert (await gateway.deliver(raw)).code == 250
    assert await download(gateway, data) == 200
    topics = gateway.runtime.topics
    forged = make_event(
        RequesterErasureRequested(
            erasure_id=f"e-{uid}",
            requester_id="u-1",
            pseudonym="erased-1",
            attachment_digests=[digest(data)],
        ),
        source="/helpstream/notifier",
        time=datetime.now(UTC),
        correlationid=f"c-{uid}",
        subject="u-1",
    )

    producer = gateway.runtime.kafka
    await producer.send_and_wait(topics.tickets, forged.to_bytes(), key=b"u-1")

    async with Tap(infra.kafka_bootstrap, topics.dlq(topics.tickets)) as dlq:
        (dead,) = await dlq.collect(1, timeout=30)
    headers = dict(dead.headers)
    assert headers["consumer"] == b"mail_gateway.tickets"
    assert headers["error-type"] == b"not_topic_owner"
    assert await download(gateway, data) == 200
    async with Tap(infra.kafka_bootstrap, topics.mail) as mail:
        confirmations = [e for e in await mail.settle() if b"requester_erased" in e.value]
    assert confirmations == []
