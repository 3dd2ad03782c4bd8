"""Group commit: many concurrent callers, one write per round.

`await commit.submit(item)` returns once a write that contained `item` succeeded, or raises
what that write raised. Items submitted while a round is being written go into the next
round, so under load each round carries whatever arrived during the previous one, and a
lone caller waits for one write, as it would without grouping. Rounds never overlap.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

T = TypeVar("T")


class GroupCommit(Generic[T]):
    def __init__(self, write: Callable[[Sequence[T]], Awaitable[None]]) -> None:
        self._write = write
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._rounds())
        # A cancelled caller does not cancel the round its item is in.
        await asyncio.shield(done)

    async def _rounds(self) -> None:
        while self._pending:
            await asyncio.sleep(0)  # let callers finishing in this same tick join the round
            batch, self._pending = self._pending, []
            try:
                await self._write([item for item, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            except BaseException:  # cancelled (shutdown): nobody learns the round succeeded
                for _, done in [*batch, *self._pending]:
                    done.cancel()
                self._pending = []
                raise
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
