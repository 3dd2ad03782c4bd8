"""Mailboxes come from environment variables as a deployment writes them."""

from __future__ import annotations

import pytest

from services.mail_gateway.settings import MailGatewaySettings
from tests.support import secret_settings


@pytest.mark.parametrize(
    "value", ["support@a.example, help@a.example", '["support@a.example", "help@a.example"]']
)
def test_inbound_addresses_are_read_comma_separated_or_as_a_json_list(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("HELPSTREAM_INBOUND_ADDRESSES", value)
    settings = MailGatewaySettings(**secret_settings(MailGatewaySettings))
    assert settings.inbound_addresses == ["support@a.example", "help@a.example"]


def test_a_tagged_or_malformed_inbound_address_stops_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HELPSTREAM_INBOUND_ADDRESSES", "support+x@a.example")
    with pytest.raises(ValueError, match="plain mailbox"):
        MailGatewaySettings(**secret_settings(MailGatewaySettings))
