"""Incident rules: which tickets a scope links, and what updates and resolution allow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.intake.incidents import (
    Incident,
    IncidentResolvedAlready,
    TicketFacts,
    linkable,
    matches,
)
from shared.events import Category, CryptoContext, IncidentScope, IncidentText, Status

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TEXT = IncidentText(en="We are on it.", zh_cn="我们正在处理。")


def facts(**overrides: object) -> TicketFacts:
    values: dict[str, object] = {
        "category": Category.withdrawal_delay,
        "crypto": CryptoContext(asset="USDT", network="TRC20"),
        "subject": "Withdrawal stuck",
        "description": "My USDT has not arrived",
        "created_at": NOW,
        "status": Status.new,
    }
    values.update(overrides)
    return TicketFacts(**values)  # type: ignore[arg-type]


SCOPE = IncidentScope(category=Category.withdrawal_delay, asset="usdt", network="trc20")


def test_asset_and_network_match_whatever_their_case() -> None:
    assert matches(SCOPE, facts())


@pytest.mark.parametrize(
    "other",
    [
        {"category": Category.kyc},
        {"crypto": CryptoContext(asset="USDT", network="ERC20")},
        {"crypto": CryptoContext(asset="BTC", network="TRC20")},
        {"crypto": None},
    ],
)
def test_a_ticket_about_something_else_does_not_match(other: dict[str, object]) -> None:
    assert not matches(SCOPE, facts(**other))


def test_keywords_need_one_of_them_in_the_subject_or_description() -> None:
    scope = SCOPE.model_copy(update={"keywords": ["卡住", "arrived"]})
    assert matches(scope, facts())
    assert matches(scope, facts(description="提现卡住了", subject="x"))
    assert not matches(scope, facts(description="fine", subject="question"))


def test_the_window_bounds_when_the_ticket_was_opened() -> None:
    scope = SCOPE.model_copy(update={"opened_from": NOW, "opened_until": NOW + timedelta(hours=1)})
    assert matches(scope, facts())
    assert not matches(scope, facts(created_at=NOW - timedelta(seconds=1)))
    assert not matches(scope, facts(created_at=NOW + timedelta(hours=1)))


def test_solved_closed_or_already_linked_tickets_are_not_linked() -> None:
    assert linkable(SCOPE, facts(status=Status.pending))
    assert not linkable(SCOPE, facts(status=Status.solved))
    assert not linkable(SCOPE, facts(status=Status.closed))
    assert not linkable(SCOPE, facts(incident_id="another"))


def incident() -> Incident:
    return Incident.declare(
        incident_id="i-1", title=TEXT, scope=SCOPE, status_text=TEXT, by="key", now=NOW
    )


def test_an_update_is_posted_once_and_becomes_the_status_text() -> None:
    found = incident()
    update = IncidentText(en="Resuming at 14:00 UTC.", zh_cn="14:00 恢复。")
    assert found.post_update(update_id="u-1", text=update, now=NOW, linked=3) is not None
    assert found.post_update(update_id="u-1", text=update, now=NOW, linked=3) is None
    assert found.status_text == update
    assert [type(e).__name__ for e in found.take_events()] == [
        "IncidentDeclared",
        "IncidentUpdated",
    ]


def test_a_resolved_incident_takes_no_updates_and_no_new_tickets() -> None:
    found = incident()
    assert found.resolve(text=TEXT, outcome="solved", now=NOW, linked=0)
    assert not found.resolve(text=TEXT, outcome="solved", now=NOW, linked=0)
    assert not found.accepts(facts())
    with pytest.raises(IncidentResolvedAlready):
        found.post_update(update_id="u-2", text=TEXT, now=NOW, linked=0)


def test_a_language_gets_its_own_text() -> None:
    assert TEXT.for_locale("zh-CN") == "我们正在处理。"
    assert TEXT.for_locale("en-GB") == "We are on it."
