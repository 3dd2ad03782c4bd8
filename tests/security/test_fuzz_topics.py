"""Fuzzing: 10,000 generated messages on each input topic, and afterwards every
consumer of the five services is ready with no lag.

The messages mix what reaches a topic by accident or on purpose: random bytes, broken
JSON, JSON that is no envelope, envelopes of unknown types, valid envelopes whose `data`
carries hostile values (control and bidi characters, `ü@[`-style addresses, wrong types
deep inside, numbers too large for any field, a few 1 MB strings), events from a source
that does not own the topic, and a share of valid events and commands from the owner,
some of them with hostile-but-allowed text (those create tickets and send mail). Commands
that look like commands are signed with the bootstrap key; the rest are not.

Generation is seeded (`random.Random(SEED)`), so a failure replays the same messages. The
services run as processes on the session's broker and MongoDB; lag and readiness are read
from their /metrics and /readyz, as an operator would.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaProducer

from shared.command_signing import sign_headers
from shared.commands import COMMAND_MODELS
from shared.events import (
    EVENT_MODELS,
    Contract,
    NotificationDelivered,
    NotificationRequesterErased,
    SlaApplied,
    SlaBreached,
    SlaWarning,
    Status,
    TicketCreated,
    make_event,
)
from shared.infra import local_secrets
from shared.infra.processes import ManagedProcess, free_port
from shared.infra.services import EVERY_SERVICE, service_process
from shared.topics import OWNERS, Topics
from tests.faults.harness import metric_sum
from tests.integration.intake.conftest import ticket_body
from tests.integration.notifier.builders import created, rated, reply, sla, status, survey
from tests.support import consumers_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from shared.infra.mailcatcher import MailCatcher
    from shared.infra.modes import Infra

SEED = 14
PER_TOPIC = 10_000
HUGE_PER_TOPIC = 5  # 1 MB strings: few, the broker's message size applies
DRAIN_S = 240.0
API_KEY = "hs_fuzz_0123456789abcdefghijklmnopqrstuvwxyz"

Message = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]  # key, value, headers

# --- hostile values -------------------------------------------------------------------------

HOSTILE_TEXT = [
    "ü@[",
    "a\x00b",
    "\u202eevil\u202c",
    "\ud800lone surrogate",
    "line\r\nBcc: victim@example.com",
    "\x1b[31mred\x1b[0m",
    "😀" * 40,
    "{{ 7 * 7 }}{% raw %}",
    "${jndi:ldap://x.example/a}",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "../../etc/passwd",
    "%s%n%x",
    "\ufeff\u200b\u2028\u2029",
    "ａｂｃ　全角",
    "",
    " " * 300,
    "x" * 5000,
]
HOSTILE_EMAILS = [
    "ü@[",
    "a\x00@example.com",
    "\u202e@example.com",
    "x@[127.0.0.1]",
    "a b@example.com",
    "a@b\r\nBcc: victim@example.com",
    '"quoted"@example.com',
    "x" * 300 + "@example.com",
    "@",
    "a@-x.com",
    "ü@example.com",
    "李伟@例子.cn",
    "user@xn--.com",
    "user@localhost",
]
WRONG_TYPES: list[Any] = [
    None,
    0,
    -1,
    10**30,
    1e308,
    -1e308,
    True,
    [],
    {},
    [[[[]]]],
    "NaN",
    {"$gt": ""},
    {"$where": "sleep(1000)"},
    "2024-13-45T99:99:99Z",
    1.5,
    ["a", 1, None],
]
GOOD_EMAILS = ["li.wei@example.com", "李伟@例子.cn", "amir@example.com", "Ünïcode@Example.COM"]


def hostile(rng: random.Random) -> Any:
    pool = rng.choice((HOSTILE_TEXT, HOSTILE_EMAILS, WRONG_TYPES))
    return copy.deepcopy(rng.choice(pool))  # never the shared list or dict itself


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document a value can be put (dict keys, list indexes)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((*prefix, key))
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.append((*prefix, index))
            found += paths(value, (*prefix, index))
    return found


def put(document: Any, path: tuple[Any, ...], value: Any) -> None:
    """Sets `value` at `path`, unless an earlier change replaced what the path goes through."""
    node = document
    try:
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
    except (KeyError, IndexError, TypeError):
        return


# --- one topic's messages -------------------------------------------------------------------


@dataclass
class TopicPlan:
    """What goes on one input topic: event (or command) types, valid data, their owner."""

    topic: str
    types: list[str]
    templates: dict[str, Any]  # type → valid `data` (JSON form)
    valid: Callable[[random.Random, int], bytes]  # a valid event or command
    owner: str
    signed: bool = False
    sent: dict[str, int] = field(default_factory=dict)


def envelope(kind: str, data: Any, source: str, subject: str, **fields: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"fz-{random.getrandbits(64):016x}",
        "source": source,
        "type": kind,
        "subject": subject,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "dataschemaversion": 1,
        "correlationid": "fuzz",
        "data": data,
        **fields,
    }


def dumps(document: Any, *, ascii_only: bool = False) -> bytes:
    """JSON as producers write it: escaped (`\\ud800` stays a valid escape) or raw UTF-8
    (a lone surrogate becomes bytes no UTF-8 decoder takes)."""
    text = json.dumps(document, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


def generate(plan: TopicPlan, rng: random.Random) -> list[Message]:
    """PER_TOPIC messages for one topic (HUGE_PER_TOPIC of them about 1 MB), shuffled."""
    out: list[tuple[str, bytes | None]] = []
    template_paths = {kind: paths(data) for kind, data in plan.templates.items()}
    kinds = [
        ("random_bytes", 15),
        ("broken_json", 10),
        ("json_not_an_event", 5),
        ("hostile_data", 35),
        ("hostile_envelope", 10),
        ("unknown_type", 5),
        ("huge_number", 4),
        ("valid", 2),  # each may cascade (ticket, SLA clocks, mails): a few hundred do
        ("wrong_source", 4),
        ("empty", 2),
    ]
    names = [k for k, _ in kinds]
    weights = [w for _, w in kinds]
    for n in range(PER_TOPIC - HUGE_PER_TOPIC):
        kind = rng.choices(names, weights)[0]
        subject = f"T-fz-{rng.randrange(200)}"
        if kind == "random_bytes":
            value: bytes | None = rng.randbytes(rng.randrange(1, 400))
        elif kind == "broken_json":
            whole = dumps(envelope(rng.choice(plan.types), {}, plan.owner, subject))
            value = whole[: rng.randrange(1, len(whole))]
        elif kind == "json_not_an_event":
            value = dumps(rng.choice([[1, 2], "text", 3, None, {"a": {"b": []}}, hostile(rng)]))
        elif kind == "hostile_data":
            chosen = rng.choice(plan.types)
            data = json.loads(json.dumps(plan.templates[chosen]))
            for path in rng.sample(template_paths[chosen], min(3, len(template_paths[chosen]))):
                put(data, path, hostile(rng))
            doc = envelope(chosen, data, plan.owner, subject)
            value = dumps(doc, ascii_only=rng.random() < 0.5)
        elif kind == "hostile_envelope":
            chosen = rng.choice(plan.types)
            doc = envelope(chosen, plan.templates[chosen], plan.owner, subject)
            doc[rng.choice(list(doc))] = hostile(rng)
            value = dumps(doc, ascii_only=rng.random() < 0.5)
        elif kind == "unknown_type":
            value = dumps(envelope(f"x.{rng.choice(HOSTILE_TEXT)}", {}, plan.owner, subject))
        elif kind == "huge_number":
            chosen = rng.choice(plan.types)
            doc = envelope(chosen, plan.templates[chosen], plan.owner, subject)
            text = dumps(doc).decode()
            big = rng.choice(["1" + "0" * 5000, "1e999", "-1e999", str(2**64), "1" * 400])
            value = text.replace('"dataschemaversion": 1', f'"dataschemaversion": {big}').encode()
        elif kind == "valid":
            value = plan.valid(rng, n)
        elif kind == "wrong_source":
            chosen = rng.choice(plan.types)
            value = dumps(envelope(chosen, plan.templates[chosen], "/attacker", subject))
        else:
            value = rng.choice([b"", None])
        out.append((kind, value))
    for n in range(HUGE_PER_TOPIC):
        chosen = rng.choice(plan.types)
        data = json.loads(json.dumps(plan.templates[chosen]))
        text_paths = [p for p in template_paths[chosen] if isinstance(_get(data, p), str)]
        put(data, rng.choice(text_paths), "ü" * 500_000 + "\x00\u202e" + "x" * (n * 20_000))
        out.append(("huge", dumps(envelope(chosen, data, plan.owner, f"T-fz-huge-{n}"))))
    rng.shuffle(out)
    messages: list[Message] = []
    for kind, value in out:
        plan.sent[kind] = plan.sent.get(kind, 0) + 1
        key = rng.choice([None, b"k", rng.randbytes(8)]) if value is not None else b"tombstone"
        headers: list[tuple[str, bytes]] = []
        if plan.signed and value is not None and value[:1] == b"{":
            headers = sign_headers(API_KEY, value, datetime.now(UTC))
        if rng.random() < 0.05:
            headers.append((rng.choice(["x-\u202e", "x-trace", ""]), rng.randbytes(16)))
        messages.append((key, value, headers))
    return messages


def _get(document: Any, path: tuple[Any, ...]) -> Any:
    node = document
    for step in path:
        node = node[step]
    return node


def valid_event(source: str, build: Callable[[random.Random, int], Contract]) -> Any:
    def make(rng: random.Random, n: int) -> bytes:
        event = make_event(
            build(rng, n), source=source, time=datetime.now(UTC), correlationid=f"fz-{n}"
        )
        return event.to_bytes()

    return make


ALLOWED_TEXT = [t for t in HOSTILE_TEXT if 0 < len(t) <= 300 and "\ud800" not in t]


def hostile_but_allowed(rng: random.Random) -> str:
    """Text a model accepts (a subject, a message body) that is still unkind to renderers."""
    return rng.choice([*ALLOWED_TEXT, "Withdrawal"])


def ticket_event(rng: random.Random, n: int) -> Contract:
    ticket_id = f"T-fz-{n}"
    roll = rng.random()
    if roll < 0.6:
        event: TicketCreated = created(ticket_id, locale=rng.choice(["en", "zh-CN", "xx"]))
        requester = event.requester.model_copy(
            update={"id": f"u-fz-{n}", "email": rng.choice(GOOD_EMAILS).lower()}
        )
        return event.model_copy(
            update={"requester": requester, "subject": hostile_but_allowed(rng)}
        )
    if roll < 0.8:
        return reply(ticket_id, body=hostile_but_allowed(rng) or "hi")
    return status(ticket_id, rng.choice(list(Status)))


def sla_event(rng: random.Random, n: int) -> Contract:
    ticket_id = f"T-fz-{n}"
    roll = rng.random()
    if roll < 0.4:
        return sla(SlaApplied, ticket_id)  # type: ignore[no-any-return]
    if roll < 0.7:
        return sla(SlaWarning, ticket_id, threshold=0.75)  # type: ignore[no-any-return]
    return sla(SlaBreached, ticket_id, breached_at=datetime.now(UTC))  # type: ignore[no-any-return]


def feedback_event(rng: random.Random, n: int) -> Contract:
    if rng.random() < 0.5:
        return survey(f"T-fz-{n}", locale=rng.choice(["en", "zh-CN"]))
    return rated(f"T-fz-{n}", rng.randint(1, 5))


def notification_event(rng: random.Random, n: int) -> Contract:
    return delivered(f"T-fz-{n}")


def delivered(ticket_id: str) -> NotificationDelivered:
    return NotificationDelivered(
        ticket_id=ticket_id,
        notification_id=f"n-{ticket_id}",
        cause_event_id=f"c-{ticket_id}",
        channel="email",
        template="ticket_created",
        recipient_kind="requester",
    )


def erased(erasure_id: str) -> NotificationRequesterErased:
    return NotificationRequesterErased(
        erasure_id=erasure_id, requester_id="u-fz", service="notifier", counts={"inbox_items": 1}
    )


def open_command(rng: random.Random, n: int) -> bytes:
    body = ticket_body(
        requester={"id": f"u-cmd-{n}", "email": rng.choice(GOOD_EMAILS), "locale": "en"},
        subject=hostile_but_allowed(rng) or "Help",
        description=f"{hostile_but_allowed(rng)} please help" or "help",
    )
    return dumps(envelope("helpstream.ticket.open", body, "/exchange/app", f"W-fz-{n}"))


def plans(topics: Topics) -> list[TopicPlan]:
    def templates(kinds: dict[str, Contract]) -> dict[str, Any]:
        return {k: v.model_dump(mode="json") for k, v in kinds.items()}

    ticket_types = templates(
        {
            "helpstream.ticket.created": created("T-t"),
            "helpstream.ticket.message_added": reply("T-t"),
            "helpstream.ticket.status_changed": status("T-t", Status.solved),
        }
    )
    sla_types = templates(
        {
            "helpstream.sla.applied": sla(SlaApplied, "T-t"),
            "helpstream.sla.breached": sla(SlaBreached, "T-t", breached_at=datetime.now(UTC)),
        }
    )
    notification_types = templates(
        {
            "helpstream.notification.delivered": delivered("T-t"),
            "helpstream.notification.requester_erased": erased("e-t"),
        }
    )
    feedback_types = templates(
        {
            "helpstream.feedback.requested": survey("T-t"),
            "helpstream.feedback.submitted": rated("T-t", 1),
        }
    )
    command_types = {
        "helpstream.ticket.open": ticket_body(),
        "helpstream.ticket.add_message": {"author": "agent", "body": "hello", "public": True},
        "helpstream.ticket.update": {"status": "pending", "priority": "high"},
        "helpstream.ticket.escalate": {"by": "requester", "reason": "slow"},
        "helpstream.ticket.receive_mail": {
            "sender": "li.wei@example.com",
            "subject": "Re: x",
            "body": "hi",
        },
        "helpstream.ticket.solve_by_article": {"article_id": "deposit-not-credited-en"},
        "helpstream.incident.declare": {
            "title": {"en": "TRC20 withdrawals delayed", "zh_cn": "TRC20 提现延迟"},
            "scope": {"asset": "USDT", "network": "TRC20"},
            "status_text": {"en": "We are on it.", "zh_cn": "正在处理。"},
        },
        "helpstream.incident.update": {
            "text": {"en": "Resuming at 14:00 UTC", "zh_cn": "14:00 恢复"}
        },
        "helpstream.incident.resolve": {"text": {"en": "Resolved", "zh_cn": "已恢复"}},
        "helpstream.incident.link_ticket": {"ticket": "T-t"},
    }
    assert set(command_types) == set(COMMAND_MODELS)
    assert all(
        kind in EVENT_MODELS
        for kind in [*ticket_types, *sla_types, *feedback_types, *notification_types]
    )
    return [
        TopicPlan(
            topics.commands,
            list(command_types),
            command_types,
            open_command,
            "/exchange/app",
            signed=True,
        ),
        TopicPlan(
            topics.tickets,
            list(ticket_types),
            ticket_types,
            valid_event(OWNERS["helpstream.tickets"], ticket_event),
            OWNERS["helpstream.tickets"],
        ),
        TopicPlan(
            topics.sla,
            list(sla_types),
            sla_types,
            valid_event(OWNERS["helpstream.sla"], sla_event),
            OWNERS["helpstream.sla"],
        ),
        TopicPlan(
            topics.feedback,
            list(feedback_types),
            feedback_types,
            valid_event(OWNERS["helpstream.feedback"], feedback_event),
            OWNERS["helpstream.feedback"],
        ),
        TopicPlan(  # intake reads notifier's erasure confirmations
            topics.notifications,
            list(notification_types),
            notification_types,
            valid_event(OWNERS["helpstream.notifications"], notification_event),
            OWNERS["helpstream.notifications"],
        ),
    ]


# --- the running system ---------------------------------------------------------------------


@dataclass
class System:
    urls: dict[str, str]
    topics: Topics
    processes: dict[str, ManagedProcess]

    def metrics(self, name: str) -> str:
        with urllib.request.urlopen(f"{self.urls[name]}/metrics", timeout=10) as r:
            return str(r.read().decode())

    def readyz(self, name: str) -> int | str:
        try:
            with urllib.request.urlopen(f"{self.urls[name]}/readyz", timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError as exc:
            return type(exc).__name__


@pytest.fixture
def system(infra: Infra, uid: str, mail: MailCatcher, tmp_path: Path) -> Iterator[System]:
    env = {
        "HELPSTREAM_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
        "HELPSTREAM_MONGO_URL": infra.mongo_url,
        "HELPSTREAM_TOPIC_PREFIX": f"t{uid}.",
        "HELPSTREAM_MONGO_DB_PREFIX": f"t{uid}",
        "HELPSTREAM_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "HELPSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "HELPSTREAM_RETRY_BACKOFF_MAX_S": "1.0",
        "HELPSTREAM_SMTP_PORT": str(mail.port),
        "HELPSTREAM_DIGEST_WINDOW_S": "0",
        "HELPSTREAM_LOG_JSON": "false",
        "HELPSTREAM_LOG_LEVEL": "WARNING",
        "HELPSTREAM_INBOUND_SMTP_PORT": str(free_port()),  # the mail gateway's
    }
    secrets = {**local_secrets.generate(), "bootstrap_api_key": API_KEY}
    started: dict[str, ManagedProcess] = {}
    urls: dict[str, str] = {}
    try:
        for name in EVERY_SERVICE:
            port = free_port()
            process = service_process(name, port, env, tmp_path, secrets=secrets)
            process.start(timeout=60)
            started[name] = process
            urls[name] = f"http://127.0.0.1:{port}"
        yield System(urls, Topics(f"t{uid}."), started)
    finally:
        for process in started.values():
            process.stop()


async def produce_all(bootstrap: str, batches: dict[str, list[Message]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=20,
        max_batch_size=1024 * 1024,
        max_request_size=4 * 1024 * 1024,
        request_timeout_ms=60_000,
    )
    await producer.start()
    try:
        for topic, messages in batches.items():
            for start in range(0, len(messages), 1000):
                futures = [
                    await producer.send(topic, value, key=key, headers=headers)
                    for key, value, headers in messages[start : start + 1000]
                ]
                await asyncio.gather(*futures)
    finally:
        await producer.stop()


@pytest.mark.timeout(480)
async def test_ten_thousand_hostile_messages_per_topic_leave_every_consumer_ready_and_caught_up(
    system: System, infra: Infra
) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    random.seed(SEED)  # envelope ids
    topic_plans = plans(system.topics)
    batches = {plan.topic: generate(plan, rng) for plan in topic_plans}
    generated_s = time.monotonic() - started
    await produce_all(infra.kafka_bootstrap, batches)
    produced_s = time.monotonic() - started - generated_s
    print(f"\n[fuzz] generated in {generated_s:.1f}s, produced in {produced_s:.1f}s")
    for plan in topic_plans:
        print(f"[fuzz]   {plan.topic}: {dict(sorted(plan.sent.items()))}")

    pairs = consumers_of(system.topics)
    # the mail gateway reads helpstream.tickets for erasure requests (its attachments)
    pairs[system.topics.tickets] = [*pairs[system.topics.tickets], ("mail_gateway", "tickets")]

    def state() -> dict[str, Any]:
        """Per service: readiness, lag (None: not reported for every topic yet) and, per
        (consumer, topic), messages taken (applied + dead-lettered)."""
        out: dict[str, Any] = {}
        for name in EVERY_SERVICE:
            text = system.metrics(name)
            lag_lines = [
                line
                for line in text.splitlines()
                if line.startswith("helpstream_kafka_consumer_lag_messages{")
            ]
            taken = {
                (consumer, topic): metric_sum(
                    text,
                    f"helpstream_{name}_consumer_messages_processed_total",
                    consumer=consumer,
                    topic=topic,
                )
                + metric_sum(
                    text,
                    f"helpstream_{name}_consumer_messages_rejected_total",
                    consumer=consumer,
                    topic=topic,
                )
                for topic, readers_of in pairs.items()
                for service, consumer in readers_of
                if service == name
            }
            topics_reported = {
                topic for topic in pairs if any(f'topic="{topic}"' in line for line in lag_lines)
            }
            wanted = {topic for (_, topic) in taken}
            out[name] = {
                "ready": system.readyz(name),
                "lag": metric_sum(text, "helpstream_kafka_consumer_lag_messages")
                if wanted <= topics_reported
                else None,
                "taken": taken,
                "isolations": metric_sum(
                    text, f"helpstream_{name}_consumer_poison_isolations_total"
                ),
            }
        return out

    def settled(now: dict[str, Any]) -> bool:
        return all(
            s["ready"] == 200 and s["lag"] == 0 and all(n >= PER_TOPIC for n in s["taken"].values())
            for s in now.values()
        )

    drain_started = time.monotonic()
    now = await asyncio.to_thread(state)
    progress = drain_started
    while not settled(now) and time.monotonic() - drain_started < DRAIN_S:
        await asyncio.sleep(2)
        now = await asyncio.to_thread(state)
        if time.monotonic() - progress > 15:
            progress = time.monotonic()
            lags = {name: (s["ready"], s["lag"]) for name, s in now.items()}
            print(f"[fuzz]   {progress - drain_started:.0f}s: (ready, lag) {lags}")
    print(f"[fuzz] after {time.monotonic() - drain_started:.0f}s of draining: {now}")
    print(f"[fuzz] whole test {time.monotonic() - started:.0f}s")
    assert all(
        p.process is not None and p.process.poll() is None for p in system.processes.values()
    )
    assert settled(now), now
