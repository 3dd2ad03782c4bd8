"""Secrets put into every input of the running system are kept nowhere.

A requester (and, by mistake, an agent or a platform) pastes seed phrases and private keys
into whatever field is at hand: ticket subject and description, the crypto fields,
attachment names and links, messages, survey comments, ids and headers, a reply by email
(text, subject, sender name, file name, a text file), and commands on Kafka, some of them
too big or malformed, so that they end in a dead-letter queue. The services run as real
processes, logging at DEBUG. When every consumer has caught up, every
collection of every service database, every topic of the run (DLQs included) read from the
beginning, every service log and every mail sent are scanned: none holds a secret, an
8-character piece of a key, or 3 consecutive words of a phrase.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import secrets
import smtplib
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from mnemonic import Mnemonic
from pymongo import MongoClient

from bench.redaction_corpus import b58check
from shared.command_signing import sign_headers
from shared.commands import command_envelope
from shared.redaction import redact
from shared.topics import Topics
from tests.e2e.conftest import API_KEY
from tests.faults.harness import metric_sum
from tests.support import consumers_of, eventually

if TYPE_CHECKING:
    from pathlib import Path

    from shared.infra.mailcatcher import MailCatcher
    from shared.infra.modes import Infra

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def xprv_of(seed: bytes) -> str:
    """A BIP-32 master private key, serialized as wallets export it."""
    digest = hmac.new(b"Bitcoin seed", seed, hashlib.sha512).digest()
    key, chain = digest[:32], digest[32:]
    return b58check(bytes.fromhex("0488ade4") + bytes(9) + chain + b"\x00" + key)


@dataclass(frozen=True)
class Secrets:
    """This run's secrets, each in a wording today's detectors recognise."""

    english: str = field(default_factory=lambda: Mnemonic("english").generate(128))
    chinese: str = field(default_factory=lambda: Mnemonic("chinese_simplified").generate(128))
    hex_key: str = field(default_factory=lambda: secrets.token_hex(32))
    wif: str = field(default_factory=lambda: b58check(b"\x80" + secrets.token_bytes(32) + b"\x01"))
    xprv: str = field(default_factory=lambda: xprv_of(secrets.token_bytes(32)))

    @property
    def chinese_detected(self) -> bool:
        """Whether today's detectors know Chinese phrases: until they do, using one would
        only prove that they do not (it is left out and the run says so)."""
        return redact(f"助记词：{self.chinese}").redacted

    @property
    def texts(self) -> dict[str, str]:
        texts = {
            "english": f"my seed phrase is {self.english}",
            "chinese": f"助记词：{self.chinese}",
            "hex_key": f"private key: {self.hex_key}",
            "wif": f"wif {self.wif}",
            "xprv": f"backup {self.xprv}",
        }
        if not self.chinese_detected:
            del texts["chinese"]
        return texts

    @property
    def short(self) -> str:
        """A secret for a short field (64 characters at most)."""
        return self.texts.get("chinese", self.wif)

    @property
    def all(self) -> str:
        return "\n".join(self.texts.values())

    def needles(self) -> set[str]:
        """What must not appear: 8 characters of a key, 3 consecutive words of a phrase (in
        Chinese with or without the spaces between the characters)."""
        found: set[str] = set()
        for key in (self.hex_key, self.wif, self.xprv):
            found.update(key[i : i + 8] for i in range(len(key) - 7))
        for phrase in (self.english, self.chinese) if self.chinese_detected else (self.english,):
            words = phrase.split()
            for i in range(len(words) - 2):
                found.add(" ".join(words[i : i + 3]))
                if not phrase.isascii():
                    found.add("".join(words[i : i + 3]))
        return found


def leaks(text: str, needles: set[str]) -> list[str]:
    lowered = text.lower()
    return sorted(n for n in needles if n in text or n.lower() in lowered)


def normalized(raw: str) -> str:
    """`raw`, and if it is JSON also re-written unescaped (Chinese as characters, not `\\u`)."""
    try:
        document = json.loads(raw)
    except ValueError:
        return raw
    return raw + "\n" + json.dumps(document, ensure_ascii=False)


def texts_of(node: Any) -> list[str]:
    """Every text in a stored document: keys, values, and bytes (outbox events) decoded."""
    if isinstance(node, str):
        return [normalized(node)]
    if isinstance(node, bytes):
        return [normalized(node.decode("utf-8", "replace"))]
    if isinstance(node, dict):
        return [t for key, value in node.items() for t in [str(key), *texts_of(value)]]
    if isinstance(node, list | tuple):
        return [t for item in node for t in texts_of(item)]
    return [str(node)]


# --- inputs -----------------------------------------------------------------------------


def envelope(kind: str, data: Any, subject: str, **fields: Any) -> bytes:
    """`fields` override the envelope's own (a hostile id, source or correlation id)."""
    return command_envelope(
        kind,
        subject,
        data,
        source=fields.pop("source", "/exchange/app"),
        command_id=f"cmd-{secrets.token_hex(8)}",
        **fields,
    )


