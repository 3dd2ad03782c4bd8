"""A database operation whose caller is cancelled still runs to its end (see
`shared.mongo.uncancelled` for why PyMongo must not be cancelled on Python 3.11)."""

from __future__ import annotations

import asyncio

import pytest

from shared.mongo import uncancelled


async def test_a_cancelled_caller_leaves_the_operation_running_to_its_end() -> None:
    release = asyncio.Event()
    finished: list[str] = []

    async def operation() -> str:
        await release.wait()
        finished.append("done")
        return "done"

    caller = asyncio.create_task(uncancelled(operation()))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    release.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert finished == ["done"]


async def test_the_callers_result_and_errors_come_through_unchanged() -> None:
    async def answer() -> int:
        return 42

    async def fail() -> int:
        raise ValueError("bad filter")

    assert await uncancelled(answer()) == 42
    with pytest.raises(ValueError, match="bad filter"):
        await uncancelled(fail())
