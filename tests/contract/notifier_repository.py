"""The behaviour every `NotifierRepository` promises, run against each implementation.

A test module subclasses `NotifierRepositoryContract` and gives it a `harness` fixture:
a fresh, empty repository, and a way to read the outcome events its delivery writes left
pending for publication (what a relay would send next).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from services.notifier.domain import (
    Category,
    Delivery,
    FactUpdate,
    FirstFacts,
    Preferences,
    Recipient,
    Requester,
)
from services.notifier.ports import Bounce, DigestItem, InboxItem, Outcome, QueuedItem
from shared.events import NotificationDelivered, NotificationFailed, make_event

if TYPE_CHECKING:
    from services.notifier.ports import DigestKind, NotifierRepository
    from shared.events import Outgoing

TOPIC = "helpstream.notifications"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # whole milliseconds: as MongoDB keeps time
LEASE = timedelta(seconds=30)
EMAIL = Recipient("requester", "email", "li.wei@example.com", "u-42", "en", "UTC")


class Harness(Protocol):
    @property
    def repository(self) -> NotifierRepository: ...

    async def pending(self) -> list[Outgoing]:
        """The outcome events written with deliveries and not yet published."""
        ...


def delivery(key: str, ticket_id: str = "T-1", recipient: Recipient = EMAIL) -> Delivery:
    return Delivery(
        key=key,
        event_id=f"ev-{key}",
        event_type="helpstream.ticket.message_added",
        event_time=NOW,
        correlation_id="c-1",
        ticket_id=ticket_id,
        rule="agent_reply",
        template="agent_reply",
        category=Category.replies,
        mandatory=False,
        digest=True,
        recipient=recipient,
        values={"ticket_id": ticket_id},
    )


def told(d: Delivery, *, error: str | None = None) -> Outgoing:
    common = {
        "ticket_id": d.ticket_id,
        "notification_id": d.key,
        "cause_event_id": d.event_id,
        "channel": d.recipient.channel,
        "template": d.template,
        "recipient_kind": d.recipient.kind,
    }
    data = (
        NotificationFailed(**common, error=error)
        if error is not None
        else NotificationDelivered(**common)
    )
    event_id = f"{'failed' if error else 'delivered'}-{d.key}"
    return TOPIC, make_event(
        data, source="/helpstream/notifier", time=NOW, correlationid="c-1", event_id=event_id
    )


def sent(d: Delivery, *, with_record: bool = True) -> Outcome:
    return Outcome(
        d.key, "sent", events=[told(d)], message_key=d.key, delivery=d if with_record else None
    )


def queued(
    d: Delivery,
    digest_id: str = "digest-1",
    *,
    due_at: datetime = NOW,
    kind: DigestKind = "digest",
    time: datetime = NOW,
) -> QueuedItem:
    item = DigestItem(
        key=d.key,
        template=d.template,
        event_id=d.event_id,
        event_type=d.event_type,
        time=time,
        correlation_id=d.correlation_id,
        ticket_id=d.ticket_id,
        channel=d.recipient.channel,
        recipient_kind=d.recipient.kind,
        values={"ticket_id": d.ticket_id, "ticket_number": "#482913"},
    )
    return QueuedItem(digest_id, kind, d.ticket_id, d.recipient, NOW, due_at, item)


def inbox_item(
    item_id: str, requester_id: str = "u-42", *, at: datetime = NOW, ticket_id: str = "T-1"
) -> InboxItem:
    return InboxItem(item_id, requester_id, ticket_id, "agent_reply", "A reply", "Hello", at)


def bounce(address: str, event_id: str = "b-1") -> Bounce:
    return Bounce(address, "mailbox_unknown", "550 5.1.1 no such user", "T-1", event_id)


class NotifierRepositoryContract:
    # --- deliveries ------------------------------------------------------------------------

    async def test_a_settled_delivery_is_written_once_with_its_outcome_event(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        d = delivery("k-1")

        states, written = await repo.claim([d], NOW, {d.key: sent(d)})
        again, rewritten = await repo.claim([d], NOW, {d.key: sent(d)})

        assert (states, written) == ({"k-1": "sent"}, {"k-1"})
        assert (again, rewritten) == ({"k-1": "sent"}, set())
        assert [event.id for _, event in await harness.pending()] == ["delivered-k-1"]

    async def test_only_the_deliveries_chosen_for_writing_are_written_pending(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        later, now = delivery("k-later"), delivery("k-now")

        states, written = await repo.claim([later, now], NOW, write={later.key})

        assert states == {"k-later": "pending", "k-now": "pending"}
        assert written == {"k-later"}
        assert await repo.states(["k-later", "k-now"]) == {"k-later": "pending"}
        assert await harness.pending() == []

    async def test_a_redelivered_delivery_is_found_in_its_final_state_and_not_written_again(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        d = delivery("k-1")
        assert await repo.claim([d], NOW, write=set()) == ({"k-1": "pending"}, set())
        await repo.finish([sent(d)], NOW)  # its first write, once the channel took it

        states, written = await repo.claim([d], NOW)  # the event, delivered again

        assert (states, written) == ({"k-1": "sent"}, set())
        [record] = await repo.for_ticket("T-1")
        assert (record.key, record.state, record.message_key) == ("k-1", "sent", "k-1")
        assert (record.channel, record.recipient_kind, record.template) == (
            "email",
            "requester",
            "agent_reply",
        )
        assert [event.id for _, event in await harness.pending()] == ["delivered-k-1"]

    async def test_a_failed_delivery_keeps_its_error_and_is_counted(self, harness: Harness) -> None:
        repo = harness.repository
        d = delivery("k-1")
        failure = Outcome(
            d.key,
            "failed",
            "address_bouncing: the address bounced",
            events=[told(d, error="address_bouncing")],
            message_key=d.key,
            delivery=d,
        )

        await repo.finish([failure, sent(delivery("k-2"))], NOW)

        assert await repo.failed_count() == 1
        records = {r.key: r for r in await repo.for_ticket("T-1")}
        assert records["k-1"].error == "address_bouncing: the address bounced"
        assert records["k-2"].state == "sent"
        assert records["k-2"].error is None
        pending = sorted(event.id for _, event in await harness.pending())
        assert pending == ["delivered-k-2", "failed-k-1"]

    async def test_an_outcome_without_its_delivery_only_updates_an_existing_record(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        unknown = delivery("k-unknown")

        await repo.finish([sent(unknown, with_record=False)], NOW)

        assert await repo.states(["k-unknown"]) == {}
        assert await repo.for_ticket("T-1") == []
        assert await harness.pending() == []

    async def test_deliveries_are_listed_by_ticket(self, harness: Harness) -> None:
        repo = harness.repository
        await repo.claim([delivery("k-1"), delivery("k-2", "T-2"), delivery("k-3")], NOW)

        assert [r.key for r in await repo.for_ticket("T-1")] == ["k-1", "k-3"]
        assert [r.key for r in await repo.for_ticket("T-9")] == []

    # --- digests ---------------------------------------------------------------------------

    async def test_a_queued_item_joins_its_digest_once_and_its_delivery_becomes_queued(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        first, second = delivery("k-1"), delivery("k-2")
        await repo.claim([first, second], NOW)

        await repo.queue([queued(first), queued(second)], NOW)
        await repo.queue([queued(first)], NOW)  # a redelivered event

        _, held = await repo.claim_due_digests(NOW, "me", LEASE, 10)
        [digest] = held
        assert (digest.id, digest.kind, digest.ticket_id) == ("digest-1", "digest", "T-1")
        assert digest.recipient == EMAIL
        assert digest.items == (queued(first).item, queued(second).item)
        assert digest.attempts == 0
        assert digest.due_at == NOW
        assert await repo.states(["k-1", "k-2"]) == {"k-1": "queued", "k-2": "queued"}
        assert {r.digest_id for r in await repo.for_ticket("T-1")} == {"digest-1"}

    async def test_a_final_delivery_stays_final_when_queued_again(self, harness: Harness) -> None:
        repo = harness.repository
        d = delivery("k-1")
        await repo.claim([d], NOW)
        await repo.finish([sent(d)], NOW)

        await repo.queue([queued(d)], NOW)

        assert await repo.states(["k-1"]) == {"k-1": "sent"}

    async def test_a_due_digest_is_leased_to_one_holder_only(self, harness: Harness) -> None:
        repo = harness.repository
        await repo.queue([queued(delivery("k-1"))], NOW)

        token, mine = await repo.claim_due_digests(NOW, "first", LEASE, 10)
        _, theirs = await repo.claim_due_digests(NOW + LEASE / 2, "second", LEASE, 10)

        assert [d.id for d in mine] == ["digest-1"]
        assert (mine[0].lease_owner, mine[0].lease_token) == ("first", token)
        assert mine[0].lease_until == NOW + LEASE
        assert theirs == []

    async def test_a_lease_that_ran_out_is_taken_over_and_the_old_holder_changes_nothing(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        await repo.queue([queued(delivery("k-1"))], NOW)
        old, _ = await repo.claim_due_digests(NOW, "dead", LEASE, 10)
        later = NOW + LEASE
        new, taken_over = await repo.claim_due_digests(later, "alive", LEASE, 10)

        await repo.drop_digest_items("digest-1", old, ["k-1"])
        await repo.digest_attempt_failed("digest-1", old, NOW)

        assert [(d.id, d.lease_owner, d.lease_token) for d in taken_over] == [
            ("digest-1", "alive", new)
        ]
        assert (await repo.claim_due_digests(later, "third", LEASE, 10))[1] == []
        _, once_ended = await repo.claim_due_digests(later + LEASE, "third", LEASE, 10)
        [digest] = once_ended
        assert [i.key for i in digest.items] == ["k-1"]  # the old holder dropped nothing
        assert (digest.attempts, digest.due_at) == (0, NOW)  # nor counted an attempt

    async def test_a_handled_digest_goes_once_its_holder_drops_every_item(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        await repo.queue([queued(delivery("k-1")), queued(delivery("k-2"))], NOW)
        token, _ = await repo.claim_due_digests(NOW, "me", LEASE, 10)

        await repo.drop_digest_items("digest-1", token, ["k-1"])
        token, [rest] = await repo.claim_due_digests(NOW, "me", LEASE, 10)  # lease ended
        await repo.drop_digest_items("digest-1", token, ["k-2"])

        assert [i.key for i in rest.items] == ["k-2"]
        assert (await repo.claim_due_digests(NOW + 2 * LEASE, "me", LEASE, 10))[1] == []

    async def test_a_failed_attempt_is_counted_and_retried_from_its_new_time(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        await repo.queue([queued(delivery("k-1"))], NOW)
        token, _ = await repo.claim_due_digests(NOW, "me", LEASE, 10)
        retry_at = NOW + timedelta(seconds=5)

        await repo.digest_attempt_failed("digest-1", token, retry_at)

        assert (await repo.claim_due_digests(NOW, "other", LEASE, 10))[1] == []
        _, [again] = await repo.claim_due_digests(retry_at, "other", LEASE, 10)
        assert (again.attempts, again.due_at, again.lease_owner) == (1, retry_at, "other")

    async def test_due_digests_are_leased_soonest_first_up_to_the_limit(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        await repo.queue(
            [
                queued(delivery("k-1"), "digest-late", due_at=NOW),
                queued(delivery("k-2"), "digest-early", due_at=NOW - timedelta(minutes=2)),
                queued(delivery("k-3"), "digest-middle", due_at=NOW - timedelta(minutes=1)),
                queued(delivery("k-4"), "digest-future", due_at=NOW + timedelta(minutes=1)),
            ],
            NOW,
        )

        _, first = await repo.claim_due_digests(NOW, "me", LEASE, 2)
        _, rest = await repo.claim_due_digests(NOW, "me", LEASE, 10)

        assert [d.id for d in first] == ["digest-early", "digest-middle"]
        assert [d.id for d in rest] == ["digest-late"]

    async def test_held_acknowledgements_of_a_ticket_become_due_when_released(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        later = NOW + timedelta(minutes=5)
        await repo.queue(
            [
                queued(delivery("k-ack"), "wait-1", due_at=later, kind="sla_wait"),
                queued(delivery("k-reply"), "digest-1", due_at=later),
                queued(delivery("k-other", "T-2"), "wait-2", due_at=later, kind="sla_wait"),
            ],
            NOW,
        )

        released = await repo.release_sla_waits(["T-1", "T-1", "T-3"], NOW)

        assert released == 1
        _, due = await repo.claim_due_digests(NOW, "me", LEASE, 10)
        assert [(d.id, d.kind) for d in due] == [("wait-1", "sla_wait")]
        assert await repo.release_sla_waits([], NOW) == 0

    # --- inbox -----------------------------------------------------------------------------

    async def test_an_inbox_item_is_stored_once_and_a_second_insert_keeps_the_first(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        first = inbox_item("i-1")

        await repo.add_inbox([first])
        await repo.add_inbox([InboxItem("i-1", "u-42", "T-1", "agent_reply", "Again", "x", NOW)])

        assert await repo.inbox_item("u-42", "i-1") == first

    async def test_another_requesters_inbox_item_is_not_found(self, harness: Harness) -> None:
        repo = harness.repository
        await repo.add_inbox([inbox_item("i-1", "u-42")])

        assert await repo.inbox_item("u-7", "i-1") is None
        assert await repo.mark_read("u-7", "i-1", NOW) is None
        assert await repo.inbox_page("u-7", unread_only=False, limit=10) == []
        assert await repo.inbox_since("u-7", NOW - timedelta(days=1)) == []
        owned = await repo.inbox_item("u-42", "i-1")
        assert owned is not None
        assert owned.read_at is None  # the other requester's attempt did not mark it

    async def test_marking_read_keeps_the_first_read_time(self, harness: Harness) -> None:
        repo = harness.repository
        await repo.add_inbox([inbox_item("i-1")])
        first, second = NOW + timedelta(minutes=1), NOW + timedelta(minutes=2)

        read = await repo.mark_read("u-42", "i-1", first)
        again = await repo.mark_read("u-42", "i-1", second)

        assert read is not None
        assert again is not None
        assert read.read_at == again.read_at == first
        assert (await repo.inbox_item("u-42", "i-1")) == read
        assert await repo.mark_read("u-42", "i-unknown", NOW) is None

    async def test_the_inbox_page_is_newest_first_and_can_leave_out_what_was_read(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        await repo.add_inbox(
            [inbox_item(f"i-{n}", at=NOW + timedelta(minutes=n)) for n in range(4)]
            + [inbox_item("i-mine-not", "u-7")]
        )
        await repo.mark_read("u-42", "i-3", NOW)

        page = await repo.inbox_page("u-42", unread_only=False, limit=3)
        unread = await repo.inbox_page("u-42", unread_only=True, limit=10)

        assert [i.id for i in page] == ["i-3", "i-2", "i-1"]
        assert [i.id for i in unread] == ["i-2", "i-1", "i-0"]

    async def test_inbox_items_since_a_time_come_oldest_first(self, harness: Harness) -> None:
        repo = harness.repository
        await repo.add_inbox(
            [inbox_item(f"i-{n}", at=NOW + timedelta(minutes=n)) for n in (2, 0, 1, 3)]
        )

        since = await repo.inbox_since("u-42", NOW + timedelta(minutes=1))

        assert [i.id for i in since] == ["i-1", "i-2", "i-3"]
        assert since[0].created_at == NOW + timedelta(minutes=1)

    # --- ticket facts and preferences ------------------------------------------------------

    async def test_ticket_facts_keep_what_a_later_event_did_not_say(self, harness: Harness) -> None:
        repo = harness.repository
        due = NOW + timedelta(hours=1)
        await repo.record_facts(
            [FactUpdate("T-1", group="payments", category="withdrawal_delay", number=482913)], NOW
        )

        await repo.record_facts([FactUpdate("T-1", first_reply_due=due), FactUpdate("T-2")], NOW)

        facts = await repo.ticket_facts(["T-1", "T-2", "T-9"])
        assert set(facts) == {"T-1"}  # an update that says nothing writes nothing
        t = facts["T-1"]
        assert (t.group, t.category, t.number, t.first_reply_due) == (
            "payments",
            "withdrawal_delay",
            482913,
            due,
        )
        assert t.requester is None

    async def test_only_the_first_ticket_creation_names_who_is_mailed(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        li = Requester("u-42", "li.wei@example.com", "zh-CN", "Asia/Shanghai")
        forger = Requester("u-9", "attacker@example.net")

        await repo.record_facts(
            [FactUpdate("T-1", group="payments")],
            NOW,
            first=[
                FirstFacts("T-1", li, "提现未到账", "ev-1"),
                FirstFacts("T-1", forger, "Verify your wallet", "ev-2"),  # same batch, later
            ],
        )
        await repo.record_facts([], NOW, first=[FirstFacts("T-1", forger, "Again", "ev-3")])
        await repo.record_facts([], NOW, first=[FirstFacts("T-2", forger, "Own", "ev-4")])

        facts = await repo.ticket_facts(["T-1", "T-2"])
        assert facts["T-1"].requester == li
        assert (facts["T-1"].subject, facts["T-1"].created_by) == ("提现未到账", "ev-1")
        assert facts["T-1"].group == "payments"
        assert facts["T-2"].requester == forger  # a ticket with no owner yet takes its first

    async def test_preferences_are_replaced_and_unknown_requesters_have_none(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        await repo.put_preferences(
            "u-42", Preferences({"email": frozenset({Category.surveys, Category.progress})}), NOW
        )
        await repo.put_preferences(
            "u-42", Preferences({"webhook": frozenset({Category.replies})}), NOW
        )

        mine = await repo.get_preferences("u-42")
        assert mine.opt_out == {"webhook": frozenset({Category.replies})}
        assert await repo.get_preferences("u-9") == Preferences()
        assert await repo.preferences_of(["u-42", "u-9"]) == {"u-42": mine}

    # --- bouncing addresses ----------------------------------------------------------------

    async def test_a_bouncing_address_is_found_in_any_case_until_its_time(
        self, harness: Harness
    ) -> None:
        repo = harness.repository
        until = NOW + timedelta(days=1)

        await repo.mark_bouncing([bounce("Li.Wei@Example.COM")], NOW, until)

        found = await repo.bouncing_among(["li.wei@example.com", "ok@example.com"], NOW)
        assert found == {"li.wei@example.com": until}
        assert await repo.bouncing_among(["LI.WEI@EXAMPLE.COM"], NOW) == found
        assert await repo.bouncing_among(["li.wei@example.com"], until) == {}
        assert await repo.bouncing_among([], NOW) == {}
        assert await repo.bouncing_count(NOW) == 1
        assert await repo.bouncing_count(until) == 0

    async def test_a_later_bounce_moves_the_end_on(self, harness: Harness) -> None:
        repo = harness.repository
        first_until, later_until = NOW + timedelta(hours=1), NOW + timedelta(hours=3)
        await repo.mark_bouncing([bounce("li.wei@example.com")], NOW, first_until)

        await repo.mark_bouncing(
            [bounce("LI.WEI@example.com", "b-2")], NOW + timedelta(hours=2), later_until
        )

        assert await repo.bouncing_among(["li.wei@example.com"], first_until) == {
            "li.wei@example.com": later_until
        }
        assert await repo.bouncing_count(NOW) == 1
