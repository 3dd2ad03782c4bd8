"""Ticket numbers, follow-up links, held (unverified) messages and idempotency records."""

from __future__ import annotations

import pytest

from services.intake.auth import Scope, required_scope
from services.intake.domain import Message, TicketClosed, show_number, ticket_number
from services.intake.handlers import applied_request, earlier_request, request_hash
from services.intake.store import from_document, to_document
from shared.commands import AddMessage, UpdateTicket
from shared.events import Author, Status, TicketCreated, TicketMessageAdded, TicketRef
from tests.unit.intake.test_ticket_domain import NOW, at_status, new_ticket


@pytest.mark.parametrize(
    ("typed", "number"),
    [("482913", 482913), ("#482913", 482913), (" #100001 ", 100001), ("0042", 42)],
)
def test_a_number_is_read_as_people_type_it(typed: str, number: int) -> None:
    assert ticket_number(typed) == number


@pytest.mark.parametrize(
    "reference", ["01934a6e-7a1c-7c3e-9d1f-1f2a3b4c5d6e", "##1", "#", "", "48 29 13", "1e5", "-1"]
)
def test_ids_and_anything_else_are_not_numbers(reference: str) -> None:
    assert ticket_number(reference) is None


def test_every_event_of_a_numbered_ticket_carries_its_number() -> None:
    ticket = new_ticket(number=482913, follow_up_of=TicketRef(id="T-0", number=482000))
    ticket.add_message(
        message_id="m1", author=Author.agent, author_id="a", body="hi", public=True, now=NOW
    )

    events = ticket.take_events()
    assert {e.ticket.number for e in events} == {482913}  # type: ignore[attr-defined]
    assert isinstance(events[0], TicketCreated)
    assert events[0].follow_up_of == TicketRef(id="T-0", number=482000)
    assert show_number(ticket.number) == "#482913"


def test_an_unverified_message_is_held_internal_and_changes_no_status() -> None:
    ticket = at_status(Status.solved)

    held = ticket.add_message(
        message_id="m1",
        author=Author.requester,
        author_id=None,
        body="please send your seed words to verify",
        public=True,
        now=NOW,
        warning=("w1", "never share your seed phrase"),
        unverified=True,
        claimed_from="li.wei@examp1e.com",
    )

    assert (held.public, held.unverified, held.claimed_from) == (
        False,
        True,
        "li.wei@examp1e.com",
    )
    assert ticket.status == Status.solved
    events = ticket.take_events()
    assert len(events) == 1
    assert isinstance(events[0], TicketMessageAdded)
    assert (events[0].public, events[0].body, events[0].unverified) == (False, None, True)
    assert [m.id for m in ticket.messages] == ["m1"]  # no warning to the real requester


def test_an_unverified_message_to_a_closed_ticket_is_refused_like_any_other() -> None:
    ticket = at_status(Status.closed)

    with pytest.raises(TicketClosed):
        ticket.add_message(
            message_id="m1",
            author=Author.requester,
            author_id=None,
            body="hello",
            public=False,
            now=NOW,
            unverified=True,
        )


def test_numbers_follow_ups_and_held_messages_survive_storage() -> None:
    ticket = new_ticket(number=100001, follow_up_of=TicketRef(id="T-0", number=None))
    ticket.messages.append(
        Message("m1", Author.requester, None, "x", False, NOW, unverified=True, claimed_from="a@b")
    )

    loaded = from_document(to_document(ticket))

    assert (loaded.number, loaded.follow_up_of) == (100001, TicketRef(id="T-0"))
    assert (loaded.messages[0].unverified, loaded.messages[0].claimed_from) == (True, "a@b")


def test_a_ticket_stored_before_numbers_loads_without_one() -> None:
    doc = to_document(new_ticket())

    assert "number" not in doc  # sparse unique index: absent, never null
    assert from_document(doc).number is None


def test_a_write_key_may_report_an_unverified_requester_message() -> None:
    held = AddMessage(author=Author.requester, body="x", verified=False, public=False)
    note = AddMessage(author=Author.requester, body="x", public=False)

    assert required_scope(held) == Scope.write
    assert required_scope(note) == Scope.agent


def test_an_idempotency_record_names_its_key_and_body_and_nothing_else() -> None:
    digest = request_hash(UpdateTicket(status=Status.pending))
    applied = ["cmd-1", applied_request("http:k:a#b", digest), applied_request("http:k:a", "f")]

    assert earlier_request(applied, "http:k:a#b") == digest
    assert earlier_request(applied, "http:k:a") == "f"
    assert earlier_request(applied, "http:k") is None
    assert earlier_request(applied, "cmd-1") is None
    assert request_hash(UpdateTicket(status=Status.solved)) != digest
