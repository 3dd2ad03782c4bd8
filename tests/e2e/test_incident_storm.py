"""An incident storm on the real stack (every service a process): 2,000 tickets about a stuck
TRC20 USDT withdrawal and 200 unrelated ones, opened by signed commands; an incident declared
by command links exactly the storm (and the tickets that arrive after it); one update reaches
each linked requester once, answering their clocks before next-reply breaches; resolving
solves every linked ticket and sends its survey; the unrelated tickets are left alone.

Each phase's duration is printed (`pytest -s` shows them). NOT within the 6 minutes aimed
for: on the 2-core machine, with other test runs keeping the load at 7-9, the run took
853 s (open 2,200: 112 s; declare and link 2,000: 211 s; one update to 1,800 requesters:
181 s; resolve 2,050: 281 s). Profiles put the time in SecantusDB (one Python process that
every service shares, 55-75 % of a core, most of it per-document updates); operations
queued behind others exceed the driver's 5 s timeout and are retried, which is why
incident writes go 100 tickets per round trip and a retried update fan-out resumes.
The numbers are not shrunk."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.intake.incident_service import incident_id_for
from shared.command_signing import sign_headers
from shared.commands import command_envelope
from shared.ids import new_id
from shared.infra.mailcatcher import MailCatcher
from shared.infra.modes import Infra
from shared.topics import Topics
from tests.e2e.conftest import API_KEY
from tests.support import Tap, eventually

STORM = 2000  # tickets about the stuck withdrawal before the incident
TWICE = 200  # storm requesters who opened two tickets (so 1,800 requesters)
LATE = 50  # storm tickets opened after the incident was declared
UNRELATED = 200  # before the incident, and 20 more after
FOLLOW_UPS = 100  # linked requesters who write again ("any news?")
POLICY = Path(__file__).with_name("incident_storm_sla.yaml")
UPDATE_SUBJECTS = ("Update on a known issue", "已知问题进展")

# Not in `make test`: run alone with `make storm`. Its load on the session's one database
# made other tests' services time out at start when both ran in the same CI run.
pytestmark = [pytest.mark.storm, pytest.mark.timeout(1800)]


def envelope(
    ctype: str, subject: str, data: dict[str, Any], command_id: str | None = None
) -> bytes:
    return command_envelope(
        ctype, subject, data, source="/exchange/withdrawals", command_id=command_id
    )


def storm_ticket(n: int, uid: str) -> bytes:
    """Requester `n % (STORM - TWICE)`: the first TWICE requesters open two tickets."""
    who = n % (STORM - TWICE)
    zh = who % 2 == 0
    body = {
        "requester": {
            "id": f"s{uid}-{who}",
            "email": f"s{who}-{uid}@example.com",
            "locale": "zh-CN" if zh else "en",
        },
        "channel": "app",
        "category": "withdrawal_delay",
        "subject": "USDT 提现卡住" if zh else "USDT withdrawal stuck",
        "description": "我的 TRC20 USDT 提现两小时还没到账"
        if zh
        else "My TRC20 USDT withdrawal is pending for 2 hours",
        "crypto": {"asset": "USDT", "network": "TRC20", "amount": str(100 + n)},
    }
    return envelope("helpstream.ticket.open", f"W-{uid}-{n}", body)


def unrelated_ticket(n: int, uid: str) -> bytes:
    """Same asset and network but a missing deposit, or a KYC question: not the incident's."""
    deposit = n % 2 == 0
    body = {
        "requester": {"id": f"u{uid}-{n}", "email": f"u{n}-{uid}@example.com", "locale": "en"},
        "channel": "web",
        "category": "deposit_missing" if deposit else "kyc",
        "subject": "USDT deposit not credited" if deposit else "KYC review takes long",
        "description": "My TRC20 USDT deposit is not credited" if deposit else "Still in review",
        **({"crypto": {"asset": "USDT", "network": "TRC20"}} if deposit else {}),
    }
    return envelope("helpstream.ticket.open", f"U-{uid}-{n}", body)


