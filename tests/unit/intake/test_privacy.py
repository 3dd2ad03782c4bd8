"""What an erased ticket keeps: its shape, status and clocks; not its requester's data."""

from __future__ import annotations

from datetime import UTC, datetime

from services.intake.privacy import anonymized_ticket
from shared.privacy import ERASED

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_an_anonymized_ticket_keeps_no_contact_text_file_or_transfer_detail() -> None:
    doc = {
        "_id": "T-1",
        "requester": {"id": "u-1", "email": "li.wei@example.com", "locale": "zh-CN"},
        "subject": "提现未到账",
        "description": "my address is TXyz",
        "crypto": {"address": "TXyz", "tx_hash": "ab" * 32},
        "attachments": [{"name": "passport.png"}],
        "messages": [
            {"id": "m1", "author": "requester", "body": "hello", "claimed_from": "Li Wei",
             "attachments": [{"name": "id.png"}], "public": True},
            {"id": "m2", "author": "agent", "body": "Dear Li Wei", "public": True},
        ],
        "status": "solved",
    }  # fmt: skip
    update = anonymized_ticket(doc, "erased-1", NOW)
    assert update["requester"] == {"id": "erased-1", "email": None, "locale": "zh-CN"}
    assert (update["subject"], update["description"]) == (ERASED, ERASED)
    assert update["crypto"] is None
    assert update["attachments"] == []
    assert [m["body"] for m in update["messages"]] == [ERASED, ERASED]
    assert [m["id"] for m in update["messages"]] == ["m1", "m2"]  # the history's shape stays
    assert update["messages"][0]["claimed_from"] is None
    assert update["messages"][0]["attachments"] == []
    assert "status" not in update
    assert "Li Wei" not in repr(update)
    assert "li.wei" not in repr(update)
