"""A conversation by email across every service, each a real process.

A requester opens a ticket in the app and is told when to expect an answer; an agent
answers; the requester answers back from their mail client (an SMTP conversation with
the mail gateway, quoting the agent's mail as every client does); the agent sees only the
new words on the ticket, and the requester's status page shows the whole conversation.
"""

from __future__ import annotations

import re
import smtplib
from typing import TYPE_CHECKING

import httpx
import pytest

from helpstream.demo import reply_by_email
from tests.e2e.conftest import API_KEY
from tests.support import eventually

if TYPE_CHECKING:
    from email.message import EmailMessage

    from shared.infra.mailcatcher import MailCatcher

REQUESTER = "li.wei@example.com"
AGENT_ANSWER = "We found your withdrawal: it waits for TRON network confirmations."
REQUESTER_ANSWER = "Thanks, it arrived a minute ago. You can close the ticket."


def send(port: int, message: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.send_message(message)


# The acknowledgement waits for the promise, as the local run's does; the agent's answer goes
# out at once rather than in a digest of the ticket's first minute.
CONVERSATION = {"HELPSTREAM_ACK_SLA_WAIT_S": "5", "HELPSTREAM_DIGEST_WINDOW_S": "0"}


@pytest.mark.parametrize("services", [CONVERSATION], indirect=True)
async def test_a_requester_answers_by_email_and_the_agent_and_the_status_page_see_it(
    services: dict[str, str], mail: MailCatcher, inbound_smtp_port: int
) -> None:
    intake = services["intake"]
    async with httpx.AsyncClient(
        timeout=10, headers={"Authorization": f"Bearer {API_KEY}"}
    ) as http:
        opened = await http.post(
            f"{intake}/v1/tickets",
            json={
                "requester": {"id": "u-77", "email": REQUESTER, "locale": "en"},
                "channel": "app",
                "subject": "USDT withdrawal not received",
                "description": "My 2500 USDT (TRC20) withdrawal has been pending for 3 hours.",
                "crypto": {"asset": "USDT", "network": "TRC20", "amount": "2500"},
            },
        )
        assert opened.status_code == 201, opened.text
        ticket_id = opened.json()["id"]

        (ack,) = mail.wait_for(1, timeout=30)
        assert "You can expect a first reply by" in ack.text()  # the promise, kept
        assert "Reply to this email" in ack.text()  # and true: the gateway reads replies
        assert str(ack.message["Reply-To"]).startswith("support+")
        status_url = re.search(r"https?://\S+/t/\S+", ack.text())
        assert status_url is not None

        answered = await http.post(
            f"{intake}/v1/tickets/{ticket_id}/messages",
            json={"author": "agent", "author_id": "agent-7", "body": AGENT_ANSWER},
        )
        assert answered.status_code == 201, answered.text
        agent_mail = mail.wait_for(2, timeout=30)[1]
        assert AGENT_ANSWER in agent_mail.text()

        send(
            inbound_smtp_port,
            reply_by_email(agent_mail.message, REQUESTER_ANSWER, f"Li Wei <{REQUESTER}>"),
        )

        async def requesters_reply() -> dict[str, object] | None:
            ticket = (await http.get(f"{intake}/v1/tickets/{ticket_id}")).json()
            theirs = [m for m in ticket["messages"] if m["author"] == "requester"]
            return theirs[0] if theirs else None

        reply = await eventually(requesters_reply, timeout=30)
        assert reply["body"] == REQUESTER_ANSWER  # the quoted history is not kept
        assert reply["public"] is True
        assert reply["unverified"] is False

        page = await http.get(status_url.group(), headers={"Authorization": ""})
        assert page.status_code == 200
        conversation = page.text
        for said in ("pending for 3 hours", AGENT_ANSWER, REQUESTER_ANSWER):
            assert said in conversation
        assert conversation.index(AGENT_ANSWER) < conversation.index(REQUESTER_ANSWER)
