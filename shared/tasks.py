"""A loop that runs in the background between `start()` and `stop()`."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine


class BackgroundTask:
    """Subclasses write `run()`; `stop()` cancels it and waits until it has ended."""

    name = "background"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class LoopWorker(BackgroundTask):
    """Runs `loop()` as a task between start and stop; `closing` runs once it has stopped."""

    def __init__(
        self,
        name: str,
        loop: Callable[[], Coroutine[Any, Any, None]],
        closing: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__()
        self.name, self._loop, self._closing = name, loop, closing

    async def run(self) -> None:
        await self._loop()

    async def stop(self) -> None:
        await super().stop()
        if self._closing is not None:
            await self._closing()
