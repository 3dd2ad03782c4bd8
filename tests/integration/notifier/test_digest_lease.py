"""Two notifier instances on one database and topics: each due digest goes out once, sent
by the instance holding its lease; a lease left by an instance that died ends and another
instance takes the digest over."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from services.notifier.domain import Recipient
from services.notifier.ports import DigestItem, QueuedItem
from services.notifier.settings import NotifierSettings
from services.notifier.store import NotifierStore
from shared.infra.mailcatcher import MailCatcher
from shared.infra.modes import Infra
from tests.integration.notifier.builders import created, reply
from tests.integration.notifier.conftest import (
    Notifier,
    Receiver,
    mails,
    settle_mail,
    start,
    until,
)


def emails_sent(notifier: Notifier) -> float:
    return sum(
        sample.value
        for metric in notifier.runtime.registry.collect()
        for sample in metric.samples
        if sample.name == "helpstream_notifier_messages_sent_total"
        and sample.labels["channel"] == "email"
    )


async def test_two_instances_send_a_due_digest_once_and_the_survivor_sends_the_next(
    notifier_settings: Callable[..., NotifierSettings],
    infra: Infra,
    receiver: Receiver,
    mail: MailCatcher,
) -> None:
    settings = notifier_settings(digest_window_s=1.0, digest_lease_s=5.0)
    async with contextlib.AsyncExitStack() as first, contextlib.AsyncExitStack() as second:
        instances = [
            await first.enter_async_context(start(settings, infra)),
            await second.enter_async_context(start(settings, infra)),
        ]
        await instances[0].publish(("tickets", created("T-lease", locale="en", timezone="UTC")))
        await mails(mail, 1)  # the acknowledgement goes out at once
        await until(lambda: sum(emails_sent(n) for n in instances) == 1)
        before = [emails_sent(n) for n in instances]
        await instances[0].publish(
            ("tickets", reply("T-lease", "First we looked.")),
            ("tickets", reply("T-lease", "Then we found it.")),
        )
        caught = await mails(mail, 2)
        assert len(await settle_mail(mail, quiet=2.0)) == 2  # both flushers saw it due
        assert caught[1].subject == "[T-lease] 2 updates on your request"
        await until(lambda: len(receiver.to("/push")) == 2)
        senders = [i for i, n in enumerate(instances) if emails_sent(n) > before[i]]
        assert len(senders) == 1  # sent by one instance, not by each

        # The holder stops; the next digest of the ticket is the survivor's to send.
        holder = senders[0]
        await (first, second)[holder].aclose()
        survivor = instances[1 - holder]
        await survivor.publish(("tickets", reply("T-lease", "It has arrived.")))
        caught = await mails(mail, 3, timeout=30.0)
        assert len(await settle_mail(mail, quiet=2.0)) == 3
        assert "It has arrived." in caught[2].text()
        assert emails_sent(survivor) > before[1 - holder]


@contextlib.asynccontextmanager
async def notifier_store(infra: Infra, uid: str) -> AsyncIterator[NotifierStore]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    try:
        store = NotifierStore(client[f"t{uid}lease"])
        await store.ensure_indexes()
        yield store
    finally:
        await client.close()


def digest_item(key: str, at: datetime) -> QueuedItem:
    recipient = Recipient("requester", "email", "li.wei@example.com", "u-42", "en", "UTC")
    item = DigestItem(
        key,
        "agent_reply",
        "e-1",
        "ticket.message_added",
        at,
        "c-1",
        "T-dead",
        "email",
        "requester",
        {},
    )
    return QueuedItem("digest-dead", "digest", "T-dead", recipient, at, at, item)


async def test_a_lease_left_by_an_instance_that_died_is_taken_over_once_it_ends(
    infra: Infra, uid: str
) -> None:
    lease = timedelta(seconds=30)
    due = datetime.now(UTC).replace(microsecond=0)
    async with notifier_store(infra, uid) as store:
        await store.queue([digest_item("k-1", due)], due)

        _, held_by_dead = await store.claim_due_digests(due, "dead", lease, 10)
        _, while_alive = await store.claim_due_digests(due + lease / 2, "alive", lease, 10)
        after = due + lease + timedelta(seconds=1)
        token, taken_over = await store.claim_due_digests(after, "alive", lease, 10)
        _, held_again = await store.claim_due_digests(after, "another", lease, 10)

        assert [d.id for d in held_by_dead] == ["digest-dead"]
        assert while_alive == []  # the lease is still running: nobody else may send it
        assert [d.id for d in taken_over] == ["digest-dead"]
        assert taken_over[0].lease_owner == "alive"
        assert held_again == []

        # The old holder waking up cannot touch what its lost lease held...
        old_token = held_by_dead[0].lease_token
        await store.drop_digest_items("digest-dead", old_token, ["k-1"])
        assert await store.digests.count_documents({"_id": "digest-dead"}) == 1
        # ...the new holder ends it.
        await store.drop_digest_items("digest-dead", token, ["k-1"])
        assert await store.digests.count_documents({"_id": "digest-dead"}) == 0
