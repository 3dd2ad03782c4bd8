"""Group commit: what concurrent callers submit within a few milliseconds is written in one go.

Each caller awaits `submit(item)` as if it wrote alone. The first item of a group opens a
window of `window_s`; the group is flushed when the window ends or when it holds
`max_items`, whichever comes first, with one `flush(items)` that returns one outcome per
item, in order: a result, or an exception for that item alone. So a lone caller pays at
most the window, and callers that arrive together share one round trip.

- A flush that raises fails every caller of its group with that same exception (a
  database outage stays a database outage for each of them).
- The flush runs in a task of its own: a caller that is cancelled (a client gone away)
  leaves the flush running for the others, and an item whose caller was cancelled before
  its group was flushed is left out of it. The flush itself is never cancelled by a
  caller, so a database driver is never interrupted halfway through an operation.
- Groups do not wait for each other: a group whose window ends while the previous one is
  still being written is flushed at once, beside it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_WINDOW_S = 0.002
DEFAULT_MAX_ITEMS = 100

# After each flush: the group's size, its seconds, and the error that failed it (or None).
FlushObserver = Callable[[int, float, BaseException | None], None]


class GroupCommit(Generic[T, R]):
    """Collects items from concurrent callers and writes each group with one `flush`.

    `flush(items)` returns a sequence as long as `items`: the result of each item, or the
    exception that item's caller is to raise."""

    def __init__(
        self,
        flush: Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        window_s: float = DEFAULT_WINDOW_S,
        max_items: int = DEFAULT_MAX_ITEMS,
        on_flush: FlushObserver | None = None,
    ) -> None:
        if window_s < 0:
            raise ValueError(f"window_s must be 0 or more, not {window_s}")
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, not {max_items}")
        self._flush = flush
        self._window_s = window_s
        self._max_items = max_items
        self._on_flush = on_flush
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    @property
    def window_s(self) -> float:
        return self._window_s

    async def submit(self, item: T) -> R:
        """`item`'s own outcome, once its group is written: its result, or its exception
        (the whole group's, when the flush failed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._max_items or self._window_s == 0:
            self._close_group()
        elif self._timer is None:
            self._timer = loop.call_later(self._window_s, self._close_group)
        return await future  # cancelling the caller cancels this future only

    async def drain(self) -> None:
        """Flush what is waiting now and wait for every flush under way (at shutdown)."""
        self._close_group()
        while self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)

    def _close_group(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        group, self._pending = self._pending, []
        if not group:
            return
        task = asyncio.get_running_loop().create_task(self._write(group))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _write(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        live = [(item, future) for item, future in group if not future.cancelled()]
        if not live:
            return
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            outcomes = await self._flush([item for item, _ in live])
            if len(outcomes) != len(live):
                raise RuntimeError(
                    f"group commit: flush returned {len(outcomes)} outcomes for {len(live)} items"
                )
        except Exception as exc:
            error = exc
            for _, future in live:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), outcome in zip(live, outcomes, strict=True):
                if future.done():
                    continue  # its caller was cancelled meanwhile
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
        finally:
            for _, future in live:  # the flush itself was cancelled (shutdown): so are they
                if not future.done():
                    future.cancel()
            if self._on_flush is not None:
                self._on_flush(len(live), time.perf_counter() - started, error)
