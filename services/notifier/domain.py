"""What to tell whom, and in which words. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.ids import stable_id

if TYPE_CHECKING:
    from shared.events import TicketCreated

ACK_TEMPLATE = "ticket_acknowledged"

_ACK = {
    "en": (
        "[{ticket_id}] We received your request: {subject}",
        'Hello,\n\nWe received your request "{subject}" (ticket {ticket_id}).\n'
        "A support agent will reply as soon as possible. Reply to this email to add details.\n\n"
        "We will never ask for your seed phrase or private keys.\n\n— Support",
    ),
    "zh-CN": (
        "[{ticket_id}] 我们已收到您的请求：{subject}",
        "您好，\n\n我们已收到您的请求「{subject}」（工单 {ticket_id}）。\n"
        "客服人员会尽快回复您。直接回复此邮件即可补充信息。\n\n"
        "我们绝不会索要您的助记词或私钥。\n\n—— 客服团队",
    ),
}


@dataclass(frozen=True)
class Email:
    delivery_key: str
    ticket_id: str
    cause_event_id: str
    template: str
    to: str
    subject: str
    text: str


def language(locale: str) -> str:
    """Requester locale to a template language; English when we have no translation."""
    if locale.lower().startswith("zh"):
        return "zh-CN"
    return "en"


def acknowledgement(event_id: str, created: TicketCreated) -> Email | None:
    recipient = created.requester.email
    if recipient is None:
        return None
    subject, text = _ACK[language(created.requester.locale)]
    values = {"ticket_id": created.ticket_id, "subject": created.subject}
    return Email(
        delivery_key=stable_id(event_id, "email", recipient),
        ticket_id=created.ticket_id,
        cause_event_id=event_id,
        template=ACK_TEMPLATE,
        to=recipient,
        subject=subject.format(**values),
        text=text.format(**values),
    )