def ticket_with_secrets(s: Secrets, n: int, locale: str) -> dict[str, Any]:
    return {
        "requester": {
            "id": f"u-{n} private key {s.hex_key}",
            "email": f"secret.owner{n}@example.com",
            "locale": locale,
        },
        "channel": "web",
        "subject": s.texts["english"],
        "description": f"Please help, my wallet was emptied.\n{s.all}",
        "crypto": {
            "asset": "BTC",
            "network": "BTC",
            "tx_hash": s.wif,
            "address": s.texts["hex_key"],
            "withdrawal_id": s.short,
            "deposit_id": s.wif,
            "amount": "0.5",
        },
        "attachments": [
            {"name": f"{s.texts['english']}.txt", "content_type": "text/plain", "size": 1},
            {
                "name": f"{s.short}.png",
                "content_type": "image/png",
                "size": 2,
                "url": f"https://files.example.com/u?k={s.xprv}&w={s.wif}",
            },
        ],
    }


async def send(bootstrap: str, records: list[tuple[str, bytes, bool]]) -> None:
    """(topic, value, signed) records; signed ones carry the bootstrap key's signature."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=4 * 1024 * 1024
    )
    await producer.start()
    try:
        for topic, value, signed in records:
            headers = sign_headers(API_KEY, value, datetime.now(UTC)) if signed else []
            await producer.send_and_wait(topic, value, key=b"k", headers=headers)
    finally:
        await producer.stop()


def kafka_inputs(s: Secrets, topics: Topics, ticket_id: str) -> list[tuple[str, bytes, bool]]:
    """Signed commands with secrets in every field, an over-size one, unsigned ones, and
    poison on every topic a service reads."""
    agent_message = {
        "author": "agent",
        "author_id": f"agent {s.wif}",
        "body": f"Never share these. You wrote: {s.all}",
        "public": True,
    }
    over_size = dict(ticket_with_secrets(s, 3, "en"), description=s.all + " x" * 12_000 + s.all)
    poison = [
        f"not json {s.all}".encode(),
        json.dumps({"type": "nonsense", "data": s.all}, ensure_ascii=False).encode(),
        (s.all + " " + "y" * 70_000 + s.all).encode(),  # beyond what a DLQ keeps of text
        envelope(
            "helpstream.ticket.created",
            {"ticket_id": ticket_id, "subject": s.all},
            ticket_id,
            source="/attacker",
        ),
    ]
    commands = topics.commands
    return [
        (
            commands,
            envelope("helpstream.ticket.open", ticket_with_secrets(s, 2, "en"), "W-1"),
            True,
        ),
        (
            commands,
            envelope(
                "helpstream.ticket.open",
                ticket_with_secrets(s, 4, "zh-CN"),
                "W-2",
                id=f"id {s.wif}",
                correlationid=s.xprv,
            ),
            True,
        ),
        (commands, envelope("helpstream.ticket.add_message", agent_message, ticket_id), True),
        (
            commands,
            envelope(
                "helpstream.ticket.add_message",
                {"author": "requester", "body": s.all, "public": True},
                ticket_id,
            ),
            True,
        ),
        (
            commands,
            envelope(
                "helpstream.ticket.update",
                {"assignee": f"agent {s.wif}", "group": s.wif},
                ticket_id,
            ),
            True,
        ),
        (
            commands,
            envelope("helpstream.ticket.escalate", {"by": "requester", "reason": s.all}, ticket_id),
            True,
        ),
        (commands, envelope("helpstream.ticket.open", over_size, "W-3"), True),
        (
            commands,
            envelope("helpstream.ticket.open", ticket_with_secrets(s, 5, "en"), "W-4"),
            False,
        ),
        (commands, envelope("helpstream.ticket.add_message", agent_message, s.all), True),
        *[(topic, value, True) for topic in (commands,) for value in poison],
        *[
            (topic, value, False)
            for topic in (topics.tickets, topics.sla, topics.feedback)
            for value in poison
        ],
    ]


def mail_with_secrets(s: Secrets, reply_to: str) -> EmailMessage:
    """A requester's reply by email: secrets in the subject, the sender's name, the text, a
    file name and a text file (wallets export phrases and keys as .txt)."""
    message = EmailMessage()
    message["From"] = f"{s.wif} <li.wei@example.com>"
    message["To"] = reply_to
    message["Subject"] = f"Re: my wallet {s.short}"
    message.set_content(f"Here is everything:\n{s.all}\n")
    message.add_attachment(
        s.all.encode(), maintype="text", subtype="plain", filename=f"backup {s.wif}.txt"
    )
    return message


def send_mail(port: int, message: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.send_message(message)


# --- waiting and scanning ---------------------------------------------------------------


def metrics_of(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        return str(response.read().decode())


def idle_state(services: dict[str, str], topics: Topics) -> dict[str, Any] | None:
    """Per service: messages taken and events relayed, or None while any consumer lags,
    has not reported its lag yet, or an outbox holds events."""
    state: dict[str, Any] = {}
    readers = consumers_of(topics)
    for name, url in services.items():
        text = metrics_of(url)
        lag_lines = [
            line
            for line in text.splitlines()
            if line.startswith("helpstream_kafka_consumer_lag_messages{")
        ]
        read = [t for t, pairs in readers.items() if any(s == name for s, _ in pairs)]
        if not all(any(f'topic="{t}"' in line for line in lag_lines) for t in read):
            return None
        if metric_sum(text, "helpstream_kafka_consumer_lag_messages") != 0:
            return None
        if metric_sum(text, f"helpstream_{name}_outbox_pending_documents") != 0:
            return None
        state[name] = (
            metric_sum(text, f"helpstream_{name}_consumer_messages_processed_total"),
            metric_sum(text, f"helpstream_{name}_consumer_messages_rejected_total"),
            metric_sum(text, f"helpstream_{name}_outbox_events_relayed_total"),
        )
    return state


async def wait_idle(services: dict[str, str], topics: Topics, mail: MailCatcher) -> None:
    """Until every consumer has caught up and nothing moved (mail included) for 3 s."""
    deadline = time.monotonic() + 180
    last: tuple[Any, int] | None = None
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        state = await asyncio.to_thread(idle_state, services, topics)
        now = (state, len(mail.messages))
        if state is None or now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= 3:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the services did not settle: {last}")


async def read_topics(
    bootstrap: str, prefix: str, ours: frozenset[bytes] = frozenset()
) -> dict[str, list[str]]:
    """Every record of every topic named with `prefix`, from the beginning: key, value and
    headers as text. Records whose value is one of `ours` (what the test itself wrote as
    input: the platform's commands, the attacker's poison) are left out: the services
    cannot unwrite them, and whatever they wrote themselves is read."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        names = sorted(t for t in await consumer.topics() if t.startswith(prefix))
        parts = [
            TopicPartition(topic, p)
            for topic in names
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        out: dict[str, list[str]] = {topic: [] for topic in names}
        deadline = time.monotonic() + 60

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in parts])

        while await behind():
            assert time.monotonic() < deadline, "topics could not be read to their end"
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for r in records:
                    if r.value in ours:
                        continue
                    head = " ".join(f"{k}={v.decode('utf-8', 'replace')}" for k, v in r.headers)
                    key = (r.key or b"").decode("utf-8", "replace")
                    value = normalized((r.value or b"").decode("utf-8", "replace"))
                    out[tp.topic].append(f"{key}\n{head}\n{value}")
        return out
    finally:
        await consumer.stop()


