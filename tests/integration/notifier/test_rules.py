"""Each rule sends the right message, in the right language, on every channel."""

from __future__ import annotations

import hashlib
import hmac

from services.notifier.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER
from shared.events import Author, Status
from shared.infra.mailcatcher import MailCatcher
from tests.integration.notifier.builders import (
    applied,
    breached,
    created,
    escalated,
    rated,
    reply,
    status,
    survey,
    warning,
)
from tests.integration.notifier.conftest import (
    WEBHOOK_SECRET,
    Notifier,
    Receiver,
    mails,
    settle_mail,
    until,
)
from tests.support import Tap


def verify_signature(secret: str, headers: dict[str, str], body: bytes) -> bool:
    timestamp = headers[TIMESTAMP_HEADER.lower()]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(headers[SIGNATURE_HEADER.lower()], f"sha256={expected.hexdigest()}")


async def test_a_new_ticket_is_acknowledged_with_the_promised_first_reply_time_on_every_channel(
    notifier: Notifier, mail: MailCatcher, receiver: Receiver
) -> None:
    topics = notifier.runtime.topics
    async with Tap(notifier.infra.kafka_bootstrap, topics.notifications) as tap:
        await notifier.publish(("sla", applied("T-ack")), ("tickets", created("T-ack")))
        caught = await mails(mail, 1)
        await tap.collect(3)
    assert [m.rcpt_tos for m in caught] == [("li.wei@example.com",)]
    message = caught[0]
    assert message.subject == "[T-ack] 我们已收到您的请求：提现未到账"
    assert "我们已收到您的请求" in message.text()
    assert "2030年3月1日 16:30" in message.text()  # 08:30 UTC in Asia/Shanghai
    html = message.message.get_body(preferencelist=("html",))
    assert html is not None
    assert "<b>T-ack</b>" in html.get_content()
    assert message.message["Message-ID"].endswith("@helpstream.local>")  # the thread's root
    assert message.message["In-Reply-To"] is None

    await until(lambda: bool(receiver.to("/push")))
    push = receiver.to("/push")[0]
    assert verify_signature(WEBHOOK_SECRET, push.headers, push.body)
    assert push.json()["template"] == "ticket_acknowledged"
    assert push.json()["recipient"] == {"kind": "requester", "requester_id": "u-42"}
    assert push.headers["idempotency-key"] == push.json()["id"]

    response = await notifier.http.get("/v1/inbox", headers=notifier.token("u-42"))
    assert response.status_code == 200, response.text
    inbox = response.json()
    assert [i["title"] for i in inbox["items"]] == ["我们已收到您的请求 T-ack"]

    outcomes = {(e.type, e.data.channel) for e in tap.events()}  # type: ignore[attr-defined]
    assert outcomes == {
        ("helpstream.notification.delivered", "email"),
        ("helpstream.notification.delivered", "webhook"),
        ("helpstream.notification.delivered", "inbox"),
    }


async def test_each_progress_update_reaches_an_english_requester_in_english(
    notifier: Notifier, mail: MailCatcher, receiver: Receiver
) -> None:
    await notifier.publish(("tickets", created("T-en", locale="en-US", timezone="UTC")))
    await mails(mail, 1)
    await notifier.publish(
        ("tickets", reply("T-en", "Your transfer is confirmed.")),
        ("tickets", reply("T-en", "redacted", author=Author.system)),
        ("tickets", status("T-en", Status.pending)),
        ("tickets", status("T-en", Status.on_hold)),
        ("tickets", status("T-en", Status.solved)),
        ("feedback", survey("T-en", locale="en")),
    )
    caught = await mails(mail, 7)
    subjects = sorted(m.subject for m in caught[1:])
    assert subjects == sorted(
        [
            "[T-en] New reply to your request",
            "[T-en] Security notice: never share your seed phrase or private keys",
            "[T-en] We need your input",
            "[T-en] Waiting on the blockchain or our partner",
            "[T-en] Your request is solved",
            "[T-en] How did we do?",
        ]
    )
    by_subject = {m.subject: m.text() for m in caught}
    assert "Your transfer is confirmed." in by_subject["[T-en] New reply to your request"]
    assert "https://help.example.com/s/T-en" in by_subject["[T-en] How did we do?"]
    await until(lambda: len(receiver.to("/push")) == 7)
    assert all(verify_signature(WEBHOOK_SECRET, c.headers, c.body) for c in receiver.calls)


async def test_sla_alerts_escalations_and_low_ratings_go_to_the_group_and_the_leads(
    notifier: Notifier, mail: MailCatcher, receiver: Receiver
) -> None:
    await notifier.publish(("tickets", created("T-ops")))
    await mails(mail, 1)
    await notifier.publish(
        ("sla", warning("T-ops")),
        ("sla", breached("T-ops")),
        ("tickets", escalated("T-ops")),
        ("feedback", rated("T-ops", 1)),
        ("feedback", rated("T-ops", 5)),
    )
    caught = await settle_mail(mail)
    alerts = sorted((m.rcpt_tos[0], m.subject) for m in caught[1:])
    assert alerts == sorted(
        [
            ("payments-team@helpstream.local", "[T-ops] SLA at risk: first_reply (high)"),
            ("payments-team@helpstream.local", "[T-ops] SLA BREACHED: first_reply (high)"),
            ("support-leads@helpstream.local", "[T-ops] SLA BREACHED: first_reply (high)"),
            ("payments-team@helpstream.local", "[T-ops] Escalated to level 2"),
            ("support-leads@helpstream.local", "[T-ops] Escalated to level 2"),
            ("payments-team@helpstream.local", "[T-ops] Low rating: 1/5"),
            ("support-leads@helpstream.local", "[T-ops] Low rating: 1/5"),
        ]
    )
    paged = receiver.to("/agents")
    assert sorted(c.json()["template"] for c in paged) == [
        "escalation",
        "low_rating",
        "sla_breached",
        "sla_warning",
    ]
    assert all(verify_signature(WEBHOOK_SECRET, c.headers, c.body) for c in paged)
