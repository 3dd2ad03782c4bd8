"""Incident updates on the real broker, MongoDB and SMTP: each linked requester hears once per
update, in their language, however many tickets they have and however often it arrives."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from shared.events import TicketIncidentUpdate
from shared.infra.mailcatcher import MailCatcher
from tests.integration.notifier.builders import created
from tests.integration.notifier.conftest import Notifier, settle_mail, summary, until

UPDATE_SUBJECTS = ("Update on a known issue", "已知问题进展")
TEXT = {
    "en": "TRC20 USDT withdrawals resume at 14:00 UTC.",
    "zh-CN": "TRC20 USDT 提现将于 UTC 14:00 恢复。",
}


def told(
    ticket_id: str, requester_id: str, update_id: str, locale: str, incident_id: str
) -> TicketIncidentUpdate:
    """The update as intake gives it to one linked ticket: in its requester's language."""
    return TicketIncidentUpdate(
        ticket_id=ticket_id,
        ticket=summary(requester_id=requester_id),
        incident_id=incident_id,
        update_id=update_id,
        body=TEXT[locale],
        posted_at=datetime.now(UTC),
    )


def updates_by_recipient(catcher: MailCatcher) -> Counter[str]:
    return Counter(
        rcpt
        for m in catcher.messages
        if any(s in m.subject for s in UPDATE_SUBJECTS)
        for rcpt in m.rcpt_tos
    )


async def test_each_linked_requester_hears_once_per_update_in_their_language(
    notifier: Notifier, mail: MailCatcher, uid: str
) -> None:
    incident = f"inc-{uid}"
    wei = {"id": f"wei-{uid}", "email": f"wei-{uid}@example.com"}
    ann = {"id": f"ann-{uid}", "email": f"ann-{uid}@example.com"}
    tickets = [  # Wei opened two tickets about the same stuck withdrawal
        (f"T-{uid}-1", wei, "zh-CN"),
        (f"T-{uid}-2", wei, "zh-CN"),
        (f"T-{uid}-3", ann, "en"),
    ]
    await notifier.publish(*[("tickets", created(t, locale, **who)) for t, who, locale in tickets])
    first = [
        ("tickets", told(t, str(who["id"]), f"upd-{uid}-1", locale, incident), f"ev-{uid}-{t}")
        for t, who, locale in tickets
    ]
    await notifier.publish(*first)
    await until(lambda: sum(updates_by_recipient(mail).values()) >= 2, timeout=30)
    await notifier.publish(*first)  # the broker redelivers the whole fan-out
    await notifier.publish(  # and intake, retried, gives the same update again
        *[
            ("tickets", told(t, str(who["id"]), f"upd-{uid}-1", locale, incident))
            for t, who, locale in tickets
        ]
    )
    await settle_mail(mail)

    assert updates_by_recipient(mail) == {wei["email"]: 1, ann["email"]: 1}
    by_rcpt = {
        m.rcpt_tos[0]: m for m in mail.messages if any(s in m.subject for s in UPDATE_SUBJECTS)
    }
    assert TEXT["zh-CN"] in by_rcpt[str(wei["email"])].text()
    assert "已知问题进展" in by_rcpt[str(wei["email"])].subject
    assert TEXT["en"] in by_rcpt[str(ann["email"])].text()
    assert "Update on a known issue" in by_rcpt[str(ann["email"])].subject

    await notifier.publish(  # the next update is news again: once more each
        *[
            ("tickets", told(t, str(who["id"]), f"upd-{uid}-2", locale, incident))
            for t, who, locale in tickets
        ]
    )
    await until(lambda: sum(updates_by_recipient(mail).values()) >= 4, timeout=30)
    await settle_mail(mail)
    assert updates_by_recipient(mail) == {wei["email"]: 2, ann["email"]: 2}
    sent = notifier.runtime.registry.get_sample_value(
        "helpstream_notifier_incident_updates_sent_total", {"channel": "email"}
    )
    assert sent == 4
