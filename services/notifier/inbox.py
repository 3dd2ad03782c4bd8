"""In-app inbox: who is listening, and the Server-Sent Events stream of new items.

A delivery in this process wakes the requester's open streams at once; items written by
another instance are found by polling MongoDB every `inbox_poll_s`. A comment line is
sent when idle so proxies keep the connection open; the stream ends when the client goes.

A stream starts where its reader left off, so nothing falls between two connections:
after the item named by `Last-Event-ID` (which browsers send when they reconnect), or
from `since` (the page passes the moment it was rendered), never more than
`RESUME_WINDOW` back; otherwise from the moment of connecting. Readers dedupe by id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shared.clock import as_utc
from shared.mongo import uncancelled

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
    from datetime import datetime

    from services.notifier.ports import InboxItem, InboxRepository
    from shared.clock import Clock


RESUME_WINDOW = timedelta(days=1)


async def resume_point(
    store: InboxRepository,
    clock: Clock,
    requester_id: str,
    *,
    since: datetime | None,
    last_event_id: str | None,
) -> tuple[datetime, set[str]]:
    """Where a new stream starts, and the ids already delivered at that instant (a `since`
    without offset is UTC)."""
    now = clock.now()
    start, seen = now, set()
    if last_event_id:
        last = await store.inbox_item(requester_id, last_event_id)
        if last is not None:
            start, seen = last.created_at, {last_event_id}
    elif since is not None:
        start = as_utc(since)
    return min(max(start, now - RESUME_WINDOW), now), seen


class InboxHub:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)

    def notify(self, requester_id: str) -> None:
        for event in self._waiters.get(requester_id, ()):
            event.set()

    @contextlib.contextmanager
    def listen(self, requester_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiters[requester_id].add(event)
        try:
            yield event
        finally:
            self._waiters[requester_id].discard(event)
            if not self._waiters[requester_id]:
                del self._waiters[requester_id]


def item_view(item: InboxItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "ticket_id": item.ticket_id,
        "template": item.template,
        "title": item.title,
        "body": item.body,
        "created_at": item.created_at.isoformat(),
        "read_at": item.read_at.isoformat() if item.read_at else None,
    }


def sse(event: str, data: dict[str, Any], event_id: str) -> bytes:
    payload = json.dumps(data, ensure_ascii=False)
    return f"id: {event_id}\nevent: {event}\ndata: {payload}\n\n".encode()


async def stream(
    store: InboxRepository,
    hub: InboxHub,
    requester_id: str,
    start: tuple[datetime, set[str]],
    *,
    poll_s: float,
    keepalive_s: float,
    disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[bytes]:
    """Inbox items of one requester from `start`, as `resume_point` gives it."""
    since, seen = start
    idle = 0.0
    with hub.listen(requester_id) as wake:
        yield b": connected\n\n"
        while not await disconnected():
            wake.clear()
            items = [
                i
                for i in await uncancelled(store.inbox_since(requester_id, since))
                if i.id not in seen
            ]
            for item in items:
                seen.add(item.id)
                yield sse("inbox.item", item_view(item), item.id)
            if items:
                newest = max(i.created_at for i in items)
                if newest > since:
                    since = newest
                    seen = {i.id for i in items if i.created_at >= newest}
                idle = 0.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), poll_s)
            idle += poll_s
            if idle >= keepalive_s:
                idle = 0.0
                yield b": keepalive\n\n"
