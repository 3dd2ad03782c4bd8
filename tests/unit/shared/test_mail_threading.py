"""Reply addresses and Message-IDs name their ticket, and cannot be forged."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from shared.mail_threading import (
    LOCAL_PART_MAX,
    message_id,
    reply_address,
    ticket_of_address,
    ticket_of_message_id,
    ticket_of_references,
)

SECRET = b"mail-thread-secret-0123456789abcdef"
OTHER = b"another-secret-0123456789abcdefgh"


def test_a_reply_address_names_its_ticket_and_fits_a_local_part() -> None:
    ticket = str(uuid.uuid4())
    address = reply_address(SECRET, ticket, "support@help.example.com")
    assert address is not None
    assert address.startswith("support+")
    assert address.endswith("@help.example.com")
    assert len(address.split("@")[0]) <= LOCAL_PART_MAX
    assert ticket_of_address(SECRET, address) == ticket
    assert ticket_of_address(SECRET, address.upper()) == ticket  # relays may fold case


def test_a_forged_or_foreign_reply_address_names_nothing() -> None:
    ticket = str(uuid.uuid4())
    address = reply_address(OTHER, ticket, "support@help.example.com")
    assert address is not None
    assert ticket_of_address(SECRET, address) is None
    assert ticket_of_address(SECRET, "support@help.example.com") is None
    assert ticket_of_address(SECRET, "support+garbage@help.example.com") is None
    tampered = address.replace(uuid.UUID(ticket).hex, uuid.uuid4().hex)
    assert ticket_of_address(SECRET, tampered) is None


def test_a_message_id_names_its_ticket_and_is_stable_per_mail() -> None:
    ticket = str(uuid.uuid4())
    first = message_id(SECRET, ticket, "delivery-1", "help.example.com")
    assert first == message_id(SECRET, ticket, "delivery-1", "help.example.com")
    assert first != message_id(SECRET, ticket, "delivery-2", "help.example.com")
    assert ticket_of_message_id(SECRET, first) == ticket
    assert ticket_of_message_id(OTHER, first) is None


def test_the_newest_of_our_message_ids_in_the_references_picks_the_ticket() -> None:
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    refs = " ".join(
        [
            "<CAF=x@mail.gmail.com>",
            message_id(SECRET, old, "a", "h.example"),
            message_id(SECRET, new, "b", "h.example"),
        ]
    )
    assert ticket_of_references(SECRET, None, refs) == new
    assert ticket_of_references(SECRET, "<someone@else>", "") is None


@given(st.text(min_size=1, max_size=20))
def test_any_ticket_id_round_trips_through_a_message_id(ticket: str) -> None:
    assert ticket_of_message_id(SECRET, message_id(SECRET, ticket, "n", "h.example")) == ticket
