"""Forged events on service topics: nothing that reaches a requester comes from outside.

Kafka ACLs keep other producers off a service's topics on a real cluster; these tests show
the defense inside: an event from a source that does not own its topic, and a second
`ticket.created` for a known ticket, are dead-lettered and mail nobody.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.events import make_event
from shared.topics import Topics
from tests.integration.notifier.builders import created, reply
from tests.integration.notifier.conftest import Notifier, mails, settle_mail
from tests.support import Tap, produce

if TYPE_CHECKING:
    from shared.events import Contract
    from shared.infra.mailcatcher import MailCatcher

ATTACKER = "attacker@phish.example.net"


async def forge(notifier: Notifier, data: Contract, source: str) -> None:
    """Write an event straight onto helpstream.tickets, as any client of the broker can."""
    event = make_event(data, source=source, time=datetime.now(UTC), correlationid="forged")
    topic = notifier.runtime.topics.tickets
    await produce(
        notifier.infra.kafka_bootstrap, topic, [(event.subject.encode(), event.to_bytes())]
    )


def reason(record: object) -> str:
    headers = dict(getattr(record, "headers", None) or ())
    return bytes(headers.get("error-type", b"")).decode()


async def test_an_event_from_a_source_that_does_not_own_the_topic_mails_nobody(
    notifier: Notifier, mail: MailCatcher
) -> None:
    forged = created("T-forged-1", email=ATTACKER)
    forged = forged.model_copy(update={"subject": "Urgent: verify your wallet at http://x.example"})
    dlq = Topics.dlq(notifier.runtime.topics.tickets)
    async with Tap(notifier.infra.kafka_bootstrap, dlq) as dead:
        await forge(notifier, forged, source="/attacker")
        records = await dead.collect(1)
    assert [reason(r) for r in records] == ["not_topic_owner"]
    assert await settle_mail(mail) == []


async def test_a_repeated_ticket_created_never_redirects_mail_to_another_address(
    notifier: Notifier, mail: MailCatcher
) -> None:
    await notifier.publish(("tickets", created("T-owned-1", locale="en")))
    first = await mails(mail, 1)
    assert [m.rcpt_tos for m in first] == [("li.wei@example.com",)]

    hijack = created("T-owned-1", locale="en", id="u-666", email=ATTACKER)
    dlq = Topics.dlq(notifier.runtime.topics.tickets)
    async with Tap(notifier.infra.kafka_bootstrap, dlq) as dead:
        # the owner's source, as a producer that got onto the topic would claim
        await forge(notifier, hijack, source="/helpstream/intake")
        records = await dead.collect(1)
    assert [reason(r) for r in records] == ["repeated_ticket_created"]

    await notifier.publish(("tickets", reply("T-owned-1", "Your withdrawal is on chain now.")))
    caught = await mails(mail, 2)
    await settle_mail(mail)
    assert all(m.rcpt_tos == ("li.wei@example.com",) for m in mail.messages)
    assert len(caught) >= 2
    assert not any(ATTACKER in m.text() for m in mail.messages)
