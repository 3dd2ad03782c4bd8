"""Kept SMTP connections: reused, replaced when the relay dropped them, closed at shutdown."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from services.notifier.mail import Email, SmtpSender
from services.notifier.settings import NotifierSettings
from shared.infra.processes import free_port
from tests.support import secret_settings


@dataclass
class Relay:
    """A relay that, when told to `drop`, takes one mail per connection and then drops the
    connection the way relays do after an idle timeout: the next MAIL gets `421` or finds
    the connection closed."""

    drop: str | None
    port: int = 0
    received: list[str] = field(default_factory=list)  # Message-IDs
    connections: int = 0
    quits: int = 0
    _used: list[Any] = field(default_factory=list)  # sessions that carried a mail

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.drop and any(s is session for s in self._used):
            if self.drop == "closed":
                server.transport.close()
            return "421 closing idle connection"
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append(str(message["Message-ID"]))
        self._used.append(session)
        return "250 Message accepted for delivery"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.quits += 1
        return "221 Bye"


@pytest.fixture(params=["421", "closed"])
def relay(request: pytest.FixtureRequest) -> Iterator[Relay]:
    handler = Relay(request.param, free_port())
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


def mail(key: str) -> Email:
    return Email(key, "T-1", "li.wei@example.com", "[T-1] 收到", "text", "<p>html</p>")


async def test_a_kept_connection_the_relay_dropped_is_replaced_and_the_mail_goes_out_once(
    relay: Relay,
) -> None:
    sender = SmtpSender(
        NotifierSettings(
            smtp_port=relay.port,
            smtp_timeout_s=2.0,
            smtp_local_hostname="test",
            **secret_settings(NotifierSettings),
        )
    )
    try:
        assert await sender.send(mail("first")) == "primary"
        assert await sender.send(mail("second")) == "primary"
    finally:
        await sender.close()
    assert relay.received == ["<first@helpstream>", "<second@helpstream>"]
    assert relay.connections == 2


async def test_connections_are_kept_between_mails_and_closed_with_a_quit_at_shutdown() -> None:
    relay = Relay(None, free_port())
    controller = Controller(relay, hostname="127.0.0.1", port=relay.port)
    controller.start()
    try:
        sender = SmtpSender(
            NotifierSettings(
                smtp_port=relay.port,
                smtp_timeout_s=2.0,
                smtp_local_hostname="t",
                **secret_settings(NotifierSettings),
            )
        )
        for i in range(5):
            await sender.send(mail(f"m{i}"))
        await sender.close()
    finally:
        controller.stop()
    assert len(relay.received) == 5
    assert relay.connections == 1
    assert relay.quits == 1
