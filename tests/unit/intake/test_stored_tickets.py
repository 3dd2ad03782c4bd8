"""Stored tickets load whatever the rules of the day say about their contents."""

from __future__ import annotations

from services.intake.store import from_document, to_document
from tests.unit.intake.test_ticket_domain import new_ticket


def test_a_ticket_stored_with_an_address_todays_rules_refuse_still_loads() -> None:
    doc = to_document(new_ticket())
    doc["requester"]["email"] = "ü@["  # accepted before addresses were checked strictly
    loaded = from_document(doc)
    assert loaded.requester.email == "ü@["
    assert loaded.id == doc["_id"]