async def send_signed(bootstrap: str, topic: str, values: list[bytes], batch: int = 500) -> None:
    """As a platform service does: each command signed with its key, sent in batches."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for start in range(0, len(values), batch):
            sent = [
                await producer.send(
                    topic,
                    value,
                    key=new_id().encode(),
                    headers=sign_headers(API_KEY, value, datetime.now(UTC)),
                )
                for value in values[start : start + batch]
            ]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()


class Events:
    """Every event on a topic so far, parsed once, with counts by type."""

    def __init__(self, tap: Tap) -> None:
        self.tap = tap
        self.items: list[dict[str, Any]] = []

    async def read(self) -> list[dict[str, Any]]:
        await self.tap.collect(len(self.tap.records) + 1, timeout=0.3)
        for record in self.tap.records[len(self.items) :]:
            self.items.append(json.loads(record.value))
        return self.items

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.items if e["type"] == f"helpstream.{kind}"]

    async def until(self, kind: str, count: int, timeout: float) -> list[dict[str, Any]]:
        async def enough() -> list[dict[str, Any]]:
            await self.read()
            found = self.of(kind)
            return found if len(found) >= count else []

        return await eventually(enough, timeout=timeout, interval=0.5)


def update_mails(mail: MailCatcher) -> Counter[str]:
    return Counter(
        rcpt
        for m in list(mail.messages)
        if any(s in m.subject for s in UPDATE_SUBJECTS)
        for rcpt in m.rcpt_tos
    )


class Phases:
    def __init__(self) -> None:
        self.start = self.last = time.monotonic()
        self.took: dict[str, float] = {}

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.took[name] = now - self.last
        self.last = now
        print(f"[incident storm] {name}: {self.took[name]:.1f} s", flush=True)


@pytest.mark.parametrize("services", [{"HELPSTREAM_SLA_POLICIES": str(POLICY)}], indirect=True)
async def test_an_incident_storm_is_linked_told_once_and_resolved_without_touching_the_rest(
    services: dict[str, str], infra: Infra, uid: str, mail: MailCatcher
) -> None:
    topics = Topics(f"t{uid}.")
    bootstrap = infra.kafka_bootstrap
    phases = Phases()
    async with (
        Tap(bootstrap, topics.tickets) as tickets_tap,
        Tap(bootstrap, topics.sla) as sla_tap,
        Tap(bootstrap, topics.feedback) as feedback_tap,
    ):
        tickets, sla, feedback = Events(tickets_tap), Events(sla_tap), Events(feedback_tap)

        storm = [storm_ticket(n, uid) for n in range(STORM)]
        other = [unrelated_ticket(n, uid) for n in range(UNRELATED)]
        await send_signed(
            bootstrap,
            topics.commands,
            [v for pair in zip(storm[:UNRELATED], other, strict=True) for v in pair]
            + storm[UNRELATED:],
        )
        await tickets.until("ticket.created", STORM + UNRELATED, timeout=600)
        phases.done(f"open {STORM + UNRELATED} tickets by command")

        declare_id = new_id()
        incident = incident_id_for(declare_id)
        declaration = {
            "title": {"en": "TRC20 USDT withdrawals delayed", "zh-CN": "TRC20 USDT 提现延迟"},
            "scope": {"category": "withdrawal_delay", "asset": "USDT", "network": "trc20"},
            "status_text": {"en": "We are on it.", "zh-CN": "我们正在处理。"},
        }
        await send_signed(
            bootstrap,
            topics.commands,
            [envelope("helpstream.incident.declare", f"ops-{uid}", declaration, declare_id)],
        )
        linked_events = await tickets.until("ticket.linked_to_incident", STORM, timeout=300)
        phases.done(f"declare and link {STORM}")

        late = [storm_ticket(STORM + n, uid) for n in range(LATE)]
        late_other = [unrelated_ticket(UNRELATED + n, uid) for n in range(20)]
        await send_signed(bootstrap, topics.commands, late + late_other)
        linked_events = await tickets.until("ticket.linked_to_incident", STORM + LATE, timeout=120)
        await tickets.until("ticket.created", STORM + UNRELATED + LATE + 20, timeout=120)
        phases.done(f"open and link {LATE} more")

        created = {e["subject"]: e["data"] for e in tickets.of("ticket.created")}
        storm_ids = {t for t, d in created.items() if d["requester"]["id"].startswith(f"s{uid}-")}
        other_ids = set(created) - storm_ids
        linked = {e["subject"] for e in linked_events}
        assert linked == storm_ids  # exactly the storm, before and after the declaration
        assert len(linked_events) == STORM + LATE  # each linked once
        assert {e["data"]["incident_id"] for e in linked_events} == {incident}

        asking = sorted(linked)[:FOLLOW_UPS]
        await send_signed(
            bootstrap,
            topics.commands,
            [
                envelope(
                    "helpstream.ticket.add_message",
                    t,
                    {"author": "requester", "body": "Any news? 有进展吗？"},
                )
                for t in asking
            ],
        )

        async def asked() -> bool:
            await sla.read()
            started = {
                e["subject"] for e in sla.of("sla.applied") if e["data"]["metric"] == "next_reply"
            }
            return set(asking) <= started

        await eventually(asked, timeout=120, interval=0.5)
        phases.done(f"{FOLLOW_UPS} requesters write again (next-reply clocks run)")

        requesters = {created[t]["requester"]["email"] for t in linked}
        posted = time.monotonic()
        update = {
            "text": {
                "en": "TRC20 USDT withdrawals resume at 14:00 UTC.",
                "zh-CN": "TRC20 USDT 提现将于 UTC 14:00 恢复。",
            }
        }
        await send_signed(
            bootstrap, topics.commands, [envelope("helpstream.incident.update", incident, update)]
        )

        async def everyone_told() -> bool:
            return set(update_mails(mail)) >= requesters

        await eventually(everyone_told, timeout=300, interval=0.5)
        told_s = time.monotonic() - posted
        phases.done(f"one update to {len(requesters)} requesters ({len(linked)} tickets)")
        await tickets.until("ticket.incident_update", len(linked), timeout=60)
        await asyncio.sleep(3)  # a second mail to anyone would arrive by now
        per_requester = update_mails(mail)
        assert set(per_requester) == requesters
        assert set(per_requester.values()) == {1}  # once each, two tickets or one
        updates = tickets.of("ticket.incident_update")
        assert {e["subject"] for e in updates} == linked
        zh = [e for e in updates if created[e["subject"]]["requester"]["locale"] == "zh-CN"]
        assert zh
        assert all("恢复" in e["data"]["body"] for e in zh)

        async def answered() -> bool:
            await sla.read()
            fulfilled = {
                e["subject"] for e in sla.of("sla.fulfilled") if e["data"]["metric"] == "next_reply"
            }
            return set(asking) <= fulfilled

        await eventually(answered, timeout=120, interval=0.5)
        phases.done("the update answers every waiting next-reply clock")

        resolution = {
            "text": {
                "en": "Withdrawals are processed again. Thank you for your patience.",
                "zh-CN": "提现已恢复处理，感谢您的耐心。",
            },
            "ticket_status": "solved",
        }
        await send_signed(
            bootstrap,
            topics.commands,
            [envelope("helpstream.incident.resolve", incident, resolution)],
        )

        async def all_solved() -> list[dict[str, Any]]:
            await tickets.read()
            solved = [
                e
                for e in tickets.of("ticket.status_changed")
                if e["data"]["new"] == "solved" and e["data"].get("incident_id") == incident
            ]
            return solved if {e["subject"] for e in solved} >= linked else []

        solved = await eventually(all_solved, timeout=300, interval=0.5)
        phases.done(f"resolve: {len(linked)} tickets solved")
        surveys = await feedback.until("feedback.requested", len(linked), timeout=300)
        phases.done(f"surveys for {len(linked)} tickets")

        assert {e["subject"] for e in solved} == linked
        assert {e["data"]["ticket_id"] for e in surveys} == linked

        await tickets.read()
        await sla.read()
        touched = {
            e["subject"]
            for kind in (
                "ticket.linked_to_incident",
                "ticket.incident_update",
                "ticket.status_changed",
                "ticket.message_added",
            )
            for e in tickets.of(kind)
        }
        assert not touched & other_ids  # the unrelated tickets are untouched
        assert not {e["data"]["ticket_id"] for e in feedback.of("feedback.requested")} & other_ids
        breached = [
            e
            for e in sla.of("sla.breached")
            if e["subject"] in linked and e["data"]["metric"] in ("next_reply", "first_reply")
        ]
        assert breached == []
        paused = {
            e["subject"] for e in sla.of("sla.paused") if e["data"].get("incident_id") == incident
        }
        assert paused == linked  # resolution followed the incident, and the history says so

        async with httpx.AsyncClient(base_url=services["intake"], timeout=10) as http:
            auth = {"Authorization": f"Bearer {API_KEY}"}
            found = (await http.get(f"/v1/incidents/{incident}", headers=auth)).json()
            assert found["linked"] == len(linked)
            sample = (await http.get(f"/v1/tickets/{sorted(other_ids)[0]}", headers=auth)).json()
            assert sample["status"] in ("new", "open")

    total = time.monotonic() - phases.start
    print(
        f"[incident storm] total {total:.1f} s; update to last requester told {told_s:.1f} s "
        f"({len(requesters) / told_s:.0f} requesters/s)",
        flush=True,
    )
