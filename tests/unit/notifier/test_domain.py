"""Which rule applies, who receives what on which channel, what preferences may mute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.notifier.config import load_rules
from services.notifier.domain import (
    Category,
    FactUpdate,
    Incoming,
    Preferences,
    Requester,
    TicketFacts,
    backoff_delay,
    digest_id,
    digest_message_key,
    fact_updates,
    first_facts,
    is_repeated_creation,
    language,
    plan,
    requester_of,
    unmutable,
)
from shared.events import (
    Author,
    FeedbackRequested,
    FeedbackSubmitted,
    Priority,
    SlaApplied,
    SlaBreached,
    SlaMetric,
    Status,
    TicketCreated,
    TicketMessageAdded,
    TicketStatusChanged,
    TicketSummary,
)
from shared.events import Requester as RequesterModel

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
RULES = load_rules()
LI = Requester("u-1", "li@example.com", "zh-CN", "Asia/Shanghai")


def summary(**overrides: Any) -> TicketSummary:
    values: dict[str, Any] = {
        "status": "open",
        "priority": "high",
        "category": "withdrawal_delay",
        "channel": "app",
        "group": "payments",
        "requester_id": "u-1",
        "created_at": NOW,
    }
    values.update(overrides)
    return TicketSummary.model_validate(values)


def incoming(data: Any, event_id: str = "e-1") -> Incoming:
    return Incoming(event_id, data.event_type, NOW, "corr-1", data)


def facts(**overrides: Any) -> TicketFacts:
    values: dict[str, Any] = {
        "ticket_id": "T-1",
        "requester": LI,
        "subject": "提现未到账",
        "group": "payments",
        "category": "withdrawal_delay",
    }
    values.update(overrides)
    return TicketFacts(**values)


def reply(author: Author = Author.agent, public: bool = True) -> TicketMessageAdded:
    return TicketMessageAdded(
        ticket_id="T-1",
        ticket=summary(),
        message_id="m-1",
        author=author,
        public=public,
        body="We are checking." if public else None,
    )


def status(new: Status, **ticket: Any) -> TicketStatusChanged:
    return TicketStatusChanged(
        ticket_id="T-1", ticket=summary(status=new, **ticket), old=Status.open, new=new
    )


def sla_breached() -> SlaBreached:
    return SlaBreached(
        ticket_id="T-1",
        metric=SlaMetric.first_reply,
        target_s=3600,
        elapsed_s=3700,
        remaining_s=-100,
        deadline=NOW,
        priority=Priority.high,
        policy="default",
        policy_version="1",
        breached_at=NOW,
    )


def run(data: Any, ticket: TicketFacts | None = None, prefs: Preferences | None = None) -> Any:
    return plan(
        RULES,
        incoming(data),
        ticket or facts(),
        prefs or Preferences(),
        requester_webhook=True,
    )


def test_a_new_ticket_is_acknowledged_to_the_requester_on_every_channel_in_their_language() -> None:
    created = TicketCreated(
        ticket_id="T-1",
        ticket=summary(),
        requester=RequesterModel(id="u-1", email="li@example.com", locale="zh-CN"),
        subject="提现未到账",
    )
    planned = run(created, facts(requester=None))
    assert {
        (d.template, d.recipient.channel, d.recipient.language) for d in planned.deliveries
    } == {
        ("ticket_acknowledged", "email", "zh-CN"),
        ("ticket_acknowledged", "webhook", "zh-CN"),
        ("ticket_acknowledged", "inbox", "zh-CN"),
    }
    email = next(d for d in planned.deliveries if d.recipient.channel == "email")
    assert email.recipient.address == "li@example.com"
    assert email.digest is False


def test_public_agent_replies_notify_the_requester_but_internal_notes_and_own_messages_do_not() -> (
    None
):
    assert {d.template for d in run(reply()).deliveries} == {"agent_reply"}
    assert run(reply(public=False)).deliveries == []
    assert run(reply(author=Author.requester)).deliveries == []


def test_a_system_message_is_a_security_warning_that_preferences_cannot_mute() -> None:
    muted = Preferences({ch: frozenset(Category) for ch in ("email", "webhook", "inbox")})
    planned = run(reply(author=Author.system), prefs=muted)
    assert {d.template for d in planned.deliveries} == {"security_warning"}
    assert len(planned.deliveries) == 3
    assert all(d.mandatory for d in planned.deliveries)


@pytest.mark.parametrize(
    ("new", "template"),
    [
        (Status.pending, "status_pending"),
        (Status.on_hold, "status_on_hold"),
        (Status.solved, "status_solved"),
    ],
)
def test_each_waiting_or_final_status_has_its_own_message(new: Status, template: str) -> None:
    deliveries = run(status(new)).deliveries
    assert {d.template for d in deliveries} == {template}
    assert {d.digest for d in deliveries if d.recipient.channel != "inbox"} == {True}
    assert {d.digest for d in deliveries if d.recipient.channel == "inbox"} == {False}


def test_other_status_changes_are_not_announced() -> None:
    assert run(status(Status.open)).deliveries == []


def test_opt_out_silences_one_channel_and_category_only() -> None:
    prefs = Preferences({"email": frozenset({Category.progress})})
    planned = run(status(Status.solved), prefs=prefs)
    assert {d.recipient.channel for d in planned.deliveries} == {"webhook", "inbox"}
    assert planned.muted == [("email", Category.progress)]


def test_updates_on_an_account_security_ticket_cannot_be_muted() -> None:
    prefs = Preferences({"email": frozenset({Category.progress})})
    planned = run(status(Status.solved, category="account_security"), prefs=prefs)
    assert "email" in {d.recipient.channel for d in planned.deliveries}
    assert planned.muted == []


def test_a_survey_invitation_uses_the_locale_of_the_feedback_event() -> None:
    requested = FeedbackRequested(
        ticket_id="T-1",
        survey_id="s-1",
        requester_id="u-1",
        locale="en",
        survey_url="https://x/s",
        expires_at=NOW + timedelta(days=7),
    )
    deliveries = run(requested).deliveries
    assert {(d.template, d.recipient.language) for d in deliveries} == {("survey_invitation", "en")}
    assert {d.recipient.address for d in deliveries if d.recipient.channel == "email"} == {
        "li@example.com"
    }


def test_a_breach_alerts_the_group_and_the_default_leads_by_email() -> None:
    deliveries = run(sla_breached()).deliveries
    assert {(d.recipient.kind, d.recipient.address) for d in deliveries} == {
        ("agent", "payments-team@helpstream.local"),
        ("lead", "support-leads@helpstream.local"),
    }
    assert all(d.mandatory and d.recipient.language == "en" for d in deliveries)


def test_an_unknown_group_falls_back_to_the_default_leads_once() -> None:
    deliveries = run(sla_breached(), facts(group="nobody")).deliveries
    assert [d.recipient.address for d in deliveries] == ["support-leads@helpstream.local"]


def test_only_a_requested_follow_up_alerts_the_leads() -> None:
    def rated(score: int, follow_up: bool) -> FeedbackSubmitted:
        return FeedbackSubmitted(
            ticket_id="T-1",
            survey_id="s",
            score=score,
            group="security",
            needs_follow_up=follow_up,
        )

    assert {d.recipient.address for d in run(rated(1, True)).deliveries} == {
        "security-leads@helpstream.local",
        "support-leads@helpstream.local",
    }
    assert run(rated(4, False)).deliveries == []
    # a survey flipped back to low: feedback asked for its follow-up already
    assert run(rated(1, False)).deliveries == []


def test_delivery_keys_are_stable_per_event_channel_and_recipient() -> None:
    first = {d.key for d in run(reply()).deliveries}
    again = {d.key for d in run(reply()).deliveries}
    other = {
        d.key
        for d in plan(
            RULES, incoming(reply(), "e-2"), facts(), Preferences(), requester_webhook=True
        ).deliveries
    }
    assert first == again
    assert first.isdisjoint(other)


def test_without_a_webhook_or_email_those_channels_are_skipped() -> None:
    ticket = facts(requester=Requester("u-1", None, "en"))
    planned = plan(RULES, incoming(reply()), ticket, Preferences(), requester_webhook=False)
    assert [d.recipient.channel for d in planned.deliveries] == ["inbox"]


@pytest.mark.parametrize(
    ("locale", "expected"),
    [("zh-CN", "zh-CN"), ("zh_cn", "zh-CN"), ("zh-TW", "zh-CN"), ("en-GB", "en"), ("fr", "en")],
)
def test_locale_maps_to_a_template_language_with_english_fallback(
    locale: str, expected: str
) -> None:
    assert language(locale, ("en", "zh-CN"), "en") == expected


def test_the_promised_first_reply_time_and_the_contact_are_remembered() -> None:
    applied = SlaApplied(
        ticket_id="T-1",
        metric=SlaMetric.first_reply,
        target_s=3600,
        elapsed_s=0,
        remaining_s=3600,
        deadline=NOW,
        priority=Priority.high,
        policy="p",
        policy_version="1",
    )
    assert fact_updates("T-1", applied) == FactUpdate("T-1", first_reply_due=NOW)
    created = TicketCreated(
        ticket_id="T-1",
        ticket=summary(),
        requester=RequesterModel(id="u-1", email="li@example.com", timezone="Asia/Shanghai"),
        subject="s",
    )
    assert fact_updates("T-1", created).group == "payments"
    first = first_facts("T-1", "ev-1", created)
    assert first is not None
    assert first.requester.timezone == "Asia/Shanghai"
    assert first.created_by == "ev-1"


def test_only_the_first_ticket_created_names_who_is_mailed() -> None:
    created = TicketCreated(
        ticket_id="T-1",
        ticket=summary(),
        requester=RequesterModel(id="u-9", email="attacker@example.net"),
        subject="Urgent: verify your wallet",
    )
    known = TicketFacts("T-1", Requester("u-1", "li@example.com"), "s", created_by="ev-1")
    assert is_repeated_creation("ev-2", created, known)
    assert not is_repeated_creation("ev-1", created, known)  # a replay of the first
    assert requester_of(created, known) == Requester("u-1", "li@example.com")
    assert not is_repeated_creation("ev-1", created, TicketFacts("T-1"))


def test_security_and_breach_categories_cannot_be_muted() -> None:
    assert unmutable({"email": [Category.surveys]}) == []
    assert unmutable({"email": [Category.security], "inbox": [Category.breach]}) == [
        "email:security",
        "inbox:breach",
    ]


def test_a_digest_groups_by_ticket_channel_and_recipient_and_its_key_ignores_order() -> None:
    assert digest_id("T-1", "email", "a@x") == digest_id("T-1", "email", "a@x")
    assert digest_id("T-1", "email", "a@x") != digest_id("T-1", "webhook", "a@x")
    assert digest_id("T-1", "email", "a@x") != digest_id("T-2", "email", "a@x")
    assert digest_message_key(["k2", "k1"]) == digest_message_key(["k1", "k2"])
    assert digest_message_key(["k1"]) == "k1"


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999])
def test_backoff_grows_exponentially_is_capped_and_jittered_within_half_a_step(
    jitter: float,
) -> None:
    delays = [backoff_delay(n, 0.5, 4.0, jitter) for n in range(1, 7)]
    steps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for delay, step in zip(delays, steps, strict=True):
        assert step / 2 <= delay <= step