def read_databases(mongo_url: str, prefix: str) -> dict[str, list[str]]:
    """`db.collection` → every document's texts, for each database named with `prefix`."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url)
    try:
        out: dict[str, list[str]] = {}
        for db_name in client.list_database_names():
            if not db_name.startswith(prefix):
                continue
            db = client[db_name]
            for collection in db.list_collection_names():
                out[f"{db_name}.{collection}"] = [
                    "\n".join(texts_of(doc)) for doc in db[collection].find()
                ]
        return out
    finally:
        client.close()


def mail_texts(mail: MailCatcher) -> list[str]:
    """Headers and every decoded part (base64 and quoted-printable would hide a raw match)."""
    out = []
    for caught in mail.messages:
        parts = [str(value) for _, value in caught.message.items()]
        for part in caught.message.walk():
            if part.get_content_maintype() == "text":
                parts.append(str(part.get_content()))
        out.append("\n".join(parts))
    return out


def log_texts(folder: Path) -> dict[str, str]:
    return {
        path.name: "\n".join(normalized(line) for line in path.read_text("utf-8").splitlines())
        for path in sorted(folder.glob("*.log"))
    }


# --- the test ---------------------------------------------------------------------------


@pytest.mark.timeout(420)
@pytest.mark.parametrize(
    "services",
    [{"HELPSTREAM_LOG_LEVEL": "DEBUG", "HELPSTREAM_DIGEST_WINDOW_S": "0"}],
    indirect=True,
)
async def test_secrets_in_every_input_are_found_in_no_store_topic_log_or_mail(
    services: dict[str, str],
    infra: Infra,
    uid: str,
    mail: MailCatcher,
    tmp_path: Path,
    inbound_smtp_port: int,
) -> None:
    s = Secrets()
    needles = s.needles()
    for name, text in {**s.texts, "all": s.all}.items():  # the test's own premise
        assert redact(text).redacted, name
        assert leaks(redact(text).text, needles) == [], name
    if not s.chinese_detected:
        print("\n[no-secret] left out (today's detectors miss it): a Chinese BIP-39 phrase")
    topics = Topics(f"t{uid}.")

    async with httpx.AsyncClient(timeout=30, headers=AUTH) as http:
        intake = services["intake"]
        opened = await http.post(
            f"{intake}/v1/tickets",
            json=ticket_with_secrets(s, 1, "en"),
            headers={"X-Correlation-Id": s.xprv, "Idempotency-Key": f"key {s.wif}"},
        )
        assert opened.status_code == 201, opened.text
        ticket_id = opened.json()["id"]
        zh = await http.post(f"{intake}/v1/tickets", json=ticket_with_secrets(s, 6, "zh-CN"))
        assert zh.status_code == 201, zh.text
        for author, extra in (("requester", {}), ("agent", {"author_id": f"agent {s.wif}"})):
            added = await http.post(
                f"{intake}/v1/tickets/{ticket_id}/messages",
                json={"author": author, "body": s.all, "public": True, **extra},
                headers={"X-Correlation-Id": f"corr {s.wif}"},
            )
            assert added.status_code in (200, 201), added.text
        note = await http.post(
            f"{intake}/v1/tickets/{ticket_id}/messages",
            json={"author": "agent", "body": s.all, "public": False},
        )
        assert note.status_code in (200, 201), note.text
        escalated = await http.post(
            f"{intake}/v1/tickets/{ticket_id}/escalate", json={"by": "agent", "reason": s.all}
        )
        assert escalated.status_code == 200, escalated.text

        inputs = kafka_inputs(s, topics, ticket_id)
        await send(infra.kafka_bootstrap, inputs)

        acknowledgement = next(m for m in mail.wait_for(1, 30) if m.message["Reply-To"])
        reply_to = str(acknowledgement.message["Reply-To"])
        await asyncio.to_thread(send_mail, inbound_smtp_port, mail_with_secrets(s, reply_to))

        # The zh-CN ticket gets no commands that could reopen it and cancel its survey.
        rated_id = zh.json()["id"]
        solved = await http.patch(f"{intake}/v1/tickets/{rated_id}", json={"status": "solved"})
        assert solved.status_code == 200, solved.text
        token = await survey_token(infra.kafka_bootstrap, topics, rated_id)
        rated = await http.post(
            f"{services['feedback']}/v1/surveys/{token}", json={"score": 1, "comment": s.all}
        )
        assert rated.status_code == 200, rated.text
        assert rated.json()["secret_redacted"] is True

    await wait_idle(services, topics, mail)
    ours = frozenset(value for _, value, _ in inputs)
    topic_texts = await read_topics(infra.kafka_bootstrap, f"t{uid}.", ours)
    db_texts = await asyncio.to_thread(read_databases, infra.mongo_url, f"t{uid}")
    logs = log_texts(tmp_path)
    mails = mail_texts(mail)

    found: dict[str, list[str]] = {}
    for where, texts in [
        *((f"topic {t}", records) for t, records in topic_texts.items()),
        *((f"collection {c}", docs) for c, docs in db_texts.items()),
        *((f"log {name}", [text]) for name, text in logs.items()),
        ("mail", mails),
    ]:
        hits = sorted({n for text in texts for n in leaks(text, needles)})
        if hits:
            found[where] = hits[:5]
    print(
        f"\n[no-secret] sent {len(inputs)} records to Kafka (not scanned), then scanned "
        f"{len(topic_texts)} topics "
        f"({sum(map(len, topic_texts.values()))} records), "
        f"{len(db_texts)} collections ({sum(map(len, db_texts.values()))} documents), "
        f"{len(logs)} logs ({sum(len(t.splitlines()) for t in logs.values())} lines), "
        f"{len(mails)} mails"
    )
    for topic, records in sorted(topic_texts.items()):
        print(f"[no-secret]   {topic}: {len(records)} records")
    for collection, docs in sorted(db_texts.items()):
        print(f"[no-secret]   {collection}: {len(docs)} documents")
    assert found == {}, found
    # The scan saw the inputs: the redacted tickets, the DLQs, and the mails they caused.
    assert any("[REDACTED:" in doc for docs in db_texts.values() for doc in docs)
    assert topic_texts[topics.dlq(topics.commands)]
    assert all(topic_texts[topics.dlq(t)] for t in (topics.tickets, topics.sla, topics.feedback))
    assert mails
    # and the reply by email: on the ticket, its text file in the gateway's store
    assert any("Here is everything" in doc for docs in db_texts.values() for doc in docs)
    assert any(name.endswith("attachments.files") and docs for name, docs in db_texts.items())


async def survey_token(bootstrap: str, topics: Topics, ticket_id: str) -> str:
    """The survey link's token, from the `feedback.requested` event of the solved ticket."""
    token: list[str] = []

    async def requested() -> bool:
        texts = (await read_topics(bootstrap, topics.feedback)).get(topics.feedback, [])
        for text in texts:
            match = re.search(r'"survey_url":\s*"[^"]*/v1/surveys/([^"/]+)"', text)
            if match and ticket_id in text:
                token.append(match.group(1))
                return True
        return False

    await eventually(requested, timeout=60, interval=1)
    return token[0]
