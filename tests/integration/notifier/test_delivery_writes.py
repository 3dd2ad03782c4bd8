"""What a notification costs the database: each delivery record is written once, with its
outcome, after the channel accepted the message (email, webhook) or as the inbox item is
stored; counted on the wire with a pymongo command listener."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from pymongo import monitoring

from services.notifier.settings import NotifierSettings
from shared.infra.mailcatcher import MailCatcher
from shared.infra.modes import Infra
from shared.outbox import OUTBOX
from tests.integration.notifier.builders import created
from tests.integration.notifier.conftest import Receiver, mails, start, until

WRITES = frozenset({"insert", "update", "delete", "findAndModify"})
TICKETS = 20


def _relay(update: Any) -> bool:
    """The outbox relay's writes take published events out (`$unset` or `$pull` of the
    outbox); the delivery protocol's only ever append to it."""
    operators = update.get("u") or {}
    return any(OUTBOX in (operators.get(op) or {}) for op in ("$unset", "$pull"))


class WriteCounter(monitoring.CommandListener):
    """Writes to one database's collections: commands, and documents they name."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.commands: Counter[str] = Counter()
        self.documents: Counter[str] = Counter()
        self._lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name != self.database or event.command_name not in WRITES:
            return
        command = event.command
        collection = str(command[event.command_name])
        if event.command_name == "insert":
            kind, count = "insert", len(command.get("documents") or [])
        elif event.command_name == "update":
            updates = command.get("updates") or []
            kind = "relay" if any(_relay(u) for u in updates) else "update"
            count = len(updates)
        else:
            kind, count = event.command_name, 1
        with self._lock:
            self.commands[f"{collection}.{kind}"] += 1
            self.documents[f"{collection}.{kind}"] += count

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_each_delivery_is_written_once_with_its_outcome(
    notifier_settings: Callable[..., NotifierSettings],
    infra: Infra,
    receiver: Receiver,
    mail: MailCatcher,
) -> None:
    settings = notifier_settings()
    counter = WriteCounter(f"{settings.mongo_db_prefix}_notifier")
    monitoring.register(counter)  # clients created from here on report to it
    async with start(settings, infra) as notifier:
        await notifier.publish(
            *(
                ("tickets", created(f"T-writes-{i}", locale="en", email=f"u{i}@example.com"))
                for i in range(TICKETS)
            )
        )
        await mails(mail, TICKETS)
        await until(lambda: len(receiver.to("/push")) == TICKETS)
        store = notifier.app.state.notifications._store
        deliveries = 3 * TICKETS  # email, webhook and inbox item of each acknowledgement
        for _ in range(300):
            if await store.deliveries.count_documents({"state": "sent"}) == deliveries:
                break
            await asyncio.sleep(0.05)
        states = Counter(d["state"] for d in await store.deliveries.find({}).to_list())
    assert states == {"sent": deliveries}
    protocol: dict[str, Any] = {
        key: (counter.commands[key], counter.documents[key])
        for key in sorted(counter.commands)
        if key.startswith("deliveries.") and not key.endswith("relay")
    }
    print(f"\n[delivery writes] {deliveries} deliveries: (commands, documents) {protocol}")
    written = sum(n for _, n in protocol.values())
    assert written == deliveries  # one document write per delivery, none before a send
